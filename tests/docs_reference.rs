//! `docs/configuration.md` names every key the config parser accepts, and nothing else.
//!
//! How "every key the parser accepts" is derived, so that adding a key to the parser
//! without documenting it fails here: the parser is the serde mirror in
//! `src/config/file.rs` (`FileConfig` and the structs it holds), and a serde struct
//! accepts exactly its field names (the test refuses `rename`, `alias` and `flatten` in
//! that file, which would break that equality, rather than guess). The test reads that
//! source, starts at `FileConfig`, and walks every `pub NAME: TYPE` field: a field whose
//! type (through `Option<…>`, `Vec<…>`, `BTreeMap<String, …>`) is another struct of the
//! file is a section and is walked under its prefix (`server.`, `upstreams.<name>.`,
//! `routes[].`); any other field is a key. Each key must then
//! 1. have a row in one of the reference's tables (`` | `server.listen` | … ``),
//! 2. be set in the reference's "A complete file" TOML block, and that block must be
//!    accepted by `gatehouse::config::parse` (which reports unknown keys as problems), so
//!    the documented spelling is the one the parser takes;
//!
//! and every key the reference's tables list must be one of them (no documented key that
//! the parser would refuse, e.g. a planned SPEC key).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

/// `struct name → [(field, type)]` of every `pub struct` in the serde mirror.
fn structs(source: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut structs = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.trim_end_matches(|c: char| c == '{' || c.is_whitespace());
            current = Some(name.to_string());
            structs.insert(name.to_string(), Vec::new());
        } else if line.starts_with('}') {
            current = None;
        } else if let (Some(name), Some(field)) = (&current, line.trim().strip_prefix("pub ")) {
            let (field, ty) = field
                .split_once(':')
                .unwrap_or_else(|| panic!("unexpected field line in file.rs: {line}"));
            structs.get_mut(name).expect("current struct").push((
                field.trim().to_string(),
                ty.trim().trim_end_matches(',').to_string(),
            ));
        }
    }
    structs
}

/// Every key path the parser accepts, in the reference's spelling.
fn accepted_keys() -> BTreeSet<String> {
    let source = read("src/config/file.rs");
    for forbidden in ["rename", "alias", "flatten"] {
        assert!(
            !source.contains(forbidden),
            "src/config/file.rs uses serde `{forbidden}`: field names are no longer the keys; teach tests/docs_reference.rs about it"
        );
    }
    let structs = structs(&source);
    assert!(
        structs.contains_key("FileConfig"),
        "FileConfig not found in file.rs"
    );
    let mut keys = BTreeSet::new();
    walk(&structs, "FileConfig", "", &mut keys);
    assert!(keys.len() > 40, "only {} keys found: {keys:?}", keys.len());
    keys
}

fn walk(
    structs: &BTreeMap<String, Vec<(String, String)>>,
    name: &str,
    prefix: &str,
    keys: &mut BTreeSet<String>,
) {
    for (field, ty) in &structs[name] {
        let (inner, path) = if let Some(inner) = ty
            .strip_prefix("BTreeMap<String,")
            .or_else(|| ty.strip_prefix("HashMap<String,"))
        {
            (
                inner.trim().trim_end_matches('>'),
                format!("{prefix}{field}.<name>"),
            )
        } else if let Some(inner) = ty.strip_prefix("Vec<") {
            (inner.trim_end_matches('>'), format!("{prefix}{field}[]"))
        } else if let Some(inner) = ty.strip_prefix("Option<") {
            (inner.trim_end_matches('>'), format!("{prefix}{field}"))
        } else {
            (ty.as_str(), format!("{prefix}{field}"))
        };
        if structs.contains_key(inner) {
            walk(structs, inner, &format!("{path}."), keys);
        } else {
            keys.insert(format!("{prefix}{field}"));
        }
    }
}

/// The TOML block under the reference's "A complete file" heading.
fn complete_example(doc: &str) -> String {
    let section = doc
        .split("\n## A complete file")
        .nth(1)
        .expect("docs/configuration.md has a \"## A complete file\" section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a ```toml block in \"A complete file\"");
    block.to_string()
}

/// Whether `key` (reference spelling) is set in the parsed TOML.
fn is_set(value: &toml::Value, key: &str) -> bool {
    let mut current = vec![value];
    for part in key.split('.') {
        let mut next = Vec::new();
        for value in current {
            if part == "<name>" {
                if let Some(table) = value.as_table() {
                    next.extend(table.values());
                }
            } else if let Some(array) = part.strip_suffix("[]") {
                if let Some(items) = value.get(array).and_then(|v| v.as_array()) {
                    next.extend(items.iter());
                }
            } else if let Some(found) = value.get(part) {
                next.push(found);
            }
        }
        current = next;
    }
    !current.is_empty()
}

/// The keys the reference's tables list: the first cell of rows such as
/// `` | `server.listen` | string … | `` (a dotted name without spaces: not the rows of the
/// environment and endpoint tables).
fn table_keys(doc: &str) -> BTreeSet<String> {
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once("` |").map(|(key, _)| key))
        .filter(|key| key.contains('.') && !key.contains(' '))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_key_the_parser_accepts_is_in_the_reference() {
    let documented = table_keys(&read("docs/configuration.md"));
    let missing: Vec<String> = accepted_keys()
        .into_iter()
        .filter(|key| !documented.contains(key))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not document these keys (add a table row `key`): {missing:?}"
    );
}

#[test]
fn the_complete_example_sets_every_key_and_the_parser_accepts_it() {
    let doc = read("docs/configuration.md");
    let example = complete_example(&doc);
    if let Err(problems) = gatehouse::config::parse(&example) {
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        panic!(
            "the complete example in docs/configuration.md is refused:\n{}",
            rendered.join("\n")
        );
    }
    let value: toml::Value = toml::from_str(&example).expect("the example is TOML");
    let unset: Vec<String> = accepted_keys()
        .into_iter()
        .filter(|key| !is_set(&value, key))
        .collect();
    assert!(
        unset.is_empty(),
        "\"A complete file\" in docs/configuration.md does not set: {unset:?}"
    );
}

#[test]
fn every_key_in_the_reference_tables_is_accepted_by_the_parser() {
    let doc = read("docs/configuration.md");
    let accepted = accepted_keys();
    let documented = table_keys(&doc);
    assert!(documented.len() > 40, "{documented:?}");
    let unknown: Vec<&String> = documented.difference(&accepted).collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md documents keys the parser does not accept: {unknown:?}"
    );
}

#[test]
fn the_password_change_body_is_documented_with_the_fields_the_endpoint_reads() {
    let doc = read("docs/configuration.md");
    let source = read("src/endpoints/password.rs");
    let body = source
        .split("struct PasswordChange {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("struct PasswordChange in src/endpoints/password.rs");
    let fields: Vec<&str> = body
        .lines()
        .filter_map(|line| line.trim().split(':').next())
        .filter(|field| !field.is_empty())
        .collect();
    assert_eq!(fields, ["current_password", "new_password"], "{body}");
    assert!(
        doc.contains(
            r#"`POST /auth/password` | bearer token + `{"current_password","new_password"}`"#
        ),
        "the /auth/password row is missing or differs"
    );
}

#[test]
fn the_readme_links_to_the_reference() {
    let readme = read("README.md");
    assert!(
        readme.contains("(docs/configuration.md)"),
        "README.md should link docs/configuration.md"
    );
}
