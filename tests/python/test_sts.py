"""STS end to end with boto3: roles assumed through trust policies, session credentials used on real
requests, MFA sessions, federation tokens, expiry, cross-account roles and web identity.

Temporary credentials are self-contained sealed tokens, so a second server sharing the master key
(`CITADEL_MASTER_KEY`) authenticates them too; that is how expiry is observed with a shifted clock.
"""

import base64
import hashlib
import hmac
import http.server
import json
import struct
import threading
import time
import uuid

import botocore.config
import botocore.exceptions
import pytest

from conftest import CitadelServer

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


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions, resource="*"):
    return {"Effect": "Allow", "Action": actions, "Resource": resource}


def trust(principal, condition=None, actions=("sts:AssumeRole", "sts:TagSession")):
    statement = {"Effect": "Allow", "Principal": principal, "Action": list(actions)}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def make_user(server, name, *statements):
    """A user with an inline policy and an access key; returns (arn, client factory)."""
    iam = server.client("iam")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy(*statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]

    def client(service, **kw):
        return server.client(service, access_key=key["AccessKeyId"], secret=key["SecretAccessKey"], **kw)
    return arn, client


def session_client(server, service, credentials):
    return server.client(service, access_key=credentials["AccessKeyId"], secret=credentials["SecretAccessKey"],
                         token=credentials["SessionToken"])


def test_assume_role_with_external_id_session_policy_and_tags(server):
    iam = server.client("iam")
    user_arn, as_user = make_user(server, unique("assumer"), allow("sts:AssumeRole"))
    role = unique("reader")
    role_arn = iam.create_role(
        RoleName=role, MaxSessionDuration=7200,
        AssumeRolePolicyDocument=trust({"AWS": user_arn}, {"StringEquals": {"sts:ExternalId": "ext-42"}}),
        Tags=[{"Key": "dept", "Value": "eng"}])["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="read",
                        PolicyDocument=policy(allow(["iam:ListUsers", "iam:ListRoles", "iam:GetRole"])))
    sts = as_user("sts")

    with pytest.raises(botocore.exceptions.ClientError) as no_external_id:
        sts.assume_role(RoleArn=role_arn, RoleSessionName="s1")
    code, message, status = error_of(no_external_id)
    assert (code, status) == ("AccessDenied", 403)
    assert message.startswith(f"User: {user_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}")

    assumed = sts.assume_role(
        RoleArn=role_arn, RoleSessionName="audit", ExternalId="ext-42", DurationSeconds=7200,
        Policy=policy(allow(["iam:ListRoles", "iam:GetRole"])),
        Tags=[{"Key": "project", "Value": "blue"}])
    creds = assumed["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    assert len(creds["SecretAccessKey"]) == 40
    remaining = creds["Expiration"].timestamp() - time.time()
    assert 7100 < remaining <= 7200
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/audit"
    assert assumed["AssumedRoleUser"]["Arn"] == session_arn
    assert assumed["AssumedRoleUser"]["AssumedRoleId"].startswith("AROA")
    assert assumed["AssumedRoleUser"]["AssumedRoleId"].endswith(":audit")
    assert 0 < assumed["PackedPolicySize"] <= 100

    identity = session_client(server, "sts", creds).get_caller_identity()
    assert identity["Arn"] == session_arn
    assert identity["UserId"] == assumed["AssumedRoleUser"]["AssumedRoleId"]
    assert identity["Account"] == ACCOUNT

    as_role = session_client(server, "iam", creds)
    assert any(r["RoleName"] == role for r in as_role.list_roles()["Roles"])
    # The role allows ListUsers, but the session policy does not.
    with pytest.raises(botocore.exceptions.ClientError) as narrowed:
        as_role.list_users()
    code, message, _ = error_of(narrowed)
    assert code == "AccessDenied"
    assert message.startswith(f"User: {session_arn} is not authorized to perform: iam:ListUsers")
    assert "session policy" in message


def test_duration_limits(server):
    iam = server.client("iam")
    user_arn, as_user = make_user(server, unique("durations"), allow("sts:AssumeRole"))
    role = unique("short")
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust({"AWS": user_arn}))["Role"]["Arn"]
    sts = as_user("sts")
    with pytest.raises(botocore.exceptions.ClientError) as too_long:
        sts.assume_role(RoleArn=role_arn, RoleSessionName="s1", DurationSeconds=3601)
    assert error_of(too_long) == (
        "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.", 400)
    unvalidated = as_user("sts", config=botocore.config.Config(parameter_validation=False))
    with pytest.raises(botocore.exceptions.ClientError) as too_short:
        unvalidated.assume_role(RoleArn=role_arn, RoleSessionName="s1", DurationSeconds=899)
    assert error_of(too_short)[0] == "ValidationError"
    default = sts.assume_role(RoleArn=role_arn, RoleSessionName="s1")["Credentials"]
    assert 3500 < default["Expiration"].timestamp() - time.time() <= 3600
    shortest = sts.assume_role(RoleArn=role_arn, RoleSessionName="s1", DurationSeconds=900)["Credentials"]
    assert 800 < shortest["Expiration"].timestamp() - time.time() <= 900


