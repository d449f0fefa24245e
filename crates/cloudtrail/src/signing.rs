//! Digest signing keys: one 2048-bit RSA key pair per region, private half sealed at rest.
//!
//! Keys are made lazily, the first time a region needs one, and live for [`KEY_LIFETIME_S`].
//! A key is replaced when less than [`ROTATION_MARGIN_S`] of its life is left; old keys stay in the
//! table, so `ListPublicKeys` can still name the key of every digest ever written (AWS rotates
//! without deleting old public keys too).
//! The private key is PKCS#8, sealed with the [`MasterKey`] and bound (as AAD) to its region and
//! start time, so a sealed key cannot be swapped onto another row.
//! Two tasks that race to create a region's key may both succeed; both keys are then valid and
//! listed, and digests name the key they used by fingerprint, so nothing breaks.

use crate::model::{self, KEYS, SigningKeyRecord};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use citadel_store::keys::{Key, prefix_range};
use citadel_store::{MasterKey, Store, WriteBatch};
use md5::Digest as _;

/// How long a key is valid, in seconds (30 days).
pub const KEY_LIFETIME_S: i64 = 30 * 24 * 3600;
/// A key with less than this left (one day) is replaced.
pub const ROTATION_MARGIN_S: i64 = 24 * 3600;

/// Why a key could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
    /// aws-lc refused to generate, load or sign.
    #[error("crypto failure")]
    Crypto,
    /// The sealed key did not open (wrong master key or a tampered row).
    #[error("sealed key does not open")]
    Unseal,
}

/// A key pair ready to sign, with its public record.
pub struct ActiveKey {
    /// The public record.
    pub record: SigningKeyRecord,
    pair: RsaKeyPair,
}

impl std::fmt::Debug for ActiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveKey")
            .field("record", &self.record.fingerprint)
            .finish()
    }
}

impl ActiveKey {
    /// Signs `message` with RSASSA-PKCS1-v1_5 SHA-256; returns lowercase hex.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if aws-lc fails.
    pub fn sign_hex(&self, message: &[u8]) -> Result<String, KeyError> {
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature)
            .map_err(|_| KeyError::Crypto)?;
        Ok(hex::encode(signature))
    }
}

fn seal_aad(region: &str, valid_from_s: i64) -> Vec<u8> {
    format!("cloudtrail-signing-key/{region}/{valid_from_s}").into_bytes()
}

/// Hex MD5 of the DER public key, CloudTrail's fingerprint format.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(md5::Md5::digest(der))
}

/// Generates a new key pair for `region` valid from `now_s`.
///
/// # Errors
/// [`KeyError::Crypto`] if generation fails.
pub fn generate(master: &MasterKey, region: &str, now_s: i64) -> Result<ActiveKey, KeyError> {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Crypto)?;
    let pkcs8 = pair.as_der().map_err(|_| KeyError::Crypto)?;
    let public_der = pair.public_key().as_ref().to_vec();
    let sealed = master.seal(pkcs8.as_ref(), &seal_aad(region, now_s));
    let record = SigningKeyRecord {
        region: region.to_string(),
        valid_from_s: now_s,
        valid_to_s: now_s.saturating_add(KEY_LIFETIME_S),
        public_der_b64: STANDARD.encode(&public_der),
        fingerprint: fingerprint(&public_der),
        sealed_private_b64: STANDARD.encode(sealed),
    };
    Ok(ActiveKey { record, pair })
}

/// Opens a stored key.
///
/// # Errors
/// [`KeyError::Unseal`] when the seal does not open, [`KeyError::Crypto`] when the key does not load.
pub fn open(master: &MasterKey, record: SigningKeyRecord) -> Result<ActiveKey, KeyError> {
    let sealed = STANDARD
        .decode(&record.sealed_private_b64)
        .map_err(|_| KeyError::Unseal)?;
    let pkcs8 = master
        .unseal(&sealed, &seal_aad(&record.region, record.valid_from_s))
        .map_err(|_| KeyError::Unseal)?;
    let pair = RsaKeyPair::from_pkcs8(&pkcs8).map_err(|_| KeyError::Crypto)?;
    Ok(ActiveKey { record, pair })
}

/// The row key of a signing key.
pub fn key_row(region: &str, valid_from_s: i64) -> Vec<u8> {
    Key::new().str(region).i64(valid_from_s).finish()
}

