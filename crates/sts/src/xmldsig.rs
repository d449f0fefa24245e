//! XML Signature verification for SAML, restricted to what the SAML profile allows.
//!
//! A SAML signature is enveloped: the `ds:Signature` element is a child of the element it signs,
//! and its single `Reference` points at that element's `ID` (`URI="#id"`). Verification here
//! requires exactly that shape, which is also the first defence against signature wrapping: the
//! signed element is found structurally (the signature's parent), never by looking an ID up, so the
//! caller knows exactly which element the signature covers ([`verify_enveloped`]).
//!
//! Accepted algorithms: exclusive canonicalization with or without comments
//! (`CanonicalizationMethod` and the reference's transform, together with `enveloped-signature`),
//! SHA-256 and SHA-1 digests, and RSA PKCS#1 v1.5 signatures with SHA-256 or SHA-1, verified with
//! aws-lc-rs. The keys are the RSA keys of the X.509 signing certificates in the provider's metadata
//! document; a key or certificate inside the signature's `KeyInfo` is never trusted.

use crate::c14n::{Comments, Element, ExcC14n};
use base64::Engine;

/// The XML Signature namespace.
pub const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
/// The SAML 2.0 metadata namespace.
pub const METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const EXC_C14N_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
/// DER of the rsaEncryption OID (1.2.840.113549.1.1.1).
const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Why a signature did not verify (for logs; callers answer AWS's one message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature's structure is not the SAML profile's.
    #[error("unsupported signature structure: {0}")]
    Structure(&'static str),
    /// An algorithm outside the accepted set.
    #[error("unsupported algorithm {0}")]
    Algorithm(String),
    /// The reference digest does not match the signed element.
    #[error("digest mismatch")]
    Digest,
    /// No trusted key verifies the signature value.
    #[error("signature value does not verify with any trusted key")]
    Value,
}

/// The signing material of a SAML provider's metadata document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    /// The `entityID` of the identity provider.
    pub entity_id: String,
    /// DER `RSAPublicKey`s of the signing certificates.
    pub signing_keys: Vec<Vec<u8>>,
}

/// Reads the entity id and signing keys from a metadata document (an `EntityDescriptor`, or an
/// `EntitiesDescriptor` whose first entity with an `IDPSSODescriptor` is used).
pub fn parse_metadata(document: &str) -> Option<IdpMetadata> {
    let root = crate::c14n::parse(document).ok()?;
    let entity = root
        .descendants()
        .into_iter()
        .find(|e| e.is(METADATA, "EntityDescriptor") && e.child(METADATA, "IDPSSODescriptor").is_some())?;
    let idp = entity.child(METADATA, "IDPSSODescriptor")?;
    let mut signing_keys = Vec::new();
    for descriptor in idp.children_named(METADATA, "KeyDescriptor") {
        if descriptor.attr("use").is_some_and(|u| u != "signing") {
            continue;
        }
        for element in descriptor.descendants() {
            if element.is(DSIG, "X509Certificate") {
                let text: String = element.text().chars().filter(|c| !c.is_whitespace()).collect();
                let der = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
                signing_keys.push(rsa_public_key_of_certificate(&der)?);
            }
        }
    }
    Some(IdpMetadata {
        entity_id: entity.attr("entityID")?.to_string(),
        signing_keys,
    })
}

/// One DER TLV: `(tag, contents, rest)`.
fn der_read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(n)?;
        rest = after;
        bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let (contents, after) = rest.split_at_checked(length)?;
    Some((tag, contents, after))
}

/// The `RSAPublicKey` inside an X.509 certificate's SubjectPublicKeyInfo, if the key is RSA.
pub fn rsa_public_key_of_certificate(der: &[u8]) -> Option<Vec<u8>> {
    const SEQUENCE: u8 = 0x30;
    let (tag, certificate, _) = der_read(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = der_read(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let (tag, _, after) = der_read(rest)?;
    // The explicit `[0] version` is optional.
    if tag == 0xa0 {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        let (_, _, after) = der_read(rest)?;
        rest = after;
    }
    let (tag, spki, _) = der_read(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, algorithm, after) = der_read(spki)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, oid, _) = der_read(algorithm)?;
    if tag != 0x06 || oid != RSA_ENCRYPTION_OID {
        return None;
    }
    let (tag, bits, _) = der_read(after)?;
    let (&unused, key) = bits.split_first()?;
    (tag == 0x03 && unused == 0).then(|| key.to_vec())
}

fn algorithm_of(element: &Element) -> &str {
    element.attr("Algorithm").unwrap_or_default()
}

/// The exclusive canonicalization named by a `CanonicalizationMethod` or `Transform`, with its
/// inclusive prefix list.
fn c14n_method(element: &Element) -> Result<(Comments, Vec<String>), SignatureError> {
    let comments = match algorithm_of(element) {
        EXC_C14N => Comments::Omit,
        EXC_C14N_COMMENTS => Comments::Keep,
        other => return Err(SignatureError::Algorithm(other.to_string())),
    };
    let prefixes = element
        .elements()
        .find(|e| e.namespace == EXC_C14N && e.local == "InclusiveNamespaces")
        .and_then(|e| e.attr("PrefixList"))
        .map(|list| list.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    Ok((comments, prefixes))
}

fn single<'a>(parent: &'a Element, local: &'static str) -> Result<&'a Element, SignatureError> {
    let mut found = parent.children_named(DSIG, local);
    match (found.next(), found.next()) {
        (Some(element), None) => Ok(element),
        _ => Err(SignatureError::Structure(local)),
    }
}

fn decode_base64(text: &str) -> Result<Vec<u8>, SignatureError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| SignatureError::Structure("base64"))
}

