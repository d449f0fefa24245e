"""IAM end to end with boto3 and the aws CLI: an administrator's day against the real server.

Covers users, groups and policies enforced on real requests (AccessDenied in AWS's wording), key
rotation, MFA with TOTP codes computed here (RFC 6238 with hmac, no pyotp), policy versions, roles,
the simulator, the credential report and IAM's error codes for bad input.
"""

import base64
import hashlib
import hmac
import json
import struct
import time
import uuid

import botocore.exceptions
import pytest

ACCOUNT = "000000000000"


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def totp(base32_seed, counter):
    """RFC 6238 TOTP (HMAC-SHA1, 6 digits) for a time step."""
    key = base64.b32decode(base32_seed + "=" * (-len(base32_seed) % 8))
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    word = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{word % 1_000_000:06d}"


def error_of(excinfo):
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"], excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def wait_for_identity(server, key_id, secret):
    """New keys work at once in Citadel; this only guards against a slow first request."""
    sts = server.client("sts", access_key=key_id, secret=secret)
    return sts.get_caller_identity()


READ_IAM_POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "ReadUsers", "Effect": "Allow", "Action": ["iam:ListUsers", "iam:GetUser"], "Resource": "*"},
        {"Sid": "OwnKeys", "Effect": "Allow",
         "Action": ["iam:CreateAccessKey", "iam:ListAccessKeys", "iam:UpdateAccessKey", "iam:DeleteAccessKey"],
         "Resource": "arn:aws:iam::*:user/${aws:username}"},
    ],
})


def test_group_policy_governs_what_a_member_can_do(server):
    iam = server.client("iam")
    group, user = unique("devs"), unique("alice")
    iam.create_group(GroupName=group, Path="/teams/")
    iam.put_group_policy(GroupName=group, PolicyName="read-iam", PolicyDocument=READ_IAM_POLICY)
    created = iam.create_user(UserName=user, Path="/eng/", Tags=[{"Key": "team", "Value": "devs"}])["User"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/eng/{user}"
    assert created["UserId"].startswith("AIDA")
    iam.add_user_to_group(GroupName=group, UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["AccessKeyId"]) == 20
    assert len(key["SecretAccessKey"]) == 40

    identity = wait_for_identity(server, key["AccessKeyId"], key["SecretAccessKey"])
    assert identity["Arn"] == created["Arn"]
    assert identity["UserId"] == created["UserId"]

    alice = server.client("iam", access_key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    names = [u["UserName"] for u in alice.list_users()["Users"]]
    assert user in names
    assert alice.get_user()["User"]["UserName"] == user

    with pytest.raises(botocore.exceptions.ClientError) as denied:
        alice.create_user(UserName="mallory")
    code, message, status = error_of(denied)
    assert (code, status) == ("AccessDenied", 403)
    assert message == (
        f"User: {created['Arn']} is not authorized to perform: iam:CreateUser on resource: "
        f"arn:aws:iam::{ACCOUNT}:user/mallory because no identity-based policy allows the iam:CreateUser action"
    )

    # The policy variable scopes key management to the caller's own user.
    other = unique("bob")
    iam.create_user(UserName=other)
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        alice.create_access_key(UserName=other)
    assert error_of(denied)[0] == "AccessDenied"

    # An explicit deny attached to the user wins over the group's allow.
    deny = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "iam:ListUsers", "Resource": "*"}]})
    arn = iam.create_policy(PolicyName=unique("deny-list"), PolicyDocument=deny)["Policy"]["Arn"]
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        alice.list_users()
    code, message, _ = error_of(denied)
    assert code == "AccessDenied"
    assert "with an explicit deny in an identity-based policy" in message
    iam.detach_user_policy(UserName=user, PolicyArn=arn)
    alice.list_users()

    # Leaving the group takes the permissions away on the next request.
    iam.remove_user_from_group(GroupName=group, UserName=user)
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        alice.list_users()
    assert error_of(denied)[0] == "AccessDenied"


