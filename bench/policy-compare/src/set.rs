//! The shared bench set (`policy_set.json`): 5 identity policies x 10 statements and 40 requests with the
//! decision AWS's documented logic gives for each. Loaded once into plain owned data so that each engine
//! can build its own representation from the same input.

use serde_json::Value;

/// One identity policy of the set: its name and its JSON document.
pub struct SetPolicy {
    /// The policy's name, used as its id in decisions.
    pub name: String,
    /// The policy document as parsed JSON.
    pub document: Value,
}

/// One request of the set.
pub struct SetRequest {
    /// The IAM action, for example `s3:GetObject`.
    pub action: String,
    /// The resource ARN (or `*`).
    pub resource: String,
    /// The condition context as key/value string pairs, in file order.
    pub context: Vec<(String, String)>,
    /// The expected decision: `Allow`, `Deny` or `ImplicitDeny`.
    pub expected: String,
}

/// The whole set.
pub struct BenchSet {
    /// The account the policies and the principal belong to.
    pub account: String,
    /// The identity policies attached to the benchmark principal.
    pub policies: Vec<SetPolicy>,
    /// The requests, in file order.
    pub requests: Vec<SetRequest>,
}

fn text(value: &Value, what: &str) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{what} is not a string"))
}

/// Loads the set from JSON text.
pub fn load(json: &str) -> Result<BenchSet, String> {
    let document: Value = serde_json::from_str(json).map_err(|e| format!("policy set: {e}"))?;
    let account = text(&document["account"], "account")?;
    let policies = document["policies"]
        .as_array()
        .ok_or("policies is not an array")?
        .iter()
        .map(|p| {
            Ok(SetPolicy {
                name: text(&p["name"], "policy name")?,
                document: p["document"].clone(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let requests = document["requests"]
        .as_array()
        .ok_or("requests is not an array")?
        .iter()
        .map(|r| {
            let context = r["context"]
                .as_object()
                .ok_or("context is not an object")?
                .iter()
                .map(|(k, v)| Ok((k.clone(), text(v, k)?)))
                .collect::<Result<Vec<_>, String>>()?;
            Ok(SetRequest {
                action: text(&r["action"], "action")?,
                resource: text(&r["resource"], "resource")?,
                context,
                expected: text(&r["aws_expected"], "aws_expected")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(BenchSet {
        account,
        policies,
        requests,
    })
}
