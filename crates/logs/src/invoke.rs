//! The in-process path into Logs for other Citadel services, with the same policy decision as the
//! pipeline but without HTTP, signatures or an audit record.
//!
//! CloudTrail delivers every record of a trail with a CloudWatch Logs group as a log event, acting as
//! a session of the role the trail names. Going through the HTTP pipeline would need signed requests
//! with minted credentials, and would record a CloudTrail event for each `PutLogEvents`, which the
//! trail would then deliver again, forever. On AWS these calls are data events that a trail does not
//! record by default, so this path records nothing.
//!
//! The architecture invariant still holds: a handler runs only after [`Authorizer::authorize`]
//! allowed the call's checks for the given principal, exactly as the pipeline would have asked them
//! (the operation's registry check, and the principal's identity, boundary and session policies).

use crate::Logs;
use crate::error::internal;
use crate::spec::LOGS_SPEC;
use citadel_core::authz::Authorizer;
use citadel_core::{Call, RequestContext, Service};
use citadel_store::CommitError;
use citadel_wire::AwsError;
use serde_json::Value;

/// How often a call is run again when its batch meets a concurrent change.
const MAX_ATTEMPTS: usize = 8;

impl Logs {
    /// Runs the Logs operation `op` with `input` for the principal and time of `ctx`, after
    /// `authorizer` allowed it, and commits its changes; returns the operation's output.
    ///
    /// `ctx.service` and `ctx.operation` are set from the operation, so callers need not fill them.
    ///
    /// # Errors
    /// `AccessDeniedException` when the policies deny the call, the operation's own errors, and
    /// `InternalFailure` when the store fails.
    pub async fn invoke_as(
        &self,
        authorizer: &Authorizer,
        mut ctx: RequestContext,
        op: &str,
        input: Value,
    ) -> Result<Value, AwsError> {
        let spec = LOGS_SPEC.operation(op).ok_or_else(|| {
            AwsError::new(
                "UnknownOperationException",
                400,
                format!("Citadel does not implement the operation {op} yet."),
            )
        })?;
        ctx.service = LOGS_SPEC.signing_name;
        ctx.operation = spec.name;
        let call = Call { ctx, op: spec, input };
        let authorization = self.authorize(&call).await?;
        authorizer
            .authorize(&call.ctx, &authorization, false)
            .await
            .map_err(|denial| AwsError::new("AccessDeniedException", 400, denial.message))?;
        for _attempt in 0..MAX_ATTEMPTS {
            let effect = self.dispatch(&call).await?;
            if effect.batch.is_empty() {
                return Ok(effect.output);
            }
            match self.store.commit(effect.batch).await {
                Ok(()) => return Ok(effect.output),
                Err(CommitError::Conflict { .. }) => continue,
                Err(err) => return Err(internal(err)),
            }
        }
        Err(AwsError::new(
            "OperationAbortedException",
            400,
            "Multiple concurrent requests to update the same resource were in conflict. Retry the request.",
        ))
    }
}
