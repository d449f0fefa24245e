//! Criterion bench: one decision per iteration, looping over the 40 requests of the shared bench set
//! (5 identity policies x 10 statements, wildcards and conditions).

use std::hint::black_box;

use citadel_policy::{Context, Policy, PolicyKind, PolicyRef, PolicySet, Principal, PrincipalKind, Request, evaluate};
use criterion::{Criterion, criterion_group, criterion_main};

const SET: &str = include_str!("data/policy_set.json");

fn bench(c: &mut Criterion) {
    let document: serde_json::Value = serde_json::from_str(SET).unwrap();
    let account = document["account"].as_str().unwrap().to_owned();
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
    let requests: Vec<(String, String, Context)> = document["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut context = Context::new();
            for (key, value) in r["context"].as_object().unwrap() {
                context.insert(key, value.as_str().unwrap());
            }
            (
                r["action"].as_str().unwrap().to_owned(),
                r["resource"].as_str().unwrap().to_owned(),
                context,
            )
        })
        .collect();
    let arn = format!("arn:aws:iam::{account}:user/bench");
    let principal = Principal::new(&arn, &account, PrincipalKind::User);

    let mut index = 0usize;
    c.bench_function("evaluate (bench set, per decision)", |b| {
        b.iter(|| {
            let (action, resource, context) = &requests[index % requests.len()];
            index += 1;
            let request = Request {
                principal,
                action,
                resource: Some(resource),
                resource_account: None,
                context,
            };
            black_box(evaluate(black_box(&request), &set).outcome)
        })
    });

    let text = serde_json::to_string(&document["policies"][0]["document"]).unwrap();
    c.bench_function("parse (10 statements)", |b| {
        b.iter(|| black_box(Policy::parse(black_box(&text), PolicyKind::Identity).is_ok()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
