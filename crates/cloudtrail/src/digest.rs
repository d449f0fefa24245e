//! The byte formats of log files and digest files, and their object keys; pure functions only.
//!
//! See `docs`' CloudTrail integrity spec (shared/specs/cloudtrail-integrity.md): a digest is
//! serialised once, those exact bytes are hashed and gzipped, and the signature covers the digest
//! end time, its own location, the hash and the previous signature.
//! Keeping these functions pure lets the unit tests check the format byte for byte and verify
//! signatures with the public key, without a store or a bucket.

use crate::model::{DeliveredLog, PreviousDigest};
use aws_lc_rs::digest::{SHA256, digest};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use std::io::Write;
use time::OffsetDateTime;

/// The signature algorithm name CloudTrail writes in digests and metadata.
pub const SIGNATURE_ALGORITHM: &str = "SHA256withRSA";

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest(&SHA256, bytes).as_ref())
}

/// Gzips `bytes`.
///
/// # Errors
/// Only if writing to memory fails, which it does not in practice.
pub fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4 + 64), Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso_seconds(t: OffsetDateTime) -> String {
    citadel_core::clock::iso8601(t)
}

fn date_folders(t: OffsetDateTime) -> String {
    format!("{:04}/{:02}/{:02}", t.year(), u8::from(t.month()), t.day())
}

fn prefix_part(prefix: Option<&str>) -> String {
    match prefix {
        Some(p) if !p.is_empty() => format!("{p}/"),
        _ => String::new(),
    }
}

/// The key of a log file:
/// `[prefix/]AWSLogs/ACCT/CloudTrail/REGION/YYYY/MM/DD/ACCT_CloudTrail_REGION_YYYYMMDDTHHmmZ_RANDOM.json.gz`.
pub fn log_key(prefix: Option<&str>, account: &str, region: &str, at: OffsetDateTime, random16: &str) -> String {
    format!(
        "{}AWSLogs/{account}/CloudTrail/{region}/{}/{account}_CloudTrail_{region}_{:04}{:02}{:02}T{:02}{:02}Z_{random16}.json.gz",
        prefix_part(prefix),
        date_folders(at),
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
    )
}

/// The key of a digest file, named after its end time:
/// `[prefix/]AWSLogs/ACCT/CloudTrail-Digest/REGION/YYYY/MM/DD/ACCT_CloudTrail-Digest_REGION_TRAIL_HOME_YYYYMMDDTHHMMSSZ.json.gz`.
pub fn digest_key(
    prefix: Option<&str>,
    account: &str,
    region: &str,
    trail: &str,
    home_region: &str,
    end: OffsetDateTime,
) -> String {
    format!(
        "{}AWSLogs/{account}/CloudTrail-Digest/{region}/{}/{account}_CloudTrail-Digest_{region}_{trail}_{home_region}_{:04}{:02}{:02}T{:02}{:02}{:02}Z.json.gz",
        prefix_part(prefix),
        date_folders(end),
        end.year(),
        u8::from(end.month()),
        end.day(),
        end.hour(),
        end.minute(),
        end.second(),
    )
}

/// The uncompressed bytes of a log file: `{"Records":[...]}`.
pub fn log_body(records: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "Records": records })).unwrap_or_default()
}

/// Everything a digest says about itself.
#[derive(Debug, Clone)]
pub struct DigestInput<'a> {
    /// The account.
    pub account: &'a str,
    /// The window start.
    pub start: OffsetDateTime,
    /// The window end.
    pub end: OffsetDateTime,
    /// The bucket the digest is written to.
    pub bucket: &'a str,
    /// The key the digest is written to.
    pub key: &'a str,
    /// The signing key's fingerprint.
    pub fingerprint: &'a str,
    /// Log files delivered in the window.
    pub logs: &'a [DeliveredLog],
    /// The previous digest of the chain, `None` for a starting digest.
    pub previous: Option<&'a PreviousDigest>,
}

