//! Logs (docs/operations.md "Logs") and traces (docs/api.md "Tracing").
//!
//! Log lines are formatted on the thread that logs and written to stdout by a thread of
//! their own, in batches, so no request waits for a write. When the queue between them is
//! full (`QUEUED_LINES`) a logging thread waits rather than dropping a line, and
//! [`Telemetry::shutdown`] (or dropping [`Telemetry`]) writes every queued line.
//!
//! Logs: one JSON object a line with `timestamp`, `level`, `message`, the event's fields,
//! and the fields of the spans it happened in (so `request_id` and `trace_id` are on every
//! line of a request); or human-readable lines with `log.format = pretty`. Phone numbers
//! are masked by `phone::PhoneNumber`'s `Display`; nothing secret is logged.
//!
//! Traces: each request is in the caller's W3C trace when it sent a valid `traceparent`,
//! else in a new one, and names its span to AutoShares. With `telemetry.otlp_endpoint` set
//! the service's own spans (a request, an AutoShares call) become OpenTelemetry spans,
//! exported by OTLP/HTTP in batches from a thread of their own: a full queue drops spans,
//! and an unreachable collector costs a request nothing. Without it no OpenTelemetry span
//! is made: the request's trace context is made and kept with its span here. Only spans
//! are exported, never log events, so no attribute holds more than the span's own fields
//! (route, status, endpoint, request id).

use std::borrow::Cow;
use std::fmt;
use std::io::{BufWriter, Write as _};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use actix_web::http::header::{HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, IdGenerator, RandomIdGenerator, SdkTracerProvider,
};
use serde_json::value::RawValue;
use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing::{Event, Metadata, Span, Subscriber};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_opentelemetry::{OpenTelemetrySpanExt, SetParentError};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::{LookupSpan, Registry};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, filter};

use crate::config::{LogFormat, LogSettings, TelemetrySettings};

/// How long one export may take; the batch thread drops the batch after it.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);
/// Spans waiting for export at most; more are dropped.
const MAX_QUEUED_SPANS: usize = 4096;
/// A library whose log lines would hold what must never be logged (the numbers it parses),
/// at any level.
const NEVER_LOGGED: &str = "rlibphonenumber";
/// The crate's own spans: nothing of a dependency is exported.
const OUR_TARGET: &str = "autoshares_bff";
/// The most verbose level of an exported span. Saying so caps the level that the `log`
/// records of dependencies are made at (the log filter's and this one's, whichever is more
/// verbose): without a cap, each `log::debug!` record was built and then dropped, and
/// sqlx summarised each statement for a record that no one wrote.
const EXPORTED_LEVEL: tracing::Level = tracing::Level::INFO;
/// The target of spans that are exported but never logged: no line is written within them,
/// so the log layer would format their fields for nothing. Without an exporter they are
/// not made at all.
pub const EXPORTED_ONLY: &str = "autoshares_bff::exported";

/// How much of the log a batch write gathers before it goes to stdout.
const LOG_BATCH_BYTES: usize = 64 * 1024;

/// How long the log thread rests after each write to stdout ([`Lingering`]).
const LOG_LINGER: Duration = Duration::from_millis(2);

/// Log lines waiting for the log thread at most; a request that would add one more waits
/// (none is dropped). The queue's slots are allocated up front: 8 192 of them take 256 KiB,
/// the library's default of 128 000 takes 4 MiB.
const QUEUED_LINES: usize = 8192;

/// The tracer provider (when spans are exported) and the log writer, to flush at exit.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    /// Dropping it writes the queued log lines and stops the log thread.
    _lines: WorkerGuard,
}

impl Telemetry {
    /// Exports what is queued (bounded by the export timeout) and stops the exporter, then
    /// writes the last log lines.
    pub fn shutdown(self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "spans could not all be exported at shutdown");
        }
    }
}

/// Installs the global subscriber (logs to stdout, spans to OpenTelemetry) and the W3C
/// propagator. Later calls install nothing.
pub fn init(log: &LogSettings, traces: Option<&TelemetrySettings>) -> Telemetry {
    let provider = traces.and_then(exporting_provider);
    let (writer, guard) = log_thread(std::io::stdout());
    // Installing it also caps the level at which `log` records are made at the one this
    // subscriber can enable.
    let result = subscriber(log, provider.as_ref(), writer).try_init();
    if result.is_ok() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        TRACE_ID_AS_FIELD.store(log.format == LogFormat::Pretty, Ordering::Relaxed);
        EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    }
    // A subscriber is already set when tests start several apps in one process.
    Telemetry {
        provider,
        _lines: guard,
    }
}

