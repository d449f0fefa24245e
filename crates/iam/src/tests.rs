//! Handler tests over a real redb store, committing each effect the way the pipeline does.

use crate::model::UserRecord;
use crate::{Iam, SPEC};
use citadel_core::authz::PolicySource;
use citadel_core::identity::{ACCESS_KEYS, AccessKeyRecord, PrincipalDirectory};
use citadel_core::random::SeededRandom;
use citadel_core::{Authorized, Call, IdGen, Principal, PrincipalKind, RequestContext, Service};
use citadel_policy::{Context, Outcome, PolicyRef, PolicySet, Request, evaluate};
use citadel_store::{MasterKey, RedbStore, Store};
use citadel_wire::AwsError;
use serde_json::{Value, json};
use std::sync::Arc;

const ACCOUNT: &str = "123456789012";
const NOW: i64 = 1_700_000_000;

struct Env {
    iam: Arc<Iam>,
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    _dir: tempfile::TempDir,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("db.redb")).unwrap());
    let master = Arc::new(MasterKey::from_bytes([9; 32]));
    let ids = IdGen::new(Arc::new(SeededRandom::new(1)));
    Env {
        iam: Arc::new(Iam::new(store.clone(), master.clone(), ids)),
        store,
        master,
        _dir: dir,
    }
}

fn ctx(principal: Principal, op: &'static str, time: i64) -> RequestContext {
    RequestContext {
        request_id: "req".into(),
        principal: Arc::new(principal),
        region: "us-east-1".into(),
        source_ip: "127.0.0.1".parse().unwrap(),
        user_agent: "test".into(),
        secure_transport: false,
        time: time::OffsetDateTime::from_unix_timestamp(time).unwrap(),
        service: "iam",
        operation: op,
    }
}

impl Env {
    async fn call_as(&self, principal: Principal, op: &str, input: Value, time: i64) -> Result<Value, AwsError> {
        let spec = SPEC.operation(op).unwrap_or_else(|| panic!("{op} not in SPEC"));
        let call = Call {
            ctx: ctx(principal, spec.name, time),
            op: spec,
            input,
        };
        let effect = self.iam.execute(&call, &Authorized::for_tests()).await?;
        self.store.commit(effect.batch).await.expect("commit");
        Ok(effect.output)
    }

    async fn call(&self, op: &str, input: Value) -> Result<Value, AwsError> {
        self.call_as(Principal::root(ACCOUNT, None), op, input, NOW).await
    }

    async fn ok(&self, op: &str, input: Value) -> Value {
        self.call(op, input)
            .await
            .unwrap_or_else(|e| panic!("{op} failed: {e}"))
    }

    async fn err(&self, op: &str, input: Value) -> AwsError {
        match self.call(op, input).await {
            Ok(v) => panic!("{op} unexpectedly succeeded: {v}"),
            Err(e) => e,
        }
    }

    async fn user_principal(&self, name: &str) -> Principal {
        let out = self.ok("GetUser", json!({"UserName": name})).await;
        self.iam
            .user_principal(ACCOUNT, out["User"]["UserId"].as_str().unwrap(), "AKIATEST")
            .await
            .unwrap()
            .unwrap()
    }

    async fn decide(&self, principal: &Principal, action: &str, resource: &str) -> Outcome {
        let policies = self.iam.principal_policies(principal).await.unwrap();
        let identity: Vec<PolicyRef<'_>> = policies
            .identity
            .iter()
            .map(|(id, p)| PolicyRef {
                id: id.as_str(),
                policy: p.as_ref(),
            })
            .collect();
        let set = PolicySet {
            identity,
            permissions_boundary: policies.boundary.as_ref().map(|(id, p)| PolicyRef {
                id: id.as_str(),
                policy: p.as_ref(),
            }),
            ..PolicySet::default()
        };
        let mut context = Context::new();
        let p = citadel_policy::Principal::new(&principal.arn, ACCOUNT, citadel_policy::PrincipalKind::User);
        context.insert_principal_defaults(&p);
        let request = Request {
            principal: p,
            action,
            resource: Some(resource),
            resource_account: None,
            context: &context,
        };
        evaluate(&request, &set).outcome
    }
}

const S3_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}"#;

#[tokio::test]
async fn user_life_cycle_with_paths_tags_and_conflicts() {
    let env = env();
    let out = env
        .ok(
            "CreateUser",
            json!({"UserName": "Bob", "Path": "/eng/", "Tags": [{"Key": "team", "Value": "a"}]}),
        )
        .await;
    assert_eq!(out["User"]["Arn"], format!("arn:aws:iam::{ACCOUNT}:user/eng/Bob"));
    assert!(out["User"]["UserId"].as_str().unwrap().starts_with("AIDA"));
    assert_eq!(out["User"]["UserId"].as_str().unwrap().len(), 21);
    let dup = env.err("CreateUser", json!({"UserName": "bob"})).await;
    assert_eq!((dup.code.as_ref(), dup.status), ("EntityAlreadyExists", 409));
    let missing = env.err("GetUser", json!({"UserName": "nobody"})).await;
    assert_eq!((missing.code.as_ref(), missing.status), ("NoSuchEntity", 404));
    assert_eq!(missing.message, "The user with name nobody cannot be found.");
    let got = env.ok("GetUser", json!({"UserName": "BOB"})).await;
    assert_eq!(got["User"]["Tags"][0]["Key"], "team");

    env.ok("CreateUser", json!({"UserName": "carol"})).await;
    let all = env.ok("ListUsers", json!({})).await;
    assert_eq!(all["Users"].as_array().unwrap().len(), 2);
    let eng = env.ok("ListUsers", json!({"PathPrefix": "/eng/"})).await;
    assert_eq!(eng["Users"].as_array().unwrap().len(), 1);
    let page = env.ok("ListUsers", json!({"MaxItems": 1})).await;
    assert_eq!(page["IsTruncated"], true);
    let rest = env.ok("ListUsers", json!({"Marker": page["Marker"]})).await;
    assert_eq!(rest["Users"][0]["UserName"], "carol");
    assert_eq!(rest["IsTruncated"], false);

    env.ok(
        "UpdateUser",
        json!({"UserName": "Bob", "NewUserName": "robert", "NewPath": "/ops/"}),
    )
    .await;
    env.err("GetUser", json!({"UserName": "Bob"})).await;
    let renamed = env.ok("GetUser", json!({"UserName": "robert"})).await;
    assert_eq!(renamed["User"]["Path"], "/ops/");
    assert_eq!(renamed["User"]["UserId"], out["User"]["UserId"]);

    env.ok("CreateAccessKey", json!({"UserName": "robert"})).await;
    let conflict = env.err("DeleteUser", json!({"UserName": "robert"})).await;
    assert_eq!((conflict.code.as_ref(), conflict.status), ("DeleteConflict", 409));
    assert_eq!(conflict.message, "Cannot delete entity, must delete access keys first.");
    env.ok("DeleteUser", json!({"UserName": "carol"})).await;
    env.err("GetUser", json!({"UserName": "carol"})).await;
}

