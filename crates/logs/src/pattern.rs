//! CloudWatch Logs filter patterns: a parser and a matcher, pure and allocation-light.
//!
//! The syntax is the one of the CloudWatch Logs User Guide, digested in
//! `shared/specs/logs-filter-patterns.md`: term patterns (`ERROR -ARGUMENTS`, `?WARN`, quoted
//! phrases), JSON patterns (`{ $.a.b = "x*" && $.n > 3 }`), space-delimited patterns
//! (`[ip, ..., status = 4*, bytes > 1000]`) and regex patterns (`%AUTHORIZED%`).
//!
//! A key design decision: a pattern is compiled once ([`FilterPattern::parse`]) into a form that
//! matches an event without allocating in the common case, because `FilterLogEvents` and metric
//! filters run one pattern over millions of events.
//! - Terms are searched with precompiled `memmem` finders.
//! - JSON patterns never build a `serde_json::Value`: the distinct selectors of the pattern form
//!   a trie, and one pass of a small validating JSON scanner ([`JsonScanner`]) walks the message,
//!   skipping every subtree no selector reaches and recording only the scalars the selectors name.
//!   Messages that do not start with `{` are rejected before any scanning.
//! - Space-delimited patterns split the message into at most a stack-allocated array of field
//!   spans and bind pattern fields to them positionally.
//!
//! Points the AWS documentation leaves open are decided as the spec's **(calibrate)** notes say:
//! unquoted terms match whole tokens; absent JSON paths fail every comparison; a short
//! space-delimited pattern without `...` lets its last field take the rest of the line.

use memchr::memmem;
use regex::Regex;
use smallvec::SmallVec;
use std::collections::BTreeMap;

/// Why a pattern was rejected; the service reports it as `InvalidParameterException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid filter pattern: {0}")]
pub struct PatternError(pub String);

fn invalid<T>(why: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError(why.into()))
}

/// The longest pattern AWS accepts.
pub const MAX_PATTERN_LEN: usize = 1024;

/// A compiled filter pattern.
#[derive(Debug, Clone)]
pub struct FilterPattern {
    source: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// The empty pattern or a quoted blank: every event matches.
    All,
    Terms(TermPattern),
    Json(JsonPattern),
    Delimited(DelimitedPattern),
    Regex(Regex),
}

/// Which family a pattern belongs to; metric filter dimensions need JSON or space-delimited ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFamily {
    /// Matches everything.
    All,
    /// Terms and phrases.
    Terms,
    /// `{ ... }`.
    Json,
    /// `[ ... ]`.
    Delimited,
    /// `%...%`.
    Regex,
}

impl FilterPattern {
    /// Compiles a pattern.
    ///
    /// # Errors
    /// [`PatternError`] when the text is not a valid pattern of its family.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.len() > MAX_PATTERN_LEN {
            return invalid("pattern is longer than 1024 characters");
        }
        let trimmed = text.trim();
        let kind = if trimmed.is_empty() || is_quoted_blank(trimmed) {
            Kind::All
        } else if trimmed.starts_with('{') {
            Kind::Json(JsonPattern::parse(trimmed)?)
        } else if trimmed.starts_with('[') {
            Kind::Delimited(DelimitedPattern::parse(trimmed)?)
        } else if trimmed.len() >= 2 && trimmed.starts_with('%') && trimmed.ends_with('%') {
            let body = trimmed.get(1..trimmed.len() - 1).unwrap_or_default();
            Kind::Regex(compile_regex(body)?)
        } else {
            Kind::Terms(TermPattern::parse(trimmed)?)
        };
        Ok(Self {
            source: text.to_owned(),
            kind,
        })
    }

    /// The pattern text as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The pattern's family.
    pub fn family(&self) -> PatternFamily {
        match self.kind {
            Kind::All => PatternFamily::All,
            Kind::Terms(_) => PatternFamily::Terms,
            Kind::Json(_) => PatternFamily::Json,
            Kind::Delimited(_) => PatternFamily::Delimited,
            Kind::Regex(_) => PatternFamily::Regex,
        }
    }

    /// Whether the event message matches.
    pub fn matches(&self, message: &str) -> bool {
        match &self.kind {
            Kind::All => true,
            Kind::Terms(p) => p.matches(message),
            Kind::Json(p) => p.matches(message),
            Kind::Delimited(p) => p.bind(message).is_some(),
            Kind::Regex(r) => r.is_match(message),
        }
    }

    /// Matches and, for space-delimited patterns, returns the extracted `$field` values
    /// (`TestMetricFilter.extractedValues`); `None` when the event does not match.
    pub fn match_extract(&self, message: &str) -> Option<BTreeMap<String, String>> {
        match &self.kind {
            Kind::Delimited(p) => {
                let spans = p.bind(message)?;
                let mut out = BTreeMap::new();
                for (name, span) in spans {
                    out.insert(
                        format!("${name}"),
                        message.get(span.0..span.1).unwrap_or_default().to_owned(),
                    );
                }
                Some(out)
            }
            _ => self.matches(message).then(BTreeMap::new),
        }
    }

    /// The number of regexes in the pattern (AWS allows at most 2 per pattern).
    pub fn regex_count(&self) -> usize {
        match &self.kind {
            Kind::Regex(_) => 1,
            Kind::Json(p) => p.regex_count,
            Kind::Delimited(p) => p.regex_count,
            _ => 0,
        }
    }
}

