//! The Prometheus registry and our few instruments (docs/api.md "The operations API" `/metrics`). Labels are
//! routes, endpoints, statuses, limit names and outcomes: never a user id, subject, phone
//! number or token, so every label set is small and bounded.

use std::borrow::Cow;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Cow<'static, str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    endpoint: &'static str,
    /// An HTTP status, or `timeout`, `unreachable`, `circuit_open`.
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CountryLabels {
    /// An ISO 3166 alpha-2 code: about 250 values at most.
    country: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: &'static str,
    /// `refused` or `shadow`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Series [`Metrics::declare`] creates at 0, with the label values their owner knows.
pub enum Declared<'a> {
    Rejections(&'a [&'static str]),
    AbuseRules(&'a [&'static str]),
    AbuseScopes(&'a [&'static str]),
    LimiterErrors(&'a [&'static str]),
    Logins(&'a [&'static str]),
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<RouteLabels>,
    upstream_requests: Family<UpstreamLabels, Counter>,
    upstream_seconds: Histograms<EndpointLabels>,
    rejections: Family<LimitLabels, Counter>,
    limiter_errors: Family<OutcomeLabels, Counter>,
    logins: Family<OutcomeLabels, Counter>,
    link_cache: Family<OutcomeLabels, Counter>,
    link_batches: Histogram,
    sms_sends: Family<CountryLabels, Counter>,
    completions: Family<CountryLabels, Counter>,
    abuse_decisions: Family<RuleLabels, Counter>,
    abuse_blocks: Family<ScopeLabels, Gauge>,
    audit_dropped: Counter,
    audit_queued: Gauge,
    audit_batches: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bff");
        let requests = Family::default();
        registry.register(
            "http_requests",
            "Requests to the public API by route and status",
            Clone::clone(&requests),
        );
        let request_seconds: Histograms<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request of the public API, by route",
            request_seconds.clone(),
        );
        let upstream_requests = Family::default();
        registry.register(
            "upstream_requests",
            "Calls to AutoShares by endpoint and status (or timeout, unreachable, circuit_open)",
            Clone::clone(&upstream_requests),
        );
        let upstream_seconds: Histograms<EndpointLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "upstream_request_duration_seconds",
            "Time AutoShares took to answer, by endpoint",
            upstream_seconds.clone(),
        );
        let rejections = Family::default();
        registry.register(
            "rate_limit_rejections",
            "Requests refused by a rate limit, by limit",
            Clone::clone(&rejections),
        );
        let limiter_errors = Family::default();
        registry.register(
            "rate_limiter_errors",
            "Checks the shared limiter could not answer, by what the request was then allowed",
            Clone::clone(&limiter_errors),
        );
        let logins = Family::default();
        registry.register(
            "upstream_logins",
            "Service-token logins to AutoShares by outcome",
            Clone::clone(&logins),
        );
        let link_cache = Family::default();
        registry.register(
            "link_cache_lookups",
            "Subject-to-user-id lookups by cache outcome (hit or miss)",
            Clone::clone(&link_cache),
        );
        let sms_sends = Family::default();
        registry.register(
            "sms_sends",
            "Binds admitted to AutoShares (each may send a paid SMS), by country",
            Clone::clone(&sms_sends),
        );
        let completions = Family::default();
        registry.register(
            "bindings_completed",
            "Bindings completed with the right code, by country",
            Clone::clone(&completions),
        );
        let abuse_decisions = Family::default();
        registry.register(
            "abuse_decisions",
            "Binds an abuse rule refused, or would have refused in shadow mode, by rule",
            Clone::clone(&abuse_decisions),
        );
        let abuse_blocks = Family::default();
        registry.register(
            "abuse_blocks",
            "Countries and prefixes the pumping breaker blocks now, by scope",
            Clone::clone(&abuse_blocks),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "audit_dropped",
            "Audit events forced out of a full queue while the database could not take them",
            audit_dropped.clone(),
        );
        let audit_queued = Gauge::default();
        registry.register(
            "audit_queued",
            "Audit events waiting to be written",
            audit_queued.clone(),
        );
        // From one event to more than a whole audit batch.
        let audit_batches = Histogram::new(exponential_buckets(1.0, 5.0, 5));
        registry.register(
            "audit_batch_events",
            "Audit writes (new events and outcomes) per transaction that wrote them",
            audit_batches.clone(),
        );
        for outcome in ["hit", "miss"] {
            drop(link_cache.get_or_create(&OutcomeLabels { outcome }));
        }
        // From one subject to a whole statement's worth (64, the loader's MAX_BATCH).
        let link_batches = Histogram::new(exponential_buckets(1.0, 2.0, 7));
        registry.register(
            "link_lookup_batch_subjects",
            "Subjects read from the database per statement that read links",
            link_batches.clone(),
        );
        Self {
            registry,
            link_batches,
            audit_dropped,
            audit_queued,
            audit_batches,
            sms_sends,
            completions,
            abuse_decisions,
            abuse_blocks,
            requests,
            request_seconds,
            upstream_requests,
            upstream_seconds,
            rejections,
            limiter_errors,
            logins,
            link_cache,
        }
    }

    /// An audit event forced out of the queue unwritten (docs/operations.md "Audit trail").
    pub fn audit_dropped(&self) {
        self.audit_dropped.inc();
    }

    pub fn audit_queued(&self, count: usize) {
        self.audit_queued
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// A transaction that wrote `events` audit events.
    pub fn audit_batch(&self, events: usize) {
        self.audit_batches.observe(events as f64);
    }

    /// A bind admitted to AutoShares: a send (docs/abuse.md).
    pub fn sms_sent(&self, country: &str) {
        let labels = CountryLabels {
            country: country.to_owned(),
        };
        self.sms_sends.get_or_create(&labels).inc();
    }

    pub fn binding_completed(&self, country: &str) {
        let labels = CountryLabels {
            country: country.to_owned(),
        };
        self.completions.get_or_create(&labels).inc();
    }

    pub fn abuse_decision(&self, rule: &'static str, outcome: &'static str) {
        self.abuse_decisions
            .get_or_create(&RuleLabels { rule, outcome })
            .inc();
    }

    pub fn abuse_blocks(&self, scope: &'static str, count: usize) {
        self.abuse_blocks
            .get_or_create(&ScopeLabels { scope })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// One answered request of the public API.
    /// A route's pattern is borrowed: a request copies nothing to name its series.
    pub fn request(&self, route: Cow<'static, str>, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels { route })
            .observe(took.as_secs_f64());
    }

    /// One call to AutoShares; `status` is the HTTP status or what went wrong instead.
    pub fn upstream(&self, endpoint: &'static str, status: &str, took: Option<Duration>) {
        self.upstream_requests
            .get_or_create(&UpstreamLabels {
                endpoint,
                status: status.to_owned(),
            })
            .inc();
        if let Some(took) = took {
            self.upstream_seconds
                .get_or_create(&EndpointLabels { endpoint })
                .observe(took.as_secs_f64());
        }
    }

    pub fn rejected(&self, limit: &'static str) {
        self.rejections.get_or_create(&LimitLabels { limit }).inc();
    }

    /// The shared limiter failed; `outcome` is `allowed` or `denied`.
    pub fn limiter_error(&self, outcome: &'static str) {
        self.limiter_errors
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A login ended: `succeeded`, `refused` or `failed`.
    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Creates these series at 0, so that they are on `/metrics` (and alerts on them work)
    /// before the first event: refusals by each limit, abuse decisions of each rule, the
    /// limiter's error outcomes and the login outcomes.
    pub fn declare(&self, series: Declared<'_>) {
        match series {
            Declared::Rejections(limits) => {
                for &limit in limits {
                    drop(self.rejections.get_or_create(&LimitLabels { limit }));
                }
            }
            Declared::AbuseRules(rules) => {
                for &rule in rules {
                    for outcome in ["refused", "shadow"] {
                        drop(
                            self.abuse_decisions
                                .get_or_create(&RuleLabels { rule, outcome }),
                        );
                    }
                }
            }
            Declared::AbuseScopes(scopes) => {
                for &scope in scopes {
                    drop(self.abuse_blocks.get_or_create(&ScopeLabels { scope }));
                }
            }
            Declared::LimiterErrors(outcomes) => {
                for &outcome in outcomes {
                    drop(
                        self.limiter_errors
                            .get_or_create(&OutcomeLabels { outcome }),
                    );
                }
            }
            Declared::Logins(outcomes) => {
                for &outcome in outcomes {
                    drop(self.logins.get_or_create(&OutcomeLabels { outcome }));
                }
            }
        }
    }

    /// One statement read the links of `subjects` callers' cache misses.
    pub fn link_batch(&self, subjects: usize) {
        self.link_batches.observe(subjects as f64);
    }

    pub fn link_cache(&self, hit: bool) {
        let outcome = if hit { "hit" } else { "miss" };
        self.link_cache
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The text exposition of every instrument.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exposed_with_its_unit_suffix() {
        let metrics = Metrics::new();
        metrics.request("/v1/me/phone-number".into(), 200, Duration::from_millis(3));
        metrics.upstream("bind", "200", Some(Duration::from_millis(2)));
        metrics.rejected("bind_per_user");
        metrics.limiter_error("denied");
        metrics.login("succeeded");
        metrics.link_cache(true);
        let text = metrics.encode();
        for family in [
            "bff_http_requests_total{route=\"/v1/me/phone-number\",status=\"200\"} 1",
            "bff_http_request_duration_seconds_bucket",
            "bff_upstream_requests_total{endpoint=\"bind\",status=\"200\"} 1",
            "bff_upstream_request_duration_seconds_count",
            "bff_rate_limit_rejections_total{limit=\"bind_per_user\"} 1",
            "bff_rate_limiter_errors_total{outcome=\"denied\"} 1",
            "bff_upstream_logins_total{outcome=\"succeeded\"} 1",
            "bff_link_cache_lookups_total{outcome=\"hit\"} 1",
        ] {
            assert!(text.contains(family), "{family} missing from:\n{text}");
        }
    }
}
