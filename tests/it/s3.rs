//! S3 over raw HTTP: the parts that need no SDK (anonymous access, error shapes, request ids).
//! The SDK-driven S3 suite lives in tests/python/test_s3.py (boto3 and the aws CLI).

use crate::harness::Server;

#[test]
fn anonymous_requests_are_denied_with_s3_errors() {
    let server = Server::start();
    let cases: &[(&str, &str, u16, &str)] = &[
        ("GET", "/", 403, "<Code>AccessDenied</Code>"),
        ("GET", "/some-bucket-name", 403, "<Code>AccessDenied</Code>"),
        ("GET", "/some-bucket-name/some/key", 403, "<Code>AccessDenied</Code>"),
        ("PUT", "/new-bucket-name", 403, "<Code>AccessDenied</Code>"),
    ];
    for (method, path, status, code) in cases {
        let (got_status, body) = server.http(method, path, b"", &[]);
        assert_eq!(got_status, *status, "{method} {path}: {body}");
        assert!(body.contains(code), "{method} {path}: {body}");
        assert!(body.starts_with("<?xml"), "{method} {path}: {body}");
    }
}

#[test]
fn invalid_bucket_names_and_unknown_keys_are_rejected() {
    let server = Server::start();
    let (status, body) = server.http("GET", "/ab/key", b"", &[]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>InvalidBucketName</Code>"), "{body}");
    let (status, body) = server.http(
        "GET",
        "/some-bucket-name/key?AWSAccessKeyId=AKIANOSUCHKEY0000000&Signature=c2ln&Expires=4102444800",
        b"",
        &[],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("<Code>InvalidAccessKeyId</Code>"), "{body}");
    let (status, body) = server.http(
        "GET",
        "/some-bucket-name/key?AWSAccessKeyId=AKIANOSUCHKEY0000000&Signature=c2ln&Expires=1000000000",
        b"",
        &[],
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("<Code>AccessDenied</Code>") && body.contains("expired"),
        "{body}"
    );
}
