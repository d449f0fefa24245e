//! A small namespace-aware XML tree and Exclusive XML Canonicalization 1.0.
//!
//! SAML responses are signed with XML Signature, whose digests are computed over the canonical form
//! of the signed element (`http://www.w3.org/2001/10/xml-exc-c14n#`, with or without comments).
//! A key design decision: Citadel canonicalizes with this module, over `quick-xml`, instead of a
//! library. The mature implementations (xmlsec1, libxml2) are C libraries that a fresh CI machine
//! does not have, and the pure-Rust crates found (`xml-sec`, `xml-canonical`, `bergshamra`) were
//! pre-release, self-described as not for production, or pulled a second cryptography stack beside
//! aws-lc-rs. Exclusive canonicalization of one element subtree is small enough to own and test.
//!
//! The parser is deliberately strict, because its input is an attacker's: a document type
//! declaration (and with it every entity other than the five predefined ones) is refused, nesting
//! is bounded, prefixes must be declared, and attribute names must be unique.
//! What it keeps is exactly what canonicalization needs: elements with their resolved namespace
//! URIs and in-scope declarations, attribute values after XML attribute-value normalization,
//! character data with references resolved and line ends normalized, comments and processing
//! instructions.

use quick_xml::events::Event;
use std::collections::BTreeMap;

/// The namespace bound to the `xml` prefix, never declared.
const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";
/// Deepest element nesting accepted.
const MAX_DEPTH: usize = 64;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed XML: {0}")]
pub struct XmlError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, XmlError> {
    Err(XmlError(message.into()))
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// An element.
    Element(Element),
    /// Character data (CDATA sections included), references resolved.
    Text(String),
    /// A comment's text.
    Comment(String),
    /// A processing instruction: target and data.
    Pi(String, String),
}

/// An attribute other than a namespace declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The prefix, empty when unprefixed.
    pub prefix: String,
    /// The local name.
    pub local: String,
    /// The namespace URI, empty for unprefixed attributes.
    pub namespace: String,
    /// The normalized value.
    pub value: String,
}

/// An element with its namespace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The prefix, empty when unprefixed.
    pub prefix: String,
    /// The local name.
    pub local: String,
    /// The namespace URI, empty when none.
    pub namespace: String,
    /// Every namespace binding in scope here (prefix, empty for the default), including inherited
    /// ones; a default namespace undeclared with `xmlns=""` is absent.
    pub in_scope: BTreeMap<String, String>,
    /// Attributes in document order (namespace declarations excluded).
    pub attributes: Vec<Attribute>,
    /// Children in document order.
    pub children: Vec<Node>,
}

impl Element {
    /// True when this element is `{namespace}local`.
    pub fn is(&self, namespace: &str, local: &str) -> bool {
        self.namespace == namespace && self.local == local
    }

    /// The value of the unqualified attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.is_empty() && a.local == name)
            .map(|a| a.value.as_str())
    }

    /// The child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The child elements named `{namespace}local`.
    pub fn children_named<'a>(&'a self, namespace: &'a str, local: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter_map(move |n| match n {
            Node::Element(e) if e.is(namespace, local) => Some(e),
            _ => None,
        })
    }

    /// The first child element named `{namespace}local`.
    pub fn child(&self, namespace: &str, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(namespace, local))
    }

    /// The concatenated character data of the direct children.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    /// This element and all its descendant elements, in document order.
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = Vec::new();
        // A stack of reversed children keeps document order.
        let mut stack = vec![self];
        while let Some(element) = stack.pop() {
            out.push(element);
            let mut children: Vec<&Element> = element.elements().collect();
            children.reverse();
            stack.extend(children);
        }
        out
    }
}

/// Resolves a predefined entity or a character reference (`name` without `&` and `;`).
fn resolve_reference(name: &str) -> Result<char, XmlError> {
    let ch = match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()
            } else if let Some(dec) = name.strip_prefix('#') {
                dec.parse().ok()
            } else {
                return fail(format!("undeclared entity &{name};"));
            };
            code.and_then(char::from_u32).filter(|c| *c != '\0')
        }
    };
    ch.map_or_else(|| fail(format!("invalid character reference &{name};")), Ok)
}

