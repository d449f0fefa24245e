//! SigV4 signing keys and the per-day cache that makes header verification cheap.
//!
//! Deriving `kSigning` costs four HMACs; it only changes with the date, region and service,
//! so it is cached. The cache key includes a fingerprint of the secret, so a rotated secret
//! (same access key id) never reuses a key derived from the old one, and the secret itself
//! is never stored.

use std::collections::HashMap;

use aws_lc_rs::{digest, hmac};
use parking_lot::Mutex;

/// A derived SigV4 signing key (`kSigning`), ready for HMAC-SHA256.
#[derive(Clone)]
pub struct SigningKey {
    key: hmac::Key,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// Wraps raw `kSigning` bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// Derives `kSigning` from the secret access key and the credential scope parts.
    pub fn derive(secret: &[u8], date: &str, region: &str, service: &str) -> Self {
        Self::from_bytes(&derive_signing_key_bytes(secret, date, region, service))
    }

    /// HMAC-SHA256 of `parts` concatenated, with this key.
    pub(crate) fn sign_parts(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.key);
        for part in parts {
            context.update(part);
        }
        let tag = context.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Checks in constant time that `signature` is the HMAC of `parts` concatenated.
    pub(crate) fn verify_parts(&self, parts: &[&[u8]], signature: &[u8; 32]) -> bool {
        let computed = self.sign_parts(parts);
        aws_lc_rs::constant_time::verify_slices_are_equal(&computed, signature).is_ok()
    }
}

/// Derives the raw `kSigning` bytes: `HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")`.
pub fn derive_signing_key_bytes(secret: &[u8], date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut seed = Vec::with_capacity(secret.len() + 4);
    seed.extend_from_slice(b"AWS4");
    seed.extend_from_slice(secret);
    let k_date = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &seed), date.as_bytes());
    let k_region = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k_date.as_ref()), region.as_bytes());
    let k_service = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, k_region.as_ref()),
        service.as_bytes(),
    );
    let k_signing = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k_service.as_ref()), b"aws4_request");
    let mut out = [0u8; 32];
    out.copy_from_slice(k_signing.as_ref());
    out
}

/// A bounded cache of signing keys keyed by (access key id, secret fingerprint, date, region, service).
///
/// When full it is cleared: entries are only valid for one day, so a wholesale reset is cheap and
/// keeps memory bounded without bookkeeping on the hot path.
pub struct SigningKeyCache {
    entries: Mutex<HashMap<Vec<u8>, SigningKey>>,
    capacity: usize,
}

impl std::fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl SigningKeyCache {
    /// Creates a cache holding at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The number of cached keys.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the cached signing key for this scope, deriving and caching it on a miss.
    pub fn get_or_derive(
        &self,
        access_key_id: &str,
        secret: &[u8],
        date: &str,
        region: &str,
        service: &str,
    ) -> SigningKey {
        let fingerprint = digest::digest(&digest::SHA256, secret);
        let mut cache_key =
            Vec::with_capacity(16 + access_key_id.len() + date.len() + region.len() + service.len() + 3);
        cache_key.extend_from_slice(fingerprint.as_ref().get(..16).unwrap_or_default());
        for part in [access_key_id, date, region, service] {
            cache_key.extend_from_slice(part.as_bytes());
            cache_key.push(0);
        }
        if let Some(key) = self.entries.lock().get(&cache_key) {
            return key.clone();
        }
        let key = SigningKey::derive(secret, date, region, service);
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(cache_key, key.clone());
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_reuses_keys_and_separates_secrets() {
        let cache = SigningKeyCache::new(2);
        let a = cache.get_or_derive("AKID", b"secret1", "20150830", "us-east-1", "iam");
        let b = cache.get_or_derive("AKID", b"secret1", "20150830", "us-east-1", "iam");
        assert_eq!(cache.len(), 1);
        assert_eq!(a.sign_parts(&[b"x"]), b.sign_parts(&[b"x"]));
        let c = cache.get_or_derive("AKID", b"secret2", "20150830", "us-east-1", "iam");
        assert_eq!(cache.len(), 2);
        assert_ne!(a.sign_parts(&[b"x"]), c.sign_parts(&[b"x"]));
        // A third scope overflows the capacity and resets the cache.
        let _ = cache.get_or_derive("AKID", b"secret1", "20150831", "us-east-1", "iam");
        assert_eq!(cache.len(), 1);
    }
}
