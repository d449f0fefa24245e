//! Wildcard matching with `*` and `?`, as IAM uses it for actions, resources and `Like` operators.
//!
//! Patterns are compiled into tokens so that a literal `*` (from a `${*}` escape or from a substituted
//! policy variable) can never act as a wildcard.
//! A token is a `u16`: values 0..=255 are literal bytes, [`STAR`] and [`QUESTION`] are the wildcards.
//! Most patterns in real policies are exact strings, prefixes (`s3:Get*`) or suffixes, so [`Glob`]
//! keeps those as fast paths and uses the general backtracking matcher only for the rest.

use crate::keys::bytes_eq;

/// The token for `*`: any run of characters, including none.
pub(crate) const STAR: u16 = 256;
/// The token for `?`: exactly one character.
pub(crate) const QUESTION: u16 = 257;

/// Appends `text` to `out` with `*` and `?` as wildcards.
pub(crate) fn push_pattern_tokens(text: &str, out: &mut Vec<u16>) {
    out.extend(text.bytes().map(|b| match b {
        b'*' => STAR,
        b'?' => QUESTION,
        other => u16::from(other),
    }));
}

/// Appends `text` to `out` as literal bytes only.
pub(crate) fn push_literal_tokens(text: &str, out: &mut Vec<u16>) {
    out.extend(text.bytes().map(u16::from));
}

/// The length in bytes of the UTF-8 sequence that starts with `lead`.
///
/// The matcher works on bytes, but `?` and star backtracking must step over whole characters,
/// otherwise `?` could match half of a multi-byte character.
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Matches `text` against a token pattern.
///
/// This is the classic linear-space backtracking matcher that remembers only the last star;
/// it is correct for `*`/`?` globs because a later star can always absorb what an earlier one would.
pub(crate) fn match_tokens(pattern: &[u16], text: &[u8]) -> bool {
    let mut p = 0usize;
    let mut t = 0usize;
    let mut star_p: Option<usize> = None;
    let mut star_t = 0usize;
    while let Some(&byte) = text.get(t) {
        match pattern.get(p) {
            Some(&STAR) => {
                star_p = Some(p);
                star_t = t;
                p += 1;
                continue;
            }
            Some(&QUESTION) => {
                p += 1;
                t += utf8_len(byte);
                continue;
            }
            Some(&literal) if literal == u16::from(byte) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match star_p {
            Some(sp) => {
                p = sp + 1;
                star_t += text.get(star_t).map_or(1, |&b| utf8_len(b));
                t = star_t;
            }
            None => return false,
        }
    }
    while pattern.get(p) == Some(&STAR) {
        p += 1;
    }
    p == pattern.len()
}

/// A compiled wildcard pattern with fast paths for the common shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Glob {
    /// Only stars: matches everything.
    Any,
    /// No wildcards.
    Exact(Box<[u8]>),
    /// `literal*`.
    Prefix(Box<[u8]>),
    /// `*literal`.
    Suffix(Box<[u8]>),
    /// Stars and literals without `?`, such as `s3:*object*` or `log-group:/app*:log-stream:i-1`:
    /// the prefix and suffix are anchored and each middle literal is found leftmost, in order, between
    /// them. Greedy leftmost matching is exact for star-only globs, because a later star can always
    /// absorb what an earlier one skipped.
    Segments {
        prefix: Box<[u8]>,
        middles: Box<[Box<[u8]>]>,
        suffix: Box<[u8]>,
    },
    /// Anything else.
    Tokens(Box<[u16]>),
}

impl Glob {
    /// Compiles a pattern where `*` and `?` are wildcards.
    pub(crate) fn new(pattern: &str) -> Glob {
        let mut tokens = Vec::with_capacity(pattern.len());
        push_pattern_tokens(pattern, &mut tokens);
        Glob::from_tokens(tokens)
    }

    /// Compiles a token pattern, choosing the fastest representation.
    pub(crate) fn from_tokens(tokens: Vec<u16>) -> Glob {
        let n_stars = tokens.iter().filter(|&&t| t == STAR).count();
        let n_questions = tokens.iter().filter(|&&t| t == QUESTION).count();
        let literal = |slice: &[u16]| -> Box<[u8]> { slice.iter().map(|&t| (t & 0xFF) as u8).collect() };
        if n_stars == tokens.len() && n_stars > 0 {
            return Glob::Any;
        }
        if n_questions == 0 {
            if n_stars == 0 {
                return Glob::Exact(literal(&tokens));
            }
            if n_stars == 1 {
                if tokens.last() == Some(&STAR) {
                    return Glob::Prefix(literal(tokens.get(..tokens.len() - 1).unwrap_or_default()));
                }
                if tokens.first() == Some(&STAR) {
                    return Glob::Suffix(literal(tokens.get(1..).unwrap_or_default()));
                }
            }
            let mut pieces = tokens.split(|&t| t == STAR);
            let prefix = literal(pieces.next().unwrap_or_default());
            let mut middles: Vec<Box<[u8]>> = pieces.map(literal).collect();
            let suffix = middles.pop().unwrap_or_default();
            middles.retain(|m| !m.is_empty());
            return Glob::Segments {
                prefix,
                middles: middles.into_boxed_slice(),
                suffix,
            };
        }
        Glob::Tokens(tokens.into_boxed_slice())
    }

