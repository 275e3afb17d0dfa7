//! The layer order in `src/lib.rs`'s `//!` diagram is kept: no module under `src/` names
//! (`crate::x`, in code or docs) a module in its own row or a row above it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Module name → row (0 = top), read from the ```text block in src/lib.rs.
fn rows(lib: &str) -> HashMap<String, usize> {
    let mut rows = HashMap::new();
    let mut inside = false;
    let mut row = 0;
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim_start();
        if doc.starts_with("```text") {
            inside = true;
            continue;
        }
        if inside && doc.starts_with("```") {
            break;
        }
        if !inside {
            continue;
        }
        // Module names, then a gap of 3+ spaces, then a description.
        let names = doc.split("   ").next().unwrap_or_default();
        for name in names.split_whitespace() {
            rows.insert(name.to_string(), row);
        }
        row += 1;
    }
    rows
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .expect("read src dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            rust_files(&entry, out);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Every `crate::name` in `text`.
fn named_modules(text: &str) -> Vec<String> {
    text.match_indices("crate::")
        .map(|(at, m)| {
            text[at + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn no_module_names_a_module_in_its_own_row_or_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read lib.rs");
    let rows = rows(&lib);
    for module in ["cli", "gateway", "access", "routing", "names", "http"] {
        assert!(rows.contains_key(module), "{module} missing from {rows:?}");
    }
    let mut violations = Vec::new();
    for (module, &row) in &rows {
        let mut files = Vec::new();
        rust_files(&src.join(format!("{module}.rs")), &mut files);
        rust_files(&src.join(module), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read source");
            for named in named_modules(&text) {
                match rows.get(&named) {
                    Some(&other) if named != *module && other <= row => violations.push(format!(
                        "{} (row {row}) names crate::{named} (row {other})",
                        file.display()
                    )),
                    _ => {}
                }
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(violations.is_empty(), "{violations:#?}");
}

/// `src/lib.rs` denies `unsafe` and only `memory` (one call into glibc) allows it; an
/// `#[allow(unsafe_code)]` anywhere else would slip past the lint, so look for it here.
#[test]
fn only_the_memory_module_allows_unsafe() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read lib.rs");
    assert!(
        lib.contains("#![deny(unsafe_code)]"),
        "lib.rs no longer denies unsafe"
    );
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut allowing: Vec<String> = files
        .iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).expect("read source");
            text.contains("allow(unsafe_code)") || text.contains("expect(unsafe_code)")
        })
        .map(|file| {
            file.strip_prefix(&src)
                .unwrap_or(file)
                .display()
                .to_string()
        })
        .collect();
    allowing.sort();
    assert_eq!(allowing, ["memory.rs"]);
}
