//! Boundary tests of the model-driven codecs: captured botocore requests decode to the parameters
//! botocore was given, encoded responses and errors parse in botocore to what the handler returned,
//! validation messages read as AWS writes them, and no input makes a decoder panic.

use std::path::PathBuf;
use std::process::Command;

use citadel_wire::codec::{self, Decoded, RequestParts, ServiceModel};
use citadel_wire::{AwsError, Protocol};
use proptest::prelude::*;
use serde_json::{Value, json};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn decode(
    service: &str,
    method: &str,
    query: &str,
    header_pairs: &[(&str, &str)],
    body: &str,
) -> Result<Decoded, AwsError> {
    let map = headers(header_pairs);
    let request = RequestParts {
        method,
        path: "/",
        query,
        headers: &map,
        body: body.as_bytes(),
    };
    codec::decode_request(codec::model(service).unwrap(), &request)
}

fn iam_form(body: &str) -> Result<Decoded, AwsError> {
    decode(
        "iam",
        "POST",
        "",
        &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
        body,
    )
}

fn json_call(service: &str, target: &str, body: &str) -> Result<Decoded, AwsError> {
    decode(
        service,
        "POST",
        "",
        &[("x-amz-target", target), ("content-type", "application/x-amz-json-1.1")],
        body,
    )
}

#[test]
fn captured_requests_decode_to_the_params_given_to_botocore() {
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(fixture_path("requests.json")).unwrap()).unwrap();
    let cases = bundle["cases"].as_array().unwrap();
    assert!(cases.len() >= 16);
    for case in cases {
        let service = case["service"].as_str().unwrap();
        let request = &case["request"];
        let pairs: Vec<(String, String)> = request["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let decoded = decode(
            service,
            request["method"].as_str().unwrap(),
            request["query"].as_str().unwrap(),
            &pairs,
            request["body"].as_str().unwrap(),
        )
        .unwrap_or_else(|e| panic!("{service} {}: {e}", case["operation"]));
        assert_eq!(decoded.operation, case["operation"].as_str().unwrap());
        assert_eq!(
            Some(decoded.protocol),
            Protocol::from_model_name(case["protocol"].as_str().unwrap())
        );
        assert_eq!(decoded.input, case["expected"], "{service} {}", decoded.operation);
    }
}

#[test]
fn query_requests_also_arrive_as_get_query_strings() {
    // Presigned STS GetCallerIdentity URLs (Vault, EKS authenticators) carry everything in the query.
    let decoded = decode(
        "sts",
        "GET",
        "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256",
        &[],
        "",
    )
    .unwrap();
    assert_eq!(decoded.operation, "GetCallerIdentity");
    assert_eq!(decoded.input, json!({}));
    // CloudWatch is query-compatible: a form request is decoded with the query protocol.
    let decoded = decode(
        "monitoring",
        "POST",
        "",
        &[("content-type", "application/x-www-form-urlencoded")],
        "Action=DescribeAlarms&Version=2010-08-01&AlarmNames.member.1=a&MaxRecords=5",
    )
    .unwrap();
    assert_eq!(decoded.protocol, Protocol::Query);
    assert_eq!(decoded.input, json!({"AlarmNames": ["a"], "MaxRecords": 5}));
}