def test_untrusted_callers_and_root_are_denied(server):
    iam = server.client("iam")
    trusted_arn, _ = make_user(server, unique("trusted"))
    _, as_stranger = make_user(server, unique("stranger"), allow("sts:AssumeRole"))
    role = unique("private")
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust({"AWS": trusted_arn}))["Role"]["Arn"]
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        as_stranger("sts").assume_role(RoleArn=role_arn, RoleSessionName="s1")
    assert error_of(denied)[0] == "AccessDenied"
    missing = f"arn:aws:iam::{ACCOUNT}:role/{unique('missing')}"
    with pytest.raises(botocore.exceptions.ClientError) as nonexistent:
        as_stranger("sts").assume_role(RoleArn=missing, RoleSessionName="s1")
    assert error_of(nonexistent)[0] == "AccessDenied"
    assert missing in error_of(nonexistent)[1]
    with pytest.raises(botocore.exceptions.ClientError) as root:
        server.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="s1")
    assert error_of(root)[:2] == ("AccessDenied", "Roles may not be assumed by root accounts.")


def test_get_session_token_with_mfa(server):
    iam = server.client("iam")
    name = unique("mfa")
    user_arn, as_user = make_user(server, name, allow(["iam:ListUsers", "iam:GetUser"]))
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]
    serial, seed = device["SerialNumber"], device["Base32StringSeed"].decode()
    step = int(time.time()) // 30
    iam.enable_mfa_device(UserName=name, SerialNumber=serial,
                          AuthenticationCode1=totp(seed, step - 2), AuthenticationCode2=totp(seed, step - 1))
    sts = as_user("sts")

    with pytest.raises(botocore.exceptions.ClientError) as wrong:
        sts.get_session_token(SerialNumber=serial, TokenCode="000000" if totp(seed, step) != "000000" else "111111")
    assert error_of(wrong) == (
        "AccessDenied", "MultiFactorAuthentication failed with invalid MFA one time pass code.", 403)

    with_mfa = sts.get_session_token(SerialNumber=serial, TokenCode=totp(seed, int(time.time()) // 30),
                                     DurationSeconds=900)["Credentials"]
    assert 800 < with_mfa["Expiration"].timestamp() - time.time() <= 900
    assert session_client(server, "sts", with_mfa).get_caller_identity()["Arn"] == user_arn
    users = session_client(server, "iam", with_mfa).list_users()["Users"]
    assert any(u["UserName"] == name for u in users)

    # Without MFA, GetSessionToken credentials cannot call IAM, nor STS beyond AssumeRole/GetCallerIdentity.
    without = sts.get_session_token()["Credentials"]
    assert 43000 < without["Expiration"].timestamp() - time.time() <= 43200
    with pytest.raises(botocore.exceptions.ClientError) as no_mfa:
        session_client(server, "iam", without).list_users()
    assert error_of(no_mfa)[0] == "AccessDenied"
    with pytest.raises(botocore.exceptions.ClientError) as nested:
        session_client(server, "sts", without).get_session_token()
    assert error_of(nested)[:2] == ("AccessDenied", "Cannot call GetSessionToken with session credentials")


def test_get_federation_token_intersects_policies(server):
    name = unique("federator")
    _, as_user = make_user(server, name, allow(["sts:GetFederationToken", "s3:ListAllMyBuckets", "s3:CreateBucket",
                                                "iam:ListUsers"]))
    sts = as_user("sts")
    token = sts.get_federation_token(Name="contractor", Policy=policy(allow("s3:ListAllMyBuckets")))
    assert token["FederatedUser"] == {"FederatedUserId": f"{ACCOUNT}:contractor",
                                      "Arn": f"arn:aws:sts::{ACCOUNT}:federated-user/contractor"}
    creds = token["Credentials"]
    assert session_client(server, "sts", creds).get_caller_identity()["Arn"] == token["FederatedUser"]["Arn"]
    s3 = session_client(server, "s3", creds)
    s3.list_buckets()
    with pytest.raises(botocore.exceptions.ClientError) as outside_policy:
        s3.create_bucket(Bucket=unique("fed-bucket"))
    assert error_of(outside_policy)[0] == "AccessDenied"
    # Federation tokens never reach IAM, whatever the policies say.
    with pytest.raises(botocore.exceptions.ClientError) as iam_denied:
        session_client(server, "iam", creds).list_users()
    assert error_of(iam_denied)[0] == "AccessDenied"

    bare = sts.get_federation_token(Name="nobody")["Credentials"]
    with pytest.raises(botocore.exceptions.ClientError) as nothing:
        session_client(server, "s3", bare).list_buckets()
    assert error_of(nothing)[0] == "AccessDenied"


def test_access_key_info(server):
    _, as_user = make_user(server, unique("keyinfo"), allow("sts:GetAccessKeyInfo"))
    creds = as_user("sts").get_session_token()["Credentials"]
    sts = as_user("sts")
    assert sts.get_access_key_info(AccessKeyId=creds["AccessKeyId"])["Account"] == ACCOUNT
    root_key = server.client("sts")._request_signer._credentials.access_key
    assert sts.get_access_key_info(AccessKeyId=root_key)["Account"] == ACCOUNT


def test_tampered_and_expired_session_tokens():
    master = base64.b64encode(bytes(range(32))).decode()
    issuer = CitadelServer(env={"CITADEL_MASTER_KEY": master})
    # Just under the 15-minute signature skew limit, so only the token's expiry can fail.
    later = CitadelServer("--clock-offset-seconds", "890", env={"CITADEL_MASTER_KEY": master})
    try:
        creds = issuer.client("sts").get_session_token(DurationSeconds=900)["Credentials"]
        tampered = dict(creds, SessionToken=creds["SessionToken"][:-8] + "AAAAAAA=")
        with pytest.raises(botocore.exceptions.ClientError) as bad:
            session_client(issuer, "sts", tampered).get_caller_identity()
        assert error_of(bad)[0] == "InvalidClientTokenId"
        # Another server with the same master key authenticates the token without any shared state.
        assert session_client(later, "sts", creds).get_caller_identity()["Account"] == ACCOUNT
        time.sleep(max(0.0, creds["Expiration"].timestamp() - 890 - time.time()) + 2)
        with pytest.raises(botocore.exceptions.ClientError) as expired:
            session_client(later, "sts", creds).get_caller_identity()
        assert error_of(expired)[0] == "ExpiredToken"
        assert error_of(expired)[2] == 403
    finally:
        issuer.close()
        later.close()


def test_cross_account_role(server):
    from test_foundation import signed_admin_post
    created = signed_admin_post(server, "/_citadel/accounts", {"Name": unique("partner")}).json()
    other_iam = server.client("iam", access_key=created["AccessKeyId"], secret=created["SecretAccessKey"])
    role = unique("shared")
    role_arn = other_iam.create_role(RoleName=role,
                                     AssumeRolePolicyDocument=trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}))["Role"]["Arn"]
    assert role_arn == f"arn:aws:iam::{created['AccountId']}:role/{role}"
    _, with_permission = make_user(server, unique("xacct"), allow("sts:AssumeRole", role_arn))
    _, without_permission = make_user(server, unique("xacct-no"), allow("s3:ListAllMyBuckets"))

    assumed = with_permission("sts").assume_role(RoleArn=role_arn, RoleSessionName="visit")
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{created['AccountId']}:assumed-role/{role}/visit"
    identity = session_client(server, "sts", assumed["Credentials"]).get_caller_identity()
    assert identity["Account"] == created["AccountId"]
    # Trust naming the account is not enough: the caller's own policy must allow sts:AssumeRole too.
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        without_permission("sts").assume_role(RoleArn=role_arn, RoleSessionName="visit")
    assert error_of(denied)[0] == "AccessDenied"


