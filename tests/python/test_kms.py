"""KMS through boto3 and the aws CLI: keys, aliases, crypto, rotation, grants, key pairs, import.

Signatures and public keys are checked with the `cryptography` package, so a passing test means a
real signature that any verifier accepts, not just a round trip through Citadel.
"""

import base64
import datetime
import json
import os
import uuid

import botocore.config
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

ACCOUNT = "000000000000"


@pytest.fixture(scope="module")
def kms(server):
    return server.client("kms")


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def new_key(kms, **kw):
    return kms.create_key(**kw)["KeyMetadata"]["KeyId"]


def unique_alias(prefix="alias/t"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# Key lifecycle -----------------------------------------------------------------------------------


def test_create_describe_and_default_policy(kms):
    meta = kms.create_key(Description="lifecycle", Tags=[{"TagKey": "team", "TagValue": "sec"}])["KeyMetadata"]
    key_id = meta["KeyId"]
    assert meta["Arn"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"
    assert meta["KeyState"] == "Enabled" and meta["Enabled"] is True
    assert meta["KeySpec"] == "SYMMETRIC_DEFAULT" and meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert meta["Origin"] == "AWS_KMS" and meta["KeyManager"] == "CUSTOMER"
    assert isinstance(meta["CreationDate"], datetime.datetime)
    described = kms.describe_key(KeyId=meta["Arn"])["KeyMetadata"]
    assert described["Description"] == "lifecycle"
    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert policy["Statement"][0]["Principal"]["AWS"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert policy["Statement"][0]["Action"] == "kms:*"
    assert kms.list_key_policies(KeyId=key_id)["PolicyNames"] == ["default"]
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "team", "TagValue": "sec"}]


def test_unknown_keys_are_not_found(kms):
    for key_id in [str(uuid.uuid4()), "alias/does-not-exist", "not-a-key-id"]:
        with pytest.raises(ClientError) as excinfo:
            kms.describe_key(KeyId=key_id)
        assert error_code(excinfo) == "NotFoundException"


def test_list_keys_paginates(kms):
    created = {new_key(kms) for _ in range(3)}
    seen = set()
    marker = None
    while True:
        kwargs = {"Limit": 2}
        if marker:
            kwargs["Marker"] = marker
        page = kms.list_keys(**kwargs)
        assert len(page["Keys"]) <= 2
        seen.update(k["KeyId"] for k in page["Keys"])
        if not page["Truncated"]:
            break
        marker = page["NextMarker"]
    assert created <= seen
    paginated = {k["KeyId"] for p in kms.get_paginator("list_keys").paginate() for k in p["Keys"]}
    assert created <= paginated


def test_disable_enable_and_states(kms):
    key_id = new_key(kms)
    kms.disable_key(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    with pytest.raises(ClientError) as excinfo:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert error_code(excinfo) == "DisabledException"
    kms.enable_key(KeyId=key_id)
    kms.encrypt(KeyId=key_id, Plaintext=b"x")


def test_schedule_and_cancel_deletion(kms):
    key_id = new_key(kms)
    with pytest.raises(ClientError) as excinfo:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=6)
    assert error_code(excinfo) == "ValidationException"
    out = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingDeletion" and out["PendingWindowInDays"] == 7
    assert out["DeletionDate"] > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=6)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and "DeletionDate" in meta
    for call in (lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"), lambda: kms.enable_key(KeyId=key_id)):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_code(excinfo) == "KMSInvalidStateException"
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    with pytest.raises(ClientError) as excinfo:
        kms.cancel_key_deletion(KeyId=key_id)
    assert error_code(excinfo) == "KMSInvalidStateException"


def test_description_tags_and_policy(kms):
    key_id = new_key(kms)
    kms.update_key_description(KeyId=key_id, Description="changed")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "changed"
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "a", "TagValue": "1"}, {"TagKey": "b", "TagValue": "2"}])
    kms.untag_resource(KeyId=key_id, TagKeys=["a"])
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "b", "TagValue": "2"}]
    with pytest.raises(ClientError) as excinfo:
        kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "aws:reserved", "TagValue": "1"}])
    assert error_code(excinfo) == "TagException"
    foreign = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "kms:*", "Resource": "*"}]})
    with pytest.raises(ClientError) as excinfo:
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=foreign)
    assert error_code(excinfo) == "MalformedPolicyDocumentException"
    with pytest.raises(ClientError) as excinfo:
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy="{not json")
    assert error_code(excinfo) == "MalformedPolicyDocumentException"
    mine = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*", "Resource": "*"}]})
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=mine)
    assert kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"] == mine


