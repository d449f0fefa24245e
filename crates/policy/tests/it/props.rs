//! Property tests: deny monotonicity, NotAction as the complement of Action, and a parser that never panics.

use citadel_policy::{
    Context, Outcome, Policy, PolicyKind, PolicyRef, PolicySet, Principal, PrincipalKind, Request, evaluate, validate,
};
use proptest::prelude::*;

fn action_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        (
            "(s3|kms|iam|ec2)",
            "(Get|Put|List|Delete|\\*|\\?et)(Object|Key|User|\\*)?"
        )
            .prop_map(|(s, n)| format!("{s}:{n}")),
        "(s3|kms|iam):\\*",
    ]
}

fn action() -> impl Strategy<Value = String> {
    (
        "(s3|kms|iam|ec2|sts)",
        "(Get|Put|List|Delete|Create)(Object|Key|User|Bucket)",
    )
        .prop_map(|(s, n)| format!("{s}:{n}"))
}

fn resource_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        "arn:aws:s3:::(b|c|\\*)(/[a-z*?]{0,4})?",
        "arn:aws:(kms|iam|\\*):(us-east-1|\\*)?:(123456789012|\\*)?:(key|user)/[a-z*]{0,3}",
    ]
}

fn resource() -> impl Strategy<Value = String> {
    prop_oneof![
        "arn:aws:s3:::(b|c)(/[a-z]{0,4})?",
        "arn:aws:(kms|iam):(us-east-1)?:123456789012:(key|user)/[a-z]{0,3}",
    ]
}

fn statement(effect: &'static str) -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(action_pattern(), 1..3),
        resource_pattern(),
        any::<bool>(),
    )
        .prop_map(move |(actions, resource, with_condition)| {
            let condition = if with_condition {
                r#","Condition":{"StringEquals":{"aws:RequestedRegion":"us-east-1"}}"#
            } else {
                ""
            };
            format!(
                r#"{{"Effect":"{effect}","Action":{},"Resource":"{resource}"{condition}}}"#,
                serde_json::to_string(&actions).unwrap()
            )
        })
}

fn decide(statements: &[String], action: &str, resource: &str, region: &str) -> Outcome {
    let text = format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, statements.join(","));
    let policy = Policy::parse(&text, PolicyKind::Identity).unwrap();
    let mut context = Context::new();
    context.insert("aws:RequestedRegion", region);
    let principal = Principal::new("arn:aws:iam::123456789012:user/p", "123456789012", PrincipalKind::User);
    let request = Request {
        principal,
        action,
        resource: Some(resource),
        resource_account: None,
        context: &context,
    };
    let set = PolicySet {
        identity: vec![PolicyRef {
            id: "p",
            policy: &policy,
        }],
        ..PolicySet::default()
    };
    evaluate(&request, &set).outcome
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn adding_a_deny_never_allows_more(
        allows in proptest::collection::vec(statement("Allow"), 1..4),
        deny in statement("Deny"),
        action in action(),
        resource in resource(),
        region in "(us-east-1|eu-west-1)",
    ) {
        let before = decide(&allows, &action, &resource, &region);
        let mut with_deny = allows.clone();
        with_deny.push(deny);
        let after = decide(&with_deny, &action, &resource, &region);
        prop_assert!(!(before != Outcome::Allowed && after == Outcome::Allowed));
        if before == Outcome::ExplicitDeny {
            prop_assert_eq!(after, Outcome::ExplicitDeny);
        }
    }

    #[test]
    fn not_action_is_the_complement_of_action(pattern in action_pattern(), action in action()) {
        let positive = format!(r#"{{"Effect":"Allow","Action":"{pattern}","Resource":"*"}}"#);
        let negative = format!(r#"{{"Effect":"Allow","NotAction":"{pattern}","Resource":"*"}}"#);
        let p = decide(&[positive], &action, "arn:aws:s3:::b/k", "us-east-1") == Outcome::Allowed;
        let n = decide(&[negative], &action, "arn:aws:s3:::b/k", "us-east-1") == Outcome::Allowed;
        prop_assert_ne!(p, n);
    }

    #[test]
    fn garbled_json_never_panics(text in "[\\PC\\t\\n{}\\[\\]\":,*$?]{0,200}") {
        for kind in [PolicyKind::Identity, PolicyKind::ResourceBased, PolicyKind::Trust] {
            let _ = Policy::parse(&text, kind);
            let _ = validate(&text, kind);
        }
    }

    #[test]
    fn mutated_valid_policies_never_panic(
        cut in 0usize..400,
        insert in "[\\PC{}\\[\\]\":,]{0,8}",
        statements in proptest::collection::vec(statement("Allow"), 1..3),
    ) {
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[{},{{"Effect":"Deny","Principal":{{"AWS":["1","*"]}},"NotAction":"s3:*","NotResource":"arn:aws:s3:::${{aws:username}}/${{x, 'y'}}","Condition":{{"ForAnyValue:IpAddressIfExists":{{"aws:SourceIp":["10.0.0.0/8",1,true]}},"DateLessThan":{{"aws:CurrentTime":"2025-01-01"}}}}}}]}}"#,
            statements.join(",")
        );
        let mut chars: Vec<char> = text.chars().collect();
        let at = cut.min(chars.len());
        chars.splice(at..at, insert.chars());
        let garbled: String = chars.into_iter().collect();
        for kind in [PolicyKind::Identity, PolicyKind::ResourceBased, PolicyKind::Trust] {
            if let Ok(policy) = Policy::parse(&garbled, kind) {
                let context = Context::new();
                let principal = Principal::new("arn:aws:iam::1:user/u", "1", PrincipalKind::User);
                let request = Request { principal, action: "s3:GetObject", resource: Some("arn:aws:s3:::b/k"), resource_account: None, context: &context };
                let set = PolicySet { identity: vec![PolicyRef { id: "p", policy: &policy }], ..PolicySet::default() };
                let _ = evaluate(&request, &set);
            }
            let _ = validate(&garbled, kind);
        }
    }
}

proptest! {
    /// `Context::insert_ip` formats IPv4 addresses by hand; it must store what `Display` prints,
    /// since IpAddress conditions and ${aws:SourceIp} read that text.
    #[test]
    fn insert_ip_matches_display(octets in any::<[u8; 4]>(), segments in any::<[u16; 8]>()) {
        for ip in [
            std::net::IpAddr::from(octets),
            std::net::IpAddr::from(segments),
        ] {
            let mut context = Context::new();
            context.insert_ip("aws:SourceIp", ip);
            let stored = context.get("aws:sourceip").and_then(|values| values.first()).map(|v| v.to_string());
            prop_assert_eq!(stored, Some(ip.to_string()));
        }
    }

    /// Keys are case-insensitive whether or not they arrive lower-cased.
    #[test]
    fn context_keys_fold_case(key in "[a-zA-Z:/]{1,20}", value in "[a-z0-9]{0,8}") {
        let mut context = Context::new();
        context.insert(&key, value.as_str());
        prop_assert!(context.get(&key.to_lowercase()).is_some());
        prop_assert!(context.get(&key.to_uppercase()).is_some());
        prop_assert_eq!(context.len(), 1);
    }
}
