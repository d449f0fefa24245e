//! Hot paths of the model-driven codec: `GetCallerIdentity` (query protocol, every SDK's credential
//! check) and KMS `Encrypt` of 1 KiB (JSON protocol, a base64 blob each way).

use citadel_wire::Protocol;
use citadel_wire::codec::{self, RequestParts};
use criterion::{Criterion, black_box, criterion_group, criterion_main};

/// A POST to `/` with these headers and body, as the protocols of both benches send it.
fn post<'a>(headers: &'a http::HeaderMap, body: &'a [u8]) -> RequestParts<'a> {
    RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers,
        body: black_box(body),
    }
}

fn get_caller_identity(c: &mut Criterion) {
    let sts = codec::model("sts").expect("the sts model is embedded");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
    );
    let body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let output = serde_json::json!({
        "UserId": "AIDAEXAMPLEUSERID1234",
        "Account": "123456789012",
        "Arn": "arn:aws:iam::123456789012:user/bob",
    });
    c.bench_function("decode GetCallerIdentity (query)", |b| {
        b.iter(|| codec::decode_request(sts, &post(&headers, body)))
    });
    c.bench_function("encode GetCallerIdentity response (query)", |b| {
        b.iter(|| {
            codec::encode_response(
                sts,
                "GetCallerIdentity",
                Protocol::Query,
                black_box(&output),
                "6f1a9d2e-req",
            )
        })
    });
    c.bench_function("decode + encode GetCallerIdentity", |b| {
        b.iter(|| {
            let decoded = codec::decode_request(sts, &post(&headers, body)).expect("decodes");
            codec::encode_response(sts, decoded.operation, decoded.protocol, &output, "6f1a9d2e-req")
        })
    });
}

fn kms_encrypt(c: &mut Criterion) {
    use base64::Engine;
    let kms = codec::model("kms").expect("the kms model is embedded");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert("x-amz-target", http::HeaderValue::from_static("TrentService.Encrypt"));
    let b64 = base64::engine::general_purpose::STANDARD;
    let plaintext: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
        "Plaintext": b64.encode(&plaintext),
    }))
    .expect("serializes");
    // A symmetric ciphertext blob of 1 KiB plaintext is a little over 1 KiB.
    let blob: Vec<u8> = (0..1100u32).map(|i| (i * 13) as u8).collect();
    let output = serde_json::json!({
        "CiphertextBlob": b64.encode(&blob),
        "KeyId": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    });
    c.bench_function("decode KMS Encrypt of 1 KiB (json)", |b| {
        b.iter(|| codec::decode_request(kms, &post(&headers, &body)))
    });
    c.bench_function("encode KMS Encrypt response (json)", |b| {
        b.iter(|| codec::encode_response(kms, "Encrypt", Protocol::Json, black_box(&output), "6f1a9d2e-req"))
    });
}

criterion_group!(benches, get_caller_identity, kms_encrypt);
criterion_main!(benches);
