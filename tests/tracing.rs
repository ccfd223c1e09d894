//! Trace context and export (docs/api.md, docs/api.md "Tracing"), through the built binary: a caller's
//! `traceparent` is continued, AutoShares gets a child `traceparent`, every log line of the
//! request carries the trace id, and with `telemetry.otlp_endpoint` set the spans reach an
//! OTLP/HTTP receiver (this test's own, decoding the protobuf with `opentelemetry-proto`)
//! with their route, status and endpoint, and nothing secret.
#![cfg(feature = "sandbox")]

mod common;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use autoshares_bff::sandbox::{self, Sandbox, SandboxConfig};
use common::{CLAIM_SECRET, ClosedPort, ServeProcess, claim_jwt, claim_serve_env, spawn_routes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{Value, json};

const PHONE: &str = "+13108904569";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP receiver: every span of every `POST /v1/traces`.
fn receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let kept = spans.clone();
    let addr = spawn_routes(move |config| {
        let kept = kept.clone();
        config.route(
            "/v1/traces",
            web::post().to(move |body: web::Bytes| {
                let kept = kept.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
                    let mut kept = kept.lock().unwrap();
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            kept.extend(scope.spans);
                        }
                    }
                    HttpResponse::Ok()
                        .content_type("application/x-protobuf")
                        .finish()
                }
            }),
        );
    });
    (format!("http://{addr}"), spans)
}

fn serve(sandbox: &Sandbox, otlp_endpoint: Option<&str>, dir: &std::path::Path) -> ServeProcess {
    serve_with(sandbox, otlp_endpoint, &[], dir)
}

