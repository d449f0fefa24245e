//! A principal's policies compiled once, with a bounded cache of decisions.
//!
//! [`CompiledSet`] owns the policies that apply to one principal (identity policies, permissions
//! boundary, session policies) and remembers the decisions it made. A decision is a pure function of
//! the request and the policies, and the only part of a request's context a decision can depend on
//! is the values of the keys the policies read (condition keys and policy variables, which the
//! compiler interns). So the cache key is the principal, the action, the resource, the resource
//! account and the values of exactly those keys, and a hit returns what evaluating would return.
//!
//! **Invalidation** is by construction: the cache lives inside the set, and a change to any policy
//! means building a new set (services already recompile when the store generation changes), which
//! starts with an empty cache.
//!
//! **Time.** A policy that reads a clock-derived key ([`TIME_KEYS`]) gets that key's value in the
//! cache key like any other, so a cached decision is only reused for a request carrying the same
//! timestamp (`aws:CurrentTime` has one-second resolution): correct, but such sets hit only on
//! repeats within the same second. [`CompiledSet::time_dependent`] says whether a set is in that case.
//!
//! A request with a resource-based policy is evaluated without the cache (the resource policy is
//! not part of the set), and so is any request while another thread holds the cache lock: the cache
//! never makes a caller wait.
//!
//! **Streams that do not repeat.** A miss costs more than evaluating: the key is hashed and
//! serialized, the entry allocated, and a full generation is freed at once when it rotates; and
//! thousands of keys that are never read again push the policies out of the CPU caches. The
//! benchmark's 20,000-request stream (as when a user reads many distinct S3 objects) cost four times
//! the uncached evaluation. So the cache judges itself each time a generation fills: when fewer
//! lookups hit than missed during it, the next [`BYPASS_GENERATIONS`] generations' worth of
//! decisions are evaluated without the cache, then it tries again. The generation filled from a
//! cold cache (at first, and after each bypass) is not judged, since only repeats can hit.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use smallvec::SmallVec;

use crate::context::Context;
use crate::eval::{
    Decision, MatchedStatement, Outcome, Parts, PolicyRef, PolicyType, Request, ResourcePolicy, evaluate_parts,
};
use crate::keys::{bytes_eq, key_hash};
use crate::policy::Policy;
use crate::principal::PrincipalKind;

/// The context keys whose values change with the clock: a set that reads one is [`CompiledSet::time_dependent`].
pub const TIME_KEYS: &[&str] = &[
    "aws:currenttime",
    "aws:epochtime",
    "aws:tokenissuetime",
    "aws:multifactorauthage",
];

/// The default bound on cached decisions per set.
pub const DEFAULT_CACHE_CAPACITY: usize = 4096;

/// How long a cache that missed more than it hit stands aside, in cache capacities of decisions.
pub const BYPASS_GENERATIONS: u64 = 16;

/// The policies of one principal, as [`CompiledSet::new`] takes them.
#[derive(Debug, Clone)]
pub struct SetSpec {
    /// Identity-based policies with their ids (reported in [`MatchedStatement::policy_id`]).
    pub identity: Vec<(String, Arc<Policy>)>,
    /// The permissions boundary, if any.
    pub permissions_boundary: Option<(String, Arc<Policy>)>,
    /// `None`: no session policy; `Some(list)`: the session's policies.
    pub session_policies: Option<Vec<(String, Arc<Policy>)>>,
    /// See [`crate::PolicySet::root_implicit_allow`].
    pub root_implicit_allow: bool,
    /// The most decisions kept; 0 disables the cache.
    pub cache_capacity: usize,
}

impl Default for SetSpec {
    fn default() -> SetSpec {
        SetSpec {
            identity: Vec::new(),
            permissions_boundary: None,
            session_policies: None,
            root_implicit_allow: false,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
        }
    }
}

/// A decision as the cache keeps it: policies by slot, keys by index into [`CompiledSet::keys`].
#[derive(Debug, Clone)]
struct Cached {
    outcome: Outcome,
    policy_type: Option<PolicyType>,
    /// `(policy slot, policy type, statement index)`.
    matched: SmallVec<[(u16, PolicyType, u32); 4]>,
    missing: SmallVec<[u16; 4]>,
}

/// One cached decision with the request it answers, serialized by [`CompiledSet::write_key`].
#[derive(Debug)]
struct Entry {
    key: Box<[u8]>,
    decision: Cached,
}

