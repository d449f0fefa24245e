//! Client-side encryption in the Amazon S3 Encryption Client's v2 format.
//!
//! The client encrypts before the bytes leave it, so S3 (Citadel included) stores ciphertext it
//! cannot read, on top of its own encryption at rest.
//! The format is the one the AWS S3 Encryption Clients (Java v2/v3, Go v3, .NET, Ruby) read and
//! write, carried in the object's user metadata (`x-amz-meta-` + these names):
//!
//! | metadata | value |
//! |---|---|
//! | `x-amz-key-v2` | the wrapped content-encryption key (CEK), base64 |
//! | `x-amz-iv` | the 12-byte content IV, base64 |
//! | `x-amz-cek-alg` | `AES/GCM/NoPadding` |
//! | `x-amz-wrap-alg` | `kms+context` (CEK from KMS GenerateDataKey) or `AES/GCM` (a local key) |
//! | `x-amz-matdesc` | JSON: the KMS encryption context, including `aws:x-amz-cek-alg`; `{}` for `AES/GCM` |
//! | `x-amz-tag-len` | `128` |
//! | `x-amz-unencrypted-content-length` | the plaintext length |
//!
//! The body is `AES-256-GCM(CEK, IV, plaintext)` with the 16-byte tag appended and no AAD.
//! With `kms+context`, the CEK is a KMS data key generated under the encryption context, and the
//! wrapped key is KMS's ciphertext blob: decrypting it needs KMS Decrypt with the same context, so
//! the context (which names the content algorithm) cannot be swapped.
//! With `AES/GCM`, the CEK is wrapped locally under a 256-bit key-encryption key as
//! `nonce (12) | ciphertext (32) | tag (16)`, with the content algorithm name as AAD.
//!
//! This module is the format only, with no I/O: the `citadel s3 cp` command talks to KMS and S3.
//! Known limit: bodies are sealed in memory in one piece (as the v2 clients' "instruction-less"
//! single-part mode does), so very large objects need memory of their size.

use crate::crypto::{self, Key256, TAG_LEN};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use std::collections::BTreeMap;

/// The content-encryption algorithm.
pub const CEK_ALG: &str = "AES/GCM/NoPadding";
/// Key wrapping by KMS with the encryption context.
pub const WRAP_KMS_CONTEXT: &str = "kms+context";
/// Key wrapping by AES-GCM under a local key.
pub const WRAP_AES_GCM: &str = "AES/GCM";
/// The encryption-context entry that binds the content algorithm.
pub const CONTEXT_CEK_ALG: &str = "aws:x-amz-cek-alg";
/// The GCM tag length, in bits.
pub const TAG_LEN_BITS: u32 = 128;

/// The metadata names (without `x-amz-meta-`).
pub mod names {
    /// The wrapped key.
    pub const KEY_V2: &str = "x-amz-key-v2";
    /// The content IV.
    pub const IV: &str = "x-amz-iv";
    /// The content algorithm.
    pub const CEK_ALG: &str = "x-amz-cek-alg";
    /// The wrapping algorithm.
    pub const WRAP_ALG: &str = "x-amz-wrap-alg";
    /// The material description (encryption context).
    pub const MATDESC: &str = "x-amz-matdesc";
    /// The tag length in bits.
    pub const TAG_LEN: &str = "x-amz-tag-len";
    /// The plaintext length.
    pub const UNENCRYPTED_LENGTH: &str = "x-amz-unencrypted-content-length";
}

/// Why a client-side encryption step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CseError {
    /// The object lacks v2 metadata, or it does not parse.
    #[error("the object is not in the S3 Encryption Client v2 format: {0}")]
    Format(String),
    /// The object uses an algorithm this module does not implement.
    #[error("unsupported client-side encryption algorithm: {0}")]
    Unsupported(String),
    /// Sealing failed.
    #[error("encryption failed")]
    Seal,
    /// Authentication failed: the ciphertext was altered, or the key is wrong.
    #[error("decryption failed: the object was altered or the key is wrong")]
    Open,
}

/// How an object's CEK is protected, as recorded in its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The wrapped CEK: a KMS ciphertext blob, or a locally wrapped key.
    pub wrapped_key: Vec<u8>,
    /// The content IV.
    pub iv: [u8; NONCE_LEN],
    /// [`WRAP_KMS_CONTEXT`] or [`WRAP_AES_GCM`].
    pub wrap_alg: String,
    /// The material description: the KMS encryption context (with [`CONTEXT_CEK_ALG`]).
    pub matdesc: BTreeMap<String, String>,
    /// The plaintext length.
    pub plaintext_len: u64,
}

