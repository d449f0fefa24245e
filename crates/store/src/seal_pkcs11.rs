//! Keeping the master key at rest under a key that lives in a PKCS#11 HSM.
//!
//! # Design: a key-encryption key in the HSM
//!
//! Without this option the 32-byte [`MasterKey`] is a plaintext file, `<data-dir>/master.key`, and
//! anyone who copies the data directory can read every sealed secret.
//! With it, the master key is never stored in the clear anywhere:
//!
//! 1. On first start Citadel generates a random master key in process memory.
//! 2. It encrypts it (`CKM_AES_GCM`, through `C_Encrypt`) under a wrapping key that lives in the
//!    HSM token: an AES-256 key with `CKA_TOKEN`, `CKA_PRIVATE` and `CKA_SENSITIVE` true and
//!    `CKA_EXTRACTABLE` false, found by its label and generated inside the token on first use.
//!    The token refuses to export that key, so its bytes never leave the HSM.
//! 3. Only the result, `<data-dir>/master.key.wrapped`, is written to disk.
//! 4. On every later start Citadel loads the PKCS#11 module, finds the token by label, logs in with
//!    the user PIN, finds the wrapping key by label and asks the token to decrypt the file; the
//!    master key comes back into zeroizing memory ([`zeroize::Zeroizing`]).
//!
//! Without the token (removed, or another one), with a wrong PIN, or with the wrapping key deleted,
//! the master key cannot be recovered, and neither can anything sealed under it.
//! A backup of the data directory is therefore useless without the HSM, which is the point.
//!
//! This is the standard key-encryption-key (KEK) design, and it is honest to say what it does not do:
//! the *working* master key is in Citadel's process memory while the server runs, because every
//! seal, unseal and derivation is done in-process (a round trip to the HSM per request would cost
//! far more than the AES work itself).
//! The HSM protects the key *at rest*, and gates every start on the token and its PIN.
//! AWS KMS custom key stores backed by CloudHSM make the same trade for data keys: the HSM guards the
//! root key, and the working keys are used outside it.
//! An attacker who can read Citadel's memory (root on the host, a core dump) gets the master key
//! either way; one who can only read its disk or its backups does not.
//!
//! # Why `CKM_AES_GCM` through `C_Encrypt`, not `C_WrapKey`
//!
//! `C_WrapKey` (for example with `CKM_AES_KEY_WRAP_PAD`) wraps a key *object* of the token, so the
//! master key would first have to be imported into the token as an extractable session object,
//! which widens what the token holds and what its policy must allow.
//! Encrypting 32 bytes with the wrapping key gives the same protection with the two most widely
//! supported calls (`C_Encrypt`, `C_Decrypt`), and GCM authenticates the result: a damaged or
//! substituted file fails to unwrap instead of yielding a wrong key.
//!
//! # The wrapped file
//!
//! `version (1 byte, = 1) || IV (12 bytes) || AES-256-GCM ciphertext of the master key (32 bytes)
//! || tag (16 bytes)`, 61 bytes, mode 0600 (it is not secret, but nobody else needs it).
//! The authenticated data is [`WRAP_AAD`] followed by the version byte.
//! The IV is random; the token may replace it (some HSMs choose GCM IVs themselves), and the file
//! keeps the IV the token reports.
//! The file is written to a temporary name, synced, then hard-linked into place, so it is either
//! complete or absent, and two processes creating it at once cannot overwrite each other: the
//! loser discards its key and unwraps the winner's.
//!
//! # Rules that keep the data directory unambiguous
//!
//! - The HSM option refuses to run when a plaintext `master.key` is present, or when
//!   `CITADEL_MASTER_KEY` is set: either one would leave it unclear which key sealed the data.
//! - Conversely, [`MasterKey::load_or_create`] refuses a data directory holding
//!   `master.key.wrapped`, so no tool silently creates a second, plaintext master key beside it.
//! - A wrapping key is only generated when no `master.key.wrapped` exists yet: with the file
//!   present and the key missing, Citadel stops and says the data cannot be read, rather than
//!   generating a key that could never unwrap it.
//! - When several keys carry the label (two first starts racing), each is tried: GCM
//!   authentication tells which one wrapped the file.
//!
//! # Known weaknesses
//!
//! The working master key is in process memory, as said above.
//! The user PIN comes from the environment (`CITADEL_PKCS11_PIN` in the server, never a flag, which
//! `ps` would show); the process's environment stays readable by its own user and root through
//! `/proc/<pid>/environ`, so a PIN that matters should be delivered by a service manager's
//! credential mechanism rather than a shell profile.
//! PKCS#11 is process-global: a module is initialized once per process.
//! Citadel initializes it, unwraps, and finalizes it again at start-up; if something else in the
//! process already initialized the same module, Citadel uses it and leaves it initialized.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::seal::{MASTER_KEY_ENV, MASTER_KEY_FILE, MasterKey, MasterKeyError};

