//! STS: who am I, and temporary credentials.
//!
//! This first cut serves `GetCallerIdentity`, which AWS answers for every authenticated caller
//! without any permission (even under an explicit deny).

use citadel_core::{Authorization, Authorized, Call, Effect, OperationSpec, Service, ServiceSpec};
use citadel_wire::{AwsError, Protocol};
use serde_json::json;

/// The operations STS implements.
pub static OPERATIONS: &[OperationSpec] = &[OperationSpec {
    name: "GetCallerIdentity",
    action: "sts:GetCallerIdentity",
    resource: "*",
    read_only: true,
    condition_keys: &[],
}];

/// STS's registry entry.
pub static SPEC: ServiceSpec = ServiceSpec {
    signing_name: "sts",
    event_source: "sts.amazonaws.com",
    protocol: Protocol::Query,
    operations: OPERATIONS,
};

/// The STS service.
#[derive(Debug, Default)]
pub struct Sts;

#[async_trait::async_trait]
impl Service for Sts {
    fn spec(&self) -> &'static ServiceSpec {
        &SPEC
    }

    async fn authorize(&self, call: &Call) -> Result<Authorization, AwsError> {
        match call.op.name {
            "GetCallerIdentity" => Ok(Authorization {
                always_allowed: true,
                ..Default::default()
            }),
            _ => Ok(Authorization {
                checks: vec![citadel_core::service::default_check(call)],
                ..Default::default()
            }),
        }
    }

    async fn execute(&self, call: &Call, _proof: &Authorized) -> Result<Effect, AwsError> {
        match call.op.name {
            "GetCallerIdentity" => {
                let principal = &call.ctx.principal;
                Ok(Effect::read(json!({
                    "UserId": principal.principal_id,
                    "Account": principal.account_id,
                    "Arn": principal.arn,
                })))
            }
            other => Err(AwsError::new(
                "InvalidAction",
                400,
                format!("Could not find operation {other}"),
            )),
        }
    }
}
