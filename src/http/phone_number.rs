//! The four `/v1/me/phone-number` handlers (docs/api.md) and their JSON types.

use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{Action, Event};
use crate::client_address::ClientAddress;
use crate::limits::{Idempotent, StoredAnswer, Verdict};
use crate::phone::PhoneNumber;
use crate::upstream::{AutoShares, PhoneStatus, UpstreamError};

use super::bind_headers::{IDEMPOTENCY_REPLAYED, idempotency_key, insert_rate_limit};
use super::caller::{LinkedCaller, SteppedUpCaller};
use super::problem::{
    ApiError, BindProblems, CompleteProblems, ReadProblems, UnbindProblems, outcome,
};
use super::request_id::RequestId;
use super::{AppState, JsonObject};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindRequest {
    /// International form with `+` and the country code; spaces, dashes, dots and
    /// parentheses are dropped.
    #[schema(example = "+1 (310) 890-4569")]
    pub phone_number: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindResponse {
    /// E.164.
    #[schema(example = "+13108904569")]
    pub phone_number: String,
    /// AutoShares' `PhoneNumberState`, verbatim.
    #[schema(example = "NotVerified")]
    pub state: String,
    /// Opaque; send it back with the SMS code. Expires after `verification.token_ttl_s`.
    pub verification_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteRequest {
    /// From the bind answer.
    pub verification_token: String,
    /// The code from the SMS.
    #[schema(example = "123456")]
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhoneNumberResponse {
    #[schema(example = "+13108904569")]
    pub phone_number: String,
    /// AutoShares' `PhoneNumberState`, verbatim.
    #[schema(example = "Active")]
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

/// Bind a phone number (step 1): AutoShares sends an SMS code to it.
#[utoipa::path(
    put,
    path = "/v1/me/phone-number",
    tag = "phone number",
    request_body = BindRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The SMS is on its way", body = BindResponse),
        BindProblems,
    )
)]
pub async fn bind(
    caller: SteppedUpCaller,
    body: Result<JsonObject<BindRequest>, actix_web::Error>,
    request: HttpRequest,
    app: web::Data<AppState>,
    autoshares: web::Data<AutoShares>,
    request_id: RequestId,
    client: ClientAddress,
) -> HttpResponse {
    let mut event = Event::new(
        &caller.subject,
        caller.user,
        Action::Bind,
        client,
        request_id.as_str(),
    );
    let mut response = match body {
        Err(error) => error.error_response(),
        Ok(body) => match PhoneNumber::parse(&body.phone_number, &app.phone_rules) {
            Err(error) => ApiError::from(error).error_response(),
            Ok(number) => {
                event.number(&number);
                let from = (&request, &request_id, client);
                let steps = bind_steps(&caller, &number, from, &app, &autoshares, &mut event);
                steps.await.unwrap_or_else(|error| error.error_response())
            }
        },
    };
    // Every answer to a linked caller tells its own quota (docs/api.md).
    if let Some(quota) = app.limits.user_quota(caller.user).await {
        insert_rate_limit(&mut response, &quota);
    }
    audited(&app, event, response)
}

/// Queues the request's audit event with the answer's outcome (docs/operations.md "Audit
/// trail"), which an event written ahead of its call takes once the queue's next batch
/// commits. A replayed idempotent answer is the first bind's answer again, not a new event.
fn audited(app: &AppState, mut event: Event, response: HttpResponse) -> HttpResponse {
    if response.headers().contains_key(IDEMPOTENCY_REPLAYED) {
        return response;
    }
    event.outcome = outcome(&response);
    app.audit.record(event);
    response
}

/// Commits the request's audit event before its call to AutoShares: no call without its
/// record (docs/operations.md "Audit trail").
async fn audit_before_call(app: &AppState, event: &mut Event) -> Result<(), ApiError> {
    app.audit
        .before_call(event)
        .await
        .map_err(ApiError::AuditUnavailable)
}

/// The bind of a valid number, in the order of docs/api.md.
async fn bind_steps(
    caller: &LinkedCaller,
    number: &PhoneNumber,
    (request, request_id, client): (&HttpRequest, &RequestId, ClientAddress),
    app: &AppState,
    autoshares: &AutoShares,
    event: &mut Event,
) -> Result<HttpResponse, ApiError> {
    let guard = match idempotency_key(request.headers())? {
        None => None,
        Some(key) => match app
            .limits
            .begin_idempotent(caller.user, &key, number)
            .await?
        {
            Idempotent::Replay(answer) => return Ok(replayed(answer)),
            Idempotent::Fresh(guard) => Some(guard),
        },
    };
    let outcome = send_bind(caller, number, client, (app, autoshares), request_id, event).await;
    let Some(guard) = guard else {
        return outcome.map(|bound| HttpResponse::Ok().json(bound));
    };
    // Only what AutoShares decided is kept for a retry (docs/api.md "Idempotency").
    let decided = match &outcome {
        Ok(bound) => Some((
            200,
            serde_json::to_vec(bound).expect("a bind answer serialises"),
        )),
        Err(error @ ApiError::PhoneNumberRejected) => Some((422, error.problem_body())),
        Err(_) => None,
    };
    match decided {
        Some((status, body)) => {
            let answer = StoredAnswer { status, body };
            guard.store(&answer).await;
            Ok(answer_of(&answer))
        }
        None => {
            guard.abandon().await;
            outcome.map(|bound| HttpResponse::Ok().json(bound))
        }
    }
}

/// The limits and abuse rules, the audit event, then AutoShares, then the sealed token.
async fn send_bind(
    caller: &LinkedCaller,
    number: &PhoneNumber,
    client: ClientAddress,
    (app, autoshares): (&AppState, &AutoShares),
    request_id: &RequestId,
    event: &mut Event,
) -> Result<BindResponse, ApiError> {
    let taken = app.limits.admit_bind(caller.user, number, client).await?;
    if let Err(error) = audit_before_call(app, event).await {
        app.limits
            .give_back(caller.user, number, client, taken)
            .await;
        return Err(error);
    }
    let bound = match autoshares
        .bind(caller.user, number, request_id.as_str())
        .await
    {
        Ok(bound) => bound,
        Err(UpstreamError::Rejected { .. }) => return Err(ApiError::PhoneNumberRejected),
        Err(error) => {
            // An outage spends nobody's quota and trips no breaker (docs/abuse.md).
            if error.never_reached() {
                app.limits
                    .give_back(caller.user, number, client, taken)
                    .await;
            }
            return Err(error.into());
        }
    };
    let token = app.sealer.seal(
        bound.token_id,
        caller.user,
        &caller.subject,
        number,
        SystemTime::now(),
    );
    tracing::info!(phone = %number, "bind sent");
    Ok(BindResponse {
        phone_number: bound.phone_number,
        state: bound.state,
        verification_token: token,
    })
}

/// A stored answer as it went out the first time.
fn answer_of(answer: &StoredAnswer) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    HttpResponse::build(status)
        .content_type(content_type)
        .body(answer.body.clone())
}

