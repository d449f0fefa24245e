//! STS through aws-sdk-rust: a user assumes a role, and the session's credentials authenticate with
//! the role's permissions narrowed by the session policy.

use crate::harness::{self, ACCOUNT_ID, Server};
use aws_sdk_iam::error::ProvideErrorMetadata;

const ROLE_PERMISSIONS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:ListRoles","iam:ListUsers"],"Resource":"*"}]}"#;
const SESSION_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:ListRoles","Resource":"*"}]}"#;

#[tokio::test]
async fn assumed_role_sessions_authenticate_with_narrowed_permissions() {
    let server = Server::start();
    let root = aws_sdk_iam::Client::new(&harness::root_config(&server).await);
    let user = root.create_user().user_name("sts-it").send().await.expect("CreateUser");
    let user_arn = user.user().expect("user").arn().to_string();
    root.put_user_policy()
        .user_name("sts-it")
        .policy_name("assume")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#,
        )
        .send()
        .await
        .expect("PutUserPolicy");
    let key = root
        .create_access_key()
        .user_name("sts-it")
        .send()
        .await
        .expect("CreateAccessKey");
    let key = key.access_key().expect("key");
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{user_arn}"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let role = root
        .create_role()
        .role_name("sts-it-role")
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("CreateRole");
    let role_arn = role.role().expect("role").arn().to_string();
    root.put_role_policy()
        .role_name("sts-it-role")
        .policy_name("read")
        .policy_document(ROLE_PERMISSIONS)
        .send()
        .await
        .expect("PutRolePolicy");

    let as_user = harness::sdk_config(&server.endpoint, key.access_key_id(), key.secret_access_key(), None).await;
    let assumed = aws_sdk_sts::Client::new(&as_user)
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("it")
        .policy(SESSION_POLICY)
        .send()
        .await
        .expect("AssumeRole");
    let creds = assumed.credentials().expect("credentials");
    assert!(creds.access_key_id().starts_with("ASIA"));
    let session_arn = format!("arn:aws:sts::{ACCOUNT_ID}:assumed-role/sts-it-role/it");
    assert_eq!(assumed.assumed_role_user().map(|u| u.arn()), Some(session_arn.as_str()));

    let as_session = harness::sdk_config(
        &server.endpoint,
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token()),
    )
    .await;
    let identity = aws_sdk_sts::Client::new(&as_session)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert_eq!(identity.arn(), Some(session_arn.as_str()));
    let iam = aws_sdk_iam::Client::new(&as_session);
    iam.list_roles().send().await.expect("ListRoles is in both policies");
    let err = iam
        .list_users()
        .send()
        .await
        .expect_err("ListUsers is outside the session policy");
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");

    // A garbled token is refused before any policy is consulted.
    let garbled = harness::sdk_config(
        &server.endpoint,
        creds.access_key_id(),
        creds.secret_access_key(),
        Some("garbage"),
    )
    .await;
    let err = aws_sdk_sts::Client::new(&garbled)
        .get_caller_identity()
        .send()
        .await
        .expect_err("garbled token");
    assert_eq!(err.code(), Some("InvalidClientTokenId"), "{err:?}");
}
