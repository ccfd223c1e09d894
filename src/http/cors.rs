//! Browsers (docs/api.md "Browsers (CORS)"): an exact-origin allow-list. A preflight
//! from a listed origin on a `/v1` route is answered here with 204 and the allowed
//! methods and headers; from any other origin, 403 `origin_not_allowed` with no
//! `Access-Control-Allow-*` header. Every other answer to a listed origin, problems
//! included, names the origin and the headers a script may read. No cookies are used, so
//! credentials are never allowed.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};

use super::problem::ApiError;

const ALLOW_HEADERS: &str =
    "authorization, content-type, idempotency-key, x-request-id, traceparent, tracestate";
const EXPOSE_HEADERS: &str =
    "x-request-id, retry-after, ratelimit, ratelimit-policy, idempotency-replayed";

/// The allow-list; with none configured the middleware changes nothing.
pub struct Cors {
    origins: Vec<HeaderValue>,
    max_age: HeaderValue,
}

impl Cors {
    pub fn new(origins: &[String], max_age_s: u64) -> Self {
        Self {
            origins: origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok())
                .collect(),
            max_age: HeaderValue::from(max_age_s),
        }
    }

    fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        self.origins.contains(origin).then_some(origin)
    }
}

/// Middleware: preflights answered here, CORS headers on every other answer.
pub async fn handle(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(cors) = request.app_data::<web::Data<Cors>>().cloned() else {
        return Ok(next.call(request).await?.map_into_left_body());
    };
    if cors.origins.is_empty() {
        return Ok(next.call(request).await?.map_into_left_body());
    }
    let origin = cors.allowed(request.headers()).cloned();
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight && let Some(methods) = super::route_methods(request.path()) {
        let response = match &origin {
            Some(origin) => {
                let mut response = HttpResponse::NoContent().finish();
                let headers = response.headers_mut();
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(methods),
                );
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(ALLOW_HEADERS),
                );
                headers.insert(header::ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
                headers.append(header::VARY, HeaderValue::from_static("Origin"));
                response
            }
            None => {
                let mut response = ApiError::OriginNotAllowed.error_response();
                response
                    .headers_mut()
                    .append(header::VARY, HeaderValue::from_static("Origin"));
                response
            }
        };
        return Ok(request.into_response(response).map_into_right_body());
    }
    let mut response = next.call(request).await?;
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
    Ok(response.map_into_left_body())
}
