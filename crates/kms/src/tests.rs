//! Handler tests: each call runs `authorize` then `execute` and commits the effect's batch, as the
//! pipeline does (without the policy decision, which the pipeline's own tests cover).

use super::*;
use citadel_core::{Authorization, Call, Principal, RequestContext};
use citadel_store::RedbStore;
use serde_json::{Value, json};
use std::sync::Arc;
use time::OffsetDateTime;

const ACCOUNT: &str = "111122223333";

struct Env {
    kms: Kms,
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    now: OffsetDateTime,
    principal: Arc<Principal>,
    _dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("t.redb")).unwrap());
        let master = Arc::new(MasterKey::generate());
        let ids = IdGen::new(Arc::new(citadel_core::random::SeededRandom::new(1)));
        Self {
            kms: Kms::new(store.clone(), master.clone(), ids),
            store,
            master,
            now: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            principal: Arc::new(Principal::root(ACCOUNT, None)),
            _dir: dir,
        }
    }

    fn call(&self, op: &str, input: Value) -> Call {
        let op = SPEC.operation(op).unwrap();
        Call {
            ctx: RequestContext {
                request_id: "req".into(),
                principal: self.principal.clone(),
                region: "us-east-1".into(),
                source_ip: "127.0.0.1".parse().unwrap(),
                user_agent: "test".into(),
                secure_transport: false,
                time: self.now,
                service: "kms",
                operation: op.name,
            },
            op,
            input,
        }
    }

    async fn authorize(&self, op: &str, input: Value) -> Result<Authorization, AwsError> {
        self.kms.authorize(&self.call(op, input)).await
    }

    async fn run(&self, op: &str, input: Value) -> Result<Value, AwsError> {
        let call = self.call(op, input);
        self.kms.authorize(&call).await?;
        let effect = self.kms.execute(&call, &Authorized::for_tests()).await?;
        if !effect.batch.is_empty() {
            self.store.commit(effect.batch).await.unwrap();
        }
        Ok(effect.output)
    }

    async fn ok(&self, op: &str, input: Value) -> Value {
        match self.run(op, input).await {
            Ok(v) => v,
            Err(e) => panic!("{op} failed: {e}"),
        }
    }

    async fn err(&self, op: &str, input: Value) -> String {
        match self.run(op, input).await {
            Ok(v) => panic!("{op} succeeded unexpectedly: {v}"),
            Err(e) => e.code.to_string(),
        }
    }

    async fn create(&self, input: Value) -> String {
        self.ok("CreateKey", input).await["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn advance_days(&mut self, days: i64) {
        self.now += time::Duration::days(days);
    }
}

fn b64(bytes: &[u8]) -> String {
    input::b64(bytes)
}

