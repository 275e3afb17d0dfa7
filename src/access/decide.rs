//! The one access decision (SPEC §2 "Routes", §4): route, then credential.
//!
//! 1. [`RouteTable::decide`](crate::routing::RouteTable::decide) — pure, no credentials: which route, what access, which
//!    roles, which upstream; the default for an unmatched request is written there and
//!    nowhere else. `gatehouse explain` prints this part.
//! 2. [`decide()`] — the credential part: `deny` is 403 for everyone; `public` passes (a
//!    valid credential still yields an identity, a bad one is ignored); `authenticated`
//!    needs a valid credential — a bearer token, or with `[browser] enabled` the session
//!    cookie, which counts exactly like a token ([`super::credentials`]) — and, if the
//!    route lists roles, one of them (else 403 `insufficient_scope`). While the in-memory view is stale (SPEC §8: a remote store
//!    silent for longer than `store.max_stale`) `authenticated` is 503 `unavailable` and
//!    `public` passes anonymously.
//!
//! The proxy pipeline and `/auth/verify` both call [`decide()`], so forward-auth answers
//! exactly as proxying would. What was decided lands in a [`Verdict`] (also on refusal)
//! for the access line and `gatehouse_requests_total{decision}`.

use std::sync::Arc;

use http::HeaderMap;

use super::credentials::{authenticate_request, credential, Credential};
use crate::accounts::view::UserView;
use crate::accounts::{Accounts, Identity};
use crate::config::BrowserSettings;
use crate::error::{GatewayError, TokenRejection};
use crate::routing::{Access, RouteDecision};
use crate::telemetry::metrics::Decision;

/// What the decision found, for the access line and metrics: filled in whether the
/// request is allowed or refused.
pub struct Verdict {
    pub decision: Decision,
    pub user: Option<Arc<UserView>>,
    /// A bad token presented on a public route: the request passes anonymously, but the
    /// refusal is still counted in `gatehouse_token_rejections_total`.
    pub ignored_rejection: Option<TokenRejection>,
}

impl Default for Verdict {
    /// Nothing decided yet: a request refused before routing counts as `rejected`.
    fn default() -> Self {
        Verdict {
            decision: Decision::Rejected,
            user: None,
            ignored_rejection: None,
        }
    }
}

impl Verdict {
    /// Records a decision made outside [`decide()`] (forward-auth without a forwarded
    /// request, or refused before routing).
    pub fn decided(&mut self, decision: Decision, identity: Option<&Identity>) {
        self.decision = decision;
        self.user = identity.map(|identity| identity.user.clone());
    }
}

/// May pass: who is calling (if anyone) and which upstream it goes to.
pub struct Allowed {
    pub identity: Option<Identity>,
    /// Index into the upstream list.
    pub upstream: usize,
}

/// The credential part of the access decision, on the route table's answer `route`;
/// `browser` says whether (and by which name) the session cookie counts.
pub fn decide(
    accounts: &Accounts,
    browser: &BrowserSettings,
    route: &RouteDecision<'_>,
    headers: &HeaderMap,
    verdict: &mut Verdict,
) -> Result<Allowed, GatewayError> {
    let upstream = route.upstream;
    match route.access {
        Access::Deny => {
            verdict.decision = Decision::Denied;
            Err(GatewayError::Forbidden)
        }
        Access::Public => {
            verdict.decision = Decision::Public;
            // A valid token still yields identity headers; a bad one is ignored (but
            // counted). While the view is stale (SPEC §8) no identity can be vouched for:
            // the request is forwarded anonymously, as public routes stay served.
            let identity = match credential(headers, browser) {
                _ if accounts.stale() => None,
                Ok(Credential::Bearer(token)) => match accounts.authenticate(token) {
                    Ok(identity) => Some(identity),
                    Err(reason) => {
                        verdict.ignored_rejection = Some(reason);
                        None
                    }
                },
                // An invalid session cookie is a signed-out browser, not a bad token.
                Ok(Credential::Session(value)) => {
                    accounts.authenticate_session(value, browser).ok()
                }
                Err(GatewayError::InvalidToken(reason)) => {
                    verdict.ignored_rejection = Some(reason);
                    None
                }
                _ => None,
            };
            verdict.user = identity.as_ref().map(|i| i.user.clone());
            Ok(Allowed { identity, upstream })
        }
        Access::Authenticated => {
            verdict.decision = Decision::Unauthenticated;
            let identity = authenticate_request(accounts, browser, headers).inspect_err(|err| {
                if matches!(err, GatewayError::Unavailable) {
                    verdict.decision = Decision::Unavailable;
                }
            })?;
            verdict.user = Some(identity.user.clone());
            let roles = route.roles;
            if !roles.is_empty() && !identity.roles().iter().any(|r| roles.contains(r)) {
                verdict.decision = Decision::Denied;
                return Err(GatewayError::InsufficientScope);
            }
            verdict.decision = Decision::Authenticated;
            Ok(Allowed {
                identity: Some(identity),
                upstream,
            })
        }
    }
}
