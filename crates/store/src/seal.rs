//! Sealing secrets at rest under the master key.
//!
//! Secrets (secret access keys, KMS key material) are encrypted with the master key before they
//! are written to any store, so a copy of the database alone reveals nothing.
//! The master key lives outside the database: in `<data-dir>/master.key` (mode 0600, created on
//! first start) or in the `CITADEL_MASTER_KEY` environment variable (base64), which wins when set.
//! Alternatively it is kept wrapped by a key inside a PKCS#11 HSM, in `<data-dir>/master.key.wrapped`,
//! and never stored in the clear: see [`crate::seal_pkcs11`].
//!
//! # Sealed layout
//!
//! `version (1 byte, = 1) || nonce (12 bytes, random) || AES-256-GCM ciphertext || tag (16 bytes)`.
//! The authenticated data is `version || aad`, so the version cannot be swapped, and the caller's
//! `aad` binds a sealed value to its context (for example the access key id it belongs to): moving
//! a sealed secret to another record makes it fail to unseal.
//!
//! # Known weaknesses
//!
//! Random 96-bit nonces are safe for about 2^32 seals under one key (NIST SP 800-38D); Citadel seals
//! far fewer secrets than that, but a rotation scheme would be needed before bulk data is sealed.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine;
use rand::RngCore;
use zeroize::Zeroizing;

/// The file name of the master key inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";
/// The environment variable that, when set, supplies the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "CITADEL_MASTER_KEY";

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const DERIVE_SALT: &[u8] = b"citadel master key derivation v1";

/// Why the master key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// Reading or writing the key file failed.
    #[error("master key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key text is not valid base64.
    #[error("master key is not valid base64")]
    InvalidEncoding,
    /// The key does not decode to 32 bytes.
    #[error("master key must be 32 bytes, found {0}")]
    WrongLength(usize),
    /// The key file is readable or writable by group or others.
    #[error("master key file {path} has mode {mode:o}; it must be accessible by its owner only (chmod 600)")]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The data directory and the options disagree on where the master key lives (for example a
    /// plaintext `master.key` beside the PKCS#11 option); nothing is guessed.
    #[error("{0}")]
    Conflict(String),
    /// The master key could not be unwrapped from, or wrapped into, a PKCS#11 HSM.
    #[error(transparent)]
    Pkcs11(#[from] crate::seal_pkcs11::Pkcs11Error),
}

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The input is shorter than a version, nonce and tag.
    #[error("sealed value is truncated")]
    Truncated,
    /// The version byte is not one this build knows.
    #[error("unsupported sealed value version {0}")]
    UnsupportedVersion(u8),
    /// Authentication failed: wrong key, wrong aad, or tampered data.
    #[error("sealed value failed authentication")]
    Decrypt,
}

