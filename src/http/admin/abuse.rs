//! `/admin/v1/abuse` (docs/api.md "The operations API", docs/abuse.md): the abuse rules' state as every replica shares
//! it, lifting a breaker block, and the safe-list.

use std::time::SystemTime;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::config::is_e164_prefix;
use crate::limits::Scope;

use super::super::AppState;
use super::super::problem::ApiError;

/// `GET /admin/v1/abuse`: rules and their modes, active blocks, the safe-list.
pub(super) async fn show(app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let view = app.limits.abuse_view().await?;
    let now = SystemTime::now();
    let rules: Vec<_> = view
        .rules
        .iter()
        .map(|(rule, mode)| json!({"rule": rule, "mode": mode.name()}))
        .collect();
    let blocks: Vec<_> = view
        .blocks
        .iter()
        .map(|block| {
            let until = humantime::format_rfc3339_seconds(now + block.remaining);
            json!({"scope": block.scope.name(), "key": block.key, "until": until.to_string()})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"rules": rules, "blocks": blocks, "safe": view.safe})))
}

/// `DELETE /admin/v1/abuse/blocks/{scope}/{key}`: lifts a block and starts its window afresh.
pub(super) async fn lift_block(
    path: web::Path<(String, String)>,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (scope, key) = path.into_inner();
    let scope = Scope::parse(&scope).ok_or(ApiError::BlockNotFound)?;
    let key = decode_plus(&key);
    let key = match scope {
        Scope::Country => key.to_ascii_uppercase(),
        Scope::Prefix => key,
    };
    if !app.limits.lift_block(scope, &key).await? {
        return Err(ApiError::BlockNotFound);
    }
    tracing::info!(scope = scope.name(), "abuse block lifted");
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /admin/v1/abuse/safe/{numberOrPrefix}`.
pub(super) async fn add_safe(
    entry: web::Path<String>,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let entry = decode_plus(&entry);
    if !is_e164_prefix(&entry) {
        return Err(ApiError::Malformed);
    }
    app.limits.set_safe(&entry, true).await?;
    tracing::info!("safe-list entry added");
    Ok(HttpResponse::Ok().json(json!({"entry": entry})))
}

/// `DELETE /admin/v1/abuse/safe/{numberOrPrefix}`.
pub(super) async fn remove_safe(
    entry: web::Path<String>,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !app.limits.set_safe(&decode_plus(&entry), false).await? {
        return Err(ApiError::SafeEntryNotFound);
    }
    tracing::info!("safe-list entry removed");
    Ok(HttpResponse::NoContent().finish())
}

/// The path router leaves `%2B` encoded (a `+` in a path is not a space); numbers and
/// prefixes arrive either way.
fn decode_plus(text: &str) -> String {
    text.replace("%2B", "+").replace("%2b", "+")
}
