//! The cryptographic layer of KMS: key generation, the symmetric ciphertext blob, and the
//! asymmetric and HMAC primitives, all from aws-lc-rs.
//!
//! This module is pure: it holds no state, does no I/O, and knows nothing about key records,
//! accounts or policies. Handlers hand it key material (already unsealed) and get bytes back,
//! so the format and the primitives can be tested and benchmarked on their own.
//!
//! # The symmetric ciphertext blob (version 1)
//!
//! ```text
//! offset  size  field
//! 0       1     format version, 0x01
//! 1       16    key id (the UUID of the KMS key, as 16 raw bytes)
//! 17      4     key material version, u32 big-endian (0 = original material, n = n-th rotation)
//! 21      12    AES-GCM nonce (random)
//! 33      n     AES-256-GCM ciphertext of the plaintext (n = plaintext length)
//! 33+n    16    AES-GCM tag
//! ```
//!
//! The associated data authenticated by the tag is the 33-byte header followed by the canonical
//! encoding of the encryption context: its pairs sorted by key (bytewise), each written as
//! `u32 BE key length || key || u32 BE value length || value`. An empty context encodes to nothing.
//!
//! Because the header is authenticated, changing the version, the key id or the material version
//! makes the tag fail, and because the context is authenticated, decrypting with a different
//! context fails too; every such failure is reported as [`CryptoError::InvalidCiphertext`], which
//! the service maps to `InvalidCiphertextException`.
//! The key id travels in clear so that Decrypt can find (and authorize against) the key without a
//! `KeyId` parameter, as AWS does; the material version lets a rotated key decrypt old blobs.
//!
//! # Known weaknesses
//!
//! Nonces are random 96-bit values: NIST SP 800-38D bounds that to about 2^32 encryptions per key
//! version. Automatic rotation resets the count; a key used for more than that should be rotated.
//! Blob length reveals plaintext length, as with AWS.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// The current blob format version.
pub const BLOB_VERSION: u8 = 1;
/// Length of the blob header (version, key id, material version, nonce).
pub const HEADER_LEN: usize = 1 + 16 + 4 + NONCE_LEN;
/// Length of the AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Length of symmetric key material (AES-256).
pub const SYMMETRIC_KEY_LEN: usize = 32;

/// Why a cryptographic operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The blob is malformed, tampered, or was made under another key or context.
    #[error("the ciphertext is invalid")]
    InvalidCiphertext,
    /// The key material does not fit the key spec (corrupt record or wrong import).
    #[error("the key material is invalid")]
    InvalidKeyMaterial,
    /// The input does not fit the algorithm (digest length, plaintext too long for RSA).
    #[error("{0}")]
    InvalidInput(String),
    /// The algorithm does not apply to the key spec.
    #[error("the algorithm does not apply to this key")]
    UnsupportedAlgorithm,
    /// aws-lc reported a failure that no input explains.
    #[error("internal cryptographic failure")]
    Internal,
}

/// The key specs Citadel implements (AWS's `KeySpec` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// AES-256-GCM.
    SymmetricDefault,
    /// RSA 2048.
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
    /// RSA 4096.
    Rsa4096,
    /// ECDSA on P-256.
    EccNistP256,
    /// ECDSA on P-384.
    EccNistP384,
    /// ECDSA on P-521.
    EccNistP521,
    /// ECDSA on secp256k1.
    EccSecgP256k1,
    /// HMAC with SHA-224.
    Hmac224,
    /// HMAC with SHA-256.
    Hmac256,
    /// HMAC with SHA-384.
    Hmac384,
    /// HMAC with SHA-512.
    Hmac512,
}

/// What a key is for (AWS's `KeyUsage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsage {
    /// Encrypt and decrypt.
    EncryptDecrypt,
    /// Sign and verify.
    SignVerify,
    /// Generate and verify MACs.
    GenerateVerifyMac,
}

impl KeyUsage {
    /// Parses AWS's name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ENCRYPT_DECRYPT" => Self::EncryptDecrypt,
            "SIGN_VERIFY" => Self::SignVerify,
            "GENERATE_VERIFY_MAC" => Self::GenerateVerifyMac,
            _ => return None,
        })
    }

    /// AWS's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EncryptDecrypt => "ENCRYPT_DECRYPT",
            Self::SignVerify => "SIGN_VERIFY",
            Self::GenerateVerifyMac => "GENERATE_VERIFY_MAC",
        }
    }
}

