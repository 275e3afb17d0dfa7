//! A REAL nginx for the tests that put it in front of gatehouse (forward-auth, replicas
//! behind a load balancer): found on `PATH` or in the usual sbin dirs (a test FAILS
//! without it, it does not skip; `.ci/run` installs it), started in the foreground with
//! its prefix, logs and pid in a temp dir, stopped (TERM, then KILL) when dropped.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::binary::stop_gracefully;
use crate::common::DEADLINE;

/// A temp dir nginx's (possibly unprivileged) workers can enter.
pub fn nginx_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    dir
}

pub fn find_nginx() -> PathBuf {
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
pub struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    pub fn start(dir: &Path, config: &str) -> Nginx {
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

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub async fn wait_listening(&mut self, addr: SocketAddr) {
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
    /// TERM lets the master stop its workers; KILL only if it does not.
    fn drop(&mut self) {
        stop_gracefully(&mut self.child);
    }
}

/// A whole `nginx.conf`: one worker, its pid, logs and temp paths in `dir`, and `server`
/// (one or more `server { ... }` blocks) inside `http`.
pub fn nginx_conf(dir: &Path, server: &str) -> String {
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
{server}
}}
"#
    )
}
