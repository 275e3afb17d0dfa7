//! Real peers for gatehouse's published-key tokens (SPEC §9), and the one harness that
//! drives them: the interop tests (`tests/interop_*.rs`) and the key-pair attack tests.
//!
//! - **Python** (`target/interop/venv`): PyJWT (`PyJWKClient`), jwcrypto, cryptography and
//!   authlib (with requests), pinned in `tests/interop/requirements.txt`, driven through
//!   `tests/interop/peers.py` (verify as a relying party; export JWKS keys as PEM; forge
//!   hostile tokens) and `tests/interop/authlib_client.py` (an OAuth 2.0 client).
//! - **Node** (`target/interop/node`): npm `jose`, pinned by `tests/interop/package.json` and
//!   its `package-lock.json`, driven through `tests/interop/jose_peer.mjs`.
//! - **HAProxy** from Debian (`jwt_verify`): found on `PATH` or in `/usr/sbin`.
//!
//! Python and Node packages are installed by `tests/interop/install.sh` (also run by
//! `.ci/run`): the first test that needs them runs it once per test binary; it holds a
//! `flock` and keeps stamps, so concurrent test binaries install once and later runs cost
//! nothing. Without network access or HAProxy a test FAILS saying the one command to run;
//! nothing is skipped.
//!
//! Tokens reach the peers only through stdin pipes (never argv or a log). Every peer call
//! runs on the blocking pool, so an in-process upstream keeps answering meanwhile.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::accounts::PASSWORD;
use crate::common::binary::{cli_add_user, run, stop_gracefully, write_config, Gatehouse};
use crate::common::{EchoUpstream, DEADLINE, SECRET};

/// `tokens.issuer` of the interop gateways: a loopback public URL (SPEC §9 allows `http://`
/// only there), used byte for byte as `iss` and pinned by every peer. The gateway itself
/// listens on port 0 (the harness never guesses ports), so this is the URL clients would
/// know it by — as behind a port mapping — while the peers fetch the JWKS from the port the
/// process reported.
pub const ISSUER: &str = "http://127.0.0.1:8080";

/// `tokens.audience` of the interop gateways (not the default, so pinning it means something).
pub const AUDIENCE: &str = "https://api.interop.test";

/// The key-pair algorithms of SPEC §9.
pub const KEY_PAIR_ALGORITHMS: [&str; 3] = ["ES256", "EdDSA", "RS256"];

/// The source dir of the peer scripts and pins.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Where the installed peers live: `<target dir>/interop`.
pub fn install_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("interop")
}

/// The installed Python and Node peers; installed once per test binary.
pub struct Peers {
    dir: PathBuf,
}

/// The peers, installed if missing (see the module doc). Panics, with the command to run,
/// when the install fails.
pub fn peers() -> &'static Peers {
    static PEERS: OnceLock<Peers> = OnceLock::new();
    PEERS.get_or_init(|| {
        let dir = install_dir();
        let script = source_dir().join("install.sh");
        let output = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("run bash tests/interop/install.sh");
        assert!(
            output.status.success(),
            "the interop peers (PyJWT, jwcrypto, npm jose) are not installed and installing \
             them failed. Run `bash tests/interop/install.sh` (needs python3 with venv, npm, \
             and access to PyPI and the npm registry; .ci/run does this).\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Peers { dir }
    })
}

impl Peers {
    /// The venv's Python (PyJWT, jwcrypto, cryptography), for a test with its own script.
    pub fn python_bin(&self) -> PathBuf {
        self.dir.join("venv/bin/python")
    }

    /// `peers.py` with one JSON request; its JSON answer.
    pub async fn python(&self, request: serde_json::Value) -> serde_json::Value {
        let script = source_dir().join("peers.py");
        run_peer(Command::new(self.python_bin()).arg(script), request).await
    }

    /// Another script of `tests/interop/` (`name`) run by the venv's Python with one JSON
    /// request; its JSON answer.
    pub async fn python_script(&self, name: &str, request: serde_json::Value) -> serde_json::Value {
        let script = source_dir().join(name);
        run_peer(Command::new(self.python_bin()).arg(script), request).await
    }

    /// `jose_peer.mjs` with one JSON request; its JSON answer. The script is copied next to
    /// the installed `node_modules` (atomically: test binaries run at once) so that Node
    /// resolves `jose` from there.
    pub async fn jose(&self, request: serde_json::Value) -> serde_json::Value {
        let node_dir = self.dir.join("node");
        let script = node_dir.join("jose_peer.mjs");
        static STAGED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let number = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staged = node_dir.join(format!("jose_peer.mjs.{}.{number}", std::process::id()));
        std::fs::copy(source_dir().join("jose_peer.mjs"), &staged).expect("stage jose_peer.mjs");
        std::fs::rename(&staged, &script).expect("place jose_peer.mjs");
        run_peer(Command::new("node").arg(script), request).await
    }

