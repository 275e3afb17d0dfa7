//! A throwaway PostgreSQL for the tests that need the PostgreSQL store: Debian's
//! `initdb` into a temp dir, `pg_ctl start` on a free loopback port with the unix socket
//! inside the temp dir (as the `postgres` user via `runuser` when the tests run as root,
//! since `initdb` refuses root), trust authentication, `fsync=off`. One database per test
//! ([`PgCluster::create_database`]) lets every test in a binary share one cluster
//! ([`PgCluster::shared`]); tests that kill, freeze or restart the server start their own.
//!
//! Cleanup: dropping a cluster stops it (`pg_ctl stop -m immediate`) and removes the dir.
//! A static shared cluster is never dropped, so every cluster also has a watchdog shell
//! process that stops it and removes the dir when the test process is gone (also after a
//! panic or a kill).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running (or stopped, frozen, killed) PostgreSQL cluster of its own.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    databases: AtomicU64,
    /// More server options (`-c ssl=on …`).
    extra: String,
}

/// The directory of Debian's PostgreSQL binaries (`/usr/lib/postgresql/<version>/bin`),
/// the newest version installed.
pub fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)")
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/<version>/bin/initdb")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A port nobody listens on right now (the OS picks it; PostgreSQL binds it a moment
/// later, and `start` retries with another port if it lost the race).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

impl PgCluster {
    /// One cluster for every test of this test binary (each test takes its own database).
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(PgCluster::start)
    }

    /// initdb + start; panics with the server log when it cannot.
    pub fn start() -> PgCluster {
        Self::start_inner(None)
    }

    /// [`Self::start`] with `ssl = on` and this certificate chain and key (PEM).
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> PgCluster {
        Self::start_inner(Some((cert_pem, key_pem)))
    }

    fn start_inner(tls: Option<(&str, &str)>) -> PgCluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-pg-")
            .tempdir()
            .expect("tempdir");
        let as_postgres = running_as_root();
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()));
        }
        let mut cluster = PgCluster {
            dir,
            bin,
            port: 0,
            as_postgres,
            databases: AtomicU64::new(0),
            extra: String::new(),
        };
        let data = cluster.data_dir();
        let mut initdb = cluster.command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .args(["--locale=C"]);
        run(&mut initdb);
        std::fs::create_dir_all(cluster.socket_dir()).expect("socket dir");
        if as_postgres {
            run(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(cluster.socket_dir()));
        }
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt as _;
            let dir = cluster.dir.path().join("tls");
            std::fs::create_dir_all(&dir).expect("tls dir");
            std::fs::write(dir.join("server.crt"), cert).expect("write cert");
            std::fs::write(dir.join("server.key"), key).expect("write key");
            std::fs::set_permissions(
                dir.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("key mode");
            if as_postgres {
                run(Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&dir));
            }
            cluster.extra = format!(
                "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                dir.join("server.crt").display(),
                dir.join("server.key").display()
            );
        }
        let mut attempts = 0;
        loop {
            cluster.port = free_port();
            if cluster.try_start() {
                break;
            }
            attempts += 1;
            assert!(attempts < 5, "PostgreSQL did not start:\n{}", cluster.log());
        }
        cluster.watchdog();
        cluster
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A PostgreSQL program, run as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn try_start(&self) -> bool {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=on \
             -c full_page_writes=off -c max_connections=300 -c shared_buffers=16MB {}",
            self.port,
            self.socket_dir().display(),
            self.extra
        );
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|status| status.success())
            .unwrap_or(false)
    }

    /// A shell that outlives nothing: when this test process is gone, it stops the
    /// server and removes the dir.
    fn watchdog(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- {} -D {} -m immediate stop",
                pg_ctl.display(),
                self.data_dir().display()
            )
        } else {
            format!(
                "{} -D {} -m immediate stop",
                pg_ctl.display(),
                self.data_dir().display()
            )
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             if [ -d {dir} ]; then {stop} >/dev/null 2>&1; rm -rf {dir}; fi",
            pid = std::process::id(),
            dir = self.dir.path().display(),
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// A URL for database `db` as the superuser (no password: trust authentication).
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A new empty database with a name unique to this process; its URL.
    pub fn create_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("gh_{}_{n}", std::process::id());
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url_for(&name)
    }

    /// Runs `query` with psql against database `db` (name, or a URL's last segment) and
    /// returns the unaligned, tuples-only output, trimmed; panics on an SQL error.
    pub fn sql(&self, db: &str, query: &str) -> String {
        let db = db.rsplit('/').next().unwrap_or(db);
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-d", db, "-c", query])
            .stdin(Stdio::null())
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {query:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `pg_ctl stop` (fast: sessions are disconnected).
    pub fn stop(&self) {
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "stop"]));
    }

    /// Starts the stopped (or killed) server again on the same port and data dir.
    pub fn restart(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.try_start() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not restart:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The postmaster's pid (first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// The postmaster and every process it started.
    fn processes(&self) -> Vec<u32> {
        let Some(postmaster) = self.postmaster_pid() else {
            return Vec::new();
        };
        let mut pids = vec![postmaster];
        pids.extend(children_of(postmaster));
        pids
    }

    fn signal(&self, signal: &str, pids: &[u32]) {
        if pids.is_empty() {
            return;
        }
        let mut kill = Command::new("kill");
        kill.arg(format!("-{signal}"));
        for pid in pids {
            kill.arg(pid.to_string());
        }
        let _ = kill.stdout(Stdio::null()).stderr(Stdio::null()).status();
    }

    /// SIGKILL to the postmaster and its children (a crashed machine: nothing is shut
    /// down cleanly); waits until they are gone. [`Self::restart`] brings it back.
    pub fn kill(&self) {
        let pids = self.processes();
        self.signal("KILL", &pids);
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids.iter().any(|pid| alive(*pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGSTOP to the postmaster and its children: connections stay open, nothing answers.
    pub fn freeze(&self) {
        // Stop the postmaster first so it starts no new child meanwhile.
        if let Some(postmaster) = self.postmaster_pid() {
            self.signal("STOP", &[postmaster]);
        }
        self.signal("STOP", &self.processes());
    }

    /// SIGCONT to everything [`Self::freeze`] stopped.
    pub fn thaw(&self) {
        self.signal("CONT", &self.processes());
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.thaw();
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn alive(pid: u32) -> bool {
    // A zombie is as good as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Every descendant of `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![parent];
    while let Some(current) = frontier.pop() {
        for (pid, ppid) in &parents {
            if *ppid == current && !found.contains(pid) {
                found.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    found
}

fn run(command: &mut Command) {
    let out = command.output().expect("command runs");
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