fn unb64(v: &Value) -> Vec<u8> {
    input::unb64(v.as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn key_lifecycle_follows_aws_states() {
    let mut env = Env::new();
    let id = env
        .create(json!({"Description": "first", "Tags": [{"TagKey": "team", "TagValue": "a"}]}))
        .await;
    let meta = env.ok("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"].clone();
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(meta["KeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(meta["EncryptionAlgorithms"], json!(["SYMMETRIC_DEFAULT"]));
    assert_eq!(meta["Arn"], format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{id}"));
    let enc = json!({"KeyId": id, "Plaintext": b64(b"hi")});

    env.ok("DisableKey", json!({"KeyId": id})).await;
    assert_eq!(env.err("Encrypt", enc.clone()).await, "DisabledException");
    env.ok("EnableKey", json!({"KeyId": id})).await;
    env.ok("Encrypt", enc.clone()).await;

    for (days, code) in [(6, "ValidationException"), (31, "ValidationException")] {
        assert_eq!(
            env.err("ScheduleKeyDeletion", json!({"KeyId": id, "PendingWindowInDays": days}))
                .await,
            code
        );
    }
    let scheduled = env
        .ok("ScheduleKeyDeletion", json!({"KeyId": id, "PendingWindowInDays": 7}))
        .await;
    assert_eq!(scheduled["KeyState"], "PendingDeletion");
    assert_eq!(env.err("Encrypt", enc.clone()).await, "KMSInvalidStateException");
    assert_eq!(
        env.err("EnableKey", json!({"KeyId": id})).await,
        "KMSInvalidStateException"
    );
    assert_eq!(
        env.err("ScheduleKeyDeletion", json!({"KeyId": id})).await,
        "KMSInvalidStateException"
    );
    env.ok("CancelKeyDeletion", json!({"KeyId": id})).await;
    let meta = env.ok("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"].clone();
    assert_eq!(meta["KeyState"], "Disabled");
    assert!(meta.get("DeletionDate").is_none());

    env.ok("ScheduleKeyDeletion", json!({"KeyId": id, "PendingWindowInDays": 7}))
        .await;
    env.advance_days(6);
    env.ok("DescribeKey", json!({"KeyId": id})).await;
    env.advance_days(2);
    assert_eq!(env.err("DescribeKey", json!({"KeyId": id})).await, "NotFoundException");
    let keys = env.ok("ListKeys", json!({})).await;
    assert_eq!(keys["Keys"], json!([]));
    // ListKeys purged the record for real.
    let raw = env
        .store
        .get(model::KEYS, &model::key_key(ACCOUNT, "us-east-1", &id))
        .await
        .unwrap();
    assert!(raw.is_none());
}

#[tokio::test]
async fn list_keys_paginates() {
    let env = Env::new();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(env.create(json!({})).await);
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut input = json!({"Limit": 2});
        if let Some(m) = &marker {
            input["Marker"] = json!(m);
        }
        let page = env.ok("ListKeys", input).await;
        for key in page["Keys"].as_array().unwrap() {
            seen.push(key["KeyId"].as_str().unwrap().to_string());
        }
        if page["Truncated"] == json!(false) {
            assert!(page.get("NextMarker").is_none());
            break;
        }
        marker = Some(page["NextMarker"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn encryption_context_is_bound_and_required() {
    let env = Env::new();
    let id = env.create(json!({})).await;
    let ctx = json!({"purpose": "test", "tenant": "a"});
    let out = env
        .ok(
            "Encrypt",
            json!({"KeyId": id, "Plaintext": b64(b"secret"), "EncryptionContext": ctx}),
        )
        .await;
    let blob = out["CiphertextBlob"].clone();
    assert_eq!(out["KeyId"], format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{id}"));
    let plain = env
        .ok("Decrypt", json!({"CiphertextBlob": blob, "EncryptionContext": ctx}))
        .await;
    assert_eq!(unb64(&plain["Plaintext"]), b"secret");
    for wrong in [
        json!({}),
        json!({"purpose": "test"}),
        json!({"purpose": "test", "tenant": "b"}),
    ] {
        assert_eq!(
            env.err("Decrypt", json!({"CiphertextBlob": blob, "EncryptionContext": wrong}))
                .await,
            "InvalidCiphertextException"
        );
    }
    let mut tampered = unb64(&blob);
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        env.err(
            "Decrypt",
            json!({"CiphertextBlob": b64(&tampered), "EncryptionContext": ctx})
        )
        .await,
        "InvalidCiphertextException"
    );
    // A KeyId that names another key is IncorrectKeyException.
    let other = env.create(json!({})).await;
    assert_eq!(
        env.err(
            "Decrypt",
            json!({"CiphertextBlob": blob, "EncryptionContext": ctx, "KeyId": other})
        )
        .await,
        "IncorrectKeyException"
    );
    // Too much plaintext.
    assert_eq!(
        env.err("Encrypt", json!({"KeyId": id, "Plaintext": b64(&[0u8; 4097])}))
            .await,
        "ValidationException"
    );
    // ReEncrypt to the other key, then decrypt there.
    let re = env
        .ok(
            "ReEncrypt",
            json!({"CiphertextBlob": blob, "SourceEncryptionContext": ctx, "DestinationKeyId": other}),
        )
        .await;
    assert_eq!(re["SourceKeyId"], format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{id}"));
    let plain = env.ok("Decrypt", json!({"CiphertextBlob": re["CiphertextBlob"]})).await;
    assert_eq!(unb64(&plain["Plaintext"]), b"secret");
}

#[tokio::test]
async fn data_keys_and_random() {
    let env = Env::new();
    let id = env.create(json!({})).await;
    for (input, len) in [
        (json!({"KeyId": id, "KeySpec": "AES_256"}), 32),
        (json!({"KeyId": id, "NumberOfBytes": 7}), 7),
    ] {
        let out = env.ok("GenerateDataKey", input).await;
        let plain = unb64(&out["Plaintext"]);
        assert_eq!(plain.len(), len);
        let back = env
            .ok("Decrypt", json!({"CiphertextBlob": out["CiphertextBlob"]}))
            .await;
        assert_eq!(unb64(&back["Plaintext"]), plain);
    }
    let out = env
        .ok(
            "GenerateDataKeyWithoutPlaintext",
            json!({"KeyId": id, "KeySpec": "AES_128"}),
        )
        .await;
    assert!(out.get("Plaintext").is_none());
    assert_eq!(
        env.err("GenerateDataKey", json!({"KeyId": id})).await,
        "ValidationException"
    );
    assert_eq!(
        env.err(
            "GenerateDataKey",
            json!({"KeyId": id, "KeySpec": "AES_256", "NumberOfBytes": 3})
        )
        .await,
        "ValidationException"
    );
    let random = env.ok("GenerateRandom", json!({"NumberOfBytes": 1024})).await;
    assert_eq!(unb64(&random["Plaintext"]).len(), 1024);
    assert_eq!(
        env.err("GenerateRandom", json!({"NumberOfBytes": 1025})).await,
        "ValidationException"
    );

    let pair = env
        .ok(
            "GenerateDataKeyPair",
            json!({"KeyId": id, "KeyPairSpec": "ECC_NIST_P256"}),
        )
        .await;
    let private = unb64(&pair["PrivateKeyPlaintext"]);
    let back = env
        .ok("Decrypt", json!({"CiphertextBlob": pair["PrivateKeyCiphertextBlob"]}))
        .await;
    assert_eq!(unb64(&back["Plaintext"]), private);
    assert_eq!(
        crypto::public_key_der(crypto::KeySpec::EccNistP256, &private).unwrap(),
        unb64(&pair["PublicKey"])
    );
}

#[tokio::test]
async fn rotation_keeps_old_versions_decryptable() {
    let mut env = Env::new();
    let id = env.create(json!({})).await;
    assert_eq!(
        env.err("EnableKeyRotation", json!({"KeyId": id, "RotationPeriodInDays": 89}))
            .await,
        "ValidationException"
    );
    env.ok("EnableKeyRotation", json!({"KeyId": id, "RotationPeriodInDays": 90}))
        .await;
    let status = env.ok("GetKeyRotationStatus", json!({"KeyId": id})).await;
    assert_eq!(status["KeyRotationEnabled"], true);
    assert_eq!(status["RotationPeriodInDays"], 90);
    let old = env.ok("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"old")})).await["CiphertextBlob"].clone();
    env.advance_days(91);
    let new = env.ok("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"new")})).await["CiphertextBlob"].clone();
    let (old_header, new_header) = (
        crypto::BlobHeader::parse(&unb64(&old)).unwrap(),
        crypto::BlobHeader::parse(&unb64(&new)).unwrap(),
    );
    assert_eq!((old_header.material_version, new_header.material_version), (0, 1));
    for (blob, text) in [(&old, b"old"), (&new, b"new")] {
        assert_eq!(
            unb64(&env.ok("Decrypt", json!({"CiphertextBlob": blob})).await["Plaintext"]),
            text
        );
    }
    let rotations = env.ok("ListKeyRotations", json!({"KeyId": id})).await;
    assert_eq!(rotations["Rotations"].as_array().unwrap().len(), 1);
    assert_eq!(rotations["Rotations"][0]["RotationType"], "AUTOMATIC");
    env.ok("RotateKeyOnDemand", json!({"KeyId": id})).await;
    let rotations = env.ok("ListKeyRotations", json!({"KeyId": id})).await;
    assert_eq!(rotations["Rotations"][1]["RotationType"], "ON_DEMAND");
    assert_eq!(
        unb64(&env.ok("Decrypt", json!({"CiphertextBlob": old})).await["Plaintext"]),
        b"old"
    );
    // No rotation while disabled.
    env.ok("DisableKey", json!({"KeyId": id})).await;
    assert_eq!(
        env.err("RotateKeyOnDemand", json!({"KeyId": id})).await,
        "DisabledException"
    );
    env.advance_days(200);
    env.ok("DescribeKey", json!({"KeyId": id})).await;
    let raw = env
        .store
        .get(model::KEYS, &model::key_key(ACCOUNT, "us-east-1", &id))
        .await
        .unwrap()
        .unwrap();
    let record: model::KeyRecord = serde_json::from_slice(&raw).unwrap();
    assert_eq!(record.materials.len(), 3);
    assert_eq!(
        env.err("DisableKeyRotation", json!({"KeyId": id})).await,
        "DisabledException"
    );
    // Once enabled again, the overdue rotation happens on the next use.
    env.ok("EnableKey", json!({"KeyId": id})).await;
    env.ok("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"x")})).await;
    assert_eq!(
        env.ok("ListKeyRotations", json!({"KeyId": id})).await["Rotations"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    env.ok("DisableKeyRotation", json!({"KeyId": id})).await;
    assert_eq!(
        env.ok("GetKeyRotationStatus", json!({"KeyId": id})).await["KeyRotationEnabled"],
        false
    );
    // Asymmetric keys do not rotate.
    let rsa = env
        .create(json!({"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}))
        .await;
    assert_eq!(
        env.err("EnableKeyRotation", json!({"KeyId": rsa})).await,
        "UnsupportedOperationException"
    );
}

#[tokio::test]
async fn aliases_follow_aws_rules() {
    let env = Env::new();
    let id = env.create(json!({})).await;
    let other = env.create(json!({})).await;
    env.ok("CreateAlias", json!({"AliasName": "alias/app", "TargetKeyId": id}))
        .await;
    let cases = [
        (
            json!({"AliasName": "alias/app", "TargetKeyId": id}),
            "AlreadyExistsException",
        ),
        (
            json!({"AliasName": "alias/aws/s3", "TargetKeyId": id}),
            "NotAuthorizedException",
        ),
        (json!({"AliasName": "app2", "TargetKeyId": id}), "ValidationException"),
        (
            json!({"AliasName": "alias/a b", "TargetKeyId": id}),
            "InvalidAliasNameException",
        ),
        (
            json!({"AliasName": "alias/x", "TargetKeyId": "alias/app"}),
            "ValidationException",
        ),
        (
            json!({"AliasName": "alias/x", "TargetKeyId": "00000000-0000-4000-8000-000000000000"}),
            "NotFoundException",
        ),
    ];
    for (input, code) in cases {
        assert_eq!(env.err("CreateAlias", input.clone()).await, code, "{input}");
    }
    let out = env
        .ok("Encrypt", json!({"KeyId": "alias/app", "Plaintext": b64(b"x")}))
        .await;
    assert_eq!(out["KeyId"], format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{id}"));
    let by_arn = format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/app");
    env.ok("DescribeKey", json!({"KeyId": by_arn})).await;
    // Management operations take no alias.
    assert_eq!(
        env.err("DisableKey", json!({"KeyId": "alias/app"})).await,
        "NotFoundException"
    );
    env.ok("UpdateAlias", json!({"AliasName": "alias/app", "TargetKeyId": other}))
        .await;
    let listed = env.ok("ListAliases", json!({"KeyId": other})).await;
    assert_eq!(listed["Aliases"][0]["AliasName"], "alias/app");
    assert_eq!(listed["Aliases"][0]["TargetKeyId"], other);
    env.ok("DeleteAlias", json!({"AliasName": "alias/app"})).await;
    assert_eq!(
        env.err("DeleteAlias", json!({"AliasName": "alias/app"})).await,
        "NotFoundException"
    );
    assert_eq!(
        env.err("Encrypt", json!({"KeyId": "alias/app", "Plaintext": b64(b"x")}))
            .await,
        "NotFoundException"
    );
}

#[tokio::test]
async fn tags_policy_and_description() {
    let env = Env::new();
    let id = env.create(json!({})).await;
    env.ok(
        "TagResource",
        json!({"KeyId": id, "Tags": [{"TagKey": "a", "TagValue": "1"}, {"TagKey": "b", "TagValue": "2"}]}),
    )
    .await;
    assert_eq!(
        env.err(
            "TagResource",
            json!({"KeyId": id, "Tags": [{"TagKey": "aws:x", "TagValue": "1"}]})
        )
        .await,
        "TagException"
    );
    env.ok("UntagResource", json!({"KeyId": id, "TagKeys": ["a"]})).await;
    let tags = env.ok("ListResourceTags", json!({"KeyId": id})).await;
    assert_eq!(tags["Tags"], json!([{"TagKey": "b", "TagValue": "2"}]));
    let authz = env
        .authorize(
            "Encrypt",
            json!({"KeyId": id, "Plaintext": b64(b"x"), "EncryptionContext": {"k": "v"}}),
        )
        .await
        .unwrap();
    assert_eq!(authz.checks[0].resource_tags, vec![("b".to_string(), "2".to_string())]);
    assert_eq!(
        authz.checks[0].resource_policy_kind,
        citadel_core::ResourcePolicyKind::KeyPolicy
    );
    let ctx: std::collections::HashMap<_, _> = authz.context.iter().cloned().collect();
    assert_eq!(ctx["kms:EncryptionContext:k"], vec!["v".to_string()]);
    assert_eq!(ctx["kms:EncryptionContextKeys"], vec!["k".to_string()]);
    assert_eq!(ctx["kms:CallerAccount"], vec![ACCOUNT.to_string()]);
    assert_eq!(ctx["kms:KeySpec"], vec!["SYMMETRIC_DEFAULT".to_string()]);

    let policy = env.ok("GetKeyPolicy", json!({"KeyId": id})).await;
    assert!(
        policy["Policy"]
            .as_str()
            .unwrap()
            .contains(&format!("arn:aws:iam::{ACCOUNT}:root"))
    );
    assert_eq!(
        env.err("GetKeyPolicy", json!({"KeyId": id, "PolicyName": "other"}))
            .await,
        "NotFoundException"
    );
    let lockout = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"kms:*","Resource":"*"}]}"#;
    assert_eq!(
        env.err("PutKeyPolicy", json!({"KeyId": id, "Policy": lockout})).await,
        "MalformedPolicyDocumentException"
    );
    assert_eq!(
        env.err("PutKeyPolicy", json!({"KeyId": id, "Policy": "{not json"}))
            .await,
        "MalformedPolicyDocumentException"
    );
    env.ok(
        "PutKeyPolicy",
        json!({"KeyId": id, "Policy": lockout, "BypassPolicyLockoutSafetyCheck": true}),
    )
    .await;
    assert_eq!(env.ok("GetKeyPolicy", json!({"KeyId": id})).await["Policy"], lockout);
    assert_eq!(
        env.ok("ListKeyPolicies", json!({"KeyId": id})).await["PolicyNames"],
        json!(["default"])
    );
    env.ok("UpdateKeyDescription", json!({"KeyId": id, "Description": "new"}))
        .await;
    assert_eq!(
        env.ok("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"]["Description"],
        "new"
    );
}

#[tokio::test]
async fn decrypt_authorizes_against_the_key_in_the_blob() {
    let env = Env::new();
    let id = env.create(json!({})).await;
    let blob = env.ok("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"x")})).await["CiphertextBlob"].clone();
    let authz = env.authorize("Decrypt", json!({"CiphertextBlob": blob})).await.unwrap();
    assert_eq!(authz.checks.len(), 1);
    assert_eq!(authz.checks[0].action, "kms:Decrypt");
    assert_eq!(
        authz.checks[0].resource,
        format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{id}")
    );
    let garbage = b64(&[1u8; 60]);
    assert_eq!(
        env.authorize("Decrypt", json!({"CiphertextBlob": garbage}))
            .await
            .unwrap_err()
            .code,
        "InvalidCiphertextException"
    );
}

#[tokio::test]
async fn grants_extend_the_key_policy_for_the_grantee() {
    let env = Env::new();
    let id = env.create(json!({})).await;
    let grantee = format!("arn:aws:iam::{ACCOUNT}:role/app");
    let out = env
        .ok(
            "CreateGrant",
            json!({"KeyId": id, "GranteePrincipal": grantee, "Operations": ["Encrypt", "Decrypt"],
                   "RetiringPrincipal": grantee, "Constraints": {"EncryptionContextSubset": {"tenant": "a"}}}),
        )
        .await;
    let grant_id = out["GrantId"].as_str().unwrap().to_string();
    let token = out["GrantToken"].as_str().unwrap().to_string();
    let policy_of = |authz: Authorization| authz.checks[0].resource_policy.clone().unwrap().to_string();
    let matching =
        json!({"KeyId": id, "Plaintext": b64(b"x"), "EncryptionContext": {"tenant": "a"}, "GrantTokens": [token]});
    assert!(policy_of(env.authorize("Encrypt", matching).await.unwrap()).contains(&grantee));
    let wrong_context = json!({"KeyId": id, "Plaintext": b64(b"x"), "EncryptionContext": {"tenant": "b"}});
    assert!(!policy_of(env.authorize("Encrypt", wrong_context).await.unwrap()).contains(&grantee));
    assert!(!policy_of(env.authorize("DescribeKey", json!({"KeyId": id})).await.unwrap()).contains(&grantee));
    assert_eq!(
        env.authorize(
            "Encrypt",
            json!({"KeyId": id, "Plaintext": b64(b"x"), "GrantTokens": ["bogus"]})
        )
        .await
        .unwrap_err()
        .code,
        "InvalidGrantTokenException"
    );
    let listed = env.ok("ListGrants", json!({"KeyId": id})).await;
    assert_eq!(listed["Grants"][0]["GrantId"], grant_id);
    assert_eq!(
        listed["Grants"][0]["Constraints"]["EncryptionContextSubset"]["tenant"],
        "a"
    );
    let retirable = env
        .ok("ListRetirableGrants", json!({"RetiringPrincipal": grantee}))
        .await;
    assert_eq!(retirable["Grants"].as_array().unwrap().len(), 1);
    env.ok("RevokeGrant", json!({"KeyId": id, "GrantId": grant_id})).await;
    assert_eq!(env.ok("ListGrants", json!({"KeyId": id})).await["Grants"], json!([]));
    assert_eq!(
        env.err("RevokeGrant", json!({"KeyId": id, "GrantId": grant_id})).await,
        "NotFoundException"
    );
    // Retire by token (the account root may retire).
    let out = env
        .ok(
            "CreateGrant",
            json!({"KeyId": id, "GranteePrincipal": grantee, "Operations": ["Decrypt"]}),
        )
        .await;
    env.ok("RetireGrant", json!({"GrantToken": out["GrantToken"]})).await;
    assert_eq!(env.ok("ListGrants", json!({"KeyId": id})).await["Grants"], json!([]));
}

#[tokio::test]
async fn asymmetric_and_hmac_keys() {
    let env = Env::new();
    for (spec, algorithm) in [
        ("RSA_2048", "RSASSA_PSS_SHA_256"),
        ("ECC_NIST_P256", "ECDSA_SHA_256"),
        ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
    ] {
        let id = env.create(json!({"KeySpec": spec, "KeyUsage": "SIGN_VERIFY"})).await;
        let sig = env
            .ok(
                "Sign",
                json!({"KeyId": id, "Message": b64(b"msg"), "SigningAlgorithm": algorithm}),
            )
            .await;
        let verify =
            json!({"KeyId": id, "Message": b64(b"msg"), "Signature": sig["Signature"], "SigningAlgorithm": algorithm});
        assert_eq!(env.ok("Verify", verify).await["SignatureValid"], true);
        let bad = json!({"KeyId": id, "Message": b64(b"other"), "Signature": sig["Signature"], "SigningAlgorithm": algorithm});
        assert_eq!(env.err("Verify", bad).await, "KMSInvalidSignatureException");
        let public = env.ok("GetPublicKey", json!({"KeyId": id})).await;
        assert_eq!(public["KeyUsage"], "SIGN_VERIFY");
        assert!(!unb64(&public["PublicKey"]).is_empty());
        assert_eq!(
            env.err("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"x")})).await,
            "InvalidKeyUsageException"
        );
        assert_eq!(
            env.err(
                "Sign",
                json!({"KeyId": id, "Message": b64(b"m"), "SigningAlgorithm": "ECDSA_SHA_512"})
            )
            .await,
            "InvalidKeyUsageException"
        );
    }
    // DIGEST message type.
    let id = env
        .create(json!({"KeySpec": "ECC_NIST_P384", "KeyUsage": "SIGN_VERIFY"}))
        .await;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, b"msg");
    let sig = env
        .ok("Sign", json!({"KeyId": id, "Message": b64(digest.as_ref()), "MessageType": "DIGEST", "SigningAlgorithm": "ECDSA_SHA_384"}))
        .await;
    let verify = json!({"KeyId": id, "Message": b64(b"msg"), "Signature": sig["Signature"], "SigningAlgorithm": "ECDSA_SHA_384"});
    assert_eq!(env.ok("Verify", verify).await["SignatureValid"], true);
    assert_eq!(
        env.err(
            "Sign",
            json!({"KeyId": id, "Message": b64(b"short"), "MessageType": "DIGEST", "SigningAlgorithm": "ECDSA_SHA_384"})
        )
        .await,
        "ValidationException"
    );
    // RSA encryption.
    let rsa = env
        .create(json!({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}))
        .await;
    let out = env
        .ok(
            "Encrypt",
            json!({"KeyId": rsa, "Plaintext": b64(b"rsa"), "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
        )
        .await;
    let plain = env
        .ok(
            "Decrypt",
            json!({"KeyId": rsa, "CiphertextBlob": out["CiphertextBlob"], "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
        )
        .await;
    assert_eq!(unb64(&plain["Plaintext"]), b"rsa");
    assert_eq!(
        env.err("Encrypt", json!({"KeyId": rsa, "Plaintext": b64(b"rsa")}))
            .await,
        "InvalidKeyUsageException"
    );
    // HMAC.
    let hmac = env
        .create(json!({"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}))
        .await;
    let mac = env
        .ok(
            "GenerateMac",
            json!({"KeyId": hmac, "Message": b64(b"m"), "MacAlgorithm": "HMAC_SHA_256"}),
        )
        .await;
    assert_eq!(unb64(&mac["Mac"]).len(), 32);
    let ok = json!({"KeyId": hmac, "Message": b64(b"m"), "Mac": mac["Mac"], "MacAlgorithm": "HMAC_SHA_256"});
    assert_eq!(env.ok("VerifyMac", ok).await["MacValid"], true);
    let bad = json!({"KeyId": hmac, "Message": b64(b"n"), "Mac": mac["Mac"], "MacAlgorithm": "HMAC_SHA_256"});
    assert_eq!(env.err("VerifyMac", bad).await, "KMSInvalidMacException");
    assert_eq!(
        env.err("GetPublicKey", json!({"KeyId": hmac})).await,
        "UnsupportedOperationException"
    );
    assert_eq!(
        env.err("CreateKey", json!({"KeySpec": "ECC_NIST_P256"})).await,
        "ValidationException"
    );
}

#[tokio::test]
async fn imported_material_expires_and_can_be_reimported() {
    let mut env = Env::new();
    let id = env.create(json!({"Origin": "EXTERNAL"})).await;
    let meta = env.ok("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"].clone();
    assert_eq!(meta["KeyState"], "PendingImport");
    assert_eq!(
        env.err("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"x")})).await,
        "KMSInvalidStateException"
    );
    let material = crypto::random_bytes(32).unwrap();
    let params = env
        .ok(
            "GetParametersForImport",
            json!({"KeyId": id, "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}),
        )
        .await;
    let wrapped = crypto::rsa_encrypt(&unb64(&params["PublicKey"]), "RSAES_OAEP_SHA_256", &material).unwrap();
    let valid_to = env.now.unix_timestamp() + 10 * 86_400;
    env.ok(
        "ImportKeyMaterial",
        json!({"KeyId": id, "ImportToken": params["ImportToken"], "EncryptedKeyMaterial": b64(&wrapped), "ValidTo": valid_to}),
    )
    .await;
    let meta = env.ok("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"].clone();
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(meta["ExpirationModel"], "KEY_MATERIAL_EXPIRES");
    let blob = env
        .ok("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"imported")}))
        .await["CiphertextBlob"]
        .clone();
    // The blob really is AES-GCM under the imported material.
    let plain = crypto::decrypt(&material, &unb64(&blob), &Default::default()).unwrap();
    assert_eq!(plain.as_slice(), b"imported");
    // A token of another key is refused; other material is refused.
    let other = env.create(json!({"Origin": "EXTERNAL"})).await;
    assert_eq!(
        env.err(
            "ImportKeyMaterial",
            json!({"KeyId": other, "ImportToken": params["ImportToken"], "EncryptedKeyMaterial": b64(&wrapped)})
        )
        .await,
        "InvalidImportTokenException"
    );
    let different = crypto::rsa_encrypt(&unb64(&params["PublicKey"]), "RSAES_OAEP_SHA_256", &[7u8; 32]).unwrap();
    assert_eq!(
        env.err(
            "ImportKeyMaterial",
            json!({"KeyId": id, "ImportToken": params["ImportToken"], "EncryptedKeyMaterial": b64(&different)})
        )
        .await,
        "IncorrectKeyMaterialException"
    );
    env.advance_days(11);
    assert_eq!(
        env.ok("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"]["KeyState"],
        "PendingImport"
    );
    // The token expired after 24 hours.
    assert_eq!(
        env.err(
            "ImportKeyMaterial",
            json!({"KeyId": id, "ImportToken": params["ImportToken"], "EncryptedKeyMaterial": b64(&wrapped)})
        )
        .await,
        "ExpiredImportTokenException"
    );
    let params = env
        .ok(
            "GetParametersForImport",
            json!({"KeyId": id, "WrappingAlgorithm": "RSAES_OAEP_SHA_1", "WrappingKeySpec": "RSA_3072"}),
        )
        .await;
    let wrapped = crypto::rsa_encrypt(&unb64(&params["PublicKey"]), "RSAES_OAEP_SHA_1", &material).unwrap();
    env.ok(
        "ImportKeyMaterial",
        json!({"KeyId": id, "ImportToken": params["ImportToken"], "EncryptedKeyMaterial": b64(&wrapped)}),
    )
    .await;
    assert_eq!(
        unb64(&env.ok("Decrypt", json!({"CiphertextBlob": blob})).await["Plaintext"]),
        b"imported"
    );
    env.ok("DeleteImportedKeyMaterial", json!({"KeyId": id})).await;
    assert_eq!(
        env.ok("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"]["KeyState"],
        "PendingImport"
    );
    let generated = env.create(json!({})).await;
    assert_eq!(
        env.err("DeleteImportedKeyMaterial", json!({"KeyId": generated})).await,
        "UnsupportedOperationException"
    );
}

#[tokio::test]
async fn key_material_is_sealed_at_rest() {
    let env = Env::new();
    let id = env.create(json!({})).await;
    let raw = env
        .store
        .get(model::KEYS, &model::key_key(ACCOUNT, "us-east-1", &id))
        .await
        .unwrap()
        .unwrap();
    let record: model::KeyRecord = serde_json::from_slice(&raw).unwrap();
    let material = model::unseal_material(&env.master, &record, &record.materials[0]).unwrap();
    assert_eq!(material.len(), 32);
    let needle_b64 = b64(&material);
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains(&needle_b64));
    assert!(!raw.windows(material.len()).any(|w| w == material.as_slice()));
    // Sealed material is bound to its key: another record's ARN does not unseal it.
    let mut moved = record.clone();
    moved.key_id = "00000000-0000-4000-8000-000000000000".into();
    assert!(model::unseal_material(&env.master, &moved, &record.materials[0]).is_err());
}

#[tokio::test]
async fn dry_run_answers_412_and_changes_nothing() {
    let env = Env::new();
    let id = env.create(json!({})).await;
    let blob = env.ok("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"x")})).await["CiphertextBlob"].clone();
    let dry_calls = [
        ("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"x"), "DryRun": true})),
        ("Decrypt", json!({"CiphertextBlob": blob, "DryRun": true})),
        (
            "GenerateDataKey",
            json!({"KeyId": id, "KeySpec": "AES_256", "DryRun": true}),
        ),
        (
            "GenerateDataKeyWithoutPlaintext",
            json!({"KeyId": id, "NumberOfBytes": 16, "DryRun": true}),
        ),
        (
            "ReEncrypt",
            json!({"CiphertextBlob": blob, "DestinationKeyId": id, "DryRun": true}),
        ),
        (
            "CreateGrant",
            json!({"KeyId": id, "GranteePrincipal": format!("arn:aws:iam::{ACCOUNT}:root"),
                   "Operations": ["Decrypt"], "DryRun": true}),
        ),
    ];
    for (op, input) in dry_calls {
        let call = env.call(op, input);
        env.kms.authorize(&call).await.unwrap();
        let err = match env.kms.execute(&call, &Authorized::for_tests()).await {
            Ok(effect) => panic!("{op} dry run succeeded: {}", effect.output),
            Err(err) => err,
        };
        assert_eq!(
            (err.code.as_ref(), err.status),
            ("DryRunOperationException", 412),
            "{op}"
        );
    }
    // The dry-run grant was not created.
    let grants = env.ok("ListGrants", json!({"KeyId": id})).await;
    assert_eq!(grants["Grants"].as_array().unwrap().len(), 0);
    // A dry run of a call that would fail gives the real error, not DryRunOperationException.
    env.ok("DisableKey", json!({"KeyId": id})).await;
    let err = env
        .err("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"x"), "DryRun": true}))
        .await;
    assert_eq!(err, "DisabledException");
    // DryRun false runs the call.
    env.ok("EnableKey", json!({"KeyId": id})).await;
    env.ok("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"x"), "DryRun": false}))
        .await;
}

/// A store that counts reads of the KMS tables, to see what the node cache saves and when it reads again.
struct CountingStore {
    inner: Arc<dyn Store>,
    key_reads: std::sync::atomic::AtomicUsize,
    grant_scans: std::sync::atomic::AtomicUsize,
}

impl CountingStore {
    fn key_reads(&self) -> usize {
        self.key_reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn grant_scans(&self) -> usize {
        self.grant_scans.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Store for CountingStore {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, citadel_store::StoreError> {
        if table == model::KEYS {
            self.key_reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.get(table, key).await
    }

    async fn scan(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<citadel_store::Rows, citadel_store::StoreError> {
        if table == model::GRANTS {
            self.grant_scans.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.scan(table, start, end, limit, reverse).await
    }

    async fn commit(&self, batch: citadel_store::WriteBatch) -> Result<(), citadel_store::CommitError> {
        self.inner.commit(batch).await
    }

    fn submit(&self, batch: citadel_store::WriteBatch) {
        self.inner.submit(batch)
    }

    async fn flush(&self) -> Result<(), citadel_store::StoreError> {
        self.inner.flush().await
    }

    fn generation(&self, table: &str) -> u64 {
        self.inner.generation(table)
    }

    async fn snapshot(&self) -> Result<Box<dyn citadel_store::Snapshot>, citadel_store::StoreError> {
        self.inner.snapshot().await
    }

    async fn clear(&self) -> Result<(), citadel_store::StoreError> {
        self.inner.clear().await
    }

    async fn close(&self) -> Result<(), citadel_store::StoreError> {
        self.inner.close().await
    }
}

/// The node cache serves repeated calls without reading the key again, and never serves a state
/// older than the last commit: every change below is made through a second service instance (as
/// another node would, sharing the store and so its table generations) and the first instance sees
/// it on its very next call.
#[tokio::test]
async fn node_cache_never_serves_stale_state() {
    let mut env = Env::new();
    let counting = Arc::new(CountingStore {
        inner: env.store.clone(),
        key_reads: Default::default(),
        grant_scans: Default::default(),
    });
    let ids = || IdGen::new(Arc::new(citadel_core::random::SeededRandom::new(2)));
    // `env.kms` plays the node under test; `env.run` goes through it.
    env.kms = Kms::new(counting.clone(), env.master.clone(), ids());
    let other = Env {
        kms: Kms::new(env.store.clone(), env.master.clone(), ids()),
        store: env.store.clone(),
        master: env.master.clone(),
        now: env.now,
        principal: env.principal.clone(),
        _dir: tempfile::tempdir().unwrap(),
    };
    let id = other.create(json!({})).await;
    let enc = json!({"KeyId": id, "Plaintext": b64(b"secret")});

    // Warm: the first call reads the key once (authorize and execute share the row), then no more.
    let first = env.ok("Encrypt", enc.clone()).await["CiphertextBlob"].clone();
    let (reads, scans) = (counting.key_reads(), counting.grant_scans());
    assert_eq!(reads, 1);
    for _ in 0..5 {
        env.ok("Encrypt", enc.clone()).await;
        env.ok("Decrypt", json!({"CiphertextBlob": first})).await;
        env.ok("GenerateDataKey", json!({"KeyId": id, "KeySpec": "AES_256"}))
            .await;
    }
    assert_eq!((counting.key_reads(), counting.grant_scans()), (reads, scans));

    // Disabled on the other node: refused at once, and usable again at once after EnableKey.
    other.ok("DisableKey", json!({"KeyId": id})).await;
    assert_eq!(env.err("Encrypt", enc.clone()).await, "DisabledException");
    assert_eq!(
        env.err("Decrypt", json!({"CiphertextBlob": first})).await,
        "DisabledException"
    );
    assert!(
        counting.key_reads() > reads,
        "a change must make the node read the key again"
    );
    other.ok("EnableKey", json!({"KeyId": id})).await;
    env.ok("Encrypt", enc.clone()).await;

    // Rotated on the other node: new ciphertexts use the new version, old ones still decrypt, and
    // what this node encrypts under the new version decrypts on the other node.
    other.ok("RotateKeyOnDemand", json!({"KeyId": id})).await;
    let second = env.ok("Encrypt", enc.clone()).await["CiphertextBlob"].clone();
    assert_eq!(crypto::BlobHeader::parse(&unb64(&second)).unwrap().material_version, 1);
    for blob in [&first, &second] {
        for node in [&env, &other] {
            let out = node.ok("Decrypt", json!({"CiphertextBlob": blob})).await;
            assert_eq!(unb64(&out["Plaintext"]), b"secret");
        }
    }

    // A new key policy reaches this node's authorization at once.
    let policy_of = |authz: Authorization| authz.checks[0].resource_policy.clone().unwrap().to_string();
    let policy = model::default_policy(ACCOUNT).replace("Enable IAM User Permissions", "Changed elsewhere");
    other
        .ok(
            "PutKeyPolicy",
            json!({"KeyId": id, "PolicyName": "default", "Policy": policy}),
        )
        .await;
    assert!(policy_of(env.authorize("Encrypt", enc.clone()).await.unwrap()).contains("Changed elsewhere"));

    // A grant appears in, then disappears from, this node's key policy for the grantee.
    let grantee = format!("arn:aws:iam::{ACCOUNT}:role/app");
    let grant = other
        .ok(
            "CreateGrant",
            json!({"KeyId": id, "GranteePrincipal": grantee, "Operations": ["Encrypt"]}),
        )
        .await;
    assert!(policy_of(env.authorize("Encrypt", enc.clone()).await.unwrap()).contains(&grantee));
    other
        .ok("RevokeGrant", json!({"KeyId": id, "GrantId": grant["GrantId"]}))
        .await;
    assert!(!policy_of(env.authorize("Encrypt", enc.clone()).await.unwrap()).contains(&grantee));

    // An alias re-pointed on the other node: this node follows it on the next call.
    let id2 = other.create(json!({})).await;
    other
        .ok("CreateAlias", json!({"AliasName": "alias/app", "TargetKeyId": id}))
        .await;
    let via_alias = json!({"KeyId": "alias/app", "Plaintext": b64(b"x")});
    assert!(
        env.ok("Encrypt", via_alias.clone()).await["KeyId"]
            .as_str()
            .unwrap()
            .ends_with(&id)
    );
    other
        .ok("UpdateAlias", json!({"AliasName": "alias/app", "TargetKeyId": id2}))
        .await;
    assert!(
        env.ok("Encrypt", via_alias.clone()).await["KeyId"]
            .as_str()
            .unwrap()
            .ends_with(&id2)
    );

    // Scheduled for deletion elsewhere: refused here at once; once the date passes (time is never
    // cached), the key is gone for this node although no write happened in between.
    other
        .ok("ScheduleKeyDeletion", json!({"KeyId": id, "PendingWindowInDays": 7}))
        .await;
    assert_eq!(env.err("Encrypt", enc.clone()).await, "KMSInvalidStateException");
    env.ok("DescribeKey", json!({"KeyId": id})).await;
    env.advance_days(8);
    assert_eq!(env.err("DescribeKey", json!({"KeyId": id})).await, "NotFoundException");
}

/// A due automatic rotation is applied to the cached record at the request's time, and the
/// in-memory material of that rotation is never cached: until the rotation is committed, each call
/// rotates afresh, so material that might lose a race never outlives its request.
#[tokio::test]
async fn lazy_rotation_on_a_cached_key_is_applied_and_saved() {
    let mut env = Env::new();
    let id = env.create(json!({})).await;
    env.ok("EnableKeyRotation", json!({"KeyId": id, "RotationPeriodInDays": 90}))
        .await;
    env.ok("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"warm")})).await;
    env.advance_days(91);
    // The handler's effect carries the rotated record (the cached one is left as stored).
    let call = env.call("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"new")}));
    env.kms.authorize(&call).await.unwrap();
    let effect = env.kms.execute(&call, &Authorized::for_tests()).await.unwrap();
    assert!(
        !effect.batch.is_empty(),
        "the due rotation must be written with the call"
    );
    let unsaved = unb64(&effect.output["CiphertextBlob"]);
    assert_eq!(crypto::BlobHeader::parse(&unsaved).unwrap().material_version, 1);
    // Dropped unwritten (as after a lost race): the next call rotates again with its own material.
    let saved = env.ok("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"new")})).await;
    let blob = unb64(&saved["CiphertextBlob"]);
    assert_eq!(crypto::BlobHeader::parse(&blob).unwrap().material_version, 1);
    assert_eq!(
        env.err("Decrypt", json!({"CiphertextBlob": b64(&unsaved)})).await,
        "InvalidCiphertextException"
    );
    assert_eq!(
        unb64(
            &env.ok("Decrypt", json!({"CiphertextBlob": saved["CiphertextBlob"]}))
                .await["Plaintext"]
        ),
        b"new"
    );
}
