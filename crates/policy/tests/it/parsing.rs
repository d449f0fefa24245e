//! Validation messages, size limits and `validate` findings.

use citadel_policy::{Policy, PolicyError, PolicyKind, Severity, limits, size_without_whitespace, validate};

#[test]
fn validation_messages_table() {
    use PolicyKind::*;
    let rows: &[(&str, PolicyKind, &str)] = &[
        ("not json", Identity, "Syntax errors in policy."),
        ("null", Identity, "Syntax errors in policy."),
        (r#"{"Version":"2012-10-17"}"#, Identity, "Syntax errors in policy."),
        (
            r#"{"Version":"2012-10-17","Statement":[]}"#,
            Identity,
            "Syntax errors in policy.",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow"}]}"#,
            Identity,
            "Policy statement must contain actions.",
        ),
        (
            r#"{"Statement":[{"Action":"s3:*","Resource":"*"}]}"#,
            Identity,
            "Missing required field Effect",
        ),
        (
            r#"{"Statement":[{"Effect":"allow","Action":"s3:*","Resource":"*"}]}"#,
            Identity,
            "The policy failed legacy parsing",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#,
            Identity,
            "Policy statement must contain resources.",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Principal":"*"}]}"#,
            Identity,
            "Policy document should not specify a principal.",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            ResourceBased,
            "Missing required field Principal",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#,
            Trust,
            "Missing required field Principal",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{"AWS":"123456789012"},"Resource":"*"}]}"#,
            Trust,
            "Has prohibited field Resource",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Foo":"x"}]}"#,
            Identity,
            "Syntax errors in policy.",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","NotAction":"s3:x","Resource":"*"}]}"#,
            Identity,
            "Syntax errors in policy.",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEqualz":{"a":"b"}}}]}"#,
            Identity,
            "Invalid Condition type : StringEqualz",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:a:b","Resource":"*"}]}"#,
            Identity,
            "Actions/Condition can contain only one colon.",
        ),
        (
            r#"{"Version":"2012-10-18","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            Identity,
            "The policy failed legacy parsing",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Principal":{"Group":"x"},"Resource":"*"}]}"#,
            ResourceBased,
            "Invalid principal in policy: \"Group\":\"x\"",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"vpc-123"}]}"#,
            Identity,
            "Resource vpc-123 must be in ARN format or \"*\".",
        ),
        (
            "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"\u{0100}\"}]}",
            Identity,
            "1 validation error detected: Value at 'policyDocument' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+",
        ),
    ];
    for (text, kind, message) in rows {
        let error = Policy::parse(text, *kind).unwrap_err();
        assert_eq!(error.to_string(), *message, "{text}");
    }
    assert_eq!(PolicyError::InvalidCharacters.aws_code(), "ValidationError");
    assert_eq!(PolicyError::Syntax.aws_code(), "MalformedPolicyDocument");
}

#[test]
fn accepted_shapes_and_reporting() {
    let text = r#"{"Version":"2008-10-17","Id":"doc","Statement":{"Sid":"One","Effect":"Allow","Principal":{"AWS":["123456789012","arn:aws:iam::123456789012:user/bob"],"Service":"logs.amazonaws.com","CanonicalUser":"abc"},"Action":["s3:GetObject"],"Resource":"arn:aws:s3:::b/*","Condition":{"NumericLessThan":{"s3:max-keys":5},"Bool":{"aws:SecureTransport":true}}}}"#;
    let policy = Policy::parse(text, PolicyKind::ResourceBased).unwrap();
    assert_eq!(policy.text(), text);
    assert_eq!(policy.id(), Some("doc"));
    assert_eq!(policy.statements().len(), 1);
    assert_eq!(policy.statements()[0].sid(), Some("One"));
    let mut keys: Vec<&str> = policy.statements()[0].condition_keys().collect();
    keys.sort();
    assert_eq!(keys, vec!["aws:securetransport", "s3:max-keys"]);
}

#[test]
fn size_limits() {
    assert_eq!(size_without_whitespace("{ \"a\" :\n\t1 }"), 7);
    assert_eq!(
        (
            limits::MANAGED,
            limits::INLINE_USER,
            limits::INLINE_GROUP,
            limits::INLINE_ROLE,
            limits::TRUST
        ),
        (6144, 2048, 5120, 10240, 2048)
    );
}

#[test]
fn validate_findings_table() {
    let rows: &[(&str, PolicyKind, &[&str])] = &[
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
            PolicyKind::Identity,
            &[],
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s4:GetObject","Resource":"*"}}"#,
            PolicyKind::Identity,
            &["UNKNOWN_SERVICE_PREFIX"],
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
            PolicyKind::Identity,
            &["OVERLY_BROAD_WILDCARD"],
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}}"#,
            PolicyKind::Identity,
            &["ALLOW_WITH_NOT_ACTION"],
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","NotResource":"arn:aws:s3:::x"}}"#,
            PolicyKind::Identity,
            &["ALLOW_WITH_NOT_RESOURCE"],
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iam:PassRole","Resource":"*"}}"#,
            PolicyKind::Identity,
            &["PASS_ROLE_WITH_STAR_IN_RESOURCE"],
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
            PolicyKind::Identity,
            &["REDUNDANT_STATEMENT"],
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"*"},{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}]}"#,
            PolicyKind::Identity,
            &["REDUNDANT_STATEMENT"],
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:Get?","Resource":"*"},{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}]}"#,
            PolicyKind::Identity,
            &["REDUNDANT_STATEMENT"],
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:Get?","Resource":"*"},{"Effect":"Deny","Action":"s3:Get*","Resource":"*"}]}"#,
            PolicyKind::Identity,
            &[],
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["s3:GetObject","S3:getobject"],"Resource":"*"}}"#,
            PolicyKind::Identity,
            &["REDUNDANT_ACTION"],
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#,
            PolicyKind::Identity,
            &["MISSING_VERSION"],
        ),
        (
            r#"{"Statement":{"Effect":"Allow"}}"#,
            PolicyKind::Identity,
            &["MALFORMED_POLICY"],
        ),
    ];
    for (text, kind, codes) in rows {
        let findings = validate(text, *kind);
        let got: Vec<&str> = findings.iter().map(|f| f.code).collect();
        assert_eq!(got, *codes, "{text}");
    }
    let error = validate(r#"{"Statement":{"Effect":"Allow"}}"#, PolicyKind::Identity);
    assert_eq!(
        (error[0].severity, error[0].message.as_str()),
        (Severity::Error, "Policy statement must contain actions.")
    );
}
