//! The hot path of every SDK's credential check: decoding `GetCallerIdentity` and encoding its answer.

use citadel_wire::Protocol;
use citadel_wire::codec::{self, RequestParts};
use criterion::{Criterion, black_box, criterion_group, criterion_main};

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
        b.iter(|| {
            let request = RequestParts {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body: black_box(body),
            };
            codec::decode_request(sts, &request)
        })
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
            let request = RequestParts {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body: black_box(body),
            };
            let decoded = codec::decode_request(sts, &request).expect("decodes");
            codec::encode_response(sts, decoded.operation, decoded.protocol, &output, "6f1a9d2e-req")
        })
    });
}

criterion_group!(benches, get_caller_identity);
criterion_main!(benches);