/// Every stored key of `region`, oldest first.
///
/// # Errors
/// [`KeyError::Store`] when the scan fails.
pub async fn all_keys(store: &dyn Store, region: &str) -> Result<Vec<SigningKeyRecord>, KeyError> {
    let (start, end) = prefix_range(&Key::new().str(region).finish());
    let rows = store
        .scan(KEYS, &start, end.as_deref(), usize::MAX, false)
        .await
        .map_err(|e| KeyError::Store(e.to_string()))?;
    Ok(rows
        .iter()
        .filter_map(|(_, v)| model::decode::<SigningKeyRecord>(v))
        .collect())
}

/// The keys of `region` whose validity overlaps `[start_s, end_s]`.
pub fn overlapping(keys: &[SigningKeyRecord], start_s: i64, end_s: i64) -> Vec<SigningKeyRecord> {
    keys.iter()
        .filter(|k| k.valid_from_s <= end_s && k.valid_to_s >= start_s)
        .cloned()
        .collect()
}

/// The region's current key, making (and storing) a new one when none is valid long enough.
///
/// # Errors
/// [`KeyError`] when the store or aws-lc fails.
pub async fn current_key(
    store: &dyn Store,
    master: &MasterKey,
    region: &str,
    now_s: i64,
) -> Result<ActiveKey, KeyError> {
    for _attempt in 0..4 {
        let keys = all_keys(store, region).await?;
        if let Some(newest) = keys
            .iter()
            .filter(|k| k.valid_from_s <= now_s && k.valid_to_s.saturating_sub(ROTATION_MARGIN_S) > now_s)
            .max_by_key(|k| k.valid_from_s)
        {
            return open(master, newest.clone());
        }
        let fresh = generate(master, region, now_s)?;
        let mut batch = WriteBatch::new();
        let row = key_row(region, now_s);
        batch.expect(KEYS, &row, None);
        batch.put(KEYS, &row, &model::encode(&fresh.record));
        match store.commit(batch).await {
            Ok(()) => return Ok(fresh),
            Err(citadel_store::CommitError::Conflict { .. }) => continue,
            Err(err) => return Err(KeyError::Store(err.to_string())),
        }
    }
    Err(KeyError::Store("could not store a signing key".into()))
}

/// The `PublicKey` shape of ListPublicKeys.
pub fn public_key_json(record: &SigningKeyRecord) -> serde_json::Value {
    serde_json::json!({
        "Value": record.public_der_b64,
        "ValidityStartTime": record.valid_from_s,
        "ValidityEndTime": record.valid_to_s,
        "Fingerprint": record.fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    #[test]
    fn keys_sign_verifiably_and_reopen_only_on_their_row() {
        let master = MasterKey::generate();
        let key = generate(&master, "us-east-1", 1_700_000_000).unwrap();
        let der = STANDARD.decode(&key.record.public_der_b64).unwrap();
        // PKCS#1 RSAPublicKey of a 2048-bit key, as the CLI's rsa.PublicKey.load_pkcs1 expects.
        assert!(key.record.public_der_b64.starts_with("MIIBCgKCAQEA"));
        assert_eq!(key.record.fingerprint.len(), 32);
        assert_eq!(key.record.fingerprint, fingerprint(&der));
        let signature = hex::decode(key.sign_hex(b"message").unwrap()).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &der)
            .verify(b"message", &signature)
            .unwrap();
        assert!(
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &der)
                .verify(b"other", &signature)
                .is_err()
        );
        let reopened = open(&master, key.record.clone()).unwrap();
        let again = hex::decode(reopened.sign_hex(b"message").unwrap()).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &der)
            .verify(b"message", &again)
            .unwrap();
        let mut moved = key.record.clone();
        moved.region = "eu-west-1".into();
        assert!(matches!(open(&master, moved), Err(KeyError::Unseal)));
        assert!(matches!(
            open(&MasterKey::generate(), key.record.clone()),
            Err(KeyError::Unseal)
        ));
    }

    #[test]
    fn overlap_selects_keys_by_validity() {
        let mk = |from: i64, to: i64| SigningKeyRecord {
            region: "r".into(),
            valid_from_s: from,
            valid_to_s: to,
            public_der_b64: String::new(),
            fingerprint: format!("{from}"),
            sealed_private_b64: String::new(),
        };
        let keys = vec![mk(0, 100), mk(90, 200), mk(300, 400)];
        let cases: [(i64, i64, &[&str]); 4] = [
            (0, 10, &["0"]),
            (95, 95, &["0", "90"]),
            (201, 299, &[]),
            (150, 1000, &["90", "300"]),
        ];
        for (start, end, want) in cases {
            let got: Vec<String> = overlapping(&keys, start, end)
                .into_iter()
                .map(|k| k.fingerprint)
                .collect();
            assert_eq!(got, want, "{start}..{end}");
        }
    }
}
