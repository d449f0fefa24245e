//! CloudTrail over raw signed JSON requests: LookupEvents sees the calls the server just served,
//! trail errors carry CloudTrail's codes, and ListPublicKeys returns PKCS#1 keys.
//! Delivery and `aws cloudtrail validate-logs` are covered by tests/python/test_cloudtrail.py.

use crate::harness::{self, Server};

const TARGET: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101";

fn signed(server: &Server, service: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut map = http::HeaderMap::new();
    let authority = server.endpoint.trim_start_matches("http://").to_string();
    map.insert("host", authority.parse().expect("host"));
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("name");
        map.insert(name, value.parse().expect("header"));
    }
    let params = citadel_sigv4::SigningParams {
        access_key_id: harness::ROOT_ACCESS_KEY_ID,
        secret_access_key: harness::ROOT_SECRET_ACCESS_KEY,
        security_token: None,
        region: "us-east-1",
        service,
        time: time::OffsetDateTime::now_utc(),
    };
    let hash = citadel_sigv4::sha256_hex(body.as_bytes());
    citadel_sigv4::sign_request(&params, "POST", "/", "", &mut map, &hash).expect("sign");
    let pairs: Vec<(String, String)> = map
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(n, _)| n != "host")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    server.http("POST", "/", body.as_bytes(), &refs)
}

fn cloudtrail(server: &Server, op: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let target = format!("{TARGET}.{op}");
    let (status, text) = signed(
        server,
        "cloudtrail",
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", &target),
        ],
        &body.to_string(),
    );
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

fn iam_create_user(server: &Server, name: &str) {
    let form = format!("Action=CreateUser&Version=2010-05-08&UserName={name}");
    let (status, body) = signed(
        server,
        "iam",
        &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
        &form,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn lookup_events_sees_served_calls_newest_first() {
    let server = Server::start();
    for name in ["ct-it-a", "ct-it-b", "ct-it-c"] {
        iam_create_user(&server, name);
    }
    let (status, out) = cloudtrail(
        &server,
        "LookupEvents",
        serde_json::json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}], "MaxResults": 2}),
    );
    assert_eq!(status, 200, "{out}");
    let events = out["Events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    let newest: serde_json::Value =
        serde_json::from_str(events[0]["CloudTrailEvent"].as_str().expect("record")).expect("json");
    let params = &newest["requestParameters"];
    // The pipeline may name parameters as the model does (`UserName`) or as AWS records them (`userName`).
    assert!(
        params["UserName"] == "ct-it-c" || params["userName"] == "ct-it-c",
        "{newest}"
    );
    assert_eq!(events[0]["ReadOnly"], "false");
    let token = out["NextToken"].as_str().expect("token").to_string();
    let (_, next) = cloudtrail(
        &server,
        "LookupEvents",
        serde_json::json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}], "MaxResults": 2, "NextToken": token}),
    );
    let rest = next["Events"].as_array().expect("events");
    assert_eq!(rest.len(), 1);
    assert!(next.get("NextToken").is_none());

    let (status, err) = cloudtrail(
        &server,
        "LookupEvents",
        serde_json::json!({"MaxResults": 2, "NextToken": "garbage!"}),
    );
    assert_eq!(status, 400);
    assert_eq!(err["__type"], "InvalidNextTokenException");
}

#[test]
fn trail_errors_and_public_keys() {
    let server = Server::start();
    let cases = [
        (
            "CreateTrail",
            serde_json::json!({"Name": "t-it", "S3BucketName": "no-such-bucket-ct-it"}),
            "S3BucketDoesNotExistException",
        ),
        (
            "CreateTrail",
            serde_json::json!({"Name": "-x-", "S3BucketName": "b"}),
            "InvalidTrailNameException",
        ),
        (
            "GetTrailStatus",
            serde_json::json!({"Name": "missing"}),
            "TrailNotFoundException",
        ),
        (
            "DeleteTrail",
            serde_json::json!({"Name": "arn:aws:s3:::b"}),
            "CloudTrailARNInvalidException",
        ),
    ];
    for (op, body, code) in cases {
        let (status, out) = cloudtrail(&server, op, body.clone());
        assert_eq!(status, 400, "{op} {body}: {out}");
        assert_eq!(out["__type"], code, "{op} {body}: {out}");
    }
    let (status, out) = cloudtrail(&server, "DescribeTrails", serde_json::json!({}));
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["trailList"], serde_json::json!([]));
    let (status, out) = cloudtrail(&server, "ListPublicKeys", serde_json::json!({}));
    assert_eq!(status, 200, "{out}");
    let key = &out["PublicKeyList"][0];
    assert!(
        key["Value"].as_str().expect("value").starts_with("MIIBCgKCAQEA"),
        "{out}"
    );
    assert_eq!(key["Fingerprint"].as_str().expect("fingerprint").len(), 32);
}