/// The log thread, writing the lines queued for it to `sink` in batches ([`Lingering`]).
fn log_thread(sink: impl std::io::Write + Send + 'static) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("log-writer")
        .finish(Lingering(BufWriter::with_capacity(LOG_BATCH_BYTES, sink)))
}

/// The log thread's writer. The thread takes the lines it finds queued and flushes them
/// to the sink once the queue is empty; then this rests for `LOG_LINGER` before the
/// thread takes the next. Lines queued meanwhile wake no one: under load the log costs one
/// write and one wake-up a `LOG_LINGER`, where it cost about one of each a line, and a
/// line reaches the sink within `LOG_LINGER` of the previous write.
struct Lingering<W: std::io::Write>(BufWriter<W>);

impl<W: std::io::Write> std::io::Write for Lingering<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        std::thread::sleep(LOG_LINGER);
        Ok(())
    }
}

/// Log lines to `writer`, in `log`'s format and filtered by its level; our spans to
/// `provider`, which exports them, when there is one. Without it no OpenTelemetry span is
/// made at all (nor a `tracing` span of [`EXPORTED_ONLY`]): the log layer alone sees the
/// spans, and [`continue_trace`] keeps each request's trace with its span itself.
fn subscriber<W>(
    log: &LogSettings,
    provider: Option<&SdkTracerProvider>,
    writer: W,
) -> impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let lines = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(SpanFields)
            .event_format(JsonLines)
            .with_writer(writer)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(writer)
            .boxed(),
    };
    // Without an exporter, the log layer also makes the spans that keep a request's trace,
    // even when the log level would leave them out: the trace goes on to AutoShares. With
    // one, the span layer makes them.
    let exports = provider.is_some();
    let traced = |meta: &Metadata<'_>| carries_trace(meta, false);
    let lines = match (LogFilter::new(&log.level), exports) {
        // The log layer alone: its filter is the subscriber's, decided once per callsite,
        // where a filter of the layer's own is asked again on every span entered and left.
        (LogFilter::ByTarget(targets), false) => {
            let most_verbose = Layer::<Registry>::max_level_hint(&*targets)
                .map_or(EXPORTED_LEVEL.into(), |hint| {
                    hint.max(EXPORTED_LEVEL.into())
                });
            let filter = filter::filter_fn(move |meta| {
                targets.would_enable(meta.target(), meta.level()) || traced(meta)
            })
            .with_max_level_hint(most_verbose);
            // The filter outermost: a pair of layers in the list reports the level hint of
            // its outer one, and without the filter's, every `log` record would be made.
            lines.and_then(filter).boxed()
        }
        (LogFilter::Dynamic(filter), false) => {
            let traced = filter::filter_fn(traced).with_max_level_hint(EXPORTED_LEVEL);
            lines.with_filter(filter.or(traced)).boxed()
        }
        (LogFilter::ByTarget(filter), true) => lines.with_filter(*filter).boxed(),
        (LogFilter::Dynamic(filter), true) => lines.with_filter(*filter).boxed(),
    };
    // A span carries its own fields only: no source location, thread, target or busy
    // and idle times, and entering it sets no OpenTelemetry context (the service reads a
    // span's context from the span itself). Each of those costs every span its work.
    let mut layers = vec![lines];
    if let Some(provider) = provider {
        let spans = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("autoshares-bff"))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(
                filter::filter_fn(|meta| carries_trace(meta, true))
                    .with_max_level_hint(EXPORTED_LEVEL),
            );
        layers.push(spans.boxed());
    }
    // A list, not an optional layer: with an absent `Option` layer the registry made every
    // span, even those that the log filter turns off.
    tracing_subscriber::registry().with(layers)
}

/// Whether `meta` is one of the service's spans that are in a trace: its own up to
/// [`EXPORTED_LEVEL`], and those of [`EXPORTED_ONLY`] when something exports them.
fn carries_trace(meta: &Metadata<'_>, exports: bool) -> bool {
    meta.is_span()
        && *meta.level() <= EXPORTED_LEVEL
        && meta.target().starts_with(OUR_TARGET)
        && (exports || !meta.target().starts_with(EXPORTED_ONLY))
}

