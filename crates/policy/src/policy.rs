//! Parsing, validating and compiling policy documents.
//!
//! [`Policy::parse`] checks a document the way IAM does for the given [`PolicyKind`] and compiles it in
//! the same pass: actions are lower-cased and indexed by service prefix, ARN patterns are split into
//! their six parts, condition keys are lower-cased and condition values parsed into their types.
//! The original text and the statement Sids are kept for reporting.

use serde_json::{Map, Value};

use crate::arn::ArnPattern;
use crate::condition::{Clause, Operator};
use crate::error::PolicyError;
use crate::glob::Glob;
use crate::keys::{Interner, Key};
use crate::principal::PrincipalBlock;

/// Which rules a document is validated against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Identity-based policies, and also permissions boundaries, session policies and SCPs:
    /// no `Principal`, `Resource` required.
    Identity,
    /// Resource-based policies (bucket policy, key policy, ...): `Principal` and `Resource` required.
    ResourceBased,
    /// Role trust policies: `Principal` required, `Resource` prohibited.
    Trust,
}

/// The policy language version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `2008-10-17`, also used when `Version` is absent: `${...}` is literal text.
    V2008_10_17,
    /// `2012-10-17`: policy variables are substituted.
    V2012_10_17,
}

/// A statement's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// `"Effect": "Allow"`.
    Allow,
    /// `"Effect": "Deny"`.
    Deny,
}

/// A compiled `Action`/`NotAction` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActionBlock {
    pub(crate) negated: bool,
    /// Lower-cased globs over the whole `service:name`.
    pub(crate) patterns: Vec<Glob>,
    /// The strings as written.
    pub(crate) raw: Vec<Box<str>>,
}

impl ActionBlock {
    /// Whether the block matches an already lower-cased action.
    pub(crate) fn matches(&self, action_lower: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(action_lower.as_bytes())) != self.negated
    }
}

/// A compiled `Resource`/`NotResource` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceBlock {
    pub(crate) negated: bool,
    pub(crate) patterns: Vec<ArnPattern>,
    /// The strings as written.
    pub(crate) raw: Vec<Box<str>>,
}

/// One compiled statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub(crate) sid: Option<Box<str>>,
    pub(crate) effect: Effect,
    pub(crate) principal: Option<PrincipalBlock>,
    pub(crate) actions: ActionBlock,
    pub(crate) resources: Option<ResourceBlock>,
    pub(crate) conditions: Vec<Clause>,
    /// Every key the conditions read (clause keys and variables in their values), interned, each
    /// once, in the order evaluation meets them: what missing-key reporting walks for a statement
    /// whose action matched but whose resource or principal did not.
    pub(crate) condition_keys: Box<[Key]>,
}

impl Statement {
    /// The statement's `Sid`, if any.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// The statement's effect.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// Whether the statement uses `NotAction`.
    pub fn uses_not_action(&self) -> bool {
        self.actions.negated
    }

    /// The `Action`/`NotAction` strings as written.
    pub fn actions(&self) -> impl Iterator<Item = &str> {
        self.actions.raw.iter().map(|a| &**a)
    }

    /// The `Resource`/`NotResource` strings as written (empty for trust policies).
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.resources.iter().flat_map(|r| r.raw.iter().map(|a| &**a))
    }

    /// The lower-cased condition keys (and variable keys in condition values) the statement reads.
    pub fn condition_keys(&self) -> impl Iterator<Item = &str> {
        self.conditions.iter().flat_map(|c| c.keys())
    }
}

/// A parsed and compiled policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    text: Box<str>,
    kind: PolicyKind,
    version: Version,
    id: Option<Box<str>>,
    pub(crate) statements: Vec<Statement>,
    /// Statement indexes by literal service prefix (sorted by prefix), for statements whose actions all name one.
    pub(crate) by_service: Vec<(Box<str>, Vec<u32>)>,
    /// Statements that any action may match (`NotAction`, wildcard service prefixes, `*`).
    pub(crate) always: Vec<u32>,
    /// The lower-cased context keys the policy reads (condition keys, variables), by interned id.
    pub(crate) keys: Box<[Box<str>]>,
}

