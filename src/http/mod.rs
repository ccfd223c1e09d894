//! Everything that knows it serves HTTP: the public route table with its 16 KiB JSON limit
//! and extractor error handlers (docs/api.md), the admin listener (docs/api.md "The operations API"), request ids and
//! the problem body.

pub mod admin;
mod bind_headers;
mod caller;
pub mod client;
pub mod cors;
mod json;
pub mod openapi;
pub mod phone_number;
pub mod problem;
pub mod request_id;
mod span;
pub mod task;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::audit::Audit;
use crate::auth::{Authenticator, StepUp};
use crate::identity::Identity;
use crate::limits::{Limits, RequestRates};
use crate::phone::PhoneRules;
use crate::verification::Sealer;

pub use caller::{LinkedCaller, SteppedUpCaller};
pub use json::{JsonObject, RequestDeadline};
pub use problem::ApiError;
pub use span::RequestSpan;

/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every worker shares for the public API.
pub struct AppState {
    pub auth: Authenticator,
    pub step_up: StepUp,
    pub identity: Identity,
    pub phone_rules: PhoneRules,
    pub limits: Arc<Limits>,
    /// Request rates per client address and per user, in this process.
    pub rates: RequestRates,
    pub audit: Arc<Audit>,
    pub sealer: Sealer,
}

/// The pattern of the public resource that took a request, kept with the resource: the
/// closing log line and the metrics name the route by it, without matching the path again.
#[derive(Debug, Clone, Copy)]
struct Route(&'static str);

/// The resource of `path`, which names itself as the route of what it serves.
fn resource(path: &'static str) -> actix_web::Resource {
    web::resource(path).app_data(Route(path))
}

/// The methods of each public path, for `Allow` and for CORS preflights.
const PHONE_NUMBER: (&str, &str) = ("/v1/me/phone-number", "GET, PUT, DELETE");
const VERIFICATION: (&str, &str) = ("/v1/me/phone-number/verification", "POST");

/// The methods a `/v1` path takes, if it is one of ours.
pub fn route_methods(path: &str) -> Option<&'static str> {
    [PHONE_NUMBER, VERIFICATION]
        .into_iter()
        .find(|(route, _)| *route == path)
        .map(|(_, methods)| methods)
}

/// The public route table.
pub fn public_routes(config: &mut web::ServiceConfig) {
    config
        .app_data(json_config())
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .service(
            resource(PHONE_NUMBER.0)
                .route(web::put().to(phone_number::bind))
                .route(web::get().to(phone_number::read))
                .route(web::delete().to(phone_number::unbind))
                .default_service(only(PHONE_NUMBER.1)),
        )
        .service(
            resource(VERIFICATION.0)
                .route(web::post().to(phone_number::complete))
                .default_service(only(VERIFICATION.1)),
        )
        .service(
            resource("/openapi.json")
                .route(web::get().to(openapi::serve))
                .default_service(only("GET")),
        )
        .default_service(web::to(not_found));
}

/// JSON bodies: at most 16 KiB, `application/json` required, errors as problems.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .content_type_required(true)
        .error_handler(|error, _request: &HttpRequest| ApiError::from(error).into())
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// The answer of a known path to a method it does not take: 405 with `Allow: <allow>`.
pub fn only(allow: &'static str) -> actix_web::Route {
    web::to(move || async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow }) })
}