fn is_quoted_blank(text: &str) -> bool {
    text.len() >= 2 && text.starts_with('"') && text.ends_with('"') && text[1..text.len() - 1].trim().is_empty()
}

/// Compiles a `%...%` regex body after checking the characters AWS allows.
fn compile_regex(body: &str) -> Result<Regex, PatternError> {
    if body.is_empty() {
        return invalid("empty regex");
    }
    for c in body.chars() {
        let allowed = c.is_ascii_alphanumeric() || "_#=@/;,-:^$?[]{}|\\*+. ".contains(c);
        if !allowed {
            return invalid(format!("character '{c}' is not allowed in a regex"));
        }
    }
    Regex::new(body).map_err(|e| PatternError(format!("bad regex: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Text matching shared by the families.

/// A string value with `*` wildcards, compiled into literal pieces.
#[derive(Debug, Clone)]
struct Glob {
    /// The literal pieces between stars.
    pieces: Vec<Vec<u8>>,
    /// Whether the value starts with `*`.
    open_start: bool,
    /// Whether the value ends with `*`.
    open_end: bool,
}

impl Glob {
    fn new(text: &str) -> Self {
        let pieces: Vec<Vec<u8>> = text.split('*').map(|p| p.as_bytes().to_vec()).collect();
        Self {
            open_start: text.starts_with('*'),
            open_end: text.ends_with('*'),
            pieces: pieces.into_iter().filter(|p| !p.is_empty()).collect(),
        }
    }

    fn is_star(&self) -> bool {
        self.pieces.is_empty() && self.open_start
    }

    fn matches(&self, text: &[u8]) -> bool {
        let n = self.pieces.len();
        if n == 0 {
            return self.open_start || text.is_empty();
        }
        if !self.open_start && !self.open_end && n == 1 {
            return self.pieces.first().is_some_and(|p| p.as_slice() == text);
        }
        let mut rest = text;
        for (i, piece) in self.pieces.iter().enumerate() {
            let first = i == 0;
            let last = i + 1 == n;
            if first && !self.open_start {
                match rest.strip_prefix(piece.as_slice()) {
                    Some(r) => rest = r,
                    None => return false,
                }
                if last && !self.open_end {
                    return rest.is_empty();
                }
                continue;
            }
            if last && !self.open_end {
                return rest.len() >= piece.len() && rest.ends_with(piece);
            }
            match memmem::find(rest, piece) {
                Some(at) => rest = rest.get(at + piece.len()..).unwrap_or_default(),
                None => return false,
            }
        }
        true
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

// ---------------------------------------------------------------------------------------------
// Term patterns.

#[derive(Debug, Clone)]
struct Term {
    finder: memmem::Finder<'static>,
    /// Unquoted terms match whole tokens only.
    whole_token: bool,
}

impl Term {
    fn new(text: &str, quoted: bool) -> Self {
        Self {
            finder: memmem::Finder::new(text.as_bytes()).into_owned(),
            whole_token: !quoted,
        }
    }

    fn found_in(&self, haystack: &[u8]) -> bool {
        if !self.whole_token {
            return self.finder.find(haystack).is_some();
        }
        let needle = self.finder.needle();
        let starts_word = needle.first().is_some_and(|b| is_word_byte(*b));
        let ends_word = needle.last().is_some_and(|b| is_word_byte(*b));
        for at in self.finder.find_iter(haystack) {
            let before_ok = !starts_word || at == 0 || haystack.get(at - 1).is_none_or(|b| !is_word_byte(*b));
            let after_ok = !ends_word || haystack.get(at + needle.len()).is_none_or(|b| !is_word_byte(*b));
            if before_ok && after_ok {
                return true;
            }
        }
        false
    }
}

#[derive(Debug, Clone, Default)]
struct TermPattern {
    required: Vec<Term>,
    any_of: Vec<Term>,
    excluded: Vec<Term>,
}

impl TermPattern {
    fn parse(text: &str) -> Result<Self, PatternError> {
        let mut out = Self::default();
        let mut chars = text.char_indices().peekable();
        while let Some(&(start, c)) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
                continue;
            }
            let mut modifier = None;
            if c == '?' || c == '-' {
                modifier = Some(c);
                chars.next();
            }
            let (word, quoted) = match chars.peek() {
                Some(&(_, '"')) => {
                    chars.next();
                    let mut word = String::new();
                    let mut closed = false;
                    while let Some((_, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, escaped)) = chars.next() {
                                    word.push(escaped);
                                }
                            }
                            '"' => {
                                closed = true;
                                break;
                            }
                            other => word.push(other),
                        }
                    }
                    if !closed {
                        return invalid(format!("unterminated quote at {start}"));
                    }
                    (word, true)
                }
                _ => {
                    let mut word = String::new();
                    while let Some(&(_, c)) = chars.peek() {
                        if c.is_whitespace() {
                            break;
                        }
                        word.push(c);
                        chars.next();
                    }
                    (word, false)
                }
            };
            if word.is_empty() {
                if quoted {
                    continue;
                }
                return invalid("empty term");
            }
            let term = Term::new(&word, quoted);
            match modifier {
                Some('?') => out.any_of.push(term),
                Some(_) => out.excluded.push(term),
                None => out.required.push(term),
            }
        }
        Ok(out)
    }

    fn matches(&self, message: &str) -> bool {
        let hay = message.as_bytes();
        self.required.iter().all(|t| t.found_in(hay))
            && (self.any_of.is_empty() || self.any_of.iter().any(|t| t.found_in(hay)))
            && !self.excluded.iter().any(|t| t.found_in(hay))
    }
}

// ---------------------------------------------------------------------------------------------
// Values shared by JSON and space-delimited conditions.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl Op {
    fn numeric(self, left: f64, right: f64) -> bool {
        match self {
            Op::Eq => left == right,
            Op::Ne => left != right,
            Op::Lt => left < right,
            Op::Gt => left > right,
            Op::Le => left <= right,
            Op::Ge => left >= right,
        }
    }
}

