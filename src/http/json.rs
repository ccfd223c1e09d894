//! `JsonObject<T>`: a request body that is a JSON object of the route's shape (docs/api.md
//! "Methods and paths"). serde would read a struct from an array too (`["+1310…"]`); this
//! extractor refuses anything but an object with 400 `malformed_request`, and keeps the
//! JSON limits and error handling of `json_config`. The body must have arrived within
//! `server.request_timeout_ms` of the request's first byte, else 408 `request_timeout`:
//! a caller dripping a body byte by byte holds nothing for long.

use std::time::{Duration, Instant};

use actix_web::HttpMessage;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::problem::ApiError;
use super::request_id::Arrival;

/// `server.request_timeout_ms`, as app data of the listeners.
pub struct RequestDeadline(pub Duration);

pub struct JsonObject<T>(pub T);

impl<T> std::ops::Deref for JsonObject<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonObject<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let raw = web::Json::<Box<RawValue>>::from_request(request, payload);
        let deadline = request
            .app_data::<web::Data<RequestDeadline>>()
            .map(|limit| {
                let arrival = request.extensions().get::<Arrival>().map(|a| a.0);
                arrival.unwrap_or_else(Instant::now) + limit.0
            });
        Box::pin(async move {
            let raw = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline.into(), raw)
                    .await
                    .map_err(|_| ApiError::RequestTimeout)??,
                None => raw.await?,
            }
            .into_inner();
            if !raw.get().starts_with('{') {
                return Err(ApiError::Malformed.into());
            }
            serde_json::from_str(raw.get())
                .map(Self)
                .map_err(|_| ApiError::Malformed.into())
        })
    }
}
