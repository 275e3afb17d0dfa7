//! The Kubernetes manifests in deploy/kubernetes/ (issue 16): every document parses; every
//! ConfigMap, Secret and PersistentVolumeClaim a Deployment references is defined in the
//! same file (with the keys it reads); each file has the ConfigMap, Secret, Deployment
//! (probes, `preStop` sleep, resources, securityContext), Service and PodDisruptionBudget
//! an operator needs; the gateway.toml in the ConfigMap passes the real binary's
//! `check-config` with the files the pod would see (the ConfigMap and Secret mounted where
//! the Deployment mounts them, under a temporary root); the probes and container ports
//! match its `listen`/`ops_listen`; and `terminationGracePeriodSeconds` exceeds
//! `shutdown_grace` plus the `preStop` sleep, so a drain ends before the kill.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    files
}

/// Every non-empty document of `path`.
fn documents(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).expect("read manifest");
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

fn text<'a>(value: &'a Yaml, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {value:?}"))
}

fn list(value: &Yaml) -> &[Yaml] {
    value.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

/// `data` and `stringData` of a ConfigMap or Secret (stringData as given; data of a
/// Secret is base64, which the manifests here do not use).
fn entries(doc: &Yaml) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for field in ["data", "stringData"] {
        if let Some(map) = doc[field].as_hash() {
            for (key, value) in map {
                found.insert(text(key, field).to_string(), text(value, field).to_string());
            }
        }
    }
    found
}

/// One manifest file: its objects by (kind, name).
struct Manifest {
    path: PathBuf,
    objects: BTreeMap<(String, String), Yaml>,
}

impl Manifest {
    fn load(path: &Path) -> Self {
        let mut objects = BTreeMap::new();
        for doc in documents(path) {
            let kind = text(&doc["kind"], "kind").to_string();
            let name = text(&doc["metadata"]["name"], "metadata.name").to_string();
            assert!(
                doc["apiVersion"].as_str().is_some(),
                "{}: {kind}/{name} has no apiVersion",
                path.display()
            );
            let previous = objects.insert((kind.clone(), name.clone()), doc);
            assert!(
                previous.is_none(),
                "{}: {kind}/{name} twice",
                path.display()
            );
        }
        Manifest {
            path: path.to_path_buf(),
            objects,
        }
    }

    fn get(&self, kind: &str, name: &str) -> &Yaml {
        self.objects
            .get(&(kind.to_string(), name.to_string()))
            .unwrap_or_else(|| {
                panic!(
                    "{}: {kind}/{name} is referenced but not defined",
                    self.path.display()
                )
            })
    }

    fn of_kind(&self, kind: &str) -> Vec<&Yaml> {
        self.objects
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|(_, doc)| doc)
            .collect()
    }

    fn only(&self, kind: &str) -> &Yaml {
        let found = self.of_kind(kind);
        assert_eq!(
            found.len(),
            1,
            "{}: expected one {kind}",
            self.path.display()
        );
        found[0]
    }
}

/// Checks every ConfigMap/Secret/PVC the pod spec references (volumes, env, envFrom) is
/// defined, with the keys it names.
fn check_references(manifest: &Manifest, pod: &Yaml) {
    for volume in list(&pod["volumes"]) {
        if let Some(name) = volume["configMap"]["name"].as_str() {
            manifest.get("ConfigMap", name);
        }
        if let Some(name) = volume["secret"]["secretName"].as_str() {
            manifest.get("Secret", name);
        }
        if let Some(name) = volume["persistentVolumeClaim"]["claimName"].as_str() {
            manifest.get("PersistentVolumeClaim", name);
        }
    }
    for container in list(&pod["containers"]) {
        for env in list(&container["env"]) {
            for (field, kind) in [("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")] {
                let reference = &env["valueFrom"][field];
                if let Some(name) = reference["name"].as_str() {
                    let key = text(&reference["key"], "key");
                    assert!(
                        entries(manifest.get(kind, name)).contains_key(key),
                        "{}: {kind}/{name} has no key {key}",
                        manifest.path.display()
                    );
                }
            }
        }
        for from in list(&container["envFrom"]) {
            if let Some(name) = from["secretRef"]["name"].as_str() {
                manifest.get("Secret", name);
            }
            if let Some(name) = from["configMapRef"]["name"].as_str() {
                manifest.get("ConfigMap", name);
            }
        }
        for mount in list(&container["volumeMounts"]) {
            let name = text(&mount["name"], "volumeMounts.name");
            assert!(
                list(&pod["volumes"])
                    .iter()
                    .any(|volume| volume["name"].as_str() == Some(name)),
                "{}: volumeMount {name} names no volume",
                manifest.path.display()
            );
        }
    }
}

