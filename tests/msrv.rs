//! The declared minimum Rust (`rust-version` in Cargo.toml, quoted in the README) stays
//! true as dependencies move: no package in the locked dependency graph for this platform
//! (normal, build and dev dependencies) declares a newer `rust-version` than ours.

use std::process::Command;

/// "1.89", "1.88.0" → (1, 89, 0). Pre-release or build suffixes are not used in
/// `rust-version`; anything unreadable is an error naming the package.
fn parse(version: &str) -> Result<(u64, u64, u64), String> {
    let mut parts = version.split('.').map(str::parse::<u64>);
    let mut next = || parts.next().transpose().map_err(|err| err.to_string());
    let major = next()?.ok_or("empty")?;
    let minor = next()?.unwrap_or(0);
    let patch = next()?.unwrap_or(0);
    if next()?.is_some() {
        return Err("more than three components".into());
    }
    Ok((major, minor, patch))
}

fn cargo(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn no_locked_dependency_needs_a_newer_rust_than_we_declare() {
    let ours = parse(env!("CARGO_PKG_RUST_VERSION")).expect("our rust-version");
    // Only this platform's graph: packages for other targets need not be downloaded,
    // and `--offline` cannot read their manifests.
    let host = cargo(&["-vV"])
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_string))
        .expect("cargo -vV names the host");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let metadata: serde_json::Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--offline",
        "--manifest-path",
        manifest,
        "--filter-platform",
        &host,
    ]))
    .expect("metadata JSON");
    let resolved: Vec<&str> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .filter_map(|node| node["id"].as_str())
        .collect();
    let packages = metadata["packages"].as_array().expect("packages");
    let mut checked = 0;
    let mut offenders = Vec::new();
    for package in packages {
        let id = package["id"].as_str().unwrap_or_default();
        if !resolved.contains(&id) {
            continue;
        }
        checked += 1;
        let Some(declared) = package["rust_version"].as_str() else {
            continue;
        };
        let name = format!(
            "{} {}",
            package["name"].as_str().unwrap_or("?"),
            package["version"].as_str().unwrap_or("?")
        );
        match parse(declared) {
            Ok(needed) if needed > ours => offenders.push(format!("{name} needs {declared}")),
            Ok(_) => {}
            Err(err) => offenders.push(format!(
                "{name}: unreadable rust-version {declared:?}: {err}"
            )),
        }
    }
    assert!(
        checked > 100,
        "only {checked} resolved packages: metadata not understood"
    );
    assert!(
        offenders.is_empty(),
        "rust-version {} in Cargo.toml (and the README) is below what these locked dependencies declare; \
         raise it:\n{}",
        env!("CARGO_PKG_RUST_VERSION"),
        offenders.join("\n")
    );
}

#[test]
fn the_readme_quotes_the_declared_rust_version() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let quoted = format!("Rust toolchain ({}+)", env!("CARGO_PKG_RUST_VERSION"));
    assert!(
        readme.contains(&quoted),
        "README.md does not say {quoted:?}"
    );
}

#[test]
fn versions_compare_numerically() {
    assert_eq!(parse("1.89"), Ok((1, 89, 0)));
    assert_eq!(parse("1.9.3"), Ok((1, 9, 3)));
    assert!(parse("1.100").expect("parse") > parse("1.89.0").expect("parse"));
    assert!(parse("1.x").is_err());
    assert!(parse("1.2.3.4").is_err());
}