/// The file name of the wrapped master key inside the data directory.
pub const WRAPPED_MASTER_KEY_FILE: &str = "master.key.wrapped";
/// The label of the wrapping key in the token when none is configured.
pub const DEFAULT_KEY_LABEL: &str = "citadel-master-key";
/// The authenticated data of the wrapping encryption (the version byte follows it).
pub const WRAP_AAD: &[u8] = b"citadel master.key.wrapped";

const WRAP_VERSION: u8 = 1;
const IV_LEN: usize = 12;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// The length of `master.key.wrapped`.
pub const WRAPPED_LEN: usize = 1 + IV_LEN + KEY_LEN + TAG_LEN;

/// Where the wrapping key lives: the PKCS#11 module, the token, its user PIN and the key's label.
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label (`CKA_LABEL` of the token, as `softhsm2-util --init-token --label` sets it).
    pub token_label: String,
    /// The token's user PIN; wiped from memory when dropped.
    pub pin: Zeroizing<String>,
    /// The label of the AES-256 wrapping key inside the token ([`DEFAULT_KEY_LABEL`] by default).
    pub key_label: String,
}

impl Pkcs11Config {
    /// Settings from their parts; the PIN's buffer moves into zeroizing memory without a copy.
    pub fn new(module: PathBuf, token_label: String, pin: String, key_label: String) -> Self {
        Self {
            module,
            token_label,
            pin: Zeroizing::new(pin),
            key_label,
        }
    }
}

impl std::fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"<redacted>")
            .field("key_label", &self.key_label)
            .finish()
    }
}

