//! Presigned POST uploads (S3's browser-form upload), signed with SigV4.
//!
//! A presigned PUT lets its holder send any number of bytes of any type until it expires. A POST
//! policy is checked by S3 itself: the exact bucket and key, the exact `Content-Type`, and a body
//! between 1 byte and `max_bytes` (`content-length-range`) are conditions of the signature, so
//! the search page's public upload cannot be used to park gigabytes, or HTML, in the bucket. The
//! SDK has no POST presigner; the policy and its signature are built here following "Creating a
//! POST policy" and "Calculating a signature" (SigV4, the signing key from `aws-sigv4`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// A signed upload form: POST `multipart/form-data` to `url` with every field of `fields`,
/// then the file as the last part (named `file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignedPost {
    pub url: String,
    pub fields: BTreeMap<String, String>,
}

/// What a policy admits.
#[derive(Debug, Clone)]
pub struct PostConditions<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub content_type: &'a str,
    /// The largest body accepted (the smallest is 1 byte).
    pub max_bytes: u64,
    pub expires_in: Duration,
}

/// The credentials that sign (the function's role, or the local test keys).
#[derive(Debug, Clone)]
pub struct SigningIdentity<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
}

/// Builds and signs the policy at `now`; `url` is the bucket's URL (virtual-hosted or
/// path-style, as the client addresses it).
pub fn sign(
    url: String,
    conditions: &PostConditions<'_>,
    identity: &SigningIdentity<'_>,
    now: SystemTime,
) -> PresignedPost {
    let now = whole_seconds(now);
    let stamp = DateTime::from(now).fmt(DateTimeFormat::DateTime).unwrap_or_default();
    // 2026-12-01T13:05:09Z -> 20261201T130509Z
    let amz_date: String = stamp.chars().filter(|c| *c != '-' && *c != ':').collect();
    let credential = format!(
        "{}/{}/{}/s3/aws4_request",
        identity.access_key_id,
        &amz_date[..8],
        identity.region
    );
    let expiration = DateTime::from(now + conditions.expires_in)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_default();

    let mut fields = BTreeMap::from([
        ("key".to_owned(), conditions.key.to_owned()),
        ("Content-Type".to_owned(), conditions.content_type.to_owned()),
        ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential".to_owned(), credential),
        ("x-amz-date".to_owned(), amz_date),
    ]);
    if let Some(token) = identity.session_token {
        fields.insert("x-amz-security-token".to_owned(), token.to_owned());
    }
    let mut policy_conditions = vec![
        serde_json::json!({ "bucket": conditions.bucket }),
        serde_json::json!(["content-length-range", 1, conditions.max_bytes]),
    ];
    // Every other field sent is pinned to its exact value.
    policy_conditions.extend(fields.iter().map(|(name, value)| serde_json::json!({ name: value })));
    let policy = serde_json::json!({ "expiration": expiration, "conditions": policy_conditions });
    let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());

    let signing_key = aws_sigv4::sign::v4::generate_signing_key(identity.secret_access_key, now, identity.region, "s3");
    let signature = aws_sigv4::sign::v4::calculate_signature(signing_key, policy.as_bytes());
    fields.insert("policy".to_owned(), policy);
    fields.insert("x-amz-signature".to_owned(), signature);
    PresignedPost { url, fields }
}

/// The bucket's URL from a presigned URL of `key` in it: its query string and the key's path
/// segments removed (`http://host/bucket/dir/a.png?X-Amz-…` → `http://host/bucket`).
pub fn bucket_url(presigned_object_url: &str, key: &str) -> String {
    let object_url = presigned_object_url
        .split_once('?')
        .map_or(presigned_object_url, |(base, _)| base);
    let segments = key.split('/').count();
    object_url
        .rsplitn(segments + 1, '/')
        .last()
        .unwrap_or(object_url)
        .trim_end_matches('/')
        .to_owned()
}

fn whole_seconds(time: SystemTime) -> SystemTime {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(post: &PresignedPost) -> serde_json::Value {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&post.fields["policy"])
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    const IDENTITY: SigningIdentity<'static> = SigningIdentity {
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        session_token: Some("session"),
        region: "us-east-1",
    };

    #[test]
    fn the_policy_pins_bucket_key_type_and_size_and_is_signed() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_130_309) + Duration::from_millis(700);
        let conditions = PostConditions {
            bucket: "images",
            key: "uploads/abc-cat.png",
            content_type: "image/png",
            max_bytes: 52_428_800,
            expires_in: Duration::from_secs(900),
        };
        let post = sign(
            "https://images.s3.us-east-1.amazonaws.com".into(),
            &conditions,
            &IDENTITY,
            now,
        );
        let policy = decode(&post);
        assert_eq!(policy["expiration"], "2026-12-01T13:20:09Z", "{policy}");
        let list = policy["conditions"].as_array().unwrap();
        let has = |c: serde_json::Value| list.contains(&c);
        assert!(has(serde_json::json!({"bucket": "images"})), "{policy}");
        assert!(
            has(serde_json::json!(["content-length-range", 1, 52_428_800])),
            "{policy}"
        );
        assert!(has(serde_json::json!({"key": "uploads/abc-cat.png"})), "{policy}");
        assert!(has(serde_json::json!({"Content-Type": "image/png"})), "{policy}");
        assert!(has(serde_json::json!({"x-amz-security-token": "session"})), "{policy}");
        assert_eq!(post.fields["x-amz-date"], "20261201T130509Z");
        assert_eq!(
            post.fields["x-amz-credential"],
            "AKIAIOSFODNN7EXAMPLE/20261201/us-east-1/s3/aws4_request"
        );
        // Every field the form sends but the signature and the policy itself is a condition.
        for (name, value) in &post.fields {
            if name != "policy" && name != "x-amz-signature" {
                assert!(
                    has(serde_json::json!({ name: value })),
                    "{name} is not pinned: {policy}"
                );
            }
        }
        // The signature is SigV4 over the base64 policy with the day's signing key.
        let key = aws_sigv4::sign::v4::generate_signing_key(IDENTITY.secret_access_key, now, "us-east-1", "s3");
        let expected = aws_sigv4::sign::v4::calculate_signature(key, post.fields["policy"].as_bytes());
        assert_eq!(post.fields["x-amz-signature"], expected);
        assert_eq!(expected.len(), 64);
    }

    #[test]
    fn bucket_urls_come_from_presigned_object_urls() {
        assert_eq!(
            bucket_url(
                "http://127.0.0.1:5077/images/uploads/x-cat.png?list-type=2&X-Amz-Signature=x",
                "uploads/x-cat.png"
            ),
            "http://127.0.0.1:5077/images"
        );
        assert_eq!(
            bucket_url("https://images.s3.eu-west-1.amazonaws.com/a.png?X-Amz-Date=1", "a.png"),
            "https://images.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            bucket_url("https://images.s3.eu-west-1.amazonaws.com/p//q/r.jpg?x", "p//q/r.jpg"),
            "https://images.s3.eu-west-1.amazonaws.com"
        );
    }
}
