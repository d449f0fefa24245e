"""cloudsplaining against Citadel: `download` reads the account with GetAccountAuthorizationDetails
through boto3 and a named profile, and `scan` must flag the obviously risky policy.

cloudsplaining builds its client from `boto3.Session(profile_name=...)` with no endpoint option, so
the profile itself carries `endpoint_url` (botocore reads it from the config file) and
AWS_ENDPOINT_URL says the same in the environment.
"""

import json
import os
import subprocess
import sys

from conftest import ROOT_ACCESS_KEY_ID, ROOT_SECRET_ACCESS_KEY

ACCOUNT = "000000000000"

RISKY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
    ],
}

NARROW = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::reports/*"},
    ],
}

TRUST_EC2 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def cloudsplaining(args, env, cwd):
    command = [os.path.join(os.path.dirname(sys.executable), "cloudsplaining")]
    if not os.path.exists(command[0]):
        command = ["cloudsplaining"]
    result = subprocess.run(command + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"cloudsplaining {args[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result


def profile_env(server, tmp_path):
    config = tmp_path / "config"
    config.write_text(
        "[profile citadel]\n"
        "region = us-east-1\n"
        f"endpoint_url = {server.endpoint}\n")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[citadel]\n"
        f"aws_access_key_id = {ROOT_ACCESS_KEY_ID}\n"
        f"aws_secret_access_key = {ROOT_SECRET_ACCESS_KEY}\n")
    env = dict(os.environ)
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE"]:
        env.pop(name, None)
    env.update({
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    })
    return env


def test_cloudsplaining_download_and_scan_flag_the_risky_policy(fresh_server, tmp_path):
    iam = fresh_server.client("iam")
    risky_arn = iam.create_policy(PolicyName="RiskyAdminish", PolicyDocument=json.dumps(RISKY))["Policy"]["Arn"]
    narrow_arn = iam.create_policy(PolicyName="NarrowReports", PolicyDocument=json.dumps(NARROW))["Policy"]["Arn"]
    iam.create_user(UserName="deployer")
    iam.attach_user_policy(UserName="deployer", PolicyArn=risky_arn)
    iam.create_user(UserName="reader")
    iam.attach_user_policy(UserName="reader", PolicyArn=narrow_arn)
    iam.create_group(GroupName="auditors")
    iam.add_user_to_group(GroupName="auditors", UserName="reader")
    iam.attach_group_policy(GroupName="auditors", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    iam.create_role(RoleName="app-server", AssumeRolePolicyDocument=json.dumps(TRUST_EC2))
    iam.put_role_policy(RoleName="app-server", PolicyName="inline-risky", PolicyDocument=json.dumps(RISKY))
    iam.create_service_linked_role(AWSServiceName="autoscaling.amazonaws.com")

    env = profile_env(fresh_server, tmp_path)
    out = cloudsplaining(["download", "--profile", "citadel", "--output", str(tmp_path)], env, tmp_path)
    assert "Saved results" in out.stdout
    details = json.loads((tmp_path / "citadel.json").read_text())
    users = {u["UserName"]: u for u in details["UserDetailList"]}
    assert set(users) == {"deployer", "reader"}
    assert users["reader"]["GroupList"] == ["auditors"]
    roles = {r["RoleName"] for r in details["RoleDetailList"] if "RoleName" in r}
    assert {"app-server", "AWSServiceRoleForAutoScaling"} <= roles
    policies = {p["PolicyName"] for p in details["Policies"]}
    assert {"RiskyAdminish", "NarrowReports", "ReadOnlyAccess"} <= policies

    scan = cloudsplaining(["scan", "--input-file", str(tmp_path / "citadel.json"), "--output", str(tmp_path),
                           "--skip-open-report"], env, tmp_path)
    assert "Wrote HTML results" in scan.stdout
    assert (tmp_path / "iam-report-citadel.html").exists()
    results = json.loads((tmp_path / "iam-results-citadel.json").read_text())

    managed = {p["PolicyName"]: p for p in results["customer_managed_policies"].values()}
    risky = managed["RiskyAdminish"]
    flagged = {action for kind in ("PrivilegeEscalation", "ResourceExposure", "DataExfiltration",
                                   "InfrastructureModification")
               for action in flatten_findings(risky.get(kind))}
    assert "iam:passrole" in flagged
    assert "s3:getobject" in flagged
    assert "s3:putbucketpolicy" in flagged
    assert "iam:passrole" in flatten_findings(risky["ResourceExposure"])
    assert "s3:getobject" in flatten_findings(risky["DataExfiltration"])
    assert risky["ServiceWildcard"]["findings"] == ["s3"]
    narrow = managed["NarrowReports"]
    for kind in ("PrivilegeEscalation", "ResourceExposure", "DataExfiltration", "InfrastructureModification",
                 "ServiceWildcard"):
        assert not flatten_findings(narrow.get(kind)), kind

    inline = [p for p in results["inline_policies"].values() if p["PolicyName"] == "inline-risky"]
    assert inline and "iam:passrole" in flatten_findings(inline[0]["ResourceExposure"])
    assert inline[0]["AttachedTo"]["roles"] == ["app-server"]
    # The deployer, who has the risky policy, is named among the principals it affects.
    assert "deployer" in {u["name"] for u in results["users"].values()
                          if risky_policy_id(results, "RiskyAdminish") in u.get("customer_managed_policies", {})}


def flatten_findings(value):
    """The action names of one finding category (`{"severity": ..., "findings": [...]}`), lower-cased."""
    if isinstance(value, dict):
        value = value.get("findings")
    return {str(item).lower() for item in value or []}


def risky_policy_id(results, name):
    for policy_id, policy in results["customer_managed_policies"].items():
        if policy["PolicyName"] == name:
            return policy_id
    raise AssertionError(f"{name} not in results")