/// Why the master key could not be unwrapped from, or wrapped into, the HSM.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    /// The module could not be loaded or initialized.
    #[error("PKCS#11 module {module}: {source}")]
    Module {
        /// The module's path.
        module: PathBuf,
        /// The underlying error.
        source: CkError,
    },
    /// No slot holds a token with this label.
    #[error("no PKCS#11 token labelled {label:?} (tokens present: {present:?})")]
    TokenNotFound {
        /// The label asked for.
        label: String,
        /// The labels of the tokens that are present.
        present: Vec<String>,
    },
    /// The token rejected the user PIN.
    #[error("PKCS#11 token {token:?} rejected the user PIN (CITADEL_PKCS11_PIN)")]
    PinIncorrect {
        /// The token's label.
        token: String,
    },
    /// The token's user PIN is locked after too many failed attempts.
    #[error("PKCS#11 token {token:?}: the user PIN is locked")]
    PinLocked {
        /// The token's label.
        token: String,
    },
    /// `master.key.wrapped` exists but the token holds no key with the label: the data cannot be read.
    #[error(
        "{path} exists but token {token:?} holds no AES key labelled {key_label:?}: the master key, \
         and everything sealed under it, cannot be recovered without that key \
         (wrong token or key label?)"
    )]
    WrappingKeyMissing {
        /// The wrapped key file.
        path: PathBuf,
        /// The token's label.
        token: String,
        /// The wrapping key's label.
        key_label: String,
    },
    /// The wrapping key could leave the token, which would defeat the design.
    #[error(
        "key {key_label:?} on token {token:?} is extractable or not sensitive; a wrapping key must \
         have CKA_SENSITIVE true and CKA_EXTRACTABLE false"
    )]
    WrappingKeyExposed {
        /// The token's label.
        token: String,
        /// The wrapping key's label.
        key_label: String,
    },
    /// `master.key.wrapped` has the wrong length or version.
    #[error("{path} is not a wrapped master key ({WRAPPED_LEN} bytes, version {WRAP_VERSION})")]
    Malformed {
        /// The wrapped key file.
        path: PathBuf,
    },
    /// No key with the label decrypts `master.key.wrapped`.
    #[error(
        "{path} cannot be unwrapped by key {key_label:?} on token {token:?}: another key wrapped it, \
         or the file was altered (the token answered {answer})"
    )]
    Unwrap {
        /// The wrapped key file.
        path: PathBuf,
        /// The token's label.
        token: String,
        /// The wrapping key's label.
        key_label: String,
        /// The token's last answer to `C_Decrypt`, e.g. `EncryptedDataInvalid` (tokens differ:
        /// SoftHSM answers `GeneralError` when the GCM tag does not verify).
        answer: String,
    },
    /// The token wrapped the new master key, but did not give it back when asked to unwrap it.
    #[error("PKCS#11 token {token:?} did not round-trip the new wrapped master key")]
    RoundTrip {
        /// The token's label.
        token: String,
    },
    /// Any other PKCS#11 call failed.
    #[error("PKCS#11 {operation}: {source}")]
    Call {
        /// What Citadel was doing.
        operation: &'static str,
        /// The underlying error.
        source: CkError,
    },
}

fn call(operation: &'static str) -> impl FnOnce(CkError) -> MasterKeyError {
    move |source| Pkcs11Error::Call { operation, source }.into()
}

impl MasterKey {
    /// The master key kept wrapped by an HSM key: unwrapped from `<dir>/master.key.wrapped`, or
    /// generated and wrapped there on first use (see the module docs for the design).
    ///
    /// # Errors
    /// [`MasterKeyError::Conflict`] when `<dir>/master.key` exists or `CITADEL_MASTER_KEY` is set;
    /// [`MasterKeyError::Pkcs11`] when the module, token, PIN or wrapping key is not usable, or the
    /// wrapped file does not unwrap; [`MasterKeyError::Io`] when the file cannot be read or written.
    pub fn load_or_create_pkcs11(dir: &Path, config: &Pkcs11Config) -> Result<Self, MasterKeyError> {
        let plaintext = dir.join(MASTER_KEY_FILE);
        if plaintext.exists() {
            return Err(MasterKeyError::Conflict(format!(
                "{} exists, but the master key is to be kept in a PKCS#11 HSM: refusing to guess \
                 which key sealed this data directory (move the plaintext key away, or drop the \
                 PKCS#11 option)",
                plaintext.display()
            )));
        }
        if std::env::var(MASTER_KEY_ENV).is_ok_and(|text| !text.trim().is_empty()) {
            return Err(MasterKeyError::Conflict(format!(
                "{MASTER_KEY_ENV} is set, but the master key is to be kept in a PKCS#11 HSM: \
                 unset one of them"
            )));
        }
        let path = dir.join(WRAPPED_MASTER_KEY_FILE);
        let io = |source| MasterKeyError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let token = Token::open(config)?;
        match std::fs::read(&path) {
            Ok(wrapped) => token.unwrap(&path, &wrapped),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => token.create(dir, &path),
            Err(err) => Err(io(err)),
        }
    }
}

