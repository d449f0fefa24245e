//! IAM through aws-sdk-rust: users, keys and policies enforced on the next request.
//!
//! Needs `aws-sdk-iam = { version = "1", default-features = false, features = ["rt-tokio", "behavior-version-latest"] }`
//! in the server crate's dev-dependencies.

use crate::harness::{self, ACCOUNT_ID, Server};
use aws_sdk_iam::error::ProvideErrorMetadata;

const LIST_USERS_ONLY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:ListUsers","Resource":"*"}]}"#;

#[tokio::test]
async fn user_keys_authenticate_and_policies_apply_on_the_next_request() {
    let server = Server::start();
    let root = aws_sdk_iam::Client::new(&harness::root_config(&server).await);
    let user = root
        .create_user()
        .user_name("sdk-user")
        .path("/it/")
        .send()
        .await
        .expect("CreateUser");
    let user = user.user().expect("user");
    assert_eq!(user.arn(), format!("arn:aws:iam::{ACCOUNT_ID}:user/it/sdk-user"));
    let key = root
        .create_access_key()
        .user_name("sdk-user")
        .send()
        .await
        .expect("CreateAccessKey");
    let key = key.access_key().expect("key");
    let config = harness::sdk_config(&server.endpoint, key.access_key_id(), key.secret_access_key(), None).await;

    let identity = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert_eq!(identity.arn(), Some(user.arn()));
    assert_eq!(identity.user_id(), Some(user.user_id()));

    let as_user = aws_sdk_iam::Client::new(&config);
    let err = as_user.list_users().send().await.expect_err("no policy yet");
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    assert_eq!(
        err.message(),
        Some(
            "User: arn:aws:iam::000000000000:user/it/sdk-user is not authorized to perform: iam:ListUsers on resource: arn:aws:iam::000000000000:user/ because no identity-based policy allows the iam:ListUsers action"
        )
    );

    root.put_user_policy()
        .user_name("sdk-user")
        .policy_name("list")
        .policy_document(LIST_USERS_ONLY)
        .send()
        .await
        .expect("PutUserPolicy");
    let users = as_user.list_users().send().await.expect("ListUsers allowed now");
    assert!(users.users().iter().any(|u| u.user_name() == "sdk-user"));
    let err = as_user
        .create_user()
        .user_name("nope")
        .send()
        .await
        .expect_err("CreateUser denied");
    assert_eq!(err.code(), Some("AccessDenied"));

    root.update_access_key()
        .user_name("sdk-user")
        .access_key_id(key.access_key_id())
        .status(aws_sdk_iam::types::StatusType::Inactive)
        .send()
        .await
        .expect("UpdateAccessKey");
    let err = as_user.list_users().send().await.expect_err("inactive key");
    assert_eq!(err.code(), Some("InvalidClientTokenId"), "{err:?}");
}

#[tokio::test]
async fn policy_documents_come_back_percent_encoded_like_aws() {
    let server = Server::start();
    let root = aws_sdk_iam::Client::new(&harness::root_config(&server).await);
    let created = root
        .create_policy()
        .policy_name("P")
        .policy_document(LIST_USERS_ONLY)
        .send()
        .await
        .expect("CreatePolicy");
    let arn = created.policy().and_then(|p| p.arn()).expect("arn").to_string();
    let version = root
        .get_policy_version()
        .policy_arn(&arn)
        .version_id("v1")
        .send()
        .await
        .expect("GetPolicyVersion");
    let document = version.policy_version().and_then(|v| v.document()).expect("document");
    // aws-sdk-rust hands over the encoded text, exactly as AWS sends it.
    assert!(document.starts_with("%7B"), "{document}");
    let err = root
        .get_policy()
        .policy_arn("arn:aws:iam::000000000000:policy/none")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(err.code(), Some("NoSuchEntity"));
}
