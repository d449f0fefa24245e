//! Handler tests: STS over an in-memory directory, with core's authorizer deciding trust.

use crate::directory::{IdentityDirectory, MfaDevice, OidcProvider, RoleInfo, SamlProvider};
use crate::token::{ClaimKind, SessionClaims, TokenSealer};
use crate::{SPEC, Sts, totp_step};
use citadel_core::authz::Authorizer;
use citadel_core::clock::{Clock, ManualClock};
use citadel_core::identity::{CredentialError, SessionResolver};
use citadel_core::random::SeededRandom;
use citadel_core::{Authorized, Call, IdGen, Principal, PrincipalKind, RequestContext, Service};
use citadel_store::{MasterKey, RedbStore, Store, WriteBatch};
use citadel_wire::AwsError;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

const ACCOUNT: &str = "123456789012";
const OTHER: &str = "210987654321";
const NOW: i64 = 1_700_000_000;
const USER_ID: &str = "AIDAEXAMPLEUSER00001";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
const SEED: &[u8] = b"12345678901234567890";
/// The SAML provider of the fixtures in `saml/testdata` (signed by signxml).
const SAML_PROVIDER: &str = "arn:aws:iam::123456789012:saml-provider/TestIdp";
/// The fixtures' IssueInstant.
const SAML_ISSUED: i64 = 1_795_934_239;

#[derive(Default)]
struct FakeDirectory {
    roles: Vec<RoleInfo>,
    used_steps: Mutex<Vec<u64>>,
}

#[async_trait::async_trait]
impl IdentityDirectory for FakeDirectory {
    async fn role_by_arn(&self, arn: &str) -> Result<Option<RoleInfo>, AwsError> {
        Ok(self.roles.iter().find(|r| r.arn == arn).cloned())
    }
    async fn mfa_device(&self, account: &str, serial: &str) -> Result<Option<MfaDevice>, AwsError> {
        Ok((account == ACCOUNT && serial == SERIAL).then(|| MfaDevice {
            serial: SERIAL.into(),
            user_id: Some(USER_ID.into()),
            seed: zeroize::Zeroizing::new(SEED.to_vec()),
            last_counter: self.used_steps.lock().unwrap().iter().max().copied(),
            revision: Vec::new(),
        }))
    }
    fn record_mfa_use(&self, _batch: &mut WriteBatch, _account: &str, _device: &MfaDevice, counter: u64) {
        self.used_steps.lock().unwrap().push(counter);
    }
    async fn oidc_provider(&self, _account: &str, _issuer: &str) -> Result<Option<OidcProvider>, AwsError> {
        Ok(None)
    }
    async fn saml_provider(&self, arn: &str) -> Result<Option<SamlProvider>, AwsError> {
        Ok((arn == SAML_PROVIDER).then(|| SamlProvider {
            arn: arn.into(),
            metadata: include_str!("saml/testdata/metadata.xml").into(),
        }))
    }
    async fn managed_policy_document(&self, _account: &str, arn: &str) -> Result<Option<String>, AwsError> {
        Ok((arn == "arn:aws:iam::aws:policy/ReadOnlyAccess").then(|| {
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}]}"#.to_string()
        }))
    }
}

fn role(account: &str, name: &str, trust: &str, max: i64) -> RoleInfo {
    RoleInfo {
        arn: format!("arn:aws:iam::{account}:role/{name}"),
        name: name.into(),
        id: format!("AROA{name:0>17}").to_uppercase(),
        account: account.into(),
        trust_policy: trust.into(),
        max_session_duration: max,
        tags: vec![("dept".into(), "eng".into())],
    }
}

fn alice() -> Principal {
    Principal {
        account_id: ACCOUNT.into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:user/alice"),
        principal_id: USER_ID.into(),
        kind: PrincipalKind::User {
            name: "alice".into(),
            path: "/".into(),
        },
        access_key_id: Some("AKIAEXAMPLEALICE0001".into()),
        tags: Vec::new(),
        session: None,
    }
}