#[tokio::test]
async fn delete_conflicts_name_what_is_left() {
    let env = env();
    env.ok("CreateUser", json!({"UserName": "u"})).await;
    env.ok("CreateGroup", json!({"GroupName": "g"})).await;
    let cases: Vec<(&str, Value, &str, Value)> = vec![
        (
            "PutUserPolicy",
            json!({"UserName": "u", "PolicyName": "p", "PolicyDocument": S3_READ}),
            "must delete policies first",
            json!({"UserName": "u", "PolicyName": "p"}),
        ),
        (
            "AttachUserPolicy",
            json!({"UserName": "u", "PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
            "must detach all policies first",
            json!({"UserName": "u", "PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
        ),
        (
            "AddUserToGroup",
            json!({"UserName": "u", "GroupName": "g"}),
            "must remove user from all groups first",
            json!({"UserName": "u", "GroupName": "g"}),
        ),
        (
            "CreateLoginProfile",
            json!({"UserName": "u", "Password": "Str0ng-Pass"}),
            "must delete login profile first",
            json!({"UserName": "u"}),
        ),
    ];
    let undo = |op: &str| match op {
        "PutUserPolicy" => "DeleteUserPolicy",
        "AttachUserPolicy" => "DetachUserPolicy",
        "AddUserToGroup" => "RemoveUserFromGroup",
        _ => "DeleteLoginProfile",
    };
    for (op, input, message, undo_input) in cases {
        env.ok(op, input).await;
        let err = env.err("DeleteUser", json!({"UserName": "u"})).await;
        assert_eq!(err.message, format!("Cannot delete entity, {message}."), "{op}");
        env.ok(undo(op), undo_input).await;
    }
    let group_conflict = {
        env.ok("AddUserToGroup", json!({"UserName": "u", "GroupName": "g"}))
            .await;
        env.err("DeleteGroup", json!({"GroupName": "g"})).await
    };
    assert_eq!(
        group_conflict.message,
        "Cannot delete entity, must remove users from group first."
    );
    env.ok("RemoveUserFromGroup", json!({"UserName": "u", "GroupName": "g"}))
        .await;
    env.ok("DeleteGroup", json!({"GroupName": "g"})).await;
    env.ok("DeleteUser", json!({"UserName": "u"})).await;
}

#[tokio::test]
async fn group_policies_reach_members_and_changes_invalidate_the_cache() {
    let env = env();
    env.ok("CreateUser", json!({"UserName": "alice"})).await;
    env.ok("CreateGroup", json!({"GroupName": "readers", "Path": "/teams/"}))
        .await;
    let alice = env.user_principal("alice").await;
    assert_eq!(
        env.decide(&alice, "s3:GetObject", "arn:aws:s3:::b/k").await,
        Outcome::ImplicitDeny
    );
    env.ok(
        "PutGroupPolicy",
        json!({"GroupName": "readers", "PolicyName": "read", "PolicyDocument": S3_READ}),
    )
    .await;
    env.ok("AddUserToGroup", json!({"GroupName": "readers", "UserName": "alice"}))
        .await;
    assert_eq!(
        env.decide(&alice, "s3:GetObject", "arn:aws:s3:::b/k").await,
        Outcome::Allowed
    );
    assert_eq!(
        env.decide(&alice, "s3:PutObject", "arn:aws:s3:::b/k").await,
        Outcome::ImplicitDeny
    );
    let group = env.ok("GetGroup", json!({"GroupName": "readers"})).await;
    assert_eq!(group["Users"][0]["UserName"], "alice");
    assert_eq!(
        group["Group"]["Arn"],
        format!("arn:aws:iam::{ACCOUNT}:group/teams/readers")
    );
    let groups = env.ok("ListGroupsForUser", json!({"UserName": "alice"})).await;
    assert_eq!(groups["Groups"][0]["GroupName"], "readers");

    // A managed deny attached to the user wins; a boundary caps what groups grant.
    let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::secret/*"}]}"#;
    let policy = env
        .ok(
            "CreatePolicy",
            json!({"PolicyName": "NoSecrets", "PolicyDocument": deny}),
        )
        .await;
    let arn = policy["Policy"]["Arn"].as_str().unwrap().to_string();
    env.ok("AttachUserPolicy", json!({"UserName": "alice", "PolicyArn": arn}))
        .await;
    assert_eq!(
        env.decide(&alice, "s3:GetObject", "arn:aws:s3:::secret/x").await,
        Outcome::ExplicitDeny
    );
    assert_eq!(
        env.decide(&alice, "s3:GetObject", "arn:aws:s3:::public/x").await,
        Outcome::Allowed
    );
    let got = env.ok("GetPolicy", json!({"PolicyArn": arn})).await;
    assert_eq!(got["Policy"]["AttachmentCount"], 1);
    let conflict = env.err("DeletePolicy", json!({"PolicyArn": arn})).await;
    assert_eq!(conflict.code, "DeleteConflict");
    let entities = env.ok("ListEntitiesForPolicy", json!({"PolicyArn": arn})).await;
    assert_eq!(entities["PolicyUsers"][0]["UserName"], "alice");

    let list_only =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#;
    let boundary = env
        .ok(
            "CreatePolicy",
            json!({"PolicyName": "Boundary", "PolicyDocument": list_only}),
        )
        .await;
    let boundary_arn = boundary["Policy"]["Arn"].as_str().unwrap().to_string();
    env.ok(
        "PutUserPermissionsBoundary",
        json!({"UserName": "alice", "PermissionsBoundary": boundary_arn}),
    )
    .await;
    assert_eq!(
        env.decide(&alice, "s3:GetObject", "arn:aws:s3:::public/x").await,
        Outcome::ImplicitDeny
    );
    assert_eq!(
        env.decide(&alice, "s3:ListBucket", "arn:aws:s3:::public").await,
        Outcome::Allowed
    );
    let got = env.ok("GetPolicy", json!({"PolicyArn": boundary_arn})).await;
    assert_eq!(got["Policy"]["PermissionsBoundaryUsageCount"], 1);
    env.ok("DeleteUserPermissionsBoundary", json!({"UserName": "alice"}))
        .await;
    env.ok(
        "RemoveUserFromGroup",
        json!({"GroupName": "readers", "UserName": "alice"}),
    )
    .await;
    assert_eq!(
        env.decide(&alice, "s3:GetObject", "arn:aws:s3:::public/x").await,
        Outcome::ImplicitDeny
    );
}

#[tokio::test]
async fn policy_versions_limits_and_defaults() {
    let env = env();
    let created = env
        .ok(
            "CreatePolicy",
            json!({"PolicyName": "P", "Path": "/a/", "PolicyDocument": S3_READ}),
        )
        .await;
    let arn = created["Policy"]["Arn"].as_str().unwrap().to_string();
    assert_eq!(arn, format!("arn:aws:iam::{ACCOUNT}:policy/a/P"));
    assert_eq!(created["Policy"]["DefaultVersionId"], "v1");
    for n in 2..=5 {
        let v = env
            .ok(
                "CreatePolicyVersion",
                json!({"PolicyArn": arn, "PolicyDocument": S3_READ, "SetAsDefault": n == 3}),
            )
            .await;
        assert_eq!(v["PolicyVersion"]["VersionId"], format!("v{n}"));
    }
    let limit = env
        .err(
            "CreatePolicyVersion",
            json!({"PolicyArn": arn, "PolicyDocument": S3_READ}),
        )
        .await;
    assert_eq!((limit.code.as_ref(), limit.status), ("LimitExceeded", 409));
    let default = env
        .err("DeletePolicyVersion", json!({"PolicyArn": arn, "VersionId": "v3"}))
        .await;
    assert_eq!(default.message, "Cannot delete the default version of a policy.");
    env.ok("DeletePolicyVersion", json!({"PolicyArn": arn, "VersionId": "v1"}))
        .await;
    env.ok("SetDefaultPolicyVersion", json!({"PolicyArn": arn, "VersionId": "v5"}))
        .await;
    let versions = env.ok("ListPolicyVersions", json!({"PolicyArn": arn})).await;
    let ids: Vec<&str> = versions["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["VersionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["v5", "v4", "v3", "v2"]);
    let v5 = env
        .ok("GetPolicyVersion", json!({"PolicyArn": arn, "VersionId": "v5"}))
        .await;
    assert_eq!(v5["PolicyVersion"]["IsDefaultVersion"], true);
    assert_eq!(v5["PolicyVersion"]["Document"], S3_READ);
    let multi = env.err("DeletePolicy", json!({"PolicyArn": arn})).await;
    assert_eq!(multi.code, "DeleteConflict");
    let bad = env
        .err(
            "CreatePolicy",
            json!({"PolicyName": "Bad", "PolicyDocument": r#"{"Statement":[{"Effect":"Allow"}]}"#}),
        )
        .await;
    assert_eq!((bad.code.as_ref(), bad.status), ("MalformedPolicyDocument", 400));
    let big = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":[{}]}}]}}"#,
        (0..300)
            .map(|i| format!("\"arn:aws:s3:::bucket-{i}/*\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let too_big = env
        .err("CreatePolicy", json!({"PolicyName": "Big", "PolicyDocument": big}))
        .await;
    assert_eq!(too_big.message, "Cannot exceed quota for PolicySize: 6144");
}

#[tokio::test]
async fn aws_managed_policies_are_served_and_listed_by_scope() {
    let env = env();
    let got = env
        .ok(
            "GetPolicy",
            json!({"PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        )
        .await;
    assert_eq!(got["Policy"]["PolicyName"], "AdministratorAccess");
    let version = got["Policy"]["DefaultVersionId"].clone();
    let doc = env
        .ok(
            "GetPolicyVersion",
            json!({"PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess", "VersionId": version}),
        )
        .await;
    assert!(doc["PolicyVersion"]["Document"].as_str().unwrap().contains("\"*\""));
    env.ok("CreatePolicy", json!({"PolicyName": "Mine", "PolicyDocument": S3_READ}))
        .await;
    let local = env.ok("ListPolicies", json!({"Scope": "Local"})).await;
    assert_eq!(local["Policies"].as_array().unwrap().len(), 1);
    let aws = env.ok("ListPolicies", json!({"Scope": "AWS", "MaxItems": 1000})).await;
    assert!(aws["Policies"].as_array().unwrap().len() >= 40);
    env.ok(
        "CreateRole",
        json!({"RoleName": "r", "AssumeRolePolicyDocument": trust("ec2.amazonaws.com")}),
    )
    .await;
    env.ok(
        "AttachRolePolicy",
        json!({"RoleName": "r", "PolicyArn": "arn:aws:iam::aws:policy/SecurityAudit"}),
    )
    .await;
    let attached = env
        .ok("ListPolicies", json!({"Scope": "AWS", "OnlyAttached": true}))
        .await;
    assert_eq!(attached["Policies"].as_array().unwrap().len(), 1);
    assert_eq!(attached["Policies"][0]["AttachmentCount"], 1);
    let nope = env
        .err(
            "AttachRolePolicy",
            json!({"RoleName": "r", "PolicyArn": "arn:aws:iam::aws:policy/NoSuch"}),
        )
        .await;
    assert_eq!(
        nope.message,
        "Policy arn:aws:iam::aws:policy/NoSuch does not exist or is not attachable."
    );
}

fn trust(service: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"{service}"}},"Action":"sts:AssumeRole"}}]}}"#
    )
}

#[tokio::test]
async fn roles_validate_trust_policies_and_session_duration() {
    let env = env();
    let out = env
        .ok("CreateRole", json!({"RoleName": "Deploy", "Path": "/ci/", "AssumeRolePolicyDocument": trust("ec2.amazonaws.com"), "MaxSessionDuration": 7200}))
        .await;
    assert_eq!(out["Role"]["Arn"], format!("arn:aws:iam::{ACCOUNT}:role/ci/Deploy"));
    assert!(out["Role"]["RoleId"].as_str().unwrap().starts_with("AROA"));
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"RoleName": "x", "AssumeRolePolicyDocument": trust("ec2.amazonaws.com"), "MaxSessionDuration": 100}),
            "ValidationError",
        ),
        (
            json!({"RoleName": "x", "AssumeRolePolicyDocument": trust("ec2.amazonaws.com"), "MaxSessionDuration": 50000}),
            "ValidationError",
        ),
        (
            json!({"RoleName": "x", "AssumeRolePolicyDocument": S3_READ}),
            "MalformedPolicyDocument",
        ),
        (
            json!({"RoleName": "x", "AssumeRolePolicyDocument": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/ghost"},"Action":"sts:AssumeRole"}]}"#}),
            "MalformedPolicyDocument",
        ),
        (
            json!({"RoleName": "deploy", "AssumeRolePolicyDocument": trust("ec2.amazonaws.com")}),
            "EntityAlreadyExists",
        ),
    ];
    for (input, code) in cases {
        assert_eq!(env.err("CreateRole", input.clone()).await.code, code, "{input}");
    }
    env.ok(
        "UpdateAssumeRolePolicy",
        json!({"RoleName": "Deploy", "PolicyDocument": trust("lambda.amazonaws.com")}),
    )
    .await;
    let got = env.ok("GetRole", json!({"RoleName": "Deploy"})).await;
    assert!(
        got["Role"]["AssumeRolePolicyDocument"]
            .as_str()
            .unwrap()
            .contains("lambda")
    );
    assert_eq!(got["Role"]["MaxSessionDuration"], 7200);
    env.ok(
        "PutRolePolicy",
        json!({"RoleName": "Deploy", "PolicyName": "p", "PolicyDocument": S3_READ}),
    )
    .await;
    let inline = env
        .ok("GetRolePolicy", json!({"RoleName": "Deploy", "PolicyName": "p"}))
        .await;
    assert_eq!(inline["PolicyDocument"], S3_READ);
    assert_eq!(inline["RoleName"], "Deploy");
    env.ok("CreateInstanceProfile", json!({"InstanceProfileName": "ip"}))
        .await;
    env.ok(
        "AddRoleToInstanceProfile",
        json!({"InstanceProfileName": "ip", "RoleName": "Deploy"}),
    )
    .await;
    let profile = env.ok("GetInstanceProfile", json!({"InstanceProfileName": "ip"})).await;
    assert_eq!(profile["InstanceProfile"]["Roles"][0]["RoleName"], "Deploy");
    let conflict = env.err("DeleteRole", json!({"RoleName": "Deploy"})).await;
    assert_eq!(conflict.code, "DeleteConflict");
    env.ok(
        "RemoveRoleFromInstanceProfile",
        json!({"InstanceProfileName": "ip", "RoleName": "Deploy"}),
    )
    .await;
    env.ok("DeleteRolePolicy", json!({"RoleName": "Deploy", "PolicyName": "p"}))
        .await;
    env.ok("DeleteRole", json!({"RoleName": "Deploy"})).await;
    // A role session's policies come from the role while it exists.
    env.ok(
        "CreateRole",
        json!({"RoleName": "Reader", "AssumeRolePolicyDocument": trust("ec2.amazonaws.com")}),
    )
    .await;
    env.ok(
        "PutRolePolicy",
        json!({"RoleName": "Reader", "PolicyName": "p", "PolicyDocument": S3_READ}),
    )
    .await;
    let role = env.ok("GetRole", json!({"RoleName": "Reader"})).await;
    let session = Principal {
        account_id: ACCOUNT.into(),
        arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/Reader/s"),
        principal_id: "AROA:s".into(),
        kind: PrincipalKind::AssumedRole {
            role_arn: role["Role"]["Arn"].as_str().unwrap().into(),
            role_name: "Reader".into(),
            role_id: role["Role"]["RoleId"].as_str().unwrap().into(),
            session_name: "s".into(),
        },
        access_key_id: None,
        tags: Vec::new(),
        session: None,
    };
    assert_eq!(env.iam.principal_policies(&session).await.unwrap().identity.len(), 1);
}

#[tokio::test]
async fn inline_policy_size_is_aggregated_per_user() {
    let env = env();
    env.ok("CreateUser", json!({"UserName": "u"})).await;
    let doc = |n: usize| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":[{}]}}]}}"#,
            (0..n)
                .map(|i| format!("\"arn:aws:s3:::b{i}/*\""))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    env.ok(
        "PutUserPolicy",
        json!({"UserName": "u", "PolicyName": "a", "PolicyDocument": doc(60)}),
    )
    .await;
    let err = env
        .err(
            "PutUserPolicy",
            json!({"UserName": "u", "PolicyName": "b", "PolicyDocument": doc(60)}),
        )
        .await;
    assert_eq!((err.code.as_ref(), err.status), ("LimitExceeded", 409));
    assert_eq!(err.message, "Maximum policy size of 2048 bytes exceeded for user u");
    let names = env.ok("ListUserPolicies", json!({"UserName": "u"})).await;
    assert_eq!(names["PolicyNames"], json!(["a"]));
    let missing = env
        .err("GetUserPolicy", json!({"UserName": "u", "PolicyName": "zz"}))
        .await;
    assert_eq!(missing.message, "The user policy with name zz cannot be found.");
}

#[tokio::test]
async fn access_keys_are_sealed_limited_and_resolve_to_the_user() {
    let env = env();
    env.ok(
        "CreateUser",
        json!({"UserName": "k", "Path": "/svc/", "Tags": [{"Key": "env", "Value": "prod"}]}),
    )
    .await;
    let first = env.ok("CreateAccessKey", json!({"UserName": "k"})).await;
    let id = first["AccessKey"]["AccessKeyId"].as_str().unwrap().to_string();
    let secret = first["AccessKey"]["SecretAccessKey"].as_str().unwrap().to_string();
    assert!(id.starts_with("AKIA") && id.len() == 20);
    assert_eq!(secret.len(), 40);
    let raw = env.store.get(ACCESS_KEYS, id.as_bytes()).await.unwrap().unwrap();
    assert!(
        !String::from_utf8_lossy(&raw).contains(&secret),
        "secret stored in clear"
    );
    let record: AccessKeyRecord = serde_json::from_slice(&raw).unwrap();
    assert_eq!(record.secret(&env.master).unwrap().as_slice(), secret.as_bytes());
    let principal = match &record.owner {
        citadel_core::identity::KeyOwner::User { user_id, .. } => {
            env.iam.user_principal(ACCOUNT, user_id, &id).await.unwrap().unwrap()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(principal.arn, format!("arn:aws:iam::{ACCOUNT}:user/svc/k"));
    assert_eq!(
        principal.kind,
        PrincipalKind::User {
            name: "k".into(),
            path: "/svc/".into()
        }
    );
    assert_eq!(principal.tags, vec![("env".to_string(), "prod".to_string())]);

    env.ok("CreateAccessKey", json!({"UserName": "k"})).await;
    let limit = env.err("CreateAccessKey", json!({"UserName": "k"})).await;
    assert_eq!(limit.message, "Cannot exceed quota for AccessKeysPerUser: 2");
    // The user manages its own keys when UserName is omitted.
    let listed = env
        .call_as(principal.clone(), "ListAccessKeys", json!({}), NOW)
        .await
        .unwrap();
    assert_eq!(listed["AccessKeyMetadata"].as_array().unwrap().len(), 2);
    env.call_as(
        principal.clone(),
        "UpdateAccessKey",
        json!({"AccessKeyId": id, "Status": "Inactive"}),
        NOW,
    )
    .await
    .unwrap();
    let record: AccessKeyRecord =
        serde_json::from_slice(&env.store.get(ACCESS_KEYS, id.as_bytes()).await.unwrap().unwrap()).unwrap();
    assert_eq!(record.status, "Inactive");
    let last = env.ok("GetAccessKeyLastUsed", json!({"AccessKeyId": id})).await;
    assert_eq!(last["UserName"], "k");
    env.ok("DeleteAccessKey", json!({"UserName": "k", "AccessKeyId": id}))
        .await;
    assert!(env.store.get(ACCESS_KEYS, id.as_bytes()).await.unwrap().is_none());
    let missing = env
        .err("DeleteAccessKey", json!({"UserName": "k", "AccessKeyId": id}))
        .await;
    assert_eq!(missing.code, "NoSuchEntity");
    // Deleting the user removes its principal.
    let user_id = principal.principal_id.clone();
    let keys = env.ok("ListAccessKeys", json!({"UserName": "k"})).await;
    let other = keys["AccessKeyMetadata"][0]["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok("DeleteAccessKey", json!({"UserName": "k", "AccessKeyId": other}))
        .await;
    env.ok("DeleteUser", json!({"UserName": "k"})).await;
    assert!(env.iam.user_principal(ACCOUNT, &user_id, "x").await.unwrap().is_none());
}

#[tokio::test]
async fn mfa_life_cycle_with_totp_codes() {
    use base64::Engine;
    let env = env();
    env.ok("CreateUser", json!({"UserName": "m"})).await;
    let device = env
        .ok("CreateVirtualMFADevice", json!({"VirtualMFADeviceName": "m-phone"}))
        .await;
    let serial = device["VirtualMFADevice"]["SerialNumber"].as_str().unwrap().to_string();
    assert_eq!(serial, format!("arn:aws:iam::{ACCOUNT}:mfa/m-phone"));
    let b64 = base64::engine::general_purpose::STANDARD;
    let seed32 = String::from_utf8(
        b64.decode(device["VirtualMFADevice"]["Base32StringSeed"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let png = b64
        .decode(device["VirtualMFADevice"]["QRCodePNG"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let seed = base32_decode(&seed32);
    let rows = env.store.scan(crate::model::MFA, b"", None, 10, false).await.unwrap();
    assert!(
        !String::from_utf8_lossy(&rows[0].1).contains(&seed32),
        "seed stored in clear"
    );
    let step = (NOW / 30) as u64;
    let bad = env
        .err("EnableMFADevice", json!({"UserName": "m", "SerialNumber": serial, "AuthenticationCode1": "123456", "AuthenticationCode2": "654321"}))
        .await;
    assert_eq!((bad.code.as_ref(), bad.status), ("InvalidAuthenticationCode", 403));
    let (c1, c2) = (crate::totp(&seed, step - 1), crate::totp(&seed, step));
    env.ok(
        "EnableMFADevice",
        json!({"UserName": "m", "SerialNumber": serial, "AuthenticationCode1": c1, "AuthenticationCode2": c2}),
    )
    .await;
    let devices = env.ok("ListMFADevices", json!({"UserName": "m"})).await;
    assert_eq!(devices["MFADevices"][0]["SerialNumber"], serial);
    let assigned = env
        .ok("ListVirtualMFADevices", json!({"AssignmentStatus": "Assigned"}))
        .await;
    assert_eq!(assigned["VirtualMFADevices"][0]["User"]["UserName"], "m");
    // The same codes cannot be used again (resync needs fresh ones).
    let replay = env
        .err(
            "ResyncMFADevice",
            json!({"UserName": "m", "SerialNumber": serial, "AuthenticationCode1": c1, "AuthenticationCode2": c2}),
        )
        .await;
    assert_eq!(replay.code, "InvalidAuthenticationCode");
    let later = NOW + 90;
    let step2 = (later / 30) as u64;
    env.call_as(
        Principal::root(ACCOUNT, None),
        "ResyncMFADevice",
        json!({"UserName": "m", "SerialNumber": serial, "AuthenticationCode1": crate::totp(&seed, step2 - 1), "AuthenticationCode2": crate::totp(&seed, step2)}),
        later,
    )
    .await
    .unwrap();
    assert_eq!(
        env.err("DeleteUser", json!({"UserName": "m"})).await.message,
        "Cannot delete entity, must delete MFA device first."
    );
    assert_eq!(
        env.err("DeleteVirtualMFADevice", json!({"SerialNumber": serial}))
            .await
            .code,
        "DeleteConflict"
    );
    env.ok("DeactivateMFADevice", json!({"UserName": "m", "SerialNumber": serial}))
        .await;
    env.ok("DeleteVirtualMFADevice", json!({"SerialNumber": serial})).await;
    env.ok("DeleteUser", json!({"UserName": "m"})).await;
    let rows = env.store.scan(crate::model::MFA, b"", None, 10, false).await.unwrap();
    assert!(rows.is_empty());
}

fn base32_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => continue,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

#[tokio::test]
async fn passwords_follow_the_policy_and_are_hashed() {
    let env = env();
    env.ok("CreateUser", json!({"UserName": "p"})).await;
    let weak = env
        .err("CreateLoginProfile", json!({"UserName": "p", "Password": "short"}))
        .await;
    assert_eq!((weak.code.as_ref(), weak.status), ("PasswordPolicyViolation", 400));
    env.ok("UpdateAccountPasswordPolicy", json!({"MinimumPasswordLength": 12, "RequireSymbols": true, "PasswordReusePrevention": 2, "AllowUsersToChangePassword": true})).await;
    let policy = env.ok("GetAccountPasswordPolicy", json!({})).await;
    assert_eq!(policy["PasswordPolicy"]["MinimumPasswordLength"], 12);
    assert_eq!(
        env.err(
            "CreateLoginProfile",
            json!({"UserName": "p", "Password": "NoSymbolsHere123"})
        )
        .await
        .code,
        "PasswordPolicyViolation"
    );
    let created = env
        .ok(
            "CreateLoginProfile",
            json!({"UserName": "p", "Password": "Long-enough-pw!", "PasswordResetRequired": true}),
        )
        .await;
    assert_eq!(created["LoginProfile"]["PasswordResetRequired"], true);
    let raw = env
        .store
        .get(crate::model::USERS, &crate::model::name_key(ACCOUNT, "p"))
        .await
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("Long-enough-pw!"));
    let user: UserRecord = serde_json::from_slice(&raw).unwrap();
    assert!(user.login_profile.unwrap().password_hash.starts_with("pbkdf2-sha256$"));
    let p = env.user_principal("p").await;
    let wrong = env
        .call_as(
            p.clone(),
            "ChangePassword",
            json!({"OldPassword": "nope", "NewPassword": "Another-long-pw!"}),
            NOW,
        )
        .await;
    assert!(wrong.is_err());
    let reuse = env
        .call_as(
            p.clone(),
            "ChangePassword",
            json!({"OldPassword": "Long-enough-pw!", "NewPassword": "Long-enough-pw!"}),
            NOW,
        )
        .await
        .unwrap_err();
    assert_eq!(reuse.code, "PasswordPolicyViolation");
    env.call_as(
        p.clone(),
        "ChangePassword",
        json!({"OldPassword": "Long-enough-pw!", "NewPassword": "Another-long-pw!"}),
        NOW,
    )
    .await
    .unwrap();
    let profile = env.ok("GetLoginProfile", json!({"UserName": "p"})).await;
    assert_eq!(profile["LoginProfile"]["PasswordResetRequired"], false);
    env.ok("DeleteAccountPasswordPolicy", json!({})).await;
    assert_eq!(
        env.err("GetAccountPasswordPolicy", json!({})).await.code,
        "NoSuchEntity"
    );
}

#[tokio::test]
async fn simulation_reports_decisions_statements_and_missing_keys() {
    let env = env();
    let policy = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
    {"Sid": "NoDelete", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"}
  ]
}"#;
    let out = env
        .ok(
            "SimulateCustomPolicy",
            json!({"PolicyInputList": [policy], "ActionNames": ["s3:GetObject", "s3:DeleteObject", "s3:PutObject"],
                   "ResourceArns": ["arn:aws:s3:::b/k"],
                   "ContextEntries": [{"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["10.1.2.3"], "ContextKeyType": "ip"}]}),
        )
        .await;
    let results = out["EvaluationResults"].as_array().unwrap();
    let decisions: Vec<&str> = results.iter().map(|r| r["EvalDecision"].as_str().unwrap()).collect();
    assert_eq!(decisions, ["allowed", "explicitDeny", "implicitDeny"]);
    assert_eq!(results[0]["MatchedStatements"][0]["StartPosition"]["Line"], 4);
    assert_eq!(results[1]["MatchedStatements"][0]["StartPosition"]["Line"], 5);
    let missing = env
        .ok(
            "SimulateCustomPolicy",
            json!({"PolicyInputList": [policy], "ActionNames": ["s3:GetObject"]}),
        )
        .await;
    assert_eq!(missing["EvaluationResults"][0]["EvalDecision"], "implicitDeny");
    assert_eq!(
        missing["EvaluationResults"][0]["MissingContextValues"],
        json!(["aws:sourceip"])
    );

    env.ok("CreateUser", json!({"UserName": "sim"})).await;
    env.ok(
        "AttachUserPolicy",
        json!({"UserName": "sim", "PolicyArn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}),
    )
    .await;
    let arn = format!("arn:aws:iam::{ACCOUNT}:user/sim");
    let out = env
        .ok(
            "SimulatePrincipalPolicy",
            json!({"PolicySourceArn": arn, "ActionNames": ["s3:GetObject", "s3:PutObject"]}),
        )
        .await;
    let decisions: Vec<&str> = out["EvaluationResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["EvalDecision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["allowed", "implicitDeny"]);
    assert_eq!(
        out["EvaluationResults"][0]["MatchedStatements"][0]["SourcePolicyType"],
        "aws-managed"
    );
    let keys = env
        .ok("GetContextKeysForCustomPolicy", json!({"PolicyInputList": [policy]}))
        .await;
    assert_eq!(keys["ContextKeyNames"], json!(["aws:sourceip"]));
}

#[tokio::test]
async fn account_level_reports_and_tags() {
    use base64::Engine;
    let env = env();
    env.ok("CreateUser", json!({"UserName": "r1"})).await;
    env.ok("CreateAccessKey", json!({"UserName": "r1"})).await;
    env.ok("CreateGroup", json!({"GroupName": "g"})).await;
    env.ok(
        "PutGroupPolicy",
        json!({"GroupName": "g", "PolicyName": "p", "PolicyDocument": S3_READ}),
    )
    .await;
    let summary = env.ok("GetAccountSummary", json!({})).await;
    assert_eq!(summary["SummaryMap"]["Users"], 1);
    assert_eq!(summary["SummaryMap"]["Groups"], 1);
    assert_eq!(env.err("GetCredentialReport", json!({})).await.status, 410);
    assert_eq!(env.ok("GenerateCredentialReport", json!({})).await["State"], "COMPLETE");
    let report = env.ok("GetCredentialReport", json!({})).await;
    let csv = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(report["Content"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("user,arn,user_creation_time,password_enabled"));
    assert!(lines[1].starts_with("<root_account>,"));
    assert!(lines[2].starts_with(&format!(
        "r1,arn:aws:iam::{ACCOUNT}:user/r1,2023-11-14T22:13:20+00:00,false,N/A,N/A,N/A,false,true,"
    )));
    let details = env.ok("GetAccountAuthorizationDetails", json!({"MaxItems": 1})).await;
    assert_eq!(details["IsTruncated"], true);
    assert_eq!(details["UserDetailList"][0]["UserName"], "r1");
    let next = env
        .ok("GetAccountAuthorizationDetails", json!({"Marker": details["Marker"]}))
        .await;
    assert_eq!(next["GroupDetailList"][0]["GroupPolicyList"][0]["PolicyName"], "p");

    env.ok(
        "TagUser",
        json!({"UserName": "r1", "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]}),
    )
    .await;
    env.ok("UntagUser", json!({"UserName": "r1", "TagKeys": ["A"]})).await;
    let tags = env.ok("ListUserTags", json!({"UserName": "r1"})).await;
    assert_eq!(tags["Tags"], json!([{"Key": "b", "Value": "2"}]));
    let too_many: Vec<Value> = (0..51).map(|i| json!({"Key": format!("k{i}"), "Value": ""})).collect();
    assert_eq!(
        env.err("TagUser", json!({"UserName": "r1", "Tags": too_many}))
            .await
            .code,
        "LimitExceeded"
    );

    env.ok("CreateAccountAlias", json!({"AccountAlias": "my-corp"})).await;
    assert_eq!(
        env.ok("ListAccountAliases", json!({})).await["AccountAliases"],
        json!(["my-corp"])
    );
    let oidc = env
        .ok("CreateOpenIDConnectProvider", json!({"Url": "https://token.actions.githubusercontent.com", "ClientIDList": ["sts.amazonaws.com"], "ThumbprintList": ["a".repeat(40)]}))
        .await;
    let oidc_arn = oidc["OpenIDConnectProviderArn"].as_str().unwrap().to_string();
    assert_eq!(
        oidc_arn,
        format!("arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com")
    );
    env.ok(
        "AddClientIDToOpenIDConnectProvider",
        json!({"OpenIDConnectProviderArn": oidc_arn, "ClientID": "other"}),
    )
    .await;
    let got = env
        .ok(
            "GetOpenIDConnectProvider",
            json!({"OpenIDConnectProviderArn": oidc_arn}),
        )
        .await;
    assert_eq!(got["ClientIDList"], json!(["sts.amazonaws.com", "other"]));
}

#[test]
fn spec_lists_every_dispatched_operation_with_iam_actions() {
    let model_ops: Vec<String> = SPEC.operations.iter().map(|o| o.name.to_string()).collect();
    assert!(model_ops.len() >= 120);
    for op in SPEC.operations {
        assert_eq!(op.action, format!("iam:{}", op.name));
        assert_eq!(
            op.read_only,
            op.name.starts_with("Get") || op.name.starts_with("List") || op.name.starts_with("Simulate")
        );
    }
}

#[tokio::test]
async fn every_spec_operation_is_dispatched() {
    let env = env();
    for op in SPEC.operations {
        let result = env.call(op.name, json!({})).await;
        if let Err(err) = result {
            assert_ne!(err.code, "InvalidAction", "{} is in SPEC but not dispatched", op.name);
        }
    }
}

#[tokio::test]
async fn authorization_names_the_real_arn_with_path_and_request_keys() {
    let env = env();
    env.ok(
        "CreateUser",
        json!({"UserName": "pathy", "Path": "/division/", "Tags": [{"Key": "team", "Value": "x"}]}),
    )
    .await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "GetUser",
            json!({"UserName": "pathy"}),
            "arn:aws:iam::123456789012:user/division/pathy",
        ),
        (
            "CreateUser",
            json!({"UserName": "new", "Path": "/a/"}),
            "arn:aws:iam::123456789012:user/a/new",
        ),
        (
            "CreateRole",
            json!({"RoleName": "r"}),
            "arn:aws:iam::123456789012:role/r",
        ),
        (
            "GetPolicy",
            json!({"PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
        ),
        ("ListUsers", json!({}), "arn:aws:iam::123456789012:user/"),
        (
            "ListRoles",
            json!({"PathPrefix": "/ci/"}),
            "arn:aws:iam::123456789012:role/ci/",
        ),
        ("GetAccountSummary", json!({}), "*"),
        (
            "CreateVirtualMFADevice",
            json!({"VirtualMFADeviceName": "d"}),
            "arn:aws:iam::123456789012:mfa/d",
        ),
    ];
    for (op, input, resource) in cases {
        let spec = SPEC.operation(op).unwrap();
        let call = Call {
            ctx: ctx(Principal::root(ACCOUNT, None), spec.name, NOW),
            op: spec,
            input,
        };
        let authz = env.iam.authorize(&call).await.unwrap();
        assert_eq!(authz.checks[0].resource, resource, "{op}");
        assert_eq!(authz.checks[0].action, format!("iam:{op}"));
    }
    let spec = SPEC.operation("GetUser").unwrap();
    let call = Call {
        ctx: ctx(Principal::root(ACCOUNT, None), spec.name, NOW),
        op: spec,
        input: json!({"UserName": "pathy"}),
    };
    let authz = env.iam.authorize(&call).await.unwrap();
    assert_eq!(
        authz.checks[0].resource_tags,
        vec![("team".to_string(), "x".to_string())]
    );
    let spec = SPEC.operation("TagUser").unwrap();
    let call = Call {
        ctx: ctx(Principal::root(ACCOUNT, None), spec.name, NOW),
        op: spec,
        input: json!({"UserName": "pathy", "Tags": [{"Key": "k", "Value": "v"}]}),
    };
    let authz = env.iam.authorize(&call).await.unwrap();
    assert!(
        authz
            .context
            .contains(&("aws:RequestTag/k".to_string(), vec!["v".to_string()]))
    );
    assert!(
        authz
            .context
            .contains(&("aws:TagKeys".to_string(), vec!["k".to_string()]))
    );
}

#[tokio::test]
async fn outputs_encode_through_the_query_codec() {
    use base64::Engine;
    let env = env();
    let model = citadel_wire::codec::model("iam").unwrap();
    let encode = |op: &str, out: &Value| {
        let encoded =
            citadel_wire::codec::encode_response(model, op, citadel_wire::Protocol::Query, out, "rid").unwrap();
        String::from_utf8(encoded.body).unwrap()
    };
    let out = env
        .ok(
            "CreateUser",
            json!({"UserName": "x", "Tags": [{"Key": "k", "Value": "v"}]}),
        )
        .await;
    let xml = encode("CreateUser", &out);
    assert!(xml.contains("<UserName>x</UserName>"), "{xml}");
    assert!(xml.contains("<CreateDate>2023-11-14T22:13:20Z</CreateDate>"), "{xml}");
    assert!(
        xml.contains("<Tags><member><Key>k</Key><Value>v</Value></member></Tags>"),
        "{xml}"
    );
    let out = env
        .ok("CreatePolicy", json!({"PolicyName": "P", "PolicyDocument": S3_READ}))
        .await;
    let arn = out["Policy"]["Arn"].as_str().unwrap().to_string();
    let out = env
        .ok("GetPolicyVersion", json!({"PolicyArn": arn, "VersionId": "v1"}))
        .await;
    let xml = encode("GetPolicyVersion", &out);
    assert!(xml.contains("<Document>%7B%22Version%22"), "{xml}");
    let out = env
        .ok("CreateVirtualMFADevice", json!({"VirtualMFADeviceName": "d"}))
        .await;
    let xml = encode("CreateVirtualMFADevice", &out);
    let seed = out["VirtualMFADevice"]["Base32StringSeed"].as_str().unwrap();
    assert!(
        xml.contains(&format!("<Base32StringSeed>{seed}</Base32StringSeed>")),
        "{xml}"
    );
    assert!(base64::engine::general_purpose::STANDARD.decode(seed).is_ok());
    let out = env
        .ok(
            "SimulateCustomPolicy",
            json!({"PolicyInputList": [S3_READ], "ActionNames": ["s3:GetObject"]}),
        )
        .await;
    let xml = encode("SimulateCustomPolicy", &out);
    assert!(xml.contains("<EvalDecision>allowed</EvalDecision>"), "{xml}");
    assert!(xml.contains("<StartPosition><Line>1</Line>"), "{xml}");
    let out = env.ok("GetAccountSummary", json!({})).await;
    let xml = encode("GetAccountSummary", &out);
    assert!(xml.contains("<entry><key>Users</key><value>1</value></entry>"), "{xml}");
    let out = env
        .ok(
            "GetPolicy",
            json!({"PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
        )
        .await;
    let xml = encode("GetPolicy", &out);
    let created = crate::managed::by_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
        .unwrap()
        .create_date
        .clone()
        .unwrap();
    let want = format!("<CreateDate>{}Z</CreateDate>", created.trim_end_matches("+00:00"));
    assert!(xml.contains(&want), "{want} not in {xml}");
}

// Service-linked roles, server certificates, service last accessed data ---------------------------

#[tokio::test]
async fn service_linked_roles_are_protected_and_deleted_through_a_task() {
    let env = env();
    let out = env
        .ok(
            "CreateServiceLinkedRole",
            json!({"AWSServiceName": "autoscaling.amazonaws.com", "Description": "asg"}),
        )
        .await;
    let role = &out["Role"];
    assert_eq!(role["RoleName"], "AWSServiceRoleForAutoScaling");
    assert_eq!(role["Path"], "/aws-service-role/autoscaling.amazonaws.com/");
    assert_eq!(
        role["Arn"],
        format!("arn:aws:iam::{ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling")
    );
    let trust: Value = serde_json::from_str(role["AssumeRolePolicyDocument"].as_str().unwrap()).unwrap();
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"][0],
        "autoscaling.amazonaws.com"
    );
    let suffixed = env
        .ok(
            "CreateServiceLinkedRole",
            json!({"AWSServiceName": "autoscaling.amazonaws.com", "CustomSuffix": "web"}),
        )
        .await;
    assert_eq!(suffixed["Role"]["RoleName"], "AWSServiceRoleForAutoScaling_web");
    let taken = env
        .err(
            "CreateServiceLinkedRole",
            json!({"AWSServiceName": "autoscaling.amazonaws.com"}),
        )
        .await;
    assert_eq!(taken.code, "InvalidInput");
    let name = "AWSServiceRoleForAutoScaling";
    for (op, input) in [
        ("DeleteRole", json!({"RoleName": name})),
        (
            "UpdateAssumeRolePolicy",
            json!({"RoleName": name, "PolicyDocument": crate::service_linked::trust_policy("ec2.amazonaws.com")}),
        ),
        (
            "PutRolePolicy",
            json!({"RoleName": name, "PolicyName": "p", "PolicyDocument": S3_READ}),
        ),
        (
            "AttachRolePolicy",
            json!({"RoleName": name, "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        ),
    ] {
        let err = env.err(op, input).await;
        assert_eq!((err.code.as_ref(), err.status), ("UnmodifiableEntity", 400), "{op}");
        assert!(err.message.contains("protected role"), "{op}: {}", err.message);
    }
    // Ordinary roles cannot be deleted through the service-linked path.
    env.ok(
        "CreateRole",
        json!({"RoleName": "plain", "AssumeRolePolicyDocument": crate::service_linked::trust_policy("ec2.amazonaws.com")}),
    )
    .await;
    assert_eq!(
        env.err("DeleteServiceLinkedRole", json!({"RoleName": "plain"}))
            .await
            .code,
        "InvalidInput"
    );
    let task = env.ok("DeleteServiceLinkedRole", json!({"RoleName": name})).await["DeletionTaskId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(task.starts_with("task/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling/"));
    let status = env
        .ok("GetServiceLinkedRoleDeletionStatus", json!({"DeletionTaskId": task}))
        .await;
    assert_eq!(status["Status"], "SUCCEEDED");
    assert_eq!(env.err("GetRole", json!({"RoleName": name})).await.code, "NoSuchEntity");
    assert_eq!(
        env.err(
            "GetServiceLinkedRoleDeletionStatus",
            json!({"DeletionTaskId": "task/nope"})
        )
        .await
        .code,
        "NoSuchEntity"
    );
}

fn certificate_pair(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2040, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn server_certificates_keep_their_key_sealed_and_page() {
    let env = env();
    let (body, key) = certificate_pair("a.test");
    let (_, other_key) = certificate_pair("b.test");
    let out = env
        .ok(
            "UploadServerCertificate",
            json!({"ServerCertificateName": "web", "Path": "/tls/", "CertificateBody": body,
                   "PrivateKey": key, "Tags": [{"Key": "env", "Value": "prod"}]}),
        )
        .await;
    let meta = &out["ServerCertificateMetadata"];
    assert_eq!(
        meta["Arn"],
        format!("arn:aws:iam::{ACCOUNT}:server-certificate/tls/web")
    );
    assert!(meta["ServerCertificateId"].as_str().unwrap().starts_with("ASCA"));
    assert_eq!(meta["Expiration"], 2_208_988_800i64);
    let mismatch = env
        .err(
            "UploadServerCertificate",
            json!({"ServerCertificateName": "bad", "CertificateBody": body, "PrivateKey": other_key}),
        )
        .await;
    assert_eq!(mismatch.code, "KeyPairMismatch");
    let malformed = env
        .err(
            "UploadServerCertificate",
            json!({"ServerCertificateName": "bad", "CertificateBody": "nope", "PrivateKey": key}),
        )
        .await;
    assert_eq!(malformed.code, "MalformedCertificate");
    let dup = env
        .err(
            "UploadServerCertificate",
            json!({"ServerCertificateName": "WEB", "CertificateBody": body, "PrivateKey": key}),
        )
        .await;
    assert_eq!(dup.code, "EntityAlreadyExists");

    let got = env
        .ok("GetServerCertificate", json!({"ServerCertificateName": "web"}))
        .await;
    assert_eq!(got["ServerCertificate"]["CertificateBody"], body.trim());
    assert!(!got.to_string().contains("PRIVATE KEY"));
    assert_eq!(got["ServerCertificate"]["Tags"][0]["Key"], "env");

    // The private key is sealed at rest and opens only under the master key with its certificate id.
    let rows: Vec<crate::model::Row<crate::model::ServerCertificateRecord>> =
        crate::model::scan_account(env.store.as_ref(), crate::model::SERVER_CERTIFICATES, ACCOUNT)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!String::from_utf8_lossy(&rows[0].raw).contains("PRIVATE KEY"));
    assert_eq!(
        crate::certs::unseal_key(&env.master, &rows[0].value).as_deref(),
        Some(key.trim())
    );

    for i in 0..4 {
        let (body, key) = certificate_pair("c.test");
        env.ok(
            "UploadServerCertificate",
            json!({"ServerCertificateName": format!("c{i}"), "CertificateBody": body, "PrivateKey": key}),
        )
        .await;
    }
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut input = json!({"MaxItems": 2});
        if let Some(m) = &marker {
            input["Marker"] = json!(m);
        }
        let page = env.ok("ListServerCertificates", input).await;
        for item in page["ServerCertificateMetadataList"].as_array().unwrap() {
            names.push(item["ServerCertificateName"].as_str().unwrap().to_string());
        }
        if page["IsTruncated"] != true {
            break;
        }
        marker = page["Marker"].as_str().map(str::to_string);
    }
    assert_eq!(names, ["c0", "c1", "c2", "c3", "web"]);
    let tls_only = env.ok("ListServerCertificates", json!({"PathPrefix": "/tls/"})).await;
    assert_eq!(tls_only["ServerCertificateMetadataList"].as_array().unwrap().len(), 1);

    env.ok(
        "UpdateServerCertificate",
        json!({"ServerCertificateName": "web", "NewServerCertificateName": "web2", "NewPath": "/edge/"}),
    )
    .await;
    assert_eq!(
        env.err("GetServerCertificate", json!({"ServerCertificateName": "web"}))
            .await
            .code,
        "NoSuchEntity"
    );
    let renamed = env
        .ok("GetServerCertificate", json!({"ServerCertificateName": "web2"}))
        .await;
    assert_eq!(
        renamed["ServerCertificate"]["ServerCertificateMetadata"]["Arn"],
        format!("arn:aws:iam::{ACCOUNT}:server-certificate/edge/web2")
    );
    env.ok(
        "TagServerCertificate",
        json!({"ServerCertificateName": "web2", "Tags": [{"Key": "team", "Value": "sec"}]}),
    )
    .await;
    env.ok(
        "UntagServerCertificate",
        json!({"ServerCertificateName": "web2", "TagKeys": ["env"]}),
    )
    .await;
    let tags = env
        .ok("ListServerCertificateTags", json!({"ServerCertificateName": "web2"}))
        .await;
    assert_eq!(tags["Tags"], json!([{"Key": "team", "Value": "sec"}]));
    let summary = env.ok("GetAccountSummary", json!({})).await;
    assert_eq!(summary["SummaryMap"]["ServerCertificates"], 5);
    env.ok("DeleteServerCertificate", json!({"ServerCertificateName": "web2"}))
        .await;
    assert_eq!(
        env.err("DeleteServerCertificate", json!({"ServerCertificateName": "web2"}))
            .await
            .code,
        "NoSuchEntity"
    );
}

/// Writes one CloudTrail record as the pipeline would.
async fn record_event(env: &Env, caller: Value, source: &str, name: &str, time: i64, id: &str) {
    let when = time::OffsetDateTime::from_unix_timestamp(time).unwrap();
    let record = json!({
        "userIdentity": caller,
        "eventTime": when.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "eu-west-1",
    });
    let mut batch = citadel_store::WriteBatch::new();
    batch.put(
        citadel_core::audit::EVENTS,
        &citadel_core::audit::event_key(ACCOUNT, u64::try_from(time * 1000).unwrap(), id),
        &serde_json::to_vec(&record).unwrap(),
    );
    env.store.commit(batch).await.unwrap();
}

#[tokio::test]
async fn service_last_accessed_reports_come_from_cloudtrail_records() {
    let env = env();
    let user_arn = format!("arn:aws:iam::{ACCOUNT}:user/alice");
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/app");
    env.ok("CreateUser", json!({"UserName": "alice"})).await;
    env.ok("CreateGroup", json!({"GroupName": "readers"})).await;
    env.ok("AddUserToGroup", json!({"GroupName": "readers", "UserName": "alice"}))
        .await;
    env.ok(
        "PutGroupPolicy",
        json!({"GroupName": "readers", "PolicyName": "s3", "PolicyDocument": S3_READ}),
    )
    .await;
    let kms_policy =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}]}"#;
    let policy_arn = env
        .ok(
            "CreatePolicy",
            json!({"PolicyName": "kms", "PolicyDocument": kms_policy}),
        )
        .await["Policy"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(
        "AttachUserPolicy",
        json!({"UserName": "alice", "PolicyArn": policy_arn}),
    )
    .await;
    env.ok(
        "CreateRole",
        json!({"RoleName": "app", "AssumeRolePolicyDocument": crate::service_linked::trust_policy("ec2.amazonaws.com")}),
    )
    .await;
    env.ok("AttachRolePolicy", json!({"RoleName": "app", "PolicyArn": policy_arn}))
        .await;

    let alice = json!({"type": "IAMUser", "arn": user_arn});
    let session = json!({"type": "AssumedRole", "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/app/s"),
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role_arn}}});
    record_event(&env, alice.clone(), "s3.amazonaws.com", "GetObject", NOW + 10, "e1").await;
    record_event(&env, alice.clone(), "s3.amazonaws.com", "ListBuckets", NOW + 20, "e2").await;
    record_event(&env, session, "kms.amazonaws.com", "Decrypt", NOW + 30, "e3").await;
    // Services the policies do not allow are not reported even when used.
    record_event(&env, alice, "logs.amazonaws.com", "PutLogEvents", NOW + 40, "e4").await;

    let job = env
        .ok(
            "GenerateServiceLastAccessedDetails",
            json!({"Arn": user_arn, "Granularity": "ACTION_LEVEL"}),
        )
        .await["JobId"]
        .as_str()
        .unwrap()
        .to_string();
    let report = env.ok("GetServiceLastAccessedDetails", json!({"JobId": job})).await;
    assert_eq!(report["JobStatus"], "COMPLETED");
    assert_eq!(report["JobType"], "ACTION_LEVEL");
    let services = report["ServicesLastAccessed"].as_array().unwrap();
    let namespaces: Vec<&str> = services
        .iter()
        .map(|s| s["ServiceNamespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, ["kms", "s3"]);
    let kms = &services[0];
    assert_eq!(kms["TotalAuthenticatedEntities"], 0);
    assert!(kms.get("LastAuthenticated").is_none());
    let s3 = &services[1];
    assert_eq!(s3["ServiceName"], "Amazon S3");
    assert_eq!(s3["LastAuthenticated"], NOW + 20);
    assert_eq!(s3["LastAuthenticatedEntity"], user_arn);
    assert_eq!(s3["LastAuthenticatedRegion"], "eu-west-1");
    assert_eq!(s3["TotalAuthenticatedEntities"], 1);
    let actions: Vec<&str> = s3["TrackedActionsLastAccessed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ActionName"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["GetObject", "ListBuckets"]);

    // A policy's report counts every entity it is attached to.
    let job = env
        .ok("GenerateServiceLastAccessedDetails", json!({"Arn": policy_arn}))
        .await["JobId"]
        .as_str()
        .unwrap()
        .to_string();
    let report = env.ok("GetServiceLastAccessedDetails", json!({"JobId": job})).await;
    let kms = &report["ServicesLastAccessed"][0];
    assert_eq!(report["JobType"], "SERVICE_LEVEL");
    assert_eq!(kms["ServiceNamespace"], "kms");
    assert_eq!(kms["LastAuthenticatedEntity"], role_arn);
    assert_eq!(kms["TotalAuthenticatedEntities"], 1);
    let entities = env
        .ok(
            "GetServiceLastAccessedDetailsWithEntities",
            json!({"JobId": job, "ServiceNamespace": "kms"}),
        )
        .await;
    let list = entities["EntityDetailsList"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let role_entry = list.iter().find(|e| e["EntityInfo"]["Type"] == "ROLE").unwrap();
    assert_eq!(role_entry["LastAuthenticated"], NOW + 30);
    let user_entry = list.iter().find(|e| e["EntityInfo"]["Type"] == "USER").unwrap();
    assert!(user_entry.get("LastAuthenticated").is_none());

    // A group's report names its members.
    let job = env
        .ok(
            "GenerateServiceLastAccessedDetails",
            json!({"Arn": format!("arn:aws:iam::{ACCOUNT}:group/readers")}),
        )
        .await["JobId"]
        .as_str()
        .unwrap()
        .to_string();
    let entities = env
        .ok(
            "GetServiceLastAccessedDetailsWithEntities",
            json!({"JobId": job, "ServiceNamespace": "s3"}),
        )
        .await;
    assert_eq!(entities["EntityDetailsList"][0]["EntityInfo"]["Arn"], user_arn);
    assert_eq!(entities["EntityDetailsList"][0]["LastAuthenticated"], NOW + 20);

    assert_eq!(
        env.err(
            "GenerateServiceLastAccessedDetails",
            json!({"Arn": format!("arn:aws:iam::{ACCOUNT}:user/nobody")})
        )
        .await
        .code,
        "NoSuchEntity"
    );
    assert_eq!(
        env.err("GetServiceLastAccessedDetails", json!({"JobId": "nope"}))
            .await
            .code,
        "NoSuchEntity"
    );
}
