//! The compose files under deploy/ (issue 16), checked since no Docker daemon runs them
//! here: every file parses; every secret, volume and `depends_on` a service names is
//! defined; every relative bind mount exists in the repository, and every secret file
//! either exists or is one the header tells the user to create (`> FILE`); each service
//! that runs gatehouse uses the `gatehouse:<crate version>` image, stops with a
//! `stop_grace_period` longer than its `shutdown_grace`, publishes only its `listen` and
//! `ops_listen` ports (the latter on 127.0.0.1 only), reaches an upstream that is a
//! service of the same file, and its mounted gateway.toml passes the real binary's
//! `check-config` with the files the container would see (secrets, binds and volumes laid
//! out under a temporary root); and every executable a service's entrypoint names is
//! copied into the runtime image by the Dockerfile.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlLoader};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The image's default config (Dockerfile), used when a service mounts none.
const IMAGE_CONFIG: &str = "deploy/gateway.container.toml";
const CONFIG_TARGET: &str = "/etc/gatehouse/gateway.toml";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every compose file under deploy/ (any depth): `*.yaml`/`*.yml` holding `services:` at
/// the top level (the Kubernetes manifests do not).
fn compose_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read deploy/").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
                && load(&path)
                    .first()
                    .is_some_and(|doc| doc["services"].as_hash().is_some())
            {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&repo().join("deploy"), &mut found);
    found.sort();
    found
}

fn load(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).expect("read yaml");
    YamlLoader::load_from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Resolves YAML merge keys (`<<: *anchor`), which yaml-rust2 leaves as a plain key:
/// the mapping's own keys win over the merged ones.
fn merged(value: &Yaml) -> Yaml {
    match value {
        Yaml::Hash(map) => {
            let mut out = Hash::new();
            let merge_key = Yaml::String("<<".to_string());
            if let Some(base) = map.get(&merge_key) {
                if let Yaml::Hash(base) = merged(base) {
                    out.extend(base);
                }
            }
            for (key, value) in map {
                if key != &merge_key {
                    out.insert(key.clone(), merged(value));
                }
            }
            Yaml::Hash(out)
        }
        Yaml::Array(items) => Yaml::Array(items.iter().map(merged).collect()),
        other => other.clone(),
    }
}

fn text<'a>(value: &'a Yaml, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {value:?}"))
}

