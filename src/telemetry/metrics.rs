//! Prometheus metrics (SPEC §6) through `prometheus-client`. Label values come from
//! closed sets (decisions, status classes, rejection reasons, configured upstream names):
//! never a raw path or a username, so cardinality stays bounded.

use http::StatusCode;
use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// How a request was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Public route, forwarded.
    Public,
    /// Valid token (and roles), forwarded.
    Authenticated,
    /// No or bad token on a protected route.
    Unauthenticated,
    /// `deny` route or missing role.
    Denied,
    /// Malformed request, refused before routing.
    Rejected,
    /// Served by gatehouse's own endpoints.
    AuthEndpoint,
}

impl Decision {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Public => "public",
            Decision::Authenticated => "authenticated",
            Decision::Unauthenticated => "unauthenticated",
            Decision::Denied => "denied",
            Decision::Rejected => "rejected",
            Decision::AuthEndpoint => "auth_endpoint",
        }
    }
}

impl EncodeLabelValue for Decision {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    decision: Decision,
    status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The `outcome` label values of `gatehouse_logins_total`.
pub const LOGIN_OUTCOMES: [&str; 6] = [
    "success",
    "invalid_credentials",
    "disabled",
    "throttled",
    "invalid_request",
    "error",
];

/// Every series gatehouse exports.
///
/// `gatehouse_requests_total{decision,status}`, `gatehouse_token_rejections_total{reason}`,
/// `gatehouse_upstream_duration_seconds{upstream}` (histogram),
/// `gatehouse_logins_total{outcome}`, `gatehouse_open_connections`.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    token_rejections: Family<ReasonLabels, Counter>,
    upstream_latency: Family<UpstreamLabels, Histogram>,
    logins: Family<OutcomeLabels, Counter>,
    open_connections: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every series registered; login outcomes start at zero so
    /// dashboards and `rate()` see them before the first login.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by access decision and status class",
            requests.clone(),
        );
        let token_rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "token_rejections",
            "Bearer tokens refused, by reason",
            token_rejections.clone(),
        );
        let upstream_latency = Family::<UpstreamLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "upstream_duration_seconds",
            "Time from sending a request upstream to its response head",
            upstream_latency.clone(),
        );
        let logins = Family::<OutcomeLabels, Counter>::default();
        registry.register("logins", "Login attempts by outcome", logins.clone());
        for outcome in LOGIN_OUTCOMES {
            let _ = logins.get_or_create(&OutcomeLabels { outcome });
        }
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open on the main listener",
            open_connections.clone(),
        );
        Metrics {
            registry,
            requests,
            token_rejections,
            upstream_latency,
            logins,
            open_connections,
        }
    }

    /// Counts one finished request by its access decision and status class.
    pub fn request(&self, decision: Decision, status: StatusCode) {
        let status = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&RequestLabels { decision, status })
            .inc();
    }

    /// Counts one refused bearer token; `reason` is a `TokenRejection` label.
    pub fn token_rejected(&self, reason: &'static str) {
        self.token_rejections
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Records the time to an upstream's response head (or failure), by configured
    /// upstream name: a closed set, so the label stays bounded.
    pub fn upstream_latency(&self, upstream: &str, seconds: f64) {
        self.upstream_latency
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_string(),
            })
            .observe(seconds);
    }

    /// Counts one login attempt; `outcome` is one of [`LOGIN_OUTCOMES`]: success,
    /// invalid_credentials, disabled, throttled, invalid_request, error.
    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// A client connection (or a spliced upgraded one) opened.
    pub fn connection_opened(&self) {
        self.open_connections.inc();
    }

    /// A client connection (or a spliced upgraded one) closed.
    pub fn connection_closed(&self) {
        self.open_connections.dec();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
