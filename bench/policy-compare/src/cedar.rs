//! Translation of the bench set's IAM identity policies into Cedar, and the Cedar-side requests.
//!
//! The translation is mechanical, one Cedar policy per IAM statement, so that it can be read next to the
//! IAM documents (`--dump-cedar` writes it out):
//!
//! - `Effect: Allow` becomes `permit`, `Effect: Deny` becomes `forbid` (Cedar's forbid-overrides-permit and
//!   default deny are IAM's explicit deny and implicit deny).
//! - The statement is attached to the principal, so the scope says `principal == User::"bench"`.
//! - Actions are `Action` entities named by the lower-cased IAM action (IAM action names are case-insensitive,
//!   Cedar ids are not, so both sides are canonicalised to lower case). A wildcard action pattern such as
//!   `s3:*Object*` becomes an action group `Action::"s3:*object*"`; every concrete action in the entity store
//!   is made a member of each group whose pattern matches it. `Action` lists become `action in [...]`;
//!   `NotAction` becomes an unconstrained scope plus `unless { action in [...] }`.
//! - Resources are `Resource` entities whose id and `arn` attribute are the ARN; an ARN pattern becomes
//!   `resource.arn like "..."` (IAM's `*` and Cedar's `*` both match any run of characters), `Resource: "*"`
//!   leaves the scope open.
//! - Conditions become one `when` clause on `context`, keyed by the lower-cased condition key (IAM keys are
//!   case-insensitive). Every access is guarded by `has`, because a Cedar evaluation error makes the policy
//!   not apply, which would silently disable a `forbid`. Missing keys follow IAM: false for positive
//!   operators, true for negated operators and `...IfExists`.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use cedar_policy::{Context, Entities, EntityUid, Policy, PolicyId, PolicySet, Request};
use serde_json::{Value, json};

use crate::set::{BenchSet, SetRequest};

/// The translated policy set and what went into it.
pub struct Translation {
    /// One `(id, Cedar text)` per IAM statement, id `<policy name>.<Sid>`.
    pub policies: Vec<(String, String)>,
    /// Lower-cased wildcard action patterns, each an action group.
    pub groups: BTreeSet<String>,
    /// Lower-cased literal actions named by the policies.
    pub literal_actions: BTreeSet<String>,
    /// Statements that could not be translated faithfully, with the reason.
    pub unfaithful: Vec<String>,
    /// Per policy (same order as `policies`): the lower-cased service prefixes its action scope can match,
    /// `None` when it can match any service (`NotAction`, `Action: "*"`). Used to slice the policy set.
    pub services: Vec<Option<BTreeSet<String>>>,
}

impl Translation {
    /// All policies as one Cedar document.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (id, text) in &self.policies {
            out.push_str(&format!("// {id}\n{text}\n\n"));
        }
        out
    }

    /// Parses the policies into a Cedar policy set with the statement ids as policy ids.
    pub fn policy_set(&self) -> Result<PolicySet, String> {
        let mut set = PolicySet::new();
        for (id, text) in &self.policies {
            let policy = Policy::parse(Some(PolicyId::new(id)), text).map_err(|e| format!("{id}: {e}\n{text}"))?;
            set.add(policy).map_err(|e| format!("{id}: {e}"))?;
        }
        Ok(set)
    }

    /// The policies that can apply to an action of service `prefix` (lower case): Cedar's authorizer
    /// evaluates every policy it is given, so a caller that indexes policies by service, as Citadel does
    /// internally, hands it only this slice.
    pub fn slice(&self, prefix: &str) -> Result<PolicySet, String> {
        let mut set = PolicySet::new();
        for ((id, text), services) in self.policies.iter().zip(&self.services) {
            if services.as_ref().is_none_or(|s| s.contains(prefix)) {
                let policy = Policy::parse(Some(PolicyId::new(id)), text).map_err(|e| format!("{id}: {e}"))?;
                set.add(policy).map_err(|e| format!("{id}: {e}"))?;
            }
        }
        Ok(set)
    }
}

/// The service prefixes a statement's `Action` can match; `None` for any service.
fn statement_services(statement: &Value) -> Option<BTreeSet<String>> {
    let actions = strings(statement.get("Action")?);
    let mut out = BTreeSet::new();
    for action in actions {
        let (prefix, _) = action.split_once(':')?;
        if prefix.contains('*') || prefix.contains('?') {
            return None;
        }
        out.insert(prefix.to_ascii_lowercase());
    }
    Some(out)
}