def test_create_key_with_lockout_policy_needs_bypass(kms):
    foreign = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "kms:*", "Resource": "*"}]})
    with pytest.raises(ClientError) as excinfo:
        kms.create_key(Policy=foreign)
    assert error_code(excinfo) == "MalformedPolicyDocumentException"
    meta = kms.create_key(Policy=foreign, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled"


# Aliases ------------------------------------------------------------------------------------------


def test_alias_rules(kms):
    key_id, other = new_key(kms), new_key(kms)
    name = unique_alias()
    kms.create_alias(AliasName=name, TargetKeyId=key_id)
    cases = [
        (dict(AliasName=name, TargetKeyId=key_id), "AlreadyExistsException"),
        (dict(AliasName="alias/aws/s3", TargetKeyId=key_id), "NotAuthorizedException"),
        (dict(AliasName="no-prefix", TargetKeyId=key_id), "ValidationException"),
        (dict(AliasName=unique_alias(), TargetKeyId=name), "ValidationException"),
        (dict(AliasName=unique_alias(), TargetKeyId=str(uuid.uuid4())), "NotFoundException"),
    ]
    for kwargs, code in cases:
        with pytest.raises(ClientError) as excinfo:
            kms.create_alias(**kwargs)
        assert error_code(excinfo) == code, kwargs
    out = kms.encrypt(KeyId=name, Plaintext=b"via alias")
    assert out["KeyId"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"
    assert kms.describe_key(KeyId=f"arn:aws:kms:us-east-1:{ACCOUNT}:{name}")["KeyMetadata"]["KeyId"] == key_id
    listed = kms.list_aliases(KeyId=key_id)["Aliases"]
    assert [a["AliasName"] for a in listed] == [name]
    assert listed[0]["AliasArn"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:{name}"
    kms.update_alias(AliasName=name, TargetKeyId=other)
    assert kms.list_aliases(KeyId=other)["Aliases"][0]["TargetKeyId"] == other
    kms.delete_alias(AliasName=name)
    with pytest.raises(ClientError) as excinfo:
        kms.delete_alias(AliasName=name)
    assert error_code(excinfo) == "NotFoundException"


# Symmetric cryptography ---------------------------------------------------------------------------


def test_encrypt_decrypt_with_context(kms):
    key_id = new_key(kms)
    context = {"tenant": "a", "purpose": "test"}
    out = kms.encrypt(KeyId=key_id, Plaintext=b"attack at dawn", EncryptionContext=context)
    blob = out["CiphertextBlob"]
    assert out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    back = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
    assert back["Plaintext"] == b"attack at dawn"
    assert back["KeyId"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"
    for wrong in [{}, {"tenant": "a"}, {"tenant": "b", "purpose": "test"}]:
        with pytest.raises(ClientError) as excinfo:
            kms.decrypt(CiphertextBlob=blob, EncryptionContext=wrong)
        assert error_code(excinfo) == "InvalidCiphertextException"
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    with pytest.raises(ClientError) as excinfo:
        kms.decrypt(CiphertextBlob=bytes(tampered), EncryptionContext=context)
    assert error_code(excinfo) == "InvalidCiphertextException"
    with pytest.raises(ClientError) as excinfo:
        kms.decrypt(CiphertextBlob=blob, EncryptionContext=context, KeyId=new_key(kms))
    assert error_code(excinfo) == "IncorrectKeyException"
    with pytest.raises(ClientError) as excinfo:
        kms.encrypt(KeyId=key_id, Plaintext=b"x" * 4097)
    assert error_code(excinfo) == "ValidationException"


def test_re_encrypt(kms):
    source, destination = new_key(kms), new_key(kms)
    blob = kms.encrypt(KeyId=source, Plaintext=b"move me", EncryptionContext={"a": "1"})["CiphertextBlob"]
    out = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext={"a": "1"}, DestinationKeyId=destination,
                         DestinationEncryptionContext={"b": "2"})
    assert out["SourceKeyId"].endswith(source) and out["KeyId"].endswith(destination)
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"b": "2"})["Plaintext"] == b"move me"


def test_data_keys_and_random(kms):
    key_id = new_key(kms)
    for kwargs, length in [({"KeySpec": "AES_256"}, 32), ({"KeySpec": "AES_128"}, 16), ({"NumberOfBytes": 64}, 64)]:
        out = kms.generate_data_key(KeyId=key_id, **kwargs)
        assert len(out["Plaintext"]) == length
        assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"])["Plaintext"] == out["Plaintext"]
    out = kms.generate_data_key_without_plaintext(KeyId=key_id, KeySpec="AES_256")
    assert "Plaintext" not in out
    assert len(kms.decrypt(CiphertextBlob=out["CiphertextBlob"])["Plaintext"]) == 32
    with pytest.raises(ClientError) as excinfo:
        kms.generate_data_key(KeyId=key_id)
    assert error_code(excinfo) == "ValidationException"
    randoms = {kms.generate_random(NumberOfBytes=32)["Plaintext"] for _ in range(4)}
    assert len(randoms) == 4 and all(len(r) == 32 for r in randoms)
    with pytest.raises(ClientError) as excinfo:
        kms.generate_random(NumberOfBytes=1025)
    assert error_code(excinfo) == "ValidationException"


def test_data_key_pairs(kms):
    key_id = new_key(kms)
    out = kms.generate_data_key_pair(KeyId=key_id, KeyPairSpec="RSA_2048", EncryptionContext={"k": "v"})
    private = serialization.load_der_private_key(out["PrivateKeyPlaintext"], password=None)
    public_der = private.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    assert public_der == out["PublicKey"]
    decrypted = kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"], EncryptionContext={"k": "v"})
    assert decrypted["Plaintext"] == out["PrivateKeyPlaintext"]
    out = kms.generate_data_key_pair_without_plaintext(KeyId=key_id, KeyPairSpec="ECC_NIST_P256")
    assert "PrivateKeyPlaintext" not in out
    assert isinstance(serialization.load_der_public_key(out["PublicKey"]), ec.EllipticCurvePublicKey)


# Rotation -----------------------------------------------------------------------------------------


def test_rotation(kms, server):
    key_id = new_key(kms)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is False
    with pytest.raises(ClientError) as excinfo:
        # botocore checks the range itself; skip that to reach the server's check.
        unchecked = server.client("kms", config=botocore.config.Config(parameter_validation=False))
        unchecked.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=30)
    assert error_code(excinfo) == "ValidationException"
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=180)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 180
    assert "NextRotationDate" in status
    old = kms.encrypt(KeyId=key_id, Plaintext=b"before")["CiphertextBlob"]
    kms.rotate_key_on_demand(KeyId=key_id)
    new = kms.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=old)["Plaintext"] == b"before"
    assert kms.decrypt(CiphertextBlob=new)["Plaintext"] == b"after"
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["ON_DEMAND"]
    assert "OnDemandRotationStartDate" in kms.get_key_rotation_status(KeyId=key_id)
    kms.disable_key_rotation(KeyId=key_id)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    kms.disable_key(KeyId=key_id)
    with pytest.raises(ClientError) as excinfo:
        kms.rotate_key_on_demand(KeyId=key_id)
    assert error_code(excinfo) == "DisabledException"
    signing = new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    with pytest.raises(ClientError) as excinfo:
        kms.enable_key_rotation(KeyId=signing)
    assert error_code(excinfo) == "UnsupportedOperationException"


