//! The policy simulator (SimulatePrincipalPolicy, SimulateCustomPolicy) and the context-key listings,
//! answered by the same evaluator that authorizes real requests.

use crate::Iam;
use crate::model::{self, GROUPS, GroupRecord, ROLES, RoleRecord, Row, USERS, UserRecord};
use crate::users::account;
use crate::util::*;
use citadel_core::authz::PrincipalPolicies;
use citadel_core::{Call, Effect};
use citadel_policy::{
    Context, Outcome, Policy, PolicyKind, PolicyRef, PolicySet, PolicyType, Principal, PrincipalKind, Request,
    ResourcePolicy, ResourcePolicyKind, evaluate,
};
use citadel_wire::AwsError;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Start and end (line, column) of each statement of a policy document, 1-based, for
/// `MatchedStatements[].StartPosition/EndPosition`.
pub fn statement_positions(text: &str) -> Vec<((usize, usize), (usize, usize))> {
    let Some(at) = text.find("\"Statement\"") else {
        return Vec::new();
    };
    let mut positions = Vec::new();
    let (mut line, mut column) = (1usize, 0usize);
    let mut depth = 0i32;
    let mut in_string = false;
    let mut escaped = false;
    let mut start = (0, 0);
    let mut array: Option<bool> = None;
    for (index, ch) in text.char_indices() {
        if ch == '\n' {
            line += 1;
            column = 0;
        } else {
            column += 1;
        }
        if index < at + "\"Statement\"".len() {
            continue;
        }
        if in_string {
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_string = true,
            '{' | '[' => {
                let is_array = *array.get_or_insert(ch == '[');
                if ch == '{' && depth == i32::from(is_array) {
                    start = (line, column);
                }
                depth += 1;
            }
            '}' | ']' => {
                depth -= 1;
                if ch == '}' && depth == i32::from(array.unwrap_or(false)) {
                    positions.push((start, (line, column + 1)));
                }
                if depth <= 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    positions
}

struct Named {
    id: String,
    source_type: &'static str,
    policy: Arc<Policy>,
}

fn parse_inputs(input: &Value, member: &str) -> Result<Vec<Named>, AwsError> {
    str_list(input, member)
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let policy = Policy::parse(text, PolicyKind::Identity).map_err(|e| malformed(&e))?;
            Ok(Named {
                id: format!("{member}.{}", i + 1),
                source_type: "IAM Policy",
                policy: Arc::new(policy),
            })
        })
        .collect()
}

fn source_type(id: &str) -> &'static str {
    if id.starts_with("arn:aws:iam::aws:") {
        "aws-managed"
    } else if id.starts_with("arn:") {
        "user-managed"
    } else if id.starts_with("user/") {
        "user"
    } else if id.starts_with("group/") {
        "group"
    } else if id.starts_with("role/") {
        "role"
    } else {
        "IAM Policy"
    }
}

fn display_id(id: &str) -> String {
    // Inline ids are `user/NAME/inline/POLICY`; managed ids are ARNs. IAM shows the policy name.
    id.rsplit('/').next().unwrap_or(id).to_string()
}

fn from_principal_policies(policies: &PrincipalPolicies) -> (Vec<Named>, Option<Named>) {
    let identity = policies
        .identity
        .iter()
        .map(|(id, p)| Named {
            id: id.clone(),
            source_type: source_type(id),
            policy: p.clone(),
        })
        .collect();
    let boundary = policies.boundary.as_ref().map(|(id, p)| Named {
        id: id.clone(),
        source_type: "PermissionsBoundary",
        policy: p.clone(),
    });
    (identity, boundary)
}

