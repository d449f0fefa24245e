//! KMS through aws-sdk-rust: key lifecycle, aliases, encryption with context, rotation, grants,
//! signatures, and the absence of plaintext in the data directory.
//!
//! Needs `aws-sdk-kms = { version = "1", default-features = false, features = ["rt-tokio", "behavior-version-latest"] }`
//! in the server crate's dev-dependencies.

use crate::harness::{self, Server};
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec};

async fn client(server: &Server) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&harness::root_config(server).await)
}

async fn new_key(kms: &aws_sdk_kms::Client) -> String {
    let out = kms.create_key().send().await.expect("CreateKey");
    out.key_metadata().expect("metadata").key_id().to_string()
}

#[tokio::test]
async fn encrypt_decrypt_with_context_and_alias() {
    let server = Server::start();
    let kms = client(&server).await;
    let key_id = new_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/it")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias");
    let out = kms
        .encrypt()
        .key_id("alias/it")
        .plaintext(Blob::new(b"integration".to_vec()))
        .encryption_context("stage", "it")
        .send()
        .await
        .expect("Encrypt");
    let blob = out.ciphertext_blob().expect("blob").clone();
    let plain = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("stage", "it")
        .send()
        .await
        .expect("Decrypt");
    assert_eq!(plain.plaintext().expect("plaintext").as_ref(), b"integration");
    assert!(plain.key_id().expect("key id").ends_with(&key_id));
    let err = kms
        .decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .expect_err("context is required");
    assert_eq!(err.code(), Some("InvalidCiphertextException"));
    let err = kms
        .create_alias()
        .alias_name("alias/aws/x")
        .target_key_id(&key_id)
        .send()
        .await
        .expect_err("reserved");
    assert_eq!(err.code(), Some("NotAuthorizedException"));
}

#[tokio::test]
async fn lifecycle_and_rotation() {
    let server = Server::start();
    let kms = client(&server).await;
    let key_id = new_key(&kms).await;
    kms.enable_key_rotation()
        .key_id(&key_id)
        .rotation_period_in_days(90)
        .send()
        .await
        .expect("EnableKeyRotation");
    let status = kms
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("status");
    assert!(status.key_rotation_enabled());
    let old = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"old".to_vec()))
        .send()
        .await
        .expect("Encrypt");
    kms.rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .expect("RotateKeyOnDemand");
    let back = kms
        .decrypt()
        .ciphertext_blob(old.ciphertext_blob().expect("blob").clone())
        .send()
        .await
        .expect("Decrypt");
    assert_eq!(back.plaintext().expect("plaintext").as_ref(), b"old");
    kms.disable_key().key_id(&key_id).send().await.expect("DisableKey");
    let err = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .expect_err("disabled");
    assert_eq!(err.code(), Some("DisabledException"));
    let scheduled = kms
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");
    assert_eq!(scheduled.key_state(), Some(&KeyState::PendingDeletion));
    kms.cancel_key_deletion().key_id(&key_id).send().await.expect("cancel");
    let meta = kms.describe_key().key_id(&key_id).send().await.expect("DescribeKey");
    assert_eq!(
        meta.key_metadata().expect("metadata").key_state(),
        Some(&KeyState::Disabled)
    );
}

#[tokio::test]
async fn sign_verify_and_grants() {
    let server = Server::start();
    let kms = client(&server).await;
    let out = kms
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .expect("CreateKey");
    let key_id = out.key_metadata().expect("metadata").key_id().to_string();
    let signature = kms
        .sign()
        .key_id(&key_id)
        .message(Blob::new(b"msg".to_vec()))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .expect("Sign");
    let verified = kms
        .verify()
        .key_id(&key_id)
        .message(Blob::new(b"msg".to_vec()))
        .signature(signature.signature().expect("signature").clone())
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .expect("Verify");
    assert!(verified.signature_valid());
    let public = kms.get_public_key().key_id(&key_id).send().await.expect("GetPublicKey");
    assert!(public.public_key().expect("public key").as_ref().len() > 60);

    let symmetric = new_key(&kms).await;
    let grant = kms
        .create_grant()
        .key_id(&symmetric)
        .grantee_principal("arn:aws:iam::000000000000:role/app")
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
        .send()
        .await
        .expect("CreateGrant");
    let grants = kms.list_grants().key_id(&symmetric).send().await.expect("ListGrants");
    assert_eq!(grants.grants().len(), 1);
    kms.revoke_grant()
        .key_id(&symmetric)
        .grant_id(grant.grant_id().expect("id"))
        .send()
        .await
        .expect("RevokeGrant");
    assert!(
        kms.list_grants()
            .key_id(&symmetric)
            .send()
            .await
            .expect("ListGrants")
            .grants()
            .is_empty()
    );
}

#[tokio::test]
async fn no_plaintext_reaches_the_data_directory() {
    let server = Server::start();
    let kms = client(&server).await;
    let key_id = new_key(&kms).await;
    let marker = b"citadel-it-secret-7f3a9c1e5b".to_vec();
    kms.encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(marker.clone()))
        .send()
        .await
        .expect("Encrypt");
    let data_key = kms
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .send()
        .await
        .expect("GenerateDataKey");
    let data_key = data_key.plaintext().expect("plaintext").as_ref().to_vec();
    let mut stack = vec![server.data_dir.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let content = std::fs::read(&path).expect("read");
            for needle in [&marker, &data_key] {
                assert!(
                    !content.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "{} holds a secret",
                    path.display()
                );
            }
        }
    }
}
