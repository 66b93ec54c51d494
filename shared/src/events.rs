//! Lenient parsing of the events that reach ingest: S3 event notifications (delivered to the
//! function directly or inside SQS message bodies), SQS batches, and S3's `s3:TestEvent`.
//!
//! Own serde structs instead of `aws_lambda_events`: those require fields (`userIdentity`,
//! `requestParameters`, ...) that the local emulator leaves out, and the relay (a CLI, no
//! Lambda types) must read the same bodies. Only what ingest uses is read; everything else
//! may be missing or extra.

use serde::Deserialize;

use crate::store::Location;
use crate::{Error, Result};

/// What happened to an object, with its key already URL-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectEvent {
    /// `ObjectCreated:*` (put, post, copy, multipart upload completed).
    Created { location: Location, size: Option<u64> },
    /// `ObjectRemoved:*` (delete, delete marker created, lifecycle expiry).
    Removed { location: Location },
    /// Anything else S3 can notify about (restore, replication, tagging...): nothing to do.
    Other { location: Location, event_name: String },
}

impl ObjectEvent {
    pub fn location(&self) -> &Location {
        match self {
            ObjectEvent::Created { location, .. }
            | ObjectEvent::Removed { location }
            | ObjectEvent::Other { location, .. } => location,
        }
    }
}

/// One SQS message as the Lambda event source mapping delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsMessage {
    /// Named in `batchItemFailures` to have only this message retried.
    pub message_id: String,
    pub body: String,
}

/// Everything the ingest function can be invoked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// S3 notifications delivered to the function directly.
    S3(Vec<ObjectEvent>),
    /// A batch of SQS messages whose bodies are S3 notifications.
    Sqs(Vec<SqsMessage>),
    /// `s3:TestEvent`, sent once when a notification is configured: nothing to do.
    TestEvent,
}

/// What one SQS message body contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    Events(Vec<ObjectEvent>),
    TestEvent,
}

#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(rename = "Records", default)]
    records: Option<Vec<serde_json::Value>>,
    #[serde(rename = "Event", default)]
    event: Option<String>,
}

#[derive(Deserialize)]
struct RawS3Record {
    #[serde(rename = "eventName", default)]
    event_name: Option<String>,
    s3: RawS3Entity,
}

#[derive(Deserialize)]
struct RawS3Entity {
    bucket: RawBucket,
    object: RawObject,
}

#[derive(Deserialize)]
struct RawBucket {
    name: String,
}

#[derive(Deserialize)]
struct RawObject {
    key: String,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct RawSqsRecord {
    #[serde(rename = "messageId")]
    message_id: String,
    #[serde(default)]
    body: Option<String>,
}

fn invalid(what: impl std::fmt::Display) -> Error {
    Error::InvalidRequest(format!("unrecognised event: {what}"))
}

/// Classifies a Lambda invocation payload.
pub fn parse_invocation(payload: &serde_json::Value) -> Result<Invocation> {
    let envelope: RawEnvelope = serde_json::from_value(payload.clone()).map_err(invalid)?;
    if envelope.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Invocation::TestEvent);
    }
    let Some(records) = envelope.records else {
        return Err(invalid("neither `Records` nor an s3:TestEvent"));
    };
    let source = records
        .first()
        .and_then(|r| r.get("eventSource").or_else(|| r.get("EventSource")))
        .and_then(|s| s.as_str())
        .unwrap_or("");
    if source == "aws:sqs" {
        let messages = records
            .into_iter()
            .map(|r| {
                let raw: RawSqsRecord = serde_json::from_value(r).map_err(invalid)?;
                Ok(SqsMessage {
                    message_id: raw.message_id,
                    body: raw.body.unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(Invocation::Sqs(messages));
    }
    // S3 records; the emulator and older notifications may omit `eventSource`.
    records
        .into_iter()
        .map(s3_record)
        .collect::<Result<Vec<_>>>()
        .map(Invocation::S3)
}

/// Parses an S3 notification document (the body of an SQS message).
pub fn parse_notification(body: &str) -> Result<Notification> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(invalid)?;
    let envelope: RawEnvelope = serde_json::from_value(value).map_err(invalid)?;
    if envelope.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Notification::TestEvent);
    }
    let records = envelope
        .records
        .ok_or_else(|| invalid("the message body has no `Records`"))?;
    records
        .into_iter()
        .map(s3_record)
        .collect::<Result<Vec<_>>>()
        .map(Notification::Events)
}

fn s3_record(value: serde_json::Value) -> Result<ObjectEvent> {
    let raw: RawS3Record = serde_json::from_value(value).map_err(invalid)?;
    let location = Location::new(raw.s3.bucket.name, decode_key(&raw.s3.object.key)?);
    let name = raw.event_name.unwrap_or_default();
    // Both "ObjectCreated:Put" (S3) and "s3:ObjectCreated:Put" (some emulators) occur.
    let kind = name.strip_prefix("s3:").unwrap_or(&name);
    Ok(if kind.starts_with("ObjectCreated") {
        ObjectEvent::Created {
            location,
            size: raw.s3.object.size,
        }
    } else if kind.starts_with("ObjectRemoved") {
        ObjectEvent::Removed { location }
    } else {
        ObjectEvent::Other {
            location,
            event_name: name,
        }
    })
}