def test_key_rotation(server):
    iam = server.client("iam")
    user = unique("rotator")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="keys", PolicyDocument=READ_IAM_POLICY)
    old = iam.create_access_key(UserName=user)["AccessKey"]
    as_old = server.client("iam", access_key=old["AccessKeyId"], secret=old["SecretAccessKey"])

    new = as_old.create_access_key()["AccessKey"]
    assert new["UserName"] == user
    with pytest.raises(botocore.exceptions.ClientError) as limit:
        as_old.create_access_key()
    assert error_of(limit)[:1] == ("LimitExceeded",)
    assert error_of(limit)[2] == 409

    as_new = server.client("iam", access_key=new["AccessKeyId"], secret=new["SecretAccessKey"])
    keys = {k["AccessKeyId"]: k["Status"] for k in as_new.list_access_keys()["AccessKeyMetadata"]}
    assert keys == {old["AccessKeyId"]: "Active", new["AccessKeyId"]: "Active"}

    as_new.update_access_key(AccessKeyId=old["AccessKeyId"], Status="Inactive")
    with pytest.raises(botocore.exceptions.ClientError) as invalid:
        as_old.list_access_keys()
    code, message, status = error_of(invalid)
    assert (code, status) == ("InvalidClientTokenId", 403)
    assert message == "The security token included in the request is invalid."

    as_new.delete_access_key(AccessKeyId=old["AccessKeyId"])
    remaining = [k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]
    assert remaining == [new["AccessKeyId"]]
    last = iam.get_access_key_last_used(AccessKeyId=new["AccessKeyId"])
    assert last["UserName"] == user


def test_mfa_life_cycle(server):
    iam = server.client("iam")
    user = unique("mfa-user")
    iam.create_user(UserName=user)
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=user)["VirtualMFADevice"]
    serial = device["SerialNumber"]
    assert serial == f"arn:aws:iam::{ACCOUNT}:mfa/{user}"
    seed = device["Base32StringSeed"].decode()
    assert device["QRCodePNG"].startswith(b"\x89PNG")

    with pytest.raises(botocore.exceptions.ClientError) as bad:
        iam.enable_mfa_device(UserName=user, SerialNumber=serial,
                              AuthenticationCode1="000000", AuthenticationCode2="000000")
    assert error_of(bad)[0] == "InvalidAuthenticationCode"
    assert error_of(bad)[2] == 403

    step = int(time.time()) // 30
    iam.enable_mfa_device(UserName=user, SerialNumber=serial,
                          AuthenticationCode1=totp(seed, step - 1), AuthenticationCode2=totp(seed, step))
    devices = iam.list_mfa_devices(UserName=user)["MFADevices"]
    assert [d["SerialNumber"] for d in devices] == [serial]
    assigned = iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")["VirtualMFADevices"]
    assert any(d["SerialNumber"] == serial and d["User"]["UserName"] == user for d in assigned)

    with pytest.raises(botocore.exceptions.ClientError) as conflict:
        iam.delete_user(UserName=user)
    assert error_of(conflict)[0] == "DeleteConflict"
    with pytest.raises(botocore.exceptions.ClientError) as in_use:
        iam.delete_virtual_mfa_device(SerialNumber=serial)
    assert error_of(in_use)[0] == "DeleteConflict"

    iam.deactivate_mfa_device(UserName=user, SerialNumber=serial)
    iam.delete_virtual_mfa_device(SerialNumber=serial)
    iam.delete_user(UserName=user)