const STATEMENT_ELEMENTS: &[&str] = &[
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

impl Policy {
    /// Parses, validates and compiles `text` under the rules of `kind`.
    ///
    /// # Errors
    ///
    /// Returns the [`PolicyError`] whose message IAM would give for the first problem found.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        if text.is_empty()
            || !text
                .chars()
                .all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FF}'))
        {
            return Err(PolicyError::InvalidCharacters);
        }
        let document: Value = serde_json::from_str(text).map_err(|_| PolicyError::Syntax)?;
        let Value::Object(top) = document else {
            return Err(PolicyError::Syntax);
        };
        for key in top.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(PolicyError::UnknownElement { element: key.clone() });
            }
        }
        let version = match top.get("Version") {
            None => Version::V2008_10_17,
            Some(Value::String(v)) if v == "2012-10-17" => Version::V2012_10_17,
            Some(Value::String(v)) if v == "2008-10-17" => Version::V2008_10_17,
            Some(other) => {
                return Err(PolicyError::InvalidVersion {
                    version: other.as_str().unwrap_or_default().to_owned(),
                });
            }
        };
        let id = match top.get("Id") {
            None => None,
            Some(Value::String(id)) => Some(id.clone().into_boxed_str()),
            Some(_) => return Err(PolicyError::Syntax),
        };
        let raw_statements: Vec<&Map<String, Value>> = match top.get("Statement") {
            Some(Value::Object(one)) => vec![one],
            Some(Value::Array(many)) if !many.is_empty() => many
                .iter()
                .map(|s| s.as_object().ok_or(PolicyError::Syntax))
                .collect::<Result<_, _>>()?,
            _ => return Err(PolicyError::Syntax),
        };
        let variables = version == Version::V2012_10_17;
        let mut statements = raw_statements
            .into_iter()
            .map(|raw| parse_statement(raw, kind, variables))
            .collect::<Result<Vec<_>, _>>()?;
        let (by_service, always) = build_index(&statements);
        let mut interner = Interner::default();
        for statement in &mut statements {
            if let Some(block) = &mut statement.resources {
                for pattern in &mut block.patterns {
                    pattern.intern(&mut interner);
                }
            }
            for clause in &mut statement.conditions {
                clause.intern(&mut interner);
            }
            let mut condition_keys: Vec<Key> = Vec::new();
            for key in statement.conditions.iter().flat_map(|c| c.interned_keys()) {
                if !condition_keys.iter().any(|k| k.lower == key.lower) {
                    condition_keys.push(key.clone());
                }
            }
            statement.condition_keys = condition_keys.into_boxed_slice();
        }
        Ok(Policy {
            text: text.into(),
            kind,
            version,
            id,
            statements,
            by_service,
            always,
            keys: interner.finish(),
        })
    }

    /// The original document text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether evaluating the policy can read context key `key` (any case): a condition key or a
    /// policy variable. A request context needs to hold only the keys its policies read.
    pub fn reads(&self, key: &str) -> bool {
        self.keys.iter().any(|k| crate::keys::eq_lower(k, key))
    }

    /// The lower-cased context keys the policy reads (condition keys and policy variables).
    pub fn referenced_keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| &**k)
    }

    /// The kind the document was validated as.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The language version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The document's `Id`, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// Calls `f` with the index of every statement whose action element may match `action_lower`
    /// (its service prefix is `service_lower`), in document order.
    #[inline]
    pub(crate) fn for_candidates(&self, service_lower: &str, mut f: impl FnMut(usize)) {
        // A policy names a handful of services: a linear scan with inline comparisons beats a
        // binary search whose every step calls `memcmp`.
        let indexed: &[u32] = self
            .by_service
            .iter()
            .find(|(prefix, _)| crate::keys::bytes_eq(prefix.as_bytes(), service_lower.as_bytes()))
            .map_or(&[], |(_, list)| &list[..]);
        // Merge the two sorted lists so statements are visited in document order.
        let (mut i, mut j) = (0, 0);
        loop {
            let next = match (indexed.get(i), self.always.get(j)) {
                (Some(&a), Some(&b)) if a < b => {
                    i += 1;
                    a
                }
                (Some(_), Some(&b)) => {
                    j += 1;
                    b
                }
                (Some(&a), None) => {
                    i += 1;
                    a
                }
                (None, Some(&b)) => {
                    j += 1;
                    b
                }
                (None, None) => break,
            };
            f(next as usize);
        }
    }
}

