"""AssumeRoleWithSAML end to end with a real test identity provider.

The identity provider is built here: an RSA key and a self-signed certificate from `cryptography`,
a SAML 2.0 Response signed with `signxml` (enveloped signature on the Assertion, exclusive
canonicalization, RSA-SHA256), and metadata carrying the certificate, registered through IAM's
CreateSAMLProvider. STS must verify the signature, the audience, the recipient and the validity
window, find the requested role in the Role attribute, and let the trust policy decide.
"""

import base64
import datetime
import json
import uuid

import botocore.exceptions
import pytest

pytest.importorskip("signxml")

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from lxml import etree  # noqa: E402
from signxml import SignatureMethod, DigestAlgorithm, XMLSigner  # noqa: E402

ACCOUNT = "000000000000"
SIGNIN = "https://signin.aws.amazon.com/saml"
SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
ATTR = "https://aws.amazon.com/SAML/Attributes/"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_of(excinfo):
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"], excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


class SamlIdp:
    """A SAML identity provider: a key, its certificate, metadata, and signed responses."""

    def __init__(self, entity_id="https://idp.example.test/saml"):
        self.entity_id = entity_id
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "citadel test idp")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )

    def cert_b64(self):
        return base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()

    def metadata(self):
        return f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{self.entity_id}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
        <ds:X509Data><ds:X509Certificate>{self.cert_b64()}</ds:X509Certificate></ds:X509Data>
      </ds:KeyInfo>
    </md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{self.entity_id}/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"""

    def response(self, roles, session_name="alice@example.test", audience=SIGNIN, recipient=SIGNIN,
                 lifetime=300, extra_attributes=None, subject="alice", sign="assertion", tamper=None):
        """A base64 SAML Response; `tamper(xml_bytes) -> xml_bytes` runs after signing."""
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
        not_on_or_after = fmt(now + datetime.timedelta(seconds=lifetime))
        attributes = [(ATTR + "Role", roles)]
        if session_name is not None:
            attributes.append((ATTR + "RoleSessionName", [session_name]))
        attributes += list((extra_attributes or {}).items())
        attribute_xml = "".join(
            f'<saml:Attribute Name="{name}">'
            + "".join(f"<saml:AttributeValue>{v}</saml:AttributeValue>" for v in values)
            + "</saml:Attribute>"
            for name, values in attributes)
        response_id = "_r" + uuid.uuid4().hex
        assertion_id = "_a" + uuid.uuid4().hex
        xml = f"""<samlp:Response xmlns:samlp="{SAMLP_NS}" xmlns:saml="{SAML_NS}" ID="{response_id}" Version="2.0" IssueInstant="{fmt(now)}" Destination="{recipient}">
  <saml:Issuer>{self.entity_id}</saml:Issuer>
  <samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>
  <saml:Assertion ID="{assertion_id}" Version="2.0" IssueInstant="{fmt(now)}">
    <saml:Issuer>{self.entity_id}</saml:Issuer>
    <saml:Subject>
      <saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">{subject}</saml:NameID>
      <saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">
        <saml:SubjectConfirmationData NotOnOrAfter="{not_on_or_after}" Recipient="{recipient}"/>
      </saml:SubjectConfirmation>
    </saml:Subject>
    <saml:Conditions NotBefore="{fmt(now - datetime.timedelta(seconds=60))}" NotOnOrAfter="{not_on_or_after}">
      <saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction>
    </saml:Conditions>
    <saml:AuthnStatement AuthnInstant="{fmt(now)}" SessionIndex="{assertion_id}">
      <saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext>
    </saml:AuthnStatement>
    <saml:AttributeStatement>{attribute_xml}</saml:AttributeStatement>
  </saml:Assertion>
