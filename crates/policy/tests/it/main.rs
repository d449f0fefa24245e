//! Integration tests for citadel-policy: AWS documentation examples, the shared bench set, properties.

mod bench_set;
mod cache;
mod conditions;
mod differential;
mod evaluation;
mod parsing;
mod props;

use citadel_policy::{EvalInput, Outcome, OwnedDecision, evaluate_texts};

/// The default caller of the tables.
pub const BOB: &str = "arn:aws:iam::123456789012:user/bob";

/// Evaluates identity policies for `BOB` with `KEY=VALUE` context entries.
pub fn identity_eval(policies: &[&str], action: &str, resource: &str, context: &[&str]) -> OwnedDecision {
    evaluate_texts(&EvalInput {
        identity_policies: policies,
        principal_arn: BOB,
        action,
        resource: Some(resource),
        context,
        ..EvalInput::default()
    })
    .unwrap()
}

/// Wraps one statement body in a 2012-10-17 identity policy.
pub fn policy_with(statement: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#)
}

/// The outcome as a short string for readable assertion failures.
pub fn outcome(o: Outcome) -> &'static str {
    o.as_str()
}
