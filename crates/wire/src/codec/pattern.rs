//! Translation of the models' Java regular expressions to the `regex` crate.
//!
//! AWS validates `pattern` constraints with `java.util.regex.Pattern.matches`, so a value must match
//! the whole pattern and the Java meaning of the escapes applies: `\w`, `\d` and `\s` are ASCII-only
//! and `\uXXXX` names a UTF-16 code unit. The translation rewrites exactly those pieces; anything
//! the `regex` crate then refuses (surrogate code units, possessive quantifiers, `\Q..\E`) means the
//! pattern is not enforced, which is the safe direction for a server: it accepts instead of rejecting.

use regex::Regex;

/// Compiles a Java pattern with full-match semantics, or returns `None` when it cannot be translated.
pub fn compile_java(pattern: &str) -> Option<Regex> {
    let translated = translate(pattern)?;
    Regex::new(&format!("^(?:{translated})$")).ok()
}

/// Rewrites the Java-only escapes of `pattern`; `None` when an escape is cut short.
fn translate(pattern: &str) -> Option<String> {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    // Depth of `[` character classes we are inside; Java and `regex` both allow nesting.
    let mut class_depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let escaped = chars.next()?;
                let in_class = class_depth > 0;
                match escaped {
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        if hex.len() != 4 || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                            return None;
                        }
                        out.push_str("\\x{");
                        out.push_str(&hex);
                        out.push('}');
                    }
                    'w' | 'W' | 'd' | 'D' | 's' | 'S' => {
                        let (class, negated) = match escaped {
                            'w' => ("word", false),
                            'W' => ("word", true),
                            'd' => ("digit", false),
                            'D' => ("digit", true),
                            's' => ("space", false),
                            _ => ("space", true),
                        };
                        let posix = format!("[:{}{}:]", if negated { "^" } else { "" }, class);
                        if in_class {
                            out.push_str(&posix);
                        } else {
                            out.push('[');
                            out.push_str(&posix);
                            out.push(']');
                        }
                    }
                    'Q' | 'G' | 'Z' => return None,
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            '[' => {
                class_depth += 1;
                out.push('[');
                // A leading `^` or `]` right after `[` belongs to the class syntax, not to the members.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(']');
            }
            // A possessive quantifier (`a*+`) has no `regex` equivalent.
            '+' if class_depth == 0
                && matches!(out.chars().last(), Some('*' | '+' | '?' | '}'))
                && !out.ends_with("\\+") =>
            {
                return None;
            }
            other => out.push(other),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_the_patterns_the_models_use() {
        let cases: &[(&str, &str, bool)] = &[
            (r"[\w+=,.@-]+", "bob.smith@x", true),
            (r"[\w+=,.@-]+", "bob smith", false),
            // Java's \w is ASCII-only.
            (r"[\w+=,.@-]+", "bøb", false),
            (r"[\u0009\u000A\u000D\u0020-\u00FF]+", "{\"a\": \"b\"}\n", true),
            (r"[\u0009\u000A\u000D\u0020-\u00FF]+", "\u{0100}", false),
            (r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*", "Team Blue:1", true),
            (r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*", "a#b", false),
            (r"^[a-zA-Z0-9:/_-]+$", "alias/x", true),
            (r"\S{36,128}", "a b", false),
            (r"[0-9]{12}", "123456789012", true),
            // Full match: a prefix match is not enough.
            (r"[0-9]{12}", "1234567890123", false),
            (r"[^:].*", "a:b", true),
            (r"[^:].*", ":a", false),
        ];
        for (pattern, value, matches) in cases {
            let regex = compile_java(pattern).unwrap_or_else(|| panic!("{pattern} did not compile"));
            assert_eq!(regex.is_match(value), *matches, "{pattern} on {value:?}");
        }
    }

    #[test]
    fn untranslatable_patterns_are_skipped() {
        for pattern in [r"[\uD800\uDC00-\uDBFF\uDFFF]*", r"\Qa.b\E", r"a*+", r"\u12"] {
            assert!(compile_java(pattern).is_none(), "{pattern}");
        }
    }

    #[test]
    fn most_model_patterns_compile() {
        let mut total = 0;
        let mut compiled = 0;
        for name in crate::codec::model::service_names() {
            let model = crate::codec::model(name).unwrap();
            for shape in model.shapes.values() {
                if shape.pattern.is_some() {
                    total += 1;
                    compiled += usize::from(shape.regex().is_some());
                }
            }
        }
        println!("{compiled} of {total} pattern shapes compiled");
        assert!(compiled * 10 >= total * 9, "{compiled} of {total}");
    }
}