/// Where [`CompiledSet::write_key`] sends the parts of a request. The sinks below hash them,
/// compare them with a stored key in place, or serialize them, so the three can never disagree on
/// what a key holds, and a hit neither builds nor copies a key.
trait KeySink {
    /// A one-byte discriminant.
    fn tag(&mut self, tag: u8);
    /// A length or count, 4 bytes.
    fn count(&mut self, count: u32);
    /// A byte string, length first, so that no two sequences of fields serialize alike.
    fn field(&mut self, bytes: &[u8]);
}

/// Hashes the parts where they lie with foldhash (non-cryptographic, which is enough because an
/// entry is only ever returned after its stored key compared equal).
struct HashSink(foldhash::fast::FoldHasher<'static>);

impl HashSink {
    fn new() -> Self {
        Self(foldhash::fast::FixedState::default().build_hasher())
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

impl KeySink for HashSink {
    #[inline]
    fn tag(&mut self, tag: u8) {
        self.0.write_u8(tag);
    }

    #[inline]
    fn count(&mut self, count: u32) {
        self.0.write_u32(count);
    }

    #[inline]
    fn field(&mut self, bytes: &[u8]) {
        self.0.write_usize(bytes.len());
        self.0.write(bytes);
    }
}

/// Compares the parts with a stored serialized key, without serializing the request.
struct CompareSink<'k> {
    stored: &'k [u8],
    equal: bool,
}

impl CompareSink<'_> {
    #[inline]
    fn take(&mut self, n: usize) -> &[u8] {
        match self.stored.split_at_checked(n) {
            Some((head, rest)) => {
                self.stored = rest;
                head
            }
            None => {
                self.equal = false;
                self.stored = &[];
                &[]
            }
        }
    }
}

impl KeySink for CompareSink<'_> {
    #[inline]
    fn tag(&mut self, tag: u8) {
        if self.equal && self.take(1) != [tag] {
            self.equal = false;
        }
    }

    #[inline]
    fn count(&mut self, count: u32) {
        if self.equal && self.take(4) != count.to_le_bytes() {
            self.equal = false;
        }
    }

    #[inline]
    fn field(&mut self, bytes: &[u8]) {
        self.count(bytes.len() as u32);
        if self.equal && !bytes_eq(self.take(bytes.len()), bytes) {
            self.equal = false;
        }
    }
}

/// Serializes the parts, to store with a new entry: on the stack, then copied once into an
/// allocation of the exact size.
struct BufferSink(SmallVec<[u8; 512]>);

impl KeySink for BufferSink {
    fn tag(&mut self, tag: u8) {
        self.0.push(tag);
    }

    fn count(&mut self, count: u32) {
        self.0.extend_from_slice(&count.to_le_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        self.count(bytes.len() as u32);
        self.0.extend_from_slice(bytes);
    }
}

/// The map's hasher: the keys are already [`HashSink`] hashes, so it passes them through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is ever called (the keys are `u64`); fold anything else in anyway.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Entries by the hash of their key. Two distinct requests with the same 64-bit hash share a slot:
/// the later one replaces the earlier, and a lookup that finds the other one's key is a miss.
type Map = HashMap<u64, Entry, BuildHasherDefault<PassThrough>>;

/// Two generations: when the current one is full it becomes the previous one (dropping the old
/// previous), and a hit in the previous generation is moved forward. Recently used decisions
/// survive, and the memory bound is the capacity.
#[derive(Debug, Default)]
struct Cache {
    current: Map,
    previous: Map,
    /// Hits, counted under the lock that a hit takes anyway.
    hits: u64,
    /// Hits and new entries since `current` was started, for judging it when it fills.
    generation_hits: u64,
    generation_misses: u64,
    /// Generations still to fill before one is judged: the first after a cold start is not.
    unjudged: u8,
}

impl Cache {
    fn new() -> Cache {
        Cache {
            unjudged: 1,
            ..Cache::default()
        }
    }
}

/// The values a request's context holds for each of [`CompiledSet::keys`], looked up once per request.
type Resolved<'c> = SmallVec<[Option<&'c [Box<str>]>; RESOLVED_INLINE]>;

/// How many referenced keys [`Resolved`] holds without allocating.
const RESOLVED_INLINE: usize = 16;