impl Envelope {
    /// The user metadata entries (names without `x-amz-meta-`).
    pub fn metadata(&self) -> Vec<(&'static str, String)> {
        let b64 = base64::engine::general_purpose::STANDARD;
        vec![
            (names::KEY_V2, b64.encode(&self.wrapped_key)),
            (names::IV, b64.encode(self.iv)),
            (names::CEK_ALG, CEK_ALG.to_string()),
            (names::WRAP_ALG, self.wrap_alg.clone()),
            (
                names::MATDESC,
                serde_json::to_string(&self.matdesc).unwrap_or_else(|_| "{}".to_string()),
            ),
            (names::TAG_LEN, TAG_LEN_BITS.to_string()),
            (names::UNENCRYPTED_LENGTH, self.plaintext_len.to_string()),
        ]
    }

    /// Reads the envelope from an object's user metadata; `get` looks a name up (without
    /// `x-amz-meta-`, case-insensitively as HTTP headers are).
    ///
    /// # Errors
    /// [`CseError::Format`] when an entry is missing or malformed, [`CseError::Unsupported`] for
    /// algorithms other than AES-GCM content with `kms+context` or `AES/GCM` wrapping.
    pub fn from_metadata(get: impl Fn(&str) -> Option<String>) -> Result<Self, CseError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let require = |name: &str| get(name).ok_or_else(|| CseError::Format(format!("missing {name}")));
        let cek_alg = require(names::CEK_ALG)?;
        if cek_alg != CEK_ALG {
            return Err(CseError::Unsupported(cek_alg));
        }
        let wrap_alg = require(names::WRAP_ALG)?;
        if wrap_alg != WRAP_KMS_CONTEXT && wrap_alg != WRAP_AES_GCM {
            return Err(CseError::Unsupported(wrap_alg));
        }
        if let Some(tag_len) = get(names::TAG_LEN)
            && tag_len != TAG_LEN_BITS.to_string()
        {
            return Err(CseError::Unsupported(format!("tag length {tag_len}")));
        }
        let wrapped_key = b64
            .decode(require(names::KEY_V2)?)
            .map_err(|_| CseError::Format(format!("{} is not base64", names::KEY_V2)))?;
        let iv_bytes = b64
            .decode(require(names::IV)?)
            .map_err(|_| CseError::Format(format!("{} is not base64", names::IV)))?;
        let iv: [u8; NONCE_LEN] = iv_bytes
            .try_into()
            .map_err(|_| CseError::Format(format!("{} is not {NONCE_LEN} bytes", names::IV)))?;
        let matdesc: BTreeMap<String, String> = match get(names::MATDESC) {
            Some(text) => serde_json::from_str(&text)
                .map_err(|_| CseError::Format(format!("{} is not a JSON object of strings", names::MATDESC)))?,
            None => BTreeMap::new(),
        };
        if wrap_alg == WRAP_KMS_CONTEXT && matdesc.get(CONTEXT_CEK_ALG).map(String::as_str) != Some(CEK_ALG) {
            return Err(CseError::Format(format!(
                "the encryption context does not bind {CONTEXT_CEK_ALG} to {CEK_ALG}"
            )));
        }
        let plaintext_len = match get(names::UNENCRYPTED_LENGTH) {
            Some(text) => text
                .parse()
                .map_err(|_| CseError::Format(format!("{} is not a number", names::UNENCRYPTED_LENGTH)))?,
            None => 0,
        };
        Ok(Self {
            wrapped_key,
            iv,
            wrap_alg,
            matdesc,
            plaintext_len,
        })
    }
}

/// The KMS encryption context for `kms+context`: the caller's entries plus
/// `aws:x-amz-cek-alg = AES/GCM/NoPadding`.
///
/// # Errors
/// [`CseError::Format`] when the caller's context already uses the reserved key.
pub fn kms_context(user: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, CseError> {
    if user.contains_key(CONTEXT_CEK_ALG) {
        return Err(CseError::Format(format!(
            "{CONTEXT_CEK_ALG} is reserved in the encryption context"
        )));
    }
    let mut context = user.clone();
    context.insert(CONTEXT_CEK_ALG.to_string(), CEK_ALG.to_string());
    Ok(context)
}

/// Base64 as the metadata and KMS's JSON carry binary values.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes [`encode_base64`]'s form.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()
}