/// Which log lines are written: `log.level` (or `RUST_LOG`), with what must never be logged
/// turned off whatever it says.
enum LogFilter {
    /// Levels by target, the usual case: decided once per callsite, nothing to do when a
    /// span is entered or left.
    ByTarget(Box<Targets>),
    /// With span or field directives (`[request]=debug`), which `Targets` cannot express:
    /// `EnvFilter` follows the spans each thread is in, at a cost on every span entered.
    Dynamic(Box<EnvFilter>),
}

impl LogFilter {
    fn new(level: &str) -> Self {
        let never = [NEVER_LOGGED, EXPORTED_ONLY];
        if let Some(Ok(targets)) = by_target_only(level).then(|| level.parse::<Targets>()) {
            let targets = never.into_iter().fold(targets, |targets, target| {
                targets.with_target(target, LevelFilter::OFF)
            });
            return Self::ByTarget(Box::new(targets));
        }
        let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
        Self::Dynamic(Box::new(never.into_iter().fold(
            filter,
            |filter, target| {
                filter.add_directive(format!("{target}=off").parse().expect("a valid directive"))
            },
        )))
    }
}

/// Whether every directive of `level` is a level, a target, or `target=level`: `Targets`
/// reads those as `EnvFilter` does (it reads more, such as `[span]` as a target's name,
/// differently, so anything else goes to `EnvFilter`).
fn by_target_only(level: &str) -> bool {
    level.split(',').all(|directive| {
        !directive.is_empty()
            && directive
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_:=-.".contains(&b))
    })
}

/// The tracer provider that exports spans to `settings`' endpoint; none without one.
fn exporting_provider(settings: &TelemetrySettings) -> Option<SdkTracerProvider> {
    let url = settings.otlp_traces_url.as_ref()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build();
    match exporter {
        Ok(exporter) => {
            let batches = BatchSpanProcessor::builder(exporter)
                .with_batch_config(
                    opentelemetry_sdk::trace::BatchConfigBuilder::default()
                        .with_max_queue_size(MAX_QUEUED_SPANS)
                        .build(),
                )
                .build();
            let provider = SdkTracerProvider::builder()
                .with_resource(resource)
                .with_span_processor(batches)
                .build();
            Some(provider)
        }
        Err(error) => {
            eprintln!("telemetry: spans will not be exported: {error}");
            None
        }
    }
}

/// The caller's `traceparent` and `tracestate`.
struct Headers<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent,
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The trace context of a request's span, kept with the span: its trace id for the JSON
/// lines logged within it (recorded as a field instead, it would be formatted on every
/// request), and the parent that the calls the request makes name when no span of their
/// own is made for them.
#[derive(Clone)]
struct TraceOf(SpanContext);

/// Whether the installed subscriber exports spans ([`init`] with an exporter).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether [`continue_trace`] records the trace id as the span's `trace_id` field: for the
/// pretty format, which writes a span's fields and knows nothing of [`TraceOf`].
static TRACE_ID_AS_FIELD: AtomicBool = AtomicBool::new(false);

/// Puts `span` in the caller's trace when `header` yields a valid `traceparent`, else in
/// a new one, and keeps the trace with the span, so every log line within it carries the
/// id as `trace_id` and every call it makes names it as the parent.
pub fn continue_trace<'a>(span: &Span, header: impl Fn(&str) -> Option<&'a str>) {
    let headers = Headers {
        traceparent: header("traceparent"),
        tracestate: header("tracestate"),
    };
    let parent = TraceContextPropagator::new().extract(&headers);
    let caller = parent.span().span_context().clone();
    let own = match span.set_parent(parent) {
        Ok(()) => span.context().span().span_context().clone(),
        Err(SetParentError::LayerNotFound) => child_of(&caller),
        Err(_) => return,
    };
    if !own.is_valid() {
        return;
    }
    if TRACE_ID_AS_FIELD.load(Ordering::Relaxed) {
        span.record("trace_id", tracing::field::display(own.trace_id()));
    }
    keep_trace(span, TraceOf(own));
}

/// The context of a request's span when no OpenTelemetry span is made for it, as the
/// tracer provider's sampler (the parent's decision, else sampled) would make it: in the
/// caller's trace with the caller's sampling decision and trace state, else in a new
/// sampled trace; with a span id of its own either way.
fn child_of(caller: &SpanContext) -> SpanContext {
    let ids = RandomIdGenerator::default();
    let (trace_id, flags, state) = if caller.is_valid() {
        let state = caller.trace_state().clone();
        (caller.trace_id(), caller.trace_flags(), state)
    } else {
        (ids.new_trace_id(), TraceFlags::SAMPLED, Default::default())
    };
    SpanContext::new(trace_id, ids.new_span_id(), flags, false, state)
}

