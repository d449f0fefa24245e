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
    filled: Cell<u32>,
    slots: [Cell<Option<&'a [Box<str>]>>; SLOTS],
}

impl<'a> Values<'a> {
    /// A view of `ctx`.
    pub(crate) fn new(ctx: &'a Context) -> Values<'a> {
        Values {
            ctx,
            filled: Cell::new(0),
            slots: [const { Cell::new(None) }; SLOTS],
        }
    }

    /// Forgets every memoized lookup, for the next policy (ids are local to a policy).
    #[inline]
    pub(crate) fn reset(&self) {
        self.filled.set(0);
    }

    /// The values of `key`.
    #[inline]
    pub(crate) fn get(&self, key: &Key) -> Option<&'a [Box<str>]> {
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