    /// Whether `text` matches. The shapes almost every pattern takes are tested inline; the
    /// general ones go through [`Glob::matches_general`].
    #[inline]
    pub(crate) fn matches(&self, text: &[u8]) -> bool {
        match self {
            Glob::Any => true,
            Glob::Exact(lit) => bytes_eq(lit, text),
            Glob::Prefix(lit) => text.get(..lit.len()).is_some_and(|head| bytes_eq(head, lit)),
            _ => self.matches_general(text),
        }
    }

    #[inline(never)]
    fn matches_general(&self, text: &[u8]) -> bool {
        match self {
            Glob::Any => true,
            Glob::Exact(lit) => bytes_eq(lit, text),
            Glob::Prefix(lit) => text.get(..lit.len()).is_some_and(|head| bytes_eq(head, lit)),
            Glob::Suffix(lit) => text
                .len()
                .checked_sub(lit.len())
                .and_then(|start| text.get(start..))
                .is_some_and(|tail| bytes_eq(tail, lit)),
            Glob::Segments {
                prefix,
                middles,
                suffix,
            } => {
                if text.len() < prefix.len() + suffix.len()
                    || !text.get(..prefix.len()).is_some_and(|head| bytes_eq(head, prefix))
                    || !text
                        .get(text.len() - suffix.len()..)
                        .is_some_and(|tail| bytes_eq(tail, suffix))
                {
                    return false;
                }
                let mut rest = text.get(prefix.len()..text.len() - suffix.len()).unwrap_or_default();
                for middle in middles.iter() {
                    match find(rest, middle) {
                        Some(at) => rest = rest.get(at + middle.len()..).unwrap_or_default(),
                        None => return false,
                    }
                }
                true
            }
            Glob::Tokens(tokens) => match_tokens(tokens, text),
        }
    }
}

/// The leftmost position of `needle` in `haystack`: a first-byte scan, enough for the short strings
/// IAM compares (actions, ARN parts, condition values).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let Some((&first, rest)) = needle.split_first() else {
        return Some(0);
    };
    let last_start = haystack.len().checked_sub(needle.len())?;
    let mut start = 0;
    while start <= last_start {
        let offset = haystack.get(start..=last_start)?.iter().position(|&b| b == first)?;
        let at = start + offset;
        if haystack
            .get(at + 1..at + needle.len())
            .is_some_and(|candidate| bytes_eq(candidate, rest))
        {
            return Some(at);
        }
        start = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything/at:all", true),
            ("a*", "a", true),
            ("a*", "ba", false),
            ("*a", "ba", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "aéc", true),
            ("a*b*c", "a-b-b-c", true),
            ("a*b*c", "a-b-b-", false),
            ("b/*/test/*", "b/1/2/test/3/o.jpg", true),
            ("*Object*", "GetObjectTagging", true),
            ("exact", "exact", true),
            ("exact", "exacT", false),
            ("??", "é", false),
            ("?", "é", true),
            ("**", "", true),
            ("*?", "", false),
            ("", "", true),
            ("", "x", false),
            ("*bc*", "abcd", true),
            ("*bc*", "bc", true),
            ("*bc*", "b", false),
            ("*bc*", "acbd", false),
            ("a*d", "abcd", true),
            ("a*d", "ad", true),
            ("ab*ba", "aba", false),
            ("ab*ba", "abba", true),
            ("s3:*object*", "s3:getobjecttagging", true),
            ("s3:*object*", "s3:listbucket", false),
            ("*é*", "aéb", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "ac", false),
            ("*a*b*", "xxbxa", false),
            ("*a*b*", "xaxb", true),
            ("a**b", "ab", true),
            ("abc*abc", "abc", false),
        ];
        for &(pattern, text, expected) in cases {
            assert_eq!(
                Glob::new(pattern).matches(text.as_bytes()),
                expected,
                "{pattern} vs {text}"
            );
            let mut tokens = Vec::new();
            push_pattern_tokens(pattern, &mut tokens);
            assert_eq!(
                match_tokens(&tokens, text.as_bytes()),
                expected,
                "tokens {pattern} vs {text}"
            );
        }
    }

    #[test]
    fn literal_tokens_never_wildcard() {
        let mut tokens = Vec::new();
        push_literal_tokens("a*", &mut tokens);
        assert!(match_tokens(&tokens, b"a*"));
        assert!(!match_tokens(&tokens, b"abc"));
    }
}