fn keep_trace(span: &Span, trace: TraceOf) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<Registry>()
            && let Some(span) = registry.span(id)
        {
            span.extensions_mut().insert(trace);
        }
    });
}

/// The trace context kept with `span` by [`continue_trace`], if any.
fn kept_trace(span: &Span) -> Option<SpanContext> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let span = registry.span(id)?;
        let extensions = span.extensions();
        extensions.get::<TraceOf>().map(|TraceOf(own)| own.clone())
    })
    .flatten()
}

/// Names the exported span of a request once its route and status are known (e.g.
/// `PUT /v1/me/phone-number`) and sets them on it. Without an exporter there is no such
/// span, and nothing is made for it.
pub fn finish_exported(span: &Span, method: &str, route: Cow<'static, str>, status: u16) {
    if !EXPORTING.load(Ordering::Relaxed) {
        return;
    }
    span.context()
        .span()
        .update_name(format!("{method} {route}"));
    span.set_attribute("http.route", route);
    span.set_attribute("http.response.status_code", i64::from(status));
}

/// The `traceparent` (and a non-empty `tracestate`) naming `span`, for a call it makes:
/// the context kept with a request's span, else that of the span's OpenTelemetry span.
/// Written here rather than by the W3C propagator, which builds the value through
/// `format!` on every call; its test holds the two to the same text. An empty
/// `tracestate` is left out, as the W3C format asks of a sender.
pub fn trace_headers(span: &Span) -> Vec<(HeaderName, HeaderValue)> {
    let own = kept_trace(span).unwrap_or_else(|| span.context().span().span_context().clone());
    if !own.is_valid() {
        return Vec::new();
    }
    let mut headers = Vec::with_capacity(2);
    headers.push((HeaderName::from_static("traceparent"), traceparent(&own)));
    let state = own.trace_state().header();
    // The trace state's own parser admits only visible ASCII; a value that were not is
    // left out rather than failing the call.
    if !state.is_empty()
        && let Ok(value) = HeaderValue::try_from(state)
    {
        headers.push((HeaderName::from_static("tracestate"), value));
    }
    headers
}

/// `00-{trace id}-{span id}-{flags}` in lower-case hex, with the sampled flag alone: the
/// version-00 `traceparent`.
fn traceparent(context: &SpanContext) -> HeaderValue {
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let flags = context.trace_flags() & TraceFlags::SAMPLED;
    let parts = [
        (3..35, &context.trace_id().to_bytes()[..]),
        (36..52, &context.span_id().to_bytes()[..]),
        (53..55, &[flags.to_u8()][..]),
    ];
    for (at, bytes) in parts {
        hex::encode_to_slice(bytes, &mut text[at]).expect("each field has its hex width");
    }
    HeaderValue::from_bytes(&text).expect("hex digits and dashes are a valid header value")
}

/// The JSON line format.
pub struct JsonLines;

/// A span's fields as one JSON object: the members tracing-subscriber's `JsonFields`
/// would write, less the `otel.*` ones, written as they are recorded instead of gathered
/// into a map of values first. A field recorded later (`span.record`) is appended to the object, where
/// `JsonFields` parses the whole object and writes it again. A name recorded twice is then
/// in the text twice, and [`JsonLines`] takes the last, as `JsonFields` would.
struct SpanFields;

impl<'a> FormatFields<'a> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'_>, fields: R) -> fmt::Result {
        let mut members = Members::default();
        fields.record(&mut members);
        writer.write_str(&members.into_object()?)
    }

    fn add_fields(
        &self,
        current: &'a mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        let mut members = Members::default();
        fields.record(&mut members);
        if members.is_empty() {
            return Ok(());
        }
        if current.fields.len() > "{}".len() && current.fields.ends_with('}') {
            current.fields.pop();
            current.fields.push(',');
            current.fields.push_str(members.as_str()?);
            current.fields.push('}');
        } else {
            current.fields = members.into_object()?;
        }
        Ok(())
    }
}

/// A JSON object being written (`{"name":value,…`), with the members `JsonFields`' visitor
/// makes for the spans of tracing's macros: strings escaped by serde_json, `Debug` values
/// as strings.
struct Members(Vec<u8>);