/// Statement indexes per literal service prefix, and the statements any action may match.
type ActionIndex = (Vec<(Box<str>, Vec<u32>)>, Vec<u32>);

fn build_index(statements: &[Statement]) -> ActionIndex {
    let mut by_service: Vec<(Box<str>, Vec<u32>)> = Vec::new();
    let mut always = Vec::new();
    for (index, statement) in statements.iter().enumerate() {
        let index = index as u32;
        let prefixes: Option<Vec<String>> = if statement.actions.negated {
            None
        } else {
            statement
                .actions
                .raw
                .iter()
                .map(|a| {
                    let lower = a.to_ascii_lowercase();
                    let (service, _) = lower.split_once(':')?;
                    (!service.contains(['*', '?'])).then(|| service.to_owned())
                })
                .collect()
        };
        match prefixes {
            None => always.push(index),
            Some(mut prefixes) => {
                prefixes.sort();
                prefixes.dedup();
                for prefix in prefixes {
                    match by_service.binary_search_by(|(p, _)| (**p).cmp(prefix.as_str())) {
                        Ok(position) => {
                            if let Some((_, list)) = by_service.get_mut(position) {
                                list.push(index);
                            }
                        }
                        Err(position) => by_service.insert(position, (prefix.into_boxed_str(), vec![index])),
                    }
                }
            }
        }
    }
    (by_service, always)
}

/// A string or a list of strings.
fn string_list(value: &Value) -> Result<Vec<&str>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(|i| i.as_str().ok_or(PolicyError::Syntax)).collect(),
        _ => Err(PolicyError::Syntax),
    }
}

/// Returns whichever of a pair is present, failing when both are.
fn one_of<'v>(
    raw: &'v Map<String, Value>,
    positive: &'static str,
    negative: &'static str,
) -> Result<Option<(&'v Value, bool)>, PolicyError> {
    match (raw.get(positive), raw.get(negative)) {
        (Some(_), Some(_)) => Err(PolicyError::ConflictingElements { element: positive }),
        (Some(v), None) => Ok(Some((v, false))),
        (None, Some(v)) => Ok(Some((v, true))),
        (None, None) => Ok(None),
    }
}

