"""CloudTrail through boto3 and the aws CLI: trails, LookupEvents, log delivery, and the real
`aws cloudtrail validate-logs` accepting our digest chain and rejecting tampered files.

The server runs with short intervals (log files every 2 s, digests every 6 s) so a chain of several
digests exists within seconds.
"""

import datetime
import gzip
import json
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT_ID, CitadelServer
from helpers import bucket_for_trails, error_code, wait_for

REGION = "us-east-1"


@pytest.fixture(scope="module")
def ct_server():
    s = CitadelServer("--test-api", "--trail-delivery-interval", "2s", "--digest-interval", "6s")
    yield s
    s.close()


def keys_under(s3, bucket, prefix):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


# Trails ------------------------------------------------------------------------------------------


def test_create_trail_errors(ct_server):
    ct = ct_server.client("cloudtrail")
    s3 = ct_server.client("s3")
    with pytest.raises(ClientError) as e:
        ct.create_trail(Name="t-missing", S3BucketName=f"no-such-{uuid.uuid4().hex[:10]}")
    assert error_code(e) == "S3BucketDoesNotExistException"
    bare = bucket_for_trails(s3, policy=False)
    with pytest.raises(ClientError) as e:
        ct.create_trail(Name="t-nopolicy", S3BucketName=bare)
    assert error_code(e) == "InsufficientS3BucketPolicyException"
    bucket = bucket_for_trails(s3)
    with pytest.raises(ClientError) as e:
        ct.create_trail(Name="-bad-", S3BucketName=bucket)
    assert error_code(e) == "InvalidTrailNameException"
    ct.create_trail(Name="t-dup", S3BucketName=bucket)
    with pytest.raises(ClientError) as e:
        ct.create_trail(Name="t-dup", S3BucketName=bucket)
    assert error_code(e) == "TrailAlreadyExistsException"
    with pytest.raises(ClientError) as e:
        ct.get_trail_status(Name="t-unknown")
    assert error_code(e) == "TrailNotFoundException"
    ct.delete_trail(Name="t-dup")


def test_trail_lifecycle(ct_server):
    ct = ct_server.client("cloudtrail")
    s3 = ct_server.client("s3")
    bucket = bucket_for_trails(s3, log_prefix="pfx")
    name = f"life-{uuid.uuid4().hex[:8]}"
    created = ct.create_trail(Name=name, S3BucketName=bucket, S3KeyPrefix="pfx", EnableLogFileValidation=True,
                              TagsList=[{"Key": "team", "Value": "sec"}])
    arn = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:trail/{name}"
    assert created["TrailARN"] == arn
    assert created["LogFileValidationEnabled"] is True
    trails = {t["Name"]: t for t in ct.describe_trails()["trailList"]}
    assert trails[name]["TrailARN"] == arn
    assert trails[name]["S3KeyPrefix"] == "pfx"
    assert trails[name]["HomeRegion"] == REGION
    assert trails[name]["IsOrganizationTrail"] is False
    assert ct.get_trail(Name=arn)["Trail"]["Name"] == name
    assert any(t["TrailARN"] == arn for t in ct.list_trails()["Trails"])
    assert ct.get_trail_status(Name=name)["IsLogging"] is False
    ct.start_logging(Name=name)
    status = ct.get_trail_status(Name=name)
    assert status["IsLogging"] is True
    assert isinstance(status["StartLoggingTime"], datetime.datetime)
    ct.put_event_selectors(TrailName=name, EventSelectors=[
        {"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True,
         "ExcludeManagementEventSources": ["kms.amazonaws.com"]}])
    assert ct.get_event_selectors(TrailName=name)["EventSelectors"][0]["ReadWriteType"] == "WriteOnly"
    ct.put_insight_selectors(TrailName=name, InsightSelectors=[{"InsightType": "ApiCallRateInsight"}])
    assert ct.get_insight_selectors(TrailName=name)["InsightSelectors"] == [{"InsightType": "ApiCallRateInsight"}]
    ct.add_tags(ResourceId=arn, TagsList=[{"Key": "env", "Value": "test"}])
    ct.remove_tags(ResourceId=arn, TagsList=[{"Key": "team"}])
    tags = ct.list_tags(ResourceIdList=[arn])["ResourceTagList"][0]["TagsList"]
    assert tags == [{"Key": "env", "Value": "test"}]
    ct.update_trail(Name=name, EnableLogFileValidation=False)
    assert ct.get_trail(Name=name)["Trail"]["LogFileValidationEnabled"] is False
    ct.stop_logging(Name=name)
    assert ct.get_trail_status(Name=name)["IsLogging"] is False
    ct.delete_trail(Name=name)
    with pytest.raises(ClientError) as e:
        ct.get_trail(Name=name)
    assert error_code(e) == "TrailNotFoundException"


