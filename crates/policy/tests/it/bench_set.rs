//! The shared bench policy set: all 40 expected decisions must match.

use citadel_policy::{
    Context, Outcome, Policy, PolicyKind, PolicyRef, PolicySet, Principal, PrincipalKind, Request, evaluate,
};

const SET: &str = include_str!("../../benches/data/policy_set.json");

#[test]
fn all_forty_expected_decisions_match() {
    let document: serde_json::Value = serde_json::from_str(SET).unwrap();
    let account = document["account"].as_str().unwrap();
    let policies: Vec<(String, Policy)> = document["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let text = serde_json::to_string(&p["document"]).unwrap();
            (
                p["name"].as_str().unwrap().to_owned(),
                Policy::parse(&text, PolicyKind::Identity).unwrap(),
            )
        })
        .collect();
    let set = PolicySet {
        identity: policies.iter().map(|(id, policy)| PolicyRef { id, policy }).collect(),
        ..PolicySet::default()
    };
    let arn = format!("arn:aws:iam::{account}:user/bench");
    let principal = Principal::new(&arn, account, PrincipalKind::User);
    let requests = document["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 40);
    for request in requests {
        let mut context = Context::new();
        for (key, value) in request["context"].as_object().unwrap() {
            context.insert(key, value.as_str().unwrap());
        }
        let action = request["action"].as_str().unwrap();
        let resource = request["resource"].as_str().unwrap();
        let expected = match request["aws_expected"].as_str().unwrap() {
            "Allow" => Outcome::Allowed,
            "Deny" => Outcome::ExplicitDeny,
            "ImplicitDeny" => Outcome::ImplicitDeny,
            other => panic!("unknown expectation {other}"),
        };
        let req = Request {
            principal,
            action,
            resource: Some(resource),
            resource_account: None,
            context: &context,
        };
        let decision = evaluate(&req, &set);
        assert_eq!(decision.outcome, expected, "{action} {resource}");
    }
}
