//! SAML response verification: fixtures signed by `signxml` (an independent implementation, so
//! canonicalization interoperates), and responses signed here to cover the other algorithms and the
//! wrapping and shape checks.

use super::*;
use crate::c14n::{Comments, ExcC14n};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;

/// Signed by signxml with exclusive c14n, SHA-256 and RSA-SHA256; the assertion carries the
/// signature. Issued at [`ISSUED`], valid for ten minutes.
const ASSERTION_SIGNED: &str = include_str!("testdata/assertion_signed.xml");
/// The same identity provider, signature on the whole response.
const RESPONSE_SIGNED: &str = include_str!("testdata/response_signed.xml");
/// The identity provider's metadata with its self-signed certificate.
const METADATA: &str = include_str!("testdata/metadata.xml");
/// `2026-11-29T06:37:19Z`, the fixtures' IssueInstant.
const ISSUED: i64 = 1_795_934_239;

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn metadata() -> IdpMetadata {
    xmldsig::parse_metadata(METADATA).unwrap()
}

fn code(result: Result<VerifiedResponse, AwsError>) -> String {
    result.unwrap_err().code.into_owned()
}

#[test]
fn signxml_fixtures_verify() {
    let metadata = metadata();
    assert_eq!(metadata.entity_id, "https://idp.example.test/saml");
    assert_eq!(metadata.signing_keys.len(), 1);
    let verified = verify_response(&b64(ASSERTION_SIGNED), &metadata, ISSUED + 10).unwrap();
    assert_eq!(verified.issuer, "https://idp.example.test/saml");
    assert_eq!(verified.subject, "alice");
    assert_eq!(verified.subject_type().as_deref(), Some("persistent"));
    assert_eq!(verified.recipient, "https://signin.aws.amazon.com/saml");
    assert_eq!(
        verified.values("urn:oid:1.3.6.1.4.1.5923.1.1.1.1").unwrap(),
        ["member", "staff"]
    );
    assert_eq!(verified.value(SESSION_NAME_ATTRIBUTE), Some("alice@example.test"));
    let whole = verify_response(&b64(RESPONSE_SIGNED), &metadata, ISSUED + 10).unwrap();
    assert_eq!(whole.subject, "alice");
}

#[test]
fn tampering_expiry_and_foreign_keys_are_refused() {
    let metadata = metadata();
    let tampered = ASSERTION_SIGNED.replace("alice@example.test", "admin@example.test");
    let err = verify_response(&b64(&tampered), &metadata, ISSUED + 10).unwrap_err();
    assert_eq!(err.code, "InvalidIdentityToken");
    assert_eq!(err.message, "Response signature invalid");
    let tampered_whole = RESPONSE_SIGNED.replace("alice@example.test", "admin@example.test");
    assert_eq!(
        code(verify_response(&b64(&tampered_whole), &metadata, ISSUED + 10)),
        "InvalidIdentityToken"
    );
    assert_eq!(
        code(verify_response(&b64(ASSERTION_SIGNED), &metadata, ISSUED + 600)),
        "ExpiredTokenException"
    );
    assert_eq!(
        code(verify_response(&b64(ASSERTION_SIGNED), &metadata, ISSUED - 3600)),
        "InvalidIdentityToken"
    );
    let stranger = TestSigner::new();
    let foreign = IdpMetadata {
        entity_id: metadata.entity_id.clone(),
        signing_keys: vec![stranger.public_key.clone()],
    };
    assert_eq!(
        code(verify_response(&b64(ASSERTION_SIGNED), &foreign, ISSUED + 10)),
        "InvalidIdentityToken"
    );
    let other_issuer = IdpMetadata {
        entity_id: "https://other.example.test".into(),
        ..metadata
    };
    let err = verify_response(&b64(ASSERTION_SIGNED), &other_issuer, ISSUED + 10).unwrap_err();
    assert_eq!(err.message, "Issuer not present in specified provider");
}

#[test]
fn garbage_is_an_invalid_identity_token() {
    let metadata = metadata();
    for input in [
        "!!!".to_string(),
        b64("<x/>"),
        b64("<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>"),
        b64("<a"),
    ] {
        assert_eq!(
            code(verify_response(&input, &metadata, ISSUED)),
            "InvalidIdentityToken",
            "{input}"
        );
    }
}

/// An identity provider in Rust, for responses the fixtures do not cover.
struct TestSigner {
    key: KeyPair,
    public_key: Vec<u8>,
}

/// What a signed test response looks like.
struct Shape<'a> {
    audience: &'a str,
    recipient: &'a str,
    status: &'a str,
    /// `(digest URI, signature URI)`.
    algorithms: (&'a str, &'a str),
    comments: bool,
    /// Extra XML inside the response, after the assertion.
    extra: &'a str,
    sign_response: bool,
}

