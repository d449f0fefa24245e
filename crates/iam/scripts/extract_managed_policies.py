#!/usr/bin/env python3
"""Extracts the most commonly attached AWS managed policies from moto's data into data/managed_policies.json.

moto ships AWS's managed policy documents as data (moto/iam/aws_managed_policies.py). Citadel serves a
curated subset of them under arn:aws:iam::aws:policy/ so that GetPolicy, GetPolicyVersion, ListPolicies
and AttachUserPolicy behave as against AWS for the policies people actually attach.

Run from the crate directory: python3 scripts/extract_managed_policies.py
"""

import json
import os

import moto.iam.aws_managed_policies as source

# The policies most often attached in real accounts (job functions, the security services Citadel
# implements, and the usual service full/read-only pairs).
NAMES = [
    "AdministratorAccess",
    "PowerUserAccess",
    "ReadOnlyAccess",
    "SecurityAudit",
    "ViewOnlyAccess",
    "Billing",
    "SupportUser",
    "DatabaseAdministrator",
    "NetworkAdministrator",
    "SystemAdministrator",
    "DataScientist",
    "IAMFullAccess",
    "IAMReadOnlyAccess",
    "IAMUserChangePassword",
    "IAMSelfManageServiceSpecificCredentials",
    "IAMUserSSHKeys",
    "AmazonS3FullAccess",
    "AmazonS3ReadOnlyAccess",
    "AWSKeyManagementServicePowerUser",
    "AWSCloudTrail_FullAccess",
    "AWSCloudTrail_ReadOnlyAccess",
    "CloudWatchLogsFullAccess",
    "CloudWatchLogsReadOnlyAccess",
    "CloudWatchFullAccess",
    "CloudWatchReadOnlyAccess",
    "CloudWatchAgentServerPolicy",
    "AmazonEC2FullAccess",
    "AmazonEC2ReadOnlyAccess",
    "AmazonSSMManagedInstanceCore",
    "AmazonSSMFullAccess",
    "AmazonSSMReadOnlyAccess",
    "AmazonDynamoDBFullAccess",
    "AmazonDynamoDBReadOnlyAccess",
    "AmazonRDSFullAccess",
    "AmazonRDSReadOnlyAccess",
    "AmazonSNSFullAccess",
    "AmazonSNSReadOnlyAccess",
    "AmazonSQSFullAccess",
    "AmazonSQSReadOnlyAccess",
    "AWSLambda_FullAccess",
    "AWSLambda_ReadOnlyAccess",
    "AWSLambdaBasicExecutionRole",
    "AmazonVPCFullAccess",
    "AmazonVPCReadOnlyAccess",
    "AmazonRoute53FullAccess",
    "AWSConfigUserAccess",
    "AmazonGuardDutyFullAccess",
    "AmazonGuardDutyReadOnlyAccess",
    "AWSSecurityHubFullAccess",
    "AWSSecurityHubReadOnlyAccess",
    "AmazonMacieFullAccess",
    "AmazonInspector2FullAccess",
    "AWSOrganizationsFullAccess",
    "AWSOrganizationsReadOnlyAccess",
    "AmazonECS_FullAccess",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonEKSClusterPolicy",
    "AmazonEKSWorkerNodePolicy",
    "SecretsManagerReadWrite",
    "AWSCompromisedKeyQuarantineV2",
]


def main():
    data = json.loads(source.aws_managed_policies_data)
    out = []
    for name in NAMES:
        policy = data.get(name)
        if policy is None:
            print(f"skipping {name}: not in moto's data")
            continue
        document = policy["Document"]
        if not isinstance(document, str):
            document = json.dumps(document, indent=4)
        path = policy.get("Path", "/")
        out.append({
            "name": name,
            "path": path,
            "arn": f"arn:aws:iam::aws:policy{path}{name}",
            "version_id": policy.get("DefaultVersionId", "v1"),
            "create_date": policy.get("CreateDate"),
            "update_date": policy.get("UpdateDate"),
            "document": document,
        })
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.path.join(here, "data", "managed_policies.json")
    with open(target, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {len(out)} policies to {target}")


if __name__ == "__main__":
    main()
