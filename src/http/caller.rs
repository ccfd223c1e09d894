//! The `LinkedCaller` extractor: a request's JWT checked by `auth`, its subject mapped by
//! `identity`. Handlers that take it never run for a 401 or a 403.

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

impl FromRequest for LinkedCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Internal("app state missing".into()))?;
            let caller = state.auth.authenticate(authorization.as_deref()).await?;
            let user = state
                .identity
                .resolve(&caller.subject, &caller.claims)
                .await?;
            Ok(Self {
                subject: caller.subject,
                user,
            })
        })
    }
}