# Grants -------------------------------------------------------------------------------------------


def test_grants(kms):
    key_id = new_key(kms)
    grantee = f"arn:aws:iam::{ACCOUNT}:role/app"
    out = kms.create_grant(KeyId=key_id, GranteePrincipal=grantee, RetiringPrincipal=grantee,
                           Operations=["Encrypt", "Decrypt"], Name="app-grant",
                           Constraints={"EncryptionContextSubset": {"tenant": "a"}})
    grant_id, token = out["GrantId"], out["GrantToken"]
    again = kms.create_grant(KeyId=key_id, GranteePrincipal=grantee, RetiringPrincipal=grantee,
                             Operations=["Encrypt", "Decrypt"], Name="app-grant",
                             Constraints={"EncryptionContextSubset": {"tenant": "a"}})
    assert again["GrantId"] == grant_id
    grants = kms.list_grants(KeyId=key_id)["Grants"]
    assert len(grants) == 1
    assert grants[0]["GranteePrincipal"] == grantee and grants[0]["Operations"] == ["Encrypt", "Decrypt"]
    assert grants[0]["Constraints"] == {"EncryptionContextSubset": {"tenant": "a"}}
    assert grants[0]["IssuingAccount"] == f"arn:aws:iam::{ACCOUNT}:root"
    kms.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "a"}, GrantTokens=[token])
    with pytest.raises(ClientError) as excinfo:
        kms.encrypt(KeyId=key_id, Plaintext=b"x", GrantTokens=["bogus-token"])
    assert error_code(excinfo) == "InvalidGrantTokenException"
    retirable = kms.list_retirable_grants(RetiringPrincipal=grantee)["Grants"]
    assert grant_id in [g["GrantId"] for g in retirable]
    kms.revoke_grant(KeyId=key_id, GrantId=grant_id)
    assert kms.list_grants(KeyId=key_id)["Grants"] == []
    second = kms.create_grant(KeyId=key_id, GranteePrincipal=grantee, Operations=["Decrypt"])
    kms.retire_grant(GrantToken=second["GrantToken"])
    assert kms.list_grants(KeyId=key_id)["Grants"] == []
    with pytest.raises(ClientError) as excinfo:
        kms.create_grant(KeyId=key_id, GranteePrincipal=grantee, Operations=["Sign"])
    assert error_code(excinfo) == "ValidationException"


