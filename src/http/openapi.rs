//! `GET /openapi.json` (CONTRACT.md §2): the OpenAPI 3 description of the public API,
//! generated from the handlers' annotations and the request, response and problem types.

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, response::Response};
use utoipa::{IntoResponses, Modify, OpenApi};

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

/// The problems every authenticated route can answer.
pub struct CallerProblems;

impl IntoResponses for CallerProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[
            (401, "No or bad bearer token: `unauthenticated`"),
            (
                403,
                "The subject has no AutoShares user id: `user_not_linked`",
            ),
            (500, "`internal_error`"),
            (502, "`upstream_error`"),
            (503, "`upstream_unavailable` or `rate_limiter_unavailable`"),
            (504, "`upstream_timeout`"),
        ])
    }
}

/// The problems of a route that takes a JSON body.
pub struct BodyProblems;

impl IntoResponses for BodyProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[
            (400, "`malformed_request`"),
            (413, "`payload_too_large`"),
            (415, "`unsupported_media_type`"),
        ])
    }
}

fn problems(rows: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    rows.iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            let response = ResponseBuilder::new()
                .description(*description)
                .content("application/problem+json", content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// The document as JSON.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_json()
        .expect("the OpenAPI document always serialises")
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