/// A stored answer sent again: `Idempotency-Replayed: true`.
fn replayed(answer: StoredAnswer) -> HttpResponse {
    let mut response = answer_of(&answer);
    response.headers_mut().insert(
        HeaderName::from_static(IDEMPOTENCY_REPLAYED),
        HeaderValue::from_static("true"),
    );
    response
}

/// Complete the binding (step 2) with the code from the SMS.
#[utoipa::path(
    post,
    path = "/v1/me/phone-number/verification",
    tag = "phone number",
    request_body = CompleteRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The number is verified", body = PhoneNumberResponse),
        CompleteProblems,
    )
)]
pub async fn complete(
    caller: LinkedCaller,
    body: Result<JsonObject<CompleteRequest>, actix_web::Error>,
    app: web::Data<AppState>,
    autoshares: web::Data<AutoShares>,
    request_id: RequestId,
    client: ClientAddress,
) -> HttpResponse {
    let mut event = Event::new(
        &caller.subject,
        caller.user,
        Action::Complete,
        client,
        request_id.as_str(),
    );
    let response = match body {
        Err(error) => error.error_response(),
        Ok(body) => complete_steps(&caller, &body, &app, &autoshares, &request_id, &mut event)
            .await
            .map_or_else(
                |error| error.error_response(),
                |status| HttpResponse::Ok().json(status),
            ),
    };
    audited(&app, event, response)
}

