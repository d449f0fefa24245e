//! Every condition operator, IfExists, set qualifiers and policy variables, as tables.

use citadel_policy::Outcome;

use crate::{identity_eval, outcome, policy_with};

/// Runs `(condition block, context entries, expect allowed)` rows against an Allow statement on `s3:GetObject` `*`.
fn run(rows: &[(&str, &[&str], bool)]) {
    for (index, (condition, context, expected)) in rows.iter().enumerate() {
        let policy = policy_with(&format!(
            r#"{{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{condition}}}"#
        ));
        let decision = identity_eval(&[&policy], "s3:GetObject", "arn:aws:s3:::b/k", context);
        let want = if *expected {
            Outcome::Allowed
        } else {
            Outcome::ImplicitDeny
        };
        assert_eq!(
            outcome(decision.outcome),
            outcome(want),
            "row {index}: {condition} with {context:?}"
        );
    }
}

#[test]
fn string_operators() {
    run(&[
        (
            r#"{"StringEquals":{"aws:RequestedRegion":"us-east-1"}}"#,
            &["aws:RequestedRegion=us-east-1"],
            true,
        ),
        (
            r#"{"StringEquals":{"aws:RequestedRegion":"us-east-1"}}"#,
            &["aws:RequestedRegion=US-EAST-1"],
            false,
        ),
        (
            r#"{"StringEquals":{"aws:RequestedRegion":["eu-west-1","us-east-1"]}}"#,
            &["aws:RequestedRegion=us-east-1"],
            true,
        ),
        (
            r#"{"StringEquals":{"aws:RequestedRegion":"us-*"}}"#,
            &["aws:RequestedRegion=us-east-1"],
            false,
        ),
        (r#"{"StringEquals":{"aws:RequestedRegion":"us-east-1"}}"#, &[], false),
        (
            r#"{"StringEquals":{"AWS:requestedREGION":"us-east-1"}}"#,
            &["aws:RequestedRegion=us-east-1"],
            true,
        ),
        (
            r#"{"StringNotEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]}}"#,
            &["aws:RequestedRegion=us-east-1"],
            false,
        ),
        (
            r#"{"StringNotEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]}}"#,
            &["aws:RequestedRegion=ap-south-1"],
            true,
        ),
        (r#"{"StringNotEquals":{"aws:RequestedRegion":"us-east-1"}}"#, &[], true),
        (
            r#"{"StringEqualsIgnoreCase":{"aws:RequestedRegion":"US-East-1"}}"#,
            &["aws:RequestedRegion=us-EAST-1"],
            true,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase":{"aws:RequestedRegion":"US-East-1"}}"#,
            &["aws:RequestedRegion=us-east-1"],
            false,
        ),
        (
            r#"{"StringLike":{"s3:prefix":"home/*"}}"#,
            &["s3:prefix=home/bob/x"],
            true,
        ),
        (
            r#"{"StringLike":{"s3:prefix":"home/?"}}"#,
            &["s3:prefix=home/ab"],
            false,
        ),
        (r#"{"StringLike":{"s3:prefix":["", "home/"]}}"#, &["s3:prefix="], true),
        (
            r#"{"StringNotLike":{"s3:prefix":"home/*"}}"#,
            &["s3:prefix=work/x"],
            true,
        ),
        (
            r#"{"StringNotLike":{"s3:prefix":["home/*","work/*"]}}"#,
            &["s3:prefix=work/x"],
            false,
        ),
        (
            r#"{"StringLike":{"aws:ResourceTag/Team":"blue"}}"#,
            &["aws:resourcetag/TEAM=blue"],
            true,
        ),
        (
            r#"{"StringEquals":{"aws:PrincipalTag/dept":"eng","aws:RequestedRegion":"us-east-1"}}"#,
            &["aws:PrincipalTag/dept=eng"],
            false,
        ),
        (r#"{"StringEquals":{"s3:max-keys":10}}"#, &["s3:max-keys=10"], true),
    ]);
}

#[test]
fn numeric_date_bool_binary_ip_arn_null() {
    run(&[
        (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, &["s3:max-keys=10.0"], true),
        (
            r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#,
            &["s3:max-keys=11"],
            true,
        ),
        (
            r#"{"NumericNotEquals":{"s3:max-keys":["10","11"]}}"#,
            &["s3:max-keys=11"],
            false,
        ),
        (r#"{"NumericLessThan":{"s3:max-keys":10}}"#, &["s3:max-keys=9"], true),
        (r#"{"NumericLessThan":{"s3:max-keys":10}}"#, &["s3:max-keys=10"], false),
        (
            r#"{"NumericLessThanEquals":{"s3:max-keys":10}}"#,
            &["s3:max-keys=10"],
            true,
        ),
        (
            r#"{"NumericGreaterThan":{"aws:MultiFactorAuthAge":"3600"}}"#,
            &["aws:MultiFactorAuthAge=3601"],
            true,
        ),
        (
            r#"{"NumericGreaterThanEquals":{"aws:MultiFactorAuthAge":"3600"}}"#,
            &["aws:MultiFactorAuthAge=3599.5"],
            false,
        ),
        (
            r#"{"NumericLessThan":{"s3:max-keys":"ten"}}"#,
            &["s3:max-keys=1"],
            false,
        ),
        (r#"{"NumericLessThan":{"s3:max-keys":"10"}}"#, &["s3:max-keys=x"], false),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"2025-01-01T00:00:00Z"}}"#,
            &["aws:CurrentTime=2024-12-31T23:59:59Z"],
            true,
        ),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"2025-01-01"}}"#,
            &["aws:CurrentTime=2025-01-01T00:00:01Z"],
            false,
        ),
        (
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2025-01-01"}}"#,
            &["aws:CurrentTime=1735689601"],
            true,
        ),
        (
            r#"{"DateEquals":{"aws:EpochTime":"1735689600"}}"#,
            &["aws:EpochTime=2025-01-01T00:00:00Z"],
            true,
        ),
        (
            r#"{"DateNotEquals":{"aws:EpochTime":"1735689600"}}"#,
            &["aws:EpochTime=2025-01-01T00:00:00Z"],
            false,
        ),
        (
            r#"{"DateLessThanEquals":{"aws:TokenIssueTime":"2025-01-01T00:00:00+01:00"}}"#,
            &["aws:TokenIssueTime=2024-12-31T23:00:00Z"],
            true,
        ),
        (
            r#"{"DateGreaterThanEquals":{"aws:TokenIssueTime":"2025-01-01"}}"#,
            &["aws:TokenIssueTime=2024-12-31"],
            false,
        ),
        (
            r#"{"Bool":{"aws:SecureTransport":"true"}}"#,
            &["aws:SecureTransport=TRUE"],
            true,
        ),
        (
            r#"{"Bool":{"aws:SecureTransport":true}}"#,
            &["aws:SecureTransport=false"],
            false,
        ),
        (r#"{"Bool":{"aws:MultiFactorAuthPresent":"false"}}"#, &[], false),
        (r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}"#, &[], true),
        (r#"{"BinaryEquals":{"k:bin":"aGVsbG8="}}"#, &["k:bin=aGVsbG8="], true),
        (r#"{"BinaryEquals":{"k:bin":"aGVsbG8="}}"#, &["k:bin=d29ybGQ="], false),
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            &["aws:SourceIp=203.0.113.7"],
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            &["aws:SourceIp=203.0.114.7"],
            false,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.7"}}"#,
            &["aws:SourceIp=203.0.113.7"],
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"2001:DB8:1234:5678::/64"}}"#,
            &["aws:SourceIp=2001:db8:1234:5678::1"],
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#,
            &["aws:SourceIp=203.0.113.7"],
            false,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}}"#,
            &["aws:SourceIp=203.0.113.7"],
            true,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}}"#,
            &["aws:SourceIp=10.1.2.3"],
            false,
        ),
        (
            r#"{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::b*"}}"#,
            &["aws:SourceArn=arn:aws:s3:::bucket/x"],
            true,
        ),
        (
            r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:sns:*:123456789012:t"}}"#,
            &["aws:SourceArn=arn:aws:sns:us-east-1:123456789012:t"],
            true,
        ),
        (
            r#"{"ArnLike":{"aws:SourceArn":"arn:aws:*:*:123456789012:t"}}"#,
            &["aws:SourceArn=arn:aws:sns:us-east-1:1:t"],
            false,
        ),
        (
            r#"{"ArnLike":{"aws:SourceArn":"arn:aws:sns*"}}"#,
            &["aws:SourceArn=arn:aws:sns:us-east-1:1:t"],
            false,
        ),
        (
            r#"{"StringLike":{"aws:SourceArn":"arn:aws:sns*"}}"#,
            &["aws:SourceArn=arn:aws:sns:us-east-1:1:t"],
            true,
        ),
        (
            r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:sns:*:*:t"}}"#,
            &["aws:SourceArn=arn:aws:sns:us-east-1:1:t"],
            false,
        ),
        (r#"{"ArnNotEquals":{"aws:SourceArn":"arn:aws:sns:*:*:t"}}"#, &[], true),
        (r#"{"Null":{"aws:TokenIssueTime":"true"}}"#, &[], true),
        (
            r#"{"Null":{"aws:TokenIssueTime":"true"}}"#,
            &["aws:TokenIssueTime=2025-01-01"],
            false,
        ),
        (
            r#"{"Null":{"aws:TokenIssueTime":false}}"#,
            &["aws:TokenIssueTime=2025-01-01"],
            true,
        ),
    ]);
}

#[test]
fn if_exists_and_set_qualifiers() {
    run(&[
        (r#"{"StringEqualsIfExists":{"ec2:InstanceType":"t3.micro"}}"#, &[], true),
        (
            r#"{"StringEqualsIfExists":{"ec2:InstanceType":"t3.micro"}}"#,
            &["ec2:InstanceType=m5.large"],
            false,
        ),
        (
            r#"{"StringNotEqualsIfExists":{"ec2:InstanceType":"t3.micro"}}"#,
            &["ec2:InstanceType=m5.large"],
            true,
        ),
        (r#"{"NumericLessThanIfExists":{"s3:max-keys":"5"}}"#, &[], true),
        (
            r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &["aws:SourceIp=11.0.0.1"],
            false,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#,
            &["aws:TagKeys=a", "aws:TagKeys=b"],
            true,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#,
            &["aws:TagKeys=a", "aws:TagKeys=c"],
            false,
        ),
        (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[], true),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a"]},"Null":{"aws:TagKeys":"false"}}"#,
            &[],
            false,
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#,
            &["aws:TagKeys=c", "aws:TagKeys=b"],
            true,
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#,
            &["aws:TagKeys=c"],
            false,
        ),
        (r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[], false),
        (
            r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":["a"]}}"#,
            &[],
            true,
        ),
        (
            r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["a","b"]}}"#,
            &["aws:TagKeys=c", "aws:TagKeys=d"],
            true,
        ),
        (
            r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["a","b"]}}"#,
            &["aws:TagKeys=c", "aws:TagKeys=a"],
            false,
        ),
        (
            r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["a","b"]}}"#,
            &["aws:TagKeys=a", "aws:TagKeys=c"],
            true,
        ),
        (
            r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["a","b"]}}"#,
            &["aws:TagKeys=a", "aws:TagKeys=b"],
            false,
        ),
        (
            r#"{"ForAllValues:StringLikeIfExists":{"aws:TagKeys":["env*"]}}"#,
            &["aws:TagKeys=environment"],
            true,
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"aws:RequestedRegion":"us-east-1"}}"#,
            &["aws:RequestedRegion=us-east-1"],
            true,
        ),
        (
            r#"{"StringEquals":{"aws:TagKeys":"b"}}"#,
            &["aws:TagKeys=a", "aws:TagKeys=b"],
            true,
        ),
        (
            r#"{"StringNotEquals":{"aws:TagKeys":"b"}}"#,
            &["aws:TagKeys=a", "aws:TagKeys=b"],
            false,
        ),
    ]);
}

