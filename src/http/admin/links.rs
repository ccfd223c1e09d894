//! `/admin/v1/links/{subject}` (docs/api.md "The operations API"): the subject -> AutoShares user id links,
//! and `…/events`, the subject's audit trail (docs/operations.md "Audit trail").

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::ids::{AutosharesUserId, Subject};

use super::super::problem::ApiError;
use super::super::{AppState, JsonObject};
use super::AdminState;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct LinkRequest {
    autoshares_user_id: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LinkResponse {
    subject: String,
    autoshares_user_id: i64,
}

pub(super) async fn put_link(
    subject: web::Path<String>,
    body: JsonObject<LinkRequest>,
    admin: web::Data<AdminState>,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let subject = Subject::from(subject.into_inner());
    if body.autoshares_user_id <= 0 {
        return Err(ApiError::Malformed);
    }
    let user = AutosharesUserId(body.autoshares_user_id);
    admin
        .store
        .save_link(&subject, user)
        .await
        .map_err(store_failure)?;
    app.identity.forget(&subject);
    tracing::info!(autoshares_user_id = user.0, "link saved");
    Ok(HttpResponse::Ok().json(LinkResponse {
        subject: subject.to_string(),
        autoshares_user_id: user.0,
    }))
}

pub(super) async fn get_link(
    subject: web::Path<String>,
    admin: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let subject = Subject::from(subject.into_inner());
    let user = admin
        .store
        .fetch_link(&subject)
        .await
        .map_err(store_failure)?
        .ok_or(ApiError::LinkNotFound)?;
    Ok(HttpResponse::Ok().json(LinkResponse {
        subject: subject.to_string(),
        autoshares_user_id: user.0,
    }))
}

pub(super) async fn delete_link(
    subject: web::Path<String>,
    admin: web::Data<AdminState>,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let subject = Subject::from(subject.into_inner());
    let existed = admin
        .store
        .delete_link(&subject)
        .await
        .map_err(store_failure)?;
    app.identity.forget(&subject);
    if existed {
        tracing::info!("link deleted");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::LinkNotFound)
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    limit: Option<String>,
}

/// Events listed when `limit` is not given, and the most one call lists.
const DEFAULT_EVENTS: u32 = 100;
const MAX_EVENTS: u32 = 1000;

pub(super) async fn events(
    subject: web::Path<String>,
    query: web::Query<EventsQuery>,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let subject = Subject::from(subject.into_inner());
    let limit = match &query.limit {
        None => DEFAULT_EVENTS,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_EVENTS).contains(n))
            .ok_or(ApiError::Malformed)?,
    };
    let events =
        app.audit.history(&subject, limit).await.map_err(|error| {
            ApiError::Internal(format!("audit events could not be read: {error}"))
        })?;
    if events.is_empty() {
        return Err(ApiError::LinkNotFound);
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "events": events })))
}

fn store_failure(error: crate::identity::StoreError) -> ApiError {
    ApiError::Link(error.into())
}
