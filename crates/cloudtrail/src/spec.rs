//! The CloudTrail operation registry: every implemented operation with its IAM action and resource.
//!
//! Trail operations name the trail ARN pattern `trail/*` here, because their `Name` member may be
//! a name or an ARN; the real check is made by [`crate::CloudTrail`]'s `authorize`, which resolves
//! the member to the trail's ARN. Operations without a resource use `*`, as in AWS's
//! service authorization reference.

use citadel_core::{OperationSpec, ServiceSpec};
use citadel_wire::Protocol;

/// CloudTrail as the pipeline sees it.
pub static SPEC: ServiceSpec = ServiceSpec {
    signing_name: "cloudtrail",
    event_source: "cloudtrail.amazonaws.com",
    protocol: Protocol::Json,
    operations: &[
        OperationSpec {
            name: "AddTags",
            action: "cloudtrail:AddTags",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "CreateTrail",
            action: "cloudtrail:CreateTrail",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DeleteTrail",
            action: "cloudtrail:DeleteTrail",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DescribeTrails",
            action: "cloudtrail:DescribeTrails",
            resource: "*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "GetEventSelectors",
            action: "cloudtrail:GetEventSelectors",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "GetInsightSelectors",
            action: "cloudtrail:GetInsightSelectors",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "GetTrail",
            action: "cloudtrail:GetTrail",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "GetTrailStatus",
            action: "cloudtrail:GetTrailStatus",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ListPublicKeys",
            action: "cloudtrail:ListPublicKeys",
            resource: "*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ListTags",
            action: "cloudtrail:ListTags",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ListTrails",
            action: "cloudtrail:ListTrails",
            resource: "*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "LookupEvents",
            action: "cloudtrail:LookupEvents",
            resource: "*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "PutEventSelectors",
            action: "cloudtrail:PutEventSelectors",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "PutInsightSelectors",
            action: "cloudtrail:PutInsightSelectors",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "RemoveTags",
            action: "cloudtrail:RemoveTags",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "StartLogging",
            action: "cloudtrail:StartLogging",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "StopLogging",
            action: "cloudtrail:StopLogging",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "UpdateTrail",
            action: "cloudtrail:UpdateTrail",
            resource: "arn:{partition}:cloudtrail:{region}:{account}:trail/*",
            read_only: false,
            condition_keys: &[],
        },
    ],
};
