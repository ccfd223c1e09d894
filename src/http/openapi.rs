//! `GET /openapi.json` (docs/api.md): the OpenAPI 3 description of the public API,
//! generated from the handlers' annotations, the request and response types, and each
//! route's problem list (`problem/routes.rs`).

use actix_web::HttpResponse;
use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::phone_number::{self, BindRequest, BindResponse, CompleteRequest, PhoneNumberResponse};
use super::problem::{Problem, ProblemCode};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "autoshares-bff",
        description = "Bind and verify a user's phone number at AutoShares. Every error is an \
                       RFC 9457 problem (`application/problem+json`) with a stable `code`."
    ),
    paths(
        phone_number::bind,
        phone_number::complete,
        phone_number::read,
        phone_number::unbind,
        serve
    ),
    components(schemas(
        BindRequest,
        BindResponse,
        CompleteRequest,
        PhoneNumberResponse,
        Problem,
        ProblemCode
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The first party's own JWT for the end user"))
                    .build(),
            ),
        );
    }
}

/// The document as JSON: utoipa's, then the headers, the phone number's form and the
/// link of docs/api.md "`GET /openapi.json`". Built once.
pub fn document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        let mut json = serde_json::to_value(&doc).expect("the OpenAPI document always serialises");
        describe_headers(&mut json);
        describe_phone_number(&mut json);
        link_bind_to_completion(&mut json);
        json.to_string()
    })
}

fn header(description: &str, schema: Value) -> Value {
    json!({"description": description, "schema": schema})
}

fn string_header(description: &str) -> Value {
    header(description, json!({"type": "string"}))
}

/// `X-Request-Id` on every operation and answer; `Retry-After` on 409 and 429; on bind,
/// `Idempotency-Key`, the RateLimit fields and `Idempotency-Replayed`.
fn describe_headers(doc: &mut Value) {
    let request_id = json!({
        "name": "X-Request-Id", "in": "header", "required": false,
        "description": "Echoed back and written on the log lines when it is 1-128 \
                        characters of [A-Za-z0-9._:-]; any other value is replaced by a new id",
        "schema": {"type": "string"}
    });
    let idempotency_key = json!({
        "name": "Idempotency-Key", "in": "header", "required": false,
        "description": "Makes a retried bind safe: the same key and number within \
                        idempotency.ttl_s replays the first answer",
        "schema": {"type": "string",
                   "pattern": "^(\"[\\x20-\\x7e]{1,255}\"|[\\x20-\\x7e]{1,255})$"}
    });
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            let is_bind = path == "/v1/me/phone-number" && method == "put";
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut parameters = parameters;
            parameters.push(request_id.clone());
            if is_bind {
                parameters.push(idempotency_key.clone());
            }
            operation["parameters"] = Value::Array(parameters);
            let Some(responses) = operation["responses"].as_object_mut() else {
                continue;
            };
            for (status, response) in responses.iter_mut() {
                let headers = &mut response["headers"];
                if !headers.is_object() {
                    *headers = json!({});
                }
                headers["X-Request-Id"] = string_header("The id of this request");
                if status == "409" || status == "429" {
                    headers["Retry-After"] = header(
                        "Whole seconds to wait before trying again",
                        json!({"type": "integer", "minimum": 1}),
                    );
                }
                if is_bind && status != "401" && status != "403" {
                    headers["RateLimit-Policy"] =
                        string_header("The caller's bind quota: \"bind_per_user\";q=5;w=3600");
                    headers["RateLimit"] = string_header(
                        "What is left of it: \"bind_per_user\";r=4;t=0 (t: seconds until one more)",
                    );
                }
                if is_bind && (status == "200" || status == "422") {
                    headers["Idempotency-Replayed"] = header(
                        "true when this is the stored answer of an earlier bind with the same key",
                        json!({"type": "string", "enum": ["true"]}),
                    );
                }
            }
        }
    }
}

/// What a phone number looks like before it is normalised.
fn describe_phone_number(doc: &mut Value) {
    let schema = &mut doc["components"]["schemas"]["BindRequest"]["properties"]["phoneNumber"];
    schema["pattern"] = json!("^\\+[0-9][0-9 ().-]{5,30}$");
    schema["minLength"] = json!(7);
    schema["maxLength"] = json!(32);
}

/// The bind's `verificationToken` goes to the completion request.
fn link_bind_to_completion(doc: &mut Value) {
    let answer = &mut doc["paths"]["/v1/me/phone-number"]["put"]["responses"]["200"];
    answer["links"] = json!({
        "CompleteBinding": {
            "operationId": "complete",
            "description": "Send the verificationToken back with the code from the SMS",
            "requestBody": {
                "verificationToken": "$response.body#/verificationToken",
                "code": "000000"
            }
        }
    });
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI description of this API", content_type = "application/json"))
)]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
