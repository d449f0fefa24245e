//! The operation registries of CloudWatch Logs and CloudWatch: IAM action and resource of every
//! implemented operation.
//!
//! Log group operations name the group ARN without the `:*` suffix that `DescribeLogGroups` shows,
//! as the IAM service authorization reference does; stream operations name the stream ARN.
//! `TagResource` and friends take the ARN from the request.

use citadel_core::{OperationSpec, ServiceSpec};
use citadel_wire::Protocol;

/// CloudWatch Logs as the pipeline sees it.
pub static LOGS_SPEC: ServiceSpec = ServiceSpec {
    signing_name: "logs",
    event_source: "logs.amazonaws.com",
    protocol: Protocol::Json,
    operations: &[
        OperationSpec {
            name: "AssociateKmsKey",
            action: "logs:AssociateKmsKey",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "CreateLogGroup",
            action: "logs:CreateLogGroup",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "CreateLogStream",
            action: "logs:CreateLogStream",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}:log-stream:{logStreamName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DeleteLogGroup",
            action: "logs:DeleteLogGroup",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DeleteLogStream",
            action: "logs:DeleteLogStream",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}:log-stream:{logStreamName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DeleteMetricFilter",
            action: "logs:DeleteMetricFilter",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DeleteRetentionPolicy",
            action: "logs:DeleteRetentionPolicy",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DescribeLogGroups",
            action: "logs:DescribeLogGroups",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DescribeLogStreams",
            action: "logs:DescribeLogStreams",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DescribeMetricFilters",
            action: "logs:DescribeMetricFilters",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DisassociateKmsKey",
            action: "logs:DisassociateKmsKey",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "FilterLogEvents",
            action: "logs:FilterLogEvents",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "GetLogEvents",
            action: "logs:GetLogEvents",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}:log-stream:{logStreamName}",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ListTagsForResource",
            action: "logs:ListTagsForResource",
            resource: "{resourceArn}",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ListTagsLogGroup",
            action: "logs:ListTagsLogGroup",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "PutLogEvents",
            action: "logs:PutLogEvents",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}:log-stream:{logStreamName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "PutMetricFilter",
            action: "logs:PutMetricFilter",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "PutRetentionPolicy",
            action: "logs:PutRetentionPolicy",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "TagLogGroup",
            action: "logs:TagLogGroup",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "TagResource",
            action: "logs:TagResource",
            resource: "{resourceArn}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "TestMetricFilter",
            action: "logs:TestMetricFilter",
            resource: "*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "UntagLogGroup",
            action: "logs:UntagLogGroup",
            resource: "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "UntagResource",
            action: "logs:UntagResource",
            resource: "{resourceArn}",
            read_only: false,
            condition_keys: &[],
        },
    ],
};

/// CloudWatch (metrics and alarms) as the pipeline sees it.
pub static CLOUDWATCH_SPEC: ServiceSpec = ServiceSpec {
    signing_name: "monitoring",
    event_source: "monitoring.amazonaws.com",
    protocol: Protocol::Json,
    operations: &[
        OperationSpec {
            name: "DeleteAlarms",
            action: "cloudwatch:DeleteAlarms",
            resource: "arn:{partition}:cloudwatch:{region}:{account}:alarm:*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DescribeAlarmHistory",
            action: "cloudwatch:DescribeAlarmHistory",
            resource: "arn:{partition}:cloudwatch:{region}:{account}:alarm:*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DescribeAlarms",
            action: "cloudwatch:DescribeAlarms",
            resource: "arn:{partition}:cloudwatch:{region}:{account}:alarm:*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "GetMetricStatistics",
            action: "cloudwatch:GetMetricStatistics",
            resource: "*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ListMetrics",
            action: "cloudwatch:ListMetrics",
            resource: "*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "PutMetricAlarm",
            action: "cloudwatch:PutMetricAlarm",
            resource: "arn:{partition}:cloudwatch:{region}:{account}:alarm:{AlarmName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "PutMetricData",
            action: "cloudwatch:PutMetricData",
            resource: "*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "SetAlarmState",
            action: "cloudwatch:SetAlarmState",
            resource: "arn:{partition}:cloudwatch:{region}:{account}:alarm:{AlarmName}",
            read_only: false,
            condition_keys: &[],
        },
    ],
};
