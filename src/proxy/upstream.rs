//! One pooled HTTP client per upstream: keep-alive connections reused across requests,
//! `connect_timeout` for reaching it (→ 502), `timeout` for its response head (→ 504).

use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::UpstreamSettings;
use crate::error::GatewayError;
use crate::telemetry::metrics::Metrics;

/// A named upstream and its connection pool.
#[derive(Clone)]
pub struct Upstream {
    /// Shared, so the access record takes it without copying.
    pub name: std::sync::Arc<str>,
    authority: Authority,
    timeout: Duration,
    client: Client<HttpConnector, Incoming>,
    latency: prometheus_client::metrics::histogram::Histogram,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds the pool. Idle connections are dropped after 90 s, below the 100 s+ that
    /// common servers keep them, so we rarely reuse one the upstream is closing.
    pub fn new(settings: &UpstreamSettings, metrics: &Metrics) -> Result<Self, String> {
        let authority: Authority = settings
            .authority
            .parse()
            .map_err(|_| format!("upstream {}: bad authority", settings.name))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Upstream {
            name: settings.name.as_str().into(),
            authority,
            timeout: settings.timeout,
            client,
            latency: metrics.upstream_histogram(&settings.name),
        })
    }

    /// The upstream URI for a normalized path and the client's original query.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, GatewayError> {
        let path_and_query = match query {
            None => PathAndQuery::try_from(path),
            Some(query) => {
                let mut joined = String::with_capacity(path.len() + query.len() + 1);
                joined.push_str(path);
                joined.push('?');
                joined.push_str(query);
                PathAndQuery::try_from(joined)
            }
        }
        .map_err(|_| GatewayError::invalid_request("the request target is malformed"))?;
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| GatewayError::invalid_request("the request target is malformed"))
    }

    /// Sends a request and waits for the response head; records the wait.
    pub async fn send(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<Incoming>, GatewayError> {
        let sent = std::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, self.client.request(request)).await;
        self.latency.observe(sent.elapsed().as_secs_f64());
        match result {
            Err(_) => Err(GatewayError::GatewayTimeout),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => {
                tracing::warn!(upstream = %self.name, error = %err, "upstream request failed");
                Err(GatewayError::BadGateway)
            }
        }
    }
}
