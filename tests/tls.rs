//! HTTPS on the main listener (SPEC §2 `tls_cert` / `tls_key`): rustls with ALPN h2 and
//! http/1.1, and certificate rotation without a restart (reload / SIGHUP): new
//! connections get the new certificate, open ones keep working, a broken file is refused
//! and the running certificate stays. Certificates are generated per test (rcgen) and
//! trusted by a rustls client whose root store holds exactly them.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use common::binary::Gatehouse;
use common::{TestGateway, DEADLINE};

const ROUTES: &str = r#"
[[routes]]
path = "/pub/**"
access = "public"
"#;

/// A throwaway self-signed certificate for `localhost` / 127.0.0.1.
struct Cert {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn new_cert() -> Cert {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("generate certificate");
    Cert {
        der: generated.cert.der().clone(),
        cert_pem: generated.cert.pem(),
        key_pem: generated.signing_key.serialize_pem(),
    }
}

/// The cert and key files, in their own directory.
struct CertFiles {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

impl CertFiles {
    fn new(initial: &Cert) -> CertFiles {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = CertFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            _dir: dir,
        };
        files.install(initial);
        files
    }

    /// Replaces both files, as a certificate renewal (certbot, cert-manager) does.
    fn install(&self, cert: &Cert) {
        std::fs::write(&self.cert, &cert.cert_pem).expect("write cert");
        std::fs::write(&self.key, &cert.key_pem).expect("write key");
    }

    fn server_keys(&self) -> String {
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            self.cert.display(),
            self.key.display()
        )
    }
}

fn client_config(roots: &[&CertificateDer<'static>], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the gateway")
}

/// The leaf certificate the server presented.
fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("server certificate")
        .clone()
        .into_owned()
}

fn alpn(stream: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

fn get_request(path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::builder()
        .uri(format!("https://localhost{path}"))
        .header("host", "localhost")
        .body(Empty::new())
        .expect("request")
}

/// An HTTP/1.1 connection over TLS: the sender, usable for several requests.
async fn http1(
    stream: TlsStream<TcpStream>,
) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http/1.1 handshake");
    tokio::spawn(connection);
    sender
}

