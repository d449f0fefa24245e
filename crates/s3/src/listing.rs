//! The pure part of object listings: prefixes, delimiters, markers and pages.
//!
//! Listings read object rows from the store in ascending key order (keys compare as UTF-8 bytes,
//! as on AWS; `aws cloudtrail validate-logs` depends on that order when it pages with markers).
//! [`Walker`] decides, row by row, whether a key is listed, folded into a common prefix, or ends
//! the page, and tells the caller when it may jump past a folded prefix instead of reading every
//! key under it.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// One entry of a listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed<T> {
    /// An object (or upload) with its row.
    Item(String, T),
    /// A common prefix folding every key up to and including the delimiter.
    Prefix(String),
}

impl<T> Listed<T> {
    /// The key or prefix; a page's last one is the next marker.
    pub fn marker(&self) -> &str {
        match self {
            Listed::Item(key, _) | Listed::Prefix(key) => key,
        }
    }
}

/// What the caller should do after offering a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Offer the next key.
    Next,
    /// Every key starting with this prefix folds into the prefix just listed: skip them.
    SkipPrefix(String),
    /// The page is full and more entries exist: stop reading.
    Full,
}

/// Builds one page of a listing from keys offered in ascending order.
#[derive(Debug)]
pub struct Walker<T> {
    prefix: String,
    delimiter: Option<String>,
    after: Option<String>,
    max: usize,
    /// The entries so far.
    pub entries: Vec<Listed<T>>,
    /// Whether more entries exist beyond the page.
    pub truncated: bool,
}

impl<T> Walker<T> {
    /// A walker for keys under `prefix`, folded at `delimiter`, strictly after `after`,
    /// at most `max` entries.
    pub fn new(prefix: &str, delimiter: Option<&str>, after: Option<&str>, max: usize) -> Self {
        Self {
            prefix: prefix.to_string(),
            delimiter: delimiter.filter(|d| !d.is_empty()).map(str::to_string),
            after: after.filter(|a| !a.is_empty()).map(str::to_string),
            max,
            entries: Vec::new(),
            truncated: false,
        }
    }

    /// Offers the next key (ascending order) with its row.
    pub fn offer(&mut self, key: &str, row: T) -> Step {
        if !key.starts_with(&self.prefix) {
            return Step::Next;
        }
        if self.after.as_deref().is_some_and(|after| key <= after) {
            return Step::Next;
        }
        let folded = self.delimiter.as_deref().and_then(|d| {
            let rest = &key[self.prefix.len()..];
            rest.find(d)
                .map(|at| key[..self.prefix.len() + at + d.len()].to_string())
        });
        if let Some(common) = &folded {
            if self
                .entries
                .last()
                .is_some_and(|last| matches!(last, Listed::Prefix(p) if p == common))
            {
                return Step::SkipPrefix(common.clone());
            }
            // A marker equal to a common prefix means that prefix was on the previous page.
            if self.after.as_deref().is_some_and(|after| common.as_str() <= after) {
                return Step::SkipPrefix(common.clone());
            }
        }
        if self.entries.len() >= self.max {
            self.truncated = self.max > 0;
            return Step::Full;
        }
        match folded {
            Some(common) => {
                self.entries.push(Listed::Prefix(common.clone()));
                Step::SkipPrefix(common)
            }
            None => {
                self.entries.push(Listed::Item(key.to_string(), row));
                Step::Next
            }
        }
    }

    /// The marker for the next page, when truncated.
    pub fn next_marker(&self) -> Option<String> {
        if self.truncated {
            self.entries.last().map(|e| e.marker().to_string())
        } else {
            None
        }
    }
}

/// Characters kept as-is by `encoding-type=url`; everything else is percent-encoded, so that
/// botocore's `unquote_plus` gives back the exact key (a literal `+` travels as `%2B`).
const URL_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Encodes a key for a listing with `encoding-type=url`.
pub fn url_encode(value: &str) -> String {
    utf8_percent_encode(value, URL_ENCODE).to_string()
}

