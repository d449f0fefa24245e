//! Evaluation logic: resources, NotAction/NotResource, principals, cross-account, boundaries,
//! sessions, key and trust policies, SCPs, and AccessDenied messages.

use citadel_policy::{
    Context, EvalInput, MessageStyle, Outcome, Policy, PolicyKind, PolicyRef, PolicySet, PolicyType, Principal,
    PrincipalKind, Request, ResourcePolicy, ResourcePolicyKind, evaluate, evaluate_texts,
};

use crate::{BOB, identity_eval, outcome, policy_with};

#[test]
fn actions_and_resources_table() {
    let rows: &[(&str, &str, &str, Outcome)] = &[
        (
            r#"{"Effect":"Allow","Action":"S3:getobject","Resource":"*"}"#,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}"#,
            "S3:GETOBJECTACL",
            "arn:aws:s3:::b/k",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:Get?bject","Resource":"*"}"#,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:Get?bject","Resource":"*"}"#,
            "s3:GetObjects",
            "arn:aws:s3:::b/k",
            Outcome::ImplicitDeny,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#,
            "kms:Decrypt",
            "arn:aws:kms:us-east-1:1:key/x",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"*:Describe*","Resource":"*"}"#,
            "ec2:DescribeInstances",
            "*",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*/test/*"}"#,
            "s3:GetObject",
            "arn:aws:s3:::b/1/2/test/3/o.jpg",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket*"}"#,
            "s3:GetObject",
            "arn:aws:s3:::bucket/key",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::Bucket/*"}"#,
            "s3:GetObject",
            "arn:aws:s3:::bucket/key",
            Outcome::ImplicitDeny,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b"}"#,
            "s3:ListBucket",
            "arn:aws:s3:::b/k",
            Outcome::ImplicitDeny,
        ),
        (
            r#"{"Effect":"Allow","Action":"logs:PutLogEvents","Resource":"arn:aws:logs:*:*:log-group:/app/*"}"#,
            "logs:PutLogEvents",
            "arn:aws:logs:us-east-1:1:log-group:/app/web:log-stream:i-1",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"sqs:*","Resource":"arn:aws:sqs:*:123456789012:*"}"#,
            "sqs:SendMessage",
            "arn:aws:sqs:us-east-1:210987654321:q",
            Outcome::ImplicitDeny,
        ),
        (
            r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}"#,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}"#,
            "iam:CreateUser",
            "arn:aws:iam::1:user/x",
            Outcome::ImplicitDeny,
        ),
        (
            r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"arn:aws:s3:::b/*"}"#,
            "kms:Decrypt",
            "arn:aws:kms:us-east-1:1:key/x",
            Outcome::ImplicitDeny,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:*","NotResource":"arn:aws:s3:::secret/*"}"#,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:*","NotResource":["arn:aws:s3:::secret/*","arn:aws:s3:::secret"]}"#,
            "s3:GetObject",
            "arn:aws:s3:::secret/k",
            Outcome::ImplicitDeny,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","NotAction":"s3:GetObject","Resource":"*"}"#,
            "s3:PutObject",
            "arn:aws:s3:::b/k",
            Outcome::ExplicitDeny,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","NotAction":"s3:GetObject","Resource":"*"}"#,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:username}/*"}"#,
            "s3:GetObject",
            "arn:aws:s3:::b/bob/k",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:username}/*"}"#,
            "s3:GetObject",
            "arn:aws:s3:::b/alice/k",
            Outcome::ImplicitDeny,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:PrincipalTag/t}/*"}"#,
            "s3:GetObject",
            "arn:aws:s3:::b/x/k",
            Outcome::ImplicitDeny,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:PrincipalTag/t, 'pub'}/*"}"#,
            "s3:GetObject",
            "arn:aws:s3:::b/pub/k",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:*","NotResource":"arn:aws:s3:::b/${aws:PrincipalTag/t}/*"}"#,
            "s3:GetObject",
            "arn:aws:s3:::b/x/k",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${*}"}"#,
            "s3:GetObject",
            "arn:aws:s3:::b/*",
            Outcome::Allowed,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${*}"}"#,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            Outcome::ImplicitDeny,
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"arn:aws:s3:::*"}"#,
            "s3:ListAllMyBuckets",
            "*",
            Outcome::ImplicitDeny,
        ),
    ];
    for (index, (statements, action, resource, expected)) in rows.iter().enumerate() {
        let policy = policy_with(statements);
        let decision = identity_eval(&[&policy], action, resource, &[]);
        assert_eq!(
            outcome(decision.outcome),
            outcome(*expected),
            "row {index}: {statements} {action} {resource}"
        );
    }
}

#[test]
fn resourceless_action_matches_only_star() {
    let star = policy_with(r#"{"Effect":"Allow","Action":"iam:ListUsers","Resource":"*"}"#);
    let scoped = policy_with(r#"{"Effect":"Allow","Action":"iam:ListUsers","Resource":"arn:aws:iam::*:user/*"}"#);
    for (policy, expected) in [(&star, Outcome::Allowed), (&scoped, Outcome::ImplicitDeny)] {
        let decision = evaluate_texts(&EvalInput {
            identity_policies: &[policy],
            principal_arn: BOB,
            action: "iam:ListUsers",
            resource: None,
            ..EvalInput::default()
        })
        .unwrap();
        assert_eq!(decision.outcome, expected);
    }
}

/// A row for resource-policy scenarios evaluated through `evaluate_texts`.
struct Scenario<'a> {
    name: &'a str,
    principal: &'a str,
    identity: &'a [&'a str],
    boundary: Option<&'a str>,
    session: Option<&'a [&'a str]>,
    resource_policy: Option<(&'a str, ResourcePolicyKind)>,
    action: &'a str,
    resource: &'a str,
    resource_account: Option<&'a str>,
    root_implicit_allow: bool,
    expected: Outcome,
    expected_type: Option<PolicyType>,
}

const ALLOW_GET: &str =
    r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#;
const ALLOW_ALL: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#;
const ALLOW_PUT: &str =
    r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"}}"#;
const BUCKET_BOB: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
const BUCKET_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
const BUCKET_ROLE: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/R"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
const BUCKET_SESSION: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::123456789012:assumed-role/R/s"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
const BUCKET_PUBLIC: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
const BUCKET_DENY_BOB: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#;
const BUCKET_NOT_PRINCIPAL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::123456789012:user/bob","arn:aws:iam::123456789012:root"]},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#;
const BUCKET_NOT_PRINCIPAL_NO_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#;
const BUCKET_NOT_PRINCIPAL_SESSION: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:sts::123456789012:assumed-role/R/s","arn:aws:iam::123456789012:role/R","arn:aws:iam::123456789012:root"]},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#;
const KEY_DEFAULT: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:*","Resource":"*"}]}"#;
const KEY_ONLY_ALICE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"kms:*","Resource":"*"}]}"#;
const KEY_BOB: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"kms:Decrypt","Resource":"*"}]}"#;
const KEY_OTHER_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::210987654321:root"},"Action":"kms:Decrypt","Resource":"*"}]}"#;
const TRUST_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"sts:AssumeRole"}}"#;
const TRUST_BOB: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"sts:AssumeRole"}}"#;
const TRUST_SERVICE: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}}"#;
const TRUST_GOOGLE: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Federated":"accounts.google.com"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"accounts.google.com:aud":"app"}}}}"#;
const ALLOW_ASSUME: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::123456789012:role/*"}}"#;
const SESSION: &str = "arn:aws:sts::123456789012:assumed-role/R/s";
const FED: &str = "arn:aws:sts::123456789012:federated-user/f";
const ROOT: &str = "arn:aws:iam::123456789012:root";
const OTHER_USER: &str = "arn:aws:iam::210987654321:user/eve";
const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/k1";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/Target";

fn base<'a>(name: &'a str) -> Scenario<'a> {
    Scenario {
        name,
        principal: BOB,
        identity: &[],
        boundary: None,
        session: None,
        resource_policy: None,
        action: "s3:GetObject",
        resource: "arn:aws:s3:::b/k",
        resource_account: None,
        root_implicit_allow: true,
        expected: Outcome::ImplicitDeny,
        expected_type: Some(PolicyType::IdentityBased),
    }
}

#[test]
fn evaluation_logic_table() {
    use Outcome::*;
    use PolicyType::*;
    let g = ResourcePolicyKind::Generic;
    let k = ResourcePolicyKind::KeyPolicy;
    let t = ResourcePolicyKind::TrustPolicy;
    let rows = vec![
        Scenario {
            identity: &[ALLOW_GET],
            expected: Allowed,
            expected_type: Some(IdentityBased),
            ..base("identity allow")
        },
        Scenario {
            ..base("nothing allows")
        },
        Scenario {
            resource_policy: Some((BUCKET_BOB, g)),
            expected: Allowed,
            expected_type: Some(ResourceBased),
            ..base("bucket names user")
        },
        Scenario {
            resource_policy: Some((BUCKET_ACCOUNT, g)),
            ..base("bucket names account only: delegation")
        },
        Scenario {
            resource_policy: Some((BUCKET_ACCOUNT, g)),
            identity: &[ALLOW_GET],
            expected: Allowed,
            expected_type: Some(IdentityBased),
            ..base("delegation plus identity")
        },
        Scenario {
            resource_policy: Some((BUCKET_PUBLIC, g)),
            expected: Allowed,
            expected_type: Some(ResourceBased),
            ..base("public bucket, same-account user")
        },
        Scenario {
            principal: "*",
            resource_policy: Some((BUCKET_PUBLIC, g)),
            expected: Allowed,
            expected_type: Some(ResourceBased),
            ..base("anonymous, public bucket")
        },
        Scenario {
            principal: "*",
            resource_policy: Some((BUCKET_ACCOUNT, g)),
            expected_type: Some(ResourceBased),
            ..base("anonymous, private bucket")
        },
        Scenario {
            principal: "*",
            expected_type: Some(ResourceBased),
            ..base("anonymous, no bucket policy")
        },
        Scenario {
            resource_policy: Some((BUCKET_DENY_BOB, g)),
            identity: &[ALLOW_ALL],
            expected: ExplicitDeny,
            expected_type: Some(ResourceBased),
            ..base("bucket deny wins")
        },
        Scenario {
            resource_policy: Some((BUCKET_BOB, g)),
            boundary: Some(ALLOW_PUT),
            expected: Allowed,
            expected_type: Some(ResourceBased),
            ..base("user named: boundary not consulted")
        },
        Scenario {
            identity: &[ALLOW_GET],
            boundary: Some(ALLOW_PUT),
            expected_type: Some(PermissionsBoundary),
            ..base("boundary caps identity")
        },
        Scenario {
            identity: &[ALLOW_GET],
            boundary: Some(ALLOW_ALL),
            expected: Allowed,
            expected_type: Some(IdentityBased),
            ..base("boundary allows")
        },
        Scenario {
            resource_policy: Some((BUCKET_NOT_PRINCIPAL, g)),
            identity: &[ALLOW_ALL],
            expected: Allowed,
            expected_type: Some(IdentityBased),
            ..base("NotPrincipal lists user and account")
        },
        Scenario {
            resource_policy: Some((BUCKET_NOT_PRINCIPAL_NO_ACCOUNT, g)),
            identity: &[ALLOW_ALL],
            expected: ExplicitDeny,
            expected_type: Some(ResourceBased),
            ..base("NotPrincipal without account denies")
        },
        Scenario {
            resource_policy: Some((BUCKET_NOT_PRINCIPAL, g)),
            identity: &[ALLOW_ALL],
            boundary: Some(ALLOW_ALL),
            expected: ExplicitDeny,
            expected_type: Some(ResourceBased),
            ..base("NotPrincipal never exempts boundary holders")
        },
        Scenario {
            principal: SESSION,
            resource_policy: Some((BUCKET_NOT_PRINCIPAL_SESSION, g)),
            identity: &[ALLOW_ALL],
            expected: Allowed,
            expected_type: Some(IdentityBased),
            ..base("NotPrincipal lists session, role, account")
        },
        Scenario {
            principal: SESSION,
            resource_policy: Some((BUCKET_NOT_PRINCIPAL, g)),
            identity: &[ALLOW_ALL],
            expected: ExplicitDeny,
            expected_type: Some(ResourceBased),
            ..base("NotPrincipal for another principal denies the session")
        },
        Scenario {
            principal: SESSION,
            identity: &[ALLOW_GET],
            expected: Allowed,
            expected_type: Some(IdentityBased),
            ..base("role session without session policy")
        },
        Scenario {
            principal: SESSION,
            identity: &[ALLOW_GET],
            session: Some(&[ALLOW_PUT]),
            expected_type: Some(SessionPolicy),
            ..base("session policy caps")
        },
        Scenario {
            principal: SESSION,
            identity: &[ALLOW_GET],
            session: Some(&[ALLOW_PUT, ALLOW_GET]),
            expected: Allowed,
            expected_type: Some(IdentityBased),
            ..base("one session policy allows")
        },
        Scenario {
            principal: SESSION,
            resource_policy: Some((BUCKET_ROLE, g)),
            expected: Allowed,
            expected_type: Some(ResourceBased),
            ..base("role named: identity not required")
        },
        Scenario {
            principal: SESSION,
            resource_policy: Some((BUCKET_ROLE, g)),
            session: Some(&[ALLOW_PUT]),
            expected_type: Some(SessionPolicy),
            ..base("role named: session policy applies")
        },
        Scenario {
            principal: SESSION,
            resource_policy: Some((BUCKET_ROLE, g)),
            boundary: Some(ALLOW_PUT),
            expected_type: Some(PermissionsBoundary),
            ..base("role named: boundary applies")
        },
        Scenario {
            principal: SESSION,
            resource_policy: Some((BUCKET_SESSION, g)),
            session: Some(&[ALLOW_PUT]),
            expected: Allowed,
            expected_type: Some(ResourceBased),
            ..base("session named: final")
        },
        Scenario {
            principal: FED,
            identity: &[ALLOW_GET],
            expected_type: Some(SessionPolicy),
            ..base("federated user without session policy")
        },
        Scenario {
            principal: FED,
            identity: &[ALLOW_GET],
            session: Some(&[ALLOW_GET]),
            expected: Allowed,
            expected_type: Some(IdentityBased),
            ..base("federated user with session policy")
        },
        Scenario {
            principal: ROOT,
            expected: Allowed,
            expected_type: None,
            ..base("root implicit allow")
        },
        Scenario {
            principal: ROOT,
            root_implicit_allow: false,
            ..base("root without implicit allow")
        },
        Scenario {
            principal: ROOT,
            resource_policy: Some((BUCKET_DENY_BOB, g)),
            expected: Allowed,
            expected_type: None,
            ..base("deny for bob does not touch root")
        },
        Scenario {
            principal: ROOT,
            resource_account: Some("210987654321"),
            expected_type: Some(IdentityBased),
            ..base("root cross-account has no implicit allow")
        },
        Scenario {
            principal: OTHER_USER,
            identity: &[ALLOW_GET],
            resource_account: Some("123456789012"),
            expected_type: Some(ResourceBased),
            ..base("cross-account: identity alone")
        },
        Scenario {
            principal: OTHER_USER,
            resource_policy: Some((BUCKET_PUBLIC, g)),
            resource_account: Some("123456789012"),
            expected_type: Some(IdentityBased),
            ..base("cross-account: resource alone")
        },
        Scenario {
            principal: OTHER_USER,
            identity: &[ALLOW_GET],
            resource_policy: Some((BUCKET_PUBLIC, g)),
            resource_account: Some("123456789012"),
            expected: Allowed,
            expected_type: Some(IdentityBased),
            ..base("cross-account: both sides")
        },
        Scenario {
            principal: OTHER_USER,
            identity: &[ALLOW_GET],
            resource_policy: Some((BUCKET_ACCOUNT, g)),
            resource_account: Some("123456789012"),
            expected_type: Some(ResourceBased),
            ..base("cross-account: bucket names other account")
        },
        Scenario {
            identity: &[ALLOW_ALL],
            resource_policy: Some((KEY_DEFAULT, k)),
            action: "kms:Decrypt",
            resource: KEY,
            expected: Allowed,
            expected_type: Some(IdentityBased),
            ..base("default key policy enables IAM")
        },
        Scenario {
            resource_policy: Some((KEY_DEFAULT, k)),
            action: "kms:Decrypt",
            resource: KEY,
            ..base("default key policy, no IAM allow")
        },
        Scenario {
            identity: &[ALLOW_ALL],
            resource_policy: Some((KEY_ONLY_ALICE, k)),
            action: "kms:Decrypt",
            resource: KEY,
            expected_type: Some(ResourceBased),
            ..base("key policy without root: IAM ignored")
        },
        Scenario {
            resource_policy: Some((KEY_BOB, k)),
            action: "kms:Decrypt",
            resource: KEY,
            expected: Allowed,
            expected_type: Some(ResourceBased),
            ..base("key policy names user")
        },
        Scenario {
            principal: ROOT,
            resource_policy: Some((KEY_ONLY_ALICE, k)),
            action: "kms:Decrypt",
            resource: KEY,
            expected_type: Some(ResourceBased),
            ..base("root locked out of key")
        },
        Scenario {
            principal: ROOT,
            resource_policy: Some((KEY_DEFAULT, k)),
            action: "kms:Decrypt",
            resource: KEY,
            expected: Allowed,
            expected_type: Some(ResourceBased),
            ..base("root via default key policy")
        },
        Scenario {
            principal: OTHER_USER,
            identity: &[ALLOW_ALL],
            resource_policy: Some((KEY_OTHER_ACCOUNT, k)),
            action: "kms:Decrypt",
            resource: KEY,
            resource_account: Some("123456789012"),
            expected: Allowed,
            expected_type: Some(IdentityBased),
            ..base("cross-account key use")
        },
        Scenario {
            principal: OTHER_USER,
            resource_policy: Some((KEY_OTHER_ACCOUNT, k)),
            action: "kms:Decrypt",
            resource: KEY,
            resource_account: Some("123456789012"),
            ..base("cross-account key, no IAM allow")
        },
        Scenario {
            resource_policy: Some((TRUST_BOB, t)),
            action: "sts:AssumeRole",
            resource: ROLE_ARN,
            expected: Allowed,
            expected_type: Some(ResourceBased),
            ..base("trust names user")
        },
        Scenario {
            resource_policy: Some((TRUST_ACCOUNT, t)),
            action: "sts:AssumeRole",
            resource: ROLE_ARN,
            ..base("trust names account, no identity allow")
        },
        Scenario {
            identity: &[ALLOW_ASSUME],
            resource_policy: Some((TRUST_ACCOUNT, t)),
            action: "sts:AssumeRole",
            resource: ROLE_ARN,
            expected: Allowed,
            expected_type: Some(IdentityBased),
            ..base("trust names account plus identity")
        },
        Scenario {
            identity: &[ALLOW_ASSUME],
            resource_policy: Some((TRUST_SERVICE, t)),
            action: "sts:AssumeRole",
            resource: ROLE_ARN,
            expected_type: Some(ResourceBased),
            ..base("trust does not name the caller")
        },
        Scenario {
            principal: "ec2.amazonaws.com",
            resource_policy: Some((TRUST_SERVICE, t)),
            action: "sts:AssumeRole",
            resource: ROLE_ARN,
            expected: Allowed,
            expected_type: Some(ResourceBased),
            ..base("service principal trusted")
        },
        Scenario {
            principal: OTHER_USER,
            resource_policy: Some((TRUST_BOB, t)),
            identity: &[ALLOW_ALL],
            action: "sts:AssumeRole",
            resource: ROLE_ARN,
            resource_account: Some("123456789012"),
            expected_type: Some(ResourceBased),
            ..base("trust names someone else")
        },
        Scenario {
            principal: "accounts.google.com",
            resource_policy: Some((TRUST_GOOGLE, t)),
            action: "sts:AssumeRoleWithWebIdentity",
            resource: ROLE_ARN,
            expected_type: Some(ResourceBased),
            ..base("web identity without aud")
        },
    ];
    for row in rows {
        let decision = evaluate_texts(&EvalInput {
            identity_policies: row.identity,
            permissions_boundary: row.boundary,
            session_policies: row.session,
            resource_policy: row.resource_policy,
            principal_arn: row.principal,
            action: row.action,
            resource: Some(row.resource),
            resource_account: row.resource_account,
            root_implicit_allow: row.root_implicit_allow,
            ..EvalInput::default()
        })
        .unwrap();
        assert_eq!(
            (outcome(decision.outcome), decision.policy_type),
            (outcome(row.expected), row.expected_type),
            "{}",
            row.name
        );
    }
}

#[test]
fn web_identity_with_audience_is_trusted() {
    let decision = evaluate_texts(&EvalInput {
        resource_policy: Some((TRUST_GOOGLE, ResourcePolicyKind::TrustPolicy)),
        principal_arn: "accounts.google.com",
        action: "sts:AssumeRoleWithWebIdentity",
        resource: Some(ROLE_ARN),
        context: &["accounts.google.com:aud=app"],
        ..EvalInput::default()
    })
    .unwrap();
    assert_eq!(decision.outcome, Outcome::Allowed);
}

#[test]
fn scp_levels_and_denies() {
    let allow_all = Policy::parse(ALLOW_ALL, PolicyKind::Identity).unwrap();
    let allow_s3 = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#,
        PolicyKind::Identity,
    )
    .unwrap();
    let deny_get = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":{"Sid":"NoGet","Effect":"Deny","Action":"s3:GetObject","Resource":"*"}}"#,
        PolicyKind::Identity,
    )
    .unwrap();
    let context = Context::new();
    let principal = Principal::new(ROOT, "123456789012", PrincipalKind::Root);
    let request = |action| Request {
        principal,
        action,
        resource: None,
        resource_account: None,
        context: &context,
    };
    let level = |p| vec![PolicyRef { id: "scp", policy: p }];

    let set = PolicySet {
        scp_levels: vec![level(&allow_all), level(&allow_s3)],
        root_implicit_allow: true,
        ..PolicySet::default()
    };
    assert_eq!(evaluate(&request("s3:GetObject"), &set).outcome, Outcome::Allowed);
    let denied = evaluate(&request("kms:Decrypt"), &set);
    assert_eq!(
        (denied.outcome, denied.policy_type),
        (Outcome::ImplicitDeny, Some(PolicyType::ServiceControlPolicy))
    );
    assert_eq!(
        denied
            .access_denied_message(&request("kms:Decrypt"), MessageStyle::default())
            .unwrap(),
        "User: arn:aws:iam::123456789012:root is not authorized to perform: kms:Decrypt because no service control policy allows the kms:Decrypt action"
    );

    let set = PolicySet {
        scp_levels: vec![vec![
            PolicyRef {
                id: "scp",
                policy: &allow_all,
            },
            PolicyRef {
                id: "guard",
                policy: &deny_get,
            },
        ]],
        root_implicit_allow: true,
        ..PolicySet::default()
    };
    let denied = evaluate(&request("s3:GetObject"), &set);
    assert_eq!(denied.outcome, Outcome::ExplicitDeny);
    assert_eq!(denied.matched.len(), 1);
    assert_eq!(
        (
            denied.matched[0].policy_id,
            denied.matched[0].sid,
            denied.matched[0].statement_index
        ),
        ("guard", Some("NoGet"), 0)
    );
}

#[test]
fn access_denied_messages() {
    let deny = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"D","Effect":"Deny","Action":"iam:CreateUser","Resource":"*"}]}"#,
        PolicyKind::Identity,
    )
    .unwrap();
    let context = Context::new();
    let principal = Principal::new(BOB, "123456789012", PrincipalKind::User);
    let create = Request {
        principal,
        action: "iam:CreateUser",
        resource: Some("arn:aws:iam::123456789012:user/alice"),
        resource_account: None,
        context: &context,
    };
    let get = Request {
        principal,
        action: "s3:GetObject",
        resource: Some("arn:aws:s3:::b/k"),
        resource_account: None,
        context: &context,
    };
    let managed = PolicySet {
        identity: vec![PolicyRef {
            id: "arn:aws:iam::aws:policy/Quarantine",
            policy: &deny,
        }],
        ..PolicySet::default()
    };
    let empty = PolicySet::default();

    let explicit = evaluate(&create, &managed);
    assert_eq!(explicit.outcome.as_str(), "explicitDeny");
    assert_eq!(
        explicit.matched.iter().map(|m| m.sid).collect::<Vec<_>>(),
        vec![Some("D")]
    );
    let cases: Vec<(String, &str)> = vec![
        (
            explicit
                .access_denied_message(&create, MessageStyle::default())
                .unwrap(),
            "User: arn:aws:iam::123456789012:user/bob is not authorized to perform: iam:CreateUser on resource: arn:aws:iam::123456789012:user/alice with an explicit deny in an identity-based policy",
        ),
        (
            explicit
                .access_denied_message(
                    &create,
                    MessageStyle {
                        append_policy_arn: true,
                        ..MessageStyle::default()
                    },
                )
                .unwrap(),
            "User: arn:aws:iam::123456789012:user/bob is not authorized to perform: iam:CreateUser on resource: arn:aws:iam::123456789012:user/alice with an explicit deny in an identity-based policy: arn:aws:iam::aws:policy/Quarantine",
        ),
        (
            evaluate(&create, &empty)
                .access_denied_message(&create, MessageStyle::default())
                .unwrap(),
            "User: arn:aws:iam::123456789012:user/bob is not authorized to perform: iam:CreateUser on resource: arn:aws:iam::123456789012:user/alice because no identity-based policy allows the iam:CreateUser action",
        ),
        (
            evaluate(&get, &empty)
                .access_denied_message(
                    &get,
                    MessageStyle {
                        quote_resource: true,
                        ..MessageStyle::default()
                    },
                )
                .unwrap(),
            "User: arn:aws:iam::123456789012:user/bob is not authorized to perform: s3:GetObject on resource: \"arn:aws:s3:::b/k\" because no identity-based policy allows the s3:GetObject action",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
    assert_eq!(
        evaluate(&get, &managed).access_denied_message(&get, MessageStyle::default()),
        None
    );

    // Other policy types use "a".
    let session = evaluate_texts(&EvalInput {
        identity_policies: &[ALLOW_ALL],
        session_policies: Some(&[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"kms:*","Resource":"*"}}"#,
        ]),
        principal_arn: SESSION,
        action: "kms:Decrypt",
        resource: Some(KEY),
        ..EvalInput::default()
    })
    .unwrap();
    assert_eq!(
        session.message.as_deref(),
        Some(
            "User: arn:aws:sts::123456789012:assumed-role/R/s is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:123456789012:key/k1 with an explicit deny in a session policy"
        )
    );
    let key = evaluate_texts(&EvalInput {
        identity_policies: &[ALLOW_ALL],
        resource_policy: Some((KEY_ONLY_ALICE, ResourcePolicyKind::KeyPolicy)),
        principal_arn: SESSION,
        action: "kms:Decrypt",
        resource: Some(KEY),
        ..EvalInput::default()
    })
    .unwrap();
    assert_eq!(
        key.message.as_deref(),
        Some(
            "User: arn:aws:sts::123456789012:assumed-role/R/s is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:123456789012:key/k1 because no resource-based policy allows the kms:Decrypt action"
        )
    );
}

#[test]
fn resource_policy_struct_api_reports_matched_allow_statements() {
    let bucket = Policy::parse(BUCKET_BOB, PolicyKind::ResourceBased).unwrap();
    let context = Context::new();
    let principal = Principal::new(BOB, "123456789012", PrincipalKind::User);
    let request = Request {
        principal,
        action: "s3:GetObject",
        resource: Some("arn:aws:s3:::b/k"),
        resource_account: None,
        context: &context,
    };
    let set = PolicySet {
        resource: Some(ResourcePolicy {
            policy: PolicyRef {
                id: "bucket:b",
                policy: &bucket,
            },
            kind: ResourcePolicyKind::Generic,
        }),
        ..PolicySet::default()
    };
    let decision = evaluate(&request, &set);
    assert!(decision.is_allowed());
    assert_eq!(decision.matched.len(), 1);
    assert_eq!(
        (decision.matched[0].policy_id, decision.matched[0].policy_type),
        ("bucket:b", PolicyType::ResourceBased)
    );
}
