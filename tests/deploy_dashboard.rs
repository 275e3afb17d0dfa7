//! `deploy/grafana-dashboard.json` is valid JSON in Grafana's dashboard shape, and every
//! metric its expressions name is one the REAL binary's `/metrics` exports (by the `# TYPE`
//! lines, with the sample suffixes of each type); every family the binary exports is
//! on the dashboard.

mod common;

use std::collections::BTreeSet;

use common::binary::{binary_config, write_config, Gatehouse};
use common::get;

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana-dashboard.json");

/// Every PromQL expression of the dashboard: panel targets and templating queries.
fn expressions(dashboard: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for panel in panels {
        let id = panel["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} repeated");
        let title = panel["title"].as_str().expect("panel title");
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            assert!(!expr.trim().is_empty(), "panel {title}: empty expr");
            out.push(expr.to_string());
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if let Some(definition) = variable["definition"].as_str() {
            out.push(definition.to_string());
        }
    }
    out
}

/// The metric names an expression uses: identifiers with gatehouse's prefix or `process_`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("gatehouse_") || word.starts_with("process_"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_expression_names_a_metric_the_gateway_exports() {
    let text = std::fs::read_to_string(DASHBOARD).expect("read the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(dashboard["title"], "gatehouse");
    assert!(dashboard["uid"].is_string() && dashboard["schemaVersion"].is_u64());
    let used: BTreeSet<String> = expressions(&dashboard)
        .iter()
        .flat_map(|expr| metric_names(expr))
        .collect();
    assert!(used.len() > 10, "{used:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &binary_config(dir.path(), ""));
    let mut gatehouse = Gatehouse::start(dir.path(), &config, &[]).await;
    gatehouse.wait_ready().await;
    let (status, _, body) = get(gatehouse.ops_addr, "/metrics", &[])
        .await
        .expect("scrape");
    assert_eq!(status, 200);
    let exposition = String::from_utf8(body).expect("utf-8");
    // family → the sample names it exports
    let mut families = std::collections::BTreeMap::<String, Vec<String>>::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        families.insert(
            name.to_string(),
            suffixes
                .iter()
                .map(|suffix| format!("{name}{suffix}"))
                .collect(),
        );
    }
    let exported: BTreeSet<&String> = families.values().flatten().collect();
    for name in &used {
        assert!(
            exported.contains(name),
            "the dashboard uses {name}, which /metrics does not export: {exported:?}"
        );
    }
    for (family, samples) in &families {
        assert!(
            samples.iter().any(|sample| used.contains(sample)),
            "{family} is exported but on no panel"
        );
    }
    assert_eq!(gatehouse.terminate().await, Some(0));
}