# Asymmetric and HMAC keys ------------------------------------------------------------------------

SIGNING_CASES = [
    ("RSA_2048", "RSASSA_PSS_SHA_256"), ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"),
    ("RSA_3072", "RSASSA_PSS_SHA_384"), ("RSA_4096", "RSASSA_PKCS1_V1_5_SHA_512"),
    ("ECC_NIST_P256", "ECDSA_SHA_256"), ("ECC_NIST_P384", "ECDSA_SHA_384"),
    ("ECC_NIST_P521", "ECDSA_SHA_512"), ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
]
HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def verify_locally(public_der, algorithm, message, signature, prehashed=False):
    public = serialization.load_der_public_key(public_der)
    hash_cls = HASHES[algorithm[-3:]]
    chosen = utils.Prehashed(hash_cls()) if prehashed else hash_cls()
    if algorithm.startswith("ECDSA"):
        public.verify(signature, message, ec.ECDSA(chosen))
    elif algorithm.startswith("RSASSA_PSS"):
        public.verify(signature, message, padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size), chosen)
    else:
        public.verify(signature, message, padding.PKCS1v15(), chosen)


@pytest.mark.parametrize("spec,algorithm", SIGNING_CASES)
def test_sign_verify_and_public_key(kms, spec, algorithm):
    key_id = new_key(kms, KeySpec=spec, KeyUsage="SIGN_VERIFY")
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert algorithm in meta["SigningAlgorithms"] and "EncryptionAlgorithms" not in meta
    public = kms.get_public_key(KeyId=key_id)
    assert public["KeySpec"] == spec and public["KeyUsage"] == "SIGN_VERIFY"
    loaded = serialization.load_der_public_key(public["PublicKey"])
    if spec.startswith("RSA"):
        assert isinstance(loaded, rsa.RSAPublicKey) and loaded.key_size == int(spec[-4:])
    else:
        assert isinstance(loaded, ec.EllipticCurvePublicKey)
    message = b"the message to sign"
    signature = kms.sign(KeyId=key_id, Message=message, SigningAlgorithm=algorithm)["Signature"]
    verify_locally(public["PublicKey"], algorithm, message, signature)
    assert kms.verify(KeyId=key_id, Message=message, Signature=signature,
                      SigningAlgorithm=algorithm)["SignatureValid"] is True
    with pytest.raises(ClientError) as excinfo:
        kms.verify(KeyId=key_id, Message=b"another message", Signature=signature, SigningAlgorithm=algorithm)
    assert error_code(excinfo) == "KMSInvalidSignatureException"
    digest = hashes.Hash(HASHES[algorithm[-3:]]())
    digest.update(message)
    digest = digest.finalize()
    signature = kms.sign(KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm)["Signature"]
    verify_locally(public["PublicKey"], algorithm, digest, signature, prehashed=True)
    with pytest.raises(ClientError) as excinfo:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert error_code(excinfo) == "InvalidKeyUsageException"


@pytest.mark.parametrize("algorithm,hash_cls", [("RSAES_OAEP_SHA_1", hashes.SHA1), ("RSAES_OAEP_SHA_256", hashes.SHA256)])
def test_rsa_encryption(kms, algorithm, hash_cls):
    key_id = new_key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    oaep = padding.OAEP(mgf=padding.MGF1(hash_cls()), algorithm=hash_cls(), label=None)
    ciphertext = public.encrypt(b"encrypted outside", oaep)
    out = kms.decrypt(KeyId=key_id, CiphertextBlob=ciphertext, EncryptionAlgorithm=algorithm)
    assert out["Plaintext"] == b"encrypted outside"
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"inside", EncryptionAlgorithm=algorithm)["CiphertextBlob"]
    assert kms.decrypt(KeyId=key_id, CiphertextBlob=blob, EncryptionAlgorithm=algorithm)["Plaintext"] == b"inside"


