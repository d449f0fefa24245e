//! Policy variables: `${aws:username}`, `${key, 'default'}` and the `${*}`, `${?}`, `${$}` escapes.
//!
//! A [`Template`] is parsed once at policy-compile time (only for the 2012-10-17 language) and
//! resolved per request against the [`Context`].
//! Substituted text is always literal: a `*` inside a user name never becomes a wildcard, which is
//! why resolution produces glob tokens rather than a pattern string.
//! A variable whose key is missing (and has no default) or is multi-valued makes resolution fail;
//! the caller then treats that element as matching nothing.

use crate::glob::{push_literal_tokens, push_pattern_tokens};
use crate::keys::{Interner, Key, Values};

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Policy text, where `*` and `?` are wildcards for `Like`-style matching.
    Text(Box<str>),
    /// A literal character from an escape.
    Escape(char),
    /// A variable with its lower-cased key and optional default.
    Variable { key: Key, default: Option<Box<str>> },
}

/// A policy string containing at least one `${...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `text`; returns `None` when it contains no `${...}` at all, so callers keep their static fast path.
    pub(crate) fn parse(text: &str) -> Option<Template> {
        if !text.contains("${") {
            return None;
        }
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while let Some(start) = rest.find("${") {
            let (before, after_start) = rest.split_at(start);
            literal.push_str(before);
            let inner_and_rest = after_start.get(2..).unwrap_or_default();
            let Some(end) = inner_and_rest.find('}') else {
                // An unterminated `${` is plain text.
                literal.push_str(after_start);
                rest = "";
                break;
            };
            let (inner, after) = inner_and_rest.split_at(end);
            rest = after.get(1..).unwrap_or_default();
            let piece = match inner {
                "*" => Piece::Escape('*'),
                "?" => Piece::Escape('?'),
                "$" => Piece::Escape('$'),
                _ => parse_variable(inner),
            };
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal).into_boxed_str()));
            }
            pieces.push(piece);
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal.into_boxed_str()));
        }
        Some(Template { pieces })
    }

    /// Resolves into glob tokens: policy text keeps its wildcards, substitutions and escapes are literal.
    pub(crate) fn resolve_tokens(&self, ctx: &Values<'_>, out: &mut Vec<u16>) -> bool {
        out.clear();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => push_pattern_tokens(text, out),
                Piece::Escape(c) => {
                    let mut buf = [0u8; 4];
                    push_literal_tokens(c.encode_utf8(&mut buf), out);
                }
                Piece::Variable { key, default } => match lookup(ctx, key, default.as_deref()) {
                    Some(value) => push_literal_tokens(value, out),
                    None => return false,
                },
            }
        }
        true
    }

    /// Resolves into a plain string, for operators without wildcards (`StringEquals`, ...).
    pub(crate) fn resolve_string(&self, ctx: &Values<'_>, out: &mut String) -> bool {
        out.clear();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Escape(c) => out.push(*c),
                Piece::Variable { key, default } => match lookup(ctx, key, default.as_deref()) {
                    Some(value) => out.push_str(value),
                    None => return false,
                },
            }
        }
        true
    }

    /// Interns the variable keys.
    pub(crate) fn intern(&mut self, interner: &mut Interner) {
        for piece in &mut self.pieces {
            if let Piece::Variable { key, .. } = piece {
                key.intern(interner);
            }
        }
    }

    /// The variable keys with their interned ids.
    pub(crate) fn variables(&self) -> impl Iterator<Item = &Key> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Variable { key, .. } => Some(key),
            _ => None,
        })
    }

    /// The lower-cased context keys this template reads, for missing-context reporting.
    pub(crate) fn variable_keys(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Variable { key, .. } => Some(&*key.lower),
            _ => None,
        })
    }
}

/// Parses `key` or `key, 'default'` (whitespace around the comma is allowed).
fn parse_variable(inner: &str) -> Piece {
    let (key, default) = match inner.split_once(',') {
        Some((key, default_text)) => {
            let default_text = default_text.trim();
            let default = default_text
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .unwrap_or(default_text);
            (key.trim(), Some(default.to_owned().into_boxed_str()))
        }
        None => (inner.trim(), None),
    };
    Piece::Variable {
        key: Key::new(key.to_lowercase()),
        default,
    }
}

/// Looks up a single-valued key; multi-valued keys cannot be policy variables.
fn lookup<'r>(ctx: &'r Values<'_>, key: &Key, default: Option<&'r str>) -> Option<&'r str> {
    match ctx.get(key) {
        Some([single]) => Some(single),
        Some(_) => None,
        None => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;

    #[test]
    fn resolution_table() {
        let mut ctx = Context::new();
        ctx.insert("aws:username", "bob*")
            .insert_multi("aws:TagKeys", ["a", "b"]);
        let cases: &[(&str, Option<&str>)] = &[
            ("home/${aws:username}/x", Some("home/bob*/x")),
            ("${AWS:UserName}", Some("bob*")),
            ("${aws:PrincipalTag/team, 'company-wide'}", Some("company-wide")),
            ("${aws:PrincipalTag/team,'x y'}", Some("x y")),
            ("${aws:username, 'unused'}", Some("bob*")),
            ("a${*}b${?}c${$}", Some("a*b?c$")),
            ("${aws:missing}", None),
            ("${aws:TagKeys}", None),
            ("open ${ brace", Some("open ${ brace")),
        ];
        for &(text, expected) in cases {
            let template = Template::parse(text).unwrap();
            let mut out = String::new();
            let ok = template.resolve_string(&Values::new(&ctx), &mut out);
            assert_eq!(ok.then_some(out.as_str()), expected, "{text}");
        }
        assert!(Template::parse("no variables").is_none());
    }

    #[test]
    fn substituted_text_is_literal_in_tokens() {
        let mut ctx = Context::new();
        ctx.insert("aws:username", "*");
        let template = Template::parse("home/${aws:username}/*").unwrap();
        let mut tokens = Vec::new();
        assert!(template.resolve_tokens(&Values::new(&ctx), &mut tokens));
        assert!(crate::glob::match_tokens(&tokens, b"home/*/anything"));
        assert!(!crate::glob::match_tokens(&tokens, b"home/alice/anything"));
    }
}
