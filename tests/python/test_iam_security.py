"""IAM's security features through boto3: service-linked roles, server certificates and service last
accessed data.

Certificates are made here with the `cryptography` package, so an upload that Citadel accepts is a
real X.509 certificate whose key any TLS stack would accept.
"""

import datetime
import json
import os
import time
import uuid

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

ACCOUNT = "000000000000"


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_of(excinfo):
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"], excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def iam(server):
    return server.client("iam")


# Service-linked roles ----------------------------------------------------------------------------


def test_service_linked_role_life_cycle(iam):
    suffix = uuid.uuid4().hex[:8]
    role = iam.create_service_linked_role(
        AWSServiceName="autoscaling.amazonaws.com", CustomSuffix=suffix, Description="fleet")["Role"]
    name = f"AWSServiceRoleForAutoScaling_{suffix}"
    assert role["RoleName"] == name
    assert role["Path"] == "/aws-service-role/autoscaling.amazonaws.com/"
    assert role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/{name}"
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"]["Service"] == ["autoscaling.amazonaws.com"]
    assert trust["Statement"][0]["Action"] == ["sts:AssumeRole"]
    assert iam.get_role(RoleName=name)["Role"]["Description"] == "fleet"
    listed = iam.list_roles(PathPrefix="/aws-service-role/")["Roles"]
    assert name in [r["RoleName"] for r in listed]

    protected = [
        lambda: iam.delete_role(RoleName=name),
        lambda: iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust)),
        lambda: iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})),
        lambda: iam.attach_role_policy(RoleName=name, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess"),
    ]
    for call in protected:
        with pytest.raises(ClientError) as excinfo:
            call()
        code, message, status = error_of(excinfo)
        assert (code, status) == ("UnmodifiableEntity", 400)
        assert f"protected role '{name}'" in message

    task = iam.delete_service_linked_role(RoleName=name)["DeletionTaskId"]
    assert task.startswith(f"task/aws-service-role/autoscaling.amazonaws.com/{name}/")
    assert iam.get_service_linked_role_deletion_status(DeletionTaskId=task)["Status"] == "SUCCEEDED"
    with pytest.raises(ClientError) as excinfo:
        iam.get_role(RoleName=name)
    assert error_of(excinfo)[0] == "NoSuchEntity"


def test_service_linked_role_names_and_conflicts(iam):
    role = iam.create_service_linked_role(AWSServiceName="elasticbeanstalk.amazonaws.com")["Role"]
    assert role["RoleName"] == "AWSServiceRoleForElasticBeanstalk"
    try:
        with pytest.raises(ClientError) as excinfo:
            iam.create_service_linked_role(AWSServiceName="elasticbeanstalk.amazonaws.com")
        assert error_of(excinfo)[0] == "InvalidInput"
        with pytest.raises(ClientError) as excinfo:
            iam.delete_role(RoleName="AWSServiceRoleForElasticBeanstalk")
        assert error_of(excinfo)[0] == "UnmodifiableEntity"
    finally:
        iam.delete_service_linked_role(RoleName="AWSServiceRoleForElasticBeanstalk")
    plain = unique("plain")
    iam.create_role(RoleName=plain, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    with pytest.raises(ClientError) as excinfo:
        iam.delete_service_linked_role(RoleName=plain)
    assert error_of(excinfo)[0] == "InvalidInput"
    iam.delete_role(RoleName=plain)


# Server certificates -----------------------------------------------------------------------------


def make_certificate(common_name, key=None, days=30):
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256()))
    body = cert.public_bytes(serialization.Encoding.PEM).decode()
    return cert, body, key


