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


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key, kid):
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
            "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": _b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"))}


def _rs256(key, kid, claims):
    """A compact RS256 JWS of `claims`, signed with `key` (cryptography, PKCS#1 v1.5 with SHA-256)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    header = _b64url(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{_b64url(signature)}"


class _HttpsIssuer:
    """A local OpenID Connect issuer over HTTPS: a test CA, a server certificate for 127.0.0.1 it
    signed, the discovery document and a JWKS served with python's `ssl` and `http.server`, and RS256
    ID tokens. `ca_path` is the CA bundle Citadel is told to trust."""

    def __init__(self, directory):
        import datetime
        import ipaddress
        import os
        import ssl
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.timezone.utc)
        validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(hours=1))
        ca_key = _rsa_key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Citadel test OIDC CA")])
        self.ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(validity[0]).not_valid_after(validity[1])
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                content_commitment=False, key_encipherment=False,
                                                data_encipherment=False, key_agreement=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .sign(ca_key, hashes.SHA256()))
        leaf_key = _rsa_key()
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                .issuer_name(ca_name).public_key(leaf_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(validity[0]).not_valid_after(validity[1])
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                            x509.DNSName("localhost")]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        pem = serialization.Encoding.PEM
        self.ca_path = os.path.join(directory, "oidc-ca.pem")
        with open(self.ca_path, "wb") as f:
            f.write(self.ca.public_bytes(pem))
        chain_path = os.path.join(directory, "oidc-chain.pem")
        key_path = os.path.join(directory, "oidc-key.pem")
        with open(chain_path, "wb") as f:
            # The leaf, then the CA: the CA is the top certificate presented, whose SHA-1 is the
            # thumbprint IAM registers.
            f.write(leaf.public_bytes(pem) + self.ca.public_bytes(pem))
        with open(key_path, "wb") as f:
            f.write(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.thumbprint = hashlib.sha1(self.ca.public_bytes(serialization.Encoding.DER)).hexdigest()

        self.key = _rsa_key()
        self.jwks = {"keys": [_jwk(self.key, "k1")]}
        self.requests = []
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                issuer.requests.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks",
                            "id_token_signing_alg_values_supported": ["RS256"]}
                elif self.path == "/jwks":
                    body = issuer.jwks
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
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

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain_path, key_path)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.host = self.url.removeprefix("https://")
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, key=None, kid="k1", **claims):
        return _rs256(key or self.key, kid, claims)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def https_issuer(tmp_path):
    pytest.importorskip("cryptography")
    issuer = _HttpsIssuer(str(tmp_path))
    yield issuer
    issuer.close()


def _web_identity_role(server, issuer, thumbprint):
    iam = server.client("iam")
    provider_arn = iam.create_open_id_connect_provider(
        Url=issuer.url, ClientIDList=["citadel-app"], ThumbprintList=[thumbprint])["OpenIDConnectProviderArn"]
    assert provider_arn == f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer.host}"
    role = unique("web")
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust(
        {"Federated": provider_arn}, {"StringEquals": {f"{issuer.host}:sub": "alice"}},
        actions=("sts:AssumeRoleWithWebIdentity",)))["Role"]["Arn"]
    sts = server.client("sts")
    # AWS accepts this call unsigned (botocore sends it so); it is signed here as a client with
    # credentials would, and test_web_identity_call_is_accepted_unsigned checks the unsigned form.
    sts.meta.events.register("choose-signer.sts.AssumeRoleWithWebIdentity", lambda **kw: "v4")
    return role, role_arn, sts


def test_assume_role_with_web_identity_over_https(https_issuer):
    """The provider's certificate chains to a CA Citadel trusts through CITADEL_OIDC_CA_BUNDLE; the
    registered thumbprint is wrong on purpose, so the trust comes from the bundle alone."""
    issuer = https_issuer
    server = CitadelServer(env={"CITADEL_OIDC_CA_BUNDLE": issuer.ca_path})
    try:
        role, role_arn, sts = _web_identity_role(server, issuer, "0" * 40)
        now = int(time.time())
        good = issuer.token(iss=issuer.url, sub="alice", aud="citadel-app", iat=now, exp=now + 600, amr=["pwd"])
        out = sts.assume_role_with_web_identity(RoleArn=role_arn, RoleSessionName="web", WebIdentityToken=good)
        assert out["SubjectFromWebIdentityToken"] == "alice"
        assert out["Audience"] == "citadel-app"
        assert out["Provider"] == issuer.host
        assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/web"
        assert out["Credentials"]["AccessKeyId"].startswith("ASIA")
        identity = session_client(server, "sts", out["Credentials"]).get_caller_identity()
        assert identity["Arn"] == out["AssumedRoleUser"]["Arn"]
        # Discovery then JWKS, both fetched over TLS from the issuer.
        assert issuer.requests[:2] == ["/.well-known/openid-configuration", "/jwks"]

        other_key = _rsa_key()
        cases = [
            # Signed by a key the issuer never published, under the published kid and under another.
            (issuer.token(key=other_key, iss=issuer.url, sub="alice", aud="citadel-app", exp=now + 600),
             "InvalidIdentityToken"),
            (issuer.token(key=other_key, kid="k2", iss=issuer.url, sub="alice", aud="citadel-app", exp=now + 600),
             "InvalidIdentityToken"),
            (issuer.token(iss=issuer.url, sub="alice", aud="citadel-app", exp=now - 10), "ExpiredTokenException"),
            (issuer.token(iss=issuer.url, sub="alice", aud="other-app", exp=now + 600), "InvalidIdentityToken"),
            (issuer.token(iss=issuer.url, sub="mallory", aud="citadel-app", exp=now + 600), "AccessDenied"),
            (good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB"), "InvalidIdentityToken"),
        ]
        for token, code in cases:
            with pytest.raises(botocore.exceptions.ClientError) as err:
                sts.assume_role_with_web_identity(RoleArn=role_arn, RoleSessionName="web", WebIdentityToken=token)
            assert error_of(err)[0] == code, token
            assert error_of(err)[2] in (400, 403)
        # The key set is cached: later calls, good or bad, did not fetch it again.
        sts.assume_role_with_web_identity(RoleArn=role_arn, RoleSessionName="again", WebIdentityToken=good)
        assert issuer.requests.count("/jwks") == 1, issuer.requests
    finally:
        server.close()


def test_web_identity_provider_trusted_by_thumbprint_only(server, https_issuer):
    """Without the CA bundle the issuer's chain is untrusted: the fetch fails (IDPCommunicationError)
    unless the provider's registered thumbprint is the SHA-1 of the top certificate it presents."""
    issuer = https_issuer
    role, role_arn, sts = _web_identity_role(server, issuer, "0" * 40)
    now = int(time.time())
    token = issuer.token(iss=issuer.url, sub="alice", aud="citadel-app", exp=now + 600)
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sts.assume_role_with_web_identity(RoleArn=role_arn, RoleSessionName="web", WebIdentityToken=token)
    assert error_of(err)[0] == "IDPCommunicationError"

    provider_arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer.host}"
    server.client("iam").update_open_id_connect_provider_thumbprint(
        OpenIDConnectProviderArn=provider_arn, ThumbprintList=[issuer.thumbprint.upper()])
    out = sts.assume_role_with_web_identity(RoleArn=role_arn, RoleSessionName="web", WebIdentityToken=token)
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/web"
    server.client("iam").delete_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn)


def test_web_identity_call_is_accepted_unsigned(server):
    with pytest.raises(botocore.exceptions.ClientError) as err:
        server.client("sts").assume_role_with_web_identity(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{unique('none')}", RoleSessionName="web",
            WebIdentityToken="not-a-jwt")
    assert error_of(err)[0] == "InvalidIdentityToken"
