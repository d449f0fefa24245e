//! Condition operators and their evaluation.
//!
//! Each `"<Operator>": {"<key>": values}` pair compiles to one [`Clause`].
//! Policy values are parsed once into the operator's type (number, date, CIDR, base64 bytes, glob),
//! so evaluation parses only the request's values.
//! Semantics (IAM User Guide, "Condition operators" and "multivalued context keys"):
//! clauses AND together; the policy values of one clause OR for positive operators and NOR for
//! negated ones; a missing key makes positive operators false and negated ones true, unless the
//! operator ends in `IfExists` (then the clause is true) or carries a set qualifier
//! (`ForAllValues`: true, `ForAnyValue`: false).

use std::net::IpAddr;

use base64::Engine;
use ipnet::IpNet;
use serde_json::Value;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::arn::{is_star, match_arn_tokens, pattern_tokens};
use crate::error::PolicyError;
use crate::glob::{Glob, match_tokens};
use crate::keys::{Interner, Key, Values};
use crate::template::Template;

/// The comparison family of an operator, with negation stripped off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpFamily {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    BinaryEquals,
    IpAddress,
    ArnLike,
    Null,
}

/// An ordering comparison for numeric and date operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn test<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

/// A set qualifier for multi-valued keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qualifier {
    None,
    ForAllValues,
    ForAnyValue,
}

/// A parsed operator name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operator {
    pub(crate) family: OpFamily,
    pub(crate) negated: bool,
    pub(crate) if_exists: bool,
    pub(crate) qualifier: Qualifier,
}