impl Iam {
    /// The identity policies and boundary of the entity a simulation is about, and its principal ARN.
    async fn source_policies(&self, account: &str, arn: &str) -> Result<(Vec<Named>, Option<Named>), AwsError> {
        let Some((_, _, name)) = split_arn_name(arn) else {
            return Err(invalid_input(format!("Invalid ARN: {arn}")));
        };
        let missing = || no_such_entity(format!("Could not find policy source for ARN: {arn}"));
        let key = model::name_key(account, name);
        if arn.contains(":user/") {
            let row: Row<UserRecord> = model::get(self.store.as_ref(), USERS, key).await?.ok_or_else(missing)?;
            Ok(from_principal_policies(&self.user_policies(account, &row.value).await?))
        } else if arn.contains(":role/") {
            let row: Row<RoleRecord> = model::get(self.store.as_ref(), ROLES, key).await?.ok_or_else(missing)?;
            Ok(from_principal_policies(&self.role_policies(account, &row.value).await?))
        } else if arn.contains(":group/") {
            let row: Row<GroupRecord> = model::get(self.store.as_ref(), GROUPS, key)
                .await?
                .ok_or_else(missing)?;
            let group = row.value;
            let mut identity = Vec::new();
            for inline in &group.inline {
                if let Ok(policy) = Policy::parse(&inline.document, PolicyKind::Identity) {
                    identity.push(Named {
                        id: format!("group/{}/inline/{}", group.name, inline.name),
                        source_type: "group",
                        policy: Arc::new(policy),
                    });
                }
            }
            for attached in &group.attached {
                if let Some(document) = crate::policies::managed_document(self, account, attached).await?
                    && let Ok(policy) = Policy::parse(&document, PolicyKind::Identity)
                {
                    identity.push(Named {
                        id: attached.clone(),
                        source_type: source_type(attached),
                        policy: Arc::new(policy),
                    });
                }
            }
            Ok((identity, None))
        } else {
            Err(missing())
        }
    }

    pub(crate) async fn simulate(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let input = &call.input;
        let principal_policy = call.op.name == "SimulatePrincipalPolicy";
        let source_arn = opt_str(input, "PolicySourceArn").unwrap_or("");
        let (mut identity, mut boundary) = if principal_policy {
            self.source_policies(account, source_arn).await?
        } else {
            (Vec::new(), None)
        };
        identity.extend(parse_inputs(input, "PolicyInputList")?);
        let extra_boundaries = parse_inputs(input, "PermissionsBoundaryPolicyInputList")?;
        if let Some(first) = extra_boundaries.into_iter().next() {
            boundary = Some(first);
        }
        let resource_policy = match opt_str(input, "ResourcePolicy") {
            Some(text) => Some(Policy::parse(text, PolicyKind::ResourceBased).map_err(|e| malformed(&e))?),
            None => None,
        };
        let caller_arn = opt_str(input, "CallerArn").map(str::to_string).unwrap_or_else(|| {
            if principal_policy {
                source_arn.to_string()
            } else {
                format!("arn:aws:iam::{account}:user/simulated")
            }
        });
        let resource_owner = opt_str(input, "ResourceOwner")
            .and_then(|arn| arn.split(':').nth(4))
            .map(str::to_string);
        let mut context = Context::new();
        for entry in input
            .get("ContextEntries")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let name = opt_str(entry, "ContextKeyName").unwrap_or("");
            let values = str_list(entry, "ContextKeyValues");
            if name.is_empty() {
                continue;
            }
            if opt_str(entry, "ContextKeyType").is_some_and(|t| t.ends_with("List")) {
                context.insert_multi(name, values);
            } else if let Some(first) = values.into_iter().next() {
                context.insert(name, first);
            }
        }
        let kind = if caller_arn.contains(":role/") {
            PrincipalKind::AssumedRole { role_arn: &caller_arn }
        } else {
            PrincipalKind::User
        };
        let mut principal = Principal::new(&caller_arn, account, kind);
        principal.has_permissions_boundary = boundary.is_some();
        context.insert_principal_defaults(&principal);

