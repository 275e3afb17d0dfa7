//! Pins the hyper behaviour that parking relies on (listed in `super`'s docs, hyper 1.12.0):
//! hyper's HTTP/1 server connection is driven over an in-memory duplex through the same
//! calls the parking code makes — `serve_connection(..).with_upgrades()` with the server's
//! own settings, `graceful_shutdown` once the response body is dropped, `into_parts` — and
//! each relied-on behaviour is asserted. A hyper upgrade that changes one fails here.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::activity::{Activity, InFlight, TrackedBody};
use super::io::ConnIo;

const LIMIT: Duration = Duration::from_secs(5);

/// Answers every request with its path, tracking it the way the gateway's service does.
fn service(
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<TrackedBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<TrackedBody>, Infallible>> + Send,
> + Clone {
    service_fn(move |request: Request<Incoming>| {
        let in_flight = InFlight::start(&activity);
        activity
            .last_had_body
            .store(!request.body().is_end_stream(), Ordering::Relaxed);
        let path = request.uri().path().to_string();
        async move {
            let body = crate::http::full(path);
            Ok(Response::new(TrackedBody::new(body, in_flight)))
        }
    })
}

fn http1() -> hyper::server::conn::http1::Builder {
    crate::server::http1_builder(Duration::from_secs(10))
}

/// Reads from `client` until what arrived ends with `end`.
async fn read_until(client: &mut DuplexStream, end: &str) -> String {
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    while !got.ends_with(end.as_bytes()) {
        let read = tokio::time::timeout(LIMIT, client.read(&mut buffer))
            .await
            .expect("bytes in time")
            .expect("read");
        assert!(read > 0, "EOF after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn an_idle_http1_connection_asked_to_shut_down_lets_go_of_an_open_untouched_socket() {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let activity = Arc::new(Activity::new());
    let io = ConnIo::new(server, Bytes::new(), activity.keep_open.clone(), None);
    let mut connection = Box::new(
        http1()
            .serve_connection(TokioIo::new(io), service(activity.clone()))
            .with_upgrades(),
    );
    // One request, and the start of a second one in the same segment.
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HT")
        .await
        .expect("write");

    // Behaviour 3: hyper drops the response body once it has taken its last frame, while
    // the connection is still being polled (what `responded` and `in_flight` rely on).
    let done = std::future::poll_fn(|cx| {
        if let Poll::Ready(ended) = Pin::new(&mut *connection).poll(cx) {
            return Poll::Ready(Err(ended));
        }
        let served = activity.served.load(Ordering::Relaxed);
        if served && activity.idle_for().is_some() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    });
    let done = tokio::time::timeout(LIMIT, done).await.expect("answered");
    assert!(done.is_ok(), "the connection ended early: {done:?}");
    // Behaviour 4: a request without a body is end-of-stream.
    assert!(!activity.last_had_body.load(Ordering::Relaxed));
    assert!(activity.parkable());

    // Behaviour 1: what parking does next (`drive`, eager parking): hold back the socket's
    // shutdown and ask hyper to end the idle connection. It ends at once, Ok.
    activity.keep_open.store(true, Ordering::Release);
    Pin::new(&mut *connection).graceful_shutdown();
    let ended = tokio::time::timeout(LIMIT, Pin::new(&mut *connection))
        .await
        .expect("an idle connection ends at once");
    assert!(ended.is_ok(), "{ended:?}");

    // Behaviour 2: the socket comes back, with the bytes hyper read but did not parse.
    let parts = connection.into_parts().expect("not upgraded: parts");
    assert_eq!(&parts.read_buf[..], b"GET /b HT");
    let unread = Bytes::copy_from_slice(&parts.read_buf);
    let (mut server, replay, open) = parts.io.into_inner().into_parts();
    assert!(replay.is_empty());
    assert!(open.is_none());

    // Nothing was written after the response (no `Connection: close`, no second answer),
    // and the socket is open both ways: our next bytes are the next bytes the client sees.
    server.write_all(b"|still open").await.expect("write");
    let seen = read_until(&mut client, "|still open").await;
    assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{seen}");
    assert!(seen.ends_with("\r\n\r\n/a|still open"), "{seen}");
    assert_eq!(seen.matches("HTTP/1.1").count(), 1, "{seen}");
    assert!(
        !seen.to_ascii_lowercase().contains("connection: close"),
        "{seen}"
    );

    // Resuming as `serve` does: a fresh hyper connection with the unread bytes replayed
    // in front reads the split request whole.
    activity.keep_open.store(false, Ordering::Release);
    let io = ConnIo::new(server, unread, activity.keep_open.clone(), None);
    let mut connection = Box::new(
        http1()
            .serve_connection(TokioIo::new(io), service(activity.clone()))
            .with_upgrades(),
    );
    client
        .write_all(b"TP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let answered = tokio::select! {
        ended = Pin::new(&mut *connection) => panic!("the connection ended early: {ended:?}"),
        answered = read_until(&mut client, "\r\n\r\n/b") => answered,
    };
    assert!(answered.starts_with("HTTP/1.1 200 OK\r\n"), "{answered}");
}

#[tokio::test]
async fn a_request_with_a_body_is_not_end_of_stream() {
    let requests: [(&str, &[u8]); 2] = [
        (
            "/cl",
            b"POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "/te",
            b"POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
    ];
    for (path, request) in requests {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let activity = Arc::new(Activity::new());
        let io = ConnIo::new(server, Bytes::new(), activity.keep_open.clone(), None);
        let mut connection = Box::new(
            http1()
                .serve_connection(TokioIo::new(io), service(activity.clone()))
                .with_upgrades(),
        );
        client.write_all(request).await.expect("write");
        let end = format!("\r\n\r\n{path}");
        // hyper may close the connection over the body nobody read: either way is fine.
        tokio::select! {
            _ = Pin::new(&mut *connection) => {}
            _ = read_until(&mut client, &end) => {}
        }
        assert!(activity.served.load(Ordering::Relaxed), "{path}: served");
        assert!(activity.last_had_body.load(Ordering::Relaxed), "{path}");
        assert!(
            !activity.parkable(),
            "a body nobody read keeps it from parking"
        );
    }
}
