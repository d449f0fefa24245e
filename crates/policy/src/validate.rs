//! Policy validation findings in the spirit of IAM Access Analyzer's `ValidatePolicy`.
//!
//! Parse errors become `ERROR` findings; on a policy that parses, a few structural checks run:
//! unknown service prefixes, redundant statements and actions, overly broad grants, `NotAction`
//! or `NotResource` with `Allow`, `iam:PassRole` on `*`, and a missing `Version`.
//! Redundancy uses a conservative containment test, so it may miss redundancy but never reports a
//! statement that is not actually covered by another.

use crate::glob::Glob;
use crate::policy::{Effect, Policy, PolicyKind, Statement, Version};
use crate::prefixes::KNOWN_SERVICE_PREFIXES;

/// A finding's severity, named as Access Analyzer names its finding types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The policy is invalid (IAM would reject it).
    Error,
    /// The policy grants more than it probably should.
    SecurityWarning,
    /// The policy works but is probably not what was meant.
    Warning,
    /// The policy could be simpler.
    Suggestion,
}

impl Severity {
    /// Access Analyzer's word: `ERROR`, `SECURITY_WARNING`, `WARNING`, `SUGGESTION`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::SecurityWarning => "SECURITY_WARNING",
            Severity::Warning => "WARNING",
            Severity::Suggestion => "SUGGESTION",
        }
    }
}

/// One validation finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// A stable upper-case code (`UNKNOWN_SERVICE_PREFIX`, `REDUNDANT_STATEMENT`, ...).
    pub code: &'static str,
    /// A sentence describing the problem.
    pub message: String,
    /// The statement the finding is about, if any.
    pub statement_index: Option<usize>,
    /// That statement's `Sid`.
    pub sid: Option<String>,
}

/// Validates `text` as a policy of `kind`.
pub fn validate(text: &str, kind: PolicyKind) -> Vec<Finding> {
    let policy = match Policy::parse(text, kind) {
        Ok(policy) => policy,
        Err(error) => {
            return vec![Finding {
                severity: Severity::Error,
                code: "MALFORMED_POLICY",
                message: error.to_string(),
                statement_index: None,
                sid: None,
            }];
        }
    };
    let mut findings = Vec::new();
    if policy.version() == Version::V2008_10_17 {
        findings.push(Finding {
            severity: Severity::Warning,
            code: if text.contains("\"Version\"") {
                "OLD_VERSION"
            } else {
                "MISSING_VERSION"
            },
            message: "Use Version 2012-10-17; with the 2008-10-17 language policy variables are literal text.".into(),
            statement_index: None,
            sid: None,
        });
    }
    let statements = policy.statements();
    for (index, statement) in statements.iter().enumerate() {
        let mut push = |severity, code, message: String| {
            findings.push(Finding {
                severity,
                code,
                message,
                statement_index: Some(index),
                sid: statement.sid().map(str::to_owned),
            })
        };
        let mut seen = Vec::new();
        for action in statement.actions() {
            let lower = action.to_ascii_lowercase();
            if seen.contains(&lower) {
                push(
                    Severity::Suggestion,
                    "REDUNDANT_ACTION",
                    format!("The action {action} is listed more than once."),
                );
            }
            if let Some((service, _)) = lower.split_once(':')
                && !service.contains(['*', '?'])
                && KNOWN_SERVICE_PREFIXES.binary_search(&service).is_err()
            {
                push(
                    Severity::Error,
                    "UNKNOWN_SERVICE_PREFIX",
                    format!("The service prefix {service} in {action} is not recognised."),
                );
            }
            seen.push(lower);
        }
        let allow = statement.effect() == Effect::Allow;
        let star_action = !statement.uses_not_action() && statement.actions().any(|a| a == "*" || a == "*:*");
        let star_resource = statement
            .resources
            .as_ref()
            .is_some_and(|r| !r.negated && r.raw.iter().any(|x| &**x == "*"));
        if allow && star_action && (star_resource || kind == PolicyKind::Trust) {
            push(
                Severity::SecurityWarning,
                "OVERLY_BROAD_WILDCARD",
                "This statement allows every action on every resource.".into(),
            );
        }
        if allow && statement.uses_not_action() {
            push(
                Severity::SecurityWarning,
                "ALLOW_WITH_NOT_ACTION",
                "Allow with NotAction grants every action not listed, including actions of services added later."
                    .into(),
            );
        }
        if allow && statement.resources.as_ref().is_some_and(|r| r.negated) {
            push(
                Severity::SecurityWarning,
                "ALLOW_WITH_NOT_RESOURCE",
                "Allow with NotResource grants access to every resource not listed.".into(),
            );
        }
        if allow
            && star_resource
            && !statement.uses_not_action()
            && statement.actions().any(|a| {
                let lower = a.to_ascii_lowercase();
                lower.starts_with("iam:") && Glob::new(&lower).matches(b"iam:passrole")
            })
            && statement.conditions.is_empty()
        {
            push(
                Severity::SecurityWarning,
                "PASS_ROLE_WITH_STAR_IN_RESOURCE",
                "iam:PassRole with Resource \"*\" lets the caller pass any role to any service.".into(),
            );
        }
        if let Some(covering) = statements.iter().enumerate().find(|&(other_index, other)| {
            other_index != index && covers(other, statement) && (!covers(statement, other) || other_index < index)
        }) {
            push(
                Severity::Suggestion,
                "REDUNDANT_STATEMENT",
                format!("Statement {index} is already covered by statement {}.", covering.0),
            );
        }
    }
    findings
}

/// Whether `outer` matches everything `inner` matches (conservatively).
fn covers(outer: &Statement, inner: &Statement) -> bool {
    if outer.effect != inner.effect
        || outer.actions.negated
        || inner.actions.negated
        || outer.principal != inner.principal
        || outer.conditions != inner.conditions
    {
        return false;
    }
    let actions_covered = inner.actions.raw.iter().all(|i| {
        outer
            .actions
            .raw
            .iter()
            .any(|o| pattern_covers(&o.to_ascii_lowercase(), &i.to_ascii_lowercase()))
    });
    let resources_covered = match (&outer.resources, &inner.resources) {
        (None, None) => true,
        (Some(o), Some(i)) if !o.negated && !i.negated => {
            i.raw.iter().all(|ir| o.raw.iter().any(|or| pattern_covers(or, ir)))
        }
        _ => false,
    };
    actions_covered && resources_covered
}

/// Whether glob `outer` matches every string glob `inner` matches (sound, not complete).
fn pattern_covers(outer: &str, inner: &str) -> bool {
    if outer == inner || outer == "*" {
        return true;
    }
    if !inner.contains(['*', '?']) {
        return Glob::new(outer).matches(inner.as_bytes());
    }
    match outer.strip_suffix('*') {
        Some(prefix) if !prefix.contains(['*', '?']) => inner.starts_with(prefix),
        _ => false,
    }
}