impl KeySpec {
    /// Every implemented spec, in AWS's order.
    pub const ALL: [KeySpec; 12] = [
        Self::SymmetricDefault,
        Self::Rsa2048,
        Self::Rsa3072,
        Self::Rsa4096,
        Self::EccNistP256,
        Self::EccNistP384,
        Self::EccNistP521,
        Self::EccSecgP256k1,
        Self::Hmac224,
        Self::Hmac256,
        Self::Hmac384,
        Self::Hmac512,
    ];

    /// Parses AWS's name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|spec| spec.as_str() == text)
    }

    /// AWS's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SymmetricDefault => "SYMMETRIC_DEFAULT",
            Self::Rsa2048 => "RSA_2048",
            Self::Rsa3072 => "RSA_3072",
            Self::Rsa4096 => "RSA_4096",
            Self::EccNistP256 => "ECC_NIST_P256",
            Self::EccNistP384 => "ECC_NIST_P384",
            Self::EccNistP521 => "ECC_NIST_P521",
            Self::EccSecgP256k1 => "ECC_SECG_P256K1",
            Self::Hmac224 => "HMAC_224",
            Self::Hmac256 => "HMAC_256",
            Self::Hmac384 => "HMAC_384",
            Self::Hmac512 => "HMAC_512",
        }
    }

    /// True for RSA specs.
    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096)
    }

    /// True for elliptic-curve specs.
    pub fn is_ecc(self) -> bool {
        matches!(
            self,
            Self::EccNistP256 | Self::EccNistP384 | Self::EccNistP521 | Self::EccSecgP256k1
        )
    }

    /// True for HMAC specs.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::Hmac224 | Self::Hmac256 | Self::Hmac384 | Self::Hmac512)
    }

    /// True for key pairs (RSA and ECC).
    pub fn is_asymmetric(self) -> bool {
        self.is_rsa() || self.is_ecc()
    }

    /// The key usages AWS allows for this spec.
    pub fn allowed_usages(self) -> &'static [KeyUsage] {
        match self {
            Self::SymmetricDefault => &[KeyUsage::EncryptDecrypt],
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => &[KeyUsage::EncryptDecrypt, KeyUsage::SignVerify],
            Self::EccNistP256 | Self::EccNistP384 | Self::EccNistP521 | Self::EccSecgP256k1 => &[KeyUsage::SignVerify],
            Self::Hmac224 | Self::Hmac256 | Self::Hmac384 | Self::Hmac512 => &[KeyUsage::GenerateVerifyMac],
        }
    }

    /// The encryption algorithms of a key with this spec and usage.
    pub fn encryption_algorithms(self, usage: KeyUsage) -> &'static [&'static str] {
        match (self, usage) {
            (Self::SymmetricDefault, _) => &["SYMMETRIC_DEFAULT"],
            (spec, KeyUsage::EncryptDecrypt) if spec.is_rsa() => &["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"],
            _ => &[],
        }
    }

    /// The signing algorithms of a key with this spec and usage.
    pub fn signing_algorithms(self, usage: KeyUsage) -> &'static [&'static str] {
        if usage != KeyUsage::SignVerify {
            return &[];
        }
        match self {
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => &[
                "RSASSA_PKCS1_V1_5_SHA_256",
                "RSASSA_PKCS1_V1_5_SHA_384",
                "RSASSA_PKCS1_V1_5_SHA_512",
                "RSASSA_PSS_SHA_256",
                "RSASSA_PSS_SHA_384",
                "RSASSA_PSS_SHA_512",
            ],
            Self::EccNistP256 | Self::EccSecgP256k1 => &["ECDSA_SHA_256"],
            Self::EccNistP384 => &["ECDSA_SHA_384"],
            Self::EccNistP521 => &["ECDSA_SHA_512"],
            _ => &[],
        }
    }

    /// The MAC algorithms of a key with this spec.
    pub fn mac_algorithms(self) -> &'static [&'static str] {
        match self {
            Self::Hmac224 => &["HMAC_SHA_224"],
            Self::Hmac256 => &["HMAC_SHA_256"],
            Self::Hmac384 => &["HMAC_SHA_384"],
            Self::Hmac512 => &["HMAC_SHA_512"],
            _ => &[],
        }
    }

    fn hmac_algorithm(self) -> Option<hmac::Algorithm> {
        match self {
            Self::Hmac224 => Some(hmac::HMAC_SHA224),
            Self::Hmac256 => Some(hmac::HMAC_SHA256),
            Self::Hmac384 => Some(hmac::HMAC_SHA384),
            Self::Hmac512 => Some(hmac::HMAC_SHA512),
            _ => None,
        }
    }

    fn hmac_key_len(self) -> usize {
        match self {
            Self::Hmac224 => 28,
            Self::Hmac256 => 32,
            Self::Hmac384 => 48,
            _ => 64,
        }
    }

    fn ecdsa_signing(self) -> Option<&'static signature::EcdsaSigningAlgorithm> {
        match self {
            Self::EccNistP256 => Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
            Self::EccNistP384 => Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
            Self::EccNistP521 => Some(&signature::ECDSA_P521_SHA512_ASN1_SIGNING),
            Self::EccSecgP256k1 => Some(&signature::ECDSA_P256K1_SHA256_ASN1_SIGNING),
            _ => None,
        }
    }

    fn ecdsa_verification(self) -> Option<&'static signature::EcdsaVerificationAlgorithm> {
        match self {
            Self::EccNistP256 => Some(&signature::ECDSA_P256_SHA256_ASN1),
            Self::EccNistP384 => Some(&signature::ECDSA_P384_SHA384_ASN1),
            Self::EccNistP521 => Some(&signature::ECDSA_P521_SHA512_ASN1),
            Self::EccSecgP256k1 => Some(&signature::ECDSA_P256K1_SHA256_ASN1),
            _ => None,
        }
    }

    fn rsa_size(self) -> Option<KeySize> {
        match self {
            Self::Rsa2048 => Some(KeySize::Rsa2048),
            Self::Rsa3072 => Some(KeySize::Rsa3072),
            Self::Rsa4096 => Some(KeySize::Rsa4096),
            _ => None,
        }
    }
}