        let identity_refs: Vec<PolicyRef<'_>> = identity
            .iter()
            .map(|n| PolicyRef {
                id: n.id.as_str(),
                policy: n.policy.as_ref(),
            })
            .collect();
        let set = PolicySet {
            identity: identity_refs,
            resource: resource_policy.as_ref().map(|p| ResourcePolicy {
                policy: PolicyRef {
                    id: "ResourcePolicy",
                    policy: p,
                },
                kind: ResourcePolicyKind::Generic,
            }),
            permissions_boundary: boundary.as_ref().map(|n| PolicyRef {
                id: n.id.as_str(),
                policy: n.policy.as_ref(),
            }),
            session_policies: None,
            scp_levels: Vec::new(),
            root_implicit_allow: false,
        };
        let actions = str_list(input, "ActionNames");
        let mut resources = str_list(input, "ResourceArns");
        if resources.is_empty() {
            resources.push("*".to_string());
        }
        let mut results = Vec::new();
        for action in &actions {
            for resource in &resources {
                let request = Request {
                    principal,
                    action,
                    resource: Some(resource),
                    resource_account: resource_owner.as_deref(),
                    context: &context,
                };
                let decision = evaluate(&request, &set);
                let matched: Vec<Value> = decision
                    .matched
                    .iter()
                    .map(|m| {
                        let (source_id, source_kind, text) = match m.policy_type {
                            PolicyType::ResourceBased => (
                                "ResourcePolicy".to_string(),
                                "resource",
                                resource_policy.as_ref().map(|p| p.text()),
                            ),
                            _ => {
                                let named = identity.iter().chain(boundary.iter()).find(|n| n.id == m.policy_id);
                                (
                                    display_id(m.policy_id),
                                    named.map_or("IAM Policy", |n| n.source_type),
                                    named.map(|n| n.policy.text()),
                                )
                            }
                        };
                        let ((sl, sc), (el, ec)) = text
                            .and_then(|t| statement_positions(t).get(m.statement_index).copied())
                            .unwrap_or(((1, 1), (1, 1)));
                        json!({
                            "SourcePolicyId": source_id, "SourcePolicyType": source_kind,
                            "StartPosition": {"Line": sl, "Column": sc}, "EndPosition": {"Line": el, "Column": ec},
                        })
                    })
                    .collect();
                let mut result = Map::new();
                result.insert("EvalActionName".into(), json!(action));
                result.insert("EvalResourceName".into(), json!(resource));
                result.insert("EvalDecision".into(), json!(decision.outcome.as_str()));
                result.insert("MatchedStatements".into(), Value::Array(matched));
                result.insert(
                    "MissingContextValues".into(),
                    Value::Array(decision.missing_context_keys.iter().map(|k| json!(k)).collect()),
                );
                if boundary.is_some() {
                    let allowed = decision.outcome == Outcome::Allowed
                        || decision.policy_type != Some(PolicyType::PermissionsBoundary);
                    result.insert(
                        "PermissionsBoundaryDecisionDetail".into(),
                        json!({"AllowedByPermissionsBoundary": allowed}),
                    );
                }
                results.push((format!("{:06}", results.len()), Value::Object(result)));
            }
        }
        let (page, next) = paginate(results, input);
        let mut out = Map::new();
        out.insert("EvaluationResults".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn context_keys(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let mut policies = parse_inputs(&call.input, "PolicyInputList")?;
        if call.op.name == "GetContextKeysForPrincipalPolicy" {
            let (identity, boundary) = self
                .source_policies(account, req_str(&call.input, "PolicySourceArn")?)
                .await?;
            policies.extend(identity);
            policies.extend(boundary);
        }
        let mut keys: Vec<String> = Vec::new();
        for named in &policies {
            for statement in named.policy.statements() {
                for key in statement.condition_keys() {
                    if !keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                        keys.push(key.to_string());
                    }
                }
            }
        }
        keys.sort();
        Ok(Effect::read(json!({"ContextKeyNames": keys})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_statement_positions() {
        let text = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\"Effect\": \"Allow\", \"Action\": \"s3:*\", \"Resource\": \"*\"},\n    {\"Effect\": \"Deny\", \"Action\": \"s3:Delete*\", \"Resource\": \"*\"}\n  ]\n}";
        let positions = statement_positions(text);
        assert_eq!(positions.len(), 2);
        assert_eq!(positions[0].0, (4, 5));
        assert_eq!(positions[1].0, (5, 5));
        let single = r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#;
        assert_eq!(statement_positions(single), vec![((1, 14), (1, 60))]);
    }
}