/// A collision-free table from the hash of each key a set reads to its index in
/// [`CompiledSet::keys`]: the slot of a hash is `(hash >> shift) & mask`, with `shift` chosen when
/// the set is built so that no two keys share a slot. Slots hold `(hash, index)`; an empty slot has
/// an index past the keys, so it never matches.
#[derive(Debug, Default)]
struct KeyTable {
    shift: u32,
    mask: u64,
    slots: Box<[(u64, u16)]>,
}

impl KeyTable {
    /// The table for `keys`, or `None` when no shift separates them (two keys with one hash, or
    /// too many keys): such a set is not cached.
    fn new(keys: &[(Box<str>, u64)]) -> Option<KeyTable> {
        let n_keys = u16::try_from(keys.len()).ok()?;
        let mut size = (2 * keys.len()).next_power_of_two().max(8);
        while size <= 1 << 12 {
            let mask = size as u64 - 1;
            for shift in 0..=(64 - size.trailing_zeros()) {
                let mut slots = vec![(0u64, n_keys); size];
                let placed = keys.iter().enumerate().all(|(index, &(_, hash))| {
                    match slots.get_mut(((hash >> shift) & mask) as usize) {
                        Some(slot) if slot.1 == n_keys => {
                            *slot = (hash, index as u16);
                            true
                        }
                        _ => false,
                    }
                });
                if placed {
                    return Some(KeyTable {
                        shift,
                        mask,
                        slots: slots.into_boxed_slice(),
                    });
                }
            }
            size *= 2;
        }
        None
    }
}

