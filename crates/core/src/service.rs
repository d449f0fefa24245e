//! The contract between the pipeline and a service.

use crate::context::RequestContext;
use crate::registry::{OperationSpec, ServiceSpec};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::Value;
use std::sync::Arc;

/// One permission the request needs: an action on a resource, maybe governed by a resource policy.
#[derive(Debug, Clone)]
pub struct Check {
    /// The IAM action, e.g. `iam:CreateUser`.
    pub action: String,
    /// The resource ARN, or `*` for actions without a resource.
    pub resource: String,
    /// The account that owns the resource (for cross-account rules); `None` means the caller's account.
    pub resource_account: Option<String>,
    /// The resource's policy (bucket policy, key policy, role trust policy), as JSON text.
    pub resource_policy: Option<Arc<str>>,
    /// What kind of resource policy it is.
    pub resource_policy_kind: ResourcePolicyKind,
    /// Tags on the resource (`aws:ResourceTag/<k>`).
    pub resource_tags: Vec<(String, String)>,
}

impl Check {
    /// A check of `action` on `resource` in the caller's account, without resource policy.
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            resource: resource.into(),
            resource_account: None,
            resource_policy: None,
            resource_policy_kind: ResourcePolicyKind::Generic,
            resource_tags: Vec::new(),
        }
    }
}

/// The kind of resource policy, because key policies and trust policies have their own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourcePolicyKind {
    /// A bucket policy or any other resource policy.
    Generic,
    /// A KMS key policy: IAM policies count only if it delegates to the account.
    KeyPolicy,
    /// A role trust policy.
    TrustPolicy,
}

/// What a request needs to be allowed.
#[derive(Debug, Clone, Default)]
pub struct Authorization {
    /// Every check must be allowed.
    pub checks: Vec<Check>,
    /// Request-specific condition keys (`aws:RequestTag/k`, `kms:EncryptionContext:k`, ...), values as strings.
    pub context: Vec<(String, Vec<String>)>,
    /// True for the few operations that need no permission at all (`sts:GetCallerIdentity`).
    pub always_allowed: bool,
}

/// The proof that a call was authorized; only the pipeline can make one.
#[derive(Debug)]
pub struct Authorized {
    pub(crate) _private: (),
}

#[cfg(any(test, feature = "test-util"))]
impl Authorized {
    /// A proof for unit tests of handlers that bypass the pipeline on purpose.
    pub fn for_tests() -> Self {
        Self { _private: () }
    }
}

/// A decoded call to a service.
#[derive(Debug)]
pub struct Call {
    /// The request's context.
    pub ctx: RequestContext,
    /// The operation being called.
    pub op: &'static OperationSpec,
    /// The input, shaped like the operation's input shape in botocore's model.
    pub input: Value,
}

/// Resources a call touched, for CloudTrail's `resources` field.
#[derive(Debug, Clone)]
pub struct AuditResource {
    /// The resource ARN.
    pub arn: String,
    /// The owning account.
    pub account_id: String,
    /// The CloudFormation-style type, e.g. `AWS::IAM::User`.
    pub resource_type: &'static str,
}

/// What an executed call produced.
#[derive(Debug, Default)]
pub struct Effect {
    /// The output, shaped like the operation's output shape.
    pub output: Value,
    /// The state changes; the pipeline commits them together with the audit event, atomically.
    pub batch: WriteBatch,
    /// Resources for the audit record.
    pub resources: Vec<AuditResource>,
}

impl Effect {
    /// An effect with output and no state change.
    pub fn read(output: Value) -> Self {
        Self {
            output,
            ..Default::default()
        }
    }

    /// An effect with output and state changes.
    pub fn write(output: Value, batch: WriteBatch) -> Self {
        Self {
            output,
            batch,
            resources: Vec::new(),
        }
    }
}

/// A service that the pipeline dispatches to.
///
/// The pipeline calls [`Service::authorize`] first, evaluates the checks with the policy engine,
/// and only then calls [`Service::execute`] with the proof. When the returned batch conflicts with a
/// concurrent change, the pipeline calls `execute` again, so handlers must compute their effect
/// from what they read, not mutate anything themselves.
#[async_trait::async_trait]
pub trait Service: Send + Sync + 'static {
    /// The service's static description.
    fn spec(&self) -> &'static ServiceSpec;

    /// The permissions `call` needs. The default fills the operation's resource template.
    async fn authorize(&self, call: &Call) -> Result<Authorization, AwsError> {
        Ok(Authorization {
            checks: vec![default_check(call)],
            ..Default::default()
        })
    }

    /// Runs an authorized call.
    async fn execute(&self, call: &Call, proof: &Authorized) -> Result<Effect, AwsError>;
}

/// The check an operation's registry entry describes.
pub fn default_check(call: &Call) -> Check {
    let resource = crate::registry::fill_template(
        call.op.resource,
        "aws",
        &call.ctx.region,
        call.ctx.account_id(),
        &call.input,
    )
    .unwrap_or_else(|| "*".to_string());
    Check::new(call.op.action, resource)
}
