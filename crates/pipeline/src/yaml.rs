//! YAML text → a small tree of spanned nodes.
//!
//! We drive `saphyr-parser`'s event stream ourselves instead of deserializing with serde
//! because validation must report every problem in a file at once, and serde stops at the
//! first. The tree keeps every key and value with its span and scalar style (so `"1.20"`
//! and `1.20` both stay the text the user wrote), keeps duplicate keys for the decoder to
//! report, expands anchors/aliases and `<<` merge keys, and enforces size and depth limits
//! so a hostile file (a "billion laughs" of aliases, deep nesting) is refused, not obeyed.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};

use crate::diagnostic::{Diagnostic, Source};
use crate::span::{Span, Spanned};

/// Largest pipeline file we read, in bytes.
pub(crate) const MAX_SOURCE_BYTES: usize = 8 * 1024 * 1024;
/// Deepest nesting of mappings and lists.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most nodes in the tree, after aliases are expanded.
pub(crate) const MAX_NODES: usize = 2_000_000;

/// How a scalar was written; only plain scalars are typed (`true`, `12`, `null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Unquoted.
    Plain,
    /// Quoted, a block scalar (`|`, `>`), or tagged `!!str`: always a string.
    Text,
}

/// A mapping key.
pub(crate) type Key = Spanned<String>;

/// The shape of a node.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Map(Vec<(Key, Node)>),
    Seq(Vec<Node>),
    Scalar(String, Style),
}

/// One YAML value and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    pub span: Span,
}

/// What a plain scalar means under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float,
    Str,
}

impl Node {
    /// The core-schema reading of a scalar (quoted scalars are always strings).
    pub fn scalar_type(&self) -> Option<Scalar> {
        match &self.kind {
            Kind::Scalar(s, Style::Plain) => Some(resolve_plain(s)),
            Kind::Scalar(_, Style::Text) => Some(Scalar::Str),
            _ => None,
        }
    }

    /// "a number", "a list", … for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Map(_) => "a mapping".into(),
            Kind::Seq(_) => "a list".into(),
            Kind::Scalar(s, style) => match (style, resolve_plain(s)) {
                (Style::Text, _) | (_, Scalar::Str) => format!("the string {s:?}"),
                (_, Scalar::Null) => "nothing (null)".into(),
                (_, Scalar::Bool(_)) => format!("a boolean ({s})"),
                (_, Scalar::Int(_) | Scalar::Float) => format!("a number ({s})"),
            },
        }
    }

    pub fn is_null(&self) -> bool {
        self.scalar_type() == Some(Scalar::Null)
    }
}

/// Reads a plain scalar the way YAML 1.2's core schema does.
pub(crate) fn resolve_plain(s: &str) -> Scalar {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "-.inf" | ".nan" | ".NaN" | ".NAN" => {
            return Scalar::Float;
        }
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().map(Scalar::Int).unwrap_or(Scalar::Float);
    }
    if let Some(hex) = s.strip_prefix("0x")
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return i64::from_str_radix(hex, 16)
            .map(Scalar::Int)
            .unwrap_or(Scalar::Float);
    }
    if let Some(oct) = s.strip_prefix("0o")
        && !oct.is_empty()
        && oct.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return i64::from_str_radix(oct, 8)
            .map(Scalar::Int)
            .unwrap_or(Scalar::Float);
    }
    if is_float(digits) {
        return Scalar::Float;
    }
    Scalar::Str
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(s: &str) -> bool {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => all_digits(int) && all_digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && all_digits(int),
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && all_digits(e)
        }
    };
    mantissa_ok && exp_ok && (frac.is_some() || exp.is_some())
}

fn span_of(s: saphyr_parser::Span) -> Span {
    Span::new(
        s.start.line() as u32,
        s.start.col() as u32,
        s.end.line() as u32,
        s.end.col() as u32,
    )
}