def key_pem(key, fmt=serialization.PrivateFormat.PKCS8):
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def test_server_certificate_upload_get_update_delete(iam):
    name = unique("web")
    cert, body, key = make_certificate("web.example.test")
    _, chain, _ = make_certificate("ca.example.test")
    meta = iam.upload_server_certificate(
        ServerCertificateName=name, Path="/cloudfront/", CertificateBody=body, PrivateKey=key_pem(key),
        CertificateChain=chain, Tags=[{"Key": "env", "Value": "prod"}])["ServerCertificateMetadata"]
    assert meta["Arn"] == f"arn:aws:iam::{ACCOUNT}:server-certificate/cloudfront/{name}"
    assert meta["ServerCertificateId"].startswith("ASCA")
    assert meta["Expiration"] == cert.not_valid_after_utc.replace(microsecond=0)

    got = iam.get_server_certificate(ServerCertificateName=name)["ServerCertificate"]
    assert got["CertificateBody"] == body.strip()
    assert got["CertificateChain"] == chain.strip()
    assert "PrivateKey" not in got and "PRIVATE KEY" not in json.dumps(got, default=str)
    assert got["Tags"] == [{"Key": "env", "Value": "prod"}]
    # What comes back is the certificate that went in.
    assert x509.load_pem_x509_certificate(got["CertificateBody"].encode()) == cert

    iam.tag_server_certificate(ServerCertificateName=name, Tags=[{"Key": "team", "Value": "edge"}])
    iam.untag_server_certificate(ServerCertificateName=name, TagKeys=["env"])
    assert iam.list_server_certificate_tags(ServerCertificateName=name)["Tags"] == [{"Key": "team", "Value": "edge"}]

    renamed = unique("web2")
    iam.update_server_certificate(ServerCertificateName=name, NewServerCertificateName=renamed, NewPath="/elb/")
    with pytest.raises(ClientError) as excinfo:
        iam.get_server_certificate(ServerCertificateName=name)
    assert error_of(excinfo)[0] == "NoSuchEntity"
    moved = iam.get_server_certificate(ServerCertificateName=renamed)["ServerCertificate"]
    assert moved["ServerCertificateMetadata"]["Path"] == "/elb/"
    assert moved["ServerCertificateMetadata"]["ServerCertificateId"] == meta["ServerCertificateId"]

    iam.delete_server_certificate(ServerCertificateName=renamed)
    with pytest.raises(ClientError) as excinfo:
        iam.delete_server_certificate(ServerCertificateName=renamed)
    assert error_of(excinfo)[0] == "NoSuchEntity"


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8])
def test_server_certificate_rsa_keys_in_both_encodings(iam, fmt):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _, body, _ = make_certificate("rsa.example.test", key=key)
    name = unique("rsa")
    iam.upload_server_certificate(ServerCertificateName=name, CertificateBody=body, PrivateKey=key_pem(key, fmt))
    iam.delete_server_certificate(ServerCertificateName=name)


def test_server_certificate_rejects_mismatched_and_malformed_input(iam):
    _, body, _ = make_certificate("a.example.test")
    _, _, other_key = make_certificate("b.example.test")
    with pytest.raises(ClientError) as excinfo:
        iam.upload_server_certificate(ServerCertificateName=unique("bad"), CertificateBody=body,
                                      PrivateKey=key_pem(other_key))
    assert error_of(excinfo)[0] == "KeyPairMismatch"
    assert error_of(excinfo)[2] == 400
    _, _, key = make_certificate("c.example.test")
    with pytest.raises(ClientError) as excinfo:
        iam.upload_server_certificate(ServerCertificateName=unique("bad"),
                                      CertificateBody="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
                                      PrivateKey=key_pem(key))
    assert error_of(excinfo)[0] == "MalformedCertificate"
    cert, body, key = make_certificate("d.example.test")
    name = unique("dup")
    iam.upload_server_certificate(ServerCertificateName=name, CertificateBody=body, PrivateKey=key_pem(key))
    with pytest.raises(ClientError) as excinfo:
        iam.upload_server_certificate(ServerCertificateName=name.upper(), CertificateBody=body,
                                      PrivateKey=key_pem(key))
    assert error_of(excinfo)[0] == "EntityAlreadyExists"
    iam.delete_server_certificate(ServerCertificateName=name)


def test_list_server_certificates_pages(iam):
    path = f"/{unique('pages')}/"
    names = sorted(unique("c") for _ in range(5))
    for name in names:
        _, body, key = make_certificate(f"{name}.example.test")
        iam.upload_server_certificate(ServerCertificateName=name, Path=path, CertificateBody=body,
                                      PrivateKey=key_pem(key))
    seen = []
    kwargs = {"PathPrefix": path, "MaxItems": 2}
    while True:
        page = iam.list_server_certificates(**kwargs)
        assert len(page["ServerCertificateMetadataList"]) <= 2
        seen += [m["ServerCertificateName"] for m in page["ServerCertificateMetadataList"]]
        if not page["IsTruncated"]:
            break
        kwargs["Marker"] = page["Marker"]
    assert seen == names
    paginated = [m["ServerCertificateName"]
                 for page in iam.get_paginator("list_server_certificates").paginate(
                     PathPrefix=path, PaginationConfig={"PageSize": 3})
                 for m in page["ServerCertificateMetadataList"]]
    assert paginated == names
    for name in names:
        iam.delete_server_certificate(ServerCertificateName=name)


