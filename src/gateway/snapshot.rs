//! The part of the running state SIGHUP swaps atomically: routes, upstreams, identity and
//! forwarding header settings, the JWKS `Cache-Control`, the upstream assertion settings
//! (with a fresh assertion cache), the `[browser]` settings (SPEC §10). Compiled from [`Reloadable`] by value; loaded once per
//! request (one `Arc<Snapshot>`).

use std::sync::Arc;

use http::HeaderValue;
use ipnet::IpNet;

use crate::access::{Assertions, IdentityHeaders};
use crate::config::{BrowserSettings, Reloadable};
use crate::endpoints::well_known;
use crate::error::GatewayError;
use crate::proxy::upstream::Upstream;
use crate::routing::RouteTable;
use crate::telemetry::metrics::Metrics;

/// Routes, upstreams, headers: what one request reads of the configuration.
pub struct Snapshot {
    pub routes: RouteTable,
    pub upstreams: Vec<Upstream>,
    pub identity: IdentityHeaders,
    pub trusted_proxies: Vec<IpNet>,
    pub forward_authorization: bool,
    /// `[assertion]` (SPEC §9): header, ttl, each upstream's audience, the cache.
    pub assertions: Assertions,
    /// `Cache-Control` of the documents at `/.well-known/` (`tokens.jwks.max_age`).
    pub jwks_cache_control: HeaderValue,
    /// `[browser]` (SPEC §10): the sign-in pages, the session cookie, redirects.
    pub browser: Arc<BrowserSettings>,
}

impl Snapshot {
    /// Compiles the reloadable part of a config (start and SIGHUP alike).
    pub fn new(reloadable: Reloadable, metrics: &Metrics) -> Result<Self, String> {
        let Reloadable {
            upstreams,
            routes,
            headers,
            log: _,
            assertion,
            jwks,
            browser,
        } = reloadable;
        let assertions = Assertions::new(&assertion, &upstreams);
        let upstreams = upstreams
            .iter()
            .map(|settings| Upstream::new(settings, metrics))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot {
            routes,
            upstreams,
            identity: IdentityHeaders::new(&headers, &assertion.header),
            trusted_proxies: headers.trusted_proxies,
            forward_authorization: headers.forward_authorization,
            assertions,
            jwks_cache_control: well_known::cache_control(jwks.max_age),
            browser: Arc::new(browser),
        })
    }

    /// The upstream a route decision points at.
    pub fn upstream(&self, index: usize) -> Result<&Upstream, GatewayError> {
        self.upstreams
            .get(index)
            .ok_or_else(|| GatewayError::Internal("route points at a missing upstream".into()))
    }
}
