//! The caller extractors: a request's JWT checked by `auth`, its subject mapped by
//! `identity`. `LinkedCaller` is enough to read or to complete a binding;
//! `SteppedUpCaller`, for bind and unbind, also needs the recent login of docs/api.md
//! "Step-up", checked between authentication and the link (401 before 403). The request
//! rates are checked around them: per client address before the token is read, per user
//! right after the link. Handlers that take either never run for a 401, 403 or 429.

use std::borrow::Cow;
use std::time::SystemTime;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use crate::ids::{AutosharesUserId, Subject};

use super::AppState;
use super::problem::ApiError;

/// An authenticated end user with an AutoShares user id.
#[derive(Debug, Clone)]
pub struct LinkedCaller {
    pub subject: Subject,
    pub user: AutosharesUserId,
}

/// A linked caller whose login is recent and strong enough to change the number.
#[derive(Debug, Clone)]
pub struct SteppedUpCaller(pub LinkedCaller);

impl std::ops::Deref for SteppedUpCaller {
    type Target = LinkedCaller;

    fn deref(&self) -> &LinkedCaller {
        &self.0
    }
}

fn resolve(
    request: &HttpRequest,
    step_up: bool,
) -> LocalBoxFuture<'static, Result<LinkedCaller, ApiError>> {
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let client = super::client::of(request);
    // The header's bytes are shared, not copied.
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    Box::pin(async move {
        let state = state.ok_or_else(|| ApiError::Internal("app state missing".into()))?;
        // Before the token is even read: a flood of bad tokens costs little.
        if let Some(client) = client {
            state.rates.admit_client(client)?;
        }
        let authorization = authorization.as_ref().map(|value| text(value.as_bytes()));
        let caller = state.auth.authenticate(authorization.as_deref()).await?;
        if step_up {
            state.step_up.check(&caller.claims, SystemTime::now())?;
        }
        let user = state
            .identity
            .resolve(&caller.subject, caller.claims.user_id.as_ref())
            .await?;
        state.rates.admit_user(user)?;
        Ok(LinkedCaller {
            subject: caller.subject,
            user,
        })
    })
}

/// A header's text. Bytes that are not UTF-8 are replaced, so a token holding them is
/// refused as malformed rather than as missing.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

impl FromRequest for LinkedCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        resolve(request, false)
    }
}

impl FromRequest for SteppedUpCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = resolve(request, true);
        Box::pin(async move { caller.await.map(Self) })
    }
}
