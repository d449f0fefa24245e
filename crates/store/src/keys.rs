//! An order-preserving encoding of tuples into byte keys.
//!
//! The store sorts keys bytewise, but services think in tuples: (account, user name),
//! (account, time, event id).
//! This encoding makes bytewise order of encoded keys equal to component-wise order of the tuples,
//! and makes the encoding of a tuple a prefix of the encoding of every longer tuple that starts with
//! it, so "every key under (account, user)" is one range scan ([`prefix_range`]).
//!
//! # Byte layout
//!
//! Components carry no type tag: the schema of each table fixes the component types, and the
//! decoder ([`KeyReader`]) reads them in the same order.
//!
//! - `str` and `bytes`: the bytes with each `0x00` written as `0x00 0xFF`, then the terminator
//!   `0x00 0x01`.
//!   A component that ends sorts before any longer one with the same start: the terminator's
//!   `0x00 0x01` is below any continuing byte (`0x01..=0xFF`, or an escaped `0x00 0xFF`).
//!   The terminator is two bytes so that what follows it (which may be `0xFF`) can never be
//!   confused with an escape.
//! - `u64`: 8 bytes big-endian. `i64`: 8 bytes big-endian with the sign bit flipped.
//!   Fixed widths need no terminator.

/// Builds an encoded key component by component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Key {
    bytes: Vec<u8>,
}

/// The end of a `str`/`bytes` component.
const TERMINATOR: [u8; 2] = [0x00, 0x01];
/// The escape that follows a literal `0x00`.
const ESCAPED_ZERO: u8 = 0xFF;

impl Key {
    /// An empty key (the empty tuple).
    pub fn new() -> Self {
        Self::default()
    }

    fn escaped(mut self, component: &[u8]) -> Self {
        for &byte in component {
            self.bytes.push(byte);
            if byte == 0x00 {
                self.bytes.push(ESCAPED_ZERO);
            }
        }
        self
    }

    /// Appends a string component.
    pub fn str(self, component: &str) -> Self {
        self.bytes(component.as_bytes())
    }

    /// Appends a byte-string component.
    pub fn bytes(self, component: &[u8]) -> Self {
        let mut key = self.escaped(component);
        key.bytes.extend_from_slice(&TERMINATOR);
        key
    }

    /// Appends the *start* of a string component, without its terminator.
    /// The result is only useful as a scan prefix: it matches every key whose next component
    /// starts with `partial` (S3-style "list keys beginning with").
    pub fn str_prefix(self, partial: &str) -> Self {
        self.escaped(partial.as_bytes())
    }

    /// Appends an unsigned integer component.
    pub fn u64(mut self, component: u64) -> Self {
        self.bytes.extend_from_slice(&component.to_be_bytes());
        self
    }

    /// Appends a signed integer component.
    pub fn i64(mut self, component: i64) -> Self {
        // Flipping the sign bit maps i64 order onto u64 order.
        self.bytes
            .extend_from_slice(&((component as u64) ^ (1 << 63)).to_be_bytes());
        self
    }

    /// The encoded key.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// The smallest key greater than every key that starts with `prefix`, or `None` when there is no
/// such key (the prefix is empty or all `0xFF`), meaning "scan to the end".
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The `[start, end)` scan bounds covering exactly the keys that start with `prefix`, in the shape
/// [`crate::Store::scan`] takes.
pub fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    (prefix.to_vec(), prefix_end(prefix))
}

/// Why a key could not be decoded with the expected component types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key ended inside a component.
    #[error("key is truncated")]
    Truncated,
    /// A `0x00` was followed by neither the escape nor the terminator.
    #[error("invalid escape at byte {0}")]
    InvalidEscape(usize),
    /// A string component is not UTF-8.
    #[error("string component is not UTF-8")]
    InvalidUtf8,
    /// Bytes were left after the last expected component.
    #[error("{0} unexpected trailing bytes")]
    Trailing(usize),
}