    /// Runs an ES module (a verification snippet from the docs, exporting
    /// `identity(headers)`) next to the installed `jose`, on each of `headers_list`;
    /// the results in order (`{"ok", "identity"}` or `{"ok": false, "error"}`).
    pub async fn jose_module(
        &self,
        code: &str,
        headers_list: serde_json::Value,
    ) -> Vec<serde_json::Value> {
        static MODULES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let number = MODULES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("doc-snippet-{}-{number}.mjs", std::process::id());
        let path = self.dir.join("node").join(&name);
        std::fs::write(&path, code).expect("write snippet module");
        let answer = self
            .jose(
                serde_json::json!({ "module": format!("./{name}"), "headers_list": headers_list }),
            )
            .await;
        let _ = std::fs::remove_file(&path);
        results(&answer)
    }

    /// PyJWT, jwcrypto and npm jose, each verifying `tokens` as a relying party pinned to
    /// `pin` (`jwks_uri` or `secret`, `issuer`, `audience`, `typ`, `algorithms`). Returns
    /// `(peer name, results)` for each peer, results in token order.
    pub async fn verify_everywhere(
        &self,
        pin: &serde_json::Value,
        tokens: &[&str],
    ) -> Vec<(&'static str, Vec<serde_json::Value>)> {
        let mut out = Vec::new();
        for peer in ["pyjwt", "jwcrypto"] {
            let mut request = pin.clone();
            request["op"] = "verify".into();
            request["peer"] = peer.into();
            request["tokens"] = serde_json::json!(tokens);
            let answer = self.python(request).await;
            out.push((peer, results(&answer)));
        }
        let mut request = pin.clone();
        request["tokens"] = serde_json::json!(tokens);
        let answer = self.jose(request).await;
        out.push(("jose", results(&answer)));
        out
    }

    /// Hostile tokens of one `peers.py` forge category, as `(case name, token)`.
    pub async fn forge(
        &self,
        category: &str,
        alg: &str,
        key_file: &Path,
        genuine: &str,
        extra: serde_json::Value,
    ) -> Vec<(String, String)> {
        let mut request = serde_json::json!({
            "op": "forge",
            "category": category,
            "alg": alg,
            "key_file": key_file,
            "token": genuine,
        });
        if let serde_json::Value::Object(extra) = extra {
            for (name, value) in extra {
                request[name] = value;
            }
        }
        let answer = self.python(request).await;
        answer["tokens"]
            .as_array()
            .unwrap_or_else(|| panic!("forge {category}: {answer}"))
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().expect("case name").to_string(),
                    pair[1].as_str().expect("token").to_string(),
                )
            })
            .collect()
    }
}

fn results(answer: &serde_json::Value) -> Vec<serde_json::Value> {
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("peer answer without results: {answer}"))
        .clone()
}