/// Fills a fresh buffer with `len` bytes from the operating system's CSPRNG.
pub fn random_bytes(len: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    aws_lc_rs::rand::fill(&mut out).map_err(|_| CryptoError::Internal)?;
    Ok(out)
}

/// Generates key material for `spec`: raw bytes for symmetric and HMAC keys, PKCS#8 DER for key pairs.
pub fn generate_material(spec: KeySpec) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if spec == KeySpec::SymmetricDefault {
        return random_bytes(SYMMETRIC_KEY_LEN);
    }
    if spec.is_hmac() {
        return random_bytes(spec.hmac_key_len());
    }
    if let Some(size) = spec.rsa_size() {
        let pair = RsaKeyPair::generate(size).map_err(|_| CryptoError::Internal)?;
        let der = pair.as_der().map_err(|_| CryptoError::Internal)?;
        return Ok(Zeroizing::new(der.as_ref().to_vec()));
    }
    let alg = spec.ecdsa_signing().ok_or(CryptoError::UnsupportedAlgorithm)?;
    let pair = EcdsaKeyPair::generate(alg).map_err(|_| CryptoError::Internal)?;
    let doc = pair.to_pkcs8v1().map_err(|_| CryptoError::Internal)?;
    Ok(Zeroizing::new(doc.as_ref().to_vec()))
}

/// The DER `SubjectPublicKeyInfo` of a key pair's material.
pub fn public_key_der(spec: KeySpec, material: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if spec.is_rsa() {
        let pair = RsaKeyPair::from_pkcs8(material).map_err(|_| CryptoError::InvalidKeyMaterial)?;
        let der = pair.public_key().as_der().map_err(|_| CryptoError::Internal)?;
        return Ok(der.as_ref().to_vec());
    }
    let alg = spec.ecdsa_signing().ok_or(CryptoError::UnsupportedAlgorithm)?;
    let pair = EcdsaKeyPair::from_pkcs8(alg, material).map_err(|_| CryptoError::InvalidKeyMaterial)?;
    let der = pair.public_key().as_der().map_err(|_| CryptoError::Internal)?;
    Ok(der.as_ref().to_vec())
}

