//! What the text side is told by `config.json` and `tokenizer_config.json`: context length,
//! padding and SigLIP's canonicalisation ([`TextConfig`]).

use super::family::{Family, Padding};

/// What `config.json` (and `tokenizer_config.json`) tell the text side.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    /// Tokens per text, special tokens included: the tokenizer's `model_max_length` (what the
    /// family's processor truncates to: 77 for CLIP, 64 for SigLIP, 52 for Chinese-CLIP),
    /// capped by the text tower's `max_position_embeddings`.
    pub context_length: usize,
    /// `config.json`'s pad (else EOS) id; CLIP pads with `<|endoftext|>`.
    pub pad_id: Option<u32>,
    /// `tokenizer_config.json`'s pad token, which the family's processor pads with; it wins
    /// over `pad_id` when the tokenizer knows it.
    pub pad_token: Option<String>,
    pub padding: Padding,
    /// SigLIP's `SiglipTokenizer` rewrites the text before SentencePiece sees it.
    pub canonicalize: Option<Canonicalize>,
}

/// `SiglipTokenizer.canonicalize_text`: lower-case (when `do_lower_case`), ASCII punctuation
/// removed, runs of whitespace made one space, the ends stripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canonicalize {
    pub lowercase: bool,
}

impl Canonicalize {
    pub fn apply(self, text: &str) -> String {
        // Python's `str.isspace`, which `re`'s `\s` and `str.strip` follow: Unicode White_Space
        // plus the four ASCII separators U+001C..U+001F.
        let space = |c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c);
        // Rust's `to_lowercase` applies the final-sigma rule as Python's `lower` does.
        let lowered = if self.lowercase {
            text.to_lowercase()
        } else {
            text.to_owned()
        };
        let mut out = String::with_capacity(lowered.len());
        let mut pending_space = false;
        for c in lowered.chars().filter(|c| !c.is_ascii_punctuation()) {
            if space(c) {
                pending_space = !out.is_empty();
            } else {
                if pending_space {
                    out.push(' ');
                    pending_space = false;
                }
                out.push(c);
            }
        }
        out
    }
}

/// transformers writes `model_max_length` = 1e30 when a tokenizer has no limit.
const NO_LIMIT: u64 = 1 << 40;

impl TextConfig {
    /// From `config.json` (absent: the family's defaults) and `tokenizer_config.json`.
    pub fn new(
        config: Option<&serde_json::Value>,
        tokenizer_config: Option<&serde_json::Value>,
        family: Family,
    ) -> Self {
        let tc = config.map(|v| v.get("text_config").unwrap_or(v));
        let num = |k: &str| tc.and_then(|tc| tc.get(k)).and_then(|x| x.as_u64());
        let tokenizer = |k: &str| tokenizer_config.and_then(|t| t.get(k));
        let pad_token = tokenizer("pad_token").and_then(|p| {
            p.as_str()
                .or_else(|| p.get("content").and_then(|c| c.as_str()))
                .map(str::to_owned)
        });
        let positions = num("max_position_embeddings").map(|n| n as usize);
        let limit = tokenizer("model_max_length")
            .and_then(|n| n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)))
            .filter(|&n| n > 0 && n < NO_LIMIT)
            .map(|n| n as usize);
        let context_length = match (limit, positions) {
            (Some(l), Some(p)) => l.min(p),
            (Some(n), None) | (None, Some(n)) => n,
            (None, None) => family.default_context_length(),
        };
        let canonicalize =
            (tokenizer("tokenizer_class").and_then(|c| c.as_str()) == Some("SiglipTokenizer")).then(|| Canonicalize {
                lowercase: tokenizer("do_lower_case").and_then(|v| v.as_bool()).unwrap_or(true),
            });
        Self {
            context_length,
            pad_id: num("pad_token_id").or_else(|| num("eos_token_id")).map(|x| x as u32),
            pad_token,
            padding: family.padding(),
            canonicalize,
        }
    }
}
