//! The ops listener (SPEC §6): `/healthz` (the process runs), `/readyz` (store open and
//! config loaded; 503 while draining), `/metrics` (Prometheus text). Kept off the main
//! listener so probes and scrapes never pass through auth or route rules.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::GatewayError;
use crate::http::{bytes_response, Body};
use crate::telemetry::metrics::Metrics;

/// State the ops endpoints report.
pub struct OpsState {
    pub metrics: Arc<Metrics>,
    /// False once shutdown has begun.
    pub ready: AtomicBool,
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
        "/readyz" if state.ready.load(Ordering::Acquire) => {
            bytes_response(StatusCode::OK, "ready\n", "text/plain; charset=utf-8")
        }
        "/readyz" => bytes_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining\n",
            "text/plain; charset=utf-8",
        ),
        "/metrics" => bytes_response(
            StatusCode::OK,
            state.metrics.render(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        _ => GatewayError::NotFound.into_response(),
    }
}
