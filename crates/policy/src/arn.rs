//! ARN patterns as IAM matches them in `Resource`, `NotResource` and the `Arn*` condition operators.
//!
//! An ARN is split into six parts on its first five colons
//! (`arn:partition:service:region:account:resource`).
//! The first five parts are globbed segment by segment, so a `*` there never crosses a colon;
//! the resource part is globbed as a whole, so a `*` there crosses `/` and `:`.
//! Patterns are split once at compile time; the request ARN is split once per evaluation.

use crate::glob::{Glob, STAR, match_tokens, push_pattern_tokens};
use crate::keys::bytes_eq;
use crate::keys::{Interner, Values};
use crate::template::Template;

/// Splits an ARN into its six parts, or `None` when it has fewer than five colons.
pub(crate) fn split_arn(arn: &str) -> Option<[&str; 6]> {
    // A byte loop: `:` is ASCII, so every split point is a character boundary.
    let mut colons = [0usize; 5];
    let mut found = 0;
    for (index, byte) in arn.bytes().enumerate() {
        if byte == b':' {
            if let Some(slot) = colons.get_mut(found) {
                *slot = index;
            }
            found += 1;
            if found == 5 {
                break;
            }
        }
    }
    if found < 5 {
        return None;
    }
    let [a, b, c, d, e] = colons;
    Some([
        arn.get(..a)?,
        arn.get(a + 1..b)?,
        arn.get(b + 1..c)?,
        arn.get(c + 1..d)?,
        arn.get(d + 1..e)?,
        arn.get(e + 1..)?,
    ])
}

/// The resource part of a pattern: static, or with policy variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// No variables: compiled once.
    Static(Glob),
    /// Contains `${...}`: resolved per request.
    Dynamic(Template),
}

impl Part {
    fn new(text: &str, variables: bool) -> Part {
        if variables && let Some(template) = Template::parse(text) {
            return Part::Dynamic(template);
        }
        Part::Static(Glob::new(text))
    }

    fn matches(&self, text: &str, ctx: &Values<'_>, scratch: &mut Vec<u16>) -> bool {
        match self {
            Part::Static(glob) => glob.matches(text.as_bytes()),
            Part::Dynamic(template) => template.resolve_tokens(ctx, scratch) && match_tokens(scratch, text.as_bytes()),
        }
    }
}

/// A compiled ARN pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArnPattern {
    /// `*`: every resource, including requests without a resource.
    Any,
    /// A six-part ARN pattern.
    Arn {
        segments: Box<[Glob; 5]>,
        resource: Part,
        /// `arn:partition:service:region:account:` when none of those five parts has a wildcard:
        /// since a part never holds a colon, a request ARN's first five parts equal the pattern's
        /// exactly when the request starts with this text, so one comparison replaces five globs.
        literal_head: Option<Box<[u8]>>,
    },
    /// Not an ARN (fewer than five colons): globbed against the whole request string.
    Whole(Part),
}

impl ArnPattern {
    /// Compiles `pattern`; `variables` enables `${...}` in the resource part (2012-10-17 only).
    pub(crate) fn new(pattern: &str, variables: bool) -> ArnPattern {
        if pattern == "*" {
            return ArnPattern::Any;
        }
        match split_arn(pattern) {
            Some([a, b, c, d, e, resource]) => {
                let segments = Box::new([Glob::new(a), Glob::new(b), Glob::new(c), Glob::new(d), Glob::new(e)]);
                let literal_head = segments
                    .iter()
                    .all(|glob| matches!(glob, Glob::Exact(_)))
                    .then(|| {
                        pattern
                            .get(..pattern.len() - resource.len())
                            .map(|head| Box::from(head.as_bytes()))
                    })
                    .flatten();
                ArnPattern::Arn {
                    segments,
                    resource: Part::new(resource, variables),
                    literal_head,
                }
            }
            None => ArnPattern::Whole(Part::new(pattern, variables)),
        }
    }

    /// Matches a request resource; `split` is `split_arn(resource)` computed once by the caller.
    pub(crate) fn matches(
        &self,
        resource: &str,
        split: Option<&[&str; 6]>,
        ctx: &Values<'_>,
        scratch: &mut Vec<u16>,
    ) -> bool {
        match self {
            ArnPattern::Any => true,
            ArnPattern::Arn {
                segments,
                resource: part,
                literal_head,
            } => match split {
                Some(parts) => {
                    if let Some(head) = literal_head {
                        // The request's resource part starts right after its fifth colon, so its
                        // head is everything before the resource part.
                        return resource
                            .len()
                            .checked_sub(parts[5].len())
                            .and_then(|head_len| resource.as_bytes().get(..head_len))
                            .is_some_and(|text| bytes_eq(text, head))
                            && part.matches(parts[5], ctx, scratch);
                    }
                    // The service segment and a static resource part reject most mismatches, so test them first.
                    let segments_match = || {
                        segments
                            .iter()
                            .zip(parts.iter())
                            .all(|(glob, text)| glob.matches(text.as_bytes()))
                    };
                    match part {
                        Part::Static(glob) => {
                            segments[2].matches(parts[2].as_bytes())
                                && glob.matches(parts[5].as_bytes())
                                && segments_match()
                        }
                        Part::Dynamic(_) => segments_match() && part.matches(parts[5], ctx, scratch),
                    }
                }
                None => false,
            },
            ArnPattern::Whole(part) => part.matches(resource, ctx, scratch),
        }
    }

