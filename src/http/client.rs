//! The client address of each public request (docs/operations.md "The client's address behind the ingress"), found once by a middleware
//! from the TCP peer and the forwarding headers of `server.trusted_proxies`, then read by
//! the bind's quota, the audit event and the closing log line.

use std::future::{Ready, ready};
use std::net::{IpAddr, Ipv4Addr};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use crate::client_address::{ClientAddress, TrustedProxies};

/// Every line of header `name`, in order; `None` for one that is not ASCII.
fn lines<'a>(headers: &'a HeaderMap, name: &'static str) -> impl Iterator<Item = Option<&'a str>> {
    headers
        .get_all(HeaderName::from_static(name))
        .map(|value| value.to_str().ok())
}

/// The client address of `request`: its TCP peer, unless that is a trusted proxy.
fn find(request: &HttpRequest) -> ClientAddress {
    let peer = request
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |peer| peer.ip());
    let headers = request.headers();
    match request.app_data::<web::Data<TrustedProxies>>() {
        Some(trusted) => trusted.client_of(peer, lines(headers, trusted.header().name())),
        None => TrustedProxies::default().client_of(peer, std::iter::empty()),
    }
}

/// Middleware: works out the client address and keeps it with the request.
pub async fn locate(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let client = find(request.request());
    request.extensions_mut().insert(client);
    next.call(request).await
}

/// The address `locate` found, if it ran for this request.
pub fn of(request: &HttpRequest) -> Option<ClientAddress> {
    request.extensions().get::<ClientAddress>().copied()
}

impl FromRequest for ClientAddress {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(of(request).unwrap_or_else(|| find(request))))
    }
}