def test_list_public_keys_are_pkcs1(ct_server):
    out = ct_server.aws("cloudtrail", "list-public-keys", "--region", REGION)
    keys = json.loads(out.stdout)["PublicKeyList"]
    assert keys and all(k["Value"].startswith("MIIBCg") for k in keys)
    assert all(len(k["Fingerprint"]) == 32 for k in keys)


# LookupEvents ------------------------------------------------------------------------------------


def test_lookup_events_filters_and_pages(ct_server):
    iam = ct_server.client("iam")
    ct = ct_server.client("cloudtrail")
    user = f"lookup-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="list", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    names = [f"{user}-{i}" for i in range(5)]
    for n in names:
        iam.create_user(UserName=n)

    def created_users():
        events = ct.lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}],
                                  MaxResults=50)["Events"]
        return [e for e in events if user in e["CloudTrailEvent"]]

    events = wait_for(lambda: len(created_users()) >= 6 and created_users())
    times = [e["EventTime"] for e in events]
    assert times == sorted(times, reverse=True)
    first = events[0]
    assert first["EventName"] == "CreateUser" and first["EventSource"] == "iam.amazonaws.com"
    assert first["ReadOnly"] == "false"
    assert json.loads(first["CloudTrailEvent"])["eventName"] == "CreateUser"

    as_user = ct_server.client("iam", access_key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    wait_for(lambda: _try(as_user.list_users), timeout=20)

    def by_username():
        return ct.lookup_events(LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": user}])["Events"]

    mine = wait_for(by_username, timeout=30)
    assert all(e.get("Username") == user for e in mine)
    assert any(e["EventName"] == "ListUsers" and e["ReadOnly"] == "true" for e in mine)

    # Pages of 2: every event once, and no token ever repeats.
    seen, tokens, token = [], set(), None
    while True:
        kwargs = {"MaxResults": 2, "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}]}
        if token:
            kwargs["NextToken"] = token
        page = ct.lookup_events(**kwargs)
        seen.extend(e["EventId"] for e in page["Events"])
        token = page.get("NextToken")
        if not token:
            break
        assert token not in tokens
        tokens.add(token)
    assert len(seen) == len(set(seen)) >= 6
    paginated = [e["EventId"] for p in ct.get_paginator("lookup_events").paginate(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}],
        PaginationConfig={"PageSize": 3}) for e in p["Events"]]
    assert paginated == seen

    with pytest.raises(ClientError) as e:
        ct.lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "A"},
                                           {"AttributeKey": "Username", "AttributeValue": "B"}])
    assert error_code(e) == "InvalidLookupAttributesException"


def _try(fn):
    try:
        fn()
        return True
    except ClientError:
        return False


# Delivery and validate-logs ----------------------------------------------------------------------


def run_validate(server, arn, start):
    return server.aws("cloudtrail", "validate-logs", "--region", REGION, "--trail-arn", arn,
                      "--start-time", start, "--verbose", check=False)