/// An opaque ListObjectsV2 continuation token for a marker.
pub fn continuation_token(marker: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(marker.as_bytes())
}

/// The marker inside a continuation token, if the token is one of ours.
pub fn parse_continuation_token(token: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(
        keys: &[&str],
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> (Vec<String>, bool, Option<String>) {
        let mut sorted: Vec<&str> = keys.to_vec();
        sorted.sort();
        let mut walker = Walker::new(prefix, delimiter, after, max);
        let mut skip: Option<String> = None;
        for key in sorted {
            if let Some(p) = &skip
                && key.starts_with(p.as_str())
            {
                continue;
            }
            match walker.offer(key, ()) {
                Step::Next => skip = None,
                Step::SkipPrefix(p) => skip = Some(p),
                Step::Full => break,
            }
        }
        let listed = walker
            .entries
            .iter()
            .map(|e| match e {
                Listed::Item(k, _) => k.clone(),
                Listed::Prefix(p) => format!("P:{p}"),
            })
            .collect();
        (listed, walker.truncated, walker.next_marker())
    }

    const KEYS: &[&str] = &["a", "b/1", "b/2", "b/c/3", "c+d", "c d", "d/x", "e"];

    #[test]
    fn listing_table() {
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, usize, &'a [&'a str], bool);
        let cases: &[Case] = &[
            (
                "",
                None,
                None,
                1000,
                &["a", "b/1", "b/2", "b/c/3", "c d", "c+d", "d/x", "e"],
                false,
            ),
            (
                "",
                Some("/"),
                None,
                1000,
                &["a", "P:b/", "c d", "c+d", "P:d/", "e"],
                false,
            ),
            ("b/", Some("/"), None, 1000, &["b/1", "b/2", "P:b/c/"], false),
            ("b/", None, None, 2, &["b/1", "b/2"], true),
            ("", Some("/"), Some("a"), 2, &["P:b/", "c d"], true),
            ("", Some("/"), Some("b/"), 1000, &["c d", "c+d", "P:d/", "e"], false),
            ("", None, Some("c d"), 1000, &["c+d", "d/x", "e"], false),
            ("", None, None, 0, &[], false),
            ("zzz", None, None, 10, &[], false),
            (
                "",
                None,
                None,
                8,
                &["a", "b/1", "b/2", "b/c/3", "c d", "c+d", "d/x", "e"],
                false,
            ),
        ];
        for (prefix, delimiter, after, max, want, truncated) in cases {
            let (got, got_truncated, _) = page(KEYS, prefix, *delimiter, *after, *max);
            assert_eq!(
                got, *want,
                "prefix {prefix:?} delimiter {delimiter:?} after {after:?} max {max}"
            );
            assert_eq!(got_truncated, *truncated, "prefix {prefix:?} after {after:?} max {max}");
        }
    }

    #[test]
    fn paging_with_markers_visits_every_key_once() {
        for delimiter in [None, Some("/")] {
            let mut seen = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let (got, truncated, next) = page(KEYS, "", delimiter, marker.as_deref(), 2);
                seen.extend(got);
                if !truncated {
                    break;
                }
                marker = next;
            }
            let (all, _, _) = page(KEYS, "", delimiter, None, 1000);
            assert_eq!(seen, all, "delimiter {delimiter:?}");
        }
    }

    #[test]
    fn url_encoding_survives_unquote_plus() {
        assert_eq!(url_encode("a b+c/d~e.f_g-h"), "a%20b%2Bc/d~e.f_g-h");
        assert_eq!(url_encode("é"), "%C3%A9");
    }

    #[test]
    fn continuation_tokens_round_trip() {
        for marker in ["", "a", "b/c d+é"] {
            assert_eq!(
                parse_continuation_token(&continuation_token(marker)).as_deref(),
                Some(marker)
            );
        }
        assert_eq!(parse_continuation_token("!!"), None);
    }
}
