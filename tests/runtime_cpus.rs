//! The runtime `gatehouse serve` picks from the CPUs it may use: on one CPU (here: the
//! real binary started under `taskset -c N`, as a container pinned to one core runs it) a
//! single-threaded event loop that still logs in, proxies, reloads and drains; on more,
//! one worker thread per CPU. The choice is named in the "gatehouse serving" line.

mod common;

use std::path::Path;
use std::process::Command;

use common::binary::{binary, cli_add_user, write_config, Gatehouse};
use common::{bearer, config_text, EchoUpstream, SECRET};

/// A CPU this test process may run on: the first of its allowed list (`0-1`, `2,5`, …).
fn an_allowed_cpu() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list");
    list.trim()
        .split([',', '-'])
        .next()
        .and_then(|first| first.parse().ok())
        .unwrap_or_else(|| panic!("no CPU in {list:?}"))
}

/// The `runtime` field of the "gatehouse serving" line (the config logs JSON).
fn serving_runtime(log: &str) -> String {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"] == "gatehouse serving")
        .and_then(|line| line["runtime"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no runtime in the serving line; log:\n{log}"))
}

/// A gateway config in front of `upstream` that logs JSON, written to `dir/gateway.toml`
/// (written again for a SIGHUP reload).
fn write_gateway_config(dir: &Path, upstream: &EchoUpstream, extra: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("secret"), format!("{SECRET}\n")).expect("secret");
    let text = config_text(
        &upstream.addr.to_string(),
        dir,
        "",
        &format!("[log]\nformat = \"json\"\n\n{extra}"),
    );
    write_config(dir, &text)
}

/// `gatehouse -c CONFIG serve`, pinned to `cpu` by `taskset`.
fn pinned_serve(config: &Path, cpu: usize) -> Command {
    let mut taskset = Command::new("taskset");
    taskset.arg("-c").arg(cpu.to_string()).arg(binary());
    Gatehouse::command_through(taskset, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_cpu_the_single_threaded_loop_logs_in_proxies_reloads_and_drains() {
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_gateway_config(dir.path(), &upstream, "");
    cli_add_user(&config, "alice", &["staff"], "correct horse battery");
    let cpu = an_allowed_cpu();
    let mut gatehouse = Gatehouse::launch(
        pinned_serve(&config, cpu),
        config.clone(),
        dir.path().join("serve.log"),
    )
    .await;
    gatehouse.wait_ready().await;
    assert_eq!(serving_runtime(&gatehouse.log()), "single-threaded");

    // A login (argon2 on its own pool), then 32 proxied requests at once, each on its own
    // connection, with identity headers.
    let token = gatehouse.login_ok("alice", "correct horse battery").await["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let authorization = bearer(&token);
    let requests = (0..32).map(|i| {
        let gatehouse = &gatehouse;
        let authorization = authorization.clone();
        async move {
            gatehouse
                .request("GET", &format!("/app/{i}"), &[&authorization], b"")
                .await
                .status
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|status| *status == 200),
        "{statuses:?}\nlog:\n{}",
        gatehouse.log()
    );
    assert_eq!(upstream.count(), 32);
    assert_eq!(
        upstream.last().expect("forwarded").header("x-auth-user"),
        Some("alice")
    );
    assert_eq!(
        gatehouse.request("GET", "/app/x", &[], b"").await.status,
        401,
        "no token, no entry"
    );

    // SIGHUP: a new route denies /app/secret; the process keeps serving.
    let denying = write_gateway_config(
        dir.path(),
        &upstream,
        "[[routes]]\npath = \"/app/secret\"\naccess = \"deny\"\n",
    );
    assert_eq!(denying, config);
    gatehouse.signal("HUP");
    assert!(
        gatehouse.wait_for_log("configuration reloaded").await,
        "no reload; log:\n{}",
        gatehouse.log()
    );
    for (path, status) in [("/app/secret", 403), ("/app/open", 200)] {
        let answer = gatehouse.request("GET", path, &[&authorization], b"").await;
        assert_eq!(answer.status, status, "{path} after the reload");
    }

    // SIGTERM drains and exits 0.
    assert_eq!(
        gatehouse.terminate().await,
        Some(0),
        "log:\n{}",
        gatehouse.log()
    );
    assert!(gatehouse.log().contains("gatehouse stopped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_more_cpus_there_is_a_worker_thread_per_cpu() {
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_gateway_config(dir.path(), &upstream, "");
    let mut gatehouse = Gatehouse::start(dir.path(), &config, &[]).await;
    gatehouse.wait_ready().await;
    let cpus = std::thread::available_parallelism().expect("cpus").get();
    let expected = if cpus == 1 {
        "single-threaded".to_string()
    } else {
        format!("{cpus} worker threads")
    };
    assert_eq!(serving_runtime(&gatehouse.log()), expected);
    assert_eq!(
        gatehouse.terminate().await,
        Some(0),
        "log:\n{}",
        gatehouse.log()
    );
}
