//! Prometheus metrics (SPEC §6) through `prometheus-client`. Label values come from
//! closed sets — enums ([`Decision`], [`TokenRejection`], [`LoginOutcome`],
//! [`LockoutKind`]), status classes, configured upstream names — never a raw path or a
//! username, so cardinality stays bounded.

use http::StatusCode;
use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::error::TokenRejection;

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
    /// Served by gatehouse's own endpoints (a `/auth/verify` call is counted under the
    /// decision it made about the forwarded request instead: public, authenticated, ...).
    AuthEndpoint,
    /// A protected route (or `/auth/verify`) refused with 503 because this replica is
    /// more than `store.max_stale` behind the store (SPEC §8).
    Unavailable,
}

/// Status class label values, in index order.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl Decision {
    /// Every decision, in index order.
    pub const ALL: [Decision; 7] = [
        Decision::Public,
        Decision::Authenticated,
        Decision::Unauthenticated,
        Decision::Denied,
        Decision::Rejected,
        Decision::AuthEndpoint,
        Decision::Unavailable,
    ];

    fn index(self) -> usize {
        match self {
            Decision::Public => 0,
            Decision::Authenticated => 1,
            Decision::Unauthenticated => 2,
            Decision::Denied => 3,
            Decision::Rejected => 4,
            Decision::AuthEndpoint => 5,
            Decision::Unavailable => 6,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Public => "public",
            Decision::Authenticated => "authenticated",
            Decision::Unauthenticated => "unauthenticated",
            Decision::Denied => "denied",
            Decision::Rejected => "rejected",
            Decision::AuthEndpoint => "auth_endpoint",
            Decision::Unavailable => "unavailable",
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

impl EncodeLabelValue for TokenRejection {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: TokenRejection,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

/// Which key a login lockout is on (`gatehouse_lockouts_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockoutKind {
    Username,
    Address,
}

impl LockoutKind {
    pub const ALL: [LockoutKind; 2] = [LockoutKind::Username, LockoutKind::Address];

    pub fn as_str(self) -> &'static str {
        match self {
            LockoutKind::Username => "username",
            LockoutKind::Address => "address",
        }
    }
}

impl EncodeLabelValue for LockoutKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LockoutLabels {
    kind: LockoutKind,
}

/// How a login attempt ended (`gatehouse_logins_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginOutcome {
    Success,
    InvalidCredentials,
    Disabled,
    Throttled,
    /// A body that is not a login request, or a policy refusal.
    InvalidRequest,
    /// A fault of ours.
    Error,
}

impl LoginOutcome {
    /// Every outcome, in the order they are exported.
    pub const ALL: [LoginOutcome; 6] = [
        LoginOutcome::Success,
        LoginOutcome::InvalidCredentials,
        LoginOutcome::Disabled,
        LoginOutcome::Throttled,
        LoginOutcome::InvalidRequest,
        LoginOutcome::Error,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::InvalidCredentials => "invalid_credentials",
            LoginOutcome::Disabled => "disabled",
            LoginOutcome::Throttled => "throttled",
            LoginOutcome::InvalidRequest => "invalid_request",
            LoginOutcome::Error => "error",
        }
    }
}

impl EncodeLabelValue for LoginOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: LoginOutcome,
}