fn trust_for(principal: &str, condition: Value) -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal},
        "Action": ["sts:AssumeRole", "sts:TagSession"], "Condition": condition}]})
    .to_string()
}

struct Env {
    sts: Arc<Sts>,
    directory: Arc<FakeDirectory>,
    authorizer: Authorizer,
    _dir: tempfile::TempDir,
}

fn env() -> Env {
    let alice_arn = format!("arn:aws:iam::{ACCOUNT}:user/alice");
    let roles = vec![
        role(ACCOUNT, "Reader", &trust_for(&alice_arn, json!({})), 7200),
        role(
            ACCOUNT,
            "Partner",
            &trust_for(&alice_arn, json!({"StringEquals": {"sts:ExternalId": "ext-123"}})),
            3600,
        ),
        role(
            ACCOUNT,
            "Mfa",
            &trust_for(&alice_arn, json!({"Bool": {"aws:MultiFactorAuthPresent": "true"}})),
            3600,
        ),
        role(
            ACCOUNT,
            "Nobody",
            &trust_for("arn:aws:iam::999999999999:root", json!({})),
            3600,
        ),
        role(
            ACCOUNT,
            "SamlRole",
            &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Federated": SAML_PROVIDER},
                "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession", "sts:SetSourceIdentity"],
                "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml",
                    "saml:doc": "123456789012/TestIdp", "saml:sub_type": "persistent"},
                    "ForAnyValue:StringEquals": {"saml:edupersonaffiliation": "staff"}}}]})
            .to_string(),
            3600,
        ),
        role(
            ACCOUNT,
            "Ec2Role",
            &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
            .to_string(),
            3600,
        ),
        role(
            ACCOUNT,
            "Chain",
            &trust_for(&format!("arn:aws:iam::{ACCOUNT}:role/Reader"), json!({})),
            43200,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("db.redb")).unwrap());
    let directory = Arc::new(FakeDirectory {
        roles,
        ..Default::default()
    });
    let master = MasterKey::from_bytes([7; 32]);
    let ids = IdGen::new(Arc::new(SeededRandom::new(5)));
    Env {
        sts: Arc::new(Sts::new(store, &master, ids, directory.clone())),
        directory,
        authorizer: Authorizer::default(),
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
        time: OffsetDateTime::from_unix_timestamp(time).unwrap(),
        service: "sts",
        operation: op,
    }
}

impl Env {
    /// Runs a call the way the pipeline does: authorize, policy decision, execute.
    async fn call_at(&self, principal: Principal, op: &str, input: Value, time: i64) -> Result<Value, AwsError> {
        let spec = SPEC.operation(op).unwrap();
        let call = Call {
            ctx: ctx(principal, spec.name, time),
            op: spec,
            input,
        };
        let authz = self.sts.authorize(&call).await?;
        self.authorizer
            .authorize(&call.ctx, &authz, false)
            .await
            .map_err(|d| AwsError::new("AccessDenied", 403, d.message))?;
        Ok(self.sts.execute(&call, &Authorized::for_tests()).await?.output)
    }

    async fn call(&self, principal: Principal, op: &str, input: Value) -> Result<Value, AwsError> {
        self.call_at(principal, op, input, NOW).await
    }

    /// The principal of the credentials in `output`, authenticated at `time`.
    async fn session(&self, output: &Value, time: i64) -> Result<Principal, CredentialError> {
        let creds = &output["Credentials"];
        let resolved = self
            .sts
            .resolve(
                creds["AccessKeyId"].as_str().unwrap(),
                creds["SessionToken"].as_str().unwrap(),
                OffsetDateTime::from_unix_timestamp(time).unwrap(),
            )
            .await?;
        assert_eq!(
            resolved.secret.as_slice(),
            creds["SecretAccessKey"].as_str().unwrap().as_bytes()
        );
        Ok((*resolved.principal).clone())
    }
}

