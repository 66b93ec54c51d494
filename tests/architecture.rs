//! docs/ARCHITECTURE.md's "Never" list, checked against the sources: which room may import
//! which, and what the adapters may not touch. Also the configuration rule: the README's table,
//! `config::VARIABLES` and the sources cannot drift apart (each variable the code reads is in
//! the list, each listed one is documented, and the table's product rows name nothing the code
//! does not read), and nothing outside `shared/src/config/` reads the environment.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clipsearch::config::{READ_BY_DEPENDENCIES, VARIABLES};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each `.rs` file under `dirs` (relative to the repository) with its text.
fn sources(dirs: &[&str]) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for dir in dirs {
        let before = files.len();
        rust_files(&repo().join(dir), &mut files);
        assert!(files.len() > before, "no sources under {dir}");
    }
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

/// The production sources: the library, both functions and the CLI (not tests or examples).
const PRODUCTION: [&str; 4] = ["shared/src", "functions/ingest/src", "functions/search/src", "cli/src"];

/// Each file under `dir` whose text names one of `forbidden` (an import path), with the
/// offending line.
fn offenders(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (file, text) in sources(&[dir]) {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(name) = forbidden.iter().find(|f| code.contains(*f)) {
                found.push(format!("{}:{}: {name}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

fn assert_none(dir: &str, forbidden: &[&str]) {
    let found = offenders(dir, forbidden);
    assert!(
        found.is_empty(),
        "{dir} must not use {forbidden:?}:\n{}",
        found.join("\n")
    );
}

const USE_CASES: [&str; 6] = [
    "crate::ingest",
    "crate::search",
    "crate::status",
    "crate::duplicates",
    "crate::thumbnail",
    "crate::model_source",
];

#[test]
fn the_encoders_know_no_index_no_s3_and_no_use_case() {
    assert_none(
        "shared/src/clip",
        &[
            &["crate::store", "crate::objects", "milvus::", "aws_sdk"][..],
            &USE_CASES,
        ]
        .concat(),
    );
}

#[test]
fn the_index_knows_no_encoder_no_s3_and_no_use_case() {
    assert_none(
        "shared/src/store",
        &[&["crate::clip", "crate::objects", "aws_sdk"][..], &USE_CASES].concat(),
    );
}

#[test]
fn the_library_imports_no_lambda_crate() {
    assert_none("shared/src", &["lambda_runtime", "lambda_http", "aws_lambda_events"]);
}

#[test]
fn adapters_use_neither_the_milvus_nor_the_s3_sdk() {
    for dir in ["functions/ingest/src", "functions/search/src", "cli/src"] {
        assert_none(dir, &["milvus::", "aws_sdk_s3", "milvus_sdk"]);
    }
}

#[test]
fn http_shapes_are_parsed_in_the_search_function_only() {
    // Base64 images and JSON bodies belong to the adapter (functions/search/src/body.rs).
    assert_none("shared/src/search", &["base64::", "SearchBody", "from_json"]);
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
    let sources = sources(&PRODUCTION);
    assert!(sources.len() > 40, "found only {} source files", sources.len());
    let config_dir = repo().join("shared/src/config");
    let mut named = BTreeSet::new();
    for (path, text) in &sources {
        if path.starts_with(&config_dir) {
            named.extend(names_in_config(text));
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