#[derive(Debug, Clone)]
enum Value {
    /// A number (bare digits, sign, fraction, exponent).
    Number(f64),
    /// Text, possibly with `*` wildcards.
    Text(Glob),
    /// `%regex%`.
    Regex(Regex),
}

fn parse_number(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits_start = i;
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if i == digits_start {
        return None;
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        let frac = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == frac {
            return None;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp {
            return None;
        }
    }
    if i != bytes.len() {
        return None;
    }
    text.trim_start_matches('+').parse().ok()
}

/// Tests `text` (a field value, or a JSON scalar's text) against `op value`.
fn compare_text(op: Op, value: &Value, text: &[u8]) -> bool {
    match value {
        Value::Number(n) => {
            let parsed = std::str::from_utf8(text).ok().and_then(parse_number);
            match parsed {
                Some(field) => op.numeric(field, *n),
                None => false,
            }
        }
        Value::Text(glob) => {
            let hit = glob.matches(text);
            match op {
                Op::Eq => hit,
                Op::Ne => !hit,
                _ => false,
            }
        }
        Value::Regex(re) => {
            let hit = std::str::from_utf8(text).is_ok_and(|t| re.is_match(t));
            match op {
                Op::Eq => hit,
                Op::Ne => !hit,
                _ => false,
            }
        }
    }
}

/// A small cursor over pattern text, shared by the JSON and space-delimited parsers.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or_default()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        let rest = self.rest();
        if rest.len() >= word.len()
            && rest.get(..word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word))
            && rest.as_bytes().get(word.len()).is_none_or(|b| !is_word_byte(*b))
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.rest().is_empty()
    }

    fn op(&mut self) -> Option<Op> {
        self.skip_ws();
        for (token, op) in [
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if self.rest().starts_with(token) {
                self.pos += token.len();
                return Some(op);
            }
        }
        None
    }

    /// A condition value: `"quoted"`, `%regex%`, or a bare run ended by whitespace or a stop char.
    fn value(&mut self, stops: &str, regex_count: &mut usize) -> Result<Value, PatternError> {
        self.skip_ws();
        let rest = self.rest();
        if let Some(body) = rest.strip_prefix('"') {
            let mut text = String::new();
            let mut escaped = false;
            for (i, c) in body.char_indices() {
                if escaped {
                    text.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    self.pos += 1 + i + 1;
                    return Ok(Value::Text(Glob::new(&text)));
                } else {
                    text.push(c);
                }
            }
            return invalid("unterminated quoted value");
        }
        if let Some(body) = rest.strip_prefix('%') {
            let Some(end) = body.find('%') else {
                return invalid("unterminated regex");
            };
            let re = compile_regex(body.get(..end).unwrap_or_default())?;
            *regex_count += 1;
            if *regex_count > 2 {
                return invalid("at most 2 regexes per pattern");
            }
            self.pos += 1 + end + 1;
            return Ok(Value::Regex(re));
        }
        let len = rest
            .find(|c: char| c.is_whitespace() || stops.contains(c) || c == '"')
            .unwrap_or(rest.len());
        if len == 0 {
            return invalid(format!("missing value at {}", self.pos));
        }
        let bare = rest.get(..len).unwrap_or_default();
        self.pos += len;
        Ok(match parse_number(bare) {
            Some(n) => Value::Number(n),
            None => Value::Text(Glob::new(bare)),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// JSON patterns.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone)]
enum Test {
    Compare(Op, Value),
    IsNull,
    IsTrue,
    IsFalse,
    NotExists,
}

#[derive(Debug, Clone)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    /// A test of the selector with this slot number.
    Test(usize, Test),
}

/// A node of the selector trie: where the scanner must descend and which slots end here.
#[derive(Debug, Clone, Default)]
struct TrieNode {
    keys: Vec<(Vec<u8>, usize)>,
    indexes: Vec<(usize, usize)>,
    /// The slot of the selector that ends at this node, if any.
    slot: Option<usize>,
}

#[derive(Debug, Clone)]
struct JsonPattern {
    expr: Expr,
    /// Node 0 is the root object.
    trie: Vec<TrieNode>,
    slots: usize,
    regex_count: usize,
}

/// What a selector found in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found<'m> {
    /// A string, still JSON-escaped when `escaped`.
    Str(&'m [u8], bool),
    /// A number's text.
    Num(&'m [u8]),
    True,
    False,
    Null,
    /// An object or array: never matches.
    Compound,
}

/// Slots on the stack for up to 16 distinct selectors, so matching does not allocate.
type Slots<'m> = SmallVec<[Option<Found<'m>>; 16]>;

impl JsonPattern {
    fn parse(text: &str) -> Result<Self, PatternError> {
        let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
            return invalid("a JSON pattern must be enclosed in { }");
        };
        let mut parser = JsonParser {
            cursor: Cursor::new(inner),
            trie: vec![TrieNode::default()],
            slots: 0,
            regex_count: 0,
            depth: 0,
        };
        let expr = parser.or_expr()?;
        if !parser.cursor.at_end() {
            return invalid(format!("unexpected text '{}'", parser.cursor.rest()));
        }
        Ok(Self {
            expr,
            trie: parser.trie,
            slots: parser.slots,
            regex_count: parser.regex_count,
        })
    }

    fn matches(&self, message: &str) -> bool {
        let bytes = message.as_bytes();
        let start = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(bytes.len());
        if bytes.get(start) != Some(&b'{') {
            return false;
        }
        let mut slots: Slots<'_> = SmallVec::from_elem(None, self.slots);
        let mut scanner = JsonScanner {
            bytes,
            pos: start,
            trie: &self.trie,
            depth: 0,
        };
        if scanner.value(Some(0), &mut slots).is_none() {
            return false;
        }
        scanner.skip_ws();
        if scanner.pos != bytes.len() {
            return false;
        }
        eval(&self.expr, &slots)
    }
}

fn eval(expr: &Expr, slots: &[Option<Found<'_>>]) -> bool {
    match expr {
        Expr::Or(items) => items.iter().any(|e| eval(e, slots)),
        Expr::And(items) => items.iter().all(|e| eval(e, slots)),
        Expr::Test(slot, test) => {
            let found = slots.get(*slot).copied().flatten();
            match (test, found) {
                (Test::NotExists, None) => true,
                (_, None | Some(Found::Compound)) => false,
                (Test::NotExists, Some(_)) => false,
                (Test::IsNull, Some(f)) => f == Found::Null,
                (Test::IsTrue, Some(f)) => f == Found::True,
                (Test::IsFalse, Some(f)) => f == Found::False,
                (Test::Compare(op, value), Some(f)) => compare_found(*op, value, f),
            }
        }
    }
}

fn compare_found(op: Op, value: &Value, found: Found<'_>) -> bool {
    if let Value::Text(glob) = value
        && glob.is_star()
    {
        // `= *` means "present with any scalar value".
        return op == Op::Eq;
    }
    match found {
        Found::Str(raw, false) => compare_text(op, value, raw),
        Found::Str(raw, true) => {
            let text = unescape_json(raw);
            compare_text(op, value, text.as_bytes())
        }
        Found::Num(raw) => compare_text(op, value, raw),
        Found::True => compare_text(op, value, b"true"),
        Found::False => compare_text(op, value, b"false"),
        Found::Null => compare_text(op, value, b"null"),
        Found::Compound => false,
    }
}

/// Decodes a JSON string body (without quotes) that contains escapes.
fn unescape_json(raw: &[u8]) -> String {
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted).unwrap_or_default()
}

struct JsonParser<'a> {
    cursor: Cursor<'a>,
    trie: Vec<TrieNode>,
    slots: usize,
    regex_count: usize,
    depth: usize,
}