/// Resolves references in `raw`; in attribute values (`attribute`), literal white space becomes a
/// space as XML attribute-value normalization requires.
fn unescape(raw: &str, attribute: bool) -> Result<String, XmlError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find(['&', '\r', '\t', '\n', '<']) {
        out.push_str(rest.get(..i).unwrap_or_default());
        let tail = rest.get(i..).unwrap_or_default();
        let mut chars = tail.chars();
        match chars.next() {
            Some('&') => {
                let end = tail
                    .find(';')
                    .ok_or_else(|| XmlError("unterminated reference".into()))?;
                out.push(resolve_reference(tail.get(1..end).unwrap_or_default())?);
                rest = tail.get(end + 1..).unwrap_or_default();
            }
            Some('<') if attribute => return fail("'<' in an attribute value"),
            Some('\r') => {
                // A CR LF pair, or a lone CR, is one line end.
                out.push(if attribute { ' ' } else { '\n' });
                let after = tail.get(1..).unwrap_or_default();
                rest = after.strip_prefix('\n').unwrap_or(after);
            }
            Some(c) => {
                out.push(if attribute && (c == '\t' || c == '\n') { ' ' } else { c });
                rest = tail.get(c.len_utf8()..).unwrap_or_default();
            }
            None => break,
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn split_qname(qname: &str) -> (&str, &str) {
    qname.split_once(':').unwrap_or(("", qname))
}

fn utf8(bytes: &[u8]) -> Result<&str, XmlError> {
    std::str::from_utf8(bytes).map_err(|_| XmlError("invalid UTF-8".into()))
}

/// An element being built, with its raw names until its namespaces are known.
struct Open {
    element: Element,
    qname: String,
}

fn open_element(
    start: &quick_xml::events::BytesStart<'_>,
    parent_scope: &BTreeMap<String, String>,
) -> Result<Open, XmlError> {
    let qname = utf8(start.name().as_ref())?.to_string();
    let mut in_scope = parent_scope.clone();
    let mut raw_attributes = Vec::new();
    for attribute in start.attributes().with_checks(true) {
        let attribute = attribute.map_err(|e| XmlError(e.to_string()))?;
        let name = utf8(attribute.key.as_ref())?.to_string();
        let value = unescape(utf8(&attribute.value)?, true)?;
        if name == "xmlns" {
            if value.is_empty() {
                in_scope.remove("");
            } else {
                in_scope.insert(String::new(), value);
            }
        } else if let Some(prefix) = name.strip_prefix("xmlns:") {
            if value.is_empty() || prefix == "xml" || prefix == "xmlns" {
                return fail(format!("invalid declaration of prefix {prefix}"));
            }
            in_scope.insert(prefix.to_string(), value);
        } else {
            raw_attributes.push((name, value));
        }
    }
    let (prefix, local) = split_qname(&qname);
    let namespace = if prefix.is_empty() {
        in_scope.get("").cloned().unwrap_or_default()
    } else {
        in_scope
            .get(prefix)
            .cloned()
            .ok_or_else(|| XmlError(format!("undeclared prefix {prefix}")))?
    };
    let mut attributes = Vec::with_capacity(raw_attributes.len());
    for (name, value) in raw_attributes {
        let (attribute_prefix, attribute_local) = split_qname(&name);
        let attribute_namespace = match attribute_prefix {
            "" => String::new(),
            "xml" => XML_NAMESPACE.to_string(),
            p => in_scope
                .get(p)
                .cloned()
                .ok_or_else(|| XmlError(format!("undeclared prefix {p}")))?,
        };
        if !attribute_namespace.is_empty()
            && attributes
                .iter()
                .any(|a: &Attribute| a.namespace == attribute_namespace && a.local == attribute_local)
        {
            return fail(format!("duplicate attribute {name}"));
        }
        attributes.push(Attribute {
            prefix: attribute_prefix.to_string(),
            local: attribute_local.to_string(),
            namespace: attribute_namespace,
            value,
        });
    }
    Ok(Open {
        element: Element {
            prefix: prefix.to_string(),
            local: local.to_string(),
            namespace,
            in_scope,
            attributes,
            children: Vec::new(),
        },
        qname,
    })
}

/// Parses a document and returns its document element.
///
/// # Errors
/// [`XmlError`] for anything not well-formed, a DTD, undeclared prefixes or too deep nesting.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    let mut reader = quick_xml::Reader::from_str(text);
    let config = reader.config_mut();
    config.trim_text(false);
    config.check_end_names = true;
    config.expand_empty_elements = false;
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Element> = None;
    let empty_scope = BTreeMap::new();
    loop {
        let event = reader.read_event().map_err(|e| XmlError(e.to_string()))?;
        let push_node = |stack: &mut Vec<Open>, node: Node| -> Result<(), XmlError> {
            match stack.last_mut() {
                Some(open) => {
                    // Adjacent character data (text, references, CDATA) is one text node.
                    if let (Node::Text(new), Some(Node::Text(last))) = (&node, open.element.children.last_mut()) {
                        last.push_str(new);
                    } else {
                        open.element.children.push(node);
                    }
                    Ok(())
                }
                None => match node {
                    Node::Text(t) if t.chars().all(|c| matches!(c, ' ' | '\t' | '\n')) => Ok(()),
                    Node::Text(_) => fail("character data outside the document element"),
                    _ => Ok(()),
                },
            }
        };
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() && stack.is_empty() => {
                let _ = start;
                return fail("more than one document element");
            }
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return fail("elements nested too deeply");
                }
                let scope = stack.last().map_or(&empty_scope, |o| &o.element.in_scope);
                let open = open_element(&start, scope)?;
                stack.push(open);
            }
            Event::Empty(start) => {
                let scope = stack.last().map_or(&empty_scope, |o| &o.element.in_scope);
                let open = open_element(&start, scope)?;
                match stack.last_mut() {
                    Some(parent) => parent.element.children.push(Node::Element(open.element)),
                    None => root = Some(open.element),
                }
            }
            Event::End(end) => {
                let open = stack.pop().ok_or_else(|| XmlError("unexpected end tag".into()))?;
                if utf8(end.name().as_ref())? != open.qname {
                    return fail("mismatched end tag");
                }
                match stack.last_mut() {
                    Some(parent) => parent.element.children.push(Node::Element(open.element)),
                    None => root = Some(open.element),
                }
            }
            Event::Text(text) => {
                let raw = utf8(&text)?;
                push_node(&mut stack, Node::Text(unescape(raw, false)?))?;
            }
            Event::GeneralRef(reference) => {
                let ch = resolve_reference(utf8(&reference)?)?;
                if stack.is_empty() {
                    return fail("reference outside the document element");
                }
                push_node(&mut stack, Node::Text(ch.to_string()))?;
            }
            Event::CData(data) => {
                let raw = utf8(&data)?;
                if stack.is_empty() {
                    return fail("CDATA outside the document element");
                }
                push_node(&mut stack, Node::Text(raw.replace("\r\n", "\n").replace('\r', "\n")))?;
            }
            Event::Comment(comment) => {
                let raw = utf8(&comment)?;
                push_node(&mut stack, Node::Comment(raw.replace("\r\n", "\n").replace('\r', "\n")))?;
            }
            Event::PI(pi) => {
                let target = utf8(pi.target())?.to_string();
                let data = utf8(pi.content())?.trim_start().to_string();
                push_node(&mut stack, Node::Pi(target, data))?;
            }
            Event::Decl(_) => {}
            Event::DocType(_) => return fail("document type declarations are not accepted"),
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return fail("unclosed element");
    }
    root.ok_or_else(|| XmlError("no document element".into()))
}

