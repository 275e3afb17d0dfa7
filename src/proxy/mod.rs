//! Forwarding only (SPEC §3.2–§3.5): the pieces the pipeline (`gateway`) uses to
//! hand a decided request to its upstream and the answer back.
//!
//! - [`forwarded`]: the forwarding trust boundary (`X-Forwarded-*`, `Forwarded`);
//! - [`hop`]: hop-by-hop headers out, a requested upgrade kept;
//! - [`upstream`]: the per-upstream connection pool and the request-target it is sent;
//! - [`splice_upgrade`]: the WebSocket (any `101`) splice.
//!
//! Nothing here decides access or reads credentials: identity headers are stripped and
//! stamped by the access layer (`access::identity`), called from the pipeline; so is the
//! signed upstream assertion (`access::assertion`, SPEC §9), which lives there rather
//! than here because `/auth/verify` answers with it too and endpoints sit beside proxy.

pub mod forwarded;
pub mod hop;
pub mod upstream;

use hyper_util::rt::TokioIo;
use tokio_util::task::TaskTracker;

/// Joins the client's and the upstream's upgraded connections and copies both ways until
/// either side closes. The task runs on `tracker`, so shutdown can wait for it; the client
/// socket still holds its connection slot, so it counts against `max_connections` and in
/// `open_connections` until the splice ends.
pub fn splice_upgrade(
    tracker: &TaskTracker,
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
) {
    tracker.spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::debug!(error = %err, "upgrade failed");
                return;
            }
        };
        // The client side carries the connection's `max_connections` slot and its count in
        // `open_connections` (server::conn::io): both end when it is dropped here.
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %err, "upgraded connection ended");
        }
    });
}
