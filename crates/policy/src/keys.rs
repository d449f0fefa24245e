//! Interned context keys.
//!
//! Every condition key and policy-variable key a policy reads is given a small id when the policy is
//! compiled (ids are local to one policy). Evaluation looks each key up in the request [`Context`] at
//! most once per policy scan and remembers the answer in a slot, instead of binary-searching the
//! context for every clause, every variable and every missing-key check.

use std::cell::Cell;

use crate::context::Context;

/// The id of a key that was not interned (a clause or template built outside [`crate::Policy::parse`]):
/// it is looked up in the context every time.
pub(crate) const UNINTERNED: u16 = u16::MAX;

/// Assigns ids to lower-cased keys in order of first appearance.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    keys: Vec<Box<str>>,
}

impl Interner {
    /// The id of `key_lower`, adding it when new.
    pub(crate) fn id(&mut self, key_lower: &str) -> u16 {
        if let Some(index) = self.keys.iter().position(|k| **k == *key_lower) {
            return u16::try_from(index).unwrap_or(UNINTERNED);
        }
        let Ok(id) = u16::try_from(self.keys.len()) else {
            return UNINTERNED;
        };
        if id == UNINTERNED {
            return UNINTERNED;
        }
        self.keys.push(key_lower.into());
        id
    }

    /// The keys, indexed by id.
    pub(crate) fn finish(self) -> Box<[Box<str>]> {
        self.keys.into_boxed_slice()
    }
}

/// Whether `key` (any case) equals the lower-cased `key_lower`, without allocating for ASCII keys.
pub(crate) fn eq_lower(key_lower: &str, key: &str) -> bool {
    if key_lower.len() != key.len() && key.is_ascii() {
        false
    } else if key.is_ascii() {
        key_lower.len() == key.len()
            && key_lower
                .bytes()
                .zip(key.bytes())
                .all(|(a, b)| a == b.to_ascii_lowercase())
    } else {
        *key_lower == *key.to_lowercase()
    }
}

/// A fast non-cryptographic hash of a lower-cased key (FxHash over 8-byte words), computed once
/// per policy key at compile time and once per context key at insertion.
pub(crate) fn key_hash(key_lower: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut hash = key_lower.len() as u64;
    let mut chunks = key_lower.as_bytes().chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let mut word = [0u8; 8];
    let rest = chunks.remainder();
    if let Some(head) = word.get_mut(..rest.len()) {
        head.copy_from_slice(rest);
    }
    (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K)
}

/// A lower-cased context key as a policy reads it: the name, its hash and its interned id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) lower: Box<str>,
    pub(crate) hash: u64,
    pub(crate) id: u16,
}

impl Key {
    /// A key that is not interned yet.
    pub(crate) fn new(lower: String) -> Key {
        Key {
            hash: key_hash(&lower),
            lower: lower.into_boxed_str(),
            id: UNINTERNED,
        }
    }

    /// Interns the key.
    pub(crate) fn intern(&mut self, interner: &mut Interner) {
        self.id = interner.id(&self.lower);
    }
}

/// How many interned keys per policy get a memo slot; keys past this (rare) are looked up each time.
const SLOTS: usize = 32;

/// The request context seen through one policy's interned keys, memoizing each lookup.
///
/// The slots are a fixed array plus a bitmask of the filled ones, so one view serves a whole
/// evaluation: moving to the next policy only clears the mask.
pub(crate) struct Values<'a> {
    ctx: &'a Context,
    /// With a compiled set: the request's values for each key the whole set reads, looked up
    /// once per request, and the current policy's map from its ids to indexes into them.
    resolved: Option<&'a [Option<&'a [Box<str>]>]>,
    remap: Cell<&'a [u16]>,
    filled: Cell<u32>,
    slots: [Cell<Option<&'a [Box<str>]>>; SLOTS],
}