async fn send1(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    path: &str,
) -> (u16, http::Version, String) {
    sender.ready().await.expect("connection ready");
    let response = sender
        .send_request(get_request(path))
        .await
        .expect("response");
    let (status, version) = (response.status().as_u16(), response.version());
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, version, String::from_utf8_lossy(&body).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_negotiates_h2_and_http11_and_both_reach_the_upstream_as_https() {
    let cert = new_cert();
    let files = CertFiles::new(&cert);
    let gateway = TestGateway::start_with(&files.server_keys(), ROUTES).await;

    // h2 by ALPN.
    let stream = connect(
        gateway.addr,
        client_config(&[&cert.der], &[b"h2", b"http/1.1"]),
    )
    .await;
    assert_eq!(alpn(&stream).as_deref(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let response = sender
        .send_request(get_request("/pub/over-h2"))
        .await
        .expect("h2 response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let received = gateway
        .upstream
        .last()
        .expect("upstream saw the h2 request");
    assert_eq!(received.target, "/pub/over-h2");
    assert_eq!(received.header("x-forwarded-proto"), Some("https"));

    // http/1.1 by ALPN.
    let stream = connect(gateway.addr, client_config(&[&cert.der], &[b"http/1.1"])).await;
    assert_eq!(alpn(&stream).as_deref(), Some(&b"http/1.1"[..]));
    let mut sender = http1(stream).await;
    let (status, version, _) = send1(&mut sender, "/pub/over-h1").await;
    assert_eq!((status, version), (200, http::Version::HTTP_11));
    let received = gateway
        .upstream
        .last()
        .expect("upstream saw the h1 request");
    assert_eq!(received.target, "/pub/over-h1");
    assert_eq!(received.header("x-forwarded-proto"), Some("https"));

    // No ALPN at all: HTTP/1.1.
    let stream = connect(gateway.addr, client_config(&[&cert.der], &[])).await;
    assert_eq!(alpn(&stream), None);
    let mut sender = http1(stream).await;
    assert_eq!(send1(&mut sender, "/pub/no-alpn").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tls_connection_is_parked_and_serves_its_next_requests() {
    let cert = new_cert();
    let files = CertFiles::new(&cert);
    let gateway = TestGateway::start_with(&files.server_keys(), ROUTES).await;
    let stream = connect(gateway.addr, client_config(&[&cert.der], &[b"http/1.1"])).await;
    let mut sender = http1(stream).await;
    // Parked right after the first response; back soon after, so parked again only after a
    // second with nothing in flight; then once more.
    for path in ["/pub/first", "/pub/soon-after", "/pub/after-quiet"] {
        let (status, _, body) = send1(&mut sender, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(gateway.upstream.last().expect("forwarded").target, path);
        gateway.wait_for_parked(1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_rotates_the_certificate_for_new_connections_and_keeps_open_ones() {
    let (old, new) = (new_cert(), new_cert());
    assert_ne!(old.der, new.der);
    let files = CertFiles::new(&old);
    let gateway = TestGateway::start_with(&files.server_keys(), ROUTES).await;
    let trust_both = client_config(&[&old.der, &new.der], &[b"http/1.1"]);

    let stream = connect(gateway.addr, trust_both.clone()).await;
    assert_eq!(presented(&stream), old.der);
    let mut open = http1(stream).await;
    assert_eq!(send1(&mut open, "/pub/before").await.0, 200);

    files.install(&new);
    gateway
        .rewrite_config(&files.server_keys(), ROUTES)
        .expect("reload with the rotated certificate");

    let stream = connect(gateway.addr, trust_both.clone()).await;
    assert_eq!(
        presented(&stream),
        new.der,
        "a new connection still got the old certificate"
    );
    let mut fresh = http1(stream).await;
    assert_eq!(send1(&mut fresh, "/pub/after").await.0, 200);
    // The connection accepted with the old certificate is still served.
    assert_eq!(send1(&mut open, "/pub/still-open").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_with_a_broken_certificate_keeps_the_running_one() {
    let cert = new_cert();
    let files = CertFiles::new(&cert);
    let gateway = TestGateway::start_with(&files.server_keys(), ROUTES).await;

    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\nbroken\n").expect("break cert");
    let refused = gateway
        .rewrite_config(&files.server_keys(), ROUTES)
        .expect_err("a broken certificate must be refused");
    assert!(
        refused.contains("server.tls_cert"),
        "the error names the key: {refused}"
    );

    let stream = connect(gateway.addr, client_config(&[&cert.der], &[b"http/1.1"])).await;
    assert_eq!(presented(&stream), cert.der);
    let mut sender = http1(stream).await;
    assert_eq!(send1(&mut sender, "/pub/x").await.0, 200);
}

/// Connects until the presented certificate is `want` (the reload is asynchronous to the
/// signal), within the deadline.
async fn wait_for_certificate(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    want: &CertificateDer<'static>,
) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if &presented(&connect(addr, config.clone()).await) == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rotates_the_certificate_of_the_running_binary() {
    let (old, new) = (new_cert(), new_cert());
    let files = CertFiles::new(&old);
    let upstream = common::EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gatehouse =
        Gatehouse::serve(dir.path(), upstream.addr, &files.server_keys(), ROUTES, &[]).await;
    gatehouse.wait_ready().await;
    let addr = gatehouse.addr;
    let trust_both = client_config(&[&old.der, &new.der], &[b"h2", b"http/1.1"]);

    let stream = connect(addr, trust_both.clone()).await;
    assert_eq!(presented(&stream), old.der);
    assert_eq!(alpn(&stream).as_deref(), Some(&b"h2"[..]));

    files.install(&new);
    gatehouse.signal("HUP");
    assert!(
        wait_for_certificate(addr, trust_both.clone(), &new.der).await,
        "the rotated certificate was never served; log:\n{}",
        gatehouse.log()
    );
    let mut sender = http1(connect(addr, client_config(&[&new.der], &[b"http/1.1"])).await).await;
    assert_eq!(send1(&mut sender, "/pub/rotated").await.0, 200);
    assert!(gatehouse.running());
}