#[test]
fn policy_variables_in_conditions() {
    run(&[
        (
            r#"{"StringLike":{"s3:prefix":"home/${aws:username}/*"}}"#,
            &["s3:prefix=home/bob/x"],
            true,
        ),
        (
            r#"{"StringLike":{"s3:prefix":"home/${aws:username}/*"}}"#,
            &["s3:prefix=home/alice/x"],
            false,
        ),
        (
            r#"{"StringEquals":{"s3:prefix":"${aws:PrincipalTag/team, 'shared'}"}}"#,
            &["s3:prefix=shared"],
            true,
        ),
        (
            r#"{"StringEquals":{"s3:prefix":"${aws:PrincipalTag/team, 'shared'}"}}"#,
            &["s3:prefix=shared", "aws:PrincipalTag/team=red"],
            false,
        ),
        (
            r#"{"StringEquals":{"s3:prefix":"${aws:PrincipalTag/team}"}}"#,
            &["s3:prefix=x"],
            false,
        ),
        // An unresolvable variable invalidates the statement even under a negated operator (issue 3).
        (
            r#"{"StringNotEquals":{"s3:prefix":"${aws:PrincipalTag/team}"}}"#,
            &["s3:prefix=x"],
            false,
        ),
        (r#"{"StringEquals":{"s3:prefix":"a${*}b"}}"#, &["s3:prefix=a*b"], true),
        (r#"{"StringLike":{"s3:prefix":"a${*}b"}}"#, &["s3:prefix=axb"], false),
        (
            r#"{"StringEquals":{"s3:prefix":"${$}{x}${?}"}}"#,
            &["s3:prefix=${x}?"],
            true,
        ),
        (
            r#"{"StringEquals":{"aws:ResourceTag/owner":"${aws:username}"}}"#,
            &["aws:ResourceTag/Owner=bob"],
            true,
        ),
        (
            r#"{"ArnLike":{"aws:SourceArn":"arn:aws:iam::*:user/${aws:username}"}}"#,
            &["aws:SourceArn=arn:aws:iam::1:user/bob"],
            true,
        ),
        (
            r#"{"NumericEquals":{"s3:max-keys":"${s3:other}"}}"#,
            &["s3:max-keys=1", "s3:other=1"],
            false,
        ),
    ]);
}

#[test]
fn variables_are_literal_in_2008_version() {
    let policy =
        r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}}"#;
    let literal = identity_eval(&[policy], "s3:GetObject", "arn:aws:s3:::b/${aws:username}/x", &[]);
    assert_eq!(literal.outcome, Outcome::Allowed);
    let substituted = identity_eval(&[policy], "s3:GetObject", "arn:aws:s3:::b/bob/x", &[]);
    assert_eq!(substituted.outcome, Outcome::ImplicitDeny);
}

#[test]
fn missing_context_keys_are_reported() {
    let policy = policy_with(
        r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:PrincipalTag/team}/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},"Bool":{"aws:SecureTransport":"true"}}},
           {"Effect":"Allow","Action":"s3:PutObject","Resource":"*","Condition":{"StringEquals":{"s3:x-amz-acl":"private"}}}"#,
    );
    let decision = identity_eval(
        &[&policy],
        "s3:GetObject",
        "arn:aws:s3:::b/x/k",
        &["aws:SecureTransport=true"],
    );
    assert_eq!(decision.outcome, Outcome::ImplicitDeny);
    let mut keys = decision.missing_context_keys.clone();
    keys.sort();
    assert_eq!(
        keys,
        vec!["aws:principaltag/team".to_owned(), "aws:sourceip".to_owned()]
    );
}
