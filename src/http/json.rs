//! `JsonObject<T>`: a request body that is a JSON object of the route's shape (CONTRACT.md §2
//! "Methods and paths"). serde would read a struct from an array too (`["+1310…"]`); this
//! extractor refuses anything but an object with 400 `malformed_request`, and keeps the
//! JSON limits and error handling of `json_config`.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::problem::ApiError;

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
        Box::pin(async move {
            let raw = raw.await?.into_inner();
            if !raw.get().starts_with('{') {
                return Err(ApiError::Malformed.into());
            }
            serde_json::from_str(raw.get())
                .map(Self)
                .map_err(|_| ApiError::Malformed.into())
        })
    }
}
