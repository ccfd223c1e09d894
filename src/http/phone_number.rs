//! The four `/v1/me/phone-number` handlers (CONTRACT.md §2) and their JSON types.

use std::time::SystemTime;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::limits::Attempt;
use crate::phone::PhoneNumber;
use crate::upstream::{AutoShares, PhoneStatus, UpstreamError};
use crate::verification::TokenError;

use super::AppState;
use super::caller::LinkedCaller;
use super::problem::ApiError;
use super::request_id::RequestId;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindRequest {
    pub phone_number: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BindResponse {
    pub phone_number: String,
    pub state: String,
    pub verification_token: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteRequest {
    pub verification_token: String,
    pub code: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhoneNumberResponse {
    pub phone_number: String,
    pub state: String,
}

impl From<PhoneStatus> for PhoneNumberResponse {
    fn from(status: PhoneStatus) -> Self {
        Self {
            phone_number: status.phone_number,
            state: status.state,
        }
    }
}

/// `PUT /v1/me/phone-number`: step 1 of binding; AutoShares sends the SMS.
pub async fn bind(
    caller: LinkedCaller,
    body: web::Json<BindRequest>,
    app: web::Data<AppState>,
    autoshares: web::Data<AutoShares>,
    request_id: RequestId,
) -> Result<web::Json<BindResponse>, ApiError> {
    let number = PhoneNumber::parse(&body.phone_number, &app.phone_rules)?;
    app.limits.admit_bind(caller.user, &number).await?;
    let bound = autoshares
        .bind(caller.user, &number, request_id.as_str())
        .await
        .map_err(|error| match error {
            UpstreamError::Rejected { .. } => ApiError::PhoneNumberRejected,
            other => other.into(),
        })?;
    let token = app.sealer.seal(
        bound.token_id,
        caller.user,
        &caller.subject,
        &number,
        SystemTime::now(),
    );
    tracing::info!(phone = %number, "bind sent");
    Ok(web::Json(BindResponse {
        phone_number: bound.phone_number,
        state: bound.state,
        verification_token: token,
    }))
}

/// `POST /v1/me/phone-number/verification`: step 2, with the SMS code.
pub async fn complete(
    caller: LinkedCaller,
    body: web::Json<CompleteRequest>,
    app: web::Data<AppState>,
    autoshares: web::Data<AutoShares>,
    request_id: RequestId,
) -> Result<web::Json<PhoneNumberResponse>, ApiError> {
    let now = SystemTime::now();
    let verification = app
        .sealer
        .open(&body.verification_token, &caller.subject, now)?;
    if verification.user != caller.user {
        return Err(TokenError::OtherUser.into());
    }
    let code = body.code.trim();
    if code.is_empty() || code.len() > 32 {
        return Err(ApiError::InvalidCode);
    }
    let key = verification.attempt_key();
    let keep = verification.remaining(now);
    match app
        .limits
        .begin_attempt(&key, app.verify_attempts, keep)
        .await?
    {
        Attempt::Allowed => {}
        Attempt::Exhausted => {
            return Err(crate::limits::LimitError::AttemptsExhausted { retry_after: keep }.into());
        }
        Attempt::Used => return Err(TokenError::Used.into()),
    }
    let outcome = autoshares
        .complete(
            verification.user,
            verification.token_id,
            code,
            request_id.as_str(),
        )
        .await;
    match outcome {
        Ok(status) => {
            app.limits.mark_used(&key, keep).await?;
            tracing::info!(phone = %verification.phone, "binding completed");
            Ok(web::Json(status.into()))
        }
        Err(UpstreamError::Rejected { .. }) => Err(ApiError::InvalidCode),
        Err(other) => {
            app.limits.refund_attempt(&key, keep).await?;
            Err(other.into())
        }
    }
}

/// `GET /v1/me/phone-number`.
pub async fn read(
    caller: LinkedCaller,
    autoshares: web::Data<AutoShares>,
    request_id: RequestId,
) -> Result<web::Json<PhoneNumberResponse>, ApiError> {
    let status = autoshares.read(caller.user, request_id.as_str()).await?;
    status
        .map(|s| web::Json(s.into()))
        .ok_or(ApiError::NoPhoneNumber)
}

/// `DELETE /v1/me/phone-number`.
pub async fn unbind(
    caller: LinkedCaller,
    autoshares: web::Data<AutoShares>,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    autoshares.unbind(caller.user, request_id.as_str()).await?;
    Ok(HttpResponse::NoContent().finish())
}