/// Every series gatehouse exports.
///
/// `gatehouse_requests_total{decision,status}`, `gatehouse_token_rejections_total{reason}`,
/// `gatehouse_upstream_duration_seconds{upstream}` (histogram),
/// `gatehouse_logins_total{outcome}`, `gatehouse_lockouts_total{kind}`,
/// `gatehouse_open_connections`, `gatehouse_parked_connections`, `gatehouse_store_stale`.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// Handles into `requests` by [decision][status class], resolved on first use so the
    /// per-request path is one array index and an atomic add (no label hashing, no lock).
    request_handles: [[std::sync::OnceLock<Counter>; STATUS_CLASSES.len()]; Decision::ALL.len()],
    token_rejections: Family<ReasonLabels, Counter>,
    upstream_latency: Family<UpstreamLabels, Histogram>,
    logins: Family<OutcomeLabels, Counter>,
    lockouts: Family<LockoutLabels, Counter>,
    open_connections: Gauge,
    parked_connections: Gauge,
    store_stale: Gauge,
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
        for outcome in LoginOutcome::ALL {
            let _ = logins.get_or_create(&OutcomeLabels { outcome });
        }
        let lockouts = Family::<LockoutLabels, Counter>::default();
        registry.register(
            "lockouts",
            "Login lockouts started, by key (username or client address)",
            lockouts.clone(),
        );
        for kind in LockoutKind::ALL {
            let _ = lockouts.get_or_create(&LockoutLabels { kind });
        }
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open on the main listener",
            open_connections.clone(),
        );
        let parked_connections = Gauge::default();
        registry.register(
            "parked_connections",
            "Idle HTTP/1 client connections parked: socket kept, no HTTP state held",
            parked_connections.clone(),
        );
        let store_stale = Gauge::default();
        registry.register(
            "store_stale",
            "1 while this replica has gone more than store.max_stale without hearing from the store (protected routes answer 503), else 0",
            store_stale.clone(),
        );
        Metrics {
            registry,
            requests,
            request_handles: Default::default(),
            token_rejections,
            upstream_latency,
            logins,
            lockouts,
            open_connections,
            parked_connections,
            store_stale,
        }
    }

    /// Counts one finished request by its access decision and status class.
    pub fn request(&self, decision: Decision, status: StatusCode) {
        let class = match status.as_u16() {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        self.request_handles[decision.index()][class]
            .get_or_init(|| {
                self.requests
                    .get_or_create(&RequestLabels {
                        decision,
                        status: STATUS_CLASSES[class],
                    })
                    .clone()
            })
            .inc();
    }

    /// Counts one refused bearer token by its reason.
    pub fn token_rejected(&self, reason: TokenRejection) {
        self.token_rejections
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// The latency histogram of a configured upstream (a closed set of names, so the label
    /// stays bounded). Resolved once when a config is loaded; the request path only calls
    /// `observe` on the handle: the time to an upstream's response head (or failure).
    pub fn upstream_histogram(&self, upstream: &str) -> Histogram {
        self.upstream_latency
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_string(),
            })
            .clone()
    }

    /// Counts one login attempt by its outcome.
    pub fn login(&self, outcome: LoginOutcome) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts one login lockout's start.
    pub fn lockout_started(&self, kind: LockoutKind) {
        self.lockouts.get_or_create(&LockoutLabels { kind }).inc();
    }

    /// A client connection (or a spliced upgraded one) opened.
    pub fn connection_opened(&self) {
        self.open_connections.inc();
    }

    /// A client connection (or a spliced upgraded one) closed.
    pub fn connection_closed(&self) {
        self.open_connections.dec();
    }

    /// An idle HTTP/1 connection parked (hyper let go of it; the socket is kept).
    pub fn connection_parked(&self) {
        self.parked_connections.inc();
    }

    /// A parked connection resumed (its next bytes arrived) or closed.
    pub fn connection_unparked(&self) {
        self.parked_connections.dec();
    }

    /// The view turned stale (`true`) or fresh again.
    pub fn store_stale(&self, stale: bool) {
        self.store_stale.set(i64::from(stale));
    }

    /// Connections parked right now.
    pub fn parked_connections(&self) -> i64 {
        self.parked_connections.get()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_outcomes_start_at_zero_with_their_exported_labels() {
        let text = Metrics::new().render();
        for label in [
            "success",
            "invalid_credentials",
            "disabled",
            "throttled",
            "invalid_request",
            "error",
        ] {
            let line = format!("gatehouse_logins_total{{outcome=\"{label}\"}} 0\n");
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn token_rejections_are_exported_with_their_reason_labels() {
        let metrics = Metrics::new();
        let reasons = [
            (TokenRejection::Oversized, "oversized"),
            (TokenRejection::Malformed, "malformed"),
            (TokenRejection::WrongAlgorithm, "wrong_algorithm"),
            (TokenRejection::BadSignature, "bad_signature"),
            (TokenRejection::Expired, "expired"),
            (TokenRejection::NotYetValid, "not_yet_valid"),
            (TokenRejection::WrongIssuer, "wrong_issuer"),
            (TokenRejection::WrongAudience, "wrong_audience"),
            (TokenRejection::Revoked, "revoked"),
        ];
        assert!(
            !metrics.render().contains("reason="),
            "none before the first"
        );
        for (reason, _) in reasons {
            metrics.token_rejected(reason);
        }
        metrics.login(LoginOutcome::Throttled);
        let text = metrics.render();
        for (_, label) in reasons {
            let line = format!("gatehouse_token_rejections_total{{reason=\"{label}\"}} 1\n");
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
        assert!(text.contains("gatehouse_logins_total{outcome=\"throttled\"} 1\n"));
    }

    #[test]
    fn the_parked_gauge_goes_up_and_back_down() {
        let metrics = Metrics::new();
        metrics.connection_parked();
        metrics.connection_parked();
        assert!(metrics
            .render()
            .contains("gatehouse_parked_connections 2\n"));
        metrics.connection_unparked();
        metrics.connection_unparked();
        assert_eq!(metrics.parked_connections(), 0);
        assert!(metrics
            .render()
            .contains("gatehouse_parked_connections 0\n"));
    }
}
