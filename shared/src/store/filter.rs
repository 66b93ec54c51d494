//! Building Milvus boolean expressions from user data.
//!
//! Every value that came from outside (an S3 key, a bucket, an id, a search prefix) reaches an
//! expression only through [`string_literal`], which produces one double-quoted literal that the
//! expression parser reads back as exactly the original text: a key such as `a" or 1==1` stays a
//! string and cannot add a clause. Prefix matching uses a half-open string range instead of
//! `like`, so there are no wildcards (`%`, `_`) to escape and the same expression works on every
//! Milvus version.

use crate::{Error, Result};

/// Renders `value` as a double-quoted Milvus string literal.
///
/// Written in the one dialect every engine reads back exactly: Milvus 2.x parses literals with
/// a C-like lexer and Go's `strconv.Unquote`, Milvus Lite 3.x with its own lexer that knows only
/// the escapes `\"`, `\'`, `\\`, `\n`, `\r` and `\t` (no `\u`). So `"` and `\` are
/// backslash-escaped, newline, carriage return and tab are written as `\n`, `\r`, `\t` (a raw
/// line break is illegal inside a literal in both), and every other character stands as itself,
/// in UTF-8, which both lexers take raw. NUL is refused: no S3 key contains one and the
/// engine's C++ side would truncate at it.
pub fn string_literal(value: &str) -> Result<String> {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\0' => {
                return Err(Error::InvalidRequest(
                    "a NUL character cannot appear in a key, bucket or id".into(),
                ))
            }
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// `field in ["v1", "v2", …]`, every value escaped.
pub fn in_list<'a>(field: &str, values: impl IntoIterator<Item = &'a str>) -> Result<String> {
    let literals = values.into_iter().map(string_literal).collect::<Result<Vec<_>>>()?;
    Ok(format!("{field} in [{}]", literals.join(", ")))
}

/// `field not in ["v1", "v2", …]`, every value escaped.
pub fn not_in_list<'a>(field: &str, values: impl IntoIterator<Item = &'a str>) -> Result<String> {
    let literals = values.into_iter().map(string_literal).collect::<Result<Vec<_>>>()?;
    Ok(format!("{field} not in [{}]", literals.join(", ")))
}

/// `field == "value"`.
pub fn equals(field: &str, value: &str) -> Result<String> {
    Ok(format!("{field} == {}", string_literal(value)?))
}

/// `field != "value"`.
pub fn not_equals(field: &str, value: &str) -> Result<String> {
    Ok(format!("{field} != {}", string_literal(value)?))
}

/// `array_contains(field, "value")`: true when the array field holds that exact element.
pub fn array_contains(field: &str, value: &str) -> Result<String> {
    Ok(format!("array_contains({field}, {})", string_literal(value)?))
}

/// True when `field` starts with `prefix`, as the range `prefix <= field < successor(prefix)`.
///
/// Strings compare by their UTF-8 bytes, and every string that starts with `prefix` sorts at
/// or after it and before the smallest string greater than all of them (see
/// [`prefix_successor`]). An empty prefix matches everything and yields `None`.
pub fn starts_with(field: &str, prefix: &str) -> Result<Option<String>> {
    if prefix.is_empty() {
        return Ok(None);
    }
    let lower = format!("{field} >= {}", string_literal(prefix)?);
    Ok(Some(match prefix_successor(prefix) {
        Some(upper) => format!("({lower} and {field} < {})", string_literal(&upper)?),
        // Only a prefix made entirely of U+10FFFF has no successor: no upper bound is needed.
        None => lower,
    }))
}

