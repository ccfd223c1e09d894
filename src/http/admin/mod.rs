//! The operations listener (docs/api.md "The operations API"): `/healthz`, `/readyz`, `/metrics`, and, only
//! when `admin.token` is set, the links API (`links.rs`) and the abuse state (`abuse.rs`).

mod abuse;
mod links;
mod ready;

pub use ready::Readiness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use aws_lc_rs::{constant_time, digest};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::auth::{AuthError, Jwks};
use crate::identity::LinkStore;
use crate::metrics::Metrics;

use super::problem::ApiError;
use super::{AppState, json_config};

/// How long a readiness probe waits for the database or Redis.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What the admin listener needs besides the public state.
pub struct AdminState {
    pub store: LinkStore,
    pub admin_token: Option<SecretString>,
    pub jwks: Option<Arc<Jwks>>,
    pub metrics: Arc<Metrics>,
    /// Set on SIGTERM: `/readyz` answers 503 from then on.
    pub shutting_down: Arc<AtomicBool>,
    /// What `/readyz` said of each part last time.
    pub readiness: Readiness,
}

pub fn admin_routes(config: &mut web::ServiceConfig, links_enabled: bool) {
    config
        .app_data(json_config())
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
    if links_enabled {
        // The token is checked before anything else of the request is read.
        let admin_api = web::scope("/admin/v1")
            .wrap(from_fn(admin_token_first))
            .service(
                web::resource("/links/{subject}")
                    .route(web::put().to(links::put_link))
                    .route(web::get().to(links::get_link))
                    .route(web::delete().to(links::delete_link))
                    .default_service(super::only("GET, PUT, DELETE")),
            )
            .service(
                web::resource("/links/{subject}/events")
                    .route(web::get().to(links::events))
                    .default_service(super::only("GET")),
            )
            .service(
                web::resource("/abuse")
                    .route(web::get().to(abuse::show))
                    .default_service(super::only("GET")),
            )
            .service(
                web::resource("/abuse/blocks/{scope}/{key}")
                    .route(web::delete().to(abuse::lift_block))
                    .default_service(super::only("DELETE")),
            )
            .service(
                web::resource("/abuse/safe/{entry}")
                    .route(web::put().to(abuse::add_safe))
                    .route(web::delete().to(abuse::remove_safe))
                    .default_service(super::only("PUT, DELETE")),
            )
            .default_service(web::to(super::not_found));
        config.service(admin_api);
    }
    config.default_service(web::to(super::not_found));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(admin: web::Data<AdminState>, app: web::Data<AppState>) -> HttpResponse {
    let (database, redis) = tokio::join!(
        tokio::time::timeout(PING_TIMEOUT, admin.store.ping()),
        tokio::time::timeout(PING_TIMEOUT, app.limits.check_ready()),
    );
    let readiness = &admin.readiness;
    let database = readiness.part("database", Some(reason(database)));
    let redis = match redis {
        Ok(None) => None,
        Ok(Some(outcome)) => Some(outcome.map_err(|e| e.to_string())),
        Err(_) => Some(Err("no answer in time".to_owned())),
    };
    let redis = readiness.part("redis", redis);
    let mut body = json!({"database": database.name(), "redis": redis.name()});
    let mut ready = database.is_ready() && redis.is_ready();
    if let Some(jwks) = &admin.jwks {
        let jwks = readiness.part(
            "jwks",
            Some(if jwks.is_loaded() {
                Ok(())
            } else {
                Err("no key set has loaded".into())
            }),
        );
        body["jwks"] = json!(jwks.name());
        ready &= jwks.is_ready();
    }
    if admin.shutting_down.load(Ordering::SeqCst) {
        body["shuttingDown"] = json!(true);
        ready = false;
    }
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// A probe's outcome within its bound, with its reason when it failed.
fn reason<E: std::fmt::Display>(
    outcome: Result<Result<(), E>, tokio::time::error::Elapsed>,
) -> Result<(), String> {
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer in time".to_owned()),
    }
}

async fn metrics(admin: web::Data<AdminState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(admin.metrics.encode())
}

/// Middleware of `/admin/v1`: the admin token, before any body or path is read.
async fn admin_token_first(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let refusal = match request.app_data::<web::Data<AdminState>>() {
        Some(admin) => check_admin_token(request.request(), admin).err(),
        None => Some(ApiError::Internal("admin state missing".into())),
    };
    if let Some(error) = refusal {
        let response = error.error_response();
        return Ok(request.into_response(response).map_into_right_body());
    }
    Ok(next.call(request).await?.map_into_left_body())
}

/// `Authorization: Bearer <admin.token>`, compared in constant time (over digests, so the
/// length does not leak either).
fn check_admin_token(request: &HttpRequest, admin: &AdminState) -> Result<(), ApiError> {
    let expected = admin.admin_token.as_ref().ok_or(ApiError::NotFound)?;
    let sent = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(AuthError::Missing)?;
    let sent = digest::digest(&digest::SHA256, sent.trim().as_bytes());
    let expected = digest::digest(&digest::SHA256, expected.expose_secret().as_bytes());
    constant_time::verify_slices_are_equal(sent.as_ref(), expected.as_ref())
        .map_err(|_| AuthError::BadSignature.into())
}
