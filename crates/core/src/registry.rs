//! The operation registry: what every operation of every service is, for authorization and audit.
//!
//! Each service declares a static [`ServiceSpec`] listing all of its operations with the IAM action
//! they need, the resource ARN template they touch and whether they only read.
//! The pipeline refuses to run an operation that is not declared here, so a handler cannot be reached
//! without an authorization decision; `tests` walk this registry to prove that a principal without
//! policies is denied every operation.

use citadel_wire::Protocol;
use serde_json::Value;

/// One operation of a service.
#[derive(Debug, Clone, Copy)]
pub struct OperationSpec {
    /// The API operation name, e.g. `CreateUser`.
    pub name: &'static str,
    /// The IAM action, e.g. `iam:CreateUser`.
    pub action: &'static str,
    /// The resource ARN template: `{partition}`, `{region}`, `{account}` and `{Member}` (an input member)
    /// are substituted; `*` means the action takes no resource.
    pub resource: &'static str,
    /// True when the operation changes nothing (CloudTrail's `readOnly`).
    pub read_only: bool,
    /// Service-specific condition keys the operation puts in the request context.
    pub condition_keys: &'static [&'static str],
}

/// A service as the pipeline sees it.
#[derive(Debug)]
pub struct ServiceSpec {
    /// The SigV4 signing name and model key: `iam`, `sts`, `kms`, ...
    pub signing_name: &'static str,
    /// CloudTrail's `eventSource`: `iam.amazonaws.com`.
    pub event_source: &'static str,
    /// The wire protocol.
    pub protocol: Protocol,
    /// Every operation the service implements.
    pub operations: &'static [OperationSpec],
}

impl ServiceSpec {
    /// The spec of operation `name`, if the service implements it.
    pub fn operation(&self, name: &str) -> Option<&'static OperationSpec> {
        self.operations.iter().find(|op| op.name == name)
    }
}

/// Fills a resource template from the request.
///
/// Returns `None` when the template names an input member that is missing or not a string,
/// so callers can report the resource as `*`-less rather than invent a name.
pub fn fill_template(template: &str, partition: &str, region: &str, account: &str, input: &Value) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let name = &after[..close];
        match name {
            "partition" => out.push_str(partition),
            "region" => out.push_str(region),
            "account" => out.push_str(account),
            member => out.push_str(input.get(member)?.as_str()?),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_templates_from_input_members() {
        let input = serde_json::json!({"UserName": "bob"});
        assert_eq!(
            fill_template(
                "arn:{partition}:iam::{account}:user/{UserName}",
                "aws",
                "us-east-1",
                "123456789012",
                &input
            )
            .as_deref(),
            Some("arn:aws:iam::123456789012:user/bob")
        );
        assert_eq!(
            fill_template("arn:aws:iam::{account}:group/{GroupName}", "aws", "", "1", &input),
            None
        );
        assert_eq!(fill_template("*", "aws", "", "1", &input).as_deref(), Some("*"));
    }
}