/// A Cedar string literal.
fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Cedar `like` pattern for an IAM glob. Cedar has no single-character wildcard, so `?` is refused.
fn like_pattern(glob: &str) -> Result<String, String> {
    if glob.contains('?') {
        return Err(format!("`?` in {glob:?} has no Cedar `like` equivalent"));
    }
    Ok(literal(glob))
}

/// Whether IAM glob `pattern` (`*` any run, `?` one character) matches `text`.
pub fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

/// `action in [...]` members for a list of IAM action patterns, recording groups and literals.
fn action_members(
    patterns: &[String],
    groups: &mut BTreeSet<String>,
    literals: &mut BTreeSet<String>,
) -> Option<String> {
    let mut members = Vec::new();
    for pattern in patterns {
        let lower = pattern.to_ascii_lowercase();
        if lower == "*" {
            return None;
        }
        if lower.contains('*') || lower.contains('?') {
            groups.insert(lower.clone());
        } else {
            literals.insert(lower.clone());
        }
        members.push(format!("Action::{}", literal(&lower)));
    }
    Some(format!("[{}]", members.join(", ")))
}

/// One condition operator applied to one key, as a Cedar boolean expression.
fn condition(operator: &str, key: &str, values: &[String]) -> Result<String, String> {
    let op = operator.to_ascii_lowercase();
    let (op, if_exists) = match op.strip_suffix("ifexists") {
        Some(base) => (base.to_owned(), true),
        None => (op, false),
    };
    let key = key.to_ascii_lowercase();
    let field = format!("context[{}]", literal(&key));
    let has = format!("context has {}", literal(&key));
    let any = |f: &dyn Fn(&str) -> Result<String, String>| -> Result<String, String> {
        let parts = values.iter().map(|v| f(v)).collect::<Result<Vec<_>, _>>()?;
        Ok(format!("({})", parts.join(" || ")))
    };
    let all = |f: &dyn Fn(&str) -> Result<String, String>| -> Result<String, String> {
        let parts = values.iter().map(|v| f(v)).collect::<Result<Vec<_>, _>>()?;
        Ok(format!("({})", parts.join(" && ")))
    };
    // (test when present, negated operator) per IAM operator.
    let (test, negated) = match op.as_str() {
        "stringequals" => (any(&|v| Ok(format!("{field} == {}", literal(v))))?, false),
        "stringnotequals" => (all(&|v| Ok(format!("{field} != {}", literal(v))))?, true),
        "stringlike" => (any(&|v| Ok(format!("{field} like {}", like_pattern(v)?)))?, false),
        "stringnotlike" => (all(&|v| Ok(format!("!({field} like {})", like_pattern(v)?)))?, true),
        // Request values are canonical lower-case `true`/`false`, so string equality is IAM's Bool here.
        "bool" => (
            any(&|v| Ok(format!("{field} == {}", literal(&v.to_ascii_lowercase()))))?,
            false,
        ),
        other => return Err(format!("condition operator {other} is not translated")),
    };
    Ok(if negated || if_exists {
        format!("(!({has}) || {test})")
    } else {
        format!("({has} && {test})")
    })
}

/// Translates one statement of policy `policy` into Cedar.
fn statement(
    statement: &Value,
    groups: &mut BTreeSet<String>,
    literals: &mut BTreeSet<String>,
) -> Result<String, String> {
    let effect = match statement["Effect"].as_str() {
        Some("Allow") => "permit",
        Some("Deny") => "forbid",
        other => return Err(format!("effect {other:?}")),
    };
    if statement.get("NotResource").is_some() || statement.get("Principal").is_some() {
        return Err("NotResource/Principal are not translated".into());
    }
    let mut clauses = Vec::new();
    let action_scope = if let Some(actions) = statement.get("Action") {
        match action_members(&strings(actions), groups, literals) {
            Some(members) => format!("action in {members}"),
            None => "action".to_owned(),
        }
    } else if let Some(not_actions) = statement.get("NotAction") {
        if let Some(members) = action_members(&strings(not_actions), groups, literals) {
            clauses.push(format!("unless {{ action in {members} }}"));
        } else {
            // NotAction "*" matches no action: the statement can never apply.
            clauses.push("when { false }".to_owned());
        }
        "action".to_owned()
    } else {
        return Err("statement has neither Action nor NotAction".into());
    };
    let resources = strings(&statement["Resource"]);
    if !resources.iter().any(|r| r == "*") {
        let tests = resources
            .iter()
            .map(|r| Ok(format!("resource.arn like {}", like_pattern(r)?)))
            .collect::<Result<Vec<_>, String>>()?;
        clauses.push(format!("when {{ resource has arn && ({}) }}", tests.join(" || ")));
    }
    if let Some(block) = statement.get("Condition").and_then(Value::as_object) {
        let mut tests = Vec::new();
        for (operator, keys) in block {
            for (key, values) in keys.as_object().ok_or("condition block is not an object")? {
                tests.push(condition(operator, key, &strings(values))?);
            }
        }
        if !tests.is_empty() {
            clauses.push(format!("when {{ {} }}", tests.join(" && ")));
        }
    }
    let mut text = format!("{effect} (\n  principal == User::\"bench\",\n  {action_scope},\n  resource\n)");
    for clause in clauses {
        text.push('\n');
        text.push_str(&clause);
    }
    text.push(';');
    Ok(text)
}