impl Operator {
    /// Parses `[ForAllValues:|ForAnyValue:]<Base>[IfExists]`.
    pub(crate) fn parse(name: &str) -> Option<Operator> {
        let (qualifier, rest) = if let Some(rest) = strip_prefix_ci(name, "ForAllValues:") {
            (Qualifier::ForAllValues, rest)
        } else if let Some(rest) = strip_prefix_ci(name, "ForAnyValue:") {
            (Qualifier::ForAnyValue, rest)
        } else {
            (Qualifier::None, name)
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        use Cmp::*;
        use OpFamily::*;
        let (family, negated) = match base {
            "StringEquals" => (StringEquals, false),
            "StringNotEquals" => (StringEquals, true),
            "StringEqualsIgnoreCase" => (StringEqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (StringEqualsIgnoreCase, true),
            "StringLike" => (StringLike, false),
            "StringNotLike" => (StringLike, true),
            "NumericEquals" => (Numeric(Eq), false),
            "NumericNotEquals" => (Numeric(Eq), true),
            "NumericLessThan" => (Numeric(Lt), false),
            "NumericLessThanEquals" => (Numeric(Le), false),
            "NumericGreaterThan" => (Numeric(Gt), false),
            "NumericGreaterThanEquals" => (Numeric(Ge), false),
            "DateEquals" => (Date(Eq), false),
            "DateNotEquals" => (Date(Eq), true),
            "DateLessThan" => (Date(Lt), false),
            "DateLessThanEquals" => (Date(Le), false),
            "DateGreaterThan" => (Date(Gt), false),
            "DateGreaterThanEquals" => (Date(Ge), false),
            "Bool" => (Bool, false),
            "BinaryEquals" => (BinaryEquals, false),
            "IpAddress" => (IpAddress, false),
            "NotIpAddress" => (IpAddress, true),
            "ArnEquals" | "ArnLike" => (ArnLike, false),
            "ArnNotEquals" | "ArnNotLike" => (ArnLike, true),
            "Null" => (Null, false),
            _ => return None,
        };
        if family == Null && (if_exists || qualifier != Qualifier::None) {
            // `NullIfExists` is meaningless and IAM rejects it.
            return None;
        }
        Some(Operator {
            family,
            negated,
            if_exists,
            qualifier,
        })
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

/// One compiled policy value.
#[derive(Debug, Clone, PartialEq)]
enum PolicyValue {
    /// For `StringEquals` and `Bool` (lower-cased for `Bool`).
    Text(Box<str>),
    /// Lower-cased, for `StringEqualsIgnoreCase`.
    LowerText(Box<str>),
    /// For `StringLike`.
    Glob(Glob),
    /// For `ArnLike`: glob tokens of the whole ARN.
    ArnTokens(Box<[u16]>),
    /// A string or ARN value with policy variables.
    Template(Template),
    Number(f64),
    Date(i128),
    Bytes(Box<[u8]>),
    Net(IpNet),
    /// For `Null`: `true` means "key must be absent".
    NullTest(bool),
    /// A value that did not parse for its operator: never matches.
    Invalid,
}

/// One compiled `"<Operator>": {"<key>": values}` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Clause {
    pub(crate) operator: Operator,
    /// The condition key, lower-cased.
    pub(crate) key: Key,
    values: Vec<PolicyValue>,
}

/// Converts a JSON scalar to the string IAM compares.
pub(crate) fn scalar_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Clause {
    /// Compiles one key's values for `operator`; `variables` enables `${...}` (2012-10-17 only).
    pub(crate) fn new(
        operator: Operator,
        key: &str,
        raw_values: &Value,
        variables: bool,
    ) -> Result<Clause, PolicyError> {
        let texts: Vec<String> = match raw_values {
            Value::Array(items) => items.iter().map(scalar_to_string).collect::<Option<Vec<_>>>(),
            scalar => scalar_to_string(scalar).map(|s| vec![s]),
        }
        .ok_or(PolicyError::Syntax)?;
        let values = texts
            .iter()
            .map(|text| compile_value(operator.family, text, variables))
            .collect();
        Ok(Clause {
            operator,
            key: Key::new(key.to_lowercase()),
            values,
        })
    }

    /// Interns the clause's key and the variable keys of its values.
    pub(crate) fn intern(&mut self, interner: &mut Interner) {
        self.key.intern(interner);
        for value in &mut self.values {
            if let PolicyValue::Template(template) = value {
                template.intern(interner);
            }
        }
    }

    /// The request's values for the key, `None` when absent or empty.
    #[inline]
    fn request_values<'c>(&self, ctx: &Values<'c>) -> Option<&'c [Box<str>]> {
        ctx.get(&self.key).filter(|values| !values.is_empty())
    }

    /// Records the key in `missing` exactly when [`Clause::evaluate`] would, without evaluating:
    /// for a statement whose earlier clause already failed.
    pub(crate) fn record_if_missing<'p>(&'p self, ctx: &Values<'_>, missing: &mut impl FnMut(&'p str)) {
        if self.operator.family != OpFamily::Null && self.request_values(ctx).is_none() {
            missing(&self.key.lower);
        }
    }

    /// Every key the clause reads (its own and its variables') with its interned id.
    pub(crate) fn interned_keys(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.key).chain(
            self.values
                .iter()
                .flat_map(|v| match v {
                    PolicyValue::Template(t) => Some(t.variables()),
                    _ => None,
                })
                .flatten(),
        )
    }

    /// Evaluates the clause; records the key in `missing` when the context lacks it.
    pub(crate) fn evaluate<'p>(
        &'p self,
        ctx: &Values<'_>,
        scratch: &mut Scratch,
        missing: &mut impl FnMut(&'p str),
    ) -> bool {
        let op = self.operator;
        let request_values = self.request_values(ctx);
        if op.family == OpFamily::Null {
            let absent = request_values.is_none();
            return self
                .values
                .iter()
                .any(|v| matches!(v, PolicyValue::NullTest(want_absent) if *want_absent == absent));
        }
        let Some(request_values) = request_values else {
            missing(&self.key.lower);
            if op.if_exists {
                return true;
            }
            return match op.qualifier {
                Qualifier::ForAllValues => true,
                Qualifier::ForAnyValue => false,
                Qualifier::None => op.negated,
            };
        };
        // A policy variable that cannot be resolved makes the statement invalid (IAM User Guide, "Policy
        // variables": "If AWS cannot resolve a variable this might cause the entire statement to be invalid"),
        // so the clause fails whatever its negation; without this a negated operator would turn an
        // unresolvable value into a match.
        if !self.variables_resolve(ctx, scratch) {
            return false;
        }
        // The per-request-value test: OR over policy values, negated (NOR) for negated operators.
        let mut test = |request_value: &str| self.any_value_matches(request_value, ctx, scratch) != op.negated;
        match op.qualifier {
            Qualifier::ForAllValues => request_values.iter().all(|v| test(v)),
            Qualifier::ForAnyValue => request_values.iter().any(|v| test(v)),
            Qualifier::None => {
                if op.negated {
                    request_values.iter().all(|v| test(v))
                } else {
                    request_values.iter().any(|v| test(v))
                }
            }
        }
    }

    /// Whether every policy variable in the clause's values resolves in `ctx`.
    fn variables_resolve(&self, ctx: &Values<'_>, scratch: &mut Scratch) -> bool {
        self.values.iter().all(|value| match value {
            PolicyValue::Template(template) => template.resolve_string(ctx, &mut scratch.text),
            _ => true,
        })
    }

    fn any_value_matches(&self, request_value: &str, ctx: &Values<'_>, scratch: &mut Scratch) -> bool {
        let family = self.operator.family;
        // Parse the request value once per clause, not once per policy value.
        let parsed = match family {
            OpFamily::Numeric(_) => Parsed::Number(parse_number(request_value)),
            OpFamily::Date(_) => Parsed::Date(parse_date(request_value)),
            OpFamily::IpAddress => Parsed::Ip(request_value.trim().parse::<IpAddr>().ok()),
            OpFamily::BinaryEquals => Parsed::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(request_value)
                    .unwrap_or_else(|_| request_value.as_bytes().to_vec()),
            ),
            OpFamily::StringEqualsIgnoreCase => Parsed::Lower(request_value.to_lowercase()),
            _ => Parsed::None,
        };
        self.values
            .iter()
            .any(|policy_value| match (policy_value, family, &parsed) {
                (PolicyValue::Text(p), OpFamily::StringEquals, _) => **p == *request_value,
                (PolicyValue::Text(p), OpFamily::Bool, _) => p.eq_ignore_ascii_case(request_value),
                (PolicyValue::LowerText(p), _, Parsed::Lower(r)) => **p == **r,
                (PolicyValue::Glob(g), _, _) => g.matches(request_value.as_bytes()),
                (PolicyValue::ArnTokens(t), _, _) => is_star(t) || match_arn_tokens(t, request_value),
                (PolicyValue::Template(template), _, _) => match family {
                    OpFamily::StringLike => {
                        template.resolve_tokens(ctx, &mut scratch.tokens)
                            && match_tokens(&scratch.tokens, request_value.as_bytes())
                    }
                    OpFamily::ArnLike => {
                        template.resolve_tokens(ctx, &mut scratch.tokens)
                            && (is_star(&scratch.tokens) || match_arn_tokens(&scratch.tokens, request_value))
                    }
                    OpFamily::StringEqualsIgnoreCase => {
                        template.resolve_string(ctx, &mut scratch.text)
                            && scratch.text.to_lowercase() == request_value.to_lowercase()
                    }
                    OpFamily::Bool => {
                        template.resolve_string(ctx, &mut scratch.text)
                            && scratch.text.eq_ignore_ascii_case(request_value)
                    }
                    _ => template.resolve_string(ctx, &mut scratch.text) && scratch.text == request_value,
                },
                (PolicyValue::Number(p), OpFamily::Numeric(cmp), Parsed::Number(Some(r))) => cmp.test(*r, *p),
                (PolicyValue::Date(p), OpFamily::Date(cmp), Parsed::Date(Some(r))) => cmp.test(*r, *p),
                (PolicyValue::Bytes(p), _, Parsed::Bytes(r)) => **p == **r,
                (PolicyValue::Net(net), _, Parsed::Ip(Some(ip))) => net.contains(ip),
                _ => false,
            })
    }

    /// The lower-cased keys this clause reads (its own key and any variable keys).
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&*self.key.lower).chain(
            self.values
                .iter()
                .flat_map(|v| match v {
                    PolicyValue::Template(t) => Some(t.variable_keys()),
                    _ => None,
                })
                .flatten(),
        )
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form every request's `aws:CurrentTime` takes, without the general
/// parsers: `None` for anything else (including values this form cannot hold), which then goes
/// through [`parse_date`]'s general path and gets the same answer.
fn parse_canonical_date(text: &str) -> Option<i128> {
    let bytes = text.as_bytes();
    if bytes.len() != 20
        || bytes.get(4) != Some(&b'-')
        || bytes.get(7) != Some(&b'-')
        || bytes.get(10) != Some(&b'T')
        || bytes.get(13) != Some(&b':')
        || bytes.get(16) != Some(&b':')
        || bytes.get(19) != Some(&b'Z')
    {
        return None;
    }
    let digit = |at: usize| -> Option<i64> {
        let byte = *bytes.get(at)?;
        byte.is_ascii_digit().then(|| i64::from(byte - b'0'))
    };
    let pair = |at: usize| Some(digit(at)? * 10 + digit(at + 1)?);
    let year = pair(0)? * 100 + pair(2)?;
    let (month, day) = (pair(5)?, pair(8)?);
    let (hour, minute, second) = (pair(11)?, pair(14)?, pair(17)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(i128::from(seconds) * 1_000_000_000)
}

/// A request value parsed for the clause's operator.
enum Parsed {
    None,
    Number(Option<f64>),
    Date(Option<i128>),
    Ip(Option<IpAddr>),
    Bytes(Vec<u8>),
    Lower(String),
}

/// Reusable buffers for resolving policy variables without allocating per value.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) tokens: Vec<u16>,
    pub(crate) text: String,
}