/// A logged-in session on the configured token; finalizes the module when dropped (if it
/// initialized it).
struct Token<'a> {
    config: &'a Pkcs11Config,
    session: Option<Session>,
    context: Option<Pkcs11>,
    owns_initialization: bool,
}

impl Drop for Token<'_> {
    fn drop(&mut self) {
        // The session holds a handle on the context: close it first.
        drop(self.session.take());
        if let Some(context) = self.context.take()
            && self.owns_initialization
        {
            // Nothing useful can be done about a failing C_Finalize at this point.
            let _ = context.finalize();
        }
    }
}

impl<'a> Token<'a> {
    fn open(config: &'a Pkcs11Config) -> Result<Self, MasterKeyError> {
        let module_error = |source| Pkcs11Error::Module {
            module: config.module.clone(),
            source,
        };
        let context = Pkcs11::new(&config.module).map_err(module_error)?;
        let owns_initialization = match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => true,
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => false,
            Err(err) => return Err(module_error(err).into()),
        };
        let mut token = Token {
            config,
            session: None,
            context: Some(context.clone()),
            owns_initialization,
        };
        let slots = context.get_slots_with_token().map_err(call("listing slots"))?;
        let mut present = Vec::new();
        let mut found = None;
        for slot in slots {
            let info = context.get_token_info(slot).map_err(call("reading token info"))?;
            if info.label() == config.token_label {
                found = Some(slot);
                break;
            }
            present.push(info.label().to_owned());
        }
        let slot = found.ok_or_else(|| Pkcs11Error::TokenNotFound {
            label: config.token_label.clone(),
            present,
        })?;
        let session = context.open_rw_session(slot).map_err(call("opening a session"))?;
        let pin = AuthPin::from(config.pin.as_str());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(Pkcs11Error::PinIncorrect {
                    token: config.token_label.clone(),
                }
                .into());
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(Pkcs11Error::PinLocked {
                    token: config.token_label.clone(),
                }
                .into());
            }
            Err(err) => return Err(call("logging in")(err)),
        }
        token.session = Some(session);
        Ok(token)
    }

    fn session(&self) -> Result<&Session, MasterKeyError> {
        // Always set by `open`; the error only keeps this free of `expect`.
        self.session.as_ref().ok_or_else(|| {
            Pkcs11Error::Call {
                operation: "using the session",
                source: CkError::InvalidValue,
            }
            .into()
        })
    }

    /// The token's AES secret keys labelled `key_label`, each checked to be non-extractable.
    fn wrapping_keys(&self) -> Result<Vec<ObjectHandle>, MasterKeyError> {
        let session = self.session()?;
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Label(self.config.key_label.as_bytes().to_vec()),
        ];
        let keys = session
            .find_objects(&template)
            .map_err(call("finding the wrapping key"))?;
        for &key in &keys {
            let attributes = session
                .get_attributes(key, &[AttributeType::Sensitive, AttributeType::Extractable])
                .map_err(call("reading the wrapping key's attributes"))?;
            let protected = attributes.iter().all(|attribute| match attribute {
                Attribute::Sensitive(sensitive) => *sensitive,
                Attribute::Extractable(extractable) => !*extractable,
                _ => true,
            });
            if !protected || attributes.len() != 2 {
                return Err(Pkcs11Error::WrappingKeyExposed {
                    token: self.config.token_label.clone(),
                    key_label: self.config.key_label.clone(),
                }
                .into());
            }
        }
        Ok(keys)
    }

    /// Generates the wrapping key inside the token: AES-256, stored on the token, private,
    /// sensitive and never extractable.
    fn generate_wrapping_key(&self) -> Result<ObjectHandle, MasterKeyError> {
        let template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::ValueLen((KEY_LEN as u64).into()),
            Attribute::Label(self.config.key_label.as_bytes().to_vec()),
        ];
        self.session()?
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(call("generating the wrapping key"))
    }

    /// The master key from `wrapped`, trying every key with the label.
    fn unwrap(&self, path: &Path, wrapped: &[u8]) -> Result<MasterKey, MasterKeyError> {
        let (version, iv, ciphertext) = parse_wrapped(wrapped).ok_or_else(|| Pkcs11Error::Malformed {
            path: path.to_path_buf(),
        })?;
        let keys = self.wrapping_keys()?;
        if keys.is_empty() {
            return Err(Pkcs11Error::WrappingKeyMissing {
                path: path.to_path_buf(),
                token: self.config.token_label.clone(),
                key_label: self.config.key_label.clone(),
            }
            .into());
        }
        let mut answer = String::new();
        for key in keys {
            match self.decrypt(key, version, iv, ciphertext)? {
                Ok(master) => return Ok(master),
                Err(refused) => answer = refused,
            }
        }
        Err(Pkcs11Error::Unwrap {
            path: path.to_path_buf(),
            token: self.config.token_label.clone(),
            key_label: self.config.key_label.clone(),
            answer,
        }
        .into())
    }

    /// Decrypts one wrapped key with `key`.
    ///
    /// The inner `Err` is the token's refusal of `C_Decrypt` itself, which is what a failed GCM
    /// authentication looks like (another key wrapped it, or the bytes changed); tokens differ in
    /// the code they give for it, so any `C_Decrypt` failure counts, and the code is kept for the
    /// message.
    /// A failing `C_DecryptInit` (mechanism not supported, key not usable) is an outer error.
    fn decrypt(
        &self,
        key: ObjectHandle,
        version: u8,
        iv: [u8; IV_LEN],
        ciphertext: &[u8],
    ) -> Result<Result<MasterKey, String>, MasterKeyError> {
        let mut iv = iv;
        let aad = wrap_aad(version);
        let params =
            GcmParams::new(&mut iv, &aad, ((TAG_LEN * 8) as u64).into()).map_err(call("preparing CKM_AES_GCM"))?;
        let result = self.session()?.decrypt(&Mechanism::AesGcm(params), key, ciphertext);
        let plaintext = match result {
            // The vector is the only copy the library hands back; Zeroizing wipes it (its whole
            // capacity) when dropped.
            Ok(plaintext) => Zeroizing::new(plaintext),
            Err(CkError::Pkcs11(code, Function::Decrypt)) => return Ok(Err(format!("{code:?}"))),
            Err(err) => return Err(call("unwrapping the master key with CKM_AES_GCM")(err)),
        };
        if plaintext.len() != KEY_LEN {
            return Ok(Err(format!("{} bytes instead of {KEY_LEN}", plaintext.len())));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&plaintext);
        Ok(Ok(MasterKey::from_zeroizing(bytes)))
    }

    /// Generates a master key, wraps it, checks that it unwraps, and writes `master.key.wrapped`.
    fn create(&self, dir: &Path, path: &Path) -> Result<MasterKey, MasterKeyError> {
        let key = match self.wrapping_keys()?.first() {
            Some(&key) => key,
            None => self.generate_wrapping_key()?,
        };
        let master = MasterKey::generate();
        let mut iv = [0u8; IV_LEN];
        rand::rng().fill_bytes(&mut iv);
        let aad = wrap_aad(WRAP_VERSION);
        let ciphertext = {
            let params =
                GcmParams::new(&mut iv, &aad, ((TAG_LEN * 8) as u64).into()).map_err(call("preparing CKM_AES_GCM"))?;
            self.session()?
                .encrypt(&Mechanism::AesGcm(params), key, master.bytes())
                .map_err(call("wrapping the master key with CKM_AES_GCM"))?
        };
        // `iv` now holds the IV the token used, in case it chose its own.
        let mut wrapped = Vec::with_capacity(WRAPPED_LEN);
        wrapped.push(WRAP_VERSION);
        wrapped.extend_from_slice(&iv);
        wrapped.extend_from_slice(&ciphertext);
        let round_trip = self.decrypt(key, WRAP_VERSION, iv, &ciphertext)?;
        if wrapped.len() != WRAPPED_LEN || !round_trip.is_ok_and(|back| back.bytes() == master.bytes()) {
            return Err(Pkcs11Error::RoundTrip {
                token: self.config.token_label.clone(),
            }
            .into());
        }
        if write_new_file(dir, path, &wrapped)? {
            Ok(master)
        } else {
            // Another process created the file first: its key is the data directory's key.
            let existing = std::fs::read(path).map_err(|source| MasterKeyError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            self.unwrap(path, &existing)
        }
    }
}