fn claims(expires: i64) -> SessionClaims {
    SessionClaims {
        secret: "s".repeat(40),
        account: ACCOUNT.into(),
        arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/R/s"),
        principal_id: "AROAEXAMPLE:s".into(),
        kind: ClaimKind::AssumedRole {
            role_arn: format!("arn:aws:iam::{ACCOUNT}:role/R"),
            role_name: "R".into(),
            role_id: "AROAEXAMPLE".into(),
            session_name: "s".into(),
        },
        principal_tags: vec![("a".into(), "b".into())],
        issued: NOW,
        expires,
        mfa_at: Some(NOW),
        source_identity: Some("me".into()),
        session_tags: vec![("t".into(), "v".into())],
        transitive_tag_keys: vec!["t".into()],
        policies: Some(vec!["{}".into()]),
        issuer_operation: "AssumeRole".into(),
        federated_provider: None,
    }
}

#[test]
fn tokens_round_trip_and_refuse_tampering_and_other_keys() {
    let sealer = TokenSealer::new(&MasterKey::from_bytes([1; 32]));
    let akid = "ASIAEXAMPLE000000001";
    let token = sealer.seal(akid, &claims(NOW + 3600));
    assert_eq!(sealer.open(akid, &token).unwrap(), claims(NOW + 3600));

    let mut bytes = token.clone().into_bytes();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let other_master = TokenSealer::new(&MasterKey::from_bytes([2; 32]));
    let cases: [(&TokenSealer, &str, &str); 5] = [
        (&sealer, akid, &tampered),
        (&sealer, "ASIAEXAMPLE000000002", &token),
        (&other_master, akid, &token),
        (&sealer, akid, "not-a-token"),
        (&sealer, akid, ""),
    ];
    for (sealer, key, token) in cases {
        assert_eq!(sealer.open(key, token).unwrap_err(), CredentialError::InvalidToken);
    }
}

#[test]
fn resolved_sessions_expire_with_the_clock() {
    let sealer = TokenSealer::new(&MasterKey::from_bytes([1; 32]));
    let akid = "ASIAEXAMPLE000000001";
    let token = sealer.seal(akid, &claims(NOW + 900));
    let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(NOW).unwrap());
    let resolved = sealer.resolve(akid, &token, clock.now()).unwrap();
    let principal = &resolved.principal;
    assert_eq!(principal.arn, format!("arn:aws:sts::{ACCOUNT}:assumed-role/R/s"));
    assert_eq!(principal.identity_type(), "AssumedRole");
    let session = principal.session.as_ref().unwrap();
    assert_eq!(session.tags, vec![("t".to_string(), "v".to_string())]);
    assert_eq!(session.source_identity.as_deref(), Some("me"));
    assert_eq!(session.expires_at.unix_timestamp(), NOW + 900);
    clock.advance(time::Duration::seconds(899));
    assert!(sealer.resolve(akid, &token, clock.now()).is_ok());
    clock.advance(time::Duration::seconds(1));
    assert_eq!(
        sealer.resolve(akid, &token, clock.now()).unwrap_err(),
        CredentialError::ExpiredToken
    );
}

#[test]
fn totp_codes_match_one_step_of_drift_and_never_twice() {
    let step = (NOW / 30) as u64;
    let code = |s: u64| citadel_iam::totp(SEED, s);
    assert_eq!(totp_step(SEED, &code(step), NOW, None), Some(step));
    assert_eq!(totp_step(SEED, &code(step - 1), NOW, None), Some(step - 1));
    assert_eq!(totp_step(SEED, &code(step + 1), NOW, None), Some(step + 1));
    assert_eq!(totp_step(SEED, &code(step - 3), NOW, None), None);
    assert_eq!(totp_step(SEED, &code(step), NOW, Some(step)), None, "replay");
    // RFC 6238 appendix B, SHA-1, T = 59: 94287082, of which TOTP keeps the last six digits.
    assert_eq!(citadel_iam::totp(SEED, 1), "287082");
}

