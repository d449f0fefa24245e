//! The server itself: start-up, credentials, the pipeline's authentication errors, TLS,
//! graceful shutdown, durability and the test API.

use crate::harness::{self, ACCOUNT_ID, Options, ROOT_ACCESS_KEY_ID, ROOT_SECRET_ACCESS_KEY, Server};
use aws_sdk_sts::error::ProvideErrorMetadata;

#[tokio::test]
async fn get_caller_identity_answers_root() {
    let server = Server::start();
    let sts = aws_sdk_sts::Client::new(&harness::root_config(&server).await);
    let identity = sts.get_caller_identity().send().await.expect("GetCallerIdentity");
    assert_eq!(identity.arn(), Some("arn:aws:iam::000000000000:root"));
    assert_eq!(identity.account(), Some(ACCOUNT_ID));
    assert_eq!(identity.user_id(), Some(ACCOUNT_ID));
}

#[tokio::test]
async fn wrong_secret_is_signature_does_not_match() {
    let server = Server::start();
    let config = harness::sdk_config(
        &server.endpoint,
        ROOT_ACCESS_KEY_ID,
        "wrong-secret-wrong-secret-wrong-secret00",
        None,
    )
    .await;
    let err = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .expect_err("must fail");
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{err:?}");
}

#[tokio::test]
async fn unknown_key_is_invalid_client_token_id_and_permissive_mode_accepts_it() {
    let server = Server::start();
    let config = harness::sdk_config(&server.endpoint, "AKIANOSUCHKEY0000000", ROOT_SECRET_ACCESS_KEY, None).await;
    let err = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .expect_err("must fail");
    assert_eq!(err.code(), Some("InvalidClientTokenId"), "{err:?}");

    let permissive = Server::start_with(Options {
        args: vec!["--auth".into(), "permissive".into()],
        ..Default::default()
    });
    let config = harness::sdk_config(&permissive.endpoint, "AKIANOSUCHKEY0000000", "anything", None).await;
    let identity = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .expect("permissive");
    assert_eq!(identity.arn(), Some("arn:aws:iam::000000000000:root"));
    // Known keys are still verified in permissive mode.
    let config = harness::sdk_config(
        &permissive.endpoint,
        ROOT_ACCESS_KEY_ID,
        "wrong-secret-wrong-secret-wrong-secret00",
        None,
    )
    .await;
    let err = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .expect_err("must fail");
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
}

#[tokio::test]
async fn clock_skew_beyond_fifteen_minutes_is_rejected() {
    let server = Server::start_with(Options {
        args: vec!["--clock-offset-seconds".into(), "1200".into()],
        ..Default::default()
    });
    let err = aws_sdk_sts::Client::new(&harness::root_config(&server).await)
        .get_caller_identity()
        .send()
        .await
        .expect_err("must fail");
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{err:?}");
    assert!(err.message().unwrap_or("").contains("Signature expired"), "{err:?}");
}

#[test]
fn unsigned_and_malformed_requests_get_aws_errors() {
    let server = Server::start();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let (status, body) = server.http("POST", "/", b"Action=GetCallerIdentity&Version=2011-06-15", &form);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("<Code>MissingAuthenticationToken</Code>"), "{body}");

    let bad_auth = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("authorization", "AWS4-HMAC-SHA256 Credential=garbage"),
    ];
    let (status, body) = server.http("POST", "/", b"Action=GetCallerIdentity&Version=2011-06-15", &bad_auth);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("IncompleteSignature"), "{body}");

    let json = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "TrentService.ListKeys"),
    ];
    let (status, body) = server.http("POST", "/", b"{}", &json);
    assert!(status == 400 || status == 403, "{status} {body}");
}

#[test]
fn health_reports_version_uptime_and_services() {
    let server = Server::start();
    let (status, body) = server.http("GET", "/_citadel/health", b"", &[]);
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(health["status"], "ok");
    assert!(health["version"].as_str().is_some());
    assert!(health["uptime_seconds"].as_f64().is_some());
    assert!(
        health["services"]
            .as_array()
            .expect("services")
            .iter()
            .any(|s| s == "sts")
    );
}

#[test]
fn oversized_bodies_are_refused_early() {
    let server = Server::start_with(Options {
        args: vec!["--max-body-bytes".into(), "1024".into()],
        ..Default::default()
    });
    let body = vec![b'a'; 4096];
    let (status, _) = server.http(
        "POST",
        "/",
        &body,
        &[("content-type", "application/x-www-form-urlencoded")],
    );
    assert_eq!(status, 413);
}

#[tokio::test]
async fn generated_root_credentials_are_printed_once_and_stored_private() {
    let mut server = Server::start_with(Options {
        generated_credentials: true,
        ..Default::default()
    });
    let file = server.data_dir.join("root-credentials");
    assert_eq!(harness::mode_of(&file), 0o600);
    let text = std::fs::read_to_string(&file).expect("credentials file");
    let value = |name: &str| {
        text.lines().find_map(|l| {
            l.split_once('=')
                .filter(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_string())
        })
    };
    let akid = value("aws_access_key_id").expect("key id");
    let secret = value("aws_secret_access_key").expect("secret");
    assert_eq!(akid.len(), 20);
    assert!(akid.starts_with("AKIA"));
    assert_eq!(secret.len(), 40);
    let config = harness::sdk_config(&server.endpoint, &akid, &secret, None).await;
    let identity = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .expect("generated creds work");
    assert_eq!(identity.arn(), Some("arn:aws:iam::000000000000:root"));

    // A restart on the same data directory keeps the account and prints no secret again.
    let dir = server.keep_dir();
    server.kill9();
    let restarted = Server::start_with(Options {
        generated_credentials: true,
        data_dir: Some(server.data_dir.clone()),
        ..Default::default()
    });
    let printed: Vec<String> = restarted.stdout.try_iter().collect();
    assert!(printed.iter().all(|line| !line.contains(&secret)), "{printed:?}");
    let config = harness::sdk_config(&restarted.endpoint, &akid, &secret, None).await;
    aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .expect("after restart");
    drop(dir);
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut server = Server::start();
    let status = server.signal_and_wait("TERM");
    assert!(status.success(), "{status:?}");
    let lines: Vec<String> = server.stdout.try_iter().collect();
    assert!(lines.iter().any(|l| l == "Citadel stopped"), "{lines:?}");
}

#[tokio::test]
async fn https_with_a_self_signed_certificate() {
    let server = Server::start_with(Options {
        args: vec!["--tls-self-signed".into()],
        ..Default::default()
    });
    assert!(server.endpoint.starts_with("https://"), "{}", server.endpoint);
    let ca = std::fs::read(server.data_dir.join("tls-cert.pem")).expect("cert");
    let config = harness::sdk_config_tls(&server.endpoint, &ca).await;
    let identity = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .expect("over TLS");
    assert_eq!(identity.account(), Some(ACCOUNT_ID));
}

#[test]
fn reset_requires_the_test_api_flag() {
    let server = Server::start();
    let (status, _) = server.http("POST", "/_citadel/reset", b"", &[]);
    assert_eq!(status, 404);
    let server = Server::start_with(Options {
        args: vec!["--test-api".into()],
        ..Default::default()
    });
    for path in ["/_citadel/reset", "/moto-api/reset"] {
        let (status, body) = server.http("POST", path, b"", &[]);
        assert_eq!(status, 200, "{path}: {body}");
    }
}
