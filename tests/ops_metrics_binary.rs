//! The operator's metrics on the REAL binary's `/metrics` (SPEC §6): the standard
//! `process_*` series with plausible values, `gatehouse_build_info`, config reloads by
//! result (SIGHUP and `gatehouse reload` alike) with the last success's time, upstream
//! errors by kind (a closed port, a silent upstream, one that hangs up) whose WARN lines
//! carry the request id, and the request duration histogram by access decision.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use common::binary::{binary_config, run_blocking, write_config, Gatehouse};
use common::{get, ClosedPort, EchoUpstream, DEADLINE};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;

/// `name{labels}` (labels as the exposition writes them) → value.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(ops: SocketAddr) -> BTreeMap<String, f64> {
    let (status, _, body) = get(ops, "/metrics", &[]).await.expect("scrape");
    assert_eq!(status, 200);
    parse(&String::from_utf8(body).expect("utf-8 metrics"))
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing from {samples:#?}"))
}

/// Polls `/metrics` until `series` has `want`; the last value otherwise.
async fn wait_for(ops: SocketAddr, series: &str, want: f64) -> f64 {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let value = scrape(ops).await.get(series).copied().unwrap_or(f64::NAN);
        if value == want || std::time::Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_series_and_build_info_are_exported_with_plausible_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &binary_config(dir.path(), ""));
    let before = now();
    let mut gatehouse = Gatehouse::start(dir.path(), &config, &[]).await;
    gatehouse.wait_ready().await;
    let samples = scrape(gatehouse.ops_addr).await;

    let started = sample(&samples, "process_start_time_seconds");
    // /proc/stat's boot time is whole seconds, the start is in clock ticks, and a busy
    // VM's clock may have been stepped since boot: a few seconds' slack.
    assert!(
        started >= before - 10.0 && started <= now() + 2.0,
        "start time {started} not near the spawn at {before}"
    );
    let open = sample(&samples, "process_open_fds");
    let max = sample(&samples, "process_max_fds");
    assert!(open >= 3.0 && max >= open, "open fds {open}, max {max}");
    let resident = sample(&samples, "process_resident_memory_bytes");
    assert!(
        resident > 1_000_000.0 && resident < 4e9,
        "resident memory {resident}"
    );
    assert!(sample(&samples, "process_virtual_memory_bytes") >= resident);
    let cpu = sample(&samples, "process_cpu_seconds_total");
    assert!((0.0..60.0).contains(&cpu), "cpu seconds {cpu}");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(
            &samples,
            &format!("gatehouse_build_info{{version=\"{version}\"}}")
        ),
        1.0
    );
    assert!(
        !samples
            .keys()
            .any(|series| series.starts_with("gatehouse_process_")),
        "process_* keep their standard names"
    );
    assert_eq!(gatehouse.terminate().await, Some(0));
}

