//! Middleware: a request's route, extractors and handler run as a task of their own,
//! within the request's span and with its request id, and the connection's task waits for
//! the answer.
//!
//! - A caller that goes away (a reset connection drops the wait) cancels nothing: a call
//!   to AutoShares, and a login it started, runs to its end, and its answer is stored, its
//!   limits settled and its event audited as for a caller that waited (docs/api.md
//!   "Idempotency").
//! - The connection's task is woken once, when the answer is ready, rather than each time
//!   the handler's work is (a link looked up, AutoShares' bytes arriving). actix-http
//!   parses the connection's read buffer again on every wake, clearing a 3 KiB table of
//!   header slots each time, most often to find nothing.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::Instrument as _;

use super::{ApiError, request_id};

pub async fn own(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id::current().unwrap_or_default();
    let work = request_id::within(id, next.call(request)).instrument(tracing::Span::current());
    actix_web::rt::spawn(work)
        .await
        .unwrap_or_else(|_| Err(ApiError::Internal("a request's task ended early".into()).into()))
}