fn compile_value(family: OpFamily, text: &str, variables: bool) -> PolicyValue {
    let template = if variables
        && matches!(
            family,
            OpFamily::StringEquals
                | OpFamily::StringEqualsIgnoreCase
                | OpFamily::StringLike
                | OpFamily::ArnLike
                | OpFamily::Bool
        ) {
        Template::parse(text)
    } else {
        None
    };
    if let Some(template) = template {
        return PolicyValue::Template(template);
    }
    match family {
        OpFamily::StringEquals => PolicyValue::Text(text.into()),
        OpFamily::Bool => PolicyValue::Text(text.to_ascii_lowercase().into()),
        OpFamily::StringEqualsIgnoreCase => PolicyValue::LowerText(text.to_lowercase().into()),
        OpFamily::StringLike => PolicyValue::Glob(Glob::new(text)),
        OpFamily::ArnLike => PolicyValue::ArnTokens(pattern_tokens(text).into_boxed_slice()),
        OpFamily::Numeric(_) => parse_number(text).map_or(PolicyValue::Invalid, PolicyValue::Number),
        OpFamily::Date(_) => parse_date(text).map_or(PolicyValue::Invalid, PolicyValue::Date),
        OpFamily::BinaryEquals => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_or(PolicyValue::Invalid, |bytes| {
                PolicyValue::Bytes(bytes.into_boxed_slice())
            }),
        OpFamily::IpAddress => parse_net(text).map_or(PolicyValue::Invalid, PolicyValue::Net),
        OpFamily::Null => match text.to_ascii_lowercase().as_str() {
            "true" => PolicyValue::NullTest(true),
            "false" => PolicyValue::NullTest(false),
            _ => PolicyValue::Invalid,
        },
    }
}