def test_policy_versions(server):
    iam = server.client("iam")
    doc = lambda action: json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": action, "Resource": "*"}]})
    arn = iam.create_policy(PolicyName=unique("versioned"), Path="/app/", PolicyDocument=doc("s3:GetObject"),
                            Description="test")["Policy"]["Arn"]
    assert ":policy/app/" in arn
    for n in range(2, 6):
        version = iam.create_policy_version(PolicyArn=arn, PolicyDocument=doc(f"s3:Get{n}"), SetAsDefault=(n == 4))
        assert version["PolicyVersion"]["VersionId"] == f"v{n}"
    with pytest.raises(botocore.exceptions.ClientError) as limit:
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=doc("s3:Get6"))
    assert error_of(limit)[0] == "LimitExceeded"
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v4"
    with pytest.raises(botocore.exceptions.ClientError) as default:
        iam.delete_policy_version(PolicyArn=arn, VersionId="v4")
    assert error_of(default)[:2] == ("DeleteConflict", "Cannot delete the default version of a policy.")
    got = iam.get_policy_version(PolicyArn=arn, VersionId="v4")["PolicyVersion"]
    assert got["Document"]["Statement"][0]["Action"] == "s3:Get4"  # botocore decodes the percent-encoded JSON
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v2")
    for v in ["v1", "v3", "v4", "v5"]:
        iam.delete_policy_version(PolicyArn=arn, VersionId=v)
    assert [v["VersionId"] for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]] == ["v2"]
    iam.delete_policy(PolicyArn=arn)


def test_aws_managed_policies(server):
    iam = server.client("iam")
    admin = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")["Policy"]
    version = iam.get_policy_version(PolicyArn=admin["Arn"], VersionId=admin["DefaultVersionId"])
    assert version["PolicyVersion"]["Document"]["Statement"][0]["Action"] == "*"
    names = set()
    for page in iam.get_paginator("list_policies").paginate(Scope="AWS"):
        names.update(p["PolicyName"] for p in page["Policies"])
    assert {"ReadOnlyAccess", "SecurityAudit", "IAMFullAccess", "AmazonS3ReadOnlyAccess"} <= names
    view_only = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/job-function/ViewOnlyAccess")["Policy"]
    assert view_only["Path"] == "/job-function/"