/// A 256-bit local key from a key file: 32 raw bytes, 64 hex characters, or base64 of 32 bytes.
pub fn parse_local_key(bytes: &[u8]) -> Option<[u8; 32]> {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        return Some(raw);
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let decoded = hex::decode(text).ok().or_else(|| decode_base64(text))?;
    <[u8; 32]>::try_from(decoded.as_slice()).ok()
}

fn aead(key: &[u8; 32]) -> Result<LessSafeKey, CseError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| CseError::Seal)
}

/// Encrypts a body under `cek` with a fresh IV: returns the IV and `ciphertext | tag`.
///
/// # Errors
/// [`CseError::Seal`] if the library refuses.
pub fn seal_content(cek: &[u8; 32], plaintext: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>), CseError> {
    let iv = crypto::random_bytes::<NONCE_LEN>();
    let mut buffer = plaintext.to_vec();
    aead(cek)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut buffer)
        .map_err(|_| CseError::Seal)?;
    Ok((iv, buffer))
}

/// Decrypts `ciphertext | tag` made by [`seal_content`] (or any v2 client).
///
/// # Errors
/// [`CseError::Open`] when the tag does not verify.
pub fn open_content(cek: &[u8; 32], iv: &[u8; NONCE_LEN], sealed: &[u8]) -> Result<Vec<u8>, CseError> {
    if sealed.len() < TAG_LEN {
        return Err(CseError::Open);
    }
    let mut buffer = sealed.to_vec();
    let plain_len = aead(cek)?
        .open_in_place(Nonce::assume_unique_for_key(*iv), Aad::empty(), &mut buffer)
        .map_err(|_| CseError::Open)?
        .len();
    buffer.truncate(plain_len);
    Ok(buffer)
}

/// Encrypts a body with a KMS data key (`kms+context`): `cek` is the data key's plaintext,
/// `ciphertext_blob` its KMS ciphertext, `context` the encryption context it was generated under
/// (from [`kms_context`]).
///
/// # Errors
/// [`CseError::Seal`] if the library refuses.
pub fn seal_with_kms_key(
    cek: &[u8; 32],
    ciphertext_blob: Vec<u8>,
    context: BTreeMap<String, String>,
    plaintext: &[u8],
) -> Result<(Envelope, Vec<u8>), CseError> {
    let (iv, sealed) = seal_content(cek, plaintext)?;
    Ok((
        Envelope {
            wrapped_key: ciphertext_blob,
            iv,
            wrap_alg: WRAP_KMS_CONTEXT.to_string(),
            matdesc: context,
            plaintext_len: plaintext.len() as u64,
        },
        sealed,
    ))
}

/// Encrypts a body under a fresh CEK wrapped with a local 256-bit key (`AES/GCM`).
///
/// # Errors
/// [`CseError::Seal`] if the library refuses.
pub fn seal_with_local_key(kek: &[u8; 32], plaintext: &[u8]) -> Result<(Envelope, Vec<u8>), CseError> {
    let cek = crypto::new_data_key();
    let wrapped_key = crypto::wrap_key(kek, &cek, CEK_ALG.as_bytes()).map_err(|_| CseError::Seal)?;
    let (iv, sealed) = seal_content(&cek, plaintext)?;
    Ok((
        Envelope {
            wrapped_key,
            iv,
            wrap_alg: WRAP_AES_GCM.to_string(),
            matdesc: BTreeMap::new(),
            plaintext_len: plaintext.len() as u64,
        },
        sealed,
    ))
}

/// Unwraps the CEK of an `AES/GCM` envelope with the local key.
///
/// # Errors
/// [`CseError::Unsupported`] for a KMS envelope, [`CseError::Open`] for a wrong key.
pub fn unwrap_local_key(kek: &[u8; 32], envelope: &Envelope) -> Result<Key256, CseError> {
    if envelope.wrap_alg != WRAP_AES_GCM {
        return Err(CseError::Unsupported(format!(
            "{} needs KMS, not a local key",
            envelope.wrap_alg
        )));
    }
    crypto::unwrap_key(kek, &envelope.wrapped_key, CEK_ALG.as_bytes()).map_err(|_| CseError::Open)
}

