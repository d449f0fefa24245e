//! Injected randomness and the identifier formats AWS uses.
//!
//! Access key ids, secrets, unique ids and request ids all come from a [`Random`] source,
//! so that tests can make them deterministic.

use parking_lot::Mutex;
use rand::{RngCore, SeedableRng, TryRngCore};
use std::sync::Arc;

/// A source of random bytes.
pub trait Random: Send + Sync + 'static {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);

    /// Fills `buf` with random bytes for identifiers that are public once issued (request ids,
    /// CloudTrail event ids, KMS key ids): they must not repeat or be guessable in advance, but
    /// they guard nothing. By default the same as [`Random::fill`].
    fn fill_public(&self, buf: &mut [u8]) {
        self.fill(buf);
    }
}

/// The operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        if rand::rngs::OsRng.try_fill_bytes(buf).is_err() {
            rand::rng().fill_bytes(buf);
        }
    }

    /// rand's thread-local ChaCha12 generator, seeded from the operating system and reseeded as it
    /// goes: every request takes two UUIDs, and a `getrandom` system call for each was 2 % of a KMS
    /// request's CPU. Secrets (keys, passwords, tokens) still come from [`Random::fill`].
    fn fill_public(&self, buf: &mut [u8]) {
        rand::rng().fill_bytes(buf);
    }
}

/// A deterministic generator for tests.
#[derive(Debug, Clone)]
pub struct SeededRandom {
    rng: Arc<Mutex<rand::rngs::StdRng>>,
}

impl SeededRandom {
    /// A generator that always yields the same sequence for the same seed.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(seed))),
        }
    }
}

impl Random for SeededRandom {
    fn fill(&self, buf: &mut [u8]) {
        self.rng.lock().fill_bytes(buf);
    }
}

/// Characters AWS uses in access key ids and unique ids (upper-case base32 alphabet).
const ID_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Characters of a secret access key (base64 alphabet).
const SECRET_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Generates identifiers in AWS's formats from a [`Random`] source.
#[derive(Clone)]
pub struct IdGen {
    random: Arc<dyn Random>,
}

impl IdGen {
    /// An id generator over `random`.
    pub fn new(random: Arc<dyn Random>) -> Self {
        Self { random }
    }

    /// Random bytes.
    pub fn bytes<const N: usize>(&self) -> [u8; N] {
        let mut buf = [0u8; N];
        self.random.fill(&mut buf);
        buf
    }

    fn string_over(&self, alphabet: &[u8], len: usize) -> String {
        let mut raw = vec![0u8; len];
        self.random.fill(&mut raw);
        // The alphabets have 32 or 64 entries, so the modulo is unbiased.
        raw.iter()
            .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
            .collect()
    }

    /// A 20-character id with a 4-letter prefix: `AKIA` (access key), `ASIA` (temporary key),
    /// `AIDA` (user), `AROA` (role), `AGPA` (group), `ANPA` (policy), `AIPA` (instance profile).
    pub fn aws_id(&self, prefix: &str) -> String {
        let mut id = String::with_capacity(20);
        id.push_str(prefix);
        id.push_str(&self.string_over(ID_ALPHABET, 20usize.saturating_sub(prefix.len())));
        id
    }

    /// A 21-character unique id as IAM gives users, roles and groups (`AIDA` + 17).
    pub fn unique_id(&self, prefix: &str) -> String {
        let mut id = String::with_capacity(21);
        id.push_str(prefix);
        id.push_str(&self.string_over(ID_ALPHABET, 21usize.saturating_sub(prefix.len())));
        id
    }

    /// A 40-character secret access key.
    pub fn secret_access_key(&self) -> String {
        self.string_over(SECRET_ALPHABET, 40)
    }

    /// A random UUID v4 string (request ids, event ids, KMS key ids), from [`Random::fill_public`].
    pub fn uuid(&self) -> String {
        let mut b = [0u8; 16];
        self.random.fill_public(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        uuid::Uuid::from_bytes(b).hyphenated().to_string()
    }

    /// A string of `len` characters from `[A-Za-z0-9]`.
    pub fn alphanumeric(&self, len: usize) -> String {
        self.string_over(&SECRET_ALPHABET[..62], len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_aws_formats() {
        let ids = IdGen::new(Arc::new(SeededRandom::new(7)));
        let akid = ids.aws_id("AKIA");
        assert_eq!(akid.len(), 20);
        assert!(akid.starts_with("AKIA"));
        assert!(akid.chars().all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
        assert_eq!(ids.secret_access_key().len(), 40);
        assert_eq!(ids.unique_id("AIDA").len(), 21);
        let uuid = ids.uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        // Deterministic for a seed.
        let again = IdGen::new(Arc::new(SeededRandom::new(7)));
        assert_eq!(again.aws_id("AKIA"), akid);
        assert_eq!(again.secret_access_key().len(), 40);
        assert_eq!(again.unique_id("AIDA").len(), 21);
        assert_eq!(again.uuid(), uuid);
    }

    #[test]
    fn os_uuids_are_version_4_and_distinct() {
        let ids = IdGen::new(Arc::new(OsRandom));
        let uuids: std::collections::HashSet<String> = (0..10_000).map(|_| ids.uuid()).collect();
        assert_eq!(uuids.len(), 10_000);
        for uuid in &uuids {
            let parsed = uuid::Uuid::parse_str(uuid).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        }
    }
}