impl Default for Shape<'_> {
    fn default() -> Self {
        Self {
            audience: "urn:amazon:webservices",
            recipient: "https://us-west-2.signin.aws.amazon.com/saml",
            status: STATUS_SUCCESS,
            algorithms: (
                "http://www.w3.org/2001/04/xmlenc#sha256",
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            ),
            comments: false,
            extra: "",
            sign_response: false,
        }
    }
}

const ISSUER: &str = "https://idp.rust.test";

impl TestSigner {
    fn new() -> Self {
        let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let public_key = key.public_key().as_ref().to_vec();
        Self { key, public_key }
    }

    fn metadata(&self) -> IdpMetadata {
        IdpMetadata {
            entity_id: ISSUER.into(),
            signing_keys: vec![self.public_key.clone()],
        }
    }

    fn signature_template(&self, id: &str, shape: &Shape<'_>) -> String {
        let c14n = if shape.comments {
            "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
        } else {
            "http://www.w3.org/2001/10/xml-exc-c14n#"
        };
        format!(
            r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="{c14n}"><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="xs"/></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm="{sig}"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="{c14n}"><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="xs"/></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue>DIGEST</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>SIGNATURE</ds:SignatureValue></ds:Signature>"##,
            sig = shape.algorithms.1,
            digest = shape.algorithms.0,
        )
    }

    /// A response for `role_pair`, valid around [`ISSUED`] for five minutes.
    fn response(&self, shape: &Shape<'_>) -> String {
        let sig = self.signature_template(if shape.sign_response { "resp" } else { "assert" }, shape);
        let (response_sig, assertion_sig) = if shape.sign_response {
            (sig.as_str(), "")
        } else {
            ("", sig.as_str())
        };
        let xml = format!(
            r#"<samlp:Response xmlns:samlp="{PROTOCOL}" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="resp" Version="2.0">{response_sig}<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status><saml:Assertion xmlns:saml="{ASSERTION}" ID="assert" Version="2.0"><!-- signed --><saml:Issuer>{ISSUER}</saml:Issuer>{assertion_sig}<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">bob@example.test</saml:NameID><saml:SubjectConfirmation Method="{BEARER}"><saml:SubjectConfirmationData NotOnOrAfter="2026-11-29T06:42:19Z" Recipient="{recipient}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="2026-11-29T06:36:19Z" NotOnOrAfter="2026-11-29T06:42:19Z"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AttributeStatement><saml:Attribute Name="{SESSION_NAME_ATTRIBUTE}"><saml:AttributeValue xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">bob</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>{extra}</samlp:Response>"#,
            status = shape.status,
            recipient = shape.recipient,
            audience = shape.audience,
            extra = shape.extra,
        );
        let comments = if shape.comments { Comments::Keep } else { Comments::Omit };
        let prefixes = vec!["xs".to_string()];
        let digest_algorithm = if shape.algorithms.0.ends_with("sha1") {
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY
        } else {
            &aws_lc_rs::digest::SHA256
        };
        // Digest the signed element without its signature, then sign the completed SignedInfo.
        let root = c14n::parse(&xml).unwrap();
        let signed = if shape.sign_response {
            &root
        } else {
            root.child(ASSERTION, "Assertion").unwrap()
        };
        let signature = signed.child(DSIG, "Signature").unwrap();
        let canonical = ExcC14n {
            comments,
            inclusive_prefixes: &prefixes,
            exclude: Some(signature),
        }
        .canonicalize(signed);
        let digest = aws_lc_rs::digest::digest(digest_algorithm, canonical.as_bytes());
        let xml = xml.replace("DIGEST", &b64_bytes(digest.as_ref()));
        let root = c14n::parse(&xml).unwrap();
        let signed = if shape.sign_response {
            &root
        } else {
            root.child(ASSERTION, "Assertion").unwrap()
        };
        let signed_info = signed
            .child(DSIG, "Signature")
            .unwrap()
            .child(DSIG, "SignedInfo")
            .unwrap();
        let info = ExcC14n {
            comments,
            inclusive_prefixes: &prefixes,
            exclude: None,
        }
        .canonicalize(signed_info);
        // aws-lc-rs cannot sign RSA-SHA1, so signatures made here are always RSA-SHA256.
        assert!(shape.algorithms.1.ends_with("rsa-sha256"));
        let padding = &aws_lc_rs::signature::RSA_PKCS1_SHA256;
        let mut value = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                padding,
                &aws_lc_rs::rand::SystemRandom::new(),
                info.as_bytes(),
                &mut value,
            )
            .unwrap();
        b64(&xml.replace("SIGNATURE", &b64_bytes(&value)))
    }
}