/// Reads the components of an encoded key in order.
#[derive(Debug, Clone)]
pub struct KeyReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> KeyReader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    /// Reads a byte-string component.
    ///
    /// # Errors
    /// [`KeyError::Truncated`] or [`KeyError::InvalidEscape`] on a malformed key.
    pub fn bytes(&mut self) -> Result<Vec<u8>, KeyError> {
        let mut out = Vec::new();
        loop {
            let byte = *self.bytes.get(self.position).ok_or(KeyError::Truncated)?;
            self.position += 1;
            if byte != 0x00 {
                out.push(byte);
                continue;
            }
            let marker = *self.bytes.get(self.position).ok_or(KeyError::Truncated)?;
            self.position += 1;
            match marker {
                ESCAPED_ZERO => out.push(0x00),
                0x01 => return Ok(out),
                _ => return Err(KeyError::InvalidEscape(self.position - 1)),
            }
        }
    }

    /// Reads a string component.
    ///
    /// # Errors
    /// As [`KeyReader::bytes`], plus [`KeyError::InvalidUtf8`].
    pub fn str(&mut self) -> Result<String, KeyError> {
        String::from_utf8(self.bytes()?).map_err(|_| KeyError::InvalidUtf8)
    }

    fn fixed(&mut self) -> Result<[u8; 8], KeyError> {
        let end = self.position.checked_add(8).ok_or(KeyError::Truncated)?;
        let slice = self.bytes.get(self.position..end).ok_or(KeyError::Truncated)?;
        let mut out = [0u8; 8];
        out.copy_from_slice(slice);
        self.position = end;
        Ok(out)
    }

    /// Reads an unsigned integer component.
    ///
    /// # Errors
    /// [`KeyError::Truncated`] when fewer than 8 bytes remain.
    pub fn u64(&mut self) -> Result<u64, KeyError> {
        Ok(u64::from_be_bytes(self.fixed()?))
    }

    /// Reads a signed integer component.
    ///
    /// # Errors
    /// [`KeyError::Truncated`] when fewer than 8 bytes remain.
    pub fn i64(&mut self) -> Result<i64, KeyError> {
        Ok((u64::from_be_bytes(self.fixed()?) ^ (1 << 63)) as i64)
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }

    /// Checks that every byte has been read.
    ///
    /// # Errors
    /// [`KeyError::Trailing`] when bytes remain.
    pub fn finish(self) -> Result<(), KeyError> {
        match self.bytes.len().saturating_sub(self.position) {
            0 => Ok(()),
            n => Err(KeyError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A component of the model tuple; derived `Ord` on the enum is only used with a fixed schema.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    enum Part {
        Bytes(Vec<u8>),
        Int(u64),
        Signed(i64),
    }

    /// A fixed schema per tuple length, so tuples compare as the store would see them.
    fn schema(index: usize) -> u8 {
        [0u8, 1, 0, 2, 0][index % 5]
    }

    fn random_bytes(rng: &mut impl Rng) -> Vec<u8> {
        // A tiny alphabet that stresses 0x00, 0x01 and 0xFF, the bytes the encoding treats specially.
        let alphabet = [0x00u8, 0x01, 0x02, 0x61, 0xFE, 0xFF];
        let len = rng.random_range(0..5);
        (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect()
    }

    fn random_tuple(rng: &mut impl Rng) -> Vec<Part> {
        let len = rng.random_range(0..5);
        (0..len)
            .map(|i| match schema(i) {
                0 => Part::Bytes(random_bytes(rng)),
                1 => Part::Int([0, 1, 255, 256, u64::MAX][rng.random_range(0..5)]),
                _ => Part::Signed([i64::MIN, -1, 0, 1, i64::MAX][rng.random_range(0..5)]),
            })
            .collect()
    }

    fn encode(tuple: &[Part]) -> Vec<u8> {
        tuple
            .iter()
            .fold(Key::new(), |key, part| match part {
                Part::Bytes(b) => key.bytes(b),
                Part::Int(n) => key.u64(*n),
                Part::Signed(n) => key.i64(*n),
            })
            .finish()
    }

    fn decode(bytes: &[u8], len: usize) -> Vec<Part> {
        let mut reader = KeyReader::new(bytes);
        let parts = (0..len)
            .map(|i| match schema(i) {
                0 => Part::Bytes(reader.bytes().unwrap()),
                1 => Part::Int(reader.u64().unwrap()),
                _ => Part::Signed(reader.i64().unwrap()),
            })
            .collect();
        reader.finish().unwrap();
        parts
    }

    #[test]
    fn property_order_prefix_and_round_trip() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        for _ in 0..20_000 {
            let a = random_tuple(&mut rng);
            let b = random_tuple(&mut rng);
            let (ea, eb) = (encode(&a), encode(&b));
            assert_eq!(a.cmp(&b), ea.cmp(&eb), "order of {a:?} vs {b:?}");
            assert_eq!(decode(&ea, a.len()), a);
            // A tuple's encoding prefixes exactly the encodings of the tuples it prefixes.
            let is_tuple_prefix = a.len() <= b.len() && b[..a.len()] == a[..];
            assert_eq!(eb.starts_with(&ea), is_tuple_prefix, "{a:?} prefix of {b:?}");
            if is_tuple_prefix {
                let (start, end) = prefix_range(&ea);
                assert!(eb >= start && end.is_none_or(|end| eb < end));
            }
        }
    }

    #[test]
    fn str_prefix_matches_partial_components() {
        let names = ["al", "alice", "al\0x", "bob", "a"];
        let prefix = Key::new().str("acct").str_prefix("al").finish();
        let (start, end) = prefix_range(&prefix);
        let end = end.unwrap();
        for name in names {
            let key = Key::new().str("acct").str(name).finish();
            let inside = key >= start && key < end;
            assert_eq!(inside, name.starts_with("al"), "{name:?}");
        }
    }

    #[test]
    fn prefix_end_table() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"", None),
            (b"a", Some(b"b")),
            (b"a\xff", Some(b"b")),
            (b"\xff\xff", None),
            (b"ab\x00", Some(b"ab\x01")),
        ];
        for (prefix, want) in cases {
            assert_eq!(prefix_end(prefix).as_deref(), *want, "{prefix:?}");
        }
    }

    #[test]
    fn malformed_keys_are_errors() {
        let cases: &[(&[u8], KeyError)] = &[
            (b"abc", KeyError::Truncated),
            (b"a\x00", KeyError::Truncated),
            (b"a\x00\x05", KeyError::InvalidEscape(2)),
        ];
        for (bytes, want) in cases {
            assert_eq!(KeyReader::new(bytes).bytes().unwrap_err(), *want, "{bytes:?}");
        }
        assert_eq!(KeyReader::new(b"\xff\xfe").str().unwrap_err(), KeyError::Truncated);
        assert_eq!(
            KeyReader::new(b"\xff\x00\x01").str().unwrap_err(),
            KeyError::InvalidUtf8
        );
        assert_eq!(KeyReader::new(b"1234567").u64().unwrap_err(), KeyError::Truncated);
        let mut reader = KeyReader::new(b"a\x00\x01z");
        assert_eq!(reader.str().unwrap(), "a");
        assert_eq!(reader.finish().unwrap_err(), KeyError::Trailing(1));
    }

    #[test]
    fn documented_layout() {
        let key = Key::new().str("a\0").u64(1).finish();
        assert_eq!(key, b"a\x00\xff\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01");
    }
}
