//! The KMS operation registry: every implemented operation with its IAM action and resource.
//!
//! The resource templates here are what the registry-driven tests and the default check see;
//! the real checks come from [`crate::authz`], which resolves the key (id, ARN, alias, or the key
//! inside a ciphertext) and names its ARN. Key operations are therefore listed with the key ARN
//! pattern `key/*`, and alias operations with the alias ARN.

use citadel_core::{OperationSpec, ServiceSpec};
use citadel_wire::Protocol;

/// KMS as the pipeline sees it.
pub static SPEC: ServiceSpec = ServiceSpec {
    signing_name: "kms",
    event_source: "kms.amazonaws.com",
    protocol: Protocol::Json,
    operations: &[
        OperationSpec {
            name: "CancelKeyDeletion",
            action: "kms:CancelKeyDeletion",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "CreateAlias",
            action: "kms:CreateAlias",
            resource: "arn:{partition}:kms:{region}:{account}:{AliasName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "CreateGrant",
            action: "kms:CreateGrant",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &[
                "kms:GrantOperations",
                "kms:GranteePrincipal",
                "kms:RetiringPrincipal",
                "kms:GrantConstraintType",
                "kms:EncryptionContext:${Key}",
                "kms:EncryptionContextKeys",
            ],
        },
        OperationSpec {
            name: "CreateKey",
            action: "kms:CreateKey",
            resource: "*",
            read_only: false,
            condition_keys: &[
                "kms:KeySpec",
                "kms:KeyUsage",
                "kms:KeyOrigin",
                "kms:BypassPolicyLockoutSafetyCheck",
                "aws:RequestTag/${TagKey}",
                "aws:TagKeys",
            ],
        },
        OperationSpec {
            name: "Decrypt",
            action: "kms:Decrypt",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &[
                "kms:EncryptionContext:${Key}",
                "kms:EncryptionContextKeys",
                "kms:EncryptionAlgorithm",
            ],
        },
        OperationSpec {
            name: "DeleteAlias",
            action: "kms:DeleteAlias",
            resource: "arn:{partition}:kms:{region}:{account}:{AliasName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DeleteImportedKeyMaterial",
            action: "kms:DeleteImportedKeyMaterial",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DescribeKey",
            action: "kms:DescribeKey",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DisableKey",
            action: "kms:DisableKey",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "DisableKeyRotation",
            action: "kms:DisableKeyRotation",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "EnableKey",
            action: "kms:EnableKey",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "EnableKeyRotation",
            action: "kms:EnableKeyRotation",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &["kms:RotationPeriodInDays"],
        },
        OperationSpec {
            name: "Encrypt",
            action: "kms:Encrypt",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &[
                "kms:EncryptionContext:${Key}",
                "kms:EncryptionContextKeys",
                "kms:EncryptionAlgorithm",
                "kms:RequestAlias",
            ],
        },
        OperationSpec {
            name: "GenerateDataKey",
            action: "kms:GenerateDataKey",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &["kms:EncryptionContext:${Key}", "kms:EncryptionContextKeys"],
        },
        OperationSpec {
            name: "GenerateDataKeyPair",
            action: "kms:GenerateDataKeyPair",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &[
                "kms:EncryptionContext:${Key}",
                "kms:EncryptionContextKeys",
                "kms:DataKeyPairSpec",
            ],
        },
        OperationSpec {
            name: "GenerateDataKeyPairWithoutPlaintext",
            action: "kms:GenerateDataKeyPairWithoutPlaintext",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &[
                "kms:EncryptionContext:${Key}",
                "kms:EncryptionContextKeys",
                "kms:DataKeyPairSpec",
            ],
        },
        OperationSpec {
            name: "GenerateDataKeyWithoutPlaintext",
            action: "kms:GenerateDataKeyWithoutPlaintext",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &["kms:EncryptionContext:${Key}", "kms:EncryptionContextKeys"],
        },
        OperationSpec {
            name: "GenerateMac",
            action: "kms:GenerateMac",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &["kms:MacAlgorithm"],
        },
        OperationSpec {
            name: "GenerateRandom",
            action: "kms:GenerateRandom",
            resource: "*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "GetKeyPolicy",
            action: "kms:GetKeyPolicy",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "GetKeyRotationStatus",
            action: "kms:GetKeyRotationStatus",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "GetParametersForImport",
            action: "kms:GetParametersForImport",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &["kms:WrappingAlgorithm", "kms:WrappingKeySpec"],
        },
        OperationSpec {
            name: "GetPublicKey",
            action: "kms:GetPublicKey",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ImportKeyMaterial",
            action: "kms:ImportKeyMaterial",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &["kms:ExpirationModel", "kms:ValidTo"],
        },
        OperationSpec {
            name: "ListAliases",
            action: "kms:ListAliases",
            resource: "*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ListGrants",
            action: "kms:ListGrants",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ListKeyPolicies",
            action: "kms:ListKeyPolicies",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ListKeyRotations",
            action: "kms:ListKeyRotations",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ListKeys",
            action: "kms:ListKeys",
            resource: "*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ListResourceTags",
            action: "kms:ListResourceTags",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ListRetirableGrants",
            action: "kms:ListRetirableGrants",
            resource: "*",
            read_only: true,
            condition_keys: &[],
        },
        OperationSpec {
            name: "PutKeyPolicy",
            action: "kms:PutKeyPolicy",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &["kms:BypassPolicyLockoutSafetyCheck"],
        },
        OperationSpec {
            name: "ReEncrypt",
            action: "kms:ReEncrypt",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &[
                "kms:EncryptionContext:${Key}",
                "kms:EncryptionContextKeys",
                "kms:ReEncryptOnSameKey",
            ],
        },
        OperationSpec {
            name: "RetireGrant",
            action: "kms:RetireGrant",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "RevokeGrant",
            action: "kms:RevokeGrant",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "RotateKeyOnDemand",
            action: "kms:RotateKeyOnDemand",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "ScheduleKeyDeletion",
            action: "kms:ScheduleKeyDeletion",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &["kms:ScheduleKeyDeletionPendingWindowInDays"],
        },
        OperationSpec {
            name: "Sign",
            action: "kms:Sign",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &["kms:SigningAlgorithm", "kms:MessageType"],
        },
        OperationSpec {
            name: "TagResource",
            action: "kms:TagResource",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &["aws:RequestTag/${TagKey}", "aws:TagKeys"],
        },
        OperationSpec {
            name: "UntagResource",
            action: "kms:UntagResource",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &["aws:TagKeys"],
        },
        OperationSpec {
            name: "UpdateAlias",
            action: "kms:UpdateAlias",
            resource: "arn:{partition}:kms:{region}:{account}:{AliasName}",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "UpdateKeyDescription",
            action: "kms:UpdateKeyDescription",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: false,
            condition_keys: &[],
        },
        OperationSpec {
            name: "Verify",
            action: "kms:Verify",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &["kms:SigningAlgorithm", "kms:MessageType"],
        },
        OperationSpec {
            name: "VerifyMac",
            action: "kms:VerifyMac",
            resource: "arn:{partition}:kms:{region}:{account}:key/*",
            read_only: true,
            condition_keys: &["kms:MacAlgorithm"],
        },
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_its_own_action() {
        for op in SPEC.operations {
            assert_eq!(op.action, format!("kms:{}", op.name));
        }
        assert_eq!(SPEC.operation("Encrypt").map(|op| op.read_only), Some(true));
        assert_eq!(SPEC.operation("CreateKey").map(|op| op.resource), Some("*"));
        assert_eq!(SPEC.operations.len(), 44);
    }
}