/// The 256-bit root secret; its bytes are wiped from memory when it is dropped.
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut_slice());
        Self { bytes }
    }

    /// A key from raw bytes (tests, and keys supplied by other means).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// A key whose bytes are already in zeroizing memory (so no plain copy is made).
    pub(crate) fn from_zeroizing(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self { bytes }
    }

    /// The raw key, for wrapping it under an HSM key.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// A key from standard base64 (surrounding whitespace is ignored).
    ///
    /// # Errors
    /// [`MasterKeyError::InvalidEncoding`] or [`MasterKeyError::WrongLength`].
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| MasterKeyError::InvalidEncoding)?,
        );
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| MasterKeyError::WrongLength(decoded.len()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key as standard base64, for an operator exporting it to `CITADEL_MASTER_KEY`.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.bytes.as_slice()))
    }

    /// The key from `CITADEL_MASTER_KEY` when it is set, otherwise from `<dir>/master.key`,
    /// creating that file (mode 0600) with a fresh key on first use.
    ///
    /// # Errors
    /// An invalid key, an unreadable or unwritable file, a key file accessible to others, or
    /// [`MasterKeyError::Conflict`] when the directory's master key is kept by an HSM
    /// (`master.key.wrapped` exists: [`MasterKey::load_or_create_pkcs11`] opens it).
    pub fn load_or_create(dir: &Path) -> Result<Self, MasterKeyError> {
        refuse_hsm_directory(dir)?;
        match std::env::var(MASTER_KEY_ENV) {
            Ok(text) if !text.trim().is_empty() => Self::from_base64(&text),
            _ => Self::load_or_create_file(dir),
        }
    }

    /// The key from `<dir>/master.key`, created with mode 0600 and a fresh key when absent;
    /// the environment is not consulted.
    ///
    /// # Errors
    /// As [`MasterKey::load_or_create`].
    pub fn load_or_create_file(dir: &Path) -> Result<Self, MasterKeyError> {
        refuse_hsm_directory(dir)?;
        let path = dir.join(MASTER_KEY_FILE);
        let io = |source| MasterKeyError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match created {
            Ok(mut file) => {
                let key = Self::generate();
                let mut text = key.to_base64();
                text.push('\n');
                file.write_all(text.as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                // Make the new directory entry durable too, or a crash could lose the key while
                // secrets sealed under it survive.
                std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
                Ok(key)
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(MasterKeyError::InsecurePermissions { path, mode });
                }
                let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(io)?);
                Self::from_base64(&text)
            }
            Err(err) => Err(io(err)),
        }
    }

    fn aead_key(&self) -> Option<LessSafeKey> {
        // Built per call so that no long-lived copy of the key schedule outlives this value.
        UnboundKey::new(&AES_256_GCM, self.bytes.as_slice())
            .ok()
            .map(LessSafeKey::new)
    }

    /// Encrypts and authenticates `plaintext`, bound to `aad`; see the module docs for the layout.
    ///
    /// AES-GCM cannot seal more than 64 GiB at once; beyond that (and on no other input) the result
    /// is empty, which never unseals.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut buffer = Zeroizing::new(plaintext.to_vec());
        let sealed = self.aead_key().is_some_and(|key| {
            key.seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(full_aad(aad)),
                &mut *buffer,
            )
            .is_ok()
        });
        if !sealed {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buffer.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buffer);
        out
    }

    /// Decrypts a value made by [`MasterKey::seal`] with the same `aad`.
    ///
    /// # Errors
    /// [`SealError::Truncated`], [`SealError::UnsupportedVersion`], or [`SealError::Decrypt`] when
    /// the key, the aad or any byte differs.
    pub fn unseal(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Truncated)?;
        if version != VERSION {
            return Err(SealError::UnsupportedVersion(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Truncated);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Truncated)?;
        let key = self.aead_key().ok_or(SealError::Decrypt)?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plaintext_len = key
            .open_in_place(nonce, Aad::from(full_aad(aad)), &mut buffer)
            .map_err(|_| SealError::Decrypt)?
            .len();
        buffer.truncate(plaintext_len);
        Ok(buffer)
    }

    /// A 32-byte subkey for `label` (HKDF-SHA256 with a fixed salt and `label` as info), so that
    /// each purpose gets an independent key without storing more secrets.
    pub fn derive(&self, label: &str) -> Zeroizing<[u8; 32]> {
        hkdf_sha256_32(DERIVE_SALT, self.bytes.as_slice(), label.as_bytes())
    }
}

/// Refuses a data directory whose master key is wrapped by an HSM key, so that no tool creates a
/// second, plaintext master key beside it (data sealed under the two could never be told apart).
fn refuse_hsm_directory(dir: &Path) -> Result<(), MasterKeyError> {
    let wrapped = dir.join(crate::seal_pkcs11::WRAPPED_MASTER_KEY_FILE);
    if wrapped.exists() {
        return Err(MasterKeyError::Conflict(format!(
            "{} exists: this data directory's master key is kept wrapped by a PKCS#11 HSM key, \
             so it must be opened with the PKCS#11 option (citadel serve --pkcs11-module)",
            wrapped.display()
        )));
    }
    Ok(())
}

/// The authenticated data: the version byte, then the caller's aad.
fn full_aad(aad: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(1 + aad.len());
    full.push(VERSION);
    full.extend_from_slice(aad);
    full
}

