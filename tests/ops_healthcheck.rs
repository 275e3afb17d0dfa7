//! `gatehouse healthcheck` (SPEC §1), the container HEALTHCHECK: exit 0 when the running
//! gateway's `/readyz` answers 200, 1 when nothing listens or the gateway is draining.

mod common;

use std::time::{Duration, Instant};

use common::binary::run_blocking;
use common::{ClosedPort, TestGateway, DEADLINE};

const ROUTES: &str = r#"
[[routes]]
path = "/slow/**"
access = "public"
"#;

async fn healthcheck(url: String) -> (i32, String) {
    let output = run_blocking(vec!["healthcheck".into(), "--url".into(), url]).await;
    (output.code, output.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_zero_against_a_running_gateway() {
    let gateway = TestGateway::start(ROUTES).await;
    let (code, stderr) = healthcheck(format!("http://{}/readyz", gateway.ops_addr)).await;
    assert_eq!(code, 0, "stderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_one_when_nothing_listens() {
    let nothing = ClosedPort::reserve();
    let url = format!("http://{}/readyz", nothing.addr);
    let (code, stderr) = healthcheck(url.clone()).await;
    assert_eq!(code, 1, "stderr: {stderr}");
    assert!(
        stderr.contains(&url),
        "stderr does not say what failed: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_one_while_the_gateway_drains() {
    let mut gateway = TestGateway::start_with(r#"shutdown_grace = "30s""#, ROUTES).await;
    let (addr, ops) = (gateway.addr, gateway.ops_addr);
    let url = format!("http://{ops}/readyz");
    assert_eq!(healthcheck(url.clone()).await.0, 0);

    // Keep the drain busy with a slow request, then stop the gateway.
    let slow = tokio::spawn(async move {
        common::raw(
            addr,
            b"GET /slow/3000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await
    });
    let upstream = gateway.upstream.clone();
    assert!(common::eventually(DEADLINE, || upstream.count() >= 1).await);

    let probe = async {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (code, stderr) = healthcheck(url.clone()).await;
            if code == 1 {
                return stderr;
            }
            assert!(
                Instant::now() < deadline,
                "healthcheck kept passing while draining"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    let ((), stderr) = tokio::join!(gateway.stop(), probe);
    assert!(
        stderr.contains("503"),
        "healthcheck should report the 503: {stderr}"
    );
    assert_eq!(
        slow.await.expect("join").status,
        200,
        "the in-flight request was cut"
    );
}