    /// Interns the variable keys of the resource part.
    pub(crate) fn intern(&mut self, interner: &mut Interner) {
        if let ArnPattern::Arn {
            resource: Part::Dynamic(template),
            ..
        }
        | ArnPattern::Whole(Part::Dynamic(template)) = self
        {
            template.intern(interner);
        }
    }

    /// The template of the resource part, if it has variables.
    pub(crate) fn template(&self) -> Option<&Template> {
        match self {
            ArnPattern::Any => None,
            ArnPattern::Arn { resource: part, .. } | ArnPattern::Whole(part) => match part {
                Part::Dynamic(t) => Some(t),
                Part::Static(_) => None,
            },
        }
    }
}

/// Matches an ARN given as glob tokens (a resolved `ArnLike` value with variables) against `text`.
pub(crate) fn match_arn_tokens(pattern: &[u16], text: &str) -> bool {
    let Some(parts) = split_arn(text) else {
        return false;
    };
    let colon = u16::from(b':');
    let mut rest = pattern;
    for part in parts.iter().take(5) {
        let Some(end) = rest.iter().position(|&t| t == colon) else {
            return false;
        };
        let (segment, after) = rest.split_at(end);
        if !match_tokens(segment, part.as_bytes()) {
            return false;
        }
        rest = after.get(1..).unwrap_or_default();
    }
    match_tokens(rest, parts[5].as_bytes())
}

/// Glob tokens for a static pattern string (used for `ArnLike` values).
pub(crate) fn pattern_tokens(text: &str) -> Vec<u16> {
    let mut out = Vec::with_capacity(text.len());
    push_pattern_tokens(text, &mut out);
    out
}

/// Whether a token pattern is a lone `*`.
pub(crate) fn is_star(tokens: &[u16]) -> bool {
    tokens == [STAR]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;

    #[test]
    fn resource_matching_table() {
        let context = Context::new();
        let ctx = Values::new(&context);
        let cases: &[(&str, &str, bool)] = &[
            ("*", "arn:aws:s3:::b/k", true),
            ("*", "*", true),
            ("arn:aws:s3:::b/*/test/*", "arn:aws:s3:::b/1/2/test/3/o.jpg", true),
            ("arn:aws:s3:::bucket*", "arn:aws:s3:::bucket/key", true),
            ("arn:aws:s3:::bucket", "arn:aws:s3:::bucket/key", false),
            ("arn:aws:s3:::Bucket", "arn:aws:s3:::bucket", false),
            ("arn:aws:s3:*:*:b", "arn:aws:s3:::b", true),
            ("arn:aws:s3:us-*::b", "arn:aws:s3:::b", false),
            (
                "arn:aws:*:us-east-1:123456789012:*",
                "arn:aws:sqs:us-east-1:123456789012:q",
                true,
            ),
            (
                "arn:aws:*:us-east-1:123456789012:*",
                "arn:aws:sqs:us-east-2:123456789012:q",
                false,
            ),
            // A pattern with fewer than five colons is globbed as a whole string.
            ("arn:*", "arn:aws:sqs:us-east-2:123456789012:q", true),
            ("arn:*:*:*:*:*", "arn:aws:sqs:us-east-2:123456789012:q", true),
            (
                "arn:aws:logs:*:*:log-group:/app/*:*",
                "arn:aws:logs:us-east-1:1:log-group:/app/w:log-stream:i",
                true,
            ),
            ("arn:aws:iam::*:role/x", "arn:aws:iam::123:role/x", true),
            ("arn:aws:s3:::*", "*", false),
            // Literal heads: every part before the resource must match exactly, and only those parts.
            ("arn:aws:s3:::b", "arn:aws:s3:::b", true),
            ("arn:aws:s3:::b", "arn:aws:s3::1:b", false),
            ("arn:aws:s3:::b:c", "arn:aws:s3:::b:c", true),
            ("arn:aws:s3:::b*", "arn:aws:s3:::b:c:d", true),
            ("arn:aws:s3:::b*", "arn:aws:s3::::b", false),
            ("arn:aws:sqs:us-east-1:123:q", "arn:aws:sqs:us-east-1:123:q", true),
            ("arn:aws:sqs:us-east-1:123:q", "arn:aws:sqs:us-east-1:1234:q", false),
            ("arn:aws:sqs:us-east-1:123:q", "arn:aws:sqs:us-east-1:12:3:q", false),
            ("arn:aws:sqs:us-east-1:123:*", "arn:aws:sqs:us-east-1:123:", true),
            ("arn:aws:sqs:us-east-1:123:*", "ARN:aws:sqs:us-east-1:123:q", false),
        ];
        let mut scratch = Vec::new();
        for &(pattern, resource, expected) in cases {
            let compiled = ArnPattern::new(pattern, true);
            let split = split_arn(resource);
            assert_eq!(
                compiled.matches(resource, split.as_ref(), &ctx, &mut scratch),
                expected,
                "{pattern} vs {resource}"
            );
        }
    }

    #[test]
    fn arn_tokens_glob_per_segment() {
        assert!(match_arn_tokens(
            &pattern_tokens("arn:aws:iam::*:role/*"),
            "arn:aws:iam::1:role/a/b"
        ));
        assert!(!match_arn_tokens(
            &pattern_tokens("arn:aws:iam::*:role/*"),
            "arn:aws:iam:x:1:role/a"
        ));
        assert!(!match_arn_tokens(&pattern_tokens("arn:aws:*"), "arn:aws:iam::1:role/a"));
        assert!(!match_arn_tokens(&pattern_tokens("*"), "not-an-arn"));
    }
}
