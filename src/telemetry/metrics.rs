//! Prometheus metrics (SPEC §6) through `prometheus-client`. Label values come from
//! closed sets — enums ([`Decision`], [`TokenRejection`], [`LoginOutcome`],
//! [`LockoutKind`]), status classes, configured upstream names — never a raw path or a
//! username, so cardinality stays bounded. The standard `process_*` series are read from
//! `/proc/self` at scrape time ([`ProcessCollector`]; absent off Linux).

use http::StatusCode;
use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric as _, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
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
    /// Served by gatehouse's own endpoints under `auth_prefix` or its documents at
    /// `/.well-known/` (a `/auth/verify` call is counted under the
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

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    decision: Decision,
}

/// Why a request to an upstream failed (`gatehouse_upstream_errors_total{upstream,kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// No connection: refused, unreachable, `connect_timeout` passed, or the HTTP
    /// handshake failed (502).
    Connect,
    /// Connected, but no response head within the upstream's `timeout` (504).
    Timeout,
    /// The upstream reset or closed the connection before its response head (502).
    Reset,
    /// Any other failure before the response head, e.g. a malformed response (502).
    Other,
}

impl UpstreamErrorKind {
    /// Every kind, in the order they are exported.
    pub const ALL: [UpstreamErrorKind; 4] = [
        UpstreamErrorKind::Connect,
        UpstreamErrorKind::Timeout,
        UpstreamErrorKind::Reset,
        UpstreamErrorKind::Other,
    ];

    fn index(self) -> usize {
        match self {
            UpstreamErrorKind::Connect => 0,
            UpstreamErrorKind::Timeout => 1,
            UpstreamErrorKind::Reset => 2,
            UpstreamErrorKind::Other => 3,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Reset => "reset",
            UpstreamErrorKind::Other => "other",
        }
    }
}

impl EncodeLabelValue for UpstreamErrorKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamErrorLabels {
    upstream: String,
    kind: UpstreamErrorKind,
}

/// The error counters of one configured upstream, one per [`UpstreamErrorKind`], resolved
/// when a config is loaded so the request path only adds to an atomic.
#[derive(Debug, Clone)]
pub struct UpstreamErrors {
    by_kind: [Counter; UpstreamErrorKind::ALL.len()],
}