def test_roles_with_the_cli(server):
    role = unique("deployer")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    out = json.loads(server.aws("iam", "create-role", "--role-name", role, "--path", "/ci/",
                                "--assume-role-policy-document", trust, "--max-session-duration", "7200").stdout)
    assert out["Role"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/ci/{role}"
    got = json.loads(server.aws("iam", "get-role", "--role-name", role).stdout)
    assert got["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"] == "ec2.amazonaws.com"
    assert got["Role"]["MaxSessionDuration"] == 7200
    server.aws("iam", "attach-role-policy", "--role-name", role,
               "--policy-arn", "arn:aws:iam::aws:policy/ReadOnlyAccess")
    attached = json.loads(server.aws("iam", "list-attached-role-policies", "--role-name", role).stdout)
    assert attached["AttachedPolicies"] == [
        {"PolicyName": "ReadOnlyAccess", "PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}]
    failed = server.aws("iam", "delete-role", "--role-name", role, check=False)
    assert failed.returncode != 0 and "DeleteConflict" in failed.stderr
    too_long = server.aws("iam", "update-role", "--role-name", role, "--max-session-duration", "50000", check=False)
    assert too_long.returncode != 0 and "ValidationError" in too_long.stderr
    server.aws("iam", "detach-role-policy", "--role-name", role,
               "--policy-arn", "arn:aws:iam::aws:policy/ReadOnlyAccess")
    server.aws("iam", "delete-role", "--role-name", role)


@pytest.mark.parametrize("call,expected", [
    (lambda iam: iam.get_user(UserName="no-such-user-xyz"),
     ("NoSuchEntity", "The user with name no-such-user-xyz cannot be found.", 404)),
    (lambda iam: iam.get_role(RoleName="no-such-role-xyz"),
     ("NoSuchEntity", "The role with name no-such-role-xyz cannot be found.", 404)),
    (lambda iam: iam.create_policy(PolicyName="bad-doc", PolicyDocument='{"Statement":[{"Effect":"Allow"}]}'),
     ("MalformedPolicyDocument", None, 400)),
    (lambda iam: iam.create_policy(PolicyName="not-json", PolicyDocument="nope"),
     ("MalformedPolicyDocument", "Syntax errors in policy.", 400)),
    (lambda iam: iam.create_role(RoleName="bad-trust", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})),
     ("MalformedPolicyDocument", None, 400)),
    (lambda iam: iam.create_user(UserName="bad name"), ("ValidationError", None, 400)),
    (lambda iam: iam.delete_policy(PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/nope"),
     ("NoSuchEntity", None, 404)),
])
def test_error_codes_for_bad_input(server, call, expected):
    iam = server.client("iam")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call(iam)
    code, message, status = error_of(err)
    assert (code, status) == (expected[0], expected[2])
    if expected[1] is not None:
        assert message == expected[1]


def test_names_are_unique_case_insensitively(server):
    iam = server.client("iam")
    name = unique("Case")
    iam.create_user(UserName=name)
    with pytest.raises(botocore.exceptions.ClientError) as err:
        iam.create_user(UserName=name.lower())
    assert error_of(err)[0] == "EntityAlreadyExists"
    assert error_of(err)[2] == 409


def test_simulator_and_reports(server):
    iam = server.client("iam")
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"}]})
    results = iam.simulate_custom_policy(
        PolicyInputList=[policy], ActionNames=["s3:GetObject", "s3:DeleteObject", "s3:PutObject"],
        ContextEntries=[{"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["10.1.2.3"], "ContextKeyType": "ip"}],
    )["EvaluationResults"]
    assert [r["EvalDecision"] for r in results] == ["allowed", "explicitDeny", "implicitDeny"]

    user = unique("reported")
    iam.create_user(UserName=user)
    iam.create_login_profile(UserName=user, Password="Str0ng-Passw0rd!")
    with pytest.raises(botocore.exceptions.ClientError) as weak:
        iam.update_login_profile(UserName=user, Password="weak")
    assert error_of(weak)[0] == "PasswordPolicyViolation"
    state = iam.generate_credential_report()["State"]
    assert state in ("STARTED", "COMPLETE")
    for _ in range(20):
        if iam.generate_credential_report()["State"] == "COMPLETE":
            break
        time.sleep(0.5)
    report = iam.get_credential_report()
    assert report["ReportFormat"] == "text/csv"
    lines = report["Content"].decode().splitlines()
    assert lines[0].startswith("user,arn,user_creation_time,password_enabled,")
    row = next(line for line in lines if line.startswith(user + ","))
    assert row.split(",")[3] == "true"

    summary = iam.get_account_summary()["SummaryMap"]
    assert summary["Users"] >= 1 and summary["AccessKeysPerUserQuota"] == 2
    details = iam.get_account_authorization_details(Filter=["User"])
    assert any(u["UserName"] == user for u in details["UserDetailList"])
    iam.delete_login_profile(UserName=user)
    iam.delete_user(UserName=user)


def test_access_key_last_used_is_tracked(server):
    import time as _time
    iam = server.client("iam")
    iam.create_user(UserName="last-used-user")
    key = iam.create_access_key(UserName="last-used-user")["AccessKey"]
    before = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])["AccessKeyLastUsed"]
    assert "LastUsedDate" not in before
    user_sts = server.client("sts", access_key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    user_sts.get_caller_identity()
    deadline = _time.time() + 5
    while _time.time() < deadline:
        used = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])["AccessKeyLastUsed"]
        if "LastUsedDate" in used:
            break
        _time.sleep(0.05)
    assert used["ServiceName"] == "sts"
    assert used["Region"] == "us-east-1"


def test_list_users_pages_in_name_order_with_path_prefix(server):
    iam = server.client("iam")
    names = [f"pager-{i:03d}" for i in range(25)]
    for i, name in enumerate(names):
        iam.create_user(UserName=name, Path="/pager/" if i % 2 == 0 else "/other/")
    seen, marker = [], None
    while True:
        kwargs = {"PathPrefix": "/pager/", "MaxItems": 4}
        if marker:
            kwargs["Marker"] = marker
        page = iam.list_users(**kwargs)
        seen += [u["UserName"] for u in page["Users"]]
        assert len(page["Users"]) <= 4
        if not page["IsTruncated"]:
            break
        marker = page["Marker"]
    assert seen == [n for i, n in enumerate(names) if i % 2 == 0]
    # The paginator of boto3 walks the same pages.
    walked = [u["UserName"] for p in iam.get_paginator("list_users").paginate(PathPrefix="/pager/",
              PaginationConfig={"PageSize": 5}) for u in p["Users"]]
    assert walked == seen