/// The parsed clear header of a symmetric blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobHeader {
    /// The key's UUID as raw bytes.
    pub key_id: [u8; 16],
    /// The key material version that encrypted the blob.
    pub material_version: u32,
}

impl BlobHeader {
    /// Reads the header of `blob` without authenticating it (that happens on decryption).
    pub fn parse(blob: &[u8]) -> Result<Self, CryptoError> {
        if blob.len() < HEADER_LEN + TAG_LEN || blob.first() != Some(&BLOB_VERSION) {
            return Err(CryptoError::InvalidCiphertext);
        }
        let key_id: [u8; 16] = blob
            .get(1..17)
            .and_then(|s| s.try_into().ok())
            .ok_or(CryptoError::InvalidCiphertext)?;
        let version: [u8; 4] = blob
            .get(17..21)
            .and_then(|s| s.try_into().ok())
            .ok_or(CryptoError::InvalidCiphertext)?;
        Ok(Self {
            key_id,
            material_version: u32::from_be_bytes(version),
        })
    }

    /// The key id in its textual UUID form.
    pub fn key_id_string(&self) -> String {
        uuid_string(&self.key_id)
    }
}

/// Parses a textual UUID (`8-4-4-4-12` hex) into 16 bytes.
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    // Only the hyphenated form (36 characters) names a key; the uuid crate also reads the simple,
    // braced and URN forms, which have other lengths.
    if text.len() != 36 {
        return None;
    }
    uuid::Uuid::try_parse(text).ok().map(uuid::Uuid::into_bytes)
}

/// Formats 16 bytes as a lower-case textual UUID.
pub fn uuid_string(bytes: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*bytes).hyphenated().to_string()
}

/// The canonical encoding of an encryption context (see the module docs).
pub fn encode_context(context: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in context {
        for part in [key.as_bytes(), value.as_bytes()] {
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}

fn aes_key(material: &[u8]) -> Result<LessSafeKey, CryptoError> {
    if material.len() != SYMMETRIC_KEY_LEN {
        return Err(CryptoError::InvalidKeyMaterial);
    }
    UnboundKey::new(&AES_256_GCM, material)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::InvalidKeyMaterial)
}

/// Encrypts `plaintext` into a version-1 blob under `material` (32 bytes), bound to `context`.
pub fn encrypt(
    material: &[u8],
    key_id: &[u8; 16],
    material_version: u32,
    plaintext: &[u8],
    context: &BTreeMap<String, String>,
) -> Result<Vec<u8>, CryptoError> {
    let key = aes_key(material)?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CryptoError::Internal)?;
    let mut blob = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    blob.push(BLOB_VERSION);
    blob.extend_from_slice(key_id);
    blob.extend_from_slice(&material_version.to_be_bytes());
    blob.extend_from_slice(&nonce);
    let mut aad = blob.clone();
    aad.extend_from_slice(&encode_context(context));
    let mut body = Zeroizing::new(plaintext.to_vec());
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut *body)
        .map_err(|_| CryptoError::Internal)?;
    blob.extend_from_slice(&body);
    Ok(blob)
}

/// Decrypts a version-1 blob with `material`, which must be the material its header names,
/// under the same `context`.
pub fn decrypt(
    material: &[u8],
    blob: &[u8],
    context: &BTreeMap<String, String>,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    BlobHeader::parse(blob)?;
    let key = aes_key(material)?;
    let (header, sealed) = blob.split_at(HEADER_LEN);
    let nonce_bytes = header
        .get(HEADER_LEN - NONCE_LEN..)
        .ok_or(CryptoError::InvalidCiphertext)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| CryptoError::InvalidCiphertext)?;
    let mut aad = header.to_vec();
    aad.extend_from_slice(&encode_context(context));
    let mut buffer = Zeroizing::new(sealed.to_vec());
    let len = key
        .open_in_place(nonce, Aad::from(aad), &mut buffer)
        .map_err(|_| CryptoError::InvalidCiphertext)?
        .len();
    buffer.truncate(len);
    Ok(buffer)
}

fn oaep(algorithm: &str) -> Result<&'static OaepAlgorithm, CryptoError> {
    match algorithm {
        "RSAES_OAEP_SHA_1" => Ok(&OAEP_SHA1_MGF1SHA1),
        "RSAES_OAEP_SHA_256" => Ok(&OAEP_SHA256_MGF1SHA256),
        _ => Err(CryptoError::UnsupportedAlgorithm),
    }
}

