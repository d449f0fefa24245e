//! The decision cache of [`CompiledSet`]: over random policies and random request streams (with
//! repeats, so that the cache hits), a cached decision is always identical to evaluating afresh.
//! See: issue 3.

use std::sync::Arc;

use citadel_policy::{
    CompiledSet, Context, Policy, PolicyKind, PolicyRef, PolicySet, Principal, PrincipalKind, Request, SetSpec,
    evaluate,
};
use proptest::prelude::*;

fn action_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        ("(s3|kms|iam)", "(Get|Put|List|\\*|\\?et)(Object|Key|User|\\*)?").prop_map(|(s, n)| format!("{s}:{n}")),
        "(s3|kms):\\*",
        "(s3|kms|iam):\\*(Object|Key)\\*",
    ]
}

fn resource_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        "arn:aws:s3:::(b|c|\\*)(/[a-z*?]{0,3})?",
        Just("arn:aws:s3:::b/${aws:username}/*".to_owned()),
        "arn:aws:(kms|iam|\\*):(us-east-1|\\*)?:(123456789012|\\*)?:(key|user)/[a-z*]{0,2}",
    ]
}

/// One condition entry `"Operator": {"key": value}`, over keys the requests may or may not carry.
fn condition() -> impl Strategy<Value = String> {
    prop_oneof![
        "(StringEquals|StringNotEquals|StringLike|StringEqualsIfExists)".prop_flat_map(|op| {
            (
                "(aws:RequestedRegion|aws:PrincipalTag/team|aws:ResourceTag/env)",
                "(us-east-1|blue|prod|b\\*|\\*)",
            )
                .prop_map(move |(k, v)| format!(r#""{op}":{{"{k}":"{v}"}}"#))
        }),
        "(Bool|BoolIfExists)".prop_map(|op| format!(r#""{op}":{{"aws:SecureTransport":"true"}}"#)),
        "(NumericLessThan|NumericGreaterThanEquals)"
            .prop_map(|op| format!(r#""{op}":{{"aws:MultiFactorAuthAge":"3600"}}"#)),
        "(DateGreaterThan|DateLessThan)"
            .prop_map(|op| format!(r#""{op}":{{"aws:CurrentTime":"2026-01-01T00:00:00Z"}}"#)),
        "(IpAddress|NotIpAddress)".prop_map(|op| format!(r#""{op}":{{"aws:SourceIp":"10.0.0.0/8"}}"#)),
        "(Null)".prop_map(|op| format!(r#""{op}":{{"aws:ResourceTag/env":"true"}}"#)),
        Just(r#""StringEquals":{"aws:PrincipalTag/team":"${aws:username}"}"#.to_owned()),
        Just(r#""ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}"#.to_owned()),
    ]
}

fn statement() -> impl Strategy<Value = String> {
    (
        prop_oneof![4 => Just("Allow"), 1 => Just("Deny")],
        any::<bool>(),
        proptest::collection::vec(action_pattern(), 1..3),
        any::<bool>(),
        resource_pattern(),
        proptest::collection::vec(condition(), 0..3),
    )
        .prop_map(|(effect, not_action, actions, not_resource, resource, conditions)| {
            // One clause per operator: a JSON object cannot repeat the operator.
            let mut seen = Vec::new();
            let conditions: Vec<String> = conditions
                .into_iter()
                .filter(|c| {
                    let op = c.split(':').next().unwrap_or_default().to_owned();
                    let fresh = !seen.contains(&op);
                    seen.push(op);
                    fresh
                })
                .collect();
            format!(
                r#"{{"Effect":"{effect}","{}":{},"{}":"{resource}","Condition":{{{}}}}}"#,
                if not_action { "NotAction" } else { "Action" },
                serde_json::to_string(&actions).unwrap(),
                if not_resource { "NotResource" } else { "Resource" },
                conditions.join(",")
            )
        })
}

fn policy() -> impl Strategy<Value = Arc<Policy>> {
    proptest::collection::vec(statement(), 1..5).prop_map(|statements| {
        let text = format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, statements.join(","));
        Arc::new(Policy::parse(&text, PolicyKind::Identity).unwrap())
    })
}

/// A request: `(principal index, action, resource, context pairs)`.
type Raw = (usize, String, String, Vec<(&'static str, String)>);

fn request() -> impl Strategy<Value = Raw> {
    (
        0usize..3,
        ("(s3|kms|iam|ec2)", "(Get|Put|List)(Object|Key|User)").prop_map(|(s, n)| format!("{s}:{n}")),
        prop_oneof![
            "arn:aws:s3:::(b|c)(/[a-z]{0,2})?",
            Just("arn:aws:s3:::b/bob/x".to_owned()),
            "arn:aws:(kms|iam):(us-east-1)?:123456789012:(key|user)/[a-z]{0,2}",
        ],
        proptest::collection::vec(
            prop_oneof![
                "(us-east-1|eu-west-1)".prop_map(|v| ("aws:RequestedRegion", v)),
                "(blue|bob|red)".prop_map(|v| ("aws:PrincipalTag/team", v)),
                "(prod|dev)".prop_map(|v| ("aws:ResourceTag/env", v)),
                "(true|false)".prop_map(|v| ("aws:SecureTransport", v)),
                "(60|7200)".prop_map(|v| ("aws:MultiFactorAuthAge", v)),
                "2026-0[1-2]-01T00:00:0[0-1]Z".prop_map(|v| ("aws:CurrentTime", v)),
                "(10.1.2.3|192.168.0.1)".prop_map(|v| ("aws:SourceIp", v)),
                "(a|c)".prop_map(|v| ("aws:TagKeys", v)),
                "(x|y)".prop_map(|v| ("aws:Unreferenced", v)),
            ],
            0..6,
        ),
    )
}

const PRINCIPALS: [(&str, &str); 3] = [
    ("arn:aws:iam::123456789012:user/bob", "user"),
    ("arn:aws:iam::123456789012:root", "root"),
    ("arn:aws:sts::123456789012:assumed-role/r/s", "role"),
];

fn principal(index: usize) -> Principal<'static> {
    let (arn, kind) = PRINCIPALS[index % PRINCIPALS.len()];
    let kind = match kind {
        "user" => PrincipalKind::User,
        "root" => PrincipalKind::Root,
        _ => PrincipalKind::AssumedRole {
            role_arn: "arn:aws:iam::123456789012:role/r",
        },
    };
    Principal::new(arn, "123456789012", kind)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn cached_decisions_equal_fresh_ones(
        identity in proptest::collection::vec(policy(), 1..4),
        boundary in proptest::option::of(policy()),
        session in proptest::option::of(proptest::collection::vec(policy(), 0..2)),
        pool in proptest::collection::vec(request(), 1..12),
        stream in proptest::collection::vec(0usize..12, 1..80),
        capacity in prop_oneof![Just(0usize), Just(1), Just(4), Just(4096)],
        root_implicit_allow in any::<bool>(),
    ) {
        let ids: Vec<String> = (0..identity.len()).map(|i| format!("p{i}")).collect();
        let set = CompiledSet::new(SetSpec {
            identity: ids.iter().cloned().zip(identity.iter().cloned()).collect(),
            permissions_boundary: boundary.clone().map(|b| ("boundary".to_owned(), b)),
            session_policies: session.clone().map(|list| list.into_iter().map(|p| ("session".to_owned(), p)).collect()),
            root_implicit_allow,
            cache_capacity: capacity,
        });
        let borrowed = PolicySet {
            identity: ids.iter().zip(&identity).map(|(id, p)| PolicyRef { id, policy: p }).collect(),
            permissions_boundary: boundary.as_ref().map(|p| PolicyRef { id: "boundary", policy: p }),
            session_policies: session.as_ref().map(|list| list.iter().map(|p| PolicyRef { id: "session", policy: p }).collect()),
            root_implicit_allow,
            ..PolicySet::default()
        };
        let contexts: Vec<Context> = pool
            .iter()
            .map(|(_, _, _, pairs)| {
                let mut context = Context::new();
                for (k, v) in pairs {
                    context.push(k, v.as_str());
                }
                context
            })
            .collect();
        for &pick in &stream {
            let index = pick % pool.len();
            let (who, action, resource, _) = &pool[index];
            let request = Request {
                principal: principal(*who),
                action,
                resource: Some(resource),
                resource_account: None,
                context: &contexts[index],
            };
            let fresh = evaluate(&request, &borrowed);
            prop_assert_eq!(&set.evaluate(&request, None), &fresh);
            prop_assert_eq!(&set.evaluate_uncached(&request, None), &fresh);
        }
        let (hits, misses) = set.cache_stats();
        prop_assert_eq!(hits + misses, if capacity == 0 { 0 } else { stream.len() as u64 });
    }
}

#[test]
fn time_dependent_sets_are_flagged_and_keyed_on_the_timestamp() {
    let policy = Arc::new(
        Policy::parse(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"}}}}"#,
            PolicyKind::Identity,
        )
        .unwrap(),
    );
    let set = CompiledSet::new(SetSpec {
        identity: vec![("p".to_owned(), policy)],
        ..SetSpec::default()
    });
    assert!(set.time_dependent());
    assert_eq!(set.referenced_keys().collect::<Vec<_>>(), ["aws:currenttime"]);
    let decide = |time: &str| {
        let mut context = Context::new();
        context
            .insert("aws:CurrentTime", time)
            .insert("aws:SourceIp", "10.0.0.1");
        let request = Request {
            principal: principal(0),
            action: "s3:GetObject",
            resource: Some("arn:aws:s3:::b/k"),
            resource_account: None,
            context: &context,
        };
        set.evaluate(&request, None).is_allowed()
    };
    assert!(decide("2025-12-31T23:59:59Z"));
    assert!(decide("2025-12-31T23:59:59Z"));
    // An unreferenced key does not split the cache; the clock does.
    assert!(!decide("2026-01-01T00:00:01Z"));
    assert_eq!(set.cache_stats(), (1, 2));
}