/// The uncompressed digest bytes, with members in AWS's order.
pub fn digest_body(input: &DigestInput<'_>) -> Vec<u8> {
    let newest = input.logs.iter().map(|l| l.newest.as_str()).max();
    let oldest = input.logs.iter().map(|l| l.oldest.as_str()).min();
    let log_files: Vec<Value> = input
        .logs
        .iter()
        .map(|l| {
            json!({
                "s3Bucket": l.bucket,
                "s3Object": l.key,
                "hashValue": l.hash,
                "hashAlgorithm": "SHA-256",
                "newestEventTime": l.newest,
                "oldestEventTime": l.oldest,
            })
        })
        .collect();
    let previous = input.previous;
    let body = json!({
        "awsAccountId": input.account,
        "digestStartTime": iso_seconds(input.start),
        "digestEndTime": iso_seconds(input.end),
        "digestS3Bucket": input.bucket,
        "digestS3Object": input.key,
        "digestPublicKeyFingerprint": input.fingerprint,
        "digestSignatureAlgorithm": SIGNATURE_ALGORITHM,
        "newestEventTime": newest,
        "oldestEventTime": oldest,
        "previousDigestS3Bucket": previous.map(|p| p.bucket.as_str()),
        "previousDigestS3Object": previous.map(|p| p.key.as_str()),
        "previousDigestHashValue": previous.map(|p| p.hash.as_str()),
        "previousDigestHashAlgorithm": previous.map(|_| "SHA-256"),
        "previousDigestSignature": previous.map(|p| p.signature.as_str()),
        "logFiles": log_files,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The string a digest signature covers: end time, `bucket/key`, hex SHA-256 of the digest bytes,
/// and the previous signature (or `null`), joined by newlines.
pub fn string_to_sign(
    end: OffsetDateTime,
    bucket: &str,
    key: &str,
    body_hash: &str,
    previous_signature: Option<&str>,
) -> String {
    format!(
        "{}\n{bucket}/{key}\n{body_hash}\n{}",
        iso_seconds(end),
        previous_signature.unwrap_or("null")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        // 2015-08-17T14:45:09Z
        let t = at(1_439_822_709);
        let cases = [
            (
                log_key(None, "111122223333", "us-east-2", t, "9nYN7gp2eWAJHIfT"),
                "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1445Z_9nYN7gp2eWAJHIfT.json.gz",
            ),
            (
                log_key(Some("pfx"), "111122223333", "us-east-2", t, "AAAAAAAAAAAAAAAA"),
                "pfx/AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1445Z_AAAAAAAAAAAAAAAA.json.gz",
            ),
            (
                digest_key(None, "111122223333", "us-east-2", "t1", "us-east-1", t),
                "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_t1_us-east-1_20150817T144509Z.json.gz",
            ),
            (
                digest_key(Some("a/b"), "1", "r", "t", "h", t),
                "a/b/AWSLogs/1/CloudTrail-Digest/r/2015/08/17/1_CloudTrail-Digest_r_t_h_20150817T144509Z.json.gz",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        // The CLI reads the digest timestamp from fixed offsets of the key.
        let key = digest_key(None, "1", "r", "t", "h", t);
        assert_eq!(&key[key.len() - 24..key.len() - 8], "20150817T144509Z");
    }

    #[test]
    fn starting_and_chained_digests_have_the_documented_fields() {
        let logs = vec![
            DeliveredLog {
                bucket: "b".into(),
                key: "k1".into(),
                hash: "aa".into(),
                newest: "2025-01-01T00:00:05Z".into(),
                oldest: "2025-01-01T00:00:01Z".into(),
            },
            DeliveredLog {
                bucket: "b".into(),
                key: "k2".into(),
                hash: "bb".into(),
                newest: "2025-01-01T00:00:09Z".into(),
                oldest: "2025-01-01T00:00:03Z".into(),
            },
        ];
        let start = digest_body(&DigestInput {
            account: "1",
            start: at(1_735_689_600),
            end: at(1_735_693_200),
            bucket: "b",
            key: "d1",
            fingerprint: "f",
            logs: &logs,
            previous: None,
        });
        let v: Value = serde_json::from_slice(&start).unwrap();
        assert_eq!(v["digestStartTime"], "2025-01-01T00:00:00Z");
        assert_eq!(v["digestEndTime"], "2025-01-01T01:00:00Z");
        assert_eq!(v["newestEventTime"], "2025-01-01T00:00:09Z");
        assert_eq!(v["oldestEventTime"], "2025-01-01T00:00:01Z");
        assert_eq!(v["previousDigestSignature"], Value::Null);
        assert_eq!(v["previousDigestHashValue"], Value::Null);
        assert_eq!(v["logFiles"][1]["s3Object"], "k2");
        assert_eq!(v["logFiles"][1]["hashAlgorithm"], "SHA-256");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.first().map(|k| k.as_str()), Some("awsAccountId"));
        assert_eq!(keys.last().map(|k| k.as_str()), Some("logFiles"));

        let previous = PreviousDigest {
            bucket: "b".into(),
            key: "d1".into(),
            hash: sha256_hex(&start),
            signature: "abcd".into(),
        };
        let empty = digest_body(&DigestInput {
            account: "1",
            start: at(1_735_693_200),
            end: at(1_735_696_800),
            bucket: "b",
            key: "d2",
            fingerprint: "f",
            logs: &[],
            previous: Some(&previous),
        });
        let v: Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(v["newestEventTime"], Value::Null);
        assert_eq!(v["logFiles"], json!([]));
        assert_eq!(v["previousDigestS3Object"], "d1");
        assert_eq!(v["previousDigestHashValue"], sha256_hex(&start));
        assert_eq!(v["previousDigestHashAlgorithm"], "SHA-256");
        assert_eq!(v["previousDigestSignature"], "abcd");
    }

    #[test]
    fn string_to_sign_has_four_lines() {
        let s = string_to_sign(at(0), "b", "k", "h", None);
        assert_eq!(s, "1970-01-01T00:00:00Z\nb/k\nh\nnull");
        let s = string_to_sign(at(0), "b", "k", "h", Some("ff"));
        assert!(s.ends_with("\nff") && !s.ends_with('\n'));
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let body = log_body(&[json!({"eventName": "X"})]);
        let packed = gzip(&body).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(packed.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        assert_eq!(body, br#"{"Records":[{"eventName":"X"}]}"#);
    }
}
