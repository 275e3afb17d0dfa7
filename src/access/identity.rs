//! Strip, then stamp (SPEC §3.2): the identity headers an upstream believes are removed
//! from every request, whatever the client wrote, before anything reads headers, and set
//! only from a verified identity. The assertion header (`assertion.header`, SPEC §9) is
//! stripped in the same pass, whether or not assertions are enabled; it is stamped by
//! [`super::assertion`].
//!
//! Threat model: an upstream framework may read `X-Auth-User` under another spelling —
//! any letter case (HTTP names are case-insensitive; hyper already lowercases them), or
//! with `_` for `-` (CGI/WSGI servers such as gunicorn or PHP map both to
//! `HTTP_X_AUTH_USER`). A header is stripped when its name folds to an identity name;
//! every repetition goes.

use http::{HeaderMap, HeaderName};

use crate::accounts::Identity;
use crate::config::HeaderSettings;
use crate::http::remove_where;

/// The identity header names, computed once per config load.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub user: HeaderName,
    pub subject: HeaderName,
    pub roles: HeaderName,
    /// Lowercase, `_` folded to `-`: the three identity headers and the assertion header.
    folded: [String; 4],
}

impl IdentityHeaders {
    /// The identity headers of `settings`, plus `assertion` (`assertion.header`) among
    /// the names stripped.
    pub fn new(settings: &HeaderSettings, assertion: &HeaderName) -> Self {
        let fold = |name: &HeaderName| name.as_str().replace('_', "-");
        IdentityHeaders {
            folded: [
                fold(&settings.user),
                fold(&settings.subject),
                fold(&settings.roles),
                fold(assertion),
            ],
            user: settings.user.clone(),
            subject: settings.subject.clone(),
            roles: settings.roles.clone(),
        }
    }

    /// True when an upstream could read `name` as one of the identity headers or as the
    /// assertion header.
    pub fn is_identity(&self, name: &HeaderName) -> bool {
        self.folded
            .iter()
            .any(|target| folds_to(name.as_str(), target))
    }

    /// Removes every header that could be read as an identity or assertion header.
    pub fn strip(&self, headers: &mut HeaderMap) {
        remove_where(headers, |name| self.is_identity(name));
    }

    /// Sets the identity headers from a verified identity (after [`Self::strip`]).
    pub fn stamp(&self, headers: &mut HeaderMap, identity: &Identity) {
        let values = identity.headers();
        if let Some(value) = &values.user {
            headers.insert(self.user.clone(), value.clone());
        }
        if let Some(value) = &values.subject {
            headers.insert(self.subject.clone(), value.clone());
        }
        if let Some(value) = &values.roles {
            headers.insert(self.roles.clone(), value.clone());
        }
    }
}

/// `name` (already lowercase) equals `target` once `_` is read as `-`.
fn folds_to(name: &str, target: &str) -> bool {
    name.len() == target.len()
        && name
            .bytes()
            .zip(target.bytes())
            .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers() -> IdentityHeaders {
        IdentityHeaders::new(
            &HeaderSettings {
                user: HeaderName::from_static("x-auth-user"),
                subject: HeaderName::from_static("x-auth-subject"),
                roles: HeaderName::from_static("x-auth-roles"),
                forward_authorization: false,
                trusted_proxies: Vec::new(),
            },
            &HeaderName::from_static("x-gatehouse-assertion"),
        )
    }

    #[test]
    fn every_spelling_and_repetition_is_stripped() {
        let mut map = HeaderMap::new();
        for name in [
            "x-auth-user",
            "x_auth_user",
            "x-auth_user",
            "x_auth-roles",
            "x-auth-subject",
            "x-gatehouse-assertion",
            "x_gatehouse_assertion",
            "X-Gatehouse-ASSERTION",
        ] {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_static("root"),
            );
        }
        map.append("x-auth-user", HeaderValue::from_static("again"));
        map.append("x-auth-username", HeaderValue::from_static("kept"));
        map.append("accept", HeaderValue::from_static("*/*"));
        headers().strip(&mut map);
        let mut left: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-auth-username"]);
    }
}
