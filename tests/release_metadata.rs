//! One version everywhere, and the licence the crate declares (issue 16): the crate
//! version is what `gatehouse --version` prints and what every `gatehouse:<version>` image
//! reference in README.md, deploy/ and docs/ names; LICENSE is the Apache License 2.0
//! that Cargo.toml's `license = "Apache-2.0"` promises.

mod common;

use std::path::{Path, PathBuf};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every file below deploy/ and docs/.
fn files_with_image_references() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut dirs = vec![root().join("deploy"), root().join("docs")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// The tags of `gatehouse:<tag>` references that look like versions (`0.1.0`, `v1.2`,
/// `1.0.0-rc.1`), so `gatehouse:8080` (a host and port) is not one.
fn version_tags(text: &str) -> Vec<String> {
    let mut tags = Vec::new();
    for (at, _) in text.match_indices("gatehouse:") {
        let tag: String = text[at + "gatehouse:".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
            .collect();
        let digits = tag.strip_prefix('v').unwrap_or(&tag);
        if digits.starts_with(|c: char| c.is_ascii_digit()) && digits.contains('.') {
            tags.push(tag.trim_end_matches('.').to_string());
        }
    }
    tags
}

#[test]
fn version_tags_are_told_from_host_and_port() {
    assert_eq!(
        version_tags(
            "image: r.example/gatehouse:1.2.3\nhttp://gatehouse:8080/auth gatehouse:v0.1."
        ),
        ["1.2.3", "v0.1"]
    );
}

#[test]
fn every_image_reference_names_the_crate_version() {
    let mut found = 0;
    let mut wrong = Vec::new();
    for file in files_with_image_references() {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for tag in version_tags(&text) {
            found += 1;
            if tag != VERSION {
                wrong.push(format!("{}: gatehouse:{tag}", file.display()));
            }
        }
    }
    assert!(found > 0, "no gatehouse:<version> reference found at all");
    assert!(
        wrong.is_empty(),
        "these image references are not the crate version {VERSION}:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn version_flag_prints_the_crate_version() {
    let output = common::binary::run(&["--version"], "", |_| {});
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(output.stdout.trim(), format!("gatehouse {VERSION}"));
}

#[test]
fn license_is_the_apache_license_2_0_the_manifest_declares() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    assert!(manifest.contains("license = \"Apache-2.0\""), "{manifest}");
    let license = std::fs::read_to_string(root().join("LICENSE")).expect("LICENSE");
    let words: Vec<&str> = license.split_whitespace().collect();
    assert_eq!(
        words[..5],
        ["Apache", "License", "Version", "2.0,", "January"],
        "LICENSE does not open as the Apache License 2.0"
    );
    for section in [
        "1. Definitions.",
        "2. Grant of Copyright License.",
        "3. Grant of Patent License.",
        "4. Redistribution.",
        "5. Submission of Contributions.",
        "6. Trademarks.",
        "7. Disclaimer of Warranty.",
        "8. Limitation of Liability.",
        "9. Accepting Warranty or Additional Liability.",
        "END OF TERMS AND CONDITIONS",
        "APPENDIX: How to apply the Apache License to your work.",
    ] {
        assert!(license.contains(section), "LICENSE lacks `{section}`");
    }
    // The full standard text: 1,581 words from the title to the appendix's last line.
    assert_eq!(
        words.len(),
        1581,
        "LICENSE is not the complete standard text"
    );
}