/// Parses an integer or decimal; rejects NaN and infinities, which IAM never accepts.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Parses an ISO 8601 date/time (date-only means midnight UTC; no offset means UTC) or epoch seconds,
/// into nanoseconds since the epoch.
pub(crate) fn parse_date(text: &str) -> Option<i128> {
    let text = text.trim();
    if let Some(nanos) = parse_canonical_date(text) {
        return Some(nanos);
    }
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let seconds = text.parse::<f64>().ok().filter(|s| s.is_finite())?;
        return Some((seconds * 1e9) as i128);
    }
    if let Ok(dt) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(dt.unix_timestamp_nanos());
    }
    if let Ok(dt) = OffsetDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(dt.unix_timestamp_nanos());
    }
    if let Ok(dt) = PrimitiveDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(dt.assume_utc().unix_timestamp_nanos());
    }
    if let Ok(date) = Date::parse(text, &Iso8601::DEFAULT) {
        return Some(date.midnight().assume_utc().unix_timestamp_nanos());
    }
    None
}

/// Parses a CIDR block or a bare address (a /32 or /128 network).
pub(crate) fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(net.trunc());
    }
    text.parse::<IpAddr>().ok().map(IpNet::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;

    #[test]
    fn operator_parsing_table() {
        let ok = [
            "StringEquals",
            "ForAllValues:StringLikeIfExists",
            "forallvalues:StringEquals",
            "ForAnyValue:NotIpAddress",
            "ArnEquals",
            "NumericGreaterThanEqualsIfExists",
            "Null",
            "BinaryEquals",
            "DateNotEqualsIfExists",
        ];
        for name in ok {
            assert!(Operator::parse(name).is_some(), "{name}");
        }
        for name in [
            "StringEqual",
            "NullIfExists",
            "stringequals",
            "ForAllValues:Null",
            "IfExists",
            "",
        ] {
            assert!(Operator::parse(name).is_none(), "{name}");
        }
    }

    /// See: issue 3 (differential test, category `variables/2012-10-17/condition-missing/negated`).
    #[test]
    fn r3_unresolvable_variable_fails_negated_operators_too() {
        let operator = Operator::parse("StringNotEquals").unwrap();
        let clause = Clause::new(
            operator,
            "aws:ResourceTag/owner",
            &Value::from("${aws:PrincipalTag/team}"),
            true,
        )
        .unwrap();
        let mut ctx = Context::new();
        ctx.insert("aws:ResourceTag/owner", "blue");
        let mut scratch = Scratch::default();
        assert!(!clause.evaluate(&Values::new(&ctx), &mut scratch, &mut |_| {}));
        ctx.insert("aws:PrincipalTag/team", "red");
        assert!(clause.evaluate(&Values::new(&ctx), &mut scratch, &mut |_| {}));
        ctx.insert("aws:PrincipalTag/team", "blue");
        assert!(!clause.evaluate(&Values::new(&ctx), &mut scratch, &mut |_| {}));
    }

    #[test]
    fn date_parsing_table() {
        let cases: &[(&str, Option<i128>)] = &[
            ("2025-01-01T00:00:00Z", Some(1_735_689_600_000_000_000)),
            ("2025-01-01", Some(1_735_689_600_000_000_000)),
            ("2025-01-01T01:00:00+01:00", Some(1_735_689_600_000_000_000)),
            ("2025-01-01T00:00:00", Some(1_735_689_600_000_000_000)),
            ("1735689600", Some(1_735_689_600_000_000_000)),
            ("not a date", None),
        ];
        for &(text, expected) in cases {
            assert_eq!(parse_date(text), expected, "{text}");
        }
    }

    #[test]
    fn canonical_dates_parse_as_the_general_parser_does() {
        let general = |text: &str| {
            OffsetDateTime::parse(text, &Rfc3339)
                .ok()
                .map(|dt| dt.unix_timestamp_nanos())
        };
        for text in [
            "2026-05-01T12:00:00Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "2023-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2000-02-29T06:07:08Z",
            "1900-03-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2100-02-28T12:00:00Z",
        ] {
            assert_eq!(parse_canonical_date(text), general(text), "{text}");
            assert!(parse_canonical_date(text).is_some(), "{text}");
        }
        // Not in the fast form, or not a valid time: left to the general path.
        for text in [
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-10T00:00:00Z",
            "2026-05-32T00:00:00Z",
            "2026-05-01T24:00:00Z",
            "2026-05-01T12:60:00Z",
            "2026-05-01T12:00:60Z",
            "2026-05-01t12:00:00Z",
            "2026-05-01T12:00:00z",
            "2026-05-01T12:00:00+00:00",
            "2026-5-01T12:00:00Z",
            "+026-05-01T12:00:00Z",
        ] {
            assert_eq!(parse_canonical_date(text), None, "{text}");
        }
    }
}
