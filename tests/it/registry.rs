//! The operation registry walk: a principal with no policy is denied every operation of every
//! query and JSON service, so no handler can be reached without an allow from the policy engine.

use crate::harness::{self, Server};
use citadel_core::ServiceSpec;

/// Operations AWS lets any authenticated caller use without a permission.
const NEEDS_NO_PERMISSION: &[&str] = &[
    "sts:GetCallerIdentity",
    "sts:GetSessionToken",
    "sts:AssumeRoleWithWebIdentity",
    "sts:AssumeRoleWithSAML",
];

fn signed(
    server: &Server,
    key: &(String, String),
    service: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut map = http::HeaderMap::new();
    let authority = server.endpoint.trim_start_matches("http://").to_string();
    map.insert("host", authority.parse().expect("host"));
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("name");
        map.insert(name, value.parse().expect("header"));
    }
    let params = citadel_sigv4::SigningParams {
        access_key_id: &key.0,
        secret_access_key: &key.1,
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

fn denied(status: u16, body: &str) -> bool {
    (status == 403 || status == 400) && (body.contains("AccessDenied"))
}

/// Calls every operation of `spec` as `key` and returns the actions that were not denied.
fn walk(server: &Server, key: &(String, String), spec: &ServiceSpec, json_body: &str) -> Vec<String> {
    let mut not_denied = Vec::new();
    let model = citadel_wire::codec::model(spec.signing_name).expect("model");
    for op in spec.operations {
        let (status, body) = match spec.protocol {
            citadel_wire::Protocol::Query => {
                let version = model.metadata.api_version.clone();
                // Enough of each input for the request to reach the authorization step.
                let form = format!(
                    "Action={}&Version={version}&RoleArn=arn%3Aaws%3Aiam%3A%3A000000000000%3Arole%2Fwalk\
                     &RoleSessionName=walk&Name=walk&EncodedMessage=walk&AccessKeyId=AKIAIOSFODNN7EXAMPLE",
                    op.name
                );
                signed(
                    server,
                    key,
                    spec.signing_name,
                    &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
                    &form,
                )
            }
            _ => {
                let target = format!(
                    "{}.{}",
                    model.metadata.target_prefix.clone().unwrap_or_default(),
                    op.name
                );
                let content_type = format!("application/x-amz-json-{}", model.json_version());
                signed(
                    server,
                    key,
                    spec.signing_name,
                    &[
                        ("content-type", content_type.as_str()),
                        ("x-amz-target", target.as_str()),
                    ],
                    json_body,
                )
            }
        };
        if !denied(status, &body) {
            not_denied.push(format!(
                "{} -> {status} {}",
                op.action,
                body.chars().take(160).collect::<String>()
            ));
        }
    }
    not_denied
}

#[tokio::test]
async fn a_principal_without_policies_is_denied_every_operation() {
    let server = Server::start();
    let config = harness::root_config(&server).await;
    let iam = aws_sdk_iam::Client::new(&config);
    iam.create_user().user_name("nobody").send().await.expect("CreateUser");
    let created = iam
        .create_access_key()
        .user_name("nobody")
        .send()
        .await
        .expect("CreateAccessKey");
    let access_key = created.access_key().expect("key");
    let key = (
        access_key.access_key_id().to_string(),
        access_key.secret_access_key().to_string(),
    );
    // Give KMS operations a real key and ciphertext, so that they reach the authorization step.
    let kms = aws_sdk_kms::Client::new(&config);
    let key_id = kms
        .create_key()
        .send()
        .await
        .expect("CreateKey")
        .key_metadata()
        .expect("meta")
        .key_id()
        .to_string();
    let ciphertext = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(aws_sdk_kms::primitives::Blob::new(b"x".to_vec()))
        .send()
        .await
        .expect("Encrypt");
    kms.create_alias()
        .alias_name("alias/walk")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias");
    let grant = kms
        .create_grant()
        .key_id(&key_id)
        .grantee_principal("arn:aws:iam::000000000000:root")
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
        .send()
        .await
        .expect("CreateGrant");
    let grant_id = grant.grant_id().expect("grant id").to_string();
    use base64::Engine;
    let blob = base64::engine::general_purpose::STANDARD.encode(ciphertext.ciphertext_blob().expect("blob").as_ref());
    let kms_body = serde_json::json!({
        "KeyId": key_id, "CiphertextBlob": blob, "DestinationKeyId": key_id, "SourceKeyId": key_id,
        "TargetKeyId": key_id, "AliasName": "alias/walk", "GrantId": grant_id,
    })
    .to_string();

    let mut not_denied = Vec::new();
    not_denied.extend(walk(&server, &key, &citadel_iam::SPEC, ""));
    not_denied.extend(walk(&server, &key, &citadel_sts::SPEC, ""));
    not_denied.extend(walk(&server, &key, &citadel_kms::SPEC, &kms_body));
    let logs_body =
        r#"{"logGroupName": "walk", "logStreamName": "walk", "filterName": "walk", "AlarmNames": ["walk"]}"#;
    not_denied.extend(walk(&server, &key, &citadel_logs::LOGS_SPEC, logs_body));
    not_denied.extend(walk(&server, &key, &citadel_logs::CLOUDWATCH_SPEC, logs_body));
    let trail_body = r#"{"Name": "walk", "TrailName": "walk", "S3BucketName": "walk", "ResourceId": "walk"}"#;
    not_denied.extend(walk(&server, &key, &citadel_cloudtrail::SPEC, trail_body));
    not_denied.retain(|line| {
        !NEEDS_NO_PERMISSION
            .iter()
            .any(|action| line.starts_with(&format!("{action} ")))
    });
    assert!(
        not_denied.is_empty(),
        "reached without an allow:\n{}",
        not_denied.join("\n")
    );
    let operations = citadel_iam::SPEC.operations.len() + citadel_kms::SPEC.operations.len();
    assert!(operations > 150, "the registry lists {operations} operations");
}
