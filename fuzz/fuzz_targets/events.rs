//! What the ingest function is invoked with: S3 notifications (direct, MinIO's webhook shape),
//! SQS batches whose bodies are S3 notifications, and the URL-encoded keys inside them.
//! Properties beyond "no panic": an accepted notification re-encoded by the relay's own
//! `notification_body` parses back to the same events, and every key survives
//! `encode_key` → `decode_key` unchanged, and no malformed `%` escape is accepted.
#![no_main]

use clipsearch::events::{
    decode_key, encode_key, notification_body, parse_invocation, parse_notification, Notification,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = parse_invocation(&value);
    }
    if let Ok(Notification::Events(events)) = parse_notification(text) {
        let again = parse_notification(&notification_body(&events).to_string());
        assert_eq!(
            again.ok(),
            Some(Notification::Events(events)),
            "re-encoded events parse back"
        );
    }
    if decode_key(text).is_ok() {
        // Every escape that was accepted is `%` and two hex digits, nothing laxer.
        let b = text.as_bytes();
        for (i, _) in text.match_indices('%') {
            assert!(
                b.len() >= i + 3 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit(),
                "accepted a malformed escape in {text:?}"
            );
        }
    }
    assert_eq!(decode_key(&encode_key(text)).ok().as_deref(), Some(text), "{text:?}");
});