def test_delivery_and_validate_logs(ct_server):
    ct = ct_server.client("cloudtrail")
    s3 = ct_server.client("s3")
    iam = ct_server.client("iam")
    bucket = bucket_for_trails(s3, log_prefix="logs")
    name = f"valid-{uuid.uuid4().hex[:8]}"
    start = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ct.create_trail(Name=name, S3BucketName=bucket, S3KeyPrefix="logs", EnableLogFileValidation=True)
    ct.start_logging(Name=name)
    arn = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:trail/{name}"
    for i in range(3):
        iam.create_user(UserName=f"{name}-{i}")
    log_prefix = f"logs/AWSLogs/{ACCOUNT_ID}/CloudTrail/{REGION}/"
    digest_prefix = f"logs/AWSLogs/{ACCOUNT_ID}/CloudTrail-Digest/{REGION}/"

    logs = wait_for(lambda: keys_under(s3, bucket, log_prefix), timeout=60)
    body = gzip.decompress(s3.get_object(Bucket=bucket, Key=logs[0])["Body"].read())
    records = json.loads(body)["Records"]
    assert records and all(r["eventVersion"] and r["eventID"] for r in records)
    assert logs[0].endswith(".json.gz") and f"{ACCOUNT_ID}_CloudTrail_{REGION}_" in logs[0]

    def chain_with_logs():
        digests = keys_under(s3, bucket, digest_prefix)
        listed = 0
        for key in digests:
            digest = json.loads(gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
            listed += len(digest["logFiles"])
        return len(digests) >= 3 and listed >= 1 and digests

    digests = wait_for(chain_with_logs, timeout=90)
    head = s3.head_object(Bucket=bucket, Key=digests[-1])
    assert head["Metadata"]["signature-algorithm"] == "SHA256withRSA"
    assert len(head["Metadata"]["signature"]) == 512
    status = ct.get_trail_status(Name=name)
    assert "LatestDeliveryTime" in status and "LatestDigestDeliveryTime" in status

    ok = run_validate(ct_server, arn, start)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "digest files valid" in ok.stdout and "INVALID" not in ok.stdout, ok.stdout

    # Tamper with a log file that a digest lists: its hash no longer matches.
    listed_log = None
    for key in reversed(digests):
        digest = json.loads(gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        if digest["logFiles"]:
            listed_log = digest["logFiles"][0]["s3Object"]
            break
    assert listed_log
    s3.put_object(Bucket=bucket, Key=listed_log, Body=gzip.compress(b'{"Records":[]}'))
    bad = run_validate(ct_server, arn, start)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "hash value doesn't match" in bad.stdout + bad.stderr

    # Delete a digest in the middle of the chain: its successor points at a missing object.
    s3.delete_object(Bucket=bucket, Key=digests[1])
    bad = run_validate(ct_server, arn, start)
    assert bad.returncode == 1
    assert "INVALID: not found" in bad.stdout + bad.stderr

    # Alter a digest's body: its signature no longer verifies.
    victim = digests[-1]
    obj = s3.get_object(Bucket=bucket, Key=victim)
    digest = json.loads(gzip.decompress(obj["Body"].read()))
    digest["newestEventTime"] = "2000-01-01T00:00:00Z"
    s3.put_object(Bucket=bucket, Key=victim, Body=gzip.compress(json.dumps(digest).encode()), Metadata=obj["Metadata"])
    bad = run_validate(ct_server, arn, start)
    assert bad.returncode == 1
    assert "signature verification failed" in bad.stdout + bad.stderr

    # Stopping logging writes a final digest.
    before = set(keys_under(s3, bucket, digest_prefix))
    ct.stop_logging(Name=name)
    wait_for(lambda: set(keys_under(s3, bucket, digest_prefix)) - before, timeout=30)


def test_s3_data_events_reach_a_trail_that_selects_them(ct_server):
    """S3 object calls are data events: recorded and delivered for a trail whose selectors ask for
    them (and, as on AWS, not kept at all while no trail of the account does)."""
    ct = ct_server.client("cloudtrail")
    s3 = ct_server.client("s3")
    logs_bucket = bucket_for_trails(s3, log_prefix="data")
    data_bucket = f"data-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=data_bucket)
    name = f"data-{uuid.uuid4().hex[:8]}"
    ct.create_trail(Name=name, S3BucketName=logs_bucket, S3KeyPrefix="data")
    ct.put_event_selectors(TrailName=name, EventSelectors=[{
        "ReadWriteType": "All", "IncludeManagementEvents": False,
        "DataResources": [{"Type": "AWS::S3::Object", "Values": [f"arn:aws:s3:::{data_bucket}/in/"]}]}])
    ct.start_logging(Name=name)
    s3.put_object(Bucket=data_bucket, Key="in/a.txt", Body=b"selected")
    s3.get_object(Bucket=data_bucket, Key="in/a.txt")["Body"].read()
    s3.put_object(Bucket=data_bucket, Key="out/b.txt", Body=b"not selected")
    prefix = f"data/AWSLogs/{ACCOUNT_ID}/CloudTrail/{REGION}/"

    def delivered():
        records = []
        for key in keys_under(s3, logs_bucket, prefix):
            body = gzip.decompress(s3.get_object(Bucket=logs_bucket, Key=key)["Body"].read())
            records.extend(json.loads(body)["Records"])
        names = {(r["eventName"], r["requestParameters"].get("key")) for r in records
                 if r.get("eventSource") == "s3.amazonaws.com" and r.get("requestParameters")}
        return records if {("PutObject", "in/a.txt"), ("GetObject", "in/a.txt")} <= names else None

    records = wait_for(delivered, timeout=60)
    s3_records = [r for r in records if r["eventSource"] == "s3.amazonaws.com"]
    assert all(r["managementEvent"] is False and r["eventCategory"] == "Data" for r in s3_records)
    assert not [r for r in s3_records if r["requestParameters"].get("key") == "out/b.txt"]
    assert not [r for r in records if r.get("managementEvent")]
