//! The README's configuration table, [`VARIABLES`] and the sources cannot drift apart: each
//! variable the code reads is in the list, each listed one is documented, and the table's
//! product rows name nothing the code does not read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{READ_BY_DEPENDENCIES, VARIABLES};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The backticked upper-case names in the first column of the README's configuration table,
/// split into the product's rows and the local scripts' rows (after `| *local scripts* |`).
fn readme_table() -> (BTreeSet<String>, BTreeSet<String>) {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let start = readme
        .find("| variable | default | meaning |")
        .expect("the configuration table");
    let (mut product, mut scripts) = (BTreeSet::new(), BTreeSet::new());
    let mut in_scripts = false;
    for line in readme[start..].lines().skip(2) {
        if line.starts_with("| *local scripts*") {
            in_scripts = true;
            continue;
        }
        if line.trim().is_empty() && in_scripts {
            break;
        }
        let Some(first) = line.split('|').nth(1) else { continue };
        for name in first.split('`').skip(1).step_by(2) {
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                if in_scripts { &mut scripts } else { &mut product }.insert(name.to_owned());
            }
        }
    }
    (product, scripts)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The production sources: the library, both functions and the CLI (not tests or examples).
fn production_sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for dir in ["shared/src", "functions/ingest/src", "functions/search/src", "cli/src"] {
        rust_files(&repo().join(dir), &mut files);
    }
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// The string literal right after each `needle` in `text`.
fn literals_after(text: &str, needle: &str) -> Vec<String> {
    text.match_indices(needle)
        .filter_map(|(at, _)| {
            let rest = text[at + needle.len()..].trim_start();
            let rest = rest.strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

#[test]
fn the_readme_documents_every_variable_and_only_those() {
    let (product, scripts) = readme_table();
    let listed: BTreeSet<String> = VARIABLES.iter().map(|v| v.to_string()).collect();
    let undocumented: Vec<_> = listed
        .iter()
        .filter(|v| !product.contains(*v) && !scripts.contains(*v))
        .collect();
    assert!(
        undocumented.is_empty(),
        "read but not in the README's table: {undocumented:?}"
    );
    let unread: Vec<_> = product
        .iter()
        .filter(|v| !listed.contains(*v) && !READ_BY_DEPENDENCIES.contains(&v.as_str()))
        .collect();
    assert!(
        unread.is_empty(),
        "in the README's product rows but read by nothing: {unread:?}"
    );
}

/// The variables a config reader reads: each all-capitals string literal passed as a call's
/// first argument (the lists themselves left out).
fn names_in_config(text: &str) -> Vec<String> {
    let mut text = text.to_owned();
    for list in ["pub const VARIABLES", "pub const READ_BY_DEPENDENCIES"] {
        if let Some(start) = text.find(list) {
            let end = start + text[start..].find("];").unwrap();
            text.replace_range(start..end, "");
        }
    }
    // A variable's name is a call's first argument (`env_opt("X")`, `secs("X", …)`); other
    // capitals (index kinds in a match, a default port) are not.
    literals_after(&text, "(")
        .into_iter()
        .filter(|s| {
            s.len() > 2
                && s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

#[test]
fn only_the_config_module_reads_the_environment_and_only_listed_variables() {
    let sources = production_sources();
    assert!(sources.len() > 40, "found only {} source files", sources.len());
    let config_dir = repo().join("shared/src/config");
    let mut named = BTreeSet::new();
    for (path, text) in &sources {
        if path.starts_with(&config_dir) {
            if !path.ends_with("tests.rs") {
                named.extend(names_in_config(text));
            }
            continue;
        }
        for read in [
            "env::var(",
            "env::var_os(",
            "env::vars(",
            "env_opt(",
            "env_or(",
            "env_parse(",
        ] {
            assert!(
                !text.contains(read),
                "{} reads the environment ({read}); read it in shared/src/config",
                path.display()
            );
        }
        // The CLI's flags with an environment fallback.
        named.extend(literals_after(text, "env = "));
    }
    let unlisted: Vec<_> = named.iter().filter(|v| !VARIABLES.contains(&v.as_str())).collect();
    assert!(
        unlisted.is_empty(),
        "read but missing from config::VARIABLES: {unlisted:?}"
    );
    let unread: Vec<_> = VARIABLES.iter().filter(|v| !named.contains(**v)).collect();
    assert!(
        unread.is_empty(),
        "listed in config::VARIABLES but read nowhere: {unread:?}"
    );
}