/// Verifies the enveloped `signature`, a child of `signed`, with one of `keys`.
///
/// # Errors
/// [`SignatureError`] when the structure, an algorithm, the digest or the signature value is wrong.
pub fn verify_enveloped(signed: &Element, signature: &Element, keys: &[Vec<u8>]) -> Result<(), SignatureError> {
    use aws_lc_rs::{constant_time, digest, signature as sig};
    let id = signed
        .attr("ID")
        .ok_or(SignatureError::Structure("signed element without ID"))?;
    let signed_info = single(signature, "SignedInfo")?;
    let (info_comments, info_prefixes) = c14n_method(single(signed_info, "CanonicalizationMethod")?)?;
    let method = algorithm_of(single(signed_info, "SignatureMethod")?);
    let reference = single(signed_info, "Reference")?;
    if reference.attr("URI") != Some(format!("#{id}").as_str()) {
        return Err(SignatureError::Structure(
            "reference does not point at the signed element",
        ));
    }

    // Transforms: enveloped-signature, then at most one exclusive canonicalization.
    let mut enveloped = false;
    let mut canonicalization: Option<(Comments, Vec<String>)> = None;
    if let Some(transforms) = reference.child(DSIG, "Transforms") {
        for transform in transforms.elements() {
            if !transform.is(DSIG, "Transform") {
                return Err(SignatureError::Structure("Transforms"));
            }
            match algorithm_of(transform) {
                ENVELOPED if !enveloped && canonicalization.is_none() => enveloped = true,
                EXC_C14N | EXC_C14N_COMMENTS if canonicalization.is_none() => {
                    canonicalization = Some(c14n_method(transform)?);
                }
                other => return Err(SignatureError::Algorithm(other.to_string())),
            }
        }
    }
    if !enveloped {
        return Err(SignatureError::Structure("the signature must be enveloped"));
    }
    // Without an explicit transform the node set would go through inclusive canonicalization,
    // which SAML identity providers do not use and Citadel does not implement.
    let (comments, prefixes) = canonicalization.ok_or(SignatureError::Structure("no canonicalization transform"))?;
    let digest_algorithm = match algorithm_of(single(reference, "DigestMethod")?) {
        SHA256 => &digest::SHA256,
        SHA1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        other => return Err(SignatureError::Algorithm(other.to_string())),
    };
    let expected = decode_base64(&single(reference, "DigestValue")?.text())?;
    let canonical = ExcC14n {
        comments,
        inclusive_prefixes: &prefixes,
        exclude: Some(signature),
    }
    .canonicalize(signed);
    let actual = digest::digest(digest_algorithm, canonical.as_bytes());
    if constant_time::verify_slices_are_equal(actual.as_ref(), &expected).is_err() {
        return Err(SignatureError::Digest);
    }

    let verification: &'static dyn sig::VerificationAlgorithm = match method {
        RSA_SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        RSA_SHA1 => &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        other => return Err(SignatureError::Algorithm(other.to_string())),
    };
    let value = decode_base64(&single(signature, "SignatureValue")?.text())?;
    let info_canonical = ExcC14n {
        comments: info_comments,
        inclusive_prefixes: &info_prefixes,
        exclude: None,
    }
    .canonicalize(signed_info);
    keys.iter()
        .any(|key| {
            sig::UnparsedPublicKey::new(verification, key)
                .verify(info_canonical.as_bytes(), &value)
                .is_ok()
        })
        .then_some(())
        .ok_or(SignatureError::Value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_and_truncation() {
        assert_eq!(
            der_read(&[0x04, 0x02, 1, 2, 9]),
            Some((0x04, &[1u8, 2][..], &[9u8][..]))
        );
        assert_eq!(der_read(&[0x04, 0x81, 0x01, 7]), Some((0x04, &[7u8][..], &[][..])));
        assert_eq!(der_read(&[0x04, 0x03, 1]), None);
        assert_eq!(der_read(&[0x04, 0x80]), None);
        assert!(rsa_public_key_of_certificate(b"not a certificate").is_none());
    }

    #[test]
    fn metadata_without_an_idp_is_refused() {
        assert!(parse_metadata("<x/>").is_none());
        let sp = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="e"><md:SPSSODescriptor/></md:EntityDescriptor>"#;
        assert!(parse_metadata(sp).is_none());
        let no_keys = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="e"><md:IDPSSODescriptor/></md:EntityDescriptor>"#;
        assert_eq!(
            parse_metadata(no_keys),
            Some(IdpMetadata {
                entity_id: "e".into(),
                signing_keys: Vec::new()
            })
        );
    }
}