/// Translates every statement of the set.
pub fn translate(set: &BenchSet) -> Result<Translation, String> {
    let mut translation = Translation {
        policies: Vec::new(),
        groups: BTreeSet::new(),
        literal_actions: BTreeSet::new(),
        unfaithful: Vec::new(),
        services: Vec::new(),
    };
    for policy in &set.policies {
        let statements = match &policy.document["Statement"] {
            Value::Array(items) => items.clone(),
            single => vec![single.clone()],
        };
        for (index, st) in statements.iter().enumerate() {
            let sid = st["Sid"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("#{index}"));
            let id = format!("{}.{sid}", policy.name);
            match statement(st, &mut translation.groups, &mut translation.literal_actions) {
                Ok(text) => {
                    translation.policies.push((id, text));
                    translation.services.push(statement_services(st));
                }
                Err(reason) => translation.unfaithful.push(format!("{id}: {reason}")),
            }
        }
    }
    Ok(translation)
}

fn uid(kind: &str, id: &str) -> Value {
    json!({"type": kind, "id": id})
}

/// The entity store: the principal, every action (requested or named) with its group memberships,
/// the action groups, and one `Resource` entity with an `arn` attribute per requested resource.
pub fn entities(translation: &Translation, requests: &[&str], resources: &[&str]) -> Result<Entities, String> {
    let mut actions: BTreeSet<String> = translation.literal_actions.clone();
    actions.extend(requests.iter().map(|a| a.to_ascii_lowercase()));
    let mut list = vec![json!({"uid": uid("User", "bench"), "attrs": {}, "parents": []})];
    for group in &translation.groups {
        list.push(json!({"uid": uid("Action", group), "attrs": {}, "parents": []}));
    }
    for action in &actions {
        let parents: Vec<Value> = translation
            .groups
            .iter()
            .filter(|g| glob_matches(g.as_bytes(), action.as_bytes()))
            .map(|g| uid("Action", g))
            .collect();
        list.push(json!({"uid": uid("Action", action), "attrs": {}, "parents": parents}));
    }
    let unique: BTreeMap<&str, ()> = resources.iter().map(|r| (*r, ())).collect();
    for arn in unique.keys() {
        list.push(json!({"uid": uid("Resource", arn), "attrs": {"arn": arn}, "parents": []}));
    }
    Entities::from_json_value(Value::Array(list), None).map_err(|e| format!("entities: {e}"))
}

/// The Cedar request for one bench request: lower-cased action and context keys.
pub fn request(r: &SetRequest) -> Result<Request, String> {
    let principal = EntityUid::from_str(r#"User::"bench""#).map_err(|e| e.to_string())?;
    let action = EntityUid::from_json(uid("Action", &r.action.to_ascii_lowercase())).map_err(|e| e.to_string())?;
    let resource = EntityUid::from_json(uid("Resource", &r.resource)).map_err(|e| e.to_string())?;
    let context: serde_json::Map<String, Value> = r
        .context
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone())))
        .collect();
    let context = Context::from_json_value(Value::Object(context), None).map_err(|e| e.to_string())?;
    Request::new(principal, action, resource, context, None).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn globs() {
        for (pattern, text, expected) in [
            ("s3:*object*", "s3:getobject", true),
            ("s3:*object*", "s3:listbucket", false),
            ("kms:generatedatakey*", "kms:generatedatakey", true),
            ("iam:*policy*", "iam:attachuserpolicy", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
        ] {
            assert_eq!(
                glob_matches(pattern.as_bytes(), text.as_bytes()),
                expected,
                "{pattern} {text}"
            );
        }
    }
}