fn parse_statement(raw: &Map<String, Value>, kind: PolicyKind, variables: bool) -> Result<Statement, PolicyError> {
    if let Some(unknown) = raw.keys().find(|k| !STATEMENT_ELEMENTS.contains(&k.as_str())) {
        return Err(PolicyError::UnknownElement {
            element: unknown.clone(),
        });
    }
    let sid = match raw.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone().into_boxed_str()),
        Some(_) => return Err(PolicyError::Syntax),
    };
    let effect = match raw.get("Effect") {
        None => return Err(PolicyError::MissingEffect),
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(other) => {
            return Err(PolicyError::InvalidEffect {
                value: other.as_str().unwrap_or_default().to_owned(),
            });
        }
    };
    let actions = match one_of(raw, "Action", "NotAction")? {
        None => return Err(PolicyError::MissingAction),
        Some((value, negated)) => {
            let list = string_list(value)?;
            if list.is_empty() {
                return Err(PolicyError::MissingAction);
            }
            for action in &list {
                if *action != "*" && action.matches(':').count() != 1 {
                    return Err(PolicyError::InvalidAction {
                        action: (*action).to_owned(),
                    });
                }
            }
            ActionBlock {
                negated,
                patterns: list.iter().map(|a| Glob::new(&a.to_ascii_lowercase())).collect(),
                raw: list.iter().map(|a| Box::from(*a)).collect(),
            }
        }
    };
    let principal = match one_of(raw, "Principal", "NotPrincipal")? {
        None => None,
        Some((value, negated)) => Some(parse_principal(value, negated)?),
    };
    match kind {
        PolicyKind::Identity if principal.is_some() => return Err(PolicyError::PrincipalNotAllowed),
        PolicyKind::ResourceBased | PolicyKind::Trust if principal.is_none() => {
            return Err(PolicyError::MissingPrincipal);
        }
        PolicyKind::Trust if raw.contains_key("NotPrincipal") => {
            return Err(PolicyError::ProhibitedField { field: "NotPrincipal" });
        }
        _ => {}
    }
    let resources = match (one_of(raw, "Resource", "NotResource")?, kind) {
        (Some((_, negated)), PolicyKind::Trust) => {
            return Err(PolicyError::ProhibitedField {
                field: if negated { "NotResource" } else { "Resource" },
            });
        }
        (None, PolicyKind::Trust) => None,
        (None, PolicyKind::Identity) => return Err(PolicyError::MissingResource),
        (None, PolicyKind::ResourceBased) => return Err(PolicyError::MissingRequiredResource),
        (Some((value, negated)), _) => {
            let list = string_list(value)?;
            if list.is_empty() {
                return Err(match kind {
                    PolicyKind::Identity => PolicyError::MissingResource,
                    _ => PolicyError::MissingRequiredResource,
                });
            }
            if kind == PolicyKind::Identity
                && let Some(bad) = list.iter().find(|r| **r != "*" && !r.starts_with("arn:"))
            {
                return Err(PolicyError::ResourceNotArn {
                    resource: (*bad).to_owned(),
                });
            }
            Some(ResourceBlock {
                negated,
                patterns: list.iter().map(|r| ArnPattern::new(r, variables)).collect(),
                raw: list.iter().map(|r| Box::from(*r)).collect(),
            })
        }
    };
    let conditions = match raw.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(block)) => parse_conditions(block, variables)?,
        Some(_) => return Err(PolicyError::Syntax),
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        actions,
        resources,
        conditions,
        condition_keys: Box::default(),
    })
}

fn parse_principal(value: &Value, negated: bool) -> Result<PrincipalBlock, PolicyError> {
    let mut block = PrincipalBlock {
        negated,
        ..PrincipalBlock::default()
    };
    match value {
        Value::String(s) if s == "*" => block.any = true,
        Value::Object(map) => {
            for (principal_type, ids) in map {
                let ids = string_list(ids).map_err(|_| PolicyError::InvalidPrincipal {
                    detail: ids.to_string(),
                })?;
                for id in ids {
                    match principal_type.as_str() {
                        "AWS" => block.add_aws(id),
                        "Service" => block.services.push(id.into()),
                        "Federated" => block.federated.push(id.into()),
                        "CanonicalUser" => block.canonical.push(id.into()),
                        other => {
                            return Err(PolicyError::InvalidPrincipal {
                                detail: format!("\"{other}\":\"{id}\""),
                            });
                        }
                    }
                }
            }
        }
        other => {
            return Err(PolicyError::InvalidPrincipal {
                detail: other.to_string(),
            });
        }
    }
    Ok(block)
}

fn parse_conditions(block: &Map<String, Value>, variables: bool) -> Result<Vec<Clause>, PolicyError> {
    let mut clauses = Vec::new();
    for (operator_name, keys) in block {
        let operator = Operator::parse(operator_name).ok_or_else(|| PolicyError::UnknownConditionOperator {
            operator: operator_name.clone(),
        })?;
        let Value::Object(keys) = keys else {
            return Err(PolicyError::Syntax);
        };
        for (key, values) in keys {
            clauses.push(Clause::new(operator, key, values, variables)?);
        }
    }
    Ok(clauses)
}

/// The size IAM counts against policy quotas: characters excluding whitespace.
pub fn size_without_whitespace(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

/// IAM policy size quotas, in characters without whitespace.
pub mod limits {
    /// Managed policy document.
    pub const MANAGED: usize = 6144;
    /// Aggregate inline policies of a user.
    pub const INLINE_USER: usize = 2048;
    /// Aggregate inline policies of a group.
    pub const INLINE_GROUP: usize = 5120;
    /// Aggregate inline policies of a role.
    pub const INLINE_ROLE: usize = 10240;
    /// Role trust policy (default quota).
    pub const TRUST: usize = 2048;
}
