//! The Milvus filter builder over hostile values (keys, buckets, ids, prefixes). Properties:
//! each literal is one token that reads back as exactly its value (by the escapes both Milvus
//! 2.x's `strconv.Unquote` and Milvus Lite's lexer know, with no raw line break), so a value
//! never adds or changes a clause: the expression built from hostile values has the same
//! shape, token for token, as one built from plain ones; and the prefix range
//! `prefix <= s < successor(prefix)` holds exactly for the strings that start with the prefix.
#![no_main]

use clipsearch::store::filter::{and_all, equals, in_list, prefix_successor, starts_with, string_literal};
use libfuzzer_sys::fuzz_target;

/// Splits an expression into tokens: whole string literals (escapes followed), and the rest
/// character by character. Returns the tokens with every literal replaced by `"…"`, and the
/// literals read back.
fn shape(expr: &str) -> (Vec<String>, Vec<String>) {
    let (mut tokens, mut literals) = (Vec::new(), Vec::new());
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            tokens.push(c.to_string());
            continue;
        }
        let mut value = String::new();
        loop {
            match chars.next().expect("an unterminated literal") {
                '"' => break,
                '\\' => match chars.next().expect("a dangling escape") {
                    '"' => value.push('"'),
                    '\\' => value.push('\\'),
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    't' => value.push('\t'),
                    other => panic!("an escape Milvus Lite cannot read: \\{other}"),
                },
                c @ ('\n' | '\r') => panic!("a raw {c:?} inside a literal: illegal for both engines"),
                c => value.push(c),
            }
        }
        tokens.push("\"…\"".into());
        literals.push(value);
    }
    (tokens, literals)
}

fn build(values: &[&str; 3]) -> Option<String> {
    let [key, bucket, prefix] = values;
    let mut clauses = vec![equals("bucket", bucket).ok()?, in_list("key", [*key, *bucket]).ok()?];
    clauses.extend(starts_with("key", prefix).ok()?);
    Some(and_all(&clauses))
}

fuzz_target!(|input: (String, String, String, String)| {
    let (key, bucket, prefix, candidate) = input;
    let hostile = [key.as_str(), bucket.as_str(), prefix.as_str()];
    let Some(expr) = build(&hostile) else {
        assert!(hostile.iter().any(|v| v.contains('\0')), "only NUL is refused");
        return;
    };
    // The same clauses from plain values: a prefix with no successor (all U+10FFFF) has no
    // upper bound, so its plain twin is one too.
    let plain_prefix = match (prefix.is_empty(), prefix_successor(&prefix)) {
        (true, _) => "",
        (false, None) => "\u{10FFFF}",
        (false, Some(_)) => "p",
    };
    let plain = build(&["k", "b", plain_prefix]).unwrap();
    let (tokens, literals) = shape(&expr);
    assert_eq!(tokens, shape(&plain).0, "a value changed the expression: {expr}");
    let mut want = vec![bucket.clone(), key.clone(), bucket.clone()];
    if let Some(upper) = (!prefix.is_empty()).then(|| prefix_successor(&prefix)) {
        want.push(prefix.clone());
        want.extend(upper);
    }
    assert_eq!(literals, want);
    assert_eq!(
        shape(&string_literal(&candidate).unwrap_or_default()).1.len(),
        usize::from(!candidate.contains('\0'))
    );

    // The range means "starts with".
    if !prefix.is_empty() {
        let in_range =
            candidate.as_str() >= prefix.as_str() && prefix_successor(&prefix).is_none_or(|upper| candidate < upper);
        assert_eq!(in_range, candidate.starts_with(&prefix), "{prefix:?} {candidate:?}");
    }
});