/// Decrypts a body with its unwrapped CEK, checking the length the metadata announced.
///
/// # Errors
/// [`CseError::Open`] when the tag does not verify, [`CseError::Format`] when the length differs.
pub fn open_with_key(cek: &[u8; 32], envelope: &Envelope, sealed: &[u8]) -> Result<Vec<u8>, CseError> {
    let plain = open_content(cek, &envelope.iv, sealed)?;
    if envelope.plaintext_len != 0 && plain.len() as u64 != envelope.plaintext_len {
        return Err(CseError::Format(format!(
            "{} says {} bytes, the object has {}",
            names::UNENCRYPTED_LENGTH,
            envelope.plaintext_len,
            plain.len()
        )));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(entries: &'a [(&'static str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            entries
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn local_key_round_trip_through_metadata() {
        let kek = [7u8; 32];
        let (envelope, sealed) = seal_with_local_key(&kek, b"hello, world").unwrap();
        assert_eq!(sealed.len(), 12 + TAG_LEN);
        let entries = envelope.metadata();
        let parsed = Envelope::from_metadata(lookup(&entries)).unwrap();
        assert_eq!(parsed, envelope);
        assert_eq!(parsed.wrap_alg, "AES/GCM");
        let cek = unwrap_local_key(&kek, &parsed).unwrap();
        assert_eq!(open_with_key(&cek, &parsed, &sealed).unwrap(), b"hello, world");
        assert_eq!(unwrap_local_key(&[8u8; 32], &parsed), Err(CseError::Open));
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        assert_eq!(open_with_key(&cek, &parsed, &tampered), Err(CseError::Open));
    }

    #[test]
    fn kms_envelopes_carry_the_context() {
        let user = BTreeMap::from([("purpose".to_string(), "test".to_string())]);
        let context = kms_context(&user).unwrap();
        let cek = [3u8; 32];
        let (envelope, sealed) = seal_with_kms_key(&cek, b"blob".to_vec(), context, b"secret").unwrap();
        let entries = envelope.metadata();
        let get = lookup(&entries);
        assert_eq!(get("x-amz-wrap-alg").as_deref(), Some("kms+context"));
        assert_eq!(get("x-amz-cek-alg").as_deref(), Some("AES/GCM/NoPadding"));
        assert_eq!(get("x-amz-tag-len").as_deref(), Some("128"));
        assert_eq!(get("x-amz-unencrypted-content-length").as_deref(), Some("6"));
        assert_eq!(
            get("x-amz-matdesc").as_deref(),
            Some(r#"{"aws:x-amz-cek-alg":"AES/GCM/NoPadding","purpose":"test"}"#)
        );
        let parsed = Envelope::from_metadata(&get).unwrap();
        assert_eq!(open_with_key(&cek, &parsed, &sealed).unwrap(), b"secret");
        assert!(kms_context(&BTreeMap::from([(CONTEXT_CEK_ALG.to_string(), "x".to_string())])).is_err());
    }

    #[test]
    fn local_keys_parse_from_raw_hex_or_base64() {
        let key = [0xabu8; 32];
        assert_eq!(parse_local_key(&key), Some(key));
        assert_eq!(parse_local_key(hex::encode(key).as_bytes()), Some(key));
        assert_eq!(
            parse_local_key(format!("{}\n", encode_base64(&key)).as_bytes()),
            Some(key)
        );
        assert_eq!(parse_local_key(b"short"), None);
    }

    #[test]
    fn foreign_or_broken_metadata_is_refused() {
        let (envelope, _) = seal_with_local_key(&[1u8; 32], b"x").unwrap();
        let mut entries = envelope.metadata();
        entries.retain(|(n, _)| *n != names::KEY_V2);
        assert!(matches!(
            Envelope::from_metadata(lookup(&entries)),
            Err(CseError::Format(_))
        ));
        let mut entries = envelope.metadata();
        for entry in &mut entries {
            if entry.0 == names::CEK_ALG {
                entry.1 = "AES/CBC/PKCS5Padding".into();
            }
        }
        assert!(matches!(
            Envelope::from_metadata(lookup(&entries)),
            Err(CseError::Unsupported(_))
        ));
        // kms+context without the bound content algorithm is refused.
        let mut entries = envelope.metadata();
        for entry in &mut entries {
            if entry.0 == names::WRAP_ALG {
                entry.1 = WRAP_KMS_CONTEXT.into();
            }
        }
        assert!(matches!(
            Envelope::from_metadata(lookup(&entries)),
            Err(CseError::Format(_))
        ));
    }
}