class _Issuer:
    """A local OpenID Connect issuer: discovery document and JWKS over HTTP, ES256 tokens."""

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric import ec
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        b64 = self._b64
        self.jwks = {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
                               "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}]}
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                elif self.path == "/jwks":
                    body = issuer.jwks
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def _b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def token(self, **claims):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils
        header = self._b64(json.dumps({"alg": "ES256", "kid": "k1", "typ": "JWT"}).encode())
        payload = self._b64(json.dumps(claims).encode())
        der = self.key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = utils.decode_dss_signature(der)
        return f"{header}.{payload}.{self._b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def close(self):
        self.httpd.shutdown()


@pytest.mark.xfail(reason="IAM registers only https:// issuers and STS fetches discovery/JWKS over plain http so far "
                          "(TLS with thumbprint verification is still to do)", strict=False)
def test_assume_role_with_web_identity(server):
    pytest.importorskip("cryptography")
    issuer = _Issuer()
    try:
        iam = server.client("iam")
        host = issuer.url.removeprefix("http://")
        provider_arn = iam.create_open_id_connect_provider(
            Url=issuer.url, ClientIDList=["citadel-app"], ThumbprintList=["0" * 40])["OpenIDConnectProviderArn"]
        role = unique("web")
        role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust(
            {"Federated": provider_arn}, {"StringEquals": {f"{host}:sub": "alice"}},
            actions=("sts:AssumeRoleWithWebIdentity",)))["Role"]["Arn"]
        sts = server.client("sts")
        # AWS accepts this call unsigned (botocore sends it so); core still requires a signature, so sign it
        # here and check the unsigned form separately below.
        sts.meta.events.register("choose-signer.sts.AssumeRoleWithWebIdentity", lambda **kw: "v4")
        now = int(time.time())
        good = issuer.token(iss=issuer.url, sub="alice", aud="citadel-app", iat=now, exp=now + 600)
        out = sts.assume_role_with_web_identity(RoleArn=role_arn, RoleSessionName="web", WebIdentityToken=good)
        assert out["SubjectFromWebIdentityToken"] == "alice"
        assert out["Audience"] == "citadel-app"
        assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/web"
        identity = session_client(server, "sts", out["Credentials"]).get_caller_identity()
        assert identity["Arn"] == out["AssumedRoleUser"]["Arn"]

        cases = [
            (issuer.token(iss=issuer.url, sub="mallory", aud="citadel-app", exp=now + 600), "AccessDenied"),
            (issuer.token(iss=issuer.url, sub="alice", aud="other-app", exp=now + 600), "InvalidIdentityToken"),
            (issuer.token(iss=issuer.url, sub="alice", aud="citadel-app", exp=now - 10), "ExpiredTokenException"),
            (good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB"), "InvalidIdentityToken"),
        ]
        for token, code in cases:
            with pytest.raises(botocore.exceptions.ClientError) as err:
                sts.assume_role_with_web_identity(RoleArn=role_arn, RoleSessionName="web", WebIdentityToken=token)
            assert error_of(err)[0] == code, token
    finally:
        issuer.close()


def test_web_identity_call_is_accepted_unsigned(server):
    with pytest.raises(botocore.exceptions.ClientError) as err:
        server.client("sts").assume_role_with_web_identity(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{unique('none')}", RoleSessionName="web",
            WebIdentityToken="not-a-jwt")
    assert error_of(err)[0] == "InvalidIdentityToken"