impl Default for Members {
    fn default() -> Self {
        Self(vec![b'{'])
    }
}

impl Members {
    fn put(&mut self, name: &str, value: &(impl serde::Serialize + ?Sized)) {
        // `otel.*` fields steer the exported span; they are not log content.
        if name.starts_with("otel.") {
            return;
        }
        if !self.is_empty() {
            self.0.push(b',');
        }
        // Serialising a string or a number into memory cannot fail.
        let _ = serde_json::to_writer(&mut self.0, name);
        self.0.push(b':');
        let _ = serde_json::to_writer(&mut self.0, value);
    }

    fn is_empty(&self) -> bool {
        self.0.len() == 1
    }

    /// The members without the object's braces.
    fn as_str(&self) -> Result<&str, fmt::Error> {
        std::str::from_utf8(&self.0[1..]).map_err(|_| fmt::Error)
    }

    fn into_object(mut self) -> Result<String, fmt::Error> {
        self.0.push(b'}');
        String::from_utf8(self.0).map_err(|_| fmt::Error)
    }
}

impl Visit for Members {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field.name(), &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field.name(), &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field.name(), &value);
    }

    /// A float that is not finite is written as `null`, as `JsonFields` writes it.
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field.name(), &value);
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.put(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field.name(), &AsString(value));
    }
}

/// A `Debug` value as a JSON string, escaped as it is formatted (no `String` between).
struct AsString<'a>(&'a dyn fmt::Debug);

impl serde::Serialize for AsString<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{:?}", self.0))
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Span fields are kept as the JSON text their layer wrote: each line borrows them
        // instead of parsing them into values again.
        let spans: Vec<_> = ctx
            .event_scope()
            .map(|scope| scope.from_root().collect())
            .unwrap_or_default();
        let extensions: Vec<_> = spans.iter().map(|span| span.extensions()).collect();
        // The line's members in the order in which a later one of a name wins: the spans'
        // from the root, then the event's own, then the line's own.
        let mut line: Vec<(&str, Member<'_>)> = Vec::with_capacity(16);
        line.push(("message", Member::Text("")));
        for extension in &extensions {
            if let Some(fields) = extension.get::<FormattedFields<N>>()
                && let Ok(RawMembers(members)) = serde_json::from_str::<RawMembers<'_>>(fields)
            {
                line.extend(
                    members
                        .into_iter()
                        .map(|(key, value)| (key, Member::Raw(value))),
                );
            }
            if let Some(TraceOf(trace)) = extension.get::<TraceOf>() {
                line.push(("trace_id", Member::TraceId(trace.trace_id())));
            }
        }
        let mut values = Vec::with_capacity(VALUE_BYTES);
        event.record(&mut EventValues {
            values: &mut values,
            line: &mut line,
        });
        let metadata = event.metadata();
        line.push(("level", Member::Text(metadata.level().as_str())));
        line.push(("target", Member::Text(metadata.target())));
        line.push(("timestamp", Member::Timestamp(SystemTime::now())));
        let mut text = Vec::with_capacity(LINE_BYTES);
        text.push(b'{');
        for (index, (key, member)) in line.iter().enumerate() {
            // Of each name, the last.
            if line[index + 1..].iter().any(|(later, _)| later == key) {
                continue;
            }
            if text.len() > 1 {
                text.push(b',');
            }
            // Writing JSON into memory cannot fail.
            let _ = serde_json::to_writer(&mut text, key);
            text.push(b':');
            member.write(&mut text, &values);
        }
        text.extend_from_slice(b"}\n");
        writer.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// What a log line takes, in bytes, before its buffer grows.
const LINE_BYTES: usize = 512;
/// What an event's own values take, as JSON, before their buffer grows.
const VALUE_BYTES: usize = 256;

/// A member's value on a log line.
enum Member<'a> {
    /// As its span's layer wrote it.
    Raw(&'a RawValue),
    /// Written by the event into the line's values, at this range.
    Written(Range<usize>),
    /// A string to escape.
    Text(&'a str),
    TraceId(opentelemetry::TraceId),
    Timestamp(SystemTime),
}

impl Member<'_> {
    fn write(&self, text: &mut Vec<u8>, values: &[u8]) {
        // Writing JSON into memory cannot fail.
        match self {
            Self::Raw(value) => text.extend_from_slice(value.get().as_bytes()),
            Self::Written(range) => text.extend_from_slice(&values[range.clone()]),
            Self::Text(value) => drop(serde_json::to_writer(&mut *text, value)),
            Self::TraceId(trace_id) => {
                let mut hex = [0; 32];
                // 16 bytes always fit 32 hex digits.
                let _ = hex::encode_to_slice(trace_id.to_bytes(), &mut hex);
                text.push(b'"');
                text.extend_from_slice(&hex);
                text.push(b'"');
            }
            Self::Timestamp(at) => {
                // Digits and `-:.TZ`: nothing to escape.
                let _ = write!(text, "\"{}\"", humantime::format_rfc3339_millis(*at));
            }
        }
    }
}

/// The members of a span's JSON object, in their order, their values as written.
struct RawMembers<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for RawMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;

        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = RawMembers<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(RawMembers(members))
            }
        }

        deserializer.deserialize_map(Members)
    }
}