/// Step 2 of a well-formed request: the token, the code, its attempt, AutoShares.
async fn complete_steps(
    caller: &LinkedCaller,
    body: &CompleteRequest,
    app: &AppState,
    autoshares: &AutoShares,
    request_id: &RequestId,
    event: &mut Event,
) -> Result<PhoneNumberResponse, ApiError> {
    let now = SystemTime::now();
    let verification =
        app.sealer
            .open(&body.verification_token, &caller.subject, caller.user, now)?;
    event.number(&verification.phone);
    let code = check_code(&body.code)?;
    let attempt = app.limits.attempt(&verification, now).await?;
    if let Err(error) = audit_before_call(app, event).await {
        attempt.settle(Verdict::NotSent).await;
        return Err(error);
    }
    let outcome = autoshares
        .complete(
            verification.user,
            verification.token_id,
            code,
            request_id.as_str(),
        )
        .await;
    attempt.settle(verdict(&outcome)).await;
    let status = outcome.map_err(|error| match error {
        UpstreamError::Rejected { .. } => ApiError::InvalidCode,
        other => other.into(),
    })?;
    app.limits
        .record_completion(verification.user, &verification.phone)
        .await;
    tracing::info!(phone = %verification.phone, "binding completed");
    Ok(status.into())
}

/// An SMS code is short; an empty or overlong one is wrong without asking AutoShares.
fn check_code(code: &str) -> Result<&str, ApiError> {
    let code = code.trim();
    if code.is_empty() || code.len() > 32 {
        return Err(ApiError::InvalidCode);
    }
    Ok(code)
}

/// What an answer to step 2 says of the code: only a code that provably never reached
/// AutoShares gives its attempt back.
fn verdict(outcome: &Result<PhoneStatus, UpstreamError>) -> Verdict {
    match outcome {
        Ok(_) => Verdict::Accepted,
        Err(error) if error.never_reached() => Verdict::NotSent,
        Err(_) => Verdict::Counted,
    }
}

/// Read the user's phone number and its state.
#[utoipa::path(
    get,
    path = "/v1/me/phone-number",
    tag = "phone number",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's number and its state", body = PhoneNumberResponse),
        ReadProblems,
    )
)]
pub async fn read(
    caller: LinkedCaller,
    autoshares: web::Data<AutoShares>,
    request_id: RequestId,
) -> HttpResponse {
    // A read may start the service's login, which runs to its end even if the caller goes
    // away, as every request's work does (task.rs; docs/operations.md "The AutoShares
    // client").
    match autoshares.read(caller.user, request_id.as_str()).await {
        Ok(Some(status)) => HttpResponse::Ok().json(PhoneNumberResponse::from(status)),
        Ok(None) => ApiError::NoPhoneNumber.error_response(),
        Err(error) => ApiError::from(error).error_response(),
    }
}

/// Remove the user's phone number.
#[utoipa::path(
    delete,
    path = "/v1/me/phone-number",
    tag = "phone number",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The number is removed"),
        UnbindProblems,
    )
)]
pub async fn unbind(
    caller: SteppedUpCaller,
    app: web::Data<AppState>,
    autoshares: web::Data<AutoShares>,
    request_id: RequestId,
    client: ClientAddress,
) -> HttpResponse {
    let mut event = Event::new(
        &caller.subject,
        caller.user,
        Action::Unbind,
        client,
        request_id.as_str(),
    );
    let unbound = match audit_before_call(&app, &mut event).await {
        Ok(()) => autoshares
            .unbind(caller.user, request_id.as_str())
            .await
            .map_err(ApiError::from),
        Err(error) => Err(error),
    };
    let response = match unbound {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(error) => error.error_response(),
    };
    audited(&app, event, response)
}