/// Parses the text into one node tree. `Ok(None)` for a file with no document at all
/// (empty, or only comments).
pub(crate) fn load(src: &Source) -> Result<Option<Node>, Box<Diagnostic>> {
    let text = src.text();
    if text.len() > MAX_SOURCE_BYTES {
        return Err(Box::new(Diagnostic::new(format!(
            "{} is {} bytes; the limit for a pipeline file is {} bytes",
            src.path,
            text.len(),
            MAX_SOURCE_BYTES
        ))));
    }
    let mut loader = Loader {
        parser: Parser::new_from_str(text),
        src,
        anchors: HashMap::new(),
        nodes: 0,
    };
    loader.document().map_err(|e| match e {
        LoadError::Scan(e) => Box::new(scan_error(src, &e)),
        LoadError::Other(d) => d,
    })
}

enum LoadError {
    Scan(ScanError),
    Other(Box<Diagnostic>),
}

impl From<Diagnostic> for LoadError {
    fn from(d: Diagnostic) -> Self {
        LoadError::Other(Box::new(d))
    }
}

struct Loader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    src: &'a Source,
    /// Anchored nodes by anchor id, with their node counts.
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
}

impl<'a> Loader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), LoadError> {
        match self.parser.next_event() {
            Some(Ok((ev, span))) => Ok((ev, span_of(span))),
            Some(Err(e)) => Err(LoadError::Scan(e)),
            // The parser always ends with StreamEnd; running out early is a truncated file.
            None => Err(self
                .src
                .error(Span::NONE, "unexpected end of the YAML stream")
                .into()),
        }
    }

    fn document(&mut self) -> Result<Option<Node>, LoadError> {
        let mut root = None;
        loop {
            let (ev, span) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentEnd => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart(_) => {
                    if root.is_some() {
                        return Err(self
                            .src
                            .error(span, "a pipeline file holds one YAML document; this starts a second one")
                            .with_help("remove the `---` line and everything after it, or move it to its own file")
                            .into());
                    }
                    let (ev, span) = self.next()?;
                    root = Some(self.node(ev, span, 0)?);
                }
                _ => {
                    return Err(self
                        .src
                        .error(span, "unexpected YAML event outside a document")
                        .into());
                }
            }
        }
    }

    fn count(&mut self, n: usize, span: Span) -> Result<(), LoadError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(self
                .src
                .error(
                    span,
                    format!("the file expands to more than {MAX_NODES} YAML nodes"),
                )
                .with_help("aliases (`*name`) repeat what they refer to; use fewer of them")
                .into());
        }
        Ok(())
    }

    fn node(&mut self, ev: Event<'a>, span: Span, depth: usize) -> Result<Node, LoadError> {
        if depth > MAX_DEPTH {
            return Err(self
                .src
                .error(
                    span,
                    format!("the file nests deeper than {MAX_DEPTH} levels"),
                )
                .into());
        }
        self.count(1, span)?;
        let (node, anchor) = match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let mut style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    _ => Style::Text,
                };
                if let Some(tag) = tag {
                    if tag.is_yaml_core_schema() && tag.suffix == "str" {
                        style = Style::Text;
                    } else if !tag.is_yaml_core_schema() {
                        return Err(self
                            .src
                            .error(span, format!("YAML tags like `{tag}` are not supported"))
                            .with_help("remove the tag")
                            .into());
                    }
                }
                (
                    Node {
                        kind: Kind::Scalar(text.into_owned(), style),
                        span,
                    },
                    anchor,
                )
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                let end = loop {
                    let (ev, s) = self.next()?;
                    if ev == Event::SequenceEnd {
                        break s;
                    }
                    items.push(self.node(ev, s, depth + 1)?);
                };
                let span = Span {
                    end_line: end.end_line,
                    end_col: end.end_col,
                    ..span
                };
                (
                    Node {
                        kind: Kind::Seq(items),
                        span,
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<(Key, Node)> = Vec::new();
                let mut merged: Vec<(Key, Node)> = Vec::new();
                let end = loop {
                    let (ev, s) = self.next()?;
                    if ev == Event::MappingEnd {
                        break s;
                    }
                    let key = self.node(ev, s, depth + 1)?;
                    let (ev, s) = self.next()?;
                    let value = self.node(ev, s, depth + 1)?;
                    let key = match key.kind {
                        Kind::Scalar(text, style) => {
                            if text == "<<" && style == Style::Plain {
                                self.merge(value, &mut merged)?;
                                continue;
                            }
                            Spanned::new(text, key.span)
                        }
                        _ => {
                            return Err(self
                                .src
                                .error(key.span, "mapping keys must be plain strings")
                                .into());
                        }
                    };
                    entries.push((key, value));
                };
                // Explicit keys win over merged ones; earlier merge sources win over later.
                for (k, v) in merged {
                    if !entries.iter().any(|(e, _)| e.value == k.value) {
                        entries.push((k, v));
                    }
                }
                let span = Span {
                    end_line: end.end_line,
                    end_col: end.end_col,
                    ..span
                };
                (
                    Node {
                        kind: Kind::Map(entries),
                        span,
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id).cloned() else {
                    return Err(self.src.error(span, "alias to an unknown anchor").into());
                };
                self.count(size, span)?;
                return Ok(node);
            }
            _ => return Err(self.src.error(span, "unexpected YAML event").into()),
        };
        if anchor > 0 {
            let size = count_nodes(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        Ok(node)
    }

    /// `<<: *base` or `<<: [*a, *b]`: collects the entries to merge into the mapping.
    fn merge(&mut self, value: Node, merged: &mut Vec<(Key, Node)>) -> Result<(), LoadError> {
        let sources = match value.kind {
            Kind::Map(_) => vec![value],
            Kind::Seq(items) => items,
            _ => {
                return Err(self
                    .src
                    .error(
                        value.span,
                        "`<<` merges a mapping (or a list of mappings) into this one",
                    )
                    .into());
            }
        };
        for source in sources {
            match source.kind {
                Kind::Map(entries) => {
                    for (k, v) in entries {
                        if !merged.iter().any(|(m, _)| m.value == k.value) {
                            merged.push((k, v));
                        }
                    }
                }
                _ => {
                    return Err(self
                        .src
                        .error(
                            source.span,
                            "`<<` merges a mapping (or a list of mappings) into this one",
                        )
                        .into());
                }
            }
        }
        Ok(())
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        Kind::Scalar(..) => 1,
        Kind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Kind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(_, v)| 1 + count_nodes(v))
                .sum::<usize>()
        }
    }
}

