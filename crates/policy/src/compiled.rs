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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use smallvec::SmallVec;

use crate::eval::{
    Decision, MatchedStatement, Outcome, Parts, PolicyRef, PolicyType, Request, ResourcePolicy, evaluate_parts,
};
use crate::keys::key_hash;
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
    missing: SmallVec<[u16; 2]>,
}

/// FxHash: the cache keys are built by this crate, never chosen by an attacker as a whole, and
/// hashing a few hundred bytes must cost less than the evaluation it saves.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Map = HashMap<Box<[u8]>, Cached, BuildHasherDefault<FxHasher>>;

/// Two generations: when the current one is full it becomes the previous one (dropping the old
/// previous), and a hit in the previous generation is copied forward. Recently used decisions
/// survive, and the memory bound is the capacity.
#[derive(Debug, Default)]
struct Cache {
    current: Map,
    previous: Map,
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
    time_dependent: bool,
    generation_capacity: usize,
    cache: Option<Mutex<Cache>>,
    hits: AtomicU64,
    misses: AtomicU64,
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
        let keys = names.iter().map(|k| (Box::from(*k), key_hash(k))).collect();
        // Slots are numbered with u16 in the cache; a set too large for that is simply not cached.
        let cacheable = spec.cache_capacity > 0 && slots.len() < usize::from(u16::MAX);
        CompiledSet {
            slots,
            identity_len,
            has_boundary,
            has_session,
            root_implicit_allow: spec.root_implicit_allow,
            keys,
            time_dependent,
            generation_capacity: spec.cache_capacity.div_ceil(2),
            cache: cacheable.then(|| Mutex::new(Cache::default())),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
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
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
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
        let identity = self.policy_refs(0..self.identity_len);
        let boundary_end = self.identity_len + usize::from(self.has_boundary);
        let permissions_boundary = self
            .has_boundary
            .then(|| self.slots.get(self.identity_len))
            .flatten()
            .map(|(id, policy)| PolicyRef { id, policy });
        let session = self.policy_refs(boundary_end..self.slots.len());
        evaluate_parts(
            req,
            &Parts {
                identity: &identity,
                resource,
                permissions_boundary,
                session_policies: self.has_session.then_some(&session[..]),
                scp_levels: &[],
                root_implicit_allow: self.root_implicit_allow,
            },
        )
    }

    /// Evaluates `req`, answering from the cache when the same request (as far as the policies can
    /// tell) was decided before. The result is always identical to [`CompiledSet::evaluate_uncached`].
    pub fn evaluate<'s>(&'s self, req: &Request<'_>, resource: Option<ResourcePolicy<'s>>) -> Decision<'s> {
        let Some(cache) = &self.cache else {
            return self.evaluate_uncached(req, resource);
        };
        if resource.is_some() {
            return self.evaluate_uncached(req, resource);
        }
        let mut key: SmallVec<[u8; 512]> = SmallVec::new();
        self.write_key(req, &mut key);
        if let Ok(mut guard) = cache.try_lock() {
            let state = &mut *guard;
            let found = match state.current.get(&key[..]) {
                Some(hit) => Some(hit.clone()),
                None => match state.previous.get(&key[..]) {
                    Some(hit) => {
                        let hit = hit.clone();
                        insert(state, self.generation_capacity, &key, hit.clone());
                        Some(hit)
                    }
                    None => None,
                },
            };
            drop(guard);
            if let Some(hit) = found
                && let Some(decision) = self.rebuild(&hit)
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return decision;
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let decision = self.evaluate_uncached(req, None);
        if let Some(compact) = self.compact(&decision)
            && let Ok(mut guard) = cache.try_lock()
        {
            insert(&mut guard, self.generation_capacity, &key, compact);
        }
        decision
    }

    /// Serializes everything a decision can depend on, each field length-prefixed so that no two
    /// requests share a key.
    fn write_key(&self, req: &Request<'_>, out: &mut SmallVec<[u8; 512]>) {
        fn field(out: &mut SmallVec<[u8; 512]>, bytes: &[u8]) {
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        fn optional(out: &mut SmallVec<[u8; 512]>, value: Option<&str>) {
            match value {
                Some(text) => {
                    out.push(1);
                    field(out, text.as_bytes());
                }
                None => out.push(0),
            }
        }
        let principal = &req.principal;
        field(out, principal.arn.as_bytes());
        field(out, principal.account.as_bytes());
        match principal.kind {
            PrincipalKind::Root => out.push(0),
            PrincipalKind::User => out.push(1),
            PrincipalKind::AssumedRole { role_arn } => {
                out.push(2);
                field(out, role_arn.as_bytes());
            }
            PrincipalKind::FederatedUser => out.push(3),
            PrincipalKind::Anonymous => out.push(4),
            PrincipalKind::Service { name } => {
                out.push(5);
                field(out, name.as_bytes());
            }
            PrincipalKind::WebIdentity { provider } => {
                out.push(6);
                field(out, provider.as_bytes());
            }
        }
        out.push(u8::from(principal.has_permissions_boundary));
        optional(out, principal.canonical_user_id);
        field(out, req.action.as_bytes());
        optional(out, req.resource);
        optional(out, req.resource_account);
        for (name, hash) in self.keys.iter() {
            match req.context.get_hashed(*hash, name) {
                Some(values) => {
                    out.extend_from_slice(&(values.len() as u32 + 1).to_le_bytes());
                    for value in values {
                        field(out, value.as_bytes());
                    }
                }
                None => out.extend_from_slice(&0u32.to_le_bytes()),
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
    fn rebuild(&self, cached: &Cached) -> Option<Decision<'_>> {
        let matched = cached
            .matched
            .iter()
            .map(|&(slot, policy_type, index)| {
                let (id, policy) = self.slots.get(usize::from(slot))?;
                let statement = policy.statements.get(index as usize)?;
                Some(MatchedStatement {
                    policy_id: id,
                    policy_type,
                    statement_index: index as usize,
                    sid: statement.sid.as_deref(),
                    effect: statement.effect,
                })
            })
            .collect::<Option<_>>()?;
        let missing_context_keys = cached
            .missing
            .iter()
            .map(|&index| self.keys.get(usize::from(index)).map(|(k, _)| &**k))
            .collect::<Option<_>>()?;
        Some(Decision {
            outcome: cached.outcome,
            policy_type: cached.policy_type,
            matched,
            missing_context_keys,
        })
    }
}

fn insert(cache: &mut Cache, generation_capacity: usize, key: &[u8], value: Cached) {
    if cache.current.len() >= generation_capacity {
        cache.previous = std::mem::take(&mut cache.current);
    }
    cache.current.insert(key.into(), value);
}