fn wrap_aad(version: u8) -> Vec<u8> {
    let mut aad = WRAP_AAD.to_vec();
    aad.push(version);
    aad
}

/// `(version, iv, ciphertext || tag)` of a wrapped key file, if it is well formed.
fn parse_wrapped(wrapped: &[u8]) -> Option<(u8, [u8; IV_LEN], &[u8])> {
    if wrapped.len() != WRAPPED_LEN {
        return None;
    }
    let (&version, rest) = wrapped.split_first()?;
    if version != WRAP_VERSION {
        return None;
    }
    let (iv, ciphertext) = rest.split_at_checked(IV_LEN)?;
    Some((version, iv.try_into().ok()?, ciphertext))
}

/// Writes `contents` to `path` only if `path` does not exist, atomically (a temporary file, synced,
/// then hard-linked into place); `false` when `path` already existed.
fn write_new_file(dir: &Path, path: &Path, contents: &[u8]) -> Result<bool, MasterKeyError> {
    let mut suffix = [0u8; 8];
    rand::rng().fill_bytes(&mut suffix);
    let temporary = dir.join(format!(".{WRAPPED_MASTER_KEY_FILE}.{}.tmp", hex::encode(suffix)));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MasterKeyError::Io { path, source }
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io(&temporary))?;
    let written = file
        .write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io(&temporary));
    drop(file);
    let linked = written.and_then(|()| match std::fs::hard_link(&temporary, path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(io(path)(err)),
    });
    let _ = std::fs::remove_file(&temporary);
    let linked = linked?;
    // Make the new directory entry durable, or a crash could lose the key while data sealed under
    // it survives.
    std::fs::File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(io(dir))?;
    Ok(linked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_wrapped_checks_length_and_version() {
        let mut wrapped = vec![WRAP_VERSION];
        wrapped.extend_from_slice(&[7; IV_LEN]);
        wrapped.extend_from_slice(&[9; KEY_LEN + TAG_LEN]);
        let (version, iv, ciphertext) = parse_wrapped(&wrapped).unwrap();
        assert_eq!((version, iv), (WRAP_VERSION, [7; IV_LEN]));
        assert_eq!(ciphertext, &[9; KEY_LEN + TAG_LEN][..]);
        assert!(parse_wrapped(&wrapped[..WRAPPED_LEN - 1]).is_none());
        wrapped[0] = 2;
        assert!(parse_wrapped(&wrapped).is_none());
        assert!(parse_wrapped(&[]).is_none());
    }

    #[test]
    fn write_new_file_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WRAPPED_MASTER_KEY_FILE);
        assert!(write_new_file(dir.path(), &path, b"first").unwrap());
        assert!(!write_new_file(dir.path(), &path, b"second").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        // Only the file itself is left: the temporary names are removed.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [WRAPPED_MASTER_KEY_FILE]);
    }

    #[test]
    fn config_debug_redacts_the_pin() {
        let config = Pkcs11Config {
            module: PathBuf::from("/m.so"),
            token_label: "t".into(),
            pin: Zeroizing::new("123456".into()),
            key_label: DEFAULT_KEY_LABEL.into(),
        };
        assert!(!format!("{config:?}").contains("123456"));
    }
}
