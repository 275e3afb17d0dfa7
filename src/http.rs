//! Body type (an enum: an upstream's streamed body, or our own bytes) and response
//! builders shared by the proxy, the `/auth` endpoints and the ops listener, so every
//! response gatehouse writes itself is built the same way; header
//! names and header-map helpers more than one layer needs; [`Published`], a document
//! served as precomputed bytes with its strong `ETag` (the JWKS and discovery, SPEC §9).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;

/// The one response body type: an upstream's body streamed as it arrives, or a small body
/// of our own. An enum rather than a boxed trait object, so the proxied common case costs
/// neither an allocation nor a dynamic call per frame.
pub enum Body {
    /// Nothing.
    Empty,
    /// Bytes we already hold.
    Full(Full<Bytes>),
    /// An upstream's response body ([`UpstreamBody`]).
    Upstream(UpstreamBody),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Body::Empty => "Body::Empty",
            Body::Full(_) => "Body::Full",
            Body::Upstream(_) => "Body::Upstream",
        })
    }
}

impl From<UpstreamBody> for Body {
    fn from(body: UpstreamBody) -> Self {
        Body::Upstream(body)
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
            Body::Upstream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(full) => full.is_end_stream(),
            Body::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(full) => full.size_hint(),
            Body::Upstream(body) => body.size_hint(),
        }
    }
}

/// Where an upstream connection goes once a response body has been read to its end: the
/// proxy's pool, named by this trait so that [`Body`] (at the bottom of the layers) need
/// not know the proxy.
pub trait ConnectionPool: Send + Sync {
    /// Takes back a connection that is ready for its next request.
    fn put(&self, sender: SendRequest<Incoming>);
}

/// A connection to hand back to its pool once its response has been read.
pub struct GiveBack {
    sender: SendRequest<Incoming>,
    pool: Arc<dyn ConnectionPool>,
}

impl GiveBack {
    pub fn new(sender: SendRequest<Incoming>, pool: Arc<dyn ConnectionPool>) -> Self {
        GiveBack { sender, pool }
    }

    /// Returns the connection to its pool now.
    pub fn now(self) {
        self.pool.put(self.sender);
    }
}

/// An upstream response body. Read to its end, it returns its connection to the pool;
/// dropped before that (or failed), the connection closes with it.
pub struct UpstreamBody {
    inner: Incoming,
    give_back: Option<GiveBack>,
}

impl UpstreamBody {
    /// `inner`, returning `give_back`'s connection at its end (`None`: nothing to return,
    /// e.g. already returned, or a protocol switch that takes the connection for good).
    pub fn new(inner: Incoming, give_back: Option<GiveBack>) -> Self {
        UpstreamBody { inner, give_back }
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let finished = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            Poll::Ready(Some(Err(_))) => {
                self.give_back = None;
                false
            }
            Poll::Pending => false,
        };
        if finished {
            if let Some(give_back) = self.give_back.take() {
                give_back.now();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body from bytes we already hold.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Body::Full(Full::new(bytes.into()))
}

/// A body with nothing in it.
pub fn empty() -> Body {
    Body::Empty
}

/// Serializes a value that cannot fail to serialize (plain structs and `json!` values).
pub fn json_bytes(value: &impl serde::Serialize) -> Bytes {
    match serde_json::to_vec(value) {
        Ok(bytes) => Bytes::from(bytes),
        Err(_) => Bytes::from_static(b"{}"),
    }
}

/// A response with a body and its content type.
pub fn bytes_response(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    bytes_response(status, json_bytes(value), "application/json")
}

/// A response with no body.
pub fn empty_response(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    response
}

/// Forward-auth: the original request's method and URI (Traefik, Caddy style).
pub static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
pub static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
/// Forward-auth: the original request's method and URI (nginx ingress style).
pub static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
pub static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");

/// Removes every header whose name satisfies `doomed`, all values of it. Allocates only
/// when something is removed.
pub fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    let mut found: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        if doomed(name) {
            found.push(name.clone());
        }
    }
    for name in found {
        headers.remove(&name);
    }
}

/// A document served as bytes computed once (per key set, per start), never per request:
/// the body and its strong entity tag (RFC 9110 §8.8.3), the base64url SHA-256 of the
/// body in quotes, so equal bytes give the same tag on every replica and after every
/// restart, and any change to the bytes gives another tag.
#[derive(Debug, Clone)]
pub struct Published {
    pub body: Bytes,
    pub etag: HeaderValue,
}

impl Published {
    /// The JSON serialization of `value`, tagged.
    pub fn json(value: &impl serde::Serialize) -> Published {
        Published::bytes(json_bytes(value))
    }

    /// `body` as is, tagged.
    pub fn bytes(body: Bytes) -> Published {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(&body);
        let tag = format!(
            "\"{}\"",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        );
        // base64url and quotes are visible ASCII: always a valid header value.
        let etag =
            HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"-\""));
        Published { body, etag }
    }
}

/// A header map of static `(name, value)` pairs, repeated names appended (unit tests).
#[cfg(test)]
pub fn header_map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use hyper::body::Body as _;

    #[tokio::test]
    async fn an_empty_body_ends_at_once_with_an_exact_size_of_zero() {
        let body = empty();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        let collected = body.collect().await.expect("infallible").to_bytes();
        assert!(collected.is_empty());
    }

    #[tokio::test]
    async fn a_full_body_is_its_bytes_in_one_frame_then_the_end() {
        let mut body = full("{\"error\":\"x\"}");
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(13));
        let frame = body.frame().await.expect("a frame").expect("infallible");
        assert_eq!(
            frame.into_data().ok(),
            Some(Bytes::from_static(b"{\"error\":\"x\"}"))
        );
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_full_body_of_no_bytes_is_already_at_its_end() {
        let body = full(Bytes::new());
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }
}