/// RSAES-OAEP encryption with a DER `SubjectPublicKeyInfo`.
pub fn rsa_encrypt(public_der: &[u8], algorithm: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let alg = oaep(algorithm)?;
    let public = PublicEncryptingKey::from_der(public_der).map_err(|_| CryptoError::InvalidKeyMaterial)?;
    let key = OaepPublicEncryptingKey::new(public).map_err(|_| CryptoError::InvalidKeyMaterial)?;
    if plaintext.len() > key.max_plaintext_size(alg) {
        return Err(CryptoError::InvalidInput(format!(
            "Plaintext is too long: at most {} bytes can be encrypted with {algorithm} under this key.",
            key.max_plaintext_size(alg)
        )));
    }
    let mut out = vec![0u8; key.ciphertext_size()];
    let len = key
        .encrypt(alg, plaintext, &mut out, None)
        .map_err(|_| CryptoError::Internal)?
        .len();
    out.truncate(len);
    Ok(out)
}

/// RSAES-OAEP decryption with a PKCS#8 private key.
pub fn rsa_decrypt(pkcs8: &[u8], algorithm: &str, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let alg = oaep(algorithm)?;
    let private = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|_| CryptoError::InvalidKeyMaterial)?;
    let key = OaepPrivateDecryptingKey::new(private).map_err(|_| CryptoError::InvalidKeyMaterial)?;
    let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
    let len = key
        .decrypt(alg, ciphertext, &mut out, None)
        .map_err(|_| CryptoError::InvalidCiphertext)?
        .len();
    out.truncate(len);
    Ok(out)
}

/// A fresh RSA key pair for wrapping imported key material: (PKCS#8 private key, SPKI public key).
pub fn generate_wrapping_key(spec: KeySpec) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), CryptoError> {
    let size = spec.rsa_size().ok_or(CryptoError::UnsupportedAlgorithm)?;
    let private = PrivateDecryptingKey::generate(size).map_err(|_| CryptoError::Internal)?;
    let pkcs8 = private.as_der().map_err(|_| CryptoError::Internal)?;
    let public = private.public_key().as_der().map_err(|_| CryptoError::Internal)?;
    Ok((Zeroizing::new(pkcs8.as_ref().to_vec()), public.as_ref().to_vec()))
}

/// Whether `message` is the raw message or its precomputed digest (AWS's `MessageType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// The message itself; it is hashed with the algorithm's digest.
    Raw,
    /// A digest computed by the caller.
    Digest,
}

struct SigningChoice {
    digest: &'static digest::Algorithm,
    rsa_sign: Option<&'static dyn signature::RsaEncoding>,
    rsa_verify: Option<&'static signature::RsaParameters>,
}

fn signing_choice(spec: KeySpec, algorithm: &str) -> Result<SigningChoice, CryptoError> {
    if !spec.signing_algorithms(KeyUsage::SignVerify).contains(&algorithm) {
        return Err(CryptoError::UnsupportedAlgorithm);
    }
    let choice = |digest, rsa_sign: Option<&'static dyn signature::RsaEncoding>, rsa_verify| SigningChoice {
        digest,
        rsa_sign,
        rsa_verify,
    };
    Ok(match algorithm {
        "RSASSA_PKCS1_V1_5_SHA_256" => choice(
            &digest::SHA256,
            Some(&signature::RSA_PKCS1_SHA256),
            Some(&signature::RSA_PKCS1_2048_8192_SHA256),
        ),
        "RSASSA_PKCS1_V1_5_SHA_384" => choice(
            &digest::SHA384,
            Some(&signature::RSA_PKCS1_SHA384),
            Some(&signature::RSA_PKCS1_2048_8192_SHA384),
        ),
        "RSASSA_PKCS1_V1_5_SHA_512" => choice(
            &digest::SHA512,
            Some(&signature::RSA_PKCS1_SHA512),
            Some(&signature::RSA_PKCS1_2048_8192_SHA512),
        ),
        "RSASSA_PSS_SHA_256" => choice(
            &digest::SHA256,
            Some(&signature::RSA_PSS_SHA256),
            Some(&signature::RSA_PSS_2048_8192_SHA256),
        ),
        "RSASSA_PSS_SHA_384" => choice(
            &digest::SHA384,
            Some(&signature::RSA_PSS_SHA384),
            Some(&signature::RSA_PSS_2048_8192_SHA384),
        ),
        "RSASSA_PSS_SHA_512" => choice(
            &digest::SHA512,
            Some(&signature::RSA_PSS_SHA512),
            Some(&signature::RSA_PSS_2048_8192_SHA512),
        ),
        "ECDSA_SHA_256" => choice(&digest::SHA256, None, None),
        "ECDSA_SHA_384" => choice(&digest::SHA384, None, None),
        "ECDSA_SHA_512" => choice(&digest::SHA512, None, None),
        _ => return Err(CryptoError::UnsupportedAlgorithm),
    })
}