/// `gatehouse -c CONFIG reload` on the blocking pool; its exit code.
async fn cli_reload(config: &Path) -> i32 {
    let config = config.to_str().expect("utf-8 path").to_string();
    run_blocking(vec!["-c".into(), config, "reload".into()])
        .await
        .code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_are_counted_by_result_for_sighup_and_the_reload_command() {
    const SUCCESS: &str = "gatehouse_config_reloads_total{result=\"success\"}";
    const FAILURE: &str = "gatehouse_config_reloads_total{result=\"failure\"}";
    const LAST_OK: &str = "gatehouse_config_last_reload_successful";
    const LAST_TIME: &str = "gatehouse_config_last_reload_success_timestamp_seconds";
    let dir = tempfile::tempdir().expect("tempdir");
    let good = binary_config(dir.path(), "");
    let config = write_config(dir.path(), &good);
    // The same gateway (same store, so the same admin socket) for `gatehouse reload` to
    // reach while the served file is broken: the command reads its own config first.
    let cli_config = dir.path().join("cli.toml");
    std::fs::write(&cli_config, &good).expect("write cli config");
    let before = now();
    let mut gatehouse = Gatehouse::start(dir.path(), &config, &[]).await;
    gatehouse.wait_ready().await;
    let ops = gatehouse.ops_addr;

    let samples = scrape(ops).await;
    assert_eq!(sample(&samples, SUCCESS), 0.0);
    assert_eq!(sample(&samples, FAILURE), 0.0);
    assert_eq!(sample(&samples, LAST_OK), 1.0, "the start's load succeeded");
    let loaded = sample(&samples, LAST_TIME);
    assert!(loaded >= before - 1.0 && loaded <= now() + 1.0, "{loaded}");

    gatehouse.signal("HUP");
    assert_eq!(
        wait_for(ops, SUCCESS, 1.0).await,
        1.0,
        "{}",
        gatehouse.log()
    );
    assert_eq!(cli_reload(&cli_config).await, 0);
    assert_eq!(wait_for(ops, SUCCESS, 2.0).await, 2.0);
    let samples = scrape(ops).await;
    let reloaded = sample(&samples, LAST_TIME);
    assert!(reloaded >= loaded && reloaded <= now() + 1.0, "{reloaded}");
    assert_eq!(sample(&samples, FAILURE), 0.0);

    std::fs::write(
        &config,
        good.replace("memory_kib = 64", "memory_kib = \"lots\""),
    )
    .expect("break config");
    gatehouse.signal("HUP");
    assert_eq!(
        wait_for(ops, FAILURE, 1.0).await,
        1.0,
        "{}",
        gatehouse.log()
    );
    assert_ne!(
        cli_reload(&cli_config).await,
        0,
        "the served file is broken"
    );
    assert_eq!(wait_for(ops, FAILURE, 2.0).await, 2.0);
    let samples = scrape(ops).await;
    assert_eq!(sample(&samples, SUCCESS), 2.0);
    assert_eq!(sample(&samples, LAST_OK), 0.0);
    assert_eq!(
        sample(&samples, LAST_TIME),
        reloaded,
        "a failure keeps the last success's time"
    );

    std::fs::write(&config, &good).expect("fix config");
    assert_eq!(cli_reload(&cli_config).await, 0);
    assert_eq!(wait_for(ops, SUCCESS, 3.0).await, 3.0);
    assert_eq!(sample(&scrape(ops).await, LAST_OK), 1.0);
    assert_eq!(gatehouse.terminate().await, Some(0));
}

/// An upstream that accepts connections and never answers (held until the test ends).
async fn silent_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// An upstream that reads a request head, then closes the connection without answering.
async fn hangup_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => head.extend_from_slice(&buffer[..read]),
                    }
                }
                drop(stream);
            });
        }
    });
    addr
}

/// The JSON log line whose message is `message`, for request `id`.
fn warn_line(log: &str, message: &str, id: &str) -> Option<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"] == message && line["request_id"] == id)
}