async fn run_peer(command: &mut Command, request: serde_json::Value) -> serde_json::Value {
    use std::io::Write as _;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn peer");
    let mut stdin = child.stdin.take().expect("stdin");
    let output = tokio::task::spawn_blocking(move || {
        stdin
            .write_all(request.to_string().as_bytes())
            .expect("write peer request");
        drop(stdin);
        child.wait_with_output().expect("wait for peer")
    })
    .await
    .expect("join");
    assert!(
        output.status.success(),
        "peer failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "peer answered no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// `gatehouse keys generate --alg ALG --out DIR/NAME`; the key file and the kid it printed.
pub fn generate_key(dir: &Path, alg: &str, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = run(
        &[
            "keys",
            "generate",
            "--alg",
            alg,
            "--out",
            path.to_str().expect("utf-8 path"),
        ],
        "",
        |_| {},
    );
    assert_eq!(out.code, 0, "keys generate --alg {alg}: {out:?}");
    // An RFC 7638 SHA-256 thumbprint is 43 base64url characters.
    let kid = out
        .stdout
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .find(|word| word.len() == 43)
        .unwrap_or_else(|| panic!("keys generate printed no kid: {out:?}"))
        .to_string();
    (path, kid)
}

/// The `[tokens]` section (and `[[tokens.keys]]`) for `alg`: a key-pair algorithm with
/// `keys` as `(file, state)`, or an HS* one with the harness secret in `secret_file`.
pub fn tokens_config(alg: &str, keys: &[(&Path, &str)], secret_file: &Path) -> String {
    let mut text = format!(
        "[tokens]\nalgorithm = \"{alg}\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n"
    );
    if alg.starts_with("HS") {
        text.push_str(&format!("secret_file = \"{}\"\n", secret_file.display()));
    }
    for (file, state) in keys {
        text.push_str(&format!(
            "\n[[tokens.keys]]\nfile = \"{}\"\nstate = \"{state}\"\n",
            file.display()
        ));
    }
    text
}

/// The real binary with `tokens`, in front of `upstream`: listeners on port 0, store in
/// `dir/data`, low argon2 cost, a JSON log, then `extra` (where `{UPSTREAM}` becomes
/// `upstream`'s address).
pub fn gateway_config(dir: &Path, upstream: SocketAddr, tokens: &str, extra: &str) -> String {
    let extra = extra.replace("{UPSTREAM}", &upstream.to_string());
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
ops_listen = "127.0.0.1:0"
shutdown_grace = "2s"

[store]
path = "{data}"

{tokens}

[passwords]
memory_kib = 64
iterations = 1

[log]
format = "json"

[upstreams.default]
url = "http://{upstream}"
connect_timeout = "1s"
timeout = "5s"

{extra}
"#,
        data = dir.join("data").display()
    )
}

/// A running gateway signing with one active key (or the harness secret for HS*), its echo
/// upstream, and user `alice`'s access token from a real login.
pub struct Signed {
    pub gatehouse: Gatehouse,
    pub upstream: EchoUpstream,
    pub alg: &'static str,
    /// The active key file (key pairs) — the real private key, for forging tests.
    pub key_file: PathBuf,
    /// The active key's kid as `keys generate` printed it (key pairs).
    pub kid: String,
    pub token: String,
    pub dir: tempfile::TempDir,
}

impl Signed {
    /// Starts a gateway for `alg` with one active key (key pairs) and `extra` config.
    pub async fn start(alg: &'static str, extra: &str) -> Signed {
        let dir = tempfile::tempdir().expect("tempdir");
        let upstream = EchoUpstream::start().await;
        let secret = dir.path().join("secret");
        std::fs::write(&secret, format!("{SECRET}\n")).expect("secret");
        let (key_file, kid) = if alg.starts_with("HS") {
            (PathBuf::new(), String::new())
        } else {
            generate_key(dir.path(), alg, "active.pem")
        };
        let keys: Vec<(&Path, &str)> = if alg.starts_with("HS") {
            Vec::new()
        } else {
            vec![(key_file.as_path(), "active")]
        };
        let text = gateway_config(
            dir.path(),
            upstream.addr,
            &tokens_config(alg, &keys, &secret),
            extra,
        );
        let config = write_config(dir.path(), &text);
        cli_add_user(&config, "alice", &["reader"], PASSWORD);
        let gatehouse = Gatehouse::start(dir.path(), &config, &[]).await;
        let token = gatehouse.login_ok("alice", PASSWORD).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        Signed {
            gatehouse,
            upstream,
            alg,
            key_file,
            kid,
            token,
            dir,
        }
    }

    /// Where relying parties fetch the keys: the listener the process reported.
    pub fn jwks_uri(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.gatehouse.addr)
    }

    /// What a careful relying party pins for this gateway's access tokens.
    pub fn access_token_pin(&self) -> serde_json::Value {
        let mut pin = serde_json::json!({
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "algorithms": [self.alg],
            "typ": if self.alg.starts_with("HS") { "JWT" } else { "at+jwt" },
        });
        if self.alg.starts_with("HS") {
            pin["secret"] = SECRET.into();
        } else {
            pin["jwks_uri"] = self.jwks_uri().into();
        }
        pin
    }

    /// The active key's public key as SPKI PEM, exported from the published JWKS (by
    /// jwcrypto) as any verifier would get it, written to `dir/public.pem`.
    pub async fn public_pem_from_jwks(&self, dir: &Path) -> PathBuf {
        let answer = peers()
            .python(serde_json::json!({ "op": "pems", "jwks_uri": self.jwks_uri() }))
            .await;
        let pem = answer["pems"][&self.kid]
            .as_str()
            .unwrap_or_else(|| panic!("no PEM for kid {}: {answer}", self.kid));
        let path = dir.join("public.pem");
        std::fs::write(&path, pem).expect("write public.pem");
        path
    }

    /// The published JWK set.
    pub async fn jwks(&self) -> serde_json::Value {
        let response = self
            .gatehouse
            .request("GET", "/.well-known/jwks.json", &[], b"")
            .await;
        assert_eq!(response.status, 200, "GET /.well-known/jwks.json");
        response.json()
    }
}

/// The same token with one payload character changed (its signature no longer matches).
pub fn tampered(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let payload = &mut parts[1];
    let last = payload.pop().expect("payload");
    payload.push(if last == 'A' { 'B' } else { 'A' });
    parts.join(".")
}