fn message_digest(
    digest_alg: &'static digest::Algorithm,
    message: &[u8],
    message_type: MessageType,
) -> Result<digest::Digest, CryptoError> {
    match message_type {
        MessageType::Raw => Ok(digest::digest(digest_alg, message)),
        MessageType::Digest => digest::Digest::import_less_safe(message, digest_alg).map_err(|_| {
            CryptoError::InvalidInput(format!(
                "Digest is invalid length for algorithm: expected {} bytes, got {}.",
                digest_alg.output_len(),
                message.len()
            ))
        }),
    }
}

/// Signs `message` (or its digest) with a key pair's PKCS#8 material; ECDSA signatures are DER.
pub fn sign(
    spec: KeySpec,
    pkcs8: &[u8],
    algorithm: &str,
    message: &[u8],
    message_type: MessageType,
) -> Result<Vec<u8>, CryptoError> {
    let choice = signing_choice(spec, algorithm)?;
    let digest = message_digest(choice.digest, message, message_type)?;
    if let Some(encoding) = choice.rsa_sign {
        let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| CryptoError::InvalidKeyMaterial)?;
        let mut out = vec![0u8; pair.public_modulus_len()];
        pair.sign_digest(encoding, &digest, &mut out)
            .map_err(|_| CryptoError::Internal)?;
        return Ok(out);
    }
    let alg = spec.ecdsa_signing().ok_or(CryptoError::UnsupportedAlgorithm)?;
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(|_| CryptoError::InvalidKeyMaterial)?;
    let sig = pair.sign_digest(&digest).map_err(|_| CryptoError::Internal)?;
    Ok(sig.as_ref().to_vec())
}

/// Verifies a signature made by [`sign`] (or by anyone holding the private key) with the key pair's
/// PKCS#8 material. Returns `Ok(false)` for a well-formed request whose signature does not match.
pub fn verify(
    spec: KeySpec,
    pkcs8: &[u8],
    algorithm: &str,
    message: &[u8],
    message_type: MessageType,
    signature_bytes: &[u8],
) -> Result<bool, CryptoError> {
    let choice = signing_choice(spec, algorithm)?;
    let digest = message_digest(choice.digest, message, message_type)?;
    let result = if let Some(params) = choice.rsa_verify {
        let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| CryptoError::InvalidKeyMaterial)?;
        UnparsedPublicKey::new(params, pair.public_key().as_ref()).verify_digest(&digest, signature_bytes)
    } else {
        let signing = spec.ecdsa_signing().ok_or(CryptoError::UnsupportedAlgorithm)?;
        let verification = spec.ecdsa_verification().ok_or(CryptoError::UnsupportedAlgorithm)?;
        let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8).map_err(|_| CryptoError::InvalidKeyMaterial)?;
        UnparsedPublicKey::new(verification, pair.public_key().as_ref()).verify_digest(&digest, signature_bytes)
    };
    Ok(result.is_ok())
}

/// Computes an HMAC tag with an HMAC key's material.
pub fn mac(spec: KeySpec, material: &[u8], algorithm: &str, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if !spec.mac_algorithms().contains(&algorithm) {
        return Err(CryptoError::UnsupportedAlgorithm);
    }
    let alg = spec.hmac_algorithm().ok_or(CryptoError::UnsupportedAlgorithm)?;
    Ok(hmac::sign(&hmac::Key::new(alg, material), message).as_ref().to_vec())
}