fn list(value: &Yaml) -> &[Yaml] {
    value.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

fn keys(value: &Yaml) -> BTreeSet<String> {
    value
        .as_hash()
        .map(|map| {
            map.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A list of strings, or the keys of a mapping (`depends_on`, `secrets` short and long forms).
fn names(value: &Yaml, what: &str) -> Vec<String> {
    if value.as_hash().is_some() {
        return keys(value).into_iter().collect();
    }
    list(value)
        .iter()
        .map(|item| match item.as_str() {
            Some(name) => name.to_string(),
            None => text(&item["source"], what).to_string(),
        })
        .collect()
}

/// A command or entrypoint, exec form or shell-less string form.
fn argv(value: &Yaml) -> Vec<String> {
    match value.as_str() {
        Some(line) => line.split_whitespace().map(String::from).collect(),
        None => list(value)
            .iter()
            .map(|arg| text(arg, "command").to_string())
            .collect(),
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("{addr}: no port"))
}

/// A short-syntax volume: `(source, target)`.
fn volume(entry: &Yaml) -> (String, String) {
    if let Some(short) = entry.as_str() {
        let mut parts = short.split(':');
        let source = parts.next().unwrap_or_default().to_string();
        let target = parts
            .next()
            .unwrap_or_else(|| panic!("volume {short}: no target"));
        return (source, target.to_string());
    }
    (
        text(&entry["source"], "volume source").to_string(),
        text(&entry["target"], "volume target").to_string(),
    )
}

/// A published port: `(host ip, container port)`.
fn published(entry: &Yaml) -> (Option<String>, u16) {
    let short = match entry {
        Yaml::Integer(port) => return (None, u16::try_from(*port).expect("port")),
        other => text(other, "ports"),
    };
    let parts: Vec<&str> = short.split(':').collect();
    let container = parts
        .last()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("port {short}: no container port"));
    let ip = (parts.len() == 3).then(|| parts[0].to_string());
    (ip, container)
}

/// The executables the runtime stage of the Dockerfile copies in (`COPY ... /usr/local/bin/X`).
fn image_executables() -> BTreeSet<String> {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let runtime = dockerfile
        .split("AS runtime")
        .nth(1)
        .expect("a runtime stage");
    runtime
        .lines()
        .filter(|line| line.starts_with("COPY "))
        .filter_map(|line| line.split_whitespace().last())
        .filter_map(|dest| dest.strip_prefix("/usr/local/bin/"))
        .map(String::from)
        .collect()
}

/// Whether the header (the leading comment block) tells the user to create `file`.
fn header_creates(header: &str, file: &str) -> bool {
    let name = file.trim_start_matches("./");
    header.contains(&format!("> {name} ")) || header.contains(&format!("> {name}\n"))
}

/// What the test writes for a secret file the user creates: a store URL or a secret.
fn secret_content(name: &str) -> String {
    if name.contains("url") {
        "postgres://gatehouse:not-a-real-password@db:5432/gatehouse\n".to_string()
    } else {
        "a-test-signing-secret-of-well-over-32-bytes-0123456789\n".to_string()
    }
}

fn check_file(path: &Path) {
    let shown = path
        .strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string();
    let dir = path.parent().expect("compose dir");
    let raw = std::fs::read_to_string(path).expect("read compose file");
    let header: String = raw
        .lines()
        .take_while(|line| line.starts_with('#') || line.trim().is_empty())
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(
        header.contains("docker compose"),
        "{shown}: the header says how to run it"
    );
    let docs = load(path);
    assert_eq!(docs.len(), 1, "{shown}: one document");
    let doc = merged(&docs[0]);

    let services = keys(&doc["services"]);
    let volumes = keys(&doc["volumes"]);
    let secrets = keys(&doc["secrets"]);
    for name in &secrets {
        let file = text(&doc["secrets"][name.as_str()]["file"], "secrets.file");
        assert!(
            dir.join(file).exists() || header_creates(&header, file),
            "{shown}: secret {name}'s file {file} neither exists nor is created by the header"
        );
    }
    let executables = image_executables();
    let mut gateways = 0;

    for name in &services {
        let service = &doc["services"][name.as_str()];
        for needed in names(&service["depends_on"], "depends_on") {
            assert!(
                services.contains(&needed),
                "{shown}: {name} depends on {needed}, no such service"
            );
        }
        for secret in names(&service["secrets"], "secrets") {
            assert!(
                secrets.contains(&secret),
                "{shown}: {name} uses secret {secret}, not defined"
            );
        }
        let mounts: Vec<(String, String)> = list(&service["volumes"]).iter().map(volume).collect();
        for (source, target) in &mounts {
            if source.starts_with('.') || source.starts_with('/') {
                assert!(
                    dir.join(source).exists(),
                    "{shown}: {name} mounts {source}, missing from the repository"
                );
            } else {
                assert!(
                    volumes.contains(source),
                    "{shown}: {name} mounts volume {source}, not defined"
                );
            }
            assert!(target.starts_with('/'), "{shown}: {name}: target {target}");
        }

        let image = service["image"].as_str().unwrap_or_default();
        if !image.starts_with("gatehouse:") {
            assert!(
                service["build"].is_badvalue(),
                "{shown}: {name} builds something that is not tagged gatehouse"
            );
            continue;
        }
        assert_eq!(
            image,
            format!("gatehouse:{VERSION}"),
            "{shown}: {name}: the image tag is not the crate version"
        );
        let entrypoint = argv(&service["entrypoint"]);
        if let Some(program) = entrypoint.first() {
            assert!(
                executables.contains(program),
                "{shown}: {name} runs {program}, which the Dockerfile does not copy \
                 into /usr/local/bin (it copies {executables:?})"
            );
            if program != "gatehouse" {
                if program == "gatehouse-echo" {
                    // examples/echo.rs's flag; the listener must be reachable from other
                    // containers.
                    let command = argv(&service["command"]);
                    let at = command.iter().position(|a| a == "--listen");
                    let addr = at.and_then(|i| command.get(i + 1));
                    assert!(
                        addr.is_some_and(|a| a.starts_with("0.0.0.0:")),
                        "{shown}: {name}: gatehouse-echo needs --listen 0.0.0.0:PORT, got {command:?}"
                    );
                }
                continue;
            }
        }
        gateways += 1;
        check_gateway(&shown, dir, &doc, name, service, &mounts);
    }
    assert!(gateways > 0, "{shown}: no service runs gatehouse");
}

/// One service running `gatehouse serve`: its config against the file.
fn check_gateway(
    shown: &str,
    dir: &Path,
    doc: &Yaml,
    name: &str,
    service: &Yaml,
    mounts: &[(String, String)],
) {
    let config_source = mounts
        .iter()
        .find(|(_, target)| target == CONFIG_TARGET)
        .map(|(source, _)| dir.join(source))
        .unwrap_or_else(|| repo().join(IMAGE_CONFIG));
    let original = std::fs::read_to_string(&config_source)
        .unwrap_or_else(|err| panic!("{}: {err}", config_source.display()));
    let config: toml::Table = original.parse().expect("gateway.toml is TOML");
    let server = config.get("server").and_then(|s| s.as_table());
    let setting = |key: &str, default: &str| -> String {
        server
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or(default)
            .to_string()
    };
    let listen = port_of(&setting("listen", "127.0.0.1:8080"));
    let ops = port_of(&setting("ops_listen", "127.0.0.1:9091"));

    // Published ports: the gateway's listener, and ops only privately.
    for entry in list(&service["ports"]) {
        let (ip, port) = published(entry);
        assert!(
            port == listen || port == ops,
            "{shown}: {name} publishes {port}, neither listen ({listen}) nor ops_listen ({ops})"
        );
        if port == ops {
            assert_eq!(
                ip.as_deref(),
                Some("127.0.0.1"),
                "{shown}: {name} publishes ops_listen beyond 127.0.0.1"
            );
        }
    }

    // The drain ends before compose's SIGKILL.
    let grace =
        humantime::parse_duration(&setting("shutdown_grace", "30s")).expect("shutdown_grace");
    let stop = humantime::parse_duration(text(
        &service["stop_grace_period"],
        &format!("{shown}: {name}: stop_grace_period (compose's default is 10s)"),
    ))
    .expect("stop_grace_period");
    assert!(
        stop > grace,
        "{shown}: {name}: stop_grace_period {stop:?} <= shutdown_grace {grace:?}"
    );

    // Every upstream is a service of this file.
    let services = keys(&doc["services"]);
    if let Some(upstreams) = config.get("upstreams").and_then(|u| u.as_table()) {
        for (upstream, table) in upstreams {
            let url = table
                .get("url")
                .and_then(|u| u.as_str())
                .expect("upstream url");
            let authority = url.split("://").nth(1).unwrap_or(url);
            let host = authority.split(['/', ':']).next().unwrap_or_default();
            assert!(
                services.contains(host),
                "{shown}: upstream {upstream} ({url}) is not a service of the file"
            );
            let target = &doc["services"][host];
            let command = argv(&target["command"]);
            if let Some(at) = command.iter().position(|a| a == "--listen") {
                let port = authority
                    .split('/')
                    .next()
                    .map(port_of)
                    .expect("upstream port");
                assert_eq!(
                    command.get(at + 1).map(|a| port_of(a)),
                    Some(port),
                    "{shown}: upstream {upstream} ({url}) is not where {host} listens"
                );
            }
        }
    }

    // check-config with the files the container would see, under a temporary root.
    let root = tempfile::tempdir().expect("tempdir");
    let inside = |at: &str| root.path().join(at.trim_start_matches('/'));
    let mut rewrites: Vec<(String, PathBuf)> = Vec::new();
    std::fs::create_dir_all(inside("/run/secrets")).expect("secrets dir");
    for secret in names(&service["secrets"], "secrets") {
        let file = text(&doc["secrets"][secret.as_str()]["file"], "secrets.file");
        let content =
            std::fs::read_to_string(dir.join(file)).unwrap_or_else(|_| secret_content(&secret));
        std::fs::write(inside(&format!("/run/secrets/{secret}")), content).expect("secret");
    }
    rewrites.push(("/run/secrets".to_string(), inside("/run/secrets")));
    for (source, target) in mounts {
        if target == CONFIG_TARGET {
            continue;
        }
        if source.starts_with('.') || source.starts_with('/') {
            let from = dir.join(source);
            if from.is_file() {
                std::fs::create_dir_all(inside(target).parent().expect("parent")).expect("dir");
                std::fs::copy(&from, inside(target)).expect("copy bind mount");
            } else {
                std::fs::create_dir_all(inside(target)).expect("dir");
            }
        } else {
            std::fs::create_dir_all(inside(target)).expect("volume dir");
        }
        rewrites.push((target.clone(), inside(target)));
    }
    if !mounts.iter().any(|(_, target)| target == "/data") {
        // The image declares VOLUME /data: without a named one, Docker makes an anonymous one.
        std::fs::create_dir_all(inside("/data")).expect("data dir");
        rewrites.push(("/data".to_string(), inside("/data")));
    }
    let mut rewritten = original.clone();
    for (at, to) in &rewrites {
        rewritten = rewritten.replace(&format!("\"{at}"), &format!("\"{}", to.display()));
    }
    assert!(
        !rewritten.contains("\"/run/") && !rewritten.contains("\"/data\""),
        "{shown}: {name}: a path in the config is not mounted: {rewritten}"
    );
    let config_path = inside(CONFIG_TARGET);
    std::fs::create_dir_all(config_path.parent().expect("parent")).expect("config dir");
    std::fs::write(&config_path, rewritten).expect("write config");
    let checked = common::binary::run_cli(&config_path, &["check-config"], "", &[]);
    assert_eq!(
        checked.code,
        0,
        "{shown}: {name}: check-config refuses {}: {checked:?}",
        config_source.display()
    );
}

#[test]
fn both_compose_files_are_there() {
    let files: Vec<String> = compose_files()
        .iter()
        .map(|p| p.strip_prefix(repo()).unwrap_or(p).display().to_string())
        .collect();
    assert!(
        files.contains(&"deploy/compose/compose.yaml".to_string()),
        "{files:?}"
    );
    assert!(
        files.contains(&"deploy/compose/single.yaml".to_string()),
        "{files:?}"
    );
}

#[test]
fn every_compose_file_is_consistent_and_passes_check_config() {
    let files = compose_files();
    assert!(!files.is_empty());
    for file in files {
        check_file(&file);
    }
}

#[test]
fn the_dockerfile_builds_and_copies_the_echo_binary() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains("--example echo"),
        "the builder builds examples/echo.rs"
    );
    assert!(
        dockerfile.contains("target/release/examples/echo /out/gatehouse-echo"),
        "the builder puts the echo binary where the runtime stage copies it from"
    );
    let executables = image_executables();
    assert!(executables.contains("gatehouse"), "{executables:?}");
    assert!(executables.contains("gatehouse-echo"), "{executables:?}");
}

#[test]
fn a_broken_compose_file_is_caught() {
    // The check itself can fail: a dependency on a service the file does not define, and a
    // stop_grace_period shorter than the drain.
    let dir = tempfile::tempdir().expect("tempdir");
    for (body, expected) in [
        (
            "services:\n  gatehouse:\n    image: gatehouse:VERSION\n    depends_on: [nowhere]\n    stop_grace_period: 60s\n",
            "depends on nowhere",
        ),
        (
            "services:\n  gatehouse:\n    image: gatehouse:VERSION\n    stop_grace_period: 5s\n",
            "stop_grace_period",
        ),
    ] {
        let path = dir.path().join("compose.yaml");
        let text = format!("# docker compose up\n{}", body.replace("VERSION", VERSION));
        std::fs::write(&path, text).expect("write");
        let caught = std::panic::catch_unwind(|| check_file(&path));
        let message = caught.expect_err("the broken file is reported");
        let shown = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(shown.contains(expected), "{shown}");
    }
}