#[cfg(test)]
thread_local! {
    /// Tests set this to give every request the same hash, so that only the in-place comparison
    /// of stored keys tells requests apart.
    static COLLIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A principal's policies, compiled once, with a bounded decision cache. See the module docs.
#[derive(Debug)]
pub struct CompiledSet {
    /// Identity policies, then the boundary, then session policies: a decision names them by index.
    slots: Vec<(Box<str>, Arc<Policy>)>,
    identity_len: usize,
    has_boundary: bool,
    has_session: bool,
    root_implicit_allow: bool,
    /// Every lower-cased key any policy reads, sorted, with its hash.
    keys: Box<[(Box<str>, u64)]>,
    /// Finds a context key's index in `keys` from its hash, for [`CompiledSet::resolve`].
    key_table: KeyTable,
    /// For each slot, the map from its policy's key ids to indexes into `keys`.
    remaps: Box<[Box<[u16]>]>,
    time_dependent: bool,
    generation_capacity: usize,
    cache: Option<Mutex<Cache>>,
    /// Misses, including lookups skipped because another thread held the cache, and decisions
    /// made while the cache stood aside.
    misses: AtomicU64,
    /// Decisions still to evaluate without the cache, after a generation that missed more than it hit.
    bypass: AtomicU64,
}

impl CompiledSet {
    /// Compiles the set: collects the keys its policies read and prepares an empty cache.
    pub fn new(spec: SetSpec) -> CompiledSet {
        let identity_len = spec.identity.len();
        let has_boundary = spec.permissions_boundary.is_some();
        let has_session = spec.session_policies.is_some();
        let mut slots = spec.identity;
        slots.extend(spec.permissions_boundary);
        slots.extend(spec.session_policies.into_iter().flatten());
        let slots: Vec<(Box<str>, Arc<Policy>)> = slots.into_iter().map(|(id, p)| (id.into_boxed_str(), p)).collect();
        let mut names: Vec<&str> = slots.iter().flat_map(|(_, p)| p.keys.iter().map(|k| &**k)).collect();
        names.sort_unstable();
        names.dedup();
        let time_dependent = names.iter().any(|k| TIME_KEYS.contains(k));
        let keys: Box<[(Box<str>, u64)]> = names.iter().map(|k| (Box::from(*k), key_hash(k))).collect();
        let key_table = KeyTable::new(&keys);
        let remaps = slots
            .iter()
            .map(|(_, policy)| {
                policy
                    .keys
                    .iter()
                    .map_while(|name| {
                        let index = keys.binary_search_by(|(k, _)| (**k).cmp(&**name)).ok()?;
                        u16::try_from(index).ok()
                    })
                    .collect()
            })
            .collect();
        // Slots are numbered with u16 in the cache; a set too large for that is simply not cached.
        let cacheable = spec.cache_capacity > 0 && slots.len() < usize::from(u16::MAX) && key_table.is_some();
        CompiledSet {
            slots,
            identity_len,
            has_boundary,
            has_session,
            root_implicit_allow: spec.root_implicit_allow,
            keys,
            key_table: key_table.unwrap_or_default(),
            remaps,
            time_dependent,
            generation_capacity: spec.cache_capacity.div_ceil(2),
            cache: cacheable.then(|| Mutex::new(Cache::new())),
            misses: AtomicU64::new(0),
            bypass: AtomicU64::new(0),
        }
    }

    /// Whether a policy reads a clock-derived key ([`TIME_KEYS`]): cached decisions then only serve
    /// requests with the same timestamp.
    pub fn time_dependent(&self) -> bool {
        self.time_dependent
    }

    /// The lower-cased context keys the policies read, sorted: the only context the cache key holds.
    pub fn referenced_keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(k, _)| &**k)
    }

    /// Whether a policy of the set can read context key `key` (any case); see [`Policy::reads`].
    pub fn reads(&self, key: &str) -> bool {
        let search = |lower: &str| self.keys.binary_search_by(|(k, _)| (**k).cmp(lower)).is_ok();
        if key.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
            search(&key.to_lowercase())
        } else {
            search(key)
        }
    }

    /// `(hits, misses)` of the cache since the set was built.
    pub fn cache_stats(&self) -> (u64, u64) {
        let hits = match &self.cache {
            Some(cache) => match cache.lock() {
                Ok(guard) => guard.hits,
                Err(poisoned) => poisoned.into_inner().hits,
            },
            None => 0,
        };
        (hits, self.misses.load(Ordering::Relaxed))
    }

    fn policy_refs(&self, range: std::ops::Range<usize>) -> SmallVec<[PolicyRef<'_>; 16]> {
        self.slots
            .get(range)
            .unwrap_or_default()
            .iter()
            .map(|(id, policy)| PolicyRef { id, policy })
            .collect()
    }

    /// Evaluates without the cache; `resource` is the resource's policy, if it has one.
    pub fn evaluate_uncached<'s>(&'s self, req: &Request<'_>, resource: Option<ResourcePolicy<'s>>) -> Decision<'s> {
        let resolved = self.resolve(req.context);
        self.evaluate_resolved(req, resource, &resolved)
    }

    /// Evaluates with the context's values for [`CompiledSet::keys`] already looked up.
    fn evaluate_resolved<'s>(
        &'s self,
        req: &Request<'_>,
        resource: Option<ResourcePolicy<'s>>,
        resolved: &[Option<&[Box<str>]>],
    ) -> Decision<'s> {
        let identity = self.policy_refs(0..self.identity_len);
        let boundary_end = self.identity_len + usize::from(self.has_boundary);
        let permissions_boundary = self
            .has_boundary
            .then(|| self.slots.get(self.identity_len))
            .flatten()
            .map(|(id, policy)| PolicyRef { id, policy });
        let session = self.policy_refs(boundary_end..self.slots.len());
        // Keys are found through the table only when it was built (see `KeyTable::new`).
        let preresolved = !self.key_table.slots.is_empty() && resolved.len() == self.keys.len();
        evaluate_parts(
            req,
            &Parts {
                identity: &identity,
                resource,
                permissions_boundary,
                session_policies: self.has_session.then_some(&session[..]),
                scp_levels: &[],
                root_implicit_allow: self.root_implicit_allow,
                resolved: preresolved.then_some((resolved, &self.remaps[..])),
            },
        )
    }

    /// Evaluates `req`, answering from the cache when the same request (as far as the policies can
    /// tell) was decided before. The result is always identical to [`CompiledSet::evaluate_uncached`].
    ///
    /// A hit allocates nothing: the request's parts are hashed where they lie, the entry's stored key
    /// is compared with them in place, and the decision is rebuilt from slot and key indexes.
    pub fn evaluate<'s>(&'s self, req: &Request<'_>, resource: Option<ResourcePolicy<'s>>) -> Decision<'s> {
        let Some(cache) = &self.cache else {
            return self.evaluate_uncached(req, resource);
        };
        if resource.is_some() {
            return self.evaluate_uncached(req, resource);
        }
        if self.bypass.load(Ordering::Relaxed) > 0 {
            // Racing threads may take a few decisions more or fewer; that only changes speed.
            let _ = self
                .bypass
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1));
            self.misses.fetch_add(1, Ordering::Relaxed);
            return self.evaluate_uncached(req, resource);
        }
        // Lookups into the context, once for the cache key and the evaluation both.
        let resolved = self.resolve(req.context);
        let mut hasher = HashSink::new();
        self.write_key(req, &resolved, &mut hasher);
        let hash = hasher.finish();
        #[cfg(test)]
        let hash = if COLLIDE.with(|c| c.get()) { 0 } else { hash };
        if let Ok(mut guard) = cache.try_lock() {
            let state = &mut *guard;
            if let Some(entry) = state.current.get(&hash)
                && self.key_equals(req, &resolved, &entry.key)
                && let Some(decision) = self.rebuild(&entry.decision)
            {
                state.hits += 1;
                state.generation_hits += 1;
                return decision;
            }
            if state
                .previous
                .get(&hash)
                .is_some_and(|entry| self.key_equals(req, &resolved, &entry.key))
                && let Some(entry) = state.previous.remove(&hash)
                && let Some(decision) = self.rebuild(&entry.decision)
            {
                state.hits += 1;
                state.generation_hits += 1;
                self.insert(state, hash, entry);
                return decision;
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let decision = self.evaluate_resolved(req, None, &resolved);
        if let Some(compact) = self.compact(&decision) {
            let mut buffer = BufferSink(SmallVec::new());
            self.write_key(req, &resolved, &mut buffer);
            let entry = Entry {
                key: Box::from(&buffer.0[..]),
                decision: compact,
            };
            if let Ok(mut guard) = cache.try_lock() {
                guard.generation_misses += 1;
                self.insert(&mut guard, hash, entry);
            }
        }
        decision
    }

    /// The request's values for each of [`CompiledSet::keys`], in that order: one pass over the
    /// context's entries, each placed by its hash in [`KeyTable`] and confirmed by name.
    #[inline]
    fn resolve<'c>(&self, context: &'c Context) -> Resolved<'c> {
        let n_keys = self.keys.len();
        let mut resolved: Resolved<'c> = if n_keys <= RESOLVED_INLINE {
            SmallVec::from_buf_and_len([None; RESOLVED_INLINE], n_keys)
        } else {
            SmallVec::from_elem(None, n_keys)
        };
        let table = &self.key_table;
        for (hash, name, values) in context.hashed_entries() {
            let Some(&(slot_hash, index)) = table.slots.get(((hash >> table.shift) & table.mask) as usize) else {
                continue;
            };
            if slot_hash == hash
                && let Some((key, _)) = self.keys.get(usize::from(index))
                && bytes_eq(key.as_bytes(), name.as_bytes())
                && let Some(slot) = resolved.get_mut(usize::from(index))
            {
                *slot = Some(values);
            }
        }
        resolved
    }

    /// Whether `stored` is the serialized key of `req`.
    #[inline]
    fn key_equals(&self, req: &Request<'_>, resolved: &[Option<&[Box<str>]>], stored: &[u8]) -> bool {
        let mut compare = CompareSink { stored, equal: true };
        self.write_key(req, resolved, &mut compare);
        compare.equal && compare.stored.is_empty()
    }

    /// Sends everything a decision can depend on to `out`: the principal, the action, the resource,
    /// the resource account and the values of the keys the policies read (`resolved`, in the order
    /// of [`CompiledSet::keys`]), each field length-prefixed so that no two requests share a key.
    #[inline]
    fn write_key(&self, req: &Request<'_>, resolved: &[Option<&[Box<str>]>], out: &mut impl KeySink) {
        #[inline]
        fn optional(out: &mut impl KeySink, value: Option<&str>) {
            match value {
                Some(text) => {
                    out.tag(1);
                    out.field(text.as_bytes());
                }
                None => out.tag(0),
            }
        }
        let principal = &req.principal;
        out.field(principal.arn.as_bytes());
        out.field(principal.account.as_bytes());
        match principal.kind {
            PrincipalKind::Root => out.tag(0),
            PrincipalKind::User => out.tag(1),
            PrincipalKind::AssumedRole { role_arn } => {
                out.tag(2);
                out.field(role_arn.as_bytes());
            }
            PrincipalKind::FederatedUser => out.tag(3),
            PrincipalKind::Anonymous => out.tag(4),
            PrincipalKind::Service { name } => {
                out.tag(5);
                out.field(name.as_bytes());
            }
            PrincipalKind::WebIdentity { provider } => {
                out.tag(6);
                out.field(provider.as_bytes());
            }
        }
        out.tag(u8::from(principal.has_permissions_boundary));
        optional(out, principal.canonical_user_id);
        out.field(req.action.as_bytes());
        optional(out, req.resource);
        optional(out, req.resource_account);
        for values in resolved {
            match values {
                Some(values) => {
                    out.count(values.len() as u32 + 1);
                    for value in values.iter() {
                        out.field(value.as_bytes());
                    }
                }
                None => out.count(0),
            }
        }
    }

    /// The slot of a policy id handed out by [`CompiledSet::policy_refs`] (by address: ids may repeat).
    fn slot_of(&self, id: &str) -> Option<u16> {
        let index = self
            .slots
            .iter()
            .position(|(slot_id, _)| std::ptr::eq(slot_id.as_ptr(), id.as_ptr()) && slot_id.len() == id.len())?;
        u16::try_from(index).ok()
    }

    /// The cacheable form of a decision, or `None` when some part cannot be named (then it is not cached).
    fn compact(&self, decision: &Decision<'_>) -> Option<Cached> {
        let matched = decision
            .matched
            .iter()
            .map(|m| {
                Some((
                    self.slot_of(m.policy_id)?,
                    m.policy_type,
                    u32::try_from(m.statement_index).ok()?,
                ))
            })
            .collect::<Option<_>>()?;
        let missing = decision
            .missing_context_keys
            .iter()
            .map(|key| {
                let index = self.keys.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
                u16::try_from(index).ok()
            })
            .collect::<Option<_>>()?;
        Some(Cached {
            outcome: decision.outcome,
            policy_type: decision.policy_type,
            matched,
            missing,
        })
    }

    /// The decision a cached entry stands for.
    #[inline]
    fn rebuild(&self, cached: &Cached) -> Option<Decision<'_>> {
        let mut matched = SmallVec::new();
        for &(slot, policy_type, index) in &cached.matched {
            let (id, policy) = self.slots.get(usize::from(slot))?;
            let statement = policy.statements.get(index as usize)?;
            matched.push(MatchedStatement {
                policy_id: id,
                policy_type,
                statement_index: index as usize,
                sid: statement.sid.as_deref(),
                effect: statement.effect,
            });
        }
        let mut missing_context_keys = SmallVec::new();
        for &index in &cached.missing {
            missing_context_keys.push(&*self.keys.get(usize::from(index))?.0);
        }
        Some(Decision {
            outcome: cached.outcome,
            policy_type: cached.policy_type,
            matched,
            missing_context_keys,
        })
    }

    /// Adds an entry, starting a new generation when the current one is full; a full generation
    /// that missed more than it hit sets the cache aside for a while (see the module docs).
    fn insert(&self, cache: &mut Cache, hash: u64, entry: Entry) {
        if cache.current.len() >= self.generation_capacity {
            if cache.unjudged > 0 {
                cache.unjudged -= 1;
            } else if cache.generation_hits < cache.generation_misses {
                let decisions = BYPASS_GENERATIONS.saturating_mul(2 * self.generation_capacity as u64);
                self.bypass.store(decisions, Ordering::Relaxed);
                // What the cache holds after the bypass is old: the generation that follows it
                // fills from scratch and is not judged.
                cache.unjudged = 1;
            }
            cache.generation_hits = 0;
            cache.generation_misses = 0;
            // The old previous generation's table is reused for the new current one.
            std::mem::swap(&mut cache.current, &mut cache.previous);
            cache.current.clear();
        }
        cache.current.insert(hash, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyKind;
    use crate::principal::Principal;

    fn set(policy: &str) -> CompiledSet {
        let policy = Arc::new(Policy::parse(policy, PolicyKind::Identity).unwrap());
        CompiledSet::new(SetSpec {
            identity: vec![("p".to_owned(), policy)],
            ..SetSpec::default()
        })
    }

    fn decide(set: &CompiledSet, context: &Context) -> Outcome {
        let request = Request {
            principal: Principal::new("arn:aws:iam::123456789012:user/u", "123456789012", PrincipalKind::User),
            action: "s3:GetObject",
            resource: Some("arn:aws:s3:::b/k"),
            resource_account: None,
            context,
        };
        let cached = set.evaluate(&request, None);
        assert_eq!(cached, set.evaluate_uncached(&request, None));
        cached.outcome
    }

    /// Runs `f` with every request hashing alike, so that only the stored-key comparison separates them.
    fn colliding<T>(f: impl FnOnce() -> T) -> T {
        COLLIDE.with(|c| c.set(true));
        let out = f();
        COLLIDE.with(|c| c.set(false));
        out
    }

    const TEAM_POLICY: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:PrincipalTag/team":["ab","blue"]}}}}"#;

    #[test]
    fn requests_differing_in_one_read_key_never_share_a_decision_even_when_their_hashes_collide() {
        for collide in [false, true] {
            let set = set(TEAM_POLICY);
            let run = || {
                let mut blue = Context::new();
                blue.insert("aws:PrincipalTag/team", "blue");
                let mut red = Context::new();
                red.insert("aws:PrincipalTag/team", "red");
                assert_eq!(decide(&set, &blue), Outcome::Allowed);
                assert_eq!(decide(&set, &red), Outcome::ImplicitDeny);
                assert_eq!(decide(&set, &blue), Outcome::Allowed);
                assert_eq!(decide(&set, &red), Outcome::ImplicitDeny);
            };
            if collide {
                colliding(run)
            } else {
                run()
            }
            // With colliding hashes each request evicts the other, so only the first run hits.
            let (hits, misses) = set.cache_stats();
            assert_eq!(hits + misses, 4);
            assert_eq!(hits, if collide { 0 } else { 2 });
        }
    }

    #[test]
    fn field_boundaries_and_absent_keys_are_part_of_the_key() {
        let set = set(TEAM_POLICY);
        colliding(|| {
            // `["ab", "c"]` and `["a", "bc"]` hold the same bytes; only the lengths tell them apart.
            let mut split_late = Context::new();
            split_late.insert_multi("aws:PrincipalTag/team", ["ab", "c"]);
            let mut split_early = Context::new();
            split_early.insert_multi("aws:PrincipalTag/team", ["a", "bc"]);
            assert_eq!(decide(&set, &split_late), Outcome::Allowed);
            assert_eq!(decide(&set, &split_early), Outcome::ImplicitDeny);
            // An absent key and a key with no values are different requests.
            let absent = Context::new();
            let mut empty = Context::new();
            empty.insert_multi("aws:PrincipalTag/team", Vec::<String>::new());
            let absent_decision = decide(&set, &absent);
            let empty_decision = decide(&set, &empty);
            assert_eq!(
                (absent_decision, empty_decision),
                (Outcome::ImplicitDeny, Outcome::ImplicitDeny)
            );
        });
        assert_eq!(set.cache_stats().0, 0);
    }

    #[test]
    fn keys_the_set_does_not_read_never_split_the_cache() {
        let set = set(TEAM_POLICY);
        for ip in ["10.0.0.1", "10.0.0.2", "192.168.1.1"] {
            let mut context = Context::new();
            context
                .insert("aws:PrincipalTag/team", "blue")
                .insert("aws:SourceIp", ip)
                .insert("aws:PrincipalTag/other", ip);
            assert_eq!(decide(&set, &context), Outcome::Allowed);
        }
        assert_eq!(set.cache_stats(), (2, 1));
    }

    #[test]
    fn resolve_agrees_with_lookups_by_name() {
        let set = set(TEAM_POLICY);
        let mut context = Context::new();
        context
            .insert("aws:PrincipalTag/team", "blue")
            .insert("aws:SourceIp", "10.0.0.1");
        let resolved = set.resolve(&context);
        let by_name: Resolved<'_> = set
            .keys
            .iter()
            .map(|(name, hash)| context.get_hashed(*hash, name))
            .collect();
        assert_eq!(resolved, by_name);
        assert!(by_name.iter().any(Option::is_some));
    }

    #[test]
    fn the_stored_key_must_be_consumed_exactly() {
        let set = set(TEAM_POLICY);
        let mut context = Context::new();
        context.insert("aws:PrincipalTag/team", "blue");
        let request = Request {
            principal: Principal::new("arn:aws:iam::123456789012:user/u", "123456789012", PrincipalKind::User),
            action: "s3:GetObject",
            resource: Some("arn:aws:s3:::b/k"),
            resource_account: None,
            context: &context,
        };
        let resolved = set.resolve(&context);
        let mut buffer = BufferSink(SmallVec::new());
        set.write_key(&request, &resolved, &mut buffer);
        let stored = buffer.0.to_vec();
        assert!(set.key_equals(&request, &resolved, &stored));
        let mut longer = stored.clone();
        longer.push(0);
        assert!(!set.key_equals(&request, &resolved, &longer));
        assert!(!set.key_equals(&request, &resolved, &stored[..stored.len() - 1]));
        assert!(!set.key_equals(&request, &resolved, &[]));
        for at in 0..stored.len() {
            let mut changed = stored.clone();
            changed[at] ^= 0x20;
            assert!(!set.key_equals(&request, &resolved, &changed), "byte {at}");
        }
    }

    /// A set with the given cache capacity that allows reading every object of bucket `b`.
    fn bucket_reader(capacity: usize) -> CompiledSet {
        let policy = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
        CompiledSet::new(SetSpec {
            identity: vec![(
                "p".to_owned(),
                Arc::new(Policy::parse(policy, PolicyKind::Identity).unwrap()),
            )],
            cache_capacity: capacity,
            ..SetSpec::default()
        })
    }

    fn read_object(set: &CompiledSet, key: usize) -> Outcome {
        let resource = format!("arn:aws:s3:::b/k{key}");
        let context = Context::new();
        let request = Request {
            principal: Principal::new("arn:aws:iam::123456789012:user/u", "123456789012", PrincipalKind::User),
            action: "s3:GetObject",
            resource: Some(&resource),
            resource_account: None,
            context: &context,
        };
        let decision = set.evaluate(&request, None);
        assert_eq!(decision, set.evaluate_uncached(&request, None));
        decision.outcome
    }

    #[test]
    fn a_cache_that_only_misses_stands_aside_and_then_tries_again() {
        // Capacity 8: generations of 4 entries.
        let set = bucket_reader(8);
        // Keys 0..=3 fill the first generation, which is not judged (it started cold); keys 4..=7
        // fill the second, with no hits; key 8 starts the third, and the cache stands aside.
        for key in 0..=8 {
            assert_eq!(read_object(&set, key), Outcome::Allowed);
        }
        assert_eq!(set.cache_stats(), (0, 9));
        // Key 8 is cached, but for the next 16 capacities of decisions the cache is not asked.
        let bypassed = BYPASS_GENERATIONS as usize * 8;
        for _ in 0..bypassed {
            assert_eq!(read_object(&set, 8), Outcome::Allowed);
        }
        assert_eq!(set.cache_stats(), (0, 9 + bypassed as u64));
        // Then it is asked again, and still holds key 8.
        assert_eq!(read_object(&set, 8), Outcome::Allowed);
        assert_eq!(set.cache_stats(), (1, 9 + bypassed as u64));
    }

    #[test]
    fn a_cache_whose_requests_repeat_is_never_set_aside() {
        // 40 distinct requests, repeated, in a cache of 64 (generations of 32): more than a
        // generation, so generations fill and are judged, and they hit more than they miss.
        let set = bucket_reader(64);
        for _round in 0..50 {
            for key in 0..40 {
                assert_eq!(read_object(&set, key), Outcome::Allowed);
            }
        }
        let (hits, misses) = set.cache_stats();
        assert_eq!(hits + misses, 2000);
        assert_eq!(set.bypass.load(Ordering::Relaxed), 0);
        // A bypass would have added 16 x 64 uncached decisions to the misses. The misses left are
        // the two-generation scheme's own: each rotation drops the previous generation's entries
        // that were not hit since, about 9 a round here.
        assert!(hits > 3 * misses && misses < 600, "{hits} hits, {misses} misses");
    }

    #[test]
    fn hash_sink_separates_short_fields() {
        let hash = |fields: &[&[u8]]| {
            let mut sink = HashSink::new();
            for field in fields {
                sink.field(field);
            }
            sink.finish()
        };
        let mut samples: Vec<Vec<&[u8]>> = vec![vec![b"a", b"bc"], vec![b"ab", b"c"], vec![b"", b""], vec![b""]];
        let texts: Vec<Vec<u8>> = (1..40usize)
            .flat_map(|len| {
                let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                let mut changed = base.clone();
                if let Some(last) = changed.last_mut() {
                    *last ^= 1;
                }
                [base, changed]
            })
            .collect();
        samples.extend(texts.iter().map(|t| vec![&t[..]]));
        let hashes: std::collections::HashSet<u64> = samples.iter().map(|fields| hash(fields)).collect();
        assert_eq!(hashes.len(), samples.len());
    }
}