</samlp:Response>"""
        root = etree.fromstring(xml.encode())
        signer = XMLSigner(signature_algorithm=SignatureMethod.RSA_SHA256, digest_algorithm=DigestAlgorithm.SHA256,
                           c14n_algorithm=EXC_C14N)
        key_pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        if sign == "assertion":
            assertion = root.find(f"{{{SAML_NS}}}Assertion")
            signed_assertion = signer.sign(assertion, key=key_pem, cert=cert_pem, reference_uri=assertion_id,
                                           id_attribute="ID")
            root.replace(assertion, signed_assertion)
            signed = root
        else:
            signed = signer.sign(root, key=key_pem, cert=cert_pem, reference_uri=response_id, id_attribute="ID")
        out = etree.tostring(signed)
        if tamper:
            out = tamper(out)
        return base64.b64encode(out).decode()


@pytest.fixture(scope="module")
def idp():
    return SamlIdp()


@pytest.fixture(scope="module")
def saml_setup(server, idp):
    iam = server.client("iam")
    provider_arn = iam.create_saml_provider(
        SAMLMetadataDocument=idp.metadata(), Name=unique("idp"))["SAMLProviderArn"]
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": provider_arn},
        "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
        "Condition": {"StringEquals": {"SAML:aud": SIGNIN}}}]}
    role_name = unique("saml-role")
    role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    other_trust = dict(trust, Statement=[dict(trust["Statement"][0], Principal={"Federated": f"arn:aws:iam::{ACCOUNT}:saml-provider/other"})])
    closed_arn = iam.create_role(RoleName=unique("saml-closed"),
                                 AssumeRolePolicyDocument=json.dumps(other_trust))["Role"]["Arn"]
    return {"provider": provider_arn, "role": role_arn, "role_name": role_name, "closed": closed_arn}


def assume(server, role_arn, provider_arn, assertion, **kw):
    # Unsigned, like the AWS CLI's and SDKs' AssumeRoleWithSAML.
    import botocore
    sts = server.client("sts", config=botocore.config.Config(signature_version=botocore.UNSIGNED))
    return sts.assume_role_with_saml(RoleArn=role_arn, PrincipalArn=provider_arn, SAMLAssertion=assertion, **kw)


def test_assume_role_with_saml_and_use_the_credentials(server, idp, saml_setup):
    role, provider = saml_setup["role"], saml_setup["provider"]
    assertion = idp.response([f"{role},{provider}"], extra_attributes={
        ATTR + "PrincipalTag:team": ["blue"],
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.1": ["member", "staff"]})
    out = assume(server, role, provider, assertion, DurationSeconds=900)
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{saml_setup['role_name']}/alice@example.test"
    assert out["Subject"] == "alice"
    assert out["SubjectType"] == "persistent"
    assert out["Issuer"] == idp.entity_id
    assert out["Audience"] == SIGNIN
    provider_name = provider.rsplit("/", 1)[1]
    import hashlib
    expected = base64.b64encode(hashlib.sha1(f"{idp.entity_id}{ACCOUNT}/{provider_name}".encode()).digest()).decode()
    assert out["NameQualifier"] == expected
    assert "PackedPolicySize" in out  # the PrincipalTag attribute is a session tag
    creds = out["Credentials"]
    lifetime = creds["Expiration"] - datetime.datetime.now(datetime.timezone.utc)
    assert 800 < lifetime.total_seconds() <= 900
    who = server.client("sts", access_key=creds["AccessKeyId"], secret=creds["SecretAccessKey"],
                        token=creds["SessionToken"]).get_caller_identity()
    assert who["Arn"] == out["AssumedRoleUser"]["Arn"]
    assert who["Account"] == ACCOUNT


def test_response_signed_as_a_whole_and_pair_in_either_order(server, idp, saml_setup):
    role, provider = saml_setup["role"], saml_setup["provider"]
    assertion = idp.response([f"{provider},{role}"], sign="response")
    out = assume(server, role, provider, assertion)
    assert out["AssumedRoleUser"]["Arn"].endswith("/alice@example.test")


def test_tampered_assertion_is_rejected(server, idp, saml_setup):
    role, provider = saml_setup["role"], saml_setup["provider"]
    assertion = idp.response([f"{role},{provider}"],
                             tamper=lambda xml: xml.replace(b"alice@example.test", b"admin@example.test"))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(server, role, provider, assertion)
    assert error_of(e)[0] == "InvalidIdentityToken"
    assert "signature" in error_of(e)[1].lower()


def test_wrapped_assertion_is_rejected(server, idp, saml_setup):
    """The signed assertion moved aside and an unsigned evil one put in its place."""
    role, provider = saml_setup["role"], saml_setup["provider"]

    def wrap(xml):
        root = etree.fromstring(xml)
        signed = root.find(f"{{{SAML_NS}}}Assertion")
        evil = etree.fromstring(etree.tostring(signed))
        for sig in evil.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
            evil.remove(sig)
        evil.set("ID", "_evil")
        root.replace(signed, evil)
        extensions = etree.SubElement(root, f"{{{SAMLP_NS}}}Extensions")
        extensions.append(signed)
        return etree.tostring(root)

    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(server, role, provider, idp.response([f"{role},{provider}"], tamper=wrap))
    assert error_of(e)[0] == "InvalidIdentityToken"


def test_wrong_certificate_is_rejected(server, saml_setup):
    role, provider = saml_setup["role"], saml_setup["provider"]
    impostor = SamlIdp()  # same entity id, another key
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(server, role, provider, impostor.response([f"{role},{provider}"]))
    assert error_of(e)[:1] == ("InvalidIdentityToken",)
    assert error_of(e)[1] == "Response signature invalid"


def test_expired_assertion_is_rejected(server, idp, saml_setup):
    role, provider = saml_setup["role"], saml_setup["provider"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(server, role, provider, idp.response([f"{role},{provider}"], lifetime=-120))
    assert error_of(e)[0] == "ExpiredTokenException"


def test_wrong_audience_and_recipient_are_rejected(server, idp, saml_setup):
    role, provider = saml_setup["role"], saml_setup["provider"]
    for kw in ({"audience": "https://evil.example.test/sp"}, {"recipient": "https://evil.example.test/acs"}):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            assume(server, role, provider, idp.response([f"{role},{provider}"], **kw))
        assert error_of(e)[0] == "InvalidIdentityToken", kw


def test_role_not_in_assertion_is_denied(server, idp, saml_setup):
    role, provider = saml_setup["role"], saml_setup["provider"]
    other_role = f"arn:aws:iam::{ACCOUNT}:role/someone-else"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(server, role, provider, idp.response([f"{other_role},{provider}"]))
    assert error_of(e)[0] == "AccessDenied"
    assert error_of(e)[2] == 403


def test_trust_policy_decides(server, idp, saml_setup):
    closed, provider = saml_setup["closed"], saml_setup["provider"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(server, closed, provider, idp.response([f"{closed},{provider}"]))
    assert error_of(e)[0] == "AccessDenied"


def test_missing_session_name_and_unknown_provider(server, idp, saml_setup):
    role, provider = saml_setup["role"], saml_setup["provider"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(server, role, provider, idp.response([f"{role},{provider}"], session_name=None))
    assert error_of(e)[:2] == ("InvalidIdentityToken", "RoleSessionName is required in AuthnResponse")
    missing = f"arn:aws:iam::{ACCOUNT}:saml-provider/does-not-exist"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(server, role, missing, idp.response([f"{role},{missing}"]))
    assert error_of(e)[0] == "InvalidIdentityToken"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(server, role, provider, base64.b64encode(b"<not-saml/>").decode())
    assert error_of(e)[0] == "InvalidIdentityToken"


def test_session_policy_must_be_well_formed(server, idp, saml_setup):
    role, provider = saml_setup["role"], saml_setup["provider"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(server, role, provider, idp.response([f"{role},{provider}"]), Policy='{"Statement": 5}')
    assert error_of(e)[0] == "MalformedPolicyDocument"
