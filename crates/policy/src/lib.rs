//! citadel-policy: the pure IAM policy engine.
//!
//! Every Allow and Deny in Citadel comes from this crate.
//! It parses and validates policy documents the way IAM does, compiles them into a form that is
//! cheap to evaluate, and evaluates requests with AWS's current evaluation logic.
//! It does no I/O, has no async code and depends on no other Citadel crate, so it can be tested
//! exhaustively and reused by every service and by the `citadel policy eval` tool.
//!
//! # Design
//!
//! - **Parse once, evaluate many times.** [`Policy::parse`] validates against the rules of a
//!   [`PolicyKind`] (identity, resource-based, trust) and compiles in the same pass: actions are
//!   lower-cased and indexed by service prefix, ARN patterns are split into their six parts with
//!   literal/prefix/suffix fast paths instead of general globs, condition keys are lower-cased and
//!   condition values are parsed into numbers, dates, CIDRs and bytes.
//!   Evaluation therefore only lower-cases the action, splits the resource ARN once, and parses the
//!   request's condition values.
//! - **Borrowed inputs, borrowed outputs.** [`Request`], [`PolicySet`] and [`Decision`] borrow; the
//!   decision names statements by policy id, index and Sid without allocating in the common case.
//! - **One scan, then the rules.** [`evaluate`] scans each applicable policy exactly once, recording
//!   whether it has a matching Deny, how strongly its matching Allow statements name the caller
//!   ([`PrincipalMatch`]), and which condition keys were missing; the AWS decision procedure then runs
//!   over those summaries (explicit deny, SCP levels, resource policy, identity, boundary, session).
//! - **Literal substitutions.** Policy variables resolve into glob tokens where substituted text is
//!   always literal, so a `*` in a user name can never widen a grant.
//! - **No panics on input.** Every parser returns a typed [`PolicyError`] whose message is IAM's.
//!
//! # Evaluation rules
//!
//! 1. A matching Deny in any applicable policy (identity, resource, boundary, session, SCP) is an explicit deny.
//! 2. Every SCP level must allow.
//! 3. A same-account resource policy Allow naming the caller itself (user, session, federated user)
//!    allows on its own; naming the role of a role session replaces the identity-policy allow
//!    (boundary and session policies still apply); naming only the account is delegation.
//!    Key policies and trust policies must always allow (directly or by delegation), and across
//!    accounts both the resource policy and the identity policies must allow.
//! 4. Otherwise identity policies must allow (or the root user's implicit allow applies on its own account).
//! 5. A permissions boundary, if present, must allow.
//! 6. A role or federated session with session policies needs one of them to allow; a federated
//!    user without session policies is denied.
//!
//! # Example
//!
//! ```
//! use citadel_policy::*;
//!
//! let policy = Policy::parse(
//!     r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:Get*","Resource":"arn:aws:s3:::b/${aws:username}/*"}}"#,
//!     PolicyKind::Identity,
//! ).unwrap();
//! let mut context = Context::new();
//! context.insert("aws:username", "bob");
//! let principal = Principal::new("arn:aws:iam::123456789012:user/bob", "123456789012", PrincipalKind::User);
//! let request = Request {
//!     principal,
//!     action: "s3:GetObject",
//!     resource: Some("arn:aws:s3:::b/bob/notes.txt"),
//!     resource_account: None,
//!     context: &context,
//! };
//! let set = PolicySet { identity: vec![PolicyRef { id: "p", policy: &policy }], ..PolicySet::default() };
//! assert_eq!(evaluate(&request, &set).outcome, Outcome::Allowed);
//! ```

#![deny(missing_docs)]
// Library code must not panic on input; unit tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

mod arn;
mod cli;
mod compiled;
mod condition;
mod context;
mod error;
mod eval;
mod glob;
mod keys;
mod policy;
mod prefixes;
mod principal;
mod template;
mod validate;

pub use cli::{EvalInput, EvalInputError, evaluate_texts};
pub use compiled::{CompiledSet, DEFAULT_CACHE_CAPACITY, SetSpec, TIME_KEYS};
pub use context::{Context, ContextValues};
pub use error::PolicyError;
pub use eval::{
    Decision, MatchedStatement, MessageStyle, Outcome, OwnedDecision, PolicyRef, PolicySet, PolicyType, Request,
    ResourcePolicy, ResourcePolicyKind, evaluate,
};
pub use policy::{Effect, Policy, PolicyKind, Statement, Version, limits, size_without_whitespace};
pub use principal::{OwnedPrincipal, Principal, PrincipalKind, PrincipalMatch};
pub use validate::{Finding, Severity, validate};