#[tokio::test]
async fn assume_role_issues_role_sessions_that_authenticate() {
    let env = env();
    let arn = format!("arn:aws:iam::{ACCOUNT}:role/Reader");
    let out = env
        .call(
            alice(),
            "AssumeRole",
            json!({"RoleArn": arn, "RoleSessionName": "s1", "DurationSeconds": 7200,
                "Policy": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#,
                "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
                "Tags": [{"Key": "project", "Value": "blue"}], "TransitiveTagKeys": ["project"]}),
        )
        .await
        .unwrap();
    let creds = &out["Credentials"];
    let akid = creds["AccessKeyId"].as_str().unwrap();
    assert!(akid.starts_with("ASIA") && akid.len() == 20);
    assert_eq!(creds["SecretAccessKey"].as_str().unwrap().len(), 40);
    assert_eq!(creds["Expiration"], json!(NOW + 7200));
    let role_arn = format!("arn:aws:sts::{ACCOUNT}:assumed-role/Reader/s1");
    assert_eq!(out["AssumedRoleUser"]["Arn"], json!(role_arn));
    let id = out["AssumedRoleUser"]["AssumedRoleId"].as_str().unwrap();
    assert!(id.starts_with("AROA") && id.ends_with(":s1"), "{id}");
    assert!(out["PackedPolicySize"].as_i64().unwrap() > 0);

    let session = env.session(&out, NOW + 10).await.unwrap();
    assert_eq!(session.arn, role_arn);
    assert_eq!(session.principal_id, id);
    assert_eq!(session.tags, vec![("dept".to_string(), "eng".to_string())]);
    let info = session.session.as_ref().unwrap();
    assert_eq!(info.issuer_operation, "AssumeRole");
    assert_eq!(info.policies.as_ref().unwrap().len(), 2);
    assert_eq!(info.tags, vec![("project".to_string(), "blue".to_string())]);
    // Later uses come from the opened-token cache: the same session, with expiry still enforced.
    assert_eq!(env.session(&out, NOW + 20).await.unwrap(), session);
    let mut forged = out.clone();
    let token = forged["Credentials"]["SessionToken"].as_str().unwrap().to_string();
    let swap = if token.ends_with('A') { "B" } else { "A" };
    forged["Credentials"]["SessionToken"] = json!(format!("{}{swap}", &token[..token.len() - 1]));
    assert!(
        env.session(&forged, NOW + 20).await.is_err(),
        "a changed token is opened, not matched"
    );
    // The cache files tokens by access key id: the cached token presented with another temporary
    // key id is opened for that id, and its seal refuses it.
    let mut other_key = out.clone();
    other_key["Credentials"]["AccessKeyId"] = json!("ASIAOTHERKEYEXAMPLE1");
    assert_eq!(
        env.session(&other_key, NOW + 20).await.unwrap_err(),
        CredentialError::InvalidToken
    );
    assert_eq!(
        env.session(&out, NOW + 30).await.unwrap(),
        session,
        "the cached entry is untouched"
    );
    assert_eq!(
        env.session(&out, NOW + 7200).await.unwrap_err(),
        CredentialError::ExpiredToken
    );

    // That session's policies do not allow sts:AssumeRole, so it cannot chain even where trusted.
    let chain = format!("arn:aws:iam::{ACCOUNT}:role/Chain");
    let err = env
        .call(session, "AssumeRole", json!({"RoleArn": chain, "RoleSessionName": "c"}))
        .await
        .unwrap_err();
    assert!(err.message.contains("session policy"), "{}", err.message);

    // A transitive tag passes on to a chained session, which is capped at one hour.
    let plain = env
        .call(
            alice(),
            "AssumeRole",
            json!({"RoleArn": arn, "RoleSessionName": "s2",
                "Tags": [{"Key": "project", "Value": "blue"}], "TransitiveTagKeys": ["project"]}),
        )
        .await
        .unwrap();
    let session = env.session(&plain, NOW + 10).await.unwrap();
    let err = env
        .call(
            session.clone(),
            "AssumeRole",
            json!({"RoleArn": chain, "RoleSessionName": "c", "DurationSeconds": 3601}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "ValidationError");
    assert!(err.message.contains("role chaining"), "{}", err.message);
    let chained = env
        .call(session, "AssumeRole", json!({"RoleArn": chain, "RoleSessionName": "c"}))
        .await
        .unwrap();
    let chained = env.session(&chained, NOW + 10).await.unwrap();
    let info = chained.session.unwrap();
    assert_eq!(info.tags, vec![("project".to_string(), "blue".to_string())]);
    assert_eq!(info.policies, None);
}

#[tokio::test]
async fn trust_policies_decide_who_may_assume() {
    let env = env();
    let partner = format!("arn:aws:iam::{ACCOUNT}:role/Partner");
    let denied = [
        json!({"RoleArn": partner, "RoleSessionName": "s"}),
        json!({"RoleArn": partner, "RoleSessionName": "s", "ExternalId": "wrong"}),
        json!({"RoleArn": format!("arn:aws:iam::{ACCOUNT}:role/Nobody"), "RoleSessionName": "s"}),
        json!({"RoleArn": format!("arn:aws:iam::{ACCOUNT}:role/Missing"), "RoleSessionName": "s"}),
        json!({"RoleArn": format!("arn:aws:iam::{ACCOUNT}:role/Mfa"), "RoleSessionName": "s"}),
    ];
    for input in denied {
        let err = env.call(alice(), "AssumeRole", input.clone()).await.unwrap_err();
        assert_eq!(err.code, "AccessDenied", "{input}");
        assert!(
            err.message.contains(&format!(
                "is not authorized to perform: sts:AssumeRole on resource: {}",
                input["RoleArn"].as_str().unwrap()
            )),
            "{}",
            err.message
        );
    }
    env.call(
        alice(),
        "AssumeRole",
        json!({"RoleArn": partner, "RoleSessionName": "s", "ExternalId": "ext-123"}),
    )
    .await
    .unwrap();

    // The MFA condition holds when the request carries the caller's current code.
    let code = citadel_iam::totp(SEED, (NOW / 30) as u64);
    let out = env
        .call(
            alice(),
            "AssumeRole",
            json!({"RoleArn": format!("arn:aws:iam::{ACCOUNT}:role/Mfa"), "RoleSessionName": "s",
                "SerialNumber": SERIAL, "TokenCode": code}),
        )
        .await
        .unwrap();
    assert!(
        env.session(&out, NOW)
            .await
            .unwrap()
            .session
            .unwrap()
            .mfa_authenticated_at
            .is_some()
    );

    // Durations beyond the role's maximum are refused.
    let err = env
        .call(
            alice(),
            "AssumeRole",
            json!({"RoleArn": partner, "RoleSessionName": "s", "ExternalId": "ext-123", "DurationSeconds": 3601}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.code.as_ref(), err.message.as_str()),
        (
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )
    );
}

#[tokio::test]
async fn get_session_token_verifies_mfa_codes() {
    let env = env();
    let step = (NOW / 30) as u64;
    let out = env
        .call(
            alice(),
            "GetSessionToken",
            json!({"DurationSeconds": 900, "SerialNumber": SERIAL, "TokenCode": citadel_iam::totp(SEED, step)}),
        )
        .await
        .unwrap();
    let session = env.session(&out, NOW).await.unwrap();
    assert_eq!(session.arn, alice().arn);
    assert_eq!(session.identity_type(), "IAMUser");
    let info = session.session.clone().unwrap();
    assert_eq!(info.issuer_operation, "GetSessionToken");
    assert_eq!(info.mfa_authenticated_at.map(|t| t.unix_timestamp()), Some(NOW));
    assert_eq!(info.expires_at.unix_timestamp(), NOW + 900);
    assert_eq!(*env.directory.used_steps.lock().unwrap(), vec![step]);

    let cases = [
        (
            json!({"SerialNumber": SERIAL, "TokenCode": citadel_iam::totp(SEED, step)}),
            "MultiFactorAuthentication failed with invalid MFA one time pass code.",
        ),
        (
            json!({"SerialNumber": SERIAL, "TokenCode": "000000"}),
            "MultiFactorAuthentication failed with invalid MFA one time pass code.",
        ),
        (
            json!({"SerialNumber": "arn:aws:iam::123456789012:mfa/other", "TokenCode": "123456"}),
            "MultiFactorAuthentication failed, unable to validate MFA code.  Please verify your MFA serial number is valid and associated with this user.",
        ),
    ];
    for (input, message) in cases {
        let err = env.call(alice(), "GetSessionToken", input).await.unwrap_err();
        assert_eq!((err.code.as_ref(), err.message.as_str()), ("AccessDenied", message));
    }
    let err = env.call(session, "GetSessionToken", json!({})).await.unwrap_err();
    assert_eq!(err.message, "Cannot call GetSessionToken with session credentials");

    // Without MFA: default twelve hours, and the root user is capped at one hour.
    let plain = env.call(alice(), "GetSessionToken", json!({})).await.unwrap();
    assert_eq!(plain["Credentials"]["Expiration"], json!(NOW + 43_200));
    let root = env
        .call(
            Principal::root(ACCOUNT, None),
            "GetSessionToken",
            json!({"DurationSeconds": 7200}),
        )
        .await
        .unwrap();
    assert_eq!(root["Credentials"]["Expiration"], json!(NOW + 3600));
    assert_eq!(env.session(&root, NOW).await.unwrap().identity_type(), "Root");
}

#[tokio::test]
async fn federation_tokens_carry_their_policy_and_name() {
    let env = env();
    let root = Principal::root(ACCOUNT, None);
    let out = env
        .call(
            root,
            "GetFederationToken",
            json!({"Name": "bob", "Policy": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#}),
        )
        .await
        .unwrap();
    assert_eq!(
        out["FederatedUser"],
        json!({"FederatedUserId": format!("{ACCOUNT}:bob"), "Arn": format!("arn:aws:sts::{ACCOUNT}:federated-user/bob")})
    );
    let session = env.session(&out, NOW).await.unwrap();
    assert_eq!(session.identity_type(), "FederatedUser");
    assert!(matches!(&session.kind, PrincipalKind::FederatedUser { issuer_arn, .. } if issuer_arn.ends_with(":root")));
    assert_eq!(session.session.as_ref().unwrap().policies.as_ref().unwrap().len(), 1);

    let bare = env
        .call(
            Principal::root(ACCOUNT, None),
            "GetFederationToken",
            json!({"Name": "carol"}),
        )
        .await
        .unwrap();
    assert_eq!(bare.get("PackedPolicySize"), None);
    let carol = env.session(&bare, NOW).await.unwrap();
    assert_eq!(
        carol.session.unwrap().policies,
        Some(Vec::new()),
        "no policy means nothing allowed"
    );

    let err = env
        .call(
            Principal::root(ACCOUNT, None),
            "GetFederationToken",
            json!({"Name": "bob", "Policy": "{not json"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "MalformedPolicyDocument");
}

#[tokio::test]
async fn access_key_info_and_cross_account_roles() {
    let env = env();
    let out = env.call(alice(), "GetSessionToken", json!({})).await.unwrap();
    let akid = out["Credentials"]["AccessKeyId"].as_str().unwrap();
    let info = env
        .call(alice(), "GetAccessKeyInfo", json!({"AccessKeyId": akid}))
        .await;
    // Alice has no identity policy, so even GetAccessKeyInfo is denied to her; root may call it.
    assert_eq!(info.unwrap_err().code, "AccessDenied");
    let info = env
        .call(
            Principal::root(OTHER, None),
            "GetAccessKeyInfo",
            json!({"AccessKeyId": akid}),
        )
        .await
        .unwrap();
    assert_eq!(info, json!({"Account": ACCOUNT}));

    // The root user may never assume a role; a user of another account is not trusted by Reader.
    let err = env
        .call(
            Principal::root(ACCOUNT, None),
            "AssumeRole",
            json!({"RoleArn": format!("arn:aws:iam::{ACCOUNT}:role/Reader"), "RoleSessionName": "x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.message, "Roles may not be assumed by root accounts.");
    let mut stranger = alice();
    stranger.account_id = OTHER.into();
    stranger.arn = format!("arn:aws:iam::{OTHER}:user/alice");
    let err = env
        .call(
            stranger,
            "AssumeRole",
            json!({"RoleArn": format!("arn:aws:iam::{ACCOUNT}:role/Reader"), "RoleSessionName": "x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "AccessDenied");
}

#[tokio::test]
async fn caller_identity_needs_no_permission() {
    let env = env();
    let out = env.call(alice(), "GetCallerIdentity", json!({})).await.unwrap();
    assert_eq!(
        out,
        json!({"UserId": USER_ID, "Account": ACCOUNT, "Arn": format!("arn:aws:iam::{ACCOUNT}:user/alice")})
    );
}

#[tokio::test]
async fn assume_role_with_saml_verifies_the_response_and_the_trust_policy() {
    use base64::Engine;
    let env = env();
    let assertion =
        base64::engine::general_purpose::STANDARD.encode(include_str!("saml/testdata/assertion_signed.xml"));
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/SamlRole");
    let input = json!({"RoleArn": role_arn, "PrincipalArn": SAML_PROVIDER, "SAMLAssertion": assertion,
        "DurationSeconds": 900});
    let out = env
        .call_at(
            Principal::anonymous(),
            "AssumeRoleWithSAML",
            input.clone(),
            SAML_ISSUED + 5,
        )
        .await
        .unwrap();
    assert_eq!(
        out["AssumedRoleUser"]["Arn"],
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/SamlRole/alice@example.test")
    );
    assert_eq!(out["Subject"], "alice");
    assert_eq!(out["SubjectType"], "persistent");
    assert_eq!(out["Issuer"], "https://idp.example.test/saml");
    assert_eq!(out["Audience"], "https://signin.aws.amazon.com/saml");
    assert_eq!(out["SourceIdentity"], "alice");
    assert_eq!(
        out["NameQualifier"],
        crate::saml::name_qualifier("https://idp.example.test/saml", ACCOUNT, "TestIdp")
    );
    assert!(out["PackedPolicySize"].as_i64().is_some());
    assert_eq!(out["Credentials"]["Expiration"], SAML_ISSUED + 5 + 900);
    let session = env.session(&out, SAML_ISSUED + 5).await.unwrap();
    let info = session.session.unwrap();
    assert_eq!(info.tags, vec![("team".to_string(), "blue".to_string())]);
    assert_eq!(info.source_identity.as_deref(), Some("alice"));
    assert_eq!(info.federated_provider.as_deref(), Some(SAML_PROVIDER));
    assert_eq!(info.issuer_operation, "AssumeRoleWithSAML");

    // A role the assertion does not name, an unknown provider, a role over its maximum duration,
    // an expired response and a malformed session policy.
    let mut other = input.clone();
    other["RoleArn"] = json!(format!("arn:aws:iam::{ACCOUNT}:role/Reader"));
    let mut unknown = input.clone();
    unknown["PrincipalArn"] = json!(format!("arn:aws:iam::{ACCOUNT}:saml-provider/Nope"));
    let mut too_long = input.clone();
    too_long["DurationSeconds"] = json!(7200);
    let mut bad_policy = input.clone();
    bad_policy["Policy"] = json!("{\"Statement\": 5}");
    for (input, time, code) in [
        (other, SAML_ISSUED, "AccessDenied"),
        (unknown, SAML_ISSUED, "InvalidIdentityToken"),
        (too_long, SAML_ISSUED, "ValidationError"),
        (input.clone(), SAML_ISSUED + 3600, "ExpiredTokenException"),
        (bad_policy, SAML_ISSUED, "MalformedPolicyDocument"),
    ] {
        let err = env
            .call_at(Principal::anonymous(), "AssumeRoleWithSAML", input, time)
            .await
            .unwrap_err();
        assert_eq!(err.code, code);
    }
}

#[tokio::test]
async fn instance_metadata_serves_ec2_role_credentials_to_token_holders() {
    use crate::imds::Imds;
    let env = env();
    let clock = Arc::new(ManualClock::new(OffsetDateTime::from_unix_timestamp(NOW).unwrap()));
    let imds = Imds::new(env.sts.clone(), "Ec2Role", ACCOUNT, clock.clone());
    let header = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    let path = "/latest/meta-data/iam/security-credentials/";

    // IMDSv1 (no token), bad TTLs and forged tokens are refused.
    assert_eq!(imds.handle("GET", path, &[]).await.status, 401);
    assert_eq!(imds.handle("PUT", "/latest/api/token", &[]).await.status, 400);
    let ttl = "X-aws-ec2-metadata-token-ttl-seconds";
    assert_eq!(
        imds.handle("PUT", "/latest/api/token", &header(ttl, "21601"))
            .await
            .status,
        400
    );
    assert_eq!(
        imds.handle("GET", path, &header("X-aws-ec2-metadata-token", "forged"))
            .await
            .status,
        401
    );

    let token = imds.handle("PUT", "/latest/api/token", &header(ttl, "60")).await;
    assert_eq!(token.status, 200);
    let with_token = header("x-aws-ec2-metadata-token", &token.body);
    let listing = imds.handle("GET", path, &with_token).await;
    assert_eq!((listing.status, listing.body.as_str()), (200, "Ec2Role"));
    let document = imds.handle("GET", &format!("{path}Ec2Role"), &with_token).await;
    assert_eq!(document.status, 200);
    let document: Value = serde_json::from_str(&document.body).unwrap();
    assert_eq!(document["Code"], "Success");
    assert_eq!(document["Type"], "AWS-HMAC");
    let resolved = env
        .sts
        .resolve(
            document["AccessKeyId"].as_str().unwrap(),
            document["Token"].as_str().unwrap(),
            clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(
        resolved.principal.arn,
        format!(
            "arn:aws:sts::{ACCOUNT}:assumed-role/Ec2Role/{}",
            crate::imds::INSTANCE_ID
        )
    );
    assert_eq!(
        imds.handle("GET", &format!("{path}Other"), &with_token).await.status,
        404
    );

    // The token expires with its TTL.
    clock.advance(time::Duration::seconds(61));
    assert_eq!(imds.handle("GET", path, &with_token).await.status, 401);

    // A role EC2 may not assume yields an error document, as on EC2.
    let untrusted = Imds::new(env.sts.clone(), "Reader", ACCOUNT, clock.clone());
    let token = untrusted
        .handle("PUT", "/latest/api/token", &header(ttl, "60"))
        .await
        .body;
    let answer = untrusted
        .handle(
            "GET",
            &format!("{path}Reader"),
            &header("X-aws-ec2-metadata-token", &token),
        )
        .await;
    let answer: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(answer["Code"], "AssumeRoleUnauthorizedAccess");
}