/// Whether comments are kept (`...#WithComments`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comments {
    /// `http://www.w3.org/2001/10/xml-exc-c14n#`.
    Omit,
    /// `http://www.w3.org/2001/10/xml-exc-c14n#WithComments`.
    Keep,
}

/// Parameters of one exclusive canonicalization.
#[derive(Debug, Clone, Copy)]
pub struct ExcC14n<'a> {
    /// Comment handling.
    pub comments: Comments,
    /// The `InclusiveNamespaces PrefixList` (`#default` names the default namespace).
    pub inclusive_prefixes: &'a [String],
    /// An element left out with its subtree (the enveloped signature), compared by address.
    pub exclude: Option<&'a Element>,
}

fn escape_text(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attribute(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

impl ExcC14n<'_> {
    /// The canonical form of `element` as the apex of the document subset.
    pub fn canonicalize(&self, element: &Element) -> String {
        let mut out = String::new();
        self.render(element, &BTreeMap::new(), &mut out);
        out
    }

    fn render(&self, element: &Element, rendered: &BTreeMap<String, String>, out: &mut String) {
        // The namespaces this element visibly utilizes, plus the inclusive prefix list.
        let mut wanted: Vec<String> = vec![element.prefix.clone()];
        for attribute in &element.attributes {
            if !attribute.prefix.is_empty() && attribute.prefix != "xml" {
                wanted.push(attribute.prefix.clone());
            }
        }
        for prefix in self.inclusive_prefixes {
            let prefix = if prefix == "#default" { "" } else { prefix.as_str() };
            if element.in_scope.contains_key(prefix) {
                wanted.push(prefix.to_string());
            }
        }
        let mut declarations: BTreeMap<String, String> = BTreeMap::new();
        for prefix in wanted {
            let uri = element.in_scope.get(&prefix).cloned().unwrap_or_default();
            let already = rendered.get(&prefix).map_or("", String::as_str);
            // An empty default namespace needs `xmlns=""` only to undo an output ancestor's.
            if already != uri && (!uri.is_empty() || rendered.contains_key(&prefix)) {
                declarations.insert(prefix, uri);
            }
        }
        let qname = |prefix: &str, local: &str| {
            if prefix.is_empty() {
                local.to_string()
            } else {
                format!("{prefix}:{local}")
            }
        };
        out.push('<');
        out.push_str(&qname(&element.prefix, &element.local));
        for (prefix, uri) in &declarations {
            if prefix.is_empty() {
                out.push_str(" xmlns=\"");
            } else {
                out.push_str(" xmlns:");
                out.push_str(prefix);
                out.push_str("=\"");
            }
            escape_attribute(uri, out);
            out.push('"');
        }
        let mut attributes: Vec<&Attribute> = element.attributes.iter().collect();
        attributes.sort_by(|a, b| (&a.namespace, &a.local).cmp(&(&b.namespace, &b.local)));
        for attribute in attributes {
            out.push(' ');
            out.push_str(&qname(&attribute.prefix, &attribute.local));
            out.push_str("=\"");
            escape_attribute(&attribute.value, out);
            out.push('"');
        }
        out.push('>');
        let mut inner = rendered.clone();
        for (prefix, uri) in declarations {
            if uri.is_empty() {
                inner.remove(&prefix);
            } else {
                inner.insert(prefix, uri);
            }
        }
        for child in &element.children {
            match child {
                Node::Element(e) => {
                    if self.exclude.is_some_and(|x| std::ptr::eq(x, e)) {
                        continue;
                    }
                    self.render(e, &inner, out);
                }
                Node::Text(t) => escape_text(t, out),
                Node::Comment(c) => {
                    if self.comments == Comments::Keep {
                        out.push_str("<!--");
                        out.push_str(c);
                        out.push_str("-->");
                    }
                }
                Node::Pi(target, data) => {
                    out.push_str("<?");
                    out.push_str(target);
                    if !data.is_empty() {
                        out.push(' ');
                        out.push_str(data);
                    }
                    out.push_str("?>");
                }
            }
        }
        out.push_str("</");
        out.push_str(&qname(&element.prefix, &element.local));
        out.push('>');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exc(xml: &str) -> String {
        let root = parse(xml).unwrap();
        ExcC14n {
            comments: Comments::Omit,
            inclusive_prefixes: &[],
            exclude: None,
        }
        .canonicalize(&root)
    }

    #[test]
    fn attributes_sort_and_empty_elements_expand() {
        assert_eq!(
            exc(r#"<?xml version="1.0"?><root b="2" a="1"><empty/></root>"#),
            r#"<root a="1" b="2"><empty></empty></root>"#
        );
    }

    #[test]
    fn unused_namespaces_are_dropped_and_used_ones_declared_once() {
        let xml = r#"<a:r xmlns:a="urn:a" xmlns:b="urn:b" xmlns:c="urn:c"><a:x c:k="v"><a:y/></a:x></a:r>"#;
        assert_eq!(
            exc(xml),
            r#"<a:r xmlns:a="urn:a"><a:x xmlns:c="urn:c" c:k="v"><a:y></a:y></a:x></a:r>"#
        );
    }

    #[test]
    fn a_subtree_declares_inherited_namespaces_it_uses() {
        let root = parse(r#"<p:r xmlns:p="urn:p" xmlns="urn:d"><p:c ID="1"><x/></p:c></p:r>"#).unwrap();
        let child = root.elements().next().unwrap();
        let canonical = ExcC14n {
            comments: Comments::Omit,
            inclusive_prefixes: &[],
            exclude: None,
        }
        .canonicalize(child);
        assert_eq!(canonical, r#"<p:c xmlns:p="urn:p" ID="1"><x xmlns="urn:d"></x></p:c>"#);
    }

    #[test]
    fn inclusive_prefixes_are_declared_even_when_unused() {
        let root = parse(r#"<r xmlns:xs="urn:xs" xmlns:q="urn:q"><c/></r>"#).unwrap();
        let prefixes = vec!["xs".to_string(), "zz".to_string()];
        let canonical = ExcC14n {
            comments: Comments::Omit,
            inclusive_prefixes: &prefixes,
            exclude: None,
        }
        .canonicalize(&root);
        assert_eq!(canonical, r#"<r xmlns:xs="urn:xs"><c></c></r>"#);
    }

    #[test]
    fn default_namespace_is_undone_only_when_rendered() {
        assert_eq!(
            exc(r#"<r xmlns="urn:d"><c xmlns=""><g/></c></r>"#),
            r#"<r xmlns="urn:d"><c xmlns=""><g></g></c></r>"#
        );
        assert_eq!(exc(r#"<r><c xmlns=""/></r>"#), r#"<r><c></c></r>"#);
    }

    #[test]
    fn text_and_attributes_are_escaped_and_normalized() {
        let xml = "<r a=\"x&#xA;y\tz &lt;&quot;&amp;\" b='\"'>t&amp;&lt;&gt;\r\nu&#xD;<![CDATA[<c>&]]></r>";
        assert_eq!(
            exc(xml),
            "<r a=\"x&#xA;y z &lt;&quot;&amp;\" b=\"&quot;\">t&amp;&lt;&gt;\nu&#xD;&lt;c&gt;&amp;</r>"
        );
    }

    #[test]
    fn comments_follow_the_algorithm_and_pis_are_kept() {
        let xml = "<r><!-- note --><?pi  data?>x</r>";
        assert_eq!(exc(xml), "<r><?pi data?>x</r>");
        let root = parse(xml).unwrap();
        let with = ExcC14n {
            comments: Comments::Keep,
            inclusive_prefixes: &[],
            exclude: None,
        }
        .canonicalize(&root);
        assert_eq!(with, "<r><!-- note --><?pi data?>x</r>");
    }

    #[test]
    fn an_excluded_element_disappears_with_its_subtree() {
        let root = parse("<r><a>1</a><s><t/></s><b/></r>").unwrap();
        let s = root.elements().nth(1).unwrap();
        let canonical = ExcC14n {
            comments: Comments::Omit,
            inclusive_prefixes: &[],
            exclude: Some(s),
        }
        .canonicalize(&root);
        assert_eq!(canonical, "<r><a>1</a><b></b></r>");
    }

    #[test]
    fn hostile_documents_are_refused() {
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        for bad in [
            r#"<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>"#,
            "<r>&x;</r>",
            "<p:r/>",
            r#"<r a="1" a="2"/>"#,
            r#"<r xmlns:a="urn:x" xmlns:b="urn:x" a:k="1" b:k="2"/>"#,
            "<r></s>",
            "<r/><r/>",
            "text<r/>",
            "<r>",
            deep.as_str(),
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn descendants_are_in_document_order() {
        let root = parse("<a><b><c/></b><d/></a>").unwrap();
        let names: Vec<&str> = root.descendants().iter().map(|e| e.local.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
    }
}