fn serve_with(
    sandbox: &Sandbox,
    otlp_endpoint: Option<&str>,
    settings: &[(&'static str, &str)],
    dir: &std::path::Path,
) -> ServeProcess {
    let defaults = SandboxConfig::default();
    let account = (
        defaults.app_key.as_str(),
        defaults.username.as_str(),
        defaults.password.as_str(),
    );
    let mut env = claim_serve_env(sandbox.base_url(), account, dir);
    if let Some(endpoint) = otlp_endpoint {
        env.push(("BFF__TELEMETRY__OTLP_ENDPOINT", endpoint.to_owned()));
    }
    env.extend(
        settings
            .iter()
            .map(|&(name, value)| (name, value.to_owned())),
    );
    ServeProcess::start(&env)
}

fn jwt() -> String {
    claim_jwt("s-1", 1001)
}

/// A bind carrying the caller's trace, sampled; answers its status.
async fn traced_bind(server: &ServeProcess, jwt: &str) -> u16 {
    traced_bind_flagged(server, jwt, "01").await
}

/// A bind carrying the caller's trace with the trace `flags` given; answers its status.
async fn traced_bind_flagged(server: &ServeProcess, jwt: &str, flags: &str) -> u16 {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(20))
        .finish();
    server.wait_ready(&client).await;
    let response = client
        .put(format!("{}/v1/me/phone-number", server.public))
        .insert_header(("Authorization", format!("Bearer {jwt}")))
        .insert_header(("X-Request-Id", "traced-bind-1"))
        .insert_header((
            "traceparent",
            format!("00-{TRACE_ID}-{CALLER_SPAN}-{flags}"),
        ))
        .send_json(&json!({"phoneNumber": PHONE}))
        .await
        .unwrap();
    response.status().as_u16()
}

/// The parts of the `traceparent` AutoShares got with the bind, which is in the caller's
/// trace and names a span of the service's own.
fn traceparent_sent(sandbox: &Sandbox) -> Vec<String> {
    let bind = sandbox
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .expect("AutoShares saw the bind");
    let sent = bind
        .header("traceparent")
        .expect("a traceparent to AutoShares");
    let parts: Vec<String> = sent.split('-').map(str::to_owned).collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(parts[1], TRACE_ID, "the caller's trace");
    assert_ne!(parts[2], CALLER_SPAN, "a span of the service's own");
    parts
}

/// The JSON lines logged for the traced bind, each of which carries the caller's trace id.
fn lines_in_the_callers_trace(stdout: &str) -> Vec<Value> {
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|line: &Value| line["request_id"] == "traced-bind-1")
        .collect();
    assert!(lines.len() >= 2, "{stdout}");
    for line in &lines {
        assert_eq!(line["trace_id"], TRACE_ID, "{line}");
    }
    lines
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        AnyValue::StringValue(text) => Some(text.clone()),
        AnyValue::IntValue(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[actix_web::test]
async fn a_bind_continues_the_callers_trace_to_autoshares_and_the_collector() {
    let sandbox = sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxConfig::default(),
    )
    .unwrap();
    let (endpoint, spans) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&sandbox, Some(&endpoint), dir.path());
    let jwt = jwt();
    assert_eq!(traced_bind(&server, &jwt).await, 200);
    server.terminate();
    let finished = server.finish();
    assert!(finished.success, "exit 0: {}", finished.stderr);

    // AutoShares got a traceparent in the caller's trace, naming the service's call span.
    let parts = traceparent_sent(&sandbox);
    for line in lines_in_the_callers_trace(&finished.stdout) {
        assert!(line.get("otel.kind").is_none(), "{line}");
    }

    // The collector got the request span and the AutoShares call span of that trace.
    let spans = spans.lock().unwrap().clone();
    let ours: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == TRACE_ID)
        .collect();
    let request = ours
        .iter()
        .find(|s| s.name == "PUT /v1/me/phone-number")
        .unwrap_or_else(|| panic!("no request span in {ours:?}"));
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    assert_eq!(
        attribute(request, "http.route").as_deref(),
        Some("/v1/me/phone-number")
    );
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("200")
    );
    let call = ours
        .iter()
        .find(|s| s.name == "bind")
        .unwrap_or_else(|| panic!("no AutoShares call span in {ours:?}"));
    assert_eq!(
        hex(&call.span_id),
        parts[2],
        "the traceparent AutoShares got"
    );
    assert_eq!(
        attribute(call, "upstream_endpoint").as_deref(),
        Some("bind")
    );
    assert_eq!(
        attribute(call, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(
        spans.iter().all(|s| s.events.is_empty()),
        "log events are not exported"
    );

    let defaults = SandboxConfig::default();
    let secrets = [
        "8904569",
        jwt.as_str(),
        defaults.app_key.as_str(),
        defaults.password.as_str(),
        CLAIM_SECRET,
    ];
    for span in &spans {
        for kv in &span.attributes {
            // Only the span's own fields: nothing of the source, the thread or the timing.
            let key = kv.key.as_str();
            let added = ["code.", "thread.", "busy_ns", "idle_ns", "target"];
            assert!(
                !added.iter().any(|prefix| key.starts_with(prefix)),
                "span {} carries {key}",
                span.name
            );
            let text = format!("{:?}", kv.value);
            for secret in secrets {
                assert!(
                    !text.contains(secret),
                    "{} of span {} holds a secret or the number",
                    kv.key,
                    span.name
                );
            }
        }
    }
}

#[actix_web::test]
async fn an_unreachable_collector_fails_no_request_and_holds_no_shutdown() {
    let sandbox = sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxConfig::default(),
    )
    .unwrap();
    let closed = ClosedPort::new();
    let dir = tempfile::tempdir().unwrap();
    let server = serve(
        &sandbox,
        Some(&format!("http://{}", closed.addr())),
        dir.path(),
    );
    assert_eq!(traced_bind(&server, &jwt()).await, 200);
    server.terminate();
    let finished = server.finish();
    assert!(finished.success, "exit 0: {}", finished.stderr);
}

/// A bind with the caller's trace flagged `flags` to a service that exports no spans and
/// runs with `settings`: the parts of the `traceparent` AutoShares got, and what the
/// service logged.
async fn bind_without_an_exporter(
    settings: &[(&'static str, &str)],
    flags: &str,
) -> (Vec<String>, String) {
    let sandbox = sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxConfig::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(&sandbox, None, settings, dir.path());
    assert_eq!(traced_bind_flagged(&server, &jwt(), flags).await, 200);
    server.terminate();
    let finished = server.finish();
    assert!(finished.success, "exit 0: {}", finished.stderr);
    (traceparent_sent(&sandbox), finished.stdout)
}

#[actix_web::test]
async fn without_an_exporter_the_call_and_the_log_lines_still_carry_the_callers_trace() {
    let (parts, stdout) = bind_without_an_exporter(&[], "01").await;
    assert_eq!(parts[3], "01", "the caller's sampling decision");
    lines_in_the_callers_trace(&stdout);
}

#[actix_web::test]
async fn without_an_exporter_or_a_line_of_the_request_autoshares_still_gets_the_callers_trace() {
    // At `warn` no line of the request is written, so no line needs its span.
    let (parts, stdout) = bind_without_an_exporter(&[("BFF__LOG__LEVEL", "warn")], "00").await;
    assert_eq!(parts[3], "00", "the caller's decision not to sample");
    assert!(
        !stdout.contains("traced-bind-1"),
        "no line of the request: {stdout}"
    );
}