/// A HAProxy config whose frontend (bound at `{LISTEN}`) lets a request through to
/// `upstream` only with a JWT in `source` (a sample fetch: `http_auth_bearer`,
/// `req.hdr(X-Gatehouse-Assertion)`) that `jwt_verify(alg, key)` accepts (`key`: a PEM
/// file, or the HS* secret), whose header `alg` and `typ` and claims `iss` ([`ISSUER`]) and
/// `aud` are the pinned ones and whose `exp` is in the future (as in benches/load/lib.sh);
/// the verified `sub` goes upstream as `X-Verified-Subject`. Anything else: 401.
pub fn haproxy_jwt_config(
    source: &str,
    alg: &str,
    key: &str,
    typ: &str,
    audience: &str,
    upstream: SocketAddr,
) -> String {
    format!(
        r#"
global
    log stderr format raw local0 info

defaults
    mode http
    log global
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend api
    bind {{LISTEN}}
    http-request set-var(txn.jwt) {source}
    http-request deny deny_status 401 unless {{ var(txn.jwt) -m found }}
    http-request deny deny_status 401 unless {{ var(txn.jwt),jwt_header_query('$.alg') -m str {alg} }}
    http-request deny deny_status 401 unless {{ var(txn.jwt),jwt_header_query('$.typ') -m str {typ} }}
    http-request deny deny_status 401 unless {{ var(txn.jwt),jwt_verify("{alg}","{key}") -m int 1 }}
    http-request deny deny_status 401 unless {{ var(txn.jwt),jwt_payload_query('$.iss') -m str {ISSUER} }}
    http-request deny deny_status 401 unless {{ var(txn.jwt),jwt_payload_query('$.aud') -m str {audience} }}
    http-request set-var(txn.exp) var(txn.jwt),jwt_payload_query('$.exp','int')
    http-request set-var(txn.now) date
    http-request deny deny_status 401 unless {{ var(txn.exp) -m found }}
    http-request deny deny_status 401 if {{ var(txn.exp),sub(txn.now) -m int le 0 }}
    http-request set-header X-Verified-Subject %[var(txn.jwt),jwt_payload_query('$.sub')]
    default_backend upstream

backend upstream
    server up {upstream}
"#
    )
}

/// HAProxy: on `PATH` or in the usual sbin dirs; a test FAILS without it.
pub fn find_haproxy() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "HAProxy is not installed, so the jwt_verify interop test cannot run. Install \
                 it with `apt-get update && apt-get install -y haproxy` (Debian/Ubuntu; .ci/run \
                 does this when it is missing)."
            )
        })
}

/// `haproxy -c -f CONFIG`: `Ok` or HAProxy's complaint.
pub fn haproxy_check(config: &Path) -> Result<(), String> {
    let output = Command::new(find_haproxy())
        .arg("-c")
        .arg("-f")
        .arg(config)
        .output()
        .expect("run haproxy -c");
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A HAProxy this test started in the foreground (`-db`); stopped when dropped.
pub struct Haproxy {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Haproxy {
    /// Writes `dir/haproxy.cfg` (`config` may use `{LISTEN}` for the frontend's bind
    /// address), checks it, starts HAProxy and waits until it listens.
    pub async fn start(dir: &Path, config: &str) -> Haproxy {
        let addr = crate::common::binary::third_party_listen_addr();
        Self::start_on(dir, addr, config).await
    }

    /// [`Self::start`] on an address the test reserved with
    /// [`crate::common::binary::third_party_listen_addr`] (e.g. to name it in a gateway's
    /// config before HAProxy's own config can be written).
    pub async fn start_on(dir: &Path, addr: SocketAddr, config: &str) -> Haproxy {
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config.replace("{LISTEN}", &addr.to_string()))
            .expect("write haproxy.cfg");
        if let Err(complaint) = haproxy_check(&path) {
            panic!("haproxy refused its config: {complaint}");
        }
        let log = dir.join("haproxy.log");
        let child = Command::new(find_haproxy())
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(&log).expect("haproxy log"),
            ))
            .stderr(Stdio::from(
                std::fs::File::options()
                    .append(true)
                    .open(&log)
                    .expect("haproxy log"),
            ))
            .spawn()
            .expect("start haproxy");
        let mut haproxy = Haproxy { child, addr, log };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return haproxy;
            }
            if let Ok(Some(status)) = haproxy.child.try_wait() {
                panic!("haproxy exited with {status}: {}", haproxy.log());
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen: {}",
                haproxy.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        stop_gracefully(&mut self.child);
    }
}