impl<'a> Values<'a> {
    /// A view of `ctx`.
    pub(crate) fn new(ctx: &'a Context) -> Values<'a> {
        Values {
            ctx,
            resolved: None,
            remap: Cell::new(&[]),
            filled: Cell::new(0),
            slots: [const { Cell::new(None) }; SLOTS],
        }
    }

    /// A view of `ctx` whose keys were all looked up already: `resolved` holds their values, and
    /// [`Values::reset`] gives each policy's map from its ids to indexes into `resolved`.
    pub(crate) fn preresolved(ctx: &'a Context, resolved: &'a [Option<&'a [Box<str>]>]) -> Values<'a> {
        Values {
            resolved: Some(resolved),
            ..Values::new(ctx)
        }
    }

    /// Forgets every memoized lookup, for the next policy (ids are local to a policy); `remap` is
    /// that policy's map from ids to indexes into the pre-resolved values (empty when there are none).
    #[inline]
    pub(crate) fn reset(&self, remap: &'a [u16]) {
        self.filled.set(0);
        self.remap.set(remap);
    }

    /// The values of `key`.
    #[inline]
    pub(crate) fn get(&self, key: &Key) -> Option<&'a [Box<str>]> {
        if let Some(resolved) = self.resolved
            && let Some(&global) = self.remap.get().get(usize::from(key.id))
            && let Some(&values) = resolved.get(usize::from(global))
        {
            return values;
        }
        let index = usize::from(key.id);
        match self.slots.get(index) {
            Some(slot) => {
                let bit = 1u32 << index;
                if self.filled.get() & bit != 0 {
                    return slot.get();
                }
                let values = self.ctx.get_hashed(key.hash, &key.lower);
                slot.set(values);
                self.filled.set(self.filled.get() | bit);
                values
            }
            None => self.ctx.get_hashed(key.hash, &key.lower),
        }
    }
}

/// A little-endian word of the 8 bytes at `at` (0 when out of range; callers stay in range).
#[inline]
fn word_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(slice) = bytes.get(at..at + 8) {
        word.copy_from_slice(slice);
    }
    u64::from_le_bytes(word)
}

/// A little-endian word of the 4 bytes at `at` (0 when out of range; callers stay in range).
#[inline]
fn half_at(bytes: &[u8], at: usize) -> u32 {
    let mut half = [0u8; 4];
    if let Some(slice) = bytes.get(at..at + 4) {
        half.copy_from_slice(slice);
    }
    u32::from_le_bytes(half)
}

/// Byte-string equality for the short strings policies compare (keys, ARN parts, action names):
/// whole-word loads inline, where `==` on slices calls `memcmp`, whose set-up costs more than the
/// comparison itself at these lengths.
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if len >= 8 {
        if len > 32 {
            return a == b;
        }
        let mut at = 0;
        while at + 8 < len {
            if word_at(a, at) != word_at(b, at) {
                return false;
            }
            at += 8;
        }
        // The last word overlaps the previous one when the length is not a multiple of 8.
        return word_at(a, len - 8) == word_at(b, len - 8);
    }
    if len >= 4 {
        return half_at(a, 0) == half_at(b, 0) && half_at(a, len - 4) == half_at(b, len - 4);
    }
    // 0 to 3 bytes: the first, middle and last cover every position.
    a.first() == b.first() && a.get(len / 2) == b.get(len / 2) && a.last() == b.last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_eq_agrees_with_slice_equality() {
        let texts: Vec<Vec<u8>> = (0..40usize)
            .map(|len| (0..len).map(|i| b'a' + (i % 26) as u8).collect())
            .collect();
        for a in &texts {
            for b in &texts {
                assert_eq!(bytes_eq(a, b), a == b);
            }
            // Every single-byte difference is seen.
            for at in 0..a.len() {
                let mut changed = a.clone();
                changed[at] ^= 1;
                assert!(!bytes_eq(a, &changed), "{} at {at}", a.len());
            }
        }
    }
}
