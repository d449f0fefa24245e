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
    // Parameters are named as AWS records them (`userName`), not as the model does (`UserName`).
    assert_eq!(params["userName"], "ct-it-c", "{newest}");
    assert!(params.get("UserName").is_none(), "{newest}");
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

/// The newest record of `event_name`, waiting for read-only records to be group-committed.
fn newest_record(server: &Server, event_name: &str) -> serde_json::Value {
    for _ in 0..50 {
        let (status, out) = cloudtrail(
            server,
            "LookupEvents",
            serde_json::json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": event_name}], "MaxResults": 1}),
        );
        assert_eq!(status, 200, "{out}");
        if let Some(text) = out["Events"][0]["CloudTrailEvent"].as_str() {
            return serde_json::from_str(text).expect("record");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no {event_name} record");
}

fn query(server: &Server, service: &str, form: &str) -> String {
    let (status, body) = signed(
        server,
        service,
        &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
        form,
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn kms(server: &Server, op: &str, body: serde_json::Value) -> serde_json::Value {
    let target = format!("TrentService.{op}");
    let (status, text) = signed(
        server,
        "kms",
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", &target),
        ],
        &body.to_string(),
    );
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn records_name_parameters_and_elements_as_aws_does() {
    let server = Server::start();

    // GetCallerIdentity: no parameters, and no elements for a read-only call.
    query(&server, "sts", "Action=GetCallerIdentity&Version=2011-06-15");
    let record = newest_record(&server, "GetCallerIdentity");
    assert_eq!(record["requestParameters"], serde_json::Value::Null, "{record}");
    assert_eq!(record["responseElements"], serde_json::Value::Null, "{record}");

    // GetSessionToken issues credentials: AWS records them, with the session token and without the secret.
    let body = query(
        &server,
        "sts",
        "Action=GetSessionToken&Version=2011-06-15&DurationSeconds=900",
    );
    let record = newest_record(&server, "GetSessionToken");
    assert_eq!(
        record["requestParameters"],
        serde_json::json!({"durationSeconds": 900}),
        "{record}"
    );
    let credentials = &record["responseElements"]["credentials"];
    let access_key = credentials["accessKeyId"].as_str().expect("accessKeyId");
    assert!(access_key.starts_with("ASIA") && body.contains(access_key), "{record}");
    assert!(
        credentials["sessionToken"].as_str().is_some_and(|t| body.contains(t)),
        "{record}"
    );
    assert!(
        credentials["expiration"].as_str().is_some_and(|t| t.ends_with('M')),
        "{record}"
    );
    assert!(credentials.get("secretAccessKey").is_none(), "{record}");
    let secret = body
        .split("<SecretAccessKey>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("secret");
    assert!(!record.to_string().contains(secret), "{record}");

    // KMS: keyId, keySpec and encryptionContext; KMS keeps `AWSAccountId`; no plaintext or ciphertext.
    let created = kms(&server, "CreateKey", serde_json::json!({"Description": "ct"}));
    let key_arn = created["KeyMetadata"]["Arn"].as_str().expect("arn").to_string();
    let key_id = created["KeyMetadata"]["KeyId"].as_str().expect("id").to_string();
    let record = newest_record(&server, "CreateKey");
    assert_eq!(
        record["requestParameters"],
        serde_json::json!({"description": "ct"}),
        "{record}"
    );
    let metadata = &record["responseElements"]["keyMetadata"];
    assert_eq!(metadata["AWSAccountId"], harness::ACCOUNT_ID, "{record}");
    assert_eq!(metadata["keyId"], key_id.as_str(), "{record}");
    assert_eq!(metadata["arn"], key_arn.as_str(), "{record}");
    let encrypted = kms(
        &server,
        "Encrypt",
        serde_json::json!({"KeyId": key_id, "Plaintext": "c3VwZXItc2VjcmV0LXBsYWludGV4dA==",
                           "EncryptionContext": {"Department": "Engineering"}}),
    );
    let record = newest_record(&server, "Encrypt");
    assert_eq!(
        record["requestParameters"],
        serde_json::json!({"keyId": key_id, "encryptionContext": {"Department": "Engineering"}}),
        "{record}"
    );
    assert_eq!(record["responseElements"], serde_json::Value::Null, "{record}");
    assert_eq!(record["resources"][0]["ARN"], key_arn.as_str(), "{record}");
    let text = record.to_string();
    assert!(!text.contains("c3VwZXItc2VjcmV0LXBsYWludGV4dA=="), "{record}");
    assert!(
        !text.contains(encrypted["CiphertextBlob"].as_str().expect("blob")),
        "{record}"
    );
}