/// Writes an event's field values as JSON into `values` and adds each to its line:
/// strings escaped by serde_json, `Debug` values (bytes among them) as strings.
struct EventValues<'v, 'l, 'a> {
    values: &'v mut Vec<u8>,
    line: &'l mut Vec<(&'a str, Member<'a>)>,
}

impl EventValues<'_, '_, '_> {
    fn put(&mut self, field: &Field, value: &(impl serde::Serialize + ?Sized)) {
        let start = self.values.len();
        // Serialising into memory cannot fail.
        let _ = serde_json::to_writer(&mut *self.values, value);
        let end = self.values.len();
        self.line.push((field.name(), Member::Written(start..end)));
    }
}

impl Visit for EventValues<'_, '_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, &value);
    }

    /// A float that is not finite is written as `null`.
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, &AsString(value));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::Empty;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::JsonFields;

    use serde_json::Value;

    use super::*;

    /// Lines written in memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl MakeWriter<'_> for Lines {
        type Writer = Self;

        fn make_writer(&self) -> Self {
            self.clone()
        }
    }

    /// The sizes of the writes a sink took, one entry a write.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<usize>>>);

    impl std::io::Write for Writes {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(bytes.len());
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_log_thread_writes_at_most_once_a_linger_and_loses_no_line() {
        const LINES: usize = 100;
        let writes = Writes::default();
        let (mut writer, guard) = log_thread(writes.clone());
        let started = std::time::Instant::now();
        for n in 0..LINES {
            writer
                .write_all(format!("line {n:03}\n").as_bytes())
                .unwrap();
            // Lines further apart than the thread takes to write one: without the
            // linger, each would go out in a write of its own.
            std::thread::sleep(Duration::from_micros(200));
        }
        let elapsed = started.elapsed();
        drop(guard);
        let writes = writes.0.lock().unwrap();
        assert_eq!(writes.iter().sum::<usize>(), LINES * "line 000\n".len());
        // One write after each linger, and the last at shutdown.
        let most = elapsed.as_micros() / LOG_LINGER.as_micros() + 2;
        assert!(
            writes.len() as u128 <= most,
            "{} writes in {elapsed:?}, at most {most}",
            writes.len()
        );
    }

    /// The line `emit` logs through `JsonLines`, its spans' fields formatted by `fields`.
    fn line_through<N>(fields: N, emit: impl Fn()) -> Value
    where
        N: for<'a> FormatFields<'a> + Send + Sync + 'static,
    {
        let lines = Lines::default();
        let layer = tracing_subscriber::fmt::layer()
            .fmt_fields(fields)
            .event_format(JsonLines)
            .with_writer(lines.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let mut line: Value = serde_json::from_str(text.trim()).unwrap();
        line.as_object_mut().unwrap().remove("timestamp");
        line
    }

    /// Strings that need escaping in JSON: quotes, a backslash, control characters.
    const TEXT: &str = "a \"quoted\" \\ line\nwith\u{1} control and ünïcode";
    const SHOWN: &str = "a \"shown\" line\twith\u{1f}";

    #[test]
    fn levels_by_target_take_the_cheap_filter_and_never_log_what_must_not_be() {
        let LogFilter::ByTarget(targets) = LogFilter::new("warn,autoshares_bff=debug") else {
            panic!("levels by target need no dynamic filter");
        };
        assert!(targets.would_enable("autoshares_bff::http", &tracing::Level::DEBUG));
        assert!(!targets.would_enable("actix_server", &tracing::Level::INFO));
        assert!(targets.would_enable("actix_server", &tracing::Level::WARN));
        assert!(!targets.would_enable(EXPORTED_ONLY, &tracing::Level::ERROR));

        let LogFilter::ByTarget(targets) = LogFilter::new("trace,rlibphonenumber=trace") else {
            panic!("levels by target need no dynamic filter");
        };
        assert!(!targets.would_enable(NEVER_LOGGED, &tracing::Level::ERROR));
        assert!(!targets.would_enable("rlibphonenumber::phonenumberutil", &tracing::Level::ERROR));
        assert!(!targets.would_enable(EXPORTED_ONLY, &tracing::Level::ERROR));
        assert!(targets.would_enable("autoshares_bff", &tracing::Level::TRACE));
    }

    #[test]
    fn records_below_the_log_level_are_not_made() {
        for (level, most_verbose) in [
            ("warn", LevelFilter::INFO),
            ("info", LevelFilter::INFO),
            ("info,sqlx=debug", LevelFilter::DEBUG),
            ("trace", LevelFilter::TRACE),
        ] {
            let log = LogSettings {
                format: LogFormat::Json,
                level: level.to_owned(),
            };
            let hint = subscriber(&log, None, Lines::default).max_level_hint();
            assert_eq!(hint, Some(most_verbose), "{level}");
        }
    }

    #[test]
    fn span_directives_keep_the_dynamic_filter_and_its_exclusions() {
        for level in [
            "info,[request]=debug",
            "warn,autoshares_bff[{user}]=debug",
            "info, warn",
        ] {
            let LogFilter::Dynamic(filter) = LogFilter::new(level) else {
                panic!("{level:?} needs the dynamic filter");
            };
            let directives = filter.to_string();
            assert!(directives.contains("rlibphonenumber=off"), "{directives}");
            assert!(
                directives.contains(&format!("{EXPORTED_ONLY}=off")),
                "{directives}"
            );
        }
        assert!(
            matches!(LogFilter::new("[unclosed=debug"), LogFilter::Dynamic(_)),
            "what neither parses falls back to `info`"
        );
    }

    #[test]
    fn span_fields_are_the_members_json_fields_writes() {
        let emit = || {
            let outer = tracing::info_span!(
                "outer",
                text = TEXT,
                negative = -7_i64,
                largest = u64::MAX,
                yes = true,
                half = 1.5_f64,
                not_a_number = f64::NAN,
                shown = %SHOWN,
                debugged = ?Some("debug"),
                r#type = ?"raw name",
                later = Empty,
            );
            outer.record("later", 2_i64);
            outer.record("later", "twice");
            let inner = tracing::info_span!(parent: &outer, "inner", yes = false, bytes = Empty);
            inner.record("bytes", &b"ab"[..]);
            inner.in_scope(|| tracing::info!(event = 1_u64, "logged"));
        };
        let ours = line_through(SpanFields, emit);
        let theirs = line_through(JsonFields::new(), emit);
        assert_eq!(ours, theirs);
        assert_eq!(ours["later"], "twice", "{ours}");
        assert_eq!(ours["yes"], false, "the inner span's value: {ours}");
        assert_eq!(ours["not_a_number"], Value::Null, "{ours}");
    }

    #[test]
    fn an_event_writes_its_fields_as_json_values_over_its_spans_fields() {
        let line = line_through(SpanFields, || {
            let span = tracing::info_span!("request", request_id = "r-1", status = 200_u64);
            span.in_scope(|| {
                tracing::warn!(
                    status = 404_u64,
                    text = TEXT,
                    negative = -7_i64,
                    largest = u64::MAX,
                    yes = true,
                    half = 1.5_f64,
                    not_a_number = f64::NAN,
                    shown = %SHOWN,
                    debugged = ?Some("debug"),
                    bytes = &b"ab"[..],
                    "logged {}", "here"
                )
            });
        });
        let expected = serde_json::json!({
            "request_id": "r-1",
            "status": 404,
            "text": TEXT,
            "negative": -7,
            "largest": u64::MAX,
            "yes": true,
            "half": 1.5,
            "not_a_number": null,
            "shown": SHOWN,
            "debugged": "Some(\"debug\")",
            "bytes": "[61 62]",
            "message": "logged here",
            "level": "WARN",
            "target": module_path!(),
        });
        assert_eq!(line, expected);
    }

    #[test]
    fn the_trace_id_kept_with_a_span_is_on_each_line_within_it() {
        const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
        let line = line_through(SpanFields, || {
            let request = tracing::info_span!("request", request_id = "r-1", trace_id = Empty);
            let trace = SpanContext::new(
                opentelemetry::TraceId::from_hex(TRACE_ID).unwrap(),
                opentelemetry::SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                TraceFlags::SAMPLED,
                false,
                opentelemetry::trace::TraceState::default(),
            );
            keep_trace(&request, TraceOf(trace));
            let call = tracing::info_span!(parent: &request, "call", endpoint = "bind");
            call.in_scope(|| tracing::info!("within"));
        });
        assert_eq!(line["trace_id"], TRACE_ID, "{line}");
        assert_eq!(line["request_id"], "r-1", "{line}");
        assert_eq!(line["endpoint"], "bind", "{line}");
    }

    #[test]
    fn without_an_exporter_a_requests_span_passes_the_callers_trace_on() {
        let log = LogSettings {
            format: LogFormat::Json,
            level: "warn".to_owned(),
        };
        let subscriber = subscriber(&log, None, Lines::default);
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let sent = tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("request", trace_id = Empty);
            continue_trace(&request, |name| (name == "traceparent").then_some(caller));
            trace_headers(&request)
        });
        let (_, value) = sent
            .iter()
            .find(|(name, _)| name == "traceparent")
            .expect("a traceparent");
        let value = value.to_str().expect("a traceparent is visible ASCII");
        let parts: Vec<_> = value.split('-').collect();
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "{value}");
        assert_ne!(parts[2], "00f067aa0ba902b7", "{value}");
        assert_eq!(parts[3], "00", "{value}");
    }

    #[test]
    fn the_trace_headers_sent_are_the_w3c_propagators_less_an_empty_tracestate() {
        use opentelemetry::trace::TraceState;
        use opentelemetry::{SpanId, TraceId};
        let log = LogSettings {
            format: LogFormat::Json,
            level: "warn".to_owned(),
        };
        let vendors =
            TraceState::from_key_value([("rojo", "00f067aa0ba902b7"), ("congo", "t61")]).unwrap();
        let contexts = [
            (
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
                0x01,
                TraceState::default(),
            ),
            // Leading zeros, not sampled, and a trace state to pass on.
            (
                "000000000000000000000000000000a1",
                "0000000000000001",
                0x00,
                vendors.clone(),
            ),
            // Flags beyond `sampled` are not passed on.
            (
                "ffffffffffffffffffffffffffffffff",
                "ffffffffffffffff",
                0xff,
                vendors,
            ),
        ];
        for (trace, span, flags, state) in contexts {
            let context = SpanContext::new(
                TraceId::from_hex(trace).unwrap(),
                SpanId::from_hex(span).unwrap(),
                TraceFlags::new(flags),
                true,
                state,
            );
            let mut expected = std::collections::HashMap::new();
            let within = opentelemetry::Context::new().with_remote_span_context(context.clone());
            TraceContextPropagator::new().inject_context(&within, &mut expected);
            expected.retain(|_, value: &mut String| !value.is_empty());

            let subscriber = subscriber(&log, None, Lines::default);
            let sent = tracing::subscriber::with_default(subscriber, || {
                let request = tracing::info_span!("request", trace_id = Empty);
                keep_trace(&request, TraceOf(context));
                trace_headers(&request)
            });
            let sent: std::collections::HashMap<_, _> = sent
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
                .collect();
            assert_eq!(sent, expected, "{trace}-{span}-{flags:02x}");
        }
    }

    #[test]
    fn fields_recorded_later_join_their_span_and_the_last_value_wins() {
        let line = line_through(SpanFields, || {
            let request = tracing::info_span!(
                "request",
                request_id = "r-1",
                route = Empty,
                status = Empty,
                never = Empty
            );
            request.record("route", "/v1/me/phone-number");
            request.record("status", 200);
            request.record("status", 404);
            // A span whose every field comes later.
            let call = tracing::info_span!(parent: &request, "call", endpoint = Empty);
            call.record("endpoint", "bind");
            call.in_scope(|| tracing::info!(latency_ms = 3, "request finished"));
        });
        assert_eq!(line["request_id"], "r-1", "{line}");
        assert_eq!(line["route"], "/v1/me/phone-number", "{line}");
        assert_eq!(line["status"], 404, "{line}");
        assert_eq!(line["endpoint"], "bind", "{line}");
        assert_eq!(line["latency_ms"], 3, "{line}");
        assert_eq!(line["message"], "request finished", "{line}");
        assert!(line.get("never").is_none(), "{line}");
    }
}