impl UpstreamErrors {
    /// Counts one failed request to this upstream.
    pub fn count(&self, kind: UpstreamErrorKind) {
        self.by_kind[kind.index()].inc();
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every series gatehouse exports.
///
/// `gatehouse_requests_total{decision,status}`, `gatehouse_token_rejections_total{reason}`,
/// `gatehouse_upstream_duration_seconds{upstream}` (histogram),
/// `gatehouse_logins_total{outcome}`, `gatehouse_lockouts_total{kind}`,
/// `gatehouse_open_connections`, `gatehouse_parked_connections`, `gatehouse_store_stale`,
/// `gatehouse_request_duration_seconds{decision}` (histogram),
/// `gatehouse_upstream_errors_total{upstream,kind}`, `gatehouse_config_reloads_total{result}`,
/// `gatehouse_config_last_reload_successful`,
/// `gatehouse_config_last_reload_success_timestamp_seconds`, `gatehouse_build_info{version}`,
/// and the standard `process_*` series ([`ProcessCollector`]).
pub struct Metrics {
    /// The unprefixed root (`process_*`); every `gatehouse_*` series is in its sub-registry.
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
    request_duration: Family<DecisionLabels, Histogram>,
    /// Handles into `request_duration` by decision, resolved on first use.
    duration_handles: [OnceLock<Histogram>; Decision::ALL.len()],
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    config_reloads: Family<ReloadLabels, Counter>,
    config_last_reload_successful: Gauge,
    config_last_reload_success: Gauge<f64, AtomicU64>,
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
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        let registry = root.sub_registry_with_prefix("gatehouse");
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
        let request_duration = Family::<DecisionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its response head, by access decision",
            request_duration.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Requests to an upstream that failed before its response head, by kind (connect, timeout, reset, other)",
            upstream_errors.clone(),
        );
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP or gatehouse reload), by result",
            config_reloads.clone(),
        );
        for result in ["success", "failure"] {
            let _ = config_reloads.get_or_create(&ReloadLabels { result });
        }
        let config_last_reload_successful = Gauge::default();
        registry.register(
            "config_last_reload_successful",
            "1 if the last configuration load (start or reload) succeeded, else 0",
            config_last_reload_successful.clone(),
        );
        let config_last_reload_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the running configuration was loaded (start or last successful reload), Unix seconds",
            config_last_reload_success.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1; the version of the running gatehouse as a label",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        Metrics {
            registry: root,
            requests,
            request_handles: Default::default(),
            token_rejections,
            upstream_latency,
            logins,
            lockouts,
            open_connections,
            parked_connections,
            store_stale,
            request_duration,
            duration_handles: Default::default(),
            upstream_errors,
            config_reloads,
            config_last_reload_successful,
            config_last_reload_success,
        }
    }

    /// Records how long a finished request took, from its arrival to its response head,
    /// by its access decision.
    pub fn request_duration(&self, decision: Decision, elapsed: Duration) {
        self.duration_handles[decision.index()]
            .get_or_init(|| {
                self.request_duration
                    .get_or_create(&DecisionLabels { decision })
                    .clone()
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The error counters of a configured upstream, every kind exported from zero.
    /// Resolved once when a config is loaded, as [`Metrics::upstream_histogram`].
    pub fn upstream_errors(&self, upstream: &str) -> UpstreamErrors {
        UpstreamErrors {
            by_kind: UpstreamErrorKind::ALL.map(|kind| {
                self.upstream_errors
                    .get_or_create(&UpstreamErrorLabels {
                        upstream: upstream.to_string(),
                        kind,
                    })
                    .clone()
            }),
        }
    }

    /// The running configuration was loaded: at start, or by a successful reload.
    pub fn config_loaded(&self) {
        self.config_last_reload_successful.set(1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        self.config_last_reload_success.set(now);
    }

    /// Counts one reload (SIGHUP or `gatehouse reload`) by its result; a success also
    /// sets the last successful reload's time.
    pub fn config_reloaded(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.config_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
        if success {
            self.config_loaded();
        } else {
            self.config_last_reload_successful.set(0);
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

/// The standard `process_*` series (as Prometheus' own client libraries name them), read
/// from `/proc/self` at each scrape: `process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
/// `process_max_fds`, `process_start_time_seconds`. A file that cannot be read or parsed
/// (not Linux) leaves its series out; a scrape never fails because of it.
///
/// No crate: the kernel's tick rate and page size come from the auxiliary vector
/// (`/proc/self/auxv`, what `sysconf` itself reads), so this needs no `unsafe` and no libc.
#[derive(Debug)]
pub struct ProcessCollector;

/// What one scrape read from `/proc/self`.
#[derive(Debug, Default, PartialEq)]
struct ProcessSample {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<i64>,
    virtual_bytes: Option<i64>,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
    start_time_seconds: Option<f64>,
}

/// `AT_PAGESZ` and `AT_CLKTCK` in the auxiliary vector (linux/auxvec.h).
const AT_PAGESZ: u64 = 6;
const AT_CLKTCK: u64 = 17;

impl ProcessSample {
    fn read() -> ProcessSample {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let auxv = std::fs::read("/proc/self/auxv").unwrap_or_default();
        let stat = read("/proc/self/stat").unwrap_or_default();
        let boot = read("/proc/stat").unwrap_or_default();
        let limits = read("/proc/self/limits").unwrap_or_default();
        let mut sample = ProcessSample::parse(&auxv, &stat, &boot, &limits);
        sample.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| i64::try_from(entries.count()).unwrap_or(i64::MAX));
        sample
    }

    /// Parses the files' contents (`open_fds` is counted by [`ProcessSample::read`]).
    fn parse(auxv: &[u8], stat: &str, boot: &str, limits: &str) -> ProcessSample {
        let aux = |key: u64| {
            auxv.chunks_exact(16).find_map(|pair| {
                let (k, v) = pair.split_at(8);
                let k = u64::from_ne_bytes(k.try_into().ok()?);
                let v = u64::from_ne_bytes(v.try_into().ok()?);
                (k == key && v > 0).then_some(v)
            })
        };
        // USER_HZ is 100 on every mainstream Linux ABI, should the auxv lack it.
        let ticks = aux(AT_CLKTCK).unwrap_or(100) as f64;
        let page = aux(AT_PAGESZ).map(|size| size as i64);
        // Fields after the command name, which is in parentheses and may hold spaces:
        // index 0 is field 3 (state) of proc(5).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let cpu_seconds = field(14)
            .zip(field(15))
            .map(|(user, system)| (user + system) as f64 / ticks);
        let resident_bytes = field(24)
            .zip(page)
            .map(|(pages, page)| (pages as i64).saturating_mul(page));
        let virtual_bytes = field(23).map(|bytes| bytes as i64);
        let boot_time = boot
            .lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok());
        let start_time_seconds = field(22)
            .zip(boot_time)
            .map(|(since_boot, boot)| boot as f64 + since_boot as f64 / ticks);
        let max_fds = limits
            .lines()
            .find_map(|line| line.strip_prefix("Max open files"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|soft| soft.parse::<i64>().ok());
        ProcessSample {
            cpu_seconds,
            resident_bytes,
            virtual_bytes,
            open_fds: None,
            max_fds,
            start_time_seconds,
        }
    }
}

fn encode_gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(metric)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sample = ProcessSample::read();
        if let Some(seconds) = sample.cpu_seconds {
            let counter = ConstCounter::new(seconds);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        let integers = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                sample.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                sample.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                sample.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                sample.max_fds,
            ),
        ];
        for (name, help, value) in integers {
            if let Some(value) = value {
                encode_gauge(&mut encoder, name, help, value)?;
            }
        }
        if let Some(seconds) = sample.start_time_seconds {
            encode_gauge(
                &mut encoder,
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                seconds,
            )?;
        }
        Ok(())
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

    #[test]
    fn process_files_parse_into_seconds_and_bytes() {
        let mut auxv = Vec::new();
        for (key, value) in [(AT_PAGESZ, 4096u64), (AT_CLKTCK, 100), (0, 0)] {
            auxv.extend_from_slice(&key.to_ne_bytes());
            auxv.extend_from_slice(&value.to_ne_bytes());
        }
        // pid (comm with a space) state ppid ... utime=250 stime=50 ... starttime=1234 vsize rss
        let stat = "42 (gate house) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1234 104857600 300 18446744073709551615";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        let sample = ProcessSample::parse(&auxv, stat, boot, limits);
        assert_eq!(sample.cpu_seconds, Some(3.0));
        assert_eq!(sample.resident_bytes, Some(300 * 4096));
        assert_eq!(sample.virtual_bytes, Some(104_857_600));
        assert_eq!(sample.max_fds, Some(1024));
        assert_eq!(sample.start_time_seconds, Some(1_700_000_012.34));
        assert_eq!(
            ProcessSample::parse(&[], "", "", ""),
            ProcessSample::default(),
            "unreadable files leave every series out"
        );
    }

    #[test]
    fn build_info_reloads_and_upstream_errors_start_exported() {
        let metrics = Metrics::new();
        let _ = metrics.upstream_errors("api");
        let text = metrics.render();
        let version = env!("CARGO_PKG_VERSION");
        for line in [
            format!("gatehouse_build_info{{version=\"{version}\"}} 1\n"),
            "gatehouse_config_reloads_total{result=\"success\"} 0\n".to_string(),
            "gatehouse_config_reloads_total{result=\"failure\"} 0\n".to_string(),
            "gatehouse_upstream_errors_total{upstream=\"api\",kind=\"connect\"} 0\n".to_string(),
            "gatehouse_upstream_errors_total{upstream=\"api\",kind=\"reset\"} 0\n".to_string(),
        ] {
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
        metrics.config_reloaded(false);
        assert!(metrics
            .render()
            .contains("gatehouse_config_last_reload_successful 0\n"));
        metrics.request_duration(Decision::Denied, Duration::from_millis(3));
        let text = metrics.render();
        assert!(text.contains("gatehouse_request_duration_seconds_count{decision=\"denied\"} 1\n"));
        assert!(text.contains("gatehouse_config_reloads_total{result=\"failure\"} 1\n"));
    }
}