/// Turns a scanner error into a diagnostic. Tabs get their own message: YAML forbids them
/// in indentation, the scanner's wording for it varies with context, and its position
/// for it can be a line early, so we find the offending line ourselves.
fn scan_error(src: &Source, e: &ScanError) -> Diagnostic {
    let mark = e.marker();
    let line = mark.line().max(1) as u32;
    if let Some(tab_line) = tab_indented_line(src, line + 1) {
        let text = src.line(tab_line);
        let col = text.chars().position(|c| c == '\t').unwrap_or(0) as u32;
        return src
            .error(
                Span::new(tab_line, col, tab_line, col + 1),
                "tabs are not allowed for indentation; use spaces",
            )
            .with_help("replace the tab(s) at the start of this line with spaces");
    }
    let col = mark.col() as u32;
    let info = e.info();
    let help = if info.contains("mapping values are not allowed") {
        Some(
            "a value that contains \": \" must be quoted; otherwise check the indentation of this line",
        )
    } else if info.contains("did not find expected key") || info.contains("block mapping") {
        Some("check the indentation: keys of one mapping must start in the same column")
    } else if info.contains("unknown anchor") {
        Some("an alias `*name` must come after the anchor `&name` it refers to")
    } else {
        None
    };
    src.error(
        Span::new(line, col, line, col + 1),
        format!("invalid YAML: {info}"),
    )
    .with_help_opt(help.map(str::to_string))
}