/// HKDF-SHA256 (RFC 5869) producing exactly one 32-byte block, written with HMAC so that it cannot
/// fail: with L = 32, OKM = T(1) = HMAC(PRK, info || 0x01) where PRK = HMAC(salt, IKM).
fn hkdf_sha256_32(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), ikm);
    let prk_key = hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref());
    let mut context = hmac::Context::with_key(&prk_key);
    context.update(info);
    context.update(&[1]);
    let block = context.sign();
    let mut out = Zeroizing::new([0u8; 32]);
    for (dst, src) in out.iter_mut().zip(block.as_ref()) {
        *dst = *src;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_table() {
        let key = MasterKey::generate();
        let cases: &[(&[u8], &[u8])] = &[(b"", b""), (b"secret", b"AKIA1"), (&[0u8; 1000], b"x")];
        for (plaintext, aad) in cases {
            let sealed = key.seal(plaintext, aad);
            assert_eq!(sealed.len(), 1 + NONCE_LEN + plaintext.len() + TAG_LEN);
            assert_eq!(sealed[0], VERSION);
            assert_eq!(key.unseal(&sealed, aad).unwrap().as_slice(), *plaintext);
        }
        // Random nonces: sealing twice gives different bytes.
        assert_ne!(key.seal(b"a", b""), key.seal(b"a", b""));
    }

    #[test]
    fn wrong_aad_key_or_tamper_fails() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"the secret", b"AKIA-ONE");
        assert_eq!(key.unseal(&sealed, b"AKIA-TWO").unwrap_err(), SealError::Decrypt);
        assert_eq!(
            MasterKey::generate().unseal(&sealed, b"AKIA-ONE").unwrap_err(),
            SealError::Decrypt
        );
        for index in 1..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[index] ^= 0x01;
            assert_eq!(
                key.unseal(&tampered, b"AKIA-ONE").unwrap_err(),
                SealError::Decrypt,
                "byte {index}"
            );
        }
        let mut wrong_version = sealed.clone();
        wrong_version[0] = 2;
        assert_eq!(
            key.unseal(&wrong_version, b"AKIA-ONE").unwrap_err(),
            SealError::UnsupportedVersion(2)
        );
        assert_eq!(
            key.unseal(&sealed[..20], b"AKIA-ONE").unwrap_err(),
            SealError::Truncated
        );
        assert_eq!(key.unseal(&[], b"").unwrap_err(), SealError::Truncated);
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let first = MasterKey::load_or_create_file(&data_dir).unwrap();
        let path = data_dir.join(MASTER_KEY_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let second = MasterKey::load_or_create_file(&data_dir).unwrap();
        let sealed = first.seal(b"persisted", b"aad");
        assert_eq!(second.unseal(&sealed, b"aad").unwrap().as_slice(), b"persisted");
        // The file holds the base64 form that CITADEL_MASTER_KEY accepts.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(MasterKey::from_base64(&text).unwrap().derive("x"), first.derive("x"));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKey::load_or_create_file(&data_dir),
            Err(MasterKeyError::InsecurePermissions { mode: 0o644, .. })
        ));
    }

    #[test]
    fn hsm_data_directory_is_refused() {
        // A directory whose master key is wrapped by an HSM key never gets a plaintext key beside it.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(crate::seal_pkcs11::WRAPPED_MASTER_KEY_FILE), [0u8; 61]).unwrap();
        assert!(matches!(
            MasterKey::load_or_create_file(dir.path()),
            Err(MasterKeyError::Conflict(_))
        ));
        assert!(matches!(
            MasterKey::load_or_create(dir.path()),
            Err(MasterKeyError::Conflict(_))
        ));
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
    }

    #[test]
    fn from_base64_validates() {
        let key = MasterKey::generate();
        let text = key.to_base64();
        assert_eq!(
            MasterKey::from_base64(&format!(" {}\n", *text)).unwrap().derive("a"),
            key.derive("a")
        );
        assert!(matches!(
            MasterKey::from_base64("not base64!"),
            Err(MasterKeyError::InvalidEncoding)
        ));
        assert!(matches!(
            MasterKey::from_base64("AAAA"),
            Err(MasterKeyError::WrongLength(3))
        ));
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn derive_is_rfc5869_hkdf() {
        // RFC 5869, test case 1: the first 32 bytes of OKM are T(1).
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let okm = hkdf_sha256_32(&salt, &ikm, &info);
        assert_eq!(
            hex::encode(okm.as_slice()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );

        let key = MasterKey::from_bytes([7; 32]);
        assert_eq!(key.derive("kms"), key.derive("kms"));
        assert_ne!(key.derive("kms").as_slice(), key.derive("sts").as_slice());
        assert_ne!(
            key.derive("kms").as_slice(),
            MasterKey::from_bytes([8; 32]).derive("kms").as_slice()
        );
    }
}