#[test]
fn decoding_errors_use_the_protocol_codes() {
    let cases: Vec<(Result<Decoded, AwsError>, &str, u16, &str)> = vec![
        (
            iam_form("Action=Nope&Version=2010-05-08"),
            "InvalidAction",
            400,
            "Could not find operation Nope for version 2010-05-08",
        ),
        (
            iam_form("Action=GetUser&Version=2011-01-01"),
            "InvalidAction",
            400,
            "Could not find operation GetUser for version 2011-01-01",
        ),
        (iam_form("Version=2010-05-08"), "MissingAction", 400, "Missing Action"),
        (
            iam_form("Action=ListUsers&Version=2010-05-08&MaxItems=ten"),
            "ValidationError",
            400,
            "1 validation error detected: Value 'ten' at 'maxItems' failed to satisfy constraint: Member must be an integer",
        ),
        (
            json_call("kms", "TrentService.Nope", "{}"),
            "UnknownOperationException",
            400,
            "",
        ),
        (
            json_call("kms", "Logs_20140328.ListKeys", "{}"),
            "UnknownOperationException",
            400,
            "",
        ),
        (
            decode("kms", "POST", "", &[("x-amz-target", "TrentService")], "{}"),
            "UnknownOperationException",
            400,
            "",
        ),
        (
            json_call("kms", "TrentService.ListKeys", "{not json"),
            "SerializationException",
            400,
            "Could not parse the request body as JSON",
        ),
        (
            json_call("kms", "TrentService.ListKeys", "[1]"),
            "SerializationException",
            400,
            "Start of list found where not expected",
        ),
        (
            json_call("kms", "TrentService.DescribeKey", r#"{"KeyId": 5}"#),
            "SerializationException",
            400,
            "NUMBER_VALUE can not be converted to a String",
        ),
        (
            json_call("kms", "TrentService.Encrypt", r#"{"KeyId": "k", "Plaintext": "%%%"}"#),
            "SerializationException",
            400,
            "Base64 encoded value expected",
        ),
    ];
    for (result, code, status, message) in cases {
        let err = result.unwrap_err();
        assert_eq!(
            (err.code.as_ref(), err.status, err.message.as_str()),
            (code, status, message)
        );
    }
}

#[test]
fn json_inputs_normalise_timestamps_and_ignore_unknown_members() {
    let decoded = json_call(
        "cloudtrail",
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        r#"{"StartTime": "2024-01-01T00:00:00Z", "EndTime": 1704067200.5, "Bogus": 1, "MaxResults": null}"#,
    )
    .unwrap();
    assert_eq!(decoded.input, json!({"StartTime": 1704067200, "EndTime": 1704067200.5}));
    // An empty body is an input without members.
    assert_eq!(json_call("kms", "TrentService.ListKeys", "").unwrap().input, json!({}));
}

#[test]
fn validation_messages_read_as_aws_writes_them() {
    let long_name = "a".repeat(65);
    let cases: Vec<(Result<Decoded, AwsError>, &str, String)> = vec![
        (
            iam_form(&format!("Action=CreateUser&Version=2010-05-08&UserName={long_name}")),
            "ValidationError",
            format!(
                "1 validation error detected: Value '{long_name}' at 'userName' failed to satisfy constraint: \
                 Member must have length less than or equal to 64"
            ),
        ),
        (
            iam_form("Action=CreateUser&Version=2010-05-08&UserName=bad+name%21"),
            "ValidationError",
            "1 validation error detected: Value 'bad name!' at 'userName' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [\\w+=,.@-]+"
                .to_owned(),
        ),
        (
            iam_form("Action=CreateUser&Version=2010-05-08"),
            "ValidationError",
            "1 validation error detected: Value null at 'userName' failed to satisfy constraint: Member must not be null"
                .to_owned(),
        ),
        (
            iam_form("Action=PutUserPolicy&Version=2010-05-08&UserName=bob&PolicyName=p"),
            "ValidationError",
            "1 validation error detected: Value null at 'policyDocument' failed to satisfy constraint: \
             Member must not be null"
                .to_owned(),
        ),
        (
            iam_form("Action=CreateUser&Version=2010-05-08&UserName=bob&Tags.member.1.Key=&Tags.member.1.Value=v"),
            "ValidationError",
            "2 validation errors detected: Value '' at 'tags.1.member.key' failed to satisfy constraint: \
             Member must have length greater than or equal to 1; Value '' at 'tags.1.member.key' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+"
                .to_owned(),
        ),
        (
            iam_form("Action=GetAccountAuthorizationDetails&Version=2010-05-08&Filter.member.1=Bogus&MaxItems=0"),
            "ValidationError",
            "2 validation errors detected: Value 'Bogus' at 'filter.1.member' failed to satisfy constraint: \
             Member must satisfy enum value set: [User, Role, Group, LocalManagedPolicy, AWSManagedPolicy]; \
             Value '0' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1"
                .to_owned(),
        ),
        (
            json_call("kms", "TrentService.CreateKey", &format!(r#"{{"Description": "{}"}}"#, "é".repeat(8193))),
            "ValidationException",
            format!(
                "1 validation error detected: Value '{}' at 'description' failed to satisfy constraint: \
                 Member must have length less than or equal to 8192",
                "é".repeat(8193)
            ),
        ),
        (
            json_call("kms", "TrentService.ListKeys", r#"{"Limit": 1001}"#),
            "ValidationException",
            "1 validation error detected: Value '1001' at 'limit' failed to satisfy constraint: \
             Member must have value less than or equal to 1000"
                .to_owned(),
        ),
    ];
    for (result, code, message) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(err.code, code);
        assert_eq!(err.message, message);
    }
    // A string of 64 multi-byte characters is within a 64-character limit: lengths count characters.
    let name = "é".repeat(64);
    let err = iam_form(&format!("Action=CreateUser&Version=2010-05-08&UserName={name}")).unwrap_err();
    assert!(!err.message.contains("length"), "{}", err.message);
}

fn encode(service: &str, operation: &str, protocol: Protocol, output: &Value) -> codec::Encoded {
    codec::encode_response(codec::model(service).unwrap(), operation, protocol, output, "req-1").unwrap()
}

#[test]
fn query_responses_have_the_exact_aws_layout() {
    let encoded = encode(
        "sts",
        "GetCallerIdentity",
        Protocol::Query,
        &json!({"UserId": "AIDA<&>", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/bob"}),
    );
    assert_eq!(encoded.status, 200);
    assert!(encoded.headers.contains(&("Content-Type", "text/xml".to_owned())));
    assert!(encoded.headers.contains(&("x-amzn-RequestId", "req-1".to_owned())));
    assert_eq!(
        String::from_utf8(encoded.body).unwrap(),
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
         <UserId>AIDA&lt;&amp;&gt;</UserId><Account>123456789012</Account>\
         <Arn>arn:aws:iam::123456789012:user/bob</Arn></GetCallerIdentityResult>\
         <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
    );
    let encoded = encode("iam", "DeleteUser", Protocol::Query, &json!({}));
    assert_eq!(
        String::from_utf8(encoded.body).unwrap(),
        "<DeleteUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
         <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></DeleteUserResponse>"
    );
    let encoded = encode(
        "iam",
        "GetUserPolicy",
        Protocol::Query,
        &json!({"UserName": "u", "PolicyName": "p", "PolicyDocument": "{\"a\": \"b c~\"}"}),
    );
    let body = String::from_utf8(encoded.body).unwrap();
    assert!(
        body.contains("<PolicyDocument>%7B%22a%22%3A%20%22b%20c~%22%7D</PolicyDocument>"),
        "{body}"
    );
}

/// One response case for botocore: the value the handler returns and what botocore must read.
struct OutputCase {
    service: &'static str,
    operation: &'static str,
    protocol: Protocol,
    output: Value,
    expected: Value,
}

fn output_cases() -> Vec<OutputCase> {
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let user = json!({"Path": "/", "UserName": "bob", "UserId": "AIDAEXAMPLE", "Arn": "arn:aws:iam::123456789012:user/bob",
        "CreateDate": 1704067200, "PasswordLastUsed": "2024-01-02T03:04:05Z",
        "Tags": [{"Key": "team", "Value": "a&b <c>"}]});
    let user_expected = json!({"Path": "/", "UserName": "bob", "UserId": "AIDAEXAMPLE", "Arn": "arn:aws:iam::123456789012:user/bob",
        "CreateDate": 1704067200, "PasswordLastUsed": 1704164645,
        "Tags": [{"Key": "team", "Value": "a&b <c>"}]});
    let role = json!({"Path": "/", "RoleName": "r", "RoleId": "AROA1", "Arn": "arn:aws:iam::123456789012:role/r",
        "CreateDate": 1704067200.5, "AssumeRolePolicyDocument": policy, "MaxSessionDuration": 3600,
        "RoleLastUsed": {"LastUsedDate": 1704067200, "Region": "us-east-1"}});
    vec![
        OutputCase {
            service: "iam",
            operation: "GetUser",
            protocol: Protocol::Query,
            output: json!({"User": user.clone(), "Internal": "dropped"}),
            expected: json!({"User": user_expected.clone()}),
        },
        OutputCase {
            service: "iam",
            operation: "ListUsers",
            protocol: Protocol::Query,
            output: json!({"Users": [user.clone(), user.clone()], "IsTruncated": true, "Marker": "m 1"}),
            expected: json!({"Users": [user_expected.clone(), user_expected], "IsTruncated": true, "Marker": "m 1"}),
        },
        OutputCase {
            service: "iam",
            operation: "ListUsers",
            protocol: Protocol::Query,
            output: json!({"Users": [], "IsTruncated": false}),
            expected: json!({"Users": [], "IsTruncated": false}),
        },
        OutputCase {
            service: "iam",
            operation: "GetRole",
            protocol: Protocol::Query,
            output: json!({"Role": role.clone()}),
            expected: json!({"Role": role}),
        },
        OutputCase {
            service: "iam",
            operation: "GetAccountSummary",
            protocol: Protocol::Query,
            output: json!({"SummaryMap": {"Users": 3, "UsersQuota": 5000, "AccountMFAEnabled": 0}}),
            expected: json!({"SummaryMap": {"Users": 3, "UsersQuota": 5000, "AccountMFAEnabled": 0}}),
        },
        OutputCase {
            service: "iam",
            operation: "DeleteUser",
            protocol: Protocol::Query,
            output: json!({}),
            expected: json!({}),
        },
        OutputCase {
            service: "sts",
            operation: "GetCallerIdentity",
            protocol: Protocol::Query,
            output: json!({"UserId": "AIDA", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/bob"}),
            expected: json!({"UserId": "AIDA", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/bob"}),
        },
        OutputCase {
            service: "sts",
            operation: "AssumeRole",
            protocol: Protocol::Query,
            output: json!({"Credentials": {"AccessKeyId": "ASIA1", "SecretAccessKey": "s/+=", "SessionToken": "t",
                "Expiration": "2024-01-01T01:00:00+00:00"},
                "AssumedRoleUser": {"AssumedRoleId": "AROA1:s1", "Arn": "arn:aws:sts::123456789012:assumed-role/r/s1"},
                "PackedPolicySize": 7, "SourceIdentity": "me"}),
            expected: json!({"Credentials": {"AccessKeyId": "ASIA1", "SecretAccessKey": "s/+=", "SessionToken": "t",
                "Expiration": 1704070800},
                "AssumedRoleUser": {"AssumedRoleId": "AROA1:s1", "Arn": "arn:aws:sts::123456789012:assumed-role/r/s1"},
                "PackedPolicySize": 7, "SourceIdentity": "me"}),
        },
        OutputCase {
            service: "kms",
            operation: "CreateKey",
            protocol: Protocol::Json,
            output: json!({"KeyMetadata": {"AWSAccountId": "123456789012", "KeyId": "k1", "Arn": "arn:aws:kms:us-east-1:123456789012:key/k1",
                "CreationDate": "2024-01-01T00:00:00.250Z", "Enabled": true, "KeyUsage": "ENCRYPT_DECRYPT", "KeyState": "Enabled",
                "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "MultiRegion": false, "Internal": {"x": 1}}}),
            expected: json!({"KeyMetadata": {"AWSAccountId": "123456789012", "KeyId": "k1", "Arn": "arn:aws:kms:us-east-1:123456789012:key/k1",
                "CreationDate": 1704067200.25, "Enabled": true, "KeyUsage": "ENCRYPT_DECRYPT", "KeyState": "Enabled",
                "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "MultiRegion": false}}),
        },
        OutputCase {
            service: "kms",
            operation: "Encrypt",
            protocol: Protocol::Json,
            output: json!({"CiphertextBlob": "AAEC/w==", "KeyId": "arn:aws:kms:us-east-1:123456789012:key/k1", "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
            expected: json!({"CiphertextBlob": "AAEC/w==", "KeyId": "arn:aws:kms:us-east-1:123456789012:key/k1", "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
        },
        OutputCase {
            service: "logs",
            operation: "DescribeLogGroups",
            protocol: Protocol::Json,
            output: json!({"logGroups": [{"logGroupName": "/a", "creationTime": 1704067200000_i64, "storedBytes": 0}], "nextToken": "n"}),
            expected: json!({"logGroups": [{"logGroupName": "/a", "creationTime": 1704067200000_i64, "storedBytes": 0}], "nextToken": "n"}),
        },
        OutputCase {
            service: "cloudtrail",
            operation: "LookupEvents",
            protocol: Protocol::Json,
            output: json!({"Events": [{"EventId": "e1", "EventName": "CreateUser", "EventTime": 1704067200,
                "Resources": [{"ResourceType": "AWS::IAM::User", "ResourceName": "bob"}], "CloudTrailEvent": "{\"a\":1}"}]}),
            expected: json!({"Events": [{"EventId": "e1", "EventName": "CreateUser", "EventTime": 1704067200,
                "Resources": [{"ResourceType": "AWS::IAM::User", "ResourceName": "bob"}], "CloudTrailEvent": "{\"a\":1}"}]}),
        },
        OutputCase {
            service: "monitoring",
            operation: "DescribeAlarms",
            protocol: Protocol::Json,
            output: json!({"MetricAlarms": [{"AlarmName": "a", "Threshold": 5.5, "StateUpdatedTimestamp": 1704067200,
                "Dimensions": [{"Name": "Svc", "Value": "web"}], "EvaluationPeriods": 1}]}),
            expected: json!({"MetricAlarms": [{"AlarmName": "a", "Threshold": 5.5, "StateUpdatedTimestamp": 1704067200,
                "Dimensions": [{"Name": "Svc", "Value": "web"}], "EvaluationPeriods": 1}]}),
        },
        OutputCase {
            service: "monitoring",
            operation: "DescribeAlarms",
            protocol: Protocol::Query,
            output: json!({"MetricAlarms": [{"AlarmName": "a", "Threshold": 5.5, "StateUpdatedTimestamp": 1704067200,
                "Dimensions": [{"Name": "Svc", "Value": "web"}], "EvaluationPeriods": 1}]}),
            expected: json!({"MetricAlarms": [{"AlarmName": "a", "Threshold": 5.5, "StateUpdatedTimestamp": 1704067200,
                "Dimensions": [{"Name": "Svc", "Value": "web"}], "EvaluationPeriods": 1}]}),
        },
    ]
}

fn model_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Query => "query",
        Protocol::Json => "json",
        Protocol::RestJson => "rest-json",
        Protocol::RestXml => "rest-xml",
    }
}

fn bundle_entry(
    service: &str,
    operation: &str,
    protocol: Protocol,
    status: u16,
    headers: &[(&'static str, String)],
    body: &[u8],
) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone())))
        .collect();
    json!({"service": service, "operation": operation, "protocol": model_name(protocol), "status": status,
        "headers": headers, "body": String::from_utf8(body.to_vec()).unwrap(), "request_id": "req-1"})
}

fn error_cases() -> Vec<Value> {
    let mut cases = Vec::new();
    let not_found = AwsError::new("NoSuchEntity", 404, "The user with name <bob> & co cannot be found.");
    let kms_not_found = AwsError::new(
        "NotFoundException",
        400,
        "Key 'arn:aws:kms:us-east-1:1:key/x' does not exist",
    )
    .with_extra("Extra", json!(1));
    let internal = AwsError::internal();
    let rendered = [
        (
            "iam",
            "GetUser",
            Protocol::Query,
            codec::render_error(
                Protocol::Query,
                &not_found,
                "req-1",
                "",
                "https://iam.amazonaws.com/doc/2010-05-08/",
            ),
            &not_found,
        ),
        (
            "iam",
            "GetUser",
            Protocol::Query,
            codec::render_error(
                Protocol::Query,
                &internal,
                "req-1",
                "",
                "https://iam.amazonaws.com/doc/2010-05-08/",
            ),
            &internal,
        ),
        (
            "kms",
            "DescribeKey",
            Protocol::Json,
            codec::render_error(Protocol::Json, &kms_not_found, "req-1", "1.1", ""),
            &kms_not_found,
        ),
        (
            "kms",
            "DescribeKey",
            Protocol::RestJson,
            codec::render_error(Protocol::RestJson, &kms_not_found, "req-1", "", ""),
            &kms_not_found,
        ),
        (
            "kms",
            "DescribeKey",
            Protocol::RestXml,
            codec::render_error(Protocol::RestXml, &not_found, "req-1", "", ""),
            &not_found,
        ),
    ];
    for (service, operation, protocol, (status, headers, body), err) in rendered {
        let mut entry = bundle_entry(service, operation, protocol, status, &headers, &body);
        entry["kind"] = json!("error");
        entry["expected_code"] = json!(err.code);
        entry["expected_message"] = json!(err.message);
        cases.push(entry);
    }
    // CloudWatch in json mode: `__type` is the shape name, botocore reports the legacy query code.
    let monitoring = codec::model("monitoring").unwrap();
    let legacy = codec::modeled(monitoring, "ResourceNotFound", "no such alarm").unwrap();
    let (status, headers, body) = codec::render_model_error(monitoring, Protocol::Json, &legacy, "req-1");
    let mut entry = bundle_entry("monitoring", "DescribeAlarms", Protocol::Json, status, &headers, &body);
    entry["kind"] = json!("error");
    entry["expected_code"] = json!("ResourceNotFound");
    entry["expected_message"] = json!("no such alarm");
    cases.push(entry);
    cases
}

fn botocore_available() -> bool {
    Command::new("python3")
        .args(["-c", "import botocore"])
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false)
}

#[test]
fn encoded_responses_and_errors_parse_in_botocore() {
    let mut bundle = Vec::new();
    for case in output_cases() {
        let encoded = encode(case.service, case.operation, case.protocol, &case.output);
        let mut entry = bundle_entry(
            case.service,
            case.operation,
            case.protocol,
            encoded.status,
            &encoded.headers,
            &encoded.body,
        );
        entry["kind"] = json!("output");
        entry["expected"] = case.expected;
        bundle.push(entry);
    }
    bundle.extend(error_cases());
    if !botocore_available() {
        println!("note: python3 with botocore is not available; skipping the botocore parse check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("responses.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&bundle).unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join("check_parse.py");
    let output = Command::new("python3").arg(script).arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "botocore parsed some responses differently:\n{stdout}"
    );
    assert!(stdout.contains(&format!("{0} of {0} responses parsed as expected", bundle.len())));
}

#[test]
fn the_botocore_check_rejects_a_wrong_expectation() {
    // Guards the check above against passing vacuously: a response that does not carry the expected
    // member must make check_parse.py fail.
    if !botocore_available() {
        println!("note: python3 with botocore is not available; skipping the botocore parse check");
        return;
    }
    let encoded = encode(
        "sts",
        "GetCallerIdentity",
        Protocol::Query,
        &json!({"Account": "123456789012"}),
    );
    let mut entry = bundle_entry(
        "sts",
        "GetCallerIdentity",
        Protocol::Query,
        200,
        &encoded.headers,
        &encoded.body,
    );
    entry["kind"] = json!("output");
    entry["expected"] = json!({"Account": "210987654321"});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrong.json");
    std::fs::write(&path, serde_json::to_vec(&vec![entry]).unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join("check_parse.py");
    let output = Command::new("python3").arg(script).arg(&path).output().unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("$.Account: parsed '123456789012', expected '210987654321'")
    );
}

#[test]
fn error_rendering_sets_every_header_a_client_reads() {
    let err = AwsError::new("AccessDeniedException", 400, "denied");
    let (status, headers, body) = codec::render_error(Protocol::Json, &err, "rid", "1.1", "");
    assert_eq!(status, 400);
    assert!(headers.contains(&("x-amzn-ErrorType", "AccessDeniedException".to_owned())));
    assert!(headers.contains(&("Content-Type", "application/x-amz-json-1.1".to_owned())));
    assert!(headers.contains(&("x-amzn-RequestId", "rid".to_owned())));
    assert!(!headers.iter().any(|(name, _)| *name == "x-amzn-query-error"));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"__type": "AccessDeniedException", "message": "denied"})
    );

    let (_, headers, _) = codec::render_error(
        Protocol::Json,
        &err,
        "rid",
        "1.0",
        "http://monitoring.amazonaws.com/doc/2010-08-01/",
    );
    assert!(headers.contains(&("x-amzn-query-error", "AccessDeniedException;Sender".to_owned())));
    assert!(headers.contains(&("Content-Type", "application/x-amz-json-1.0".to_owned())));

    let (status, _, body) = codec::render_error(
        Protocol::Query,
        &AwsError::internal(),
        "rid",
        "",
        "https://sts.amazonaws.com/doc/2011-06-15/",
    );
    assert_eq!(status, 500);
    assert!(String::from_utf8(body).unwrap().starts_with(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Receiver</Type><Code>InternalFailure</Code>"
    ));
}

#[test]
fn modeled_errors_come_from_the_model() {
    let iam = codec::model("iam").unwrap();
    let kms = codec::model("kms").unwrap();
    let logs = codec::model("logs").unwrap();
    type Case<'a> = (&'a ServiceModel, &'a str, Option<(u16, bool)>);
    let cases: &[Case<'_>] = &[
        (iam, "NoSuchEntity", Some((404, true))),
        (iam, "EntityAlreadyExists", Some((409, true))),
        (iam, "ServiceFailure", Some((500, false))),
        (iam, "ReportExpired", Some((410, true))),
        (kms, "NotFoundException", Some((400, true))),
        (kms, "KMSInternalException", Some((500, false))),
        (logs, "ServiceUnavailableException", Some((500, false))),
        (iam, "AccessDenied", None),
    ];
    for (model, code, expected) in cases {
        assert_eq!(codec::modeled_error(model, code), *expected, "{code}");
    }
    let err = codec::modeled(iam, "NoSuchEntityException", "gone").unwrap();
    assert_eq!((err.code.as_ref(), err.status), ("NoSuchEntity", 404));
}

/// A small rest-json model in botocore's format, for the protocol no embedded service uses yet.
fn rest_model() -> &'static ServiceModel {
    let text = json!({
        "metadata": {"apiVersion": "2017-11-28", "endpointPrefix": "guardduty", "protocol": "rest-json", "protocols": ["rest-json"]},
        "operations": {
            "ListFindings": {"name": "ListFindings", "http": {"method": "POST", "requestUri": "/detector/{detectorId}/findings", "responseCode": 200},
                "input": {"shape": "ListFindingsRequest"}, "output": {"shape": "ListFindingsResponse"}},
            "GetFindings": {"name": "GetFindings", "http": {"method": "POST", "requestUri": "/detector/{detectorId}/findings/get", "responseCode": 200},
                "input": {"shape": "GetFindingsRequest"}},
            "GetObject": {"name": "GetObject", "http": {"method": "GET", "requestUri": "/objects/{Key+}"},
                "input": {"shape": "GetObjectRequest"}, "output": {"shape": "GetObjectResponse"}},
            "TagResource": {"name": "TagResource", "http": {"method": "POST", "requestUri": "/tags/{ResourceArn}", "responseCode": 204},
                "input": {"shape": "TagResourceRequest"}, "output": {"shape": "Empty"}}
        },
        "shapes": {
            "String": {"type": "string"},
            "Integer": {"type": "integer", "min": 1, "max": 50},
            "Long": {"type": "long"},
            "Timestamp": {"type": "timestamp"},
            "Ids": {"type": "list", "member": {"shape": "String"}},
            "Criterion": {"type": "map", "key": {"shape": "String"}, "value": {"shape": "Condition"}},
            "Condition": {"type": "structure", "members": {"Gte": {"shape": "Long", "locationName": "gte"}}},
            "FindingCriteria": {"type": "structure", "members": {"Criterion": {"shape": "Criterion", "locationName": "criterion"}}},
            "ListFindingsRequest": {"type": "structure", "required": ["DetectorId"], "members": {
                "DetectorId": {"shape": "String", "location": "uri", "locationName": "detectorId"},
                "FindingCriteria": {"shape": "FindingCriteria", "locationName": "findingCriteria"},
                "MaxResults": {"shape": "Integer", "locationName": "maxResults"}}},
            "ListFindingsResponse": {"type": "structure", "members": {
                "FindingIds": {"shape": "Ids", "locationName": "findingIds"},
                "NextToken": {"shape": "String", "locationName": "nextToken"},
                "UpdatedAt": {"shape": "Timestamp", "locationName": "updatedAt"}}},
            "GetFindingsRequest": {"type": "structure", "members": {
                "DetectorId": {"shape": "String", "location": "uri", "locationName": "detectorId"}}},
            "GetObjectRequest": {"type": "structure", "members": {
                "Key": {"shape": "String", "location": "uri", "locationName": "Key"},
                "Versions": {"shape": "Ids", "location": "querystring", "locationName": "version"},
                "Since": {"shape": "Timestamp", "location": "header", "locationName": "x-since"},
                "Limit": {"shape": "Integer", "location": "querystring", "locationName": "limit"}}},
            "GetObjectResponse": {"type": "structure", "payload": "Body", "members": {
                "ETag": {"shape": "String", "location": "header", "locationName": "ETag"},
                "Body": {"shape": "String"}}},
            "TagResourceRequest": {"type": "structure", "members": {
                "ResourceArn": {"shape": "String", "location": "uri", "locationName": "resourceArn"}}},
            "Empty": {"type": "structure", "members": {}}
        }
    });
    Box::leak(Box::new(ServiceModel::from_json(&text.to_string()).unwrap()))
}

#[test]
fn rest_json_routes_binds_and_encodes() {
    let model = rest_model();
    let empty = http::HeaderMap::new();
    let request = |method: &'static str,
                   path: &'static str,
                   query: &'static str,
                   headers: &'static http::HeaderMap,
                   body: &'static str| {
        RequestParts {
            method,
            path,
            query,
            headers,
            body: body.as_bytes(),
        }
    };
    let since: &'static http::HeaderMap = Box::leak(Box::new(headers(&[("x-since", "Mon, 01 Jan 2024 00:00:00 GMT")])));
    let empty: &'static http::HeaderMap = Box::leak(Box::new(empty));

    let decoded = codec::decode_request(
        model,
        &request(
            "POST",
            "/detector/det%3A1%2Fx/findings",
            "",
            empty,
            r#"{"findingCriteria": {"criterion": {"severity": {"gte": 7}}}, "maxResults": 5, "FindingCriteria": 1}"#,
        ),
    )
    .unwrap();
    assert_eq!(decoded.operation, "ListFindings");
    assert_eq!(
        decoded.input,
        json!({"FindingCriteria": {"Criterion": {"severity": {"Gte": 7}}}, "MaxResults": 5, "DetectorId": "det:1/x"})
    );
    let decoded = codec::decode_request(model, &request("POST", "/detector/d/findings/get", "", empty, "")).unwrap();
    assert_eq!(
        (decoded.operation, decoded.input),
        ("GetFindings", json!({"DetectorId": "d"}))
    );
    let decoded = codec::decode_request(
        model,
        &request("GET", "/objects/a%20b/c%2Bd", "version=1&version=2&limit=3", since, ""),
    )
    .unwrap();
    assert_eq!(
        decoded.input,
        json!({"Key": "a b/c+d", "Versions": ["1", "2"], "Limit": 3, "Since": 1704067200})
    );
    let err = codec::decode_request(model, &request("GET", "/objects/k", "limit=99", empty, "")).unwrap_err();
    assert_eq!(err.code, "ValidationException");
    assert!(err.message.contains("at 'limit'"), "{}", err.message);
    let err = codec::decode_request(model, &request("DELETE", "/nothing", "", empty, "")).unwrap_err();
    assert_eq!((err.code.as_ref(), err.status), ("UnknownOperationException", 404));

    let encoded = codec::encode_response(
        model,
        "ListFindings",
        Protocol::RestJson,
        &json!({"FindingIds": ["f1"], "UpdatedAt": "2024-01-01T00:00:00Z", "Other": 1}),
        "req-1",
    )
    .unwrap();
    assert_eq!(encoded.status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&encoded.body).unwrap(),
        json!({"findingIds": ["f1"], "updatedAt": 1704067200})
    );
    let encoded = codec::encode_response(model, "TagResource", Protocol::RestJson, &json!({}), "req-1").unwrap();
    assert_eq!(encoded.status, 204);
    let encoded = codec::encode_response(
        model,
        "GetObject",
        Protocol::RestJson,
        &json!({"ETag": "\"e\"", "Body": "raw text"}),
        "req-1",
    )
    .unwrap();
    assert_eq!(encoded.body, b"raw text");
    assert!(encoded.headers.contains(&("ETag", "\"e\"".to_owned())));
}

fn query_key() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("member".to_owned()),
        Just("entry".to_owned()),
        Just("key".to_owned()),
        Just("value".to_owned()),
        Just("Tags".to_owned()),
        Just("UserName".to_owned()),
        Just("PolicyInputList".to_owned()),
        Just("ContextEntries".to_owned()),
        Just("ContextKeyValues".to_owned()),
        Just("MaxItems".to_owned()),
        (0u64..5).prop_map(|n| n.to_string()),
        Just("99999999999999999999".to_owned()),
        "[A-Za-z.]{0,6}",
    ];
    proptest::collection::vec(segment, 1..6).prop_map(|parts| parts.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn query_decoding_never_panics(
        action in prop_oneof![Just("CreateUser"), Just("SimulateCustomPolicy"), Just("GetAccountAuthorizationDetails"), Just("ListUsers")],
        params in proptest::collection::vec((query_key(), ".{0,12}"), 0..12),
    ) {
        let mut pairs = vec![("Action".to_owned(), action.to_owned()), ("Version".to_owned(), "2010-05-08".to_owned())];
        pairs.extend(params);
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
        let _ = iam_form(&body);
    }

    #[test]
    fn json_decoding_never_panics(
        target in prop_oneof![Just("TrentService.CreateKey"), Just("TrentService.Encrypt"), Just("Logs_20140328.PutLogEvents")],
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let service = if target.starts_with("Logs") { "logs" } else { "kms" };
        let map = headers(&[("x-amz-target", target)]);
        let request = RequestParts { method: "POST", path: "/", query: "", headers: &map, body: &body };
        let _ = codec::decode_request(codec::model(service).unwrap(), &request);
    }

    #[test]
    fn structured_json_with_wrong_types_never_panics(value in json_value()) {
        let body = json!({"KeyId": value.clone(), "Tags": [value.clone()], "EncryptionContext": value.clone(), "Plaintext": value}).to_string();
        let _ = json_call("kms", "TrentService.Encrypt", &body);
        let _ = json_call("kms", "TrentService.CreateKey", &body);
    }

    #[test]
    fn random_bytes_as_query_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..96)) {
        let map = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        let request = RequestParts { method: "POST", path: "/", query: "", headers: &map, body: &body };
        let _ = codec::decode_request(codec::model("sts").unwrap(), &request);
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,4}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