/// The line nearest to (at or before) `limit` whose indentation contains a tab.
fn tab_indented_line(src: &Source, limit: u32) -> Option<u32> {
    (1..=limit).rev().find(|&n| {
        let line = src.line(n);
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        let rest = &line[indent..];
        line[..indent].contains('\t') && !rest.is_empty() && !rest.starts_with('#')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Option<Node>, Box<Diagnostic>> {
        load(&Source::new("t.yml", text))
    }

    #[test]
    fn plain_scalars_resolve_like_yaml_1_2() {
        let cases = [
            ("", Scalar::Null),
            ("~", Scalar::Null),
            ("true", Scalar::Bool(true)),
            ("False", Scalar::Bool(false)),
            ("yes", Scalar::Str),
            ("on", Scalar::Str),
            ("12", Scalar::Int(12)),
            ("-3", Scalar::Int(-3)),
            ("0x1f", Scalar::Int(31)),
            ("0o17", Scalar::Int(15)),
            ("1.18", Scalar::Float),
            ("1e3", Scalar::Float),
            (".5", Scalar::Float),
            (".inf", Scalar::Float),
            ("1.2.3", Scalar::Str),
            ("90s", Scalar::Str),
            ("v1", Scalar::Str),
            ("99999999999999999999", Scalar::Float),
        ];
        for (text, expect) in cases {
            assert_eq!(resolve_plain(text), expect, "{text:?}");
        }
    }

    #[test]
    fn keeps_spans_styles_and_duplicate_keys() {
        let node = load_str("a: 1\nb: \"1.20\"\na: x\n")
            .expect("should succeed")
            .expect("should succeed");
        let Kind::Map(entries) = node.kind else {
            panic!("not a map")
        };
        let keys: Vec<_> = entries
            .iter()
            .map(|(k, _)| (k.value.as_str(), k.span.line))
            .collect();
        assert_eq!(keys, [("a", 1), ("b", 2), ("a", 3)]);
        assert!(matches!(&entries[1].1.kind, Kind::Scalar(s, Style::Text) if s == "1.20"));
        assert_eq!(entries[1].1.span, Span::new(2, 3, 2, 9));
    }

    #[test]
    fn aliases_and_merge_keys_expand() {
        let node = load_str("base: &b {image: x, timeout: 5m}\njob:\n  <<: *b\n  image: y\n")
            .expect("should succeed")
            .expect("should succeed");
        let Kind::Map(entries) = node.kind else {
            panic!("not a map")
        };
        let Kind::Map(job) = &entries[1].1.kind else {
            panic!("job not a map")
        };
        let got: Vec<_> = job
            .iter()
            .map(|(k, v)| match &v.kind {
                Kind::Scalar(s, _) => format!("{}={s}", k.value),
                _ => String::new(),
            })
            .collect();
        assert_eq!(got, ["image=y", "timeout=5m"]);
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = load_str(&text).expect_err("should fail");
        assert!(err.message.contains("more than"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(200) + &"]".repeat(200);
        let err = load_str(&text).expect_err("should fail");
        assert!(err.message.contains("nests deeper"), "{err}");
    }

    #[test]
    fn empty_and_comment_only_files_have_no_document() {
        assert!(load_str("").expect("should succeed").is_none());
        assert!(load_str("# nothing\n\n").expect("should succeed").is_none());
    }

    #[test]
    fn tabs_are_reported_on_their_line() {
        for text in ["a:\n\tb: 1\n", "a:\n  b: 1\n\tc: 2\n", "a:\n  - x\n\t- y\n"] {
            let err = load_str(text).expect_err("should fail");
            assert_eq!(
                err.message,
                "tabs are not allowed for indentation; use spaces"
            );
            let loc = err.location.expect("should succeed");
            assert!(
                loc.source_line.starts_with('\t'),
                "{text:?} -> line {}",
                loc.line
            );
        }
    }

    #[test]
    fn tabs_inside_text_are_fine() {
        // A tab after the indentation of a block scalar is content, and a tab after a
        // key's colon is separation: neither is indentation.
        for text in ["a: |\n  make\n  \techo x\n", "a: [1,\t2]\n", "a: 'x\ty'\n"] {
            assert!(load_str(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn crlf_line_endings_parse() {
        let node = load_str("a: 1\r\nb:\r\n  - x\r\n")
            .expect("should succeed")
            .expect("a document");
        let Kind::Map(entries) = node.kind else {
            panic!("not a map")
        };
        assert_eq!(entries[1].0.span.line, 2);
    }

    #[test]
    fn second_document_is_an_error() {
        let err = load_str("a: 1\n---\nb: 2\n").expect_err("should fail");
        assert!(err.message.contains("one YAML document"), "{err}");
        assert_eq!(err.location.expect("should succeed").line, 2);
    }
}
