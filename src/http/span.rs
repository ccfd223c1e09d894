//! The root span of every request (for `tracing-actix-web`): it carries `request_id` and
//! `trace_id` (the caller's W3C trace, or a new one), so every line logged while serving
//! the request has them, and the closing line adds `route`,
//! `status` and `latency_ms` (docs/operations.md "Logs"), and on the public listener `client_address`
//! (docs/operations.md "The client's address behind the ingress"). No headers, query or body are recorded.

use std::borrow::Cow;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{HttpMessage, web};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;

use crate::client_address::ClientAddress;
use crate::metrics::Metrics;
use crate::telemetry;

use super::request_id::{Arrival, RequestId};
use super::{Route, client};

pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        // Text fields as `&str`: the log layer writes those as they are, where a `Display`
        // field is formatted first.
        let span = {
            let extensions = request.extensions();
            let id = extensions.get::<RequestId>().map_or("", |id| id.0.as_str());
            tracing::info_span!(
                "request",
                request_id = id,
                method = request.method().as_str(),
                trace_id = tracing::field::Empty,
                "otel.kind" = "server",
            )
        };
        let headers = request.headers();
        telemetry::continue_trace(&span, |name| headers.get(name)?.to_str().ok());
        span
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let Ok(response) = outcome else {
            span.in_scope(|| tracing::error!("request ended without a response"));
            return;
        };
        let request = response.request();
        let route: Cow<'static, str> = match request.app_data::<Route>() {
            Some(Route(pattern)) => Cow::Borrowed(pattern),
            // A request of the admin listener, or a public one that matched no resource.
            None => request
                .match_pattern()
                .map_or(Cow::Borrowed("unmatched"), Cow::Owned),
        };
        let took = request
            .extensions()
            .get::<Arrival>()
            .map(|arrival| arrival.0.elapsed())
            .unwrap_or_default();
        let latency_ms = took.as_millis() as u64;
        let status = response.status().as_u16();
        // Only the public app carries the metrics; admin requests are not counted.
        if let Some(metrics) = request.app_data::<web::Data<Metrics>>() {
            metrics.request(route.clone(), status, took);
        }
        let client = client::of(request);
        let client_address = client.as_ref().map(ClientAddress::as_str);
        span.in_scope(|| {
            tracing::info!(
                route = &*route,
                status,
                latency_ms,
                client_address,
                "request finished"
            );
        });
        // For the exported span only (the closing line above already said it): set on it
        // directly, not recorded as fields that the log layer would format for no line.
        telemetry::finish_exported(&span, request.method().as_str(), route, status);
    }
}