/// The deepest parenthesis nesting a pattern may use, so parsing cannot exhaust the stack.
const MAX_NESTING: usize = 64;

impl JsonParser<'_> {
    fn or_expr(&mut self) -> Result<Expr, PatternError> {
        let mut items = vec![self.and_expr()?];
        while self.cursor.eat("||") {
            items.push(self.and_expr()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, PatternError> {
        let mut items = vec![self.unary()?];
        while self.cursor.eat("&&") {
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, PatternError> {
        if self.cursor.eat("(") {
            self.depth += 1;
            if self.depth > MAX_NESTING {
                return invalid("parentheses nested too deeply");
            }
            let inner = self.or_expr()?;
            if !self.cursor.eat(")") {
                return invalid("missing ')'");
            }
            self.depth -= 1;
            return Ok(inner);
        }
        self.test()
    }

    fn test(&mut self) -> Result<Expr, PatternError> {
        let path = self.selector()?;
        let slot = self.slot_for(&path);
        let test = if self.cursor.eat_keyword("IS") {
            if self.cursor.eat_keyword("NULL") {
                Test::IsNull
            } else if self.cursor.eat_keyword("TRUE") {
                Test::IsTrue
            } else if self.cursor.eat_keyword("FALSE") {
                Test::IsFalse
            } else {
                return invalid("IS must be followed by NULL, TRUE or FALSE");
            }
        } else if self.cursor.eat_keyword("NOT") {
            if !self.cursor.eat_keyword("EXISTS") {
                return invalid("NOT must be followed by EXISTS");
            }
            Test::NotExists
        } else if let Some(op) = self.cursor.op() {
            let value = self.cursor.value("()&|}", &mut self.regex_count)?;
            if let (Value::Text(_) | Value::Regex(_), Op::Lt | Op::Gt | Op::Le | Op::Ge) = (&value, op) {
                return invalid("only = and != apply to strings");
            }
            Test::Compare(op, value)
        } else {
            return invalid(format!("expected an operator at '{}'", self.cursor.rest()));
        };
        Ok(Expr::Test(slot, test))
    }

    fn selector(&mut self) -> Result<Vec<Segment>, PatternError> {
        if !self.cursor.eat("$") {
            return invalid(format!("expected a selector at '{}'", self.cursor.rest()));
        }
        let mut path = Vec::new();
        loop {
            let rest = self.cursor.rest();
            if let Some(after) = rest.strip_prefix('.') {
                let len = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ':' || c == '@'))
                    .unwrap_or(after.len());
                if len == 0 {
                    return invalid("empty selector name");
                }
                path.push(Segment::Key(after.get(..len).unwrap_or_default().to_owned()));
                self.cursor.pos += 1 + len;
            } else if let Some(after) = rest.strip_prefix('[') {
                let Some(close) = after.find(']') else {
                    return invalid("missing ']'");
                };
                let Ok(index) = after.get(..close).unwrap_or_default().trim().parse::<usize>() else {
                    return invalid("array index must be a non-negative integer");
                };
                path.push(Segment::Index(index));
                self.cursor.pos += 1 + close + 1;
            } else {
                break;
            }
        }
        if path.is_empty() {
            return invalid("a selector needs at least one member");
        }
        Ok(path)
    }

    /// The slot of `path`, inserting it into the trie; equal paths share a slot.
    fn slot_for(&mut self, path: &[Segment]) -> usize {
        let mut node = 0;
        for segment in path {
            let existing = self.trie.get(node).and_then(|n| match segment {
                Segment::Key(k) => n
                    .keys
                    .iter()
                    .find(|(key, _)| key.as_slice() == k.as_bytes())
                    .map(|e| e.1),
                Segment::Index(i) => n.indexes.iter().find(|(idx, _)| idx == i).map(|e| e.1),
            });
            node = match existing {
                Some(child) => child,
                None => {
                    let child = self.trie.len();
                    self.trie.push(TrieNode::default());
                    if let Some(n) = self.trie.get_mut(node) {
                        match segment {
                            Segment::Key(k) => n.keys.push((k.as_bytes().to_vec(), child)),
                            Segment::Index(i) => n.indexes.push((*i, child)),
                        }
                    }
                    child
                }
            };
        }
        let slots = &mut self.slots;
        match self.trie.get_mut(node) {
            Some(n) => *n.slot.get_or_insert_with(|| {
                *slots += 1;
                *slots - 1
            }),
            None => 0,
        }
    }
}

/// The deepest JSON nesting the scanner follows; deeper messages do not match.
const MAX_JSON_DEPTH: usize = 128;

/// A validating one-pass JSON scanner that records only the scalars the trie asks for.
struct JsonScanner<'m, 't> {
    bytes: &'m [u8],
    pos: usize,
    trie: &'t [TrieNode],
    depth: usize,
}

impl<'m> JsonScanner<'m, '_> {
    fn skip_ws(&mut self) {
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn record(&self, node: Option<usize>, slots: &mut Slots<'m>, found: Found<'m>) {
        if let Some(slot) = node.and_then(|n| self.trie.get(n)).and_then(|n| n.slot)
            && let Some(entry) = slots.get_mut(slot)
        {
            *entry = Some(found);
        }
    }

    /// Scans one value; `node` is the trie node this value sits at, if any selector reaches it.
    fn value(&mut self, node: Option<usize>, slots: &mut Slots<'m>) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            b'{' => {
                self.record(node, slots, Found::Compound);
                self.object(node, slots)
            }
            b'[' => {
                self.record(node, slots, Found::Compound);
                self.array(node, slots)
            }
            b'"' => {
                let (raw, escaped) = self.string()?;
                self.record(node, slots, Found::Str(raw, escaped));
                Some(())
            }
            b't' => self.literal(b"true", node, slots, Found::True),
            b'f' => self.literal(b"false", node, slots, Found::False),
            b'n' => self.literal(b"null", node, slots, Found::Null),
            b'-' | b'0'..=b'9' => {
                let start = self.pos;
                self.pos += 1;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
                {
                    self.pos += 1;
                }
                let raw = self.bytes.get(start..self.pos)?;
                self.record(node, slots, Found::Num(raw));
                Some(())
            }
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], node: Option<usize>, slots: &mut Slots<'m>, found: Found<'m>) -> Option<()> {
        if self.bytes.get(self.pos..self.pos + word.len())? != word {
            return None;
        }
        self.pos += word.len();
        self.record(node, slots, found);
        Some(())
    }

    /// Scans a string starting at its opening quote; returns the body and whether it has escapes.
    fn string(&mut self) -> Option<(&'m [u8], bool)> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let rest = self.bytes.get(self.pos..)?;
            let at = memchr::memchr2(b'"', b'\\', rest)?;
            self.pos += at;
            if self.peek()? == b'\\' {
                escaped = true;
                self.pos += 2;
            } else {
                let body = self.bytes.get(start..self.pos)?;
                self.pos += 1;
                return Some((body, escaped));
            }
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_JSON_DEPTH).then_some(())
    }

    fn object(&mut self, node: Option<usize>, slots: &mut Slots<'m>) -> Option<()> {
        self.enter()?;
        self.pos += 1;
        self.skip_ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            self.depth -= 1;
            return Some(());
        }
        let trie_node = node.and_then(|n| self.trie.get(n));
        loop {
            self.skip_ws();
            if self.peek()? != b'"' {
                return None;
            }
            let (key, escaped) = self.string()?;
            let child = trie_node.and_then(|n| {
                if n.keys.is_empty() {
                    return None;
                }
                if escaped {
                    let key = unescape_json(key);
                    n.keys.iter().find(|(k, _)| k.as_slice() == key.as_bytes()).map(|e| e.1)
                } else {
                    n.keys.iter().find(|(k, _)| k.as_slice() == key).map(|e| e.1)
                }
            });
            self.skip_ws();
            if self.peek()? != b':' {
                return None;
            }
            self.pos += 1;
            self.value(child, slots)?;
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, node: Option<usize>, slots: &mut Slots<'m>) -> Option<()> {
        self.enter()?;
        self.pos += 1;
        self.skip_ws();
        if self.peek()? == b']' {
            self.pos += 1;
            self.depth -= 1;
            return Some(());
        }
        let trie_node = node.and_then(|n| self.trie.get(n));
        let mut index = 0usize;
        loop {
            let child = trie_node.and_then(|n| n.indexes.iter().find(|(i, _)| *i == index).map(|e| e.1));
            self.value(child, slots)?;
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
            index += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Space-delimited patterns.

#[derive(Debug, Clone)]
struct Condition {
    op: Op,
    value: Value,
}

#[derive(Debug, Clone)]
enum Field {
    Ellipsis,
    /// A named field with its conditions in disjunctive normal form (OR of ANDs).
    Named {
        name: String,
        any_of: Vec<Vec<Condition>>,
    },
}

#[derive(Debug, Clone)]
struct DelimitedPattern {
    fields: Vec<Field>,
    has_ellipsis: bool,
    regex_count: usize,
}

/// One field of an event: the whole token's span and the span of its value (quotes removed).
#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    value: (usize, usize),
}

/// Field spans on the stack for typical lines.
type Tokens = SmallVec<[Token; 32]>;

fn tokenize(message: &str) -> Tokens {
    let bytes = message.as_bytes();
    let mut tokens = Tokens::new();
    let mut i = 0;
    while i < bytes.len() {
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
        let Some(&first) = bytes.get(i) else { break };
        let start = i;
        let close = match first {
            b'"' => Some(b'"'),
            b'[' => Some(b']'),
            _ => None,
        };
        let token = match close.and_then(|c| memchr::memchr(c, bytes.get(i + 1..).unwrap_or_default())) {
            Some(offset) => {
                let end = i + 1 + offset;
                i = end + 1;
                Token {
                    start,
                    value: (start + 1, end),
                }
            }
            None => {
                let end = memchr::memchr(b' ', bytes.get(i..).unwrap_or_default()).map_or(bytes.len(), |o| i + o);
                i = end;
                Token {
                    start,
                    value: (start, end),
                }
            }
        };
        tokens.push(token);
    }
    tokens
}

impl DelimitedPattern {
    fn parse(text: &str) -> Result<Self, PatternError> {
        let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
            return invalid("a space-delimited pattern must be enclosed in [ ]");
        };
        let mut cursor = Cursor::new(inner);
        let mut fields = Vec::new();
        let mut regex_count = 0;
        loop {
            if cursor.eat("...") {
                fields.push(Field::Ellipsis);
            } else {
                let name = field_name(&mut cursor)?;
                let mut any_of: Vec<Vec<Condition>> = Vec::new();
                if let Some(op) = cursor.op() {
                    let mut current = vec![Condition {
                        op,
                        value: cursor.value(",]&|", &mut regex_count)?,
                    }];
                    loop {
                        let is_or = if cursor.eat("||") {
                            true
                        } else if cursor.eat("&&") {
                            false
                        } else {
                            break;
                        };
                        let other = field_name(&mut cursor)?;
                        if !other.eq_ignore_ascii_case(&name) {
                            return invalid(format!("a condition on field {name} may not name {other}"));
                        }
                        let Some(op) = cursor.op() else {
                            return invalid("expected an operator");
                        };
                        let condition = Condition {
                            op,
                            value: cursor.value(",]&|", &mut regex_count)?,
                        };
                        if is_or {
                            any_of.push(std::mem::take(&mut current));
                        }
                        current.push(condition);
                    }
                    any_of.push(current);
                }
                fields.push(Field::Named { name, any_of });
            }
            if cursor.at_end() {
                break;
            }
            if !cursor.eat(",") {
                return invalid(format!("expected ',' at '{}'", cursor.rest()));
            }
        }
        let has_ellipsis = fields.iter().any(|f| matches!(f, Field::Ellipsis));
        Ok(Self {
            fields,
            has_ellipsis,
            regex_count,
        })
    }

    /// Binds the pattern to the message; returns each named field with its value span.
    fn bind<'p>(&'p self, message: &str) -> Option<Vec<(&'p str, (usize, usize))>> {
        let tokens = tokenize(message);
        let mut bound: SmallVec<[(usize, (usize, usize)); 16]> = SmallVec::new();
        if !self.bind_from(message, &tokens, 0, 0, &mut bound) {
            return None;
        }
        Some(
            bound
                .into_iter()
                .filter_map(|(field, span)| match self.fields.get(field) {
                    Some(Field::Named { name, .. }) => Some((name.as_str(), span)),
                    _ => None,
                })
                .collect(),
        )
    }

    fn bind_from(
        &self,
        message: &str,
        tokens: &[Token],
        field: usize,
        token: usize,
        bound: &mut SmallVec<[(usize, (usize, usize)); 16]>,
    ) -> bool {
        let Some(current) = self.fields.get(field) else {
            return token == tokens.len();
        };
        match current {
            Field::Ellipsis => {
                for skip in token..=tokens.len() {
                    let mark = bound.len();
                    if self.bind_from(message, tokens, field + 1, skip, bound) {
                        return true;
                    }
                    bound.truncate(mark);
                }
                false
            }
            Field::Named { any_of, .. } => {
                let Some(tok) = tokens.get(token) else {
                    return false;
                };
                let last_field = field + 1 == self.fields.len();
                // Without `...`, the last field of a short pattern takes the rest of the line.
                let takes_rest = last_field && !self.has_ellipsis && token + 1 < tokens.len();
                let span = if takes_rest {
                    (tok.start, message.trim_end_matches(' ').len())
                } else {
                    tok.value
                };
                let text = message.as_bytes().get(span.0..span.1).unwrap_or_default();
                let ok = any_of.is_empty()
                    || any_of
                        .iter()
                        .any(|all| all.iter().all(|c| compare_text(c.op, &c.value, text)));
                if !ok {
                    return false;
                }
                bound.push((field, span));
                if takes_rest {
                    return true;
                }
                if self.bind_from(message, tokens, field + 1, token + 1, bound) {
                    return true;
                }
                bound.pop();
                false
            }
        }
    }
}

fn field_name(cursor: &mut Cursor<'_>) -> Result<String, PatternError> {
    cursor.skip_ws();
    let rest = cursor.rest();
    let len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
        .unwrap_or(rest.len());
    if len == 0 {
        return invalid(format!("expected a field name at '{rest}'"));
    }
    cursor.pos += len;
    Ok(rest.get(..len).unwrap_or_default().to_owned())
}

/// Reads the value `$.a.b[0]` names in a JSON message, as text, for metric values and dimensions.
/// Returns `None` when the message is not JSON, or the path is absent or not a scalar.
pub fn json_path_value(message: &str, selector: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(message).ok()?;
    let mut cursor = Cursor::new(selector.trim());
    let mut parser = JsonParser {
        cursor: Cursor::new(""),
        trie: Vec::new(),
        slots: 0,
        regex_count: 0,
        depth: 0,
    };
    std::mem::swap(&mut parser.cursor, &mut cursor);
    let path = parser.selector().ok()?;
    if !parser.cursor.at_end() {
        return None;
    }
    let mut current = &value;
    for segment in &path {
        current = match segment {
            Segment::Key(k) => current.get(k.as_str())?,
            Segment::Index(i) => current.get(*i)?,
        };
    }
    match current {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
