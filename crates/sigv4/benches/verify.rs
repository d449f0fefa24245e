//! Header verification of a botocore-shaped STS GetCallerIdentity request with a warm signing-key cache,
//! signed with a long-term key and with session credentials (a 456-byte `X-Amz-Security-Token`, the
//! size of a Citadel AssumeRole token, listed in `SignedHeaders`): issue 5 compares the two.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use time::OffsetDateTime;

use citadel_sigv4::{Payload, RequestParts, SigningParams, Verifier, parse_auth, sha256_hex, sign_request};

/// A stand-in for a sealed session token: 456 characters of standard base64, as AssumeRole issues.
fn session_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut token: String = (0..454u32)
        .map(|i| char::from(ALPHABET[(i.wrapping_mul(2_654_435_761) >> 7) as usize % ALPHABET.len()]))
        .collect();
    token.push_str("==");
    token
}

fn get_caller_identity(c: &mut Criterion) {
    let token = session_token();
    bench_one(
        c,
        "sigv4_header_verify_get_caller_identity",
        "AKIAIOSFODNN7EXAMPLE",
        None,
    );
    bench_one(
        c,
        "sigv4_header_verify_get_caller_identity_session",
        "ASIAIOSFODNN7EXAMPLE",
        Some(&token),
    );
}

fn bench_one(c: &mut Criterion, name: &str, access_key_id: &str, security_token: Option<&str>) {
    let now = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:4566"));
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
    );
    headers.insert(
        "user-agent",
        HeaderValue::from_static("Boto3/1.43.11 md/Botocore#1.43.11"),
    );
    headers.insert("content-length", HeaderValue::from_static("43"));
    let params = SigningParams {
        access_key_id,
        secret_access_key: secret,
        security_token,
        region: "us-east-1",
        service: "sts",
        time: now,
    };
    if sign_request(&params, "POST", "/", "", &mut headers, &sha256_hex(body)).is_err() {
        return;
    }
    let verifier = Verifier::default();
    let verify_once = |verifier: &Verifier| {
        let parsed = parse_auth(&headers, "")?;
        parsed.check_time(now)?;
        let request = RequestParts {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &headers,
            virtual_host_bucket: None,
        };
        verifier.verify(&parsed, secret.as_bytes(), &request, Payload::Bytes(body), now)
    };
    // Warm the cache and make sure the request really verifies.
    if verify_once(&verifier).is_err() {
        return;
    }
    c.bench_function(name, |b| {
        b.iter(|| black_box(verify_once(black_box(&verifier)).is_ok()))
    });
}

criterion_group!(benches, get_caller_identity);
criterion_main!(benches);
