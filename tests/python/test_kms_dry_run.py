"""KMS DryRun through boto3: an authorized call that would succeed answers DryRunOperationException
(HTTP 412) and does nothing; an unauthorized one answers AccessDeniedException, as in AWS.
"""

import base64
import json
import uuid

import pytest
from botocore.exceptions import ClientError

ACCOUNT = "000000000000"


@pytest.fixture(scope="module")
def kms(server):
    return server.client("kms")


def dry_run_error(call):
    with pytest.raises(ClientError) as excinfo:
        call()
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_dry_run_of_every_operation_that_takes_it(kms):
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"secret", EncryptionContext={"a": "b"})["CiphertextBlob"]
    sign_key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signature = kms.sign(KeyId=sign_key, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    mac = kms.generate_mac(KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    grantee = f"arn:aws:iam::{ACCOUNT}:role/app"
    grant = kms.create_grant(KeyId=key, GranteePrincipal=grantee, Operations=["Decrypt"])
    calls = {
        "Encrypt": lambda: kms.encrypt(KeyId=key, Plaintext=b"x", DryRun=True),
        "Decrypt": lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"}, DryRun=True),
        "ReEncrypt": lambda: kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext={"a": "b"},
                                            DestinationKeyId=key, DryRun=True),
        "GenerateDataKey": lambda: kms.generate_data_key(KeyId=key, KeySpec="AES_256", DryRun=True),
        "GenerateDataKeyWithoutPlaintext": lambda: kms.generate_data_key_without_plaintext(
            KeyId=key, NumberOfBytes=32, DryRun=True),
        "GenerateDataKeyPair": lambda: kms.generate_data_key_pair(KeyId=key, KeyPairSpec="ECC_NIST_P256",
                                                                  DryRun=True),
        "GenerateDataKeyPairWithoutPlaintext": lambda: kms.generate_data_key_pair_without_plaintext(
            KeyId=key, KeyPairSpec="ECC_NIST_P256", DryRun=True),
        "Sign": lambda: kms.sign(KeyId=sign_key, Message=b"m", SigningAlgorithm="ECDSA_SHA_256", DryRun=True),
        "Verify": lambda: kms.verify(KeyId=sign_key, Message=b"m", Signature=signature,
                                     SigningAlgorithm="ECDSA_SHA_256", DryRun=True),
        "GenerateMac": lambda: kms.generate_mac(KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256",
                                                DryRun=True),
        "VerifyMac": lambda: kms.verify_mac(KeyId=mac_key, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256",
                                            DryRun=True),
        "CreateGrant": lambda: kms.create_grant(KeyId=key, GranteePrincipal=grantee, Operations=["Encrypt"],
                                                Name="dry", DryRun=True),
        "RevokeGrant": lambda: kms.revoke_grant(KeyId=key, GrantId=grant["GrantId"], DryRun=True),
        "RetireGrant": lambda: kms.retire_grant(KeyId=key, GrantId=grant["GrantId"], DryRun=True),
    }
    for name, call in calls.items():
        assert dry_run_error(call) == ("DryRunOperationException", 412), name
    # Nothing happened: the dry-run grant does not exist and the real one is still there.
    grants = kms.list_grants(KeyId=key)["Grants"]
    assert [g["GrantId"] for g in grants] == [grant["GrantId"]]
    # DryRun=False is an ordinary call.
    assert kms.encrypt(KeyId=key, Plaintext=b"x", DryRun=False)["KeyId"].endswith(key)


def test_dry_run_still_reports_what_would_fail(kms):
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key)
    assert dry_run_error(lambda: kms.encrypt(KeyId=key, Plaintext=b"x", DryRun=True))[0] == "DisabledException"
    assert dry_run_error(lambda: kms.encrypt(KeyId=str(uuid.uuid4()), Plaintext=b"x", DryRun=True))[0] == \
        "NotFoundException"


def test_dry_run_without_permission_is_access_denied(server, kms):
    iam = server.client("iam")
    key_meta = kms.create_key()["KeyMetadata"]
    user = f"dry-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="encrypt-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": key_meta["Arn"]}]}))
    secret = iam.create_access_key(UserName=user)["AccessKey"]
    as_user = server.client("kms", access_key=secret["AccessKeyId"], secret=secret["SecretAccessKey"])
    assert dry_run_error(lambda: as_user.encrypt(KeyId=key_meta["Arn"], Plaintext=b"x", DryRun=True)) == \
        ("DryRunOperationException", 412)
    code, status = dry_run_error(lambda: as_user.generate_data_key(KeyId=key_meta["Arn"], KeySpec="AES_256",
                                                                   DryRun=True))
    assert (code, status) == ("AccessDeniedException", 400)
