//! The runtime `gatehouse serve` picks from the CPUs it may use: on one CPU (here: the
//! real binary started under `taskset -c N`, as a container pinned to one core runs it) a
//! single-threaded event loop that still logs in, proxies, reloads and drains; on more,
//! one worker thread per CPU. The choice is named in the "gatehouse serving" line.
//!
//! The heaps go with it (`memory::choose_heaps`): glibc's heaps are capped at one per
//! CPU (on one CPU every thread allocates from the main heap), unless the operator set
//! `MALLOC_ARENA_MAX`. Read from the process's memory map: each heap glibc adds to its
//! main one is a 64 MiB reservation aligned to 64 MiB.

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

/// The field `name` of the "gatehouse serving" line (the config logs JSON).
fn serving_field(log: &str, name: &str) -> String {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"] == "gatehouse serving")
        .and_then(|line| line[name].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no {name} in the serving line; log:\n{log}"))
}

/// glibc's size and alignment of the heaps it adds beside the main one (`HEAP_MAX_SIZE`
/// on 64-bit: twice the 32 MiB largest mmap threshold).
const ADDED_HEAP: u64 = 64 << 20;

/// How many heaps glibc has added beside its main one in process `pid`: runs of adjacent
/// anonymous mappings (the part in use, then the reserved rest) that start on a 64 MiB
/// boundary, in use first, and span exactly 64 MiB. Thread stacks and large blocks are
/// mapped on their own, at other sizes.
fn added_heaps(pid: u32) -> usize {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("/proc/PID/maps");
    // (start, end, permissions) of the anonymous mappings, in address order.
    let anonymous: Vec<(u64, u64, String)> = maps
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() == 5).then_some(())?;
            let (start, end) = fields[0].split_once('-')?;
            let start = u64::from_str_radix(start, 16).ok()?;
            let end = u64::from_str_radix(end, 16).ok()?;
            Some((start, end, fields[1].to_string()))
        })
        .collect();
    let mut heaps = 0;
    for (i, (start, end, permissions)) in anonymous.iter().enumerate() {
        if start % ADDED_HEAP != 0 || !permissions.starts_with("rw") {
            continue;
        }
        let mut span_end = *end;
        for (next_start, next_end, next_permissions) in &anonymous[i + 1..] {
            if *next_start != span_end || next_permissions != "---p" {
                break;
            }
            span_end = *next_end;
        }
        if span_end - start == ADDED_HEAP {
            heaps += 1;
        }
    }
    heaps
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

/// `command` with `heaps` as `MALLOC_ARENA_MAX` and no `GLIBC_TUNABLES` (`None`: neither,
/// whatever this test process has).
fn with_heaps(mut command: Command, heaps: Option<&str>) -> Command {
    command
        .env_remove("MALLOC_ARENA_MAX")
        .env_remove("GLIBC_TUNABLES");
    if let Some(heaps) = heaps {
        command.env("MALLOC_ARENA_MAX", heaps);
    }
    command
}

/// `gatehouse -c CONFIG serve`, pinned to `cpu` by `taskset`.
fn pinned_serve(config: &Path, cpu: usize) -> Command {
    let mut taskset = Command::new("taskset");
    taskset.arg("-c").arg(cpu.to_string()).arg(binary());
    Gatehouse::command_through(taskset, config)
}

/// An echo upstream and a ready gateway in front of it (JSON logs, user alice), started
/// by the command `serve` makes from the config's path. Dropping it stops the upstream
/// and removes the directory: keep it whole while the gateway runs.
struct Running {
    upstream: EchoUpstream,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    gatehouse: Gatehouse,
}

async fn start_with_alice(serve: impl FnOnce(&Path) -> Command) -> Running {
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_gateway_config(dir.path(), &upstream, "");
    cli_add_user(&config, "alice", &["staff"], "correct horse battery");
    let mut gatehouse =
        Gatehouse::launch(serve(&config), config.clone(), dir.path().join("serve.log")).await;
    gatehouse.wait_ready().await;
    Running {
        upstream,
        dir,
        config,
        gatehouse,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_cpu_the_single_threaded_loop_logs_in_proxies_reloads_and_drains() {
    let cpu = an_allowed_cpu();
    let Running {
        upstream,
        dir,
        config,
        mut gatehouse,
    } = start_with_alice(|config| with_heaps(pinned_serve(config, cpu), None)).await;
    assert_eq!(
        serving_field(&gatehouse.log(), "runtime"),
        "single-threaded"
    );
    assert_eq!(serving_field(&gatehouse.log(), "heaps"), "1");

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
    // The hashing pool's thread, the store's, the log writer's and the event loop have
    // all allocated by now, from the one heap.
    assert_eq!(added_heaps(gatehouse.pid()), 0, "heaps beside the main one");
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
async fn on_more_cpus_there_is_a_worker_thread_and_a_heap_per_cpu() {
    let mut running = start_with_alice(|config| with_heaps(Gatehouse::command(config), None)).await;
    let gatehouse = &mut running.gatehouse;
    let cpus = std::thread::available_parallelism().expect("cpus").get();
    let expected = if cpus == 1 {
        "single-threaded".to_string()
    } else {
        format!("{cpus} worker threads")
    };
    assert_eq!(serving_field(&gatehouse.log(), "runtime"), expected);
    assert_eq!(serving_field(&gatehouse.log(), "heaps"), cpus.to_string());
    // A login hashes on the blocking pool, and the workers serve it: more threads than
    // heaps have allocated now.
    gatehouse.login_ok("alice", "correct horse battery").await;
    let added = added_heaps(gatehouse.pid());
    assert!(
        added < cpus,
        "{added} heaps beside the main one on {cpus} CPUs"
    );
    assert_eq!(
        gatehouse.terminate().await,
        Some(0),
        "log:\n{}",
        gatehouse.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_cpu_the_operators_malloc_arena_max_is_left_alone() {
    let cpu = an_allowed_cpu();
    let mut running =
        start_with_alice(|config| with_heaps(pinned_serve(config, cpu), Some("4"))).await;
    let gatehouse = &mut running.gatehouse;
    assert_eq!(
        serving_field(&gatehouse.log(), "runtime"),
        "single-threaded"
    );
    assert_eq!(serving_field(&gatehouse.log(), "heaps"), "environment");
    // A login hashes on another thread, which glibc gives a heap of its own (up to 4).
    gatehouse.login_ok("alice", "correct horse battery").await;
    assert!(
        added_heaps(gatehouse.pid()) >= 1,
        "no heap beside the main one with MALLOC_ARENA_MAX=4"
    );
    assert_eq!(
        gatehouse.terminate().await,
        Some(0),
        "log:\n{}",
        gatehouse.log()
    );
}
