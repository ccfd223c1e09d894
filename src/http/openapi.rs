//! `GET /openapi.json` (CONTRACT.md §2): the OpenAPI 3 description of the public API,
//! generated from the handlers' annotations, the request and response types, and each
//! route's problem list (`problem/routes.rs`).

use actix_web::HttpResponse;
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
