//! Forward-auth with a REAL nginx (SPEC §4 `/auth/verify`): nginx `auth_request` asks
//! gatehouse about each request (passing `X-Forwarded-Method` / `X-Forwarded-Uri`, honoured
//! because nginx's address is in `trusted_proxies`), copies the identity headers from the
//! answer with `auth_request_set`, and proxies to the echo upstream. The nginx config is
//! the one the README shows, with addresses filled in.
//!
//! nginx must be installed (`apt-get install -y nginx`; `.ci/run` does it). Without it
//! this test FAILS, it does not skip: a forward-auth contract nobody ran is not verified.

mod common;
mod ops_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestGateway;
use ops_support::{free_addr, get, send_signal, DEADLINE};

const GATEWAY_CONFIG: &str = r#"
[headers]
trusted_proxies = ["127.0.0.1/32"]

[[routes]]
path = "/public/**"
access = "public"

[[routes]]
path = "/admin/**"
roles = ["admin"]
"#;

/// nginx in front of `upstream`, asking `gatehouse` before each request.
fn nginx_config(
    dir: &Path,
    listen: SocketAddr,
    gatehouse: SocketAddr,
    upstream: SocketAddr,
) -> String {
    let dir = dir.display();
    format!(
        r#"
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    server {{
        listen {listen};

        location = /_gatehouse_verify {{
            internal;
            proxy_pass http://{gatehouse}/auth/verify;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-Method $request_method;
            proxy_set_header X-Forwarded-Uri $request_uri;
        }}

        location / {{
            auth_request /_gatehouse_verify;
            auth_request_set $auth_user $upstream_http_x_auth_user;
            auth_request_set $auth_subject $upstream_http_x_auth_subject;
            auth_request_set $auth_roles $upstream_http_x_auth_roles;
            proxy_set_header X-Auth-User $auth_user;
            proxy_set_header X-Auth-Subject $auth_subject;
            proxy_set_header X-Auth-Roles $auth_roles;
            proxy_http_version 1.1;
            proxy_pass http://{upstream};
        }}
    }}
}}
"#
    )
}

fn find_nginx() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx is not installed, so the forward-auth integration test cannot run. \
                 Install it with `apt-get update && apt-get install -y nginx` (Debian/Ubuntu; \
                 .ci/run does this when nginx is missing)."
            )
        })
}

/// The nginx master this test started; stopped (TERM, then KILL) when dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, config: &str) -> Nginx {
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config).expect("write nginx.conf");
        let child = Command::new(find_nginx())
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&config_path)
            .arg("-g")
            .arg("daemon off;")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        Nginx {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    async fn wait_listening(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "nginx exited with {status}; error.log:\n{}",
                    self.error_log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen; error.log:\n{}",
                self.error_log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // TERM lets the master stop its workers; KILL only if it does not.
            send_signal(self.child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_lets_gatehouse_decide_and_copies_the_identity_upstream() {
    let gateway = TestGateway::start(GATEWAY_CONFIG).await;
    let upstream = gateway.upstream.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    // nginx workers may run as an unprivileged user: let them reach their temp paths.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let listen = free_addr();
    let mut nginx = Nginx::start(
        dir.path(),
        &nginx_config(dir.path(), listen, gateway.addr, upstream.addr),
    );
    nginx.wait_listening(listen).await;

    let alice = gateway.user("alice", &["staff"]).await;
    let root = gateway.user("root", &["admin"]).await;
    let as_alice = format!("Authorization: Bearer {}", alice.token);
    let as_root = format!("Authorization: Bearer {}", root.token);

    // No token: nginx answers 401 from gatehouse's verdict; the upstream is never asked.
    let before = upstream.count();
    let (status, _, _) = get(listen, "/app/data", &[]).await.expect("nginx answers");
    assert_eq!(status, 401, "nginx error.log:\n{}", nginx.error_log());
    assert_eq!(
        upstream.count(),
        before,
        "an unauthenticated request reached the upstream"
    );

    // A bad token: 401 too.
    let (status, _, _) = get(listen, "/app/data", &["Authorization: Bearer not.a.token"])
        .await
        .expect("answer");
    assert_eq!(status, 401);
    assert_eq!(upstream.count(), before);

    // Valid token: 200, and the upstream saw the identity gatehouse established, not the
    // one the client tried to forge.
    let (status, _, _) = get(
        listen,
        "/app/data?page=2",
        &[&as_alice, "X-Auth-User: mallory"],
    )
    .await
    .expect("answer");
    assert_eq!(status, 200, "nginx error.log:\n{}", nginx.error_log());
    let seen = upstream.last().expect("the upstream got the request");
    assert_eq!(seen.target, "/app/data?page=2");
    assert_eq!(seen.all("x-auth-user"), vec!["alice"]);
    assert_eq!(seen.header("x-auth-roles"), Some("staff"));
    assert_eq!(seen.header("x-auth-subject"), Some(alice.sub.as_str()));

    // Role-protected path with the wrong role: 403, never forwarded.
    let before = upstream.count();
    let (status, _, _) = get(listen, "/admin/panel", &[&as_alice])
        .await
        .expect("answer");
    assert_eq!(status, 403);
    assert_eq!(
        upstream.count(),
        before,
        "a request without the role reached the upstream"
    );
    // …and with the role: 200. The route rules saw nginx's original URI.
    let (status, _, _) = get(listen, "/admin/panel", &[&as_root])
        .await
        .expect("answer");
    assert_eq!(status, 200);
    assert_eq!(
        upstream.last().expect("forwarded").header("x-auth-user"),
        Some("root")
    );

    // Public path without a token: forwarded, and a forged identity header is not.
    let (status, _, _) = get(listen, "/public/page", &["X-Auth-User: mallory"])
        .await
        .expect("answer");
    assert_eq!(status, 200);
    let seen = upstream.last().expect("forwarded");
    assert_eq!(seen.target, "/public/page");
    assert!(
        seen.all("x-auth-user").is_empty(),
        "forged identity forwarded: {:?}",
        seen.headers
    );
}