@pytest.mark.parametrize("spec,algorithm,length", [("HMAC_224", "HMAC_SHA_224", 28), ("HMAC_256", "HMAC_SHA_256", 32),
                                                   ("HMAC_384", "HMAC_SHA_384", 48), ("HMAC_512", "HMAC_SHA_512", 64)])
def test_hmac(kms, spec, algorithm, length):
    key_id = new_key(kms, KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["MacAlgorithms"] == [algorithm]
    mac = kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm=algorithm)["Mac"]
    assert len(mac) == length
    assert kms.verify_mac(KeyId=key_id, Message=b"m", Mac=mac, MacAlgorithm=algorithm)["MacValid"] is True
    with pytest.raises(ClientError) as excinfo:
        kms.verify_mac(KeyId=key_id, Message=b"n", Mac=mac, MacAlgorithm=algorithm)
    assert error_code(excinfo) == "KMSInvalidMacException"


# Imported key material ---------------------------------------------------------------------------


def import_material(kms, key_id, material, **kw):
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    wrapping = serialization.load_der_public_key(params["PublicKey"])
    wrapped = wrapping.encrypt(material, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                                                      label=None))
    return kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped, **kw)


def test_import_key_material(kms):
    key_id = new_key(kms, Origin="EXTERNAL")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    material = os.urandom(32)
    valid_to = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
    import_material(kms, key_id, material, ValidTo=valid_to, ExpirationModel="KEY_MATERIAL_EXPIRES")
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"with imported material")["CiphertextBlob"]
    with pytest.raises(ClientError) as excinfo:
        import_material(kms, key_id, os.urandom(32))
    assert error_code(excinfo) == "IncorrectKeyMaterialException"
    kms.delete_imported_key_material(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(ClientError) as excinfo:
        kms.decrypt(CiphertextBlob=blob)
    assert error_code(excinfo) == "KMSInvalidStateException"
    import_material(kms, key_id, material)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"with imported material"
    with pytest.raises(ClientError) as excinfo:
        kms.get_parameters_for_import(KeyId=new_key(kms), WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                      WrappingKeySpec="RSA_2048")
    assert error_code(excinfo) == "UnsupportedOperationException"


# The aws CLI -------------------------------------------------------------------------------------


def test_cli_round_trip(server, tmp_path):
    key_id = json.loads(server.aws("kms", "create-key", "--description", "cli").stdout)["KeyMetadata"]["KeyId"]
    server.aws("kms", "create-alias", "--alias-name", "alias/cli-" + key_id[:8], "--target-key-id", key_id)
    plain_file = tmp_path / "plain.bin"
    plain_file.write_bytes(b"from the cli")
    blob_b64 = server.aws("kms", "encrypt", "--key-id", "alias/cli-" + key_id[:8], "--plaintext",
                          f"fileb://{plain_file}", "--encryption-context", "stage=test",
                          "--query", "CiphertextBlob", "--output", "text").stdout.strip()
    blob_file = tmp_path / "blob.bin"
    blob_file.write_bytes(base64.b64decode(blob_b64))
    out = server.aws("kms", "decrypt", "--ciphertext-blob", f"fileb://{blob_file}", "--encryption-context",
                     "stage=test", "--query", "Plaintext", "--output", "text").stdout.strip()
    assert base64.b64decode(out) == b"from the cli"
    failed = server.aws("kms", "decrypt", "--ciphertext-blob", f"fileb://{blob_file}", check=False)
    assert failed.returncode != 0 and "InvalidCiphertextException" in failed.stderr
    described = json.loads(server.aws("kms", "describe-key", "--key-id", key_id).stdout)
    assert isinstance(described["KeyMetadata"]["CreationDate"], (int, float))
    listed = json.loads(server.aws("kms", "list-aliases", "--key-id", key_id).stdout)
    assert listed["Aliases"][0]["TargetKeyId"] == key_id


# Nothing secret at rest ----------------------------------------------------------------------------


def test_data_dir_holds_no_plaintext_or_key_material(server, kms):
    marker = ("citadel-secret-" + uuid.uuid4().hex).encode()
    key_id = new_key(kms)
    kms.encrypt(KeyId=key_id, Plaintext=marker)
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"]
    external = new_key(kms, Origin="EXTERNAL")
    material = os.urandom(32)
    import_material(kms, external, material)
    kms.encrypt(KeyId=external, Plaintext=b"x")
    needles = [marker, base64.b64encode(marker), material, base64.b64encode(material), data_key,
               base64.b64encode(data_key)]
    found = []
    for root, _, files in os.walk(server.data_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                content = f.read()
            found.extend((name, needle) for needle in needles if needle in content)
    assert found == []