/// `GET path`: the status and the response's `X-Request-Id`.
async fn get_with_id(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, head, _) = get(addr, path, &[]).await.expect("answer");
    let id = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-request-id")
                .then(|| value.trim().to_string())
        })
        .expect("X-Request-Id on every response");
    (status, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_are_counted_by_kind_and_durations_by_decision() {
    let echo = EchoUpstream::start().await;
    let dead = ClosedPort::reserve();
    let silent = silent_upstream().await;
    let hangup = hangup_upstream().await;
    let extra = format!(
        r#"
[upstreams.dead]
url = "http://{dead}"
connect_timeout = "1s"

[upstreams.silent]
url = "http://{silent}"
timeout = "300ms"

[upstreams.hangup]
url = "http://{hangup}"

[[routes]]
path = "/pub/**"
access = "public"

[[routes]]
path = "/dead/**"
access = "public"
upstream = "dead"

[[routes]]
path = "/silent/**"
access = "public"
upstream = "silent"

[[routes]]
path = "/hangup/**"
access = "public"
upstream = "hangup"

[[routes]]
path = "/closed/**"
access = "deny"

[log]
format = "json"
"#,
        dead = dead.addr
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gatehouse = Gatehouse::serve(dir.path(), echo.addr, "", &extra, &[]).await;
    gatehouse.wait_ready().await;
    let addr = gatehouse.addr;

    let samples = scrape(gatehouse.ops_addr).await;
    for upstream in ["default", "dead", "silent", "hangup"] {
        for kind in ["connect", "timeout", "reset", "other"] {
            let series = format!(
                "gatehouse_upstream_errors_total{{upstream=\"{upstream}\",kind=\"{kind}\"}}"
            );
            assert_eq!(sample(&samples, &series), 0.0, "{series} starts at 0");
        }
    }

    assert_eq!(get_with_id(addr, "/pub/a").await.0, 200);
    assert_eq!(get_with_id(addr, "/pub/b").await.0, 200);
    let (status, connect_id) = get_with_id(addr, "/dead/x").await;
    assert_eq!(status, 502);
    let (status, _) = get_with_id(addr, "/silent/x").await;
    assert_eq!(status, 504);
    let (status, reset_id) = get_with_id(addr, "/hangup/x").await;
    assert_eq!(status, 502);
    assert_eq!(get_with_id(addr, "/closed/x").await.0, 403);
    assert_eq!(get_with_id(addr, "/private/x").await.0, 401);

    let samples = scrape(gatehouse.ops_addr).await;
    let errors = |upstream: &str, kind: &str| {
        sample(
            &samples,
            &format!("gatehouse_upstream_errors_total{{upstream=\"{upstream}\",kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(errors("dead", "connect"), 1.0);
    assert_eq!(errors("silent", "timeout"), 1.0);
    assert_eq!(errors("hangup", "reset"), 1.0);
    for (upstream, kind) in [
        ("default", "connect"),
        ("dead", "timeout"),
        ("silent", "connect"),
        ("hangup", "other"),
        ("hangup", "connect"),
    ] {
        assert_eq!(errors(upstream, kind), 0.0, "{upstream} {kind}");
    }

    // The histogram counts each request once, under the decision requests_total has.
    for (decision, count) in [("public", 5.0), ("denied", 1.0), ("unauthenticated", 1.0)] {
        let label = format!("{{decision=\"{decision}\"}}");
        assert_eq!(
            sample(
                &samples,
                &format!("gatehouse_request_duration_seconds_count{label}")
            ),
            count,
            "{decision}"
        );
        let by_status: f64 = samples
            .iter()
            .filter(|(series, _)| {
                series.starts_with("gatehouse_requests_total{")
                    && series.contains(&format!("decision=\"{decision}\""))
            })
            .map(|(_, value)| value)
            .sum();
        assert_eq!(by_status, count, "requests_total agrees for {decision}");
        assert_eq!(
            sample(
                &samples,
                &format!("gatehouse_request_duration_seconds_bucket{{le=\"+Inf\",decision=\"{decision}\"}}")
            ),
            count
        );
    }
    let public_seconds = sample(
        &samples,
        "gatehouse_request_duration_seconds_sum{decision=\"public\"}",
    );
    assert!(
        (0.3..DEADLINE.as_secs_f64()).contains(&public_seconds),
        "the 504 waited the silent upstream's 300ms: {public_seconds}"
    );

    // The upstream module's own WARN lines carry the request id and the kind.
    let logged = |message: &str, id: &str| {
        let log = gatehouse.log();
        warn_line(&log, message, id).is_some_and(|line| line["level"] == "WARN")
    };
    assert!(
        common::eventually(DEADLINE, || logged(
            "cannot connect to the upstream",
            &connect_id
        ))
        .await,
        "{}",
        gatehouse.log()
    );
    assert!(
        common::eventually(DEADLINE, || logged("upstream request failed", &reset_id)).await,
        "{}",
        gatehouse.log()
    );
    let log = gatehouse.log();
    let line = warn_line(&log, "upstream request failed", &reset_id).expect("logged");
    assert_eq!(line["kind"], "reset");
    assert_eq!(line["upstream"], "hangup");
    let line = warn_line(&log, "cannot connect to the upstream", &connect_id).expect("logged");
    assert_eq!(line["kind"], "connect");
    assert_eq!(line["upstream"], "dead");
    assert_eq!(gatehouse.terminate().await, Some(0));
}