/// The smallest string that sorts (by UTF-8 bytes, which is code-point order) after every
/// string starting with `prefix`: drop trailing U+10FFFF characters, then bump the last
/// character to the next valid code point (skipping the surrogate gap). `None` when nothing is
/// left to bump.
pub fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 {
            0xD7FF => Some('\u{E000}'),
            n => char::from_u32(n + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Joins clauses with `and`, each parenthesised; an empty list is the empty (match-all) filter.
pub fn and_all(clauses: &[String]) -> String {
    match clauses {
        [] => String::new(),
        [only] => only.clone(),
        many => many.iter().map(|c| format!("({c})")).collect::<Vec<_>>().join(" and "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a literal back the way both engines' lexers do (the escapes Milvus Lite knows, a
    /// subset of Go's `strconv.Unquote`; no raw line break), so the tests check the round trip
    /// rather than a particular spelling.
    fn unquote(literal: &str) -> String {
        let inner = literal
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .expect("quoted");
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            assert!(c != '"', "unescaped quote inside literal {literal}");
            assert!(c != '\n' && c != '\r', "a raw line break inside literal {literal:?}");
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next().expect("escape") {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                other => panic!("an escape Milvus Lite cannot read: \\{other}"),
            }
        }
        out
    }

    #[test]
    fn plain_text_is_quoted_verbatim() {
        assert_eq!(string_literal("photos/cat.jpg").unwrap(), r#""photos/cat.jpg""#);
        assert_eq!(string_literal("").unwrap(), r#""""#);
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(string_literal(r#"a"b"#).unwrap(), r#""a\"b""#);
        assert_eq!(string_literal(r"a\b").unwrap(), r#""a\\b""#);
        assert_eq!(string_literal(r#"\""#).unwrap(), r#""\\\"""#);
    }

    #[test]
    fn injection_attempt_stays_one_literal() {
        let hostile = r#"x" or 1==1 or id != "y"#;
        let literal = string_literal(hostile).unwrap();
        assert_eq!(unquote(&literal), hostile);
        // The only unescaped quotes are the delimiters.
        let inner = &literal[1..literal.len() - 1];
        let mut prev_backslashes = 0;
        for c in inner.chars() {
            if c == '"' {
                assert_eq!(prev_backslashes % 2, 1, "bare quote in {literal}");
            }
            prev_backslashes = if c == '\\' { prev_backslashes + 1 } else { 0 };
        }
        assert_eq!(equals("id", hostile).unwrap(), r#"id == "x\" or 1==1 or id != \"y""#);
    }

    #[test]
    fn trailing_backslash_cannot_eat_the_closing_quote() {
        let literal = string_literal(r"dir\").unwrap();
        assert_eq!(literal, r#""dir\\""#);
        assert_eq!(unquote(&literal), r"dir\");
    }

    #[test]
    fn like_wildcards_are_plain_characters() {
        // No `like` is ever built, so % and _ need no escaping and stay literal.
        assert_eq!(string_literal("100%_off").unwrap(), r#""100%_off""#);
    }

    #[test]
    fn line_breaks_and_tabs_are_escaped_and_everything_else_stands_as_itself() {
        for s in [
            "tab\there",
            "new\nline",
            "cr\r",
            "é/ü",
            "emoji 😀",
            "\u{7f}",
            "\u{1}\u{1b}[0m",
            "\u{2028}",
            "\u{10FFFF}",
        ] {
            let literal = string_literal(s).unwrap();
            assert_eq!(unquote(&literal), s);
        }
        assert_eq!(string_literal("a\nb\r\tc").unwrap(), r#""a\nb\r\tc""#);
        assert_eq!(string_literal("😀").unwrap(), "\"😀\"");
        assert_eq!(string_literal("é\u{1}").unwrap(), "\"é\u{1}\"");
    }

    #[test]
    fn nul_is_refused() {
        assert!(matches!(string_literal("a\0b"), Err(Error::InvalidRequest(_))));
    }

    #[test]
    fn in_list_escapes_each_value() {
        assert_eq!(in_list("id", ["a", "b\"c"]).unwrap(), r#"id in ["a", "b\"c"]"#);
    }

    #[test]
    fn successor_bumps_the_last_character() {
        assert_eq!(prefix_successor("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        assert_eq!(prefix_successor(""), None);
    }

    #[test]
    fn successor_bounds_exactly_the_strings_with_the_prefix() {
        let prefix = "photos/2024";
        let upper = prefix_successor(prefix).unwrap();
        for inside in ["photos/2024", "photos/2024/a.jpg", "photos/2024\u{10FFFF}"] {
            assert!(inside >= prefix && inside < upper.as_str(), "{inside}");
        }
        for outside in ["photos/2023/z", "photos/2025", "photos/202", "photos0"] {
            assert!(!(outside >= prefix && outside < upper.as_str()), "{outside}");
        }
    }

    #[test]
    fn starts_with_builds_a_range() {
        assert_eq!(
            starts_with("key", "a\"b").unwrap().unwrap(),
            r#"(key >= "a\"b" and key < "a\"c")"#
        );
        assert_eq!(starts_with("key", "").unwrap(), None);
    }

    #[test]
    fn and_all_parenthesises() {
        assert_eq!(and_all(&[]), "");
        assert_eq!(and_all(&["a == 1".into()]), "a == 1");
        assert_eq!(and_all(&["a == 1".into(), "b or c".into()]), "(a == 1) and (b or c)");
    }
}