/// Decodes an object key as S3 notifications carry it: form-URL-encoded, `+` for a space and
/// `%XX` for everything else (a literal `+` arrives as `%2B`), UTF-8 underneath.
pub fn decode_key(raw: &str) -> Result<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                // Two hex digits exactly: `u8::from_str_radix` alone would also take a sign
                // (`%+1`), which no encoder writes (found by fuzz/fuzz_targets/events.rs).
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Error::InvalidRequest(format!("object key {raw:?}: bad %-escape")))?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Error::InvalidRequest(format!("object key {raw:?} is not UTF-8")))
}

/// The inverse of [`decode_key`], as S3 encodes keys in notifications (for tests and the
/// relay's synthetic events): unreserved characters and `/` stay, a space becomes `+`.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An S3 notification document for `events` (what S3 puts in an SQS message body). For tests
/// and tools; production events come from S3.
pub fn notification_body(events: &[ObjectEvent]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = events
        .iter()
        .map(|event| {
            let location = event.location();
            let (name, size) = match event {
                ObjectEvent::Created { size, .. } => ("ObjectCreated:Put", *size),
                ObjectEvent::Removed { .. } => ("ObjectRemoved:Delete", None),
                ObjectEvent::Other { event_name, .. } => (event_name.as_str(), None),
            };
            let mut object = serde_json::json!({ "key": encode_key(&location.key) });
            if let Some(size) = size {
                object["size"] = size.into();
            }
            serde_json::json!({
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventName": name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": { "name": location.bucket, "arn": format!("arn:aws:s3:::{}", location.bucket) },
                    "object": object,
                }
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for key in [
            "plain.jpg",
            "dir/with space.png",
            "a+b.jpg",
            "100%.jpg",
            "ünïcödé/日本.jpg",
            "weird %2B+ key",
        ] {
            assert_eq!(decode_key(&encode_key(key)).unwrap(), key);
        }
        assert_eq!(decode_key("a+b%2Bc%25%C3%A9").unwrap(), "a b+c%é");
        assert_eq!(decode_key("dir%2Fx.jpg").unwrap(), "dir/x.jpg");
        assert!(decode_key("bad%zz").is_err());
        assert!(decode_key("bad%4").is_err());
        assert!(decode_key("%FF%FE").is_err());
        // A sign is not a hex digit (fuzz/regressions/events/sign-in-escape).
        for signed in ["uploads/m%+cId", "%+1", "%-1", "a%+F.jpg"] {
            assert!(decode_key(signed).is_err(), "{signed}");
        }
    }

    #[test]
    fn emulator_record_without_optional_fields() {
        let body = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"x+y.jpg"}}}]}"#;
        assert_eq!(
            parse_notification(body).unwrap(),
            Notification::Events(vec![ObjectEvent::Created {
                location: Location::new("b", "x y.jpg"),
                size: None
            }])
        );
    }

    #[test]
    fn invocations_are_classified() {
        let test = serde_json::json!({"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"});
        assert_eq!(parse_invocation(&test).unwrap(), Invocation::TestEvent);
        let sqs = serde_json::json!({"Records":[{"messageId":"m1","eventSource":"aws:sqs","body":"{}"}]});
        assert_eq!(
            parse_invocation(&sqs).unwrap(),
            Invocation::Sqs(vec![SqsMessage {
                message_id: "m1".into(),
                body: "{}".into()
            }])
        );
        let removed = ObjectEvent::Removed {
            location: Location::new("b", "k k"),
        };
        let direct = notification_body(std::slice::from_ref(&removed));
        assert_eq!(parse_invocation(&direct).unwrap(), Invocation::S3(vec![removed]));
        assert!(parse_invocation(&serde_json::json!({"hello": 1})).is_err());
    }

    /// The event files in tests/events/ (used with `cargo lambda invoke --data-file`) parse
    /// to what their names say, MinIO's webhook format included.
    #[test]
    fn event_fixtures_parse() {
        let fixture = |name: &str| -> serde_json::Value {
            let path = format!("{}/../tests/events/{name}", env!("CARGO_MANIFEST_DIR"));
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
        };
        let created = |bucket: &str, key: &str, size: u64| ObjectEvent::Created {
            location: Location::new(bucket, key),
            size: Some(size),
        };
        assert_eq!(
            parse_invocation(&fixture("s3-put.json")).unwrap(),
            Invocation::S3(vec![created("clipsearch-images", "uploads/my cat+dog 100%.jpg", 1024)])
        );
        assert_eq!(
            parse_invocation(&fixture("minio-webhook.json")).unwrap(),
            Invocation::S3(vec![created("images", "photos/red car+night.jpg", 48213)])
        );
        assert_eq!(
            parse_invocation(&fixture("s3-moto-minimal.json")).unwrap(),
            Invocation::S3(vec![created("images", "dir/a b+c%é.jpg", 5)])
        );
        assert!(matches!(
            parse_invocation(&fixture("s3-delete.json")).unwrap(),
            Invocation::S3(events) if matches!(events[..], [ObjectEvent::Removed { .. }])
        ));
        assert_eq!(
            parse_invocation(&fixture("s3-test-event.json")).unwrap(),
            Invocation::TestEvent
        );
        let Invocation::Sqs(messages) = parse_invocation(&fixture("sqs-batch.json")).unwrap() else {
            panic!("sqs-batch.json is an SQS batch");
        };
        let bodies: Vec<_> = messages.iter().map(|m| parse_notification(&m.body).unwrap()).collect();
        assert!(matches!(bodies[0], Notification::Events(ref e) if matches!(e[..], [ObjectEvent::Created { .. }])));
        assert_eq!(bodies[1], Notification::TestEvent);
        assert!(matches!(bodies[2], Notification::Events(ref e) if matches!(e[..], [ObjectEvent::Removed { .. }])));
    }
}