fn labels_match(selector: &Yaml, labels: &Yaml) -> bool {
    let Some(selector) = selector.as_hash() else {
        return false;
    };
    !selector.is_empty()
        && selector
            .iter()
            .all(|(key, value)| &labels[text(key, "label")] == value)
}

fn port_of(addr: &str) -> i64 {
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("{addr}: no port"))
}

/// The container port a probe or Service names (by name or number).
fn container_port(container: &Yaml, port: &Yaml) -> i64 {
    if let Some(number) = port.as_i64() {
        return number;
    }
    let name = text(port, "port");
    list(&container["ports"])
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

/// Lays out the files the gateway container would see, under `root`: each ConfigMap or
/// Secret volume's entries at its mountPath. Returns the mount paths.
fn lay_out(manifest: &Manifest, pod: &Yaml, container: &Yaml, root: &Path) -> Vec<String> {
    let mut mounts = Vec::new();
    for mount in list(&container["volumeMounts"]) {
        let name = text(&mount["name"], "volumeMounts.name");
        let at = text(&mount["mountPath"], "mountPath").to_string();
        let dir = root.join(at.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).expect("mount dir");
        let volume = list(&pod["volumes"])
            .iter()
            .find(|volume| volume["name"].as_str() == Some(name))
            .expect("volume");
        let source = if let Some(map) = volume["configMap"]["name"].as_str() {
            Some(manifest.get("ConfigMap", map))
        } else {
            volume["secret"]["secretName"]
                .as_str()
                .map(|secret| manifest.get("Secret", secret))
        };
        if let Some(source) = source {
            for (key, value) in entries(source) {
                std::fs::write(dir.join(key), value).expect("write entry");
            }
        }
        mounts.push(at);
    }
    mounts
}

fn check_file(path: &Path) {
    let manifest = Manifest::load(path);
    let shown = path.display();
    let deployment = manifest.only("Deployment");
    let template = &deployment["spec"]["template"];
    let pod = &template["spec"];
    check_references(&manifest, pod);

    let service = manifest.only("Service");
    assert!(
        labels_match(
            &service["spec"]["selector"],
            &template["metadata"]["labels"]
        ),
        "{shown}: the Service selects no pod of the Deployment"
    );
    let budget = manifest.only("PodDisruptionBudget");
    assert!(
        labels_match(
            &budget["spec"]["selector"]["matchLabels"],
            &template["metadata"]["labels"]
        ),
        "{shown}: the PodDisruptionBudget selects no pod of the Deployment"
    );
    assert!(
        labels_match(
            &deployment["spec"]["selector"]["matchLabels"],
            &template["metadata"]["labels"]
        ),
        "{shown}: the Deployment's selector does not match its pods"
    );

    let containers = list(&pod["containers"]);
    let container = containers
        .iter()
        .find(|c| c["name"].as_str() == Some("gatehouse"))
        .unwrap_or_else(|| panic!("{shown}: no gatehouse container"));
    assert_eq!(
        pod["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true),
        "{shown}: runAsNonRoot"
    );
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true),
        "{shown}"
    );
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false),
        "{shown}"
    );
    assert!(
        container["resources"]["requests"].as_hash().is_some()
            && container["resources"]["limits"].as_hash().is_some(),
        "{shown}: resources requests and limits"
    );

    // The config the pod would see, check-config'd by the real binary.
    let root = tempfile::tempdir().expect("tempdir");
    let mounts = lay_out(&manifest, pod, container, root.path());
    let config_dir = mounts
        .iter()
        .find(|at| {
            root.path()
                .join(at.trim_start_matches('/'))
                .join("gateway.toml")
                .exists()
        })
        .unwrap_or_else(|| panic!("{shown}: no mount holds gateway.toml"));
    let config_path = root
        .path()
        .join(config_dir.trim_start_matches('/'))
        .join("gateway.toml");
    let original = std::fs::read_to_string(&config_path).expect("gateway.toml");
    let mut rewritten = original.clone();
    for at in &mounts {
        let inside = root.path().join(at.trim_start_matches('/'));
        rewritten = rewritten.replace(&format!("\"{at}"), &format!("\"{}", inside.display()));
    }
    std::fs::write(&config_path, rewritten).expect("write gateway.toml");
    let mut envs: Vec<(String, String)> = Vec::new();
    for env in list(&container["env"]) {
        let name = text(&env["name"], "env.name").to_string();
        if let Some(value) = env["value"].as_str() {
            envs.push((name, value.to_string()));
        } else if let Some(secret) = env["valueFrom"]["secretKeyRef"]["name"].as_str() {
            let key = text(&env["valueFrom"]["secretKeyRef"]["key"], "key");
            envs.push((name, entries(manifest.get("Secret", secret))[key].clone()));
        }
    }
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let checked = common::binary::run_cli(&config_path, &["check-config"], "", &envs);
    assert_eq!(
        checked.code, 0,
        "{shown}: check-config refuses the ConfigMap's gateway.toml: {checked:?}"
    );

    // Probes and ports against the config.
    let config: toml::Table = original.parse().expect("gateway.toml is TOML");
    let server = config.get("server").and_then(|s| s.as_table());
    let setting = |key: &str, default: &str| -> String {
        server
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or(default)
            .to_string()
    };
    let ops_listen = setting("ops_listen", "127.0.0.1:9091");
    assert!(
        !ops_listen.starts_with("127.") && !ops_listen.starts_with("[::1]"),
        "{shown}: ops_listen {ops_listen} is loopback: the kubelet's probes cannot reach it"
    );
    let ops_port = port_of(&ops_listen);
    let listen_port = port_of(&setting("listen", "0.0.0.0:8080"));
    let declared: BTreeSet<i64> = list(&container["ports"])
        .iter()
        .filter_map(|p| p["containerPort"].as_i64())
        .collect();
    assert!(
        declared.contains(&ops_port) && declared.contains(&listen_port),
        "{shown}: container ports {declared:?} vs listen {listen_port} and ops_listen {ops_port}"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{shown}: {probe} path");
        assert_eq!(
            container_port(container, &get["port"]),
            ops_port,
            "{shown}: {probe} port is not ops_listen's"
        );
    }
    if !container["startupProbe"].is_badvalue() {
        let get = &container["startupProbe"]["httpGet"];
        assert_eq!(container_port(container, &get["port"]), ops_port, "{shown}");
    }
    for port in list(&service["spec"]["ports"]) {
        assert_eq!(
            container_port(container, &port["targetPort"]),
            listen_port,
            "{shown}: the Service targets something other than listen"
        );
    }

    // The drain fits in the grace period.
    let grace =
        humantime::parse_duration(&setting("shutdown_grace", "30s")).expect("shutdown_grace");
    let sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_i64()
        .unwrap_or_else(|| panic!("{shown}: no preStop sleep"));
    let termination = pod["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap_or_else(|| panic!("{shown}: no terminationGracePeriodSeconds"));
    let needed = grace + Duration::from_secs(u64::try_from(sleep).expect("sleep"));
    assert!(
        Duration::from_secs(u64::try_from(termination).expect("grace")) > needed,
        "{shown}: terminationGracePeriodSeconds {termination} <= shutdown_grace {grace:?} + preStop {sleep}s"
    );

    // sled is single-process: one replica, and the old pod gone before the new one opens
    // the volume.
    let backend = config
        .get("store")
        .and_then(|s| s.get("backend"))
        .and_then(|b| b.as_str())
        .unwrap_or("sled");
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    if backend == "sled" {
        assert_eq!(replicas, 1, "{shown}: sled runs one replica");
        assert_eq!(
            deployment["spec"]["strategy"]["type"].as_str(),
            Some("Recreate"),
            "{shown}: sled needs Recreate"
        );
    } else {
        assert!(
            replicas > 1,
            "{shown}: the PostgreSQL variant runs replicas"
        );
    }
}

#[test]
fn both_variants_are_there() {
    let names: Vec<String> = manifests()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .collect();
    assert!(names.contains(&"sled.yaml".to_string()), "{names:?}");
    assert!(names.contains(&"postgres.yaml".to_string()), "{names:?}");
}

#[test]
fn every_manifest_is_complete_consistent_and_passes_check_config() {
    let files = manifests();
    assert!(!files.is_empty());
    for file in files {
        check_file(&file);
    }
}

#[test]
fn an_undefined_reference_is_caught() {
    // The check itself can fail: a Deployment naming a Secret the file does not define.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: x }\nspec:\n  template:\n    spec:\n      volumes:\n        - name: s\n          secret: { secretName: missing }\n",
    )
    .expect("write");
    let manifest = Manifest::load(&path);
    let pod = manifest.only("Deployment")["spec"]["template"]["spec"].clone();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check_references(&manifest, &pod)
    }));
    let message = caught.expect_err("an undefined Secret is reported");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(text.contains("Secret/missing"), "{text}");
}
