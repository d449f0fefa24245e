//! Fuzzes the policy parser for every `PolicyKind`, the validator, and evaluation of what parses.
//!
//! Input: the policy text (any bytes; non-UTF-8 input is skipped because the API takes `&str`).

#![no_main]

use citadel_policy::{
    Context, Policy, PolicyKind, PolicyRef, PolicySet, Principal, PrincipalKind, Request, evaluate, validate,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut context = Context::new();
    context
        .insert("aws:username", "alice")
        .insert("aws:SourceIp", "10.1.2.3")
        .insert("aws:CurrentTime", "2025-01-01T00:00:00Z")
        .insert("aws:PrincipalTag/team", "blue")
        .insert_multi("aws:TagKeys", ["a", "b"]);
    let principal = Principal::new(
        "arn:aws:iam::111122223333:user/alice",
        "111122223333",
        PrincipalKind::User,
    );
    for kind in [PolicyKind::Identity, PolicyKind::ResourceBased, PolicyKind::Trust] {
        let _ = validate(text, kind);
        let Ok(policy) = Policy::parse(text, kind) else {
            continue;
        };
        let reference = PolicyRef {
            id: "fuzz",
            policy: &policy,
        };
        let set = PolicySet {
            identity: vec![reference],
            ..PolicySet::default()
        };
        for (action, resource) in [
            ("s3:GetObject", "arn:aws:s3:::b/alice/k"),
            ("sqs:SendMessage", "arn:aws:sqs:us-east-1:111122223333:q"),
            ("iam:CreateUser", "*"),
        ] {
            let request = Request {
                principal,
                action,
                resource: Some(resource),
                resource_account: None,
                context: &context,
            };
            let _ = evaluate(&request, &set);
        }
    }
});
