//! The ops listener (SPEC §6): `/healthz` (the process runs), `/readyz` (store open and
//! config loaded, the store fresh (SPEC §8: not past `store.max_stale`) and not
//! draining; 503 while starting, stale or draining), `/metrics` (Prometheus text). Kept
//! off the main listener so probes and scrapes never pass through auth or route rules.
//! It is up before the store is open, so a replica waiting for its database answers
//! 503 rather than refusing connections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::accounts::Accounts;
use crate::error::GatewayError;
use crate::http::{bytes_response, Body};
use crate::telemetry::metrics::Metrics;

/// State the ops endpoints report.
pub struct OpsState {
    pub metrics: Arc<Metrics>,
    /// True from when the gateway serves until shutdown begins.
    pub ready: AtomicBool,
    /// The accounts layer once the store is open: readiness also asks whether its view
    /// is fresh.
    pub accounts: OnceLock<Arc<Accounts>>,
}

impl OpsState {
    /// Not ready yet: the gateway is still starting.
    pub fn starting(metrics: Arc<Metrics>) -> Self {
        OpsState {
            metrics,
            ready: AtomicBool::new(false),
            accounts: OnceLock::new(),
        }
    }

    /// Why `/readyz` is 503, or `None` when ready: starting (the store not open yet),
    /// draining, or stale.
    fn not_ready(&self) -> Option<&'static str> {
        let Some(accounts) = self.accounts.get() else {
            return Some("starting\n");
        };
        if !self.ready.load(Ordering::Acquire) {
            return Some("draining\n");
        }
        accounts.stale().then_some("stale\n")
    }
}

/// Serves the ops listener until the `shutdown` sender is dropped. It keeps answering
/// while the main listener drains, so probes see `/readyz` turn 503 (SPEC §6) instead of
/// a refused connection, and `/metrics` can be scraped to the end.
pub async fn run(listener: TcpListener, state: Arc<OpsState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %err, "ops accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            changed = shutdown.changed() => match changed {
                // Draining has begun: keep serving, readiness now answers 503.
                Ok(()) => continue,
                // The gateway has stopped.
                Err(_) => return,
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&state, &request)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(state: &OpsState, request: &Request<Incoming>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return GatewayError::MethodNotAllowed("GET, HEAD").into_response();
    }
    match request.uri().path() {
        "/healthz" => bytes_response(StatusCode::OK, "ok\n", "text/plain; charset=utf-8"),
        "/readyz" => match state.not_ready() {
            None => bytes_response(StatusCode::OK, "ready\n", "text/plain; charset=utf-8"),
            Some(why) => bytes_response(
                StatusCode::SERVICE_UNAVAILABLE,
                why,
                "text/plain; charset=utf-8",
            ),
        },
        "/metrics" => bytes_response(
            StatusCode::OK,
            state.metrics.render(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        _ => GatewayError::NotFound.into_response(),
    }
}