/// Verifies an HMAC tag in constant time.
pub fn verify_mac(
    spec: KeySpec,
    material: &[u8],
    algorithm: &str,
    message: &[u8],
    tag: &[u8],
) -> Result<bool, CryptoError> {
    if !spec.mac_algorithms().contains(&algorithm) {
        return Err(CryptoError::UnsupportedAlgorithm);
    }
    let alg = spec.hmac_algorithm().ok_or(CryptoError::UnsupportedAlgorithm)?;
    Ok(hmac::verify(&hmac::Key::new(alg, material), message, tag).is_ok())
}

/// A keyed fingerprint of key material, to recognise re-imported material without storing it.
pub fn fingerprint(fingerprint_key: &[u8], material: &[u8]) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, fingerprint_key), material);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const KEY_ID: [u8; 16] = [7; 16];

    #[test]
    fn round_trips_with_and_without_context() {
        let material = generate_material(KeySpec::SymmetricDefault).unwrap();
        type Case<'a> = (&'a [u8], &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            (b"x", &[]),
            (b"hello world", &[("purpose", "test")]),
            (&[0u8; 4096], &[("a", "1"), ("b", "2")]),
        ];
        for (plaintext, pairs) in cases {
            let context = ctx(pairs);
            let blob = encrypt(&material, &KEY_ID, 3, plaintext, &context).unwrap();
            assert_eq!(blob.len(), HEADER_LEN + plaintext.len() + TAG_LEN);
            let header = BlobHeader::parse(&blob).unwrap();
            assert_eq!(
                header,
                BlobHeader {
                    key_id: KEY_ID,
                    material_version: 3
                }
            );
            assert_eq!(decrypt(&material, &blob, &context).unwrap().as_slice(), *plaintext);
        }
    }

    #[test]
    fn any_tampered_byte_is_invalid_ciphertext() {
        let material = generate_material(KeySpec::SymmetricDefault).unwrap();
        let context = ctx(&[("k", "v")]);
        let blob = encrypt(&material, &KEY_ID, 0, b"secret data", &context).unwrap();
        for index in 0..blob.len() {
            let mut tampered = blob.clone();
            tampered[index] ^= 0x40;
            assert_eq!(
                decrypt(&material, &tampered, &context).unwrap_err(),
                CryptoError::InvalidCiphertext,
                "byte {index}"
            );
        }
        for len in [0, 1, HEADER_LEN, HEADER_LEN + TAG_LEN - 1, blob.len() - 1] {
            assert_eq!(
                decrypt(&material, &blob[..len], &context).unwrap_err(),
                CryptoError::InvalidCiphertext
            );
        }
    }

    #[test]
    fn context_mismatch_is_invalid_ciphertext() {
        let material = generate_material(KeySpec::SymmetricDefault).unwrap();
        let blob = encrypt(&material, &KEY_ID, 0, b"p", &ctx(&[("a", "1"), ("b", "2")])).unwrap();
        let wrong: &[&[(&str, &str)]] = &[
            &[],
            &[("a", "1")],
            &[("a", "1"), ("b", "3")],
            &[("a", "1"), ("b", "2"), ("c", "")],
        ];
        for pairs in wrong {
            assert_eq!(
                decrypt(&material, &blob, &ctx(pairs)).unwrap_err(),
                CryptoError::InvalidCiphertext
            );
        }
        // Order of insertion does not matter: the context is canonical.
        assert!(decrypt(&material, &blob, &ctx(&[("b", "2"), ("a", "1")])).is_ok());
        // A context split differently cannot collide: lengths are encoded.
        assert_ne!(
            encode_context(&ctx(&[("ab", "c")])),
            encode_context(&ctx(&[("a", "bc")]))
        );
    }

    #[test]
    fn other_material_is_invalid_ciphertext() {
        let old = generate_material(KeySpec::SymmetricDefault).unwrap();
        let new = generate_material(KeySpec::SymmetricDefault).unwrap();
        let blob = encrypt(&old, &KEY_ID, 0, b"p", &BTreeMap::new()).unwrap();
        assert_eq!(
            decrypt(&new, &blob, &BTreeMap::new()).unwrap_err(),
            CryptoError::InvalidCiphertext
        );
        assert_eq!(
            decrypt(&old[..16], &blob, &BTreeMap::new()).unwrap_err(),
            CryptoError::InvalidKeyMaterial
        );
    }

    #[test]
    fn uuids_round_trip_and_reject_garbage() {
        let text = "1234abcd-12ab-34cd-56ef-1234567890ab";
        let bytes = parse_uuid(text).unwrap();
        assert_eq!(uuid_string(&bytes), text);
        assert_eq!(parse_uuid(&text.to_uppercase()), Some(bytes));
        for bad in [
            "",
            "1234abcd12ab34cd56ef1234567890ab",
            "1234abcd-12ab-34cd-56ef-1234567890ag",
            "+234abcd-12ab-34cd-56ef-1234567890ab",
            "1234abc-d12ab-34cd-56ef-1234567890ab",
            "1234abcd-12ab-34cd-56ef-1234567890\u{e9}",
        ] {
            assert!(parse_uuid(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn signatures_verify_for_every_spec_and_algorithm() {
        for spec in [
            KeySpec::Rsa2048,
            KeySpec::EccNistP256,
            KeySpec::EccNistP384,
            KeySpec::EccNistP521,
            KeySpec::EccSecgP256k1,
        ] {
            let material = generate_material(spec).unwrap();
            assert!(!public_key_der(spec, &material).unwrap().is_empty());
            for algorithm in spec.signing_algorithms(KeyUsage::SignVerify) {
                let sig = sign(spec, &material, algorithm, b"message", MessageType::Raw).unwrap();
                assert!(
                    verify(spec, &material, algorithm, b"message", MessageType::Raw, &sig).unwrap(),
                    "{algorithm}"
                );
                assert!(
                    !verify(spec, &material, algorithm, b"other", MessageType::Raw, &sig).unwrap(),
                    "{algorithm}"
                );
                // A digest signed as DIGEST verifies as the RAW message it came from.
                let choice = signing_choice(spec, algorithm).unwrap();
                let digest = digest::digest(choice.digest, b"message");
                let sig = sign(spec, &material, algorithm, digest.as_ref(), MessageType::Digest).unwrap();
                assert!(
                    verify(spec, &material, algorithm, b"message", MessageType::Raw, &sig).unwrap(),
                    "{algorithm}"
                );
                assert!(matches!(
                    sign(spec, &material, algorithm, b"short", MessageType::Digest),
                    Err(CryptoError::InvalidInput(_))
                ));
            }
            assert_eq!(
                sign(spec, &material, "HMAC_SHA_256", b"m", MessageType::Raw).unwrap_err(),
                CryptoError::UnsupportedAlgorithm
            );
        }
    }

    #[test]
    fn rsa_oaep_round_trips() {
        let material = generate_material(KeySpec::Rsa2048).unwrap();
        let public = public_key_der(KeySpec::Rsa2048, &material).unwrap();
        for algorithm in ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"] {
            let ciphertext = rsa_encrypt(&public, algorithm, b"data key").unwrap();
            assert_eq!(
                rsa_decrypt(&material, algorithm, &ciphertext).unwrap().as_slice(),
                b"data key"
            );
            let mut tampered = ciphertext.clone();
            tampered[10] ^= 1;
            assert_eq!(
                rsa_decrypt(&material, algorithm, &tampered).unwrap_err(),
                CryptoError::InvalidCiphertext
            );
        }
        assert!(matches!(
            rsa_encrypt(&public, "RSAES_OAEP_SHA_256", &[0u8; 300]),
            Err(CryptoError::InvalidInput(_))
        ));
    }

    #[test]
    fn hmac_tags_verify() {
        for (spec, len) in [
            (KeySpec::Hmac224, 28),
            (KeySpec::Hmac256, 32),
            (KeySpec::Hmac384, 48),
            (KeySpec::Hmac512, 64),
        ] {
            let material = generate_material(spec).unwrap();
            let algorithm = spec.mac_algorithms()[0];
            let tag = mac(spec, &material, algorithm, b"m").unwrap();
            assert_eq!(tag.len(), len);
            assert!(verify_mac(spec, &material, algorithm, b"m", &tag).unwrap());
            assert!(!verify_mac(spec, &material, algorithm, b"n", &tag).unwrap());
            assert_eq!(
                mac(spec, &material, "HMAC_SHA_1", b"m").unwrap_err(),
                CryptoError::UnsupportedAlgorithm
            );
        }
    }
}