# Service last accessed data ----------------------------------------------------------------------


def wait_for_job(get, **kwargs):
    for _ in range(50):
        out = get(**kwargs)
        if out["JobStatus"] != "IN_PROGRESS":
            return out
        time.sleep(0.1)
    raise AssertionError("job did not complete")


def test_service_last_accessed_details_from_real_calls(server, iam):
    user = unique("analyst")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="work", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListAllMyBuckets", "s3:CreateBucket"], "Resource": "*"},
            {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
        ]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    s3 = server.client("s3", access_key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    s3.list_buckets()
    # A denied call is an authentication attempt too, as AWS counts them; ListUsers is not allowed
    # and IAM is not in the policies, so it is not reported.
    as_user_iam = server.client("iam", access_key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    with pytest.raises(ClientError):
        as_user_iam.list_users()
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/{user}"

    job = iam.generate_service_last_accessed_details(Arn=user_arn, Granularity="ACTION_LEVEL")["JobId"]
    report = wait_for_job(iam.get_service_last_accessed_details, JobId=job)
    assert report["JobStatus"] == "COMPLETED"
    assert report["JobType"] == "ACTION_LEVEL"
    assert report["JobCompletionDate"] >= report["JobCreationDate"]
    by_ns = {s["ServiceNamespace"]: s for s in report["ServicesLastAccessed"]}
    assert set(by_ns) == {"kms", "s3"}
    s3_entry = by_ns["s3"]
    assert s3_entry["ServiceName"] == "Amazon S3"
    assert s3_entry["LastAuthenticatedEntity"] == user_arn
    assert s3_entry["TotalAuthenticatedEntities"] == 1
    assert s3_entry["LastAuthenticatedRegion"] == "us-east-1"
    age = datetime.datetime.now(datetime.timezone.utc) - s3_entry["LastAuthenticated"]
    assert age < datetime.timedelta(minutes=5)
    assert "ListBuckets" in [a["ActionName"] for a in s3_entry["TrackedActionsLastAccessed"]]
    assert by_ns["kms"]["TotalAuthenticatedEntities"] == 0
    assert "LastAuthenticated" not in by_ns["kms"]

    entities = iam.get_service_last_accessed_details_with_entities(JobId=job, ServiceNamespace="s3")
    assert entities["JobStatus"] == "COMPLETED"
    [entry] = entities["EntityDetailsList"]
    assert entry["EntityInfo"]["Arn"] == user_arn and entry["EntityInfo"]["Type"] == "USER"
    assert entry["LastAuthenticated"] == s3_entry["LastAuthenticated"]

    with pytest.raises(ClientError) as excinfo:
        iam.generate_service_last_accessed_details(Arn=f"arn:aws:iam::{ACCOUNT}:user/{unique('ghost')}")
    assert error_of(excinfo)[0] == "NoSuchEntity"


def test_server_certificate_private_key_stays_out_of_the_data_dir_and_cloudtrail(server, iam):
    name = unique("sealed")
    _, body, key = make_certificate("sealed.example.test")
    pem = key_pem(key)
    iam.upload_server_certificate(ServerCertificateName=name, CertificateBody=body, PrivateKey=pem)
    # The longest line of the key's base64 body is unique to this key.
    needle = max(pem.splitlines(), key=len).encode()
    found = []
    for root, _, files in os.walk(server.data_dir):
        for file_name in files:
            with open(os.path.join(root, file_name), "rb") as f:
                if needle in f.read():
                    found.append(file_name)
    assert found == []
    events = server.client("cloudtrail").lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "UploadServerCertificate"}])["Events"]
    records = [json.loads(e["CloudTrailEvent"]) for e in events]
    mine = [r for r in records if r["requestParameters"]["serverCertificateName"] == name]
    assert mine, records
    assert "PRIVATE KEY" not in json.dumps(mine)
    assert "privateKey" not in mine[0]["requestParameters"]
    assert mine[0]["requestParameters"]["certificateBody"].startswith("-----BEGIN CERTIFICATE-----")
    iam.delete_server_certificate(ServerCertificateName=name)
