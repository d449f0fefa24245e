//! The request context: the condition keys and their values that a request carries.
//!
//! Keys are stored lower-cased because IAM compares condition key names case-insensitively,
//! including the tag-key part of `aws:ResourceTag/<k>`, `aws:RequestTag/<k>` and `aws:PrincipalTag/<k>`.
//! Values are kept as strings, exactly as the IAM policy simulator receives them; each condition
//! operator parses them as it needs (number, date, IP address, ...).
//! The entries are a sorted vector rather than a hash map: contexts hold a few dozen keys at most,
//! and a binary search over a contiguous vector is faster than hashing for that size.

use std::net::IpAddr;

use smallvec::SmallVec;
use time::OffsetDateTime;

use crate::keys::{bytes_eq, key_hash};
use crate::principal::{Principal, PrincipalKind};

/// The values of one context key: one for ordinary keys, several for multi-valued keys.
pub type ContextValues = SmallVec<[Box<str>; 1]>;

/// The condition context of a request: lower-cased key to one or many string values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    entries: Vec<(Box<str>, ContextValues)>,
    /// [`key_hash`] of each entry's key, in the same order: the evaluator compares these first.
    hashes: Vec<u64>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Context {
        Context::default()
    }

    fn position(&self, key_lower: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| (**k).cmp(key_lower))
    }

    /// Sets `key` to a single string value, replacing earlier values.
    pub fn insert(&mut self, key: &str, value: impl Into<String>) -> &mut Context {
        let mut values = ContextValues::new();
        values.push(value.into().into_boxed_str());
        self.set(key, values);
        self
    }

    /// Sets `key` to several values (a multi-valued key such as `aws:TagKeys`), replacing earlier values.
    ///
    /// An empty iterator stores the key with an empty set, which `ForAllValues`/`ForAnyValue` treat like a missing key.
    pub fn insert_multi<I, S>(&mut self, key: &str, values: I) -> &mut Context
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values: ContextValues = values.into_iter().map(|v| v.into().into_boxed_str()).collect();
        self.set(key, values);
        self
    }

    /// Appends one value to `key`, making it multi-valued when it already has a value.
    pub fn push(&mut self, key: &str, value: impl Into<String>) -> &mut Context {
        let key_lower = key.to_lowercase();
        let value = value.into().into_boxed_str();
        match self.position(&key_lower) {
            Ok(index) => {
                if let Some((_, values)) = self.entries.get_mut(index) {
                    values.push(value);
                }
            }
            Err(index) => {
                let mut values = ContextValues::new();
                values.push(value);
                self.insert_entry(index, key_lower.into_boxed_str(), values);
            }
        }
        self
    }

    /// Sets a boolean key (`aws:SecureTransport`), stored as `true`/`false`.
    pub fn insert_bool(&mut self, key: &str, value: bool) -> &mut Context {
        self.insert(key, if value { "true" } else { "false" })
    }

    /// Sets an integer key (`s3:max-keys`, `aws:MultiFactorAuthAge`).
    pub fn insert_number(&mut self, key: &str, value: i64) -> &mut Context {
        self.insert(key, value.to_string())
    }

    /// Sets a decimal key.
    pub fn insert_decimal(&mut self, key: &str, value: f64) -> &mut Context {
        self.insert(key, value.to_string())
    }

    /// Sets a date key (`aws:CurrentTime`, `aws:TokenIssueTime`) as an ISO 8601 UTC timestamp.
    pub fn insert_date(&mut self, key: &str, value: OffsetDateTime) -> &mut Context {
        let utc = value.to_offset(time::UtcOffset::UTC);
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            utc.year(),
            u8::from(utc.month()),
            utc.day(),
            utc.hour(),
            utc.minute(),
            utc.second()
        );
        self.insert(key, text)
    }

    /// Sets an IP address key (`aws:SourceIp`).
    pub fn insert_ip(&mut self, key: &str, value: IpAddr) -> &mut Context {
        match value {
            IpAddr::V4(v4) => {
                // Every request carries aws:SourceIp; `Display` goes through the padding
                // machinery of `fmt` and costs more than the rest of a cached decision.
                let mut text = String::with_capacity(15);
                for (index, octet) in v4.octets().into_iter().enumerate() {
                    if index > 0 {
                        text.push('.');
                    }
                    if octet >= 100 {
                        text.push(char::from(b'0' + octet / 100));
                    }
                    if octet >= 10 {
                        text.push(char::from(b'0' + octet / 10 % 10));
                    }
                    text.push(char::from(b'0' + octet % 10));
                }
                self.insert(key, text)
            }
            IpAddr::V6(_) => self.insert(key, value.to_string()),
        }
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> &mut Context {
        let key_lower = key.to_lowercase();
        if let Ok(index) = self.position(&key_lower) {
            self.entries.remove(index);
            self.hashes.remove(index);
        }
        self
    }

    /// Inserts a new key at its sorted position `index`.
    fn insert_entry(&mut self, index: usize, key_lower: Box<str>, values: ContextValues) {
        self.hashes.insert(index, key_hash(&key_lower));
        self.entries.insert(index, (key_lower, values));
    }

    /// Every entry with its [`key_hash`]: a compiled set walks these once to find all the keys it reads.
    #[inline]
    pub(crate) fn hashed_entries(&self) -> impl Iterator<Item = (u64, &str, &[Box<str>])> {
        self.hashes
            .iter()
            .zip(&self.entries)
            .map(|(&hash, (key, values))| (hash, &**key, &values[..]))
    }

    fn set(&mut self, key: &str, values: ContextValues) {
        // Most keys arrive lower-cased already: copy them exactly instead of folding case into a
        // growable string and shrinking it.
        let key_lower: Box<str> = if key.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
            key.to_lowercase().into_boxed_str()
        } else {
            Box::from(key)
        };
        match self.position(&key_lower) {
            Ok(index) => {
                if let Some(entry) = self.entries.get_mut(index) {
                    entry.1 = values;
                }
            }
            Err(index) => self.insert_entry(index, key_lower, values),
        }
    }

    /// The values of `key` (any case), or `None` when the key is absent.
    pub fn get(&self, key: &str) -> Option<&[Box<str>]> {
        if key.bytes().any(|b| b.is_ascii_uppercase()) || !key.is_ascii() {
            self.get_lower(&key.to_lowercase())
        } else {
            self.get_lower(key)
        }
    }

    /// The values of an already lower-cased key; the evaluator's fast path.
    pub(crate) fn get_lower(&self, key_lower: &str) -> Option<&[Box<str>]> {
        self.position(key_lower)
            .ok()
            .and_then(|index| self.entries.get(index))
            .map(|(_, values)| &values[..])
    }

    /// The values of an already lower-cased key whose [`key_hash`] is `hash`: a scan of the hashes
    /// (a context holds a few dozen keys at most) and one string comparison to confirm.
    #[inline]
    pub(crate) fn get_hashed(&self, hash: u64, key_lower: &str) -> Option<&[Box<str>]> {
        let mut from = 0;
        while let Some(offset) = self.hashes.get(from..)?.iter().position(|&h| h == hash) {
            let index = from + offset;
            let (key, values) = self.entries.get(index)?;
            if bytes_eq(key.as_bytes(), key_lower.as_bytes()) {
                return Some(&values[..]);
            }
            from = index + 1;
        }
        None
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the context has no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Iterates over the lower-cased keys and their values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Box<str>])> {
        self.entries.iter().map(|(k, v)| (&**k, &v[..]))
    }

    /// Adds the principal-derived global keys (`aws:PrincipalArn`, `aws:PrincipalAccount`,
    /// `aws:PrincipalType`, `aws:username`, `aws:userid` for root and anonymous), leaving keys that are already set alone.
    ///
    /// The values follow the table in the policy-variables documentation: a role session's
    /// `aws:PrincipalArn` is the role ARN, and only IAM users have `aws:username`.
    pub fn insert_principal_defaults(&mut self, principal: &Principal<'_>) -> &mut Context {
        let (principal_type, principal_arn) = match principal.kind {
            PrincipalKind::Root => ("Account", Some(principal.arn)),
            PrincipalKind::User => ("User", Some(principal.arn)),
            PrincipalKind::AssumedRole { role_arn } => ("AssumedRole", Some(role_arn)),
            PrincipalKind::FederatedUser => ("FederatedUser", Some(principal.arn)),
            PrincipalKind::Anonymous => ("Anonymous", None),
            PrincipalKind::Service { .. } => ("Service", None),
            PrincipalKind::WebIdentity { .. } => ("WebIdentityUser", None),
        };
        self.insert_if_absent("aws:PrincipalType", principal_type);
        if let Some(arn) = principal_arn {
            self.insert_if_absent("aws:PrincipalArn", arn);
        }
        if !principal.account.is_empty() {
            self.insert_if_absent("aws:PrincipalAccount", principal.account);
        }
        match principal.kind {
            PrincipalKind::User => {
                // The user name is the last path segment of the user ARN.
                if let Some(name) = principal.arn.rsplit('/').next() {
                    self.insert_if_absent("aws:username", name);
                }
            }
            PrincipalKind::Root => {
                self.insert_if_absent("aws:userid", principal.account);
            }
            PrincipalKind::Anonymous => {
                self.insert_if_absent("aws:userid", "anonymous");
            }
            _ => {}
        }
        self
    }

    fn insert_if_absent(&mut self, key: &str, value: &str) {
        if !self.contains(key) {
            self.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive_including_tag_keys() {
        let mut ctx = Context::new();
        ctx.insert("aws:ResourceTag/Team", "blue")
            .insert("AWS:SourceIP", "10.0.0.1");
        assert_eq!(ctx.get("aws:resourcetag/team").map(|v| v.len()), Some(1));
        assert_eq!(
            ctx.get("aws:RESOURCETAG/TEAM").and_then(|v| v.first()).map(|v| &**v),
            Some("blue")
        );
        assert!(ctx.contains("aws:sourceip"));
        assert!(!ctx.contains("aws:sourcevpc"));
    }

    #[test]
    fn push_makes_multi_valued_and_typed_helpers_format() {
        let mut ctx = Context::new();
        ctx.push("aws:TagKeys", "a").push("aws:TagKeys", "b");
        ctx.insert_bool("aws:SecureTransport", true)
            .insert_number("s3:max-keys", 10);
        ctx.insert_date("aws:CurrentTime", time::macros::datetime!(2025-01-02 03:04:05 UTC));
        assert_eq!(ctx.get("aws:tagkeys").map(|v| v.len()), Some(2));
        assert_eq!(
            ctx.get("aws:securetransport").and_then(|v| v.first()).map(|v| &**v),
            Some("true")
        );
        assert_eq!(
            ctx.get("aws:currenttime").and_then(|v| v.first()).map(|v| &**v),
            Some("2025-01-02T03:04:05Z")
        );
        ctx.remove("aws:TagKeys");
        assert!(!ctx.contains("aws:TagKeys"));
    }
}