fn b64_bytes(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn algorithms_comments_and_inclusive_prefixes_verify() {
    let signer = TestSigner::new();
    let metadata = signer.metadata();
    let sha1 = (
        "http://www.w3.org/2000/09/xmldsig#sha1",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    );
    for shape in [
        Shape::default(),
        Shape {
            comments: true,
            ..Default::default()
        },
        Shape {
            algorithms: sha1,
            ..Default::default()
        },
        Shape {
            sign_response: true,
            ..Default::default()
        },
    ] {
        let verified = verify_response(&signer.response(&shape), &metadata, ISSUED).unwrap();
        assert_eq!(verified.subject, "bob@example.test");
        assert_eq!(
            verified.subject_type().as_deref(),
            Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
        );
        assert_eq!(verified.recipient, "https://us-west-2.signin.aws.amazon.com/saml");
    }
}

#[test]
fn audience_recipient_and_status_are_checked() {
    let signer = TestSigner::new();
    let metadata = signer.metadata();
    let cases = [
        (
            Shape {
                audience: "https://sp.example.test",
                ..Default::default()
            },
            "InvalidIdentityToken",
        ),
        (
            Shape {
                recipient: "https://signin.aws.amazon.com.evil.test/saml",
                ..Default::default()
            },
            "InvalidIdentityToken",
        ),
        (
            Shape {
                status: "urn:oasis:names:tc:SAML:2.0:status:Requester",
                ..Default::default()
            },
            "IDPRejectedClaim",
        ),
    ];
    for (shape, expected) in cases {
        assert_eq!(
            code(verify_response(&signer.response(&shape), &metadata, ISSUED)),
            expected
        );
    }
}

#[test]
fn wrapped_and_duplicated_assertions_are_refused() {
    let signer = TestSigner::new();
    let metadata = signer.metadata();
    // A second, unsigned assertion beside the signed one.
    let second = format!(
        r#"<saml:Assertion xmlns:saml="{ASSERTION}" ID="evil"><saml:Issuer>{ISSUER}</saml:Issuer></saml:Assertion>"#
    );
    // The signed assertion's ID reused by another element.
    let duplicate_id = r#"<samlp:Extensions ID="assert"/>"#;
    for extra in [second.as_str(), duplicate_id] {
        let shape = Shape {
            extra,
            sign_response: false,
            ..Default::default()
        };
        assert_eq!(
            code(verify_response(&signer.response(&shape), &metadata, ISSUED)),
            "InvalidIdentityToken",
            "{extra}"
        );
    }
    // The signed assertion moved into an extension and replaced with an unsigned one.
    let genuine = signer.response(&Shape::default());
    let xml = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(genuine).unwrap()).unwrap();
    let start = xml.find("<saml:Assertion").unwrap();
    let end = xml.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    let signed = &xml[start..end];
    let evil = signed.replace("bob", "root").replace("ID=\"assert\"", "ID=\"evil\"");
    let wrapped = format!(
        "{}{}<samlp:Extensions>{}</samlp:Extensions>{}",
        &xml[..start],
        evil,
        signed,
        &xml[end..]
    );
    assert_eq!(
        code(verify_response(&b64(&wrapped), &metadata, ISSUED)),
        "InvalidIdentityToken"
    );
}

#[test]
fn unsigned_responses_are_refused() {
    let signer = TestSigner::new();
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(signer.response(&Shape::default()))
            .unwrap(),
    )
    .unwrap();
    let start = xml.find("<ds:Signature").unwrap();
    let end = xml.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let unsigned = format!("{}{}", &xml[..start], &xml[end..]);
    let err = verify_response(&b64(&unsigned), &signer.metadata(), ISSUED).unwrap_err();
    assert_eq!(err.message, "Response signature invalid");
}

#[test]
fn helpers_follow_aws() {
    // AWS's documented example: BASE64(SHA1("https://example.com/saml" + "123456789012" + "/MySAMLIdP")).
    let expected = b64_bytes(
        aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            b"https://example.com/saml123456789012/MySAMLIdP",
        )
        .as_ref(),
    );
    assert_eq!(
        name_qualifier("https://example.com/saml", "123456789012", "MySAMLIdP"),
        expected
    );
    for (url, ok) in [
        ("https://signin.aws.amazon.com/saml", true),
        ("https://eu-west-1.signin.aws.amazon.com/saml", true),
        ("https://signin.aws.amazon.com/saml/acs/SAMLSP4SHN3UIS2D558H46", true),
        ("http://signin.aws.amazon.com/saml", false),
        ("https://signin.aws.amazon.com/other", false),
        ("https://evil.test/.signin.aws.amazon.com/saml", false),
        ("https://a.b.signin.aws.amazon.com/saml", false),
    ] {
        assert_eq!(is_signin_endpoint(url), ok, "{url}");
    }
    let role = "arn:aws:iam::123456789012:role/R";
    let idp = "arn:aws:iam::123456789012:saml-provider/P";
    assert!(role_pair_present(&[format!("{role},{idp}")], role, idp));
    assert!(role_pair_present(&[format!("{idp}, {role}")], role, idp));
    assert!(!role_pair_present(&[format!("{role},{role}")], role, idp));
    assert!(!role_pair_present(&[role.to_string()], role, idp));
    assert!(valid_session_name("alice@example.test"));
    assert!(!valid_session_name("a"));
    assert!(!valid_session_name("has space"));
}
