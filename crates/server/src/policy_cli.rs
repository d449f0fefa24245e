//! `citadel policy eval` and `citadel policy validate`: the policy engine for people, offline.
//!
//! Neither needs a server or a data directory: security engineers use them to answer
//! "does this policy allow that?" and "is this policy sound?" from files.

use crate::config::{PolicyCommand, PolicyEvalArgs, PolicyValidateArgs};
use anyhow::Context as _;
use citadel_policy as policy;
use std::path::PathBuf;

/// Runs a policy subcommand.
pub fn run(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Eval(args) => eval(args),
        PolicyCommand::Validate(args) => validate(args),
    }
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn eval(args: PolicyEvalArgs) -> anyhow::Result<()> {
    let identity: Vec<String> = args.policies.iter().map(read).collect::<Result<_, _>>()?;
    let boundary = args.boundary.as_ref().map(read).transpose()?;
    let session: Vec<String> = args.session_policies.iter().map(read).collect::<Result<_, _>>()?;
    let resource_policy = args.resource_policy.as_ref().map(read).transpose()?;
    let identity_refs: Vec<&str> = identity.iter().map(String::as_str).collect();
    let session_refs: Vec<&str> = session.iter().map(String::as_str).collect();
    let context_refs: Vec<&str> = args.context.iter().map(String::as_str).collect();
    let kind = if args.action.to_ascii_lowercase().starts_with("kms:") {
        policy::ResourcePolicyKind::KeyPolicy
    } else if args.action.to_ascii_lowercase().starts_with("sts:assumerole") {
        policy::ResourcePolicyKind::TrustPolicy
    } else {
        policy::ResourcePolicyKind::Generic
    };
    let input = policy::EvalInput {
        identity_policies: &identity_refs,
        permissions_boundary: boundary.as_deref(),
        session_policies: (!session_refs.is_empty()).then_some(session_refs.as_slice()),
        resource_policy: resource_policy.as_deref().map(|text| (text, kind)),
        principal_arn: &args.principal,
        principal_has_boundary: boundary.is_some(),
        action: &args.action,
        resource: (args.resource != "*").then_some(args.resource.as_str()),
        resource_account: args.resource_account.as_deref(),
        context: &context_refs,
        root_implicit_allow: true,
    };
    let decision = policy::evaluate_texts(&input).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", decision.outcome.as_str());
    for (policy_id, policy_type, index, sid, effect) in &decision.matched {
        let sid = sid.as_deref().map(|s| format!(" (Sid {s})")).unwrap_or_default();
        println!(
            "  {effect:?} by statement {index}{sid} of {policy_id} [{}]",
            policy_type.as_str()
        );
    }
    if let Some(message) = &decision.message {
        println!("  {message}");
    }
    if !decision.missing_context_keys.is_empty() {
        println!("  missing context values: {}", decision.missing_context_keys.join(", "));
    }
    Ok(())
}

fn validate(args: PolicyValidateArgs) -> anyhow::Result<()> {
    let text = read(&args.file)?;
    let kind = match args.kind.as_str() {
        "identity" => policy::PolicyKind::Identity,
        "resource" => policy::PolicyKind::ResourceBased,
        "trust" => policy::PolicyKind::Trust,
        other => anyhow::bail!("unknown policy kind {other}: use identity, resource or trust"),
    };
    let findings = policy::validate(&text, kind);
    if findings.is_empty() {
        println!("no findings");
    }
    let mut errors = 0;
    for finding in &findings {
        if matches!(finding.severity, policy::Severity::Error) {
            errors += 1;
        }
        let location = finding
            .statement_index
            .map(|i| format!(" statement {i}"))
            .unwrap_or_default();
        println!(
            "{}\t{}{location}\t{}",
            finding.severity.as_str(),
            finding.code,
            finding.message
        );
    }
    if errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}
