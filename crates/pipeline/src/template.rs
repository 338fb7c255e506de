//! `${VAR}` interpolation in every field except `script`.
//!
//! Syntax: `${NAME}`, `${NAME:-default}` (the default when NAME is unset or empty; the
//! default is literal text), and `$$` for a literal `$`. A `$` followed by anything else is
//! kept as is, so shell-looking text like `$HOME` passes through untouched. In `cache.key`,
//! `${hash:FILE}` is kept verbatim for the engine, which hashes the file at run time.
//! Templates are parsed once while decoding, so planning a large pipeline only
//! substitutes.

/// A parsed string that may contain `${…}` references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(VarRef),
    /// `${hash:…}`, passed through to the engine.
    Raw(String),
}

/// One `${NAME}` or `${NAME:-default}` in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef {
    /// The variable's name.
    pub name: String,
    /// The text after `:-`, if any.
    pub default: Option<String>,
    /// Where the reference starts in the template text, in characters.
    pub offset: usize,
    /// The reference's length (`${` to `}`), in characters.
    pub len: usize,
}

/// A syntax error in a template, located within its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// Where in the text, in characters.
    pub offset: usize,
    /// How many characters.
    pub len: usize,
}

/// What a variable name resolves to while rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved<'a> {
    /// A plain value.
    Value(&'a str),
    /// A secret: known, but its value only exists at run time.
    Secret,
    /// Not defined.
    Unknown,
}

/// Why rendering failed: a reference to a name that cannot be substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RenderError {
    pub var: VarRef,
    pub secret: bool,
}

/// Whether `name` is a valid variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

impl Template {
    /// Parses `text`; `allow_hash` enables `${hash:FILE}` (only in `cache.key`).
    pub fn parse(text: &str, allow_hash: bool) -> Result<Template, TemplateError> {
        // Most values have no `$` at all.
        if !text.contains('$') {
            return Ok(Template::literal(text));
        }
        let chars: Vec<char> = text.chars().collect();
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c != '$' {
                lit.push(c);
                i += 1;
                continue;
            }
            match chars.get(i + 1) {
                Some('$') => {
                    lit.push('$');
                    i += 2;
                }
                Some('{') => {
                    let Some(close) = chars[i + 2..].iter().position(|&c| c == '}') else {
                        return Err(TemplateError {
                            message: "unclosed `${`".into(),
                            help: Some("close it with `}`, or write `$$` for a literal `$`".into()),
                            offset: i,
                            len: chars.len() - i,
                        });
                    };
                    let inner: String = chars[i + 2..i + 2 + close].iter().collect();
                    let len = close + 3;
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(parse_ref(&inner, i, len, allow_hash)?);
                    i += len;
                }
                _ => {
                    lit.push('$');
                    i += 1;
                }
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template {
            text: text.to_string(),
            parts,
        })
    }

    /// A template with no references (the text is taken literally).
    pub fn literal(text: &str) -> Template {
        let parts = if text.is_empty() {
            Vec::new()
        } else {
            vec![Part::Lit(text.to_string())]
        };
        Template {
            text: text.to_string(),
            parts,
        }
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `${…}` references, in order.
    pub fn vars(&self) -> impl Iterator<Item = &VarRef> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            _ => None,
        })
    }

    /// Substitutes every reference.
    pub(crate) fn render<'a>(
        &self,
        mut resolve: impl FnMut(&str) -> Resolved<'a>,
    ) -> Result<String, RenderError> {
        // Fast path: most fields contain no references at all.
        if let [Part::Lit(l)] = self.parts.as_slice() {
            return Ok(l.clone());
        }
        let mut out = String::with_capacity(self.text.len());
        for p in &self.parts {
            match p {
                Part::Lit(l) | Part::Raw(l) => out.push_str(l),
                Part::Var(v) => match (resolve(&v.name), &v.default) {
                    (Resolved::Value(""), Some(d)) => out.push_str(d),
                    (Resolved::Value(s), _) => out.push_str(s),
                    (Resolved::Unknown, Some(d)) => out.push_str(d),
                    (Resolved::Unknown, None) => {
                        return Err(RenderError {
                            var: v.clone(),
                            secret: false,
                        });
                    }
                    (Resolved::Secret, _) => {
                        return Err(RenderError {
                            var: v.clone(),
                            secret: true,
                        });
                    }
                },
            }
        }
        Ok(out)
    }
}

fn parse_ref(
    inner: &str,
    offset: usize,
    len: usize,
    allow_hash: bool,
) -> Result<Part, TemplateError> {
    let err = |message: String, help: Option<&str>| TemplateError {
        message,
        help: help.map(str::to_string),
        offset,
        len,
    };
    if let Some(files) = inner.strip_prefix("hash:") {
        if !allow_hash {
            return Err(err(
                "`${hash:…}` is only available in `cache.key`".into(),
                Some("write `$${` for a literal `${`"),
            ));
        }
        if files.trim().is_empty() {
            return Err(err(
                "`${hash:}` needs a file name, e.g. `${hash:Cargo.lock}`".into(),
                None,
            ));
        }
        return Ok(Part::Raw(format!("${{{inner}}}")));
    }
    let (name, default) = match inner.split_once(":-") {
        Some((n, d)) => (n, Some(d.to_string())),
        None => (inner, None),
    };
    if name.is_empty() {
        return Err(err(
            "empty variable name in `${}`".into(),
            Some("write `${NAME}`, or `$$` for a literal `$`"),
        ));
    }
    if !is_var_name(name) {
        let help = if name.contains(':') || name.contains('-') {
            "a default is written `${NAME:-default}`"
        } else {
            "variable names are letters, digits and `_`, and do not start with a digit"
        };
        return Err(err(
            format!("invalid variable reference `${{{inner}}}`"),
            Some(help),
        ));
    }
    Ok(Part::Var(VarRef {
        name: name.to_string(),
        default,
        offset,
        len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders with A=1, EMPTY="", TOKEN a secret, everything else unknown.
    fn check(input: &str, expect: Result<&str, &str>) {
        let got = Template::parse(input, true)
            .map_err(|e| e.message)
            .and_then(|t| {
                t.render(|name| match name {
                    "A" => Resolved::Value("1"),
                    "EMPTY" => Resolved::Value(""),
                    "TOKEN" => Resolved::Secret,
                    _ => Resolved::Unknown,
                })
                .map_err(|e| {
                    format!(
                        "{} {}",
                        if e.secret { "secret" } else { "unknown" },
                        e.var.name
                    )
                })
            });
        assert_eq!(
            got,
            expect.map(str::to_string).map_err(str::to_string),
            "input {input:?}"
        );
    }

    #[test]
    fn interpolation() {
        check("plain", Ok("plain"));
        check("", Ok(""));
        check("${A}", Ok("1"));
        check("x-${A}-y", Ok("x-1-y"));
        check("${A}${A}", Ok("11"));
        check("${B:-two}", Ok("two"));
        check("${A:-two}", Ok("1"));
        check("${EMPTY:-d}", Ok("d"));
        check("${EMPTY}", Ok(""));
        check("${B:-}", Ok(""));
        check("${B:-a:-b}", Ok("a:-b"));
        check("$$", Ok("$"));
        check("$${A}", Ok("${A}"));
        check("$$$${A}", Ok("$${A}"));
        check("cost $5", Ok("cost $5"));
        check("$HOME/x", Ok("$HOME/x"));
        check("trailing $", Ok("trailing $"));
        check("${hash:Cargo.lock}-${A}", Ok("${hash:Cargo.lock}-1"));
        check("${B}", Err("unknown B"));
        check("${TOKEN}", Err("secret TOKEN"));
        check("${TOKEN:-x}", Err("secret TOKEN"));
        check("${A", Err("unclosed `${`"));
        check("${}", Err("empty variable name in `${}`"));
        check("${1A}", Err("invalid variable reference `${1A}`"));
        check("${A-B}", Err("invalid variable reference `${A-B}`"));
        check("${A:B}", Err("invalid variable reference `${A:B}`"));
        check(
            "${hash:}",
            Err("`${hash:}` needs a file name, e.g. `${hash:Cargo.lock}`"),
        );
        check("é${A}ü", Ok("é1ü"));
    }

    #[test]
    fn hash_only_where_allowed() {
        let e = Template::parse("${hash:x}", false).expect_err("should fail");
        assert_eq!(e.message, "`${hash:…}` is only available in `cache.key`");
    }

    #[test]
    fn references_know_their_position() {
        let t = Template::parse("ab${X:-1}c${Y}", false).expect("should succeed");
        let vars: Vec<_> = t
            .vars()
            .map(|v| (v.name.as_str(), v.offset, v.len))
            .collect();
        assert_eq!(vars, [("X", 2, 7), ("Y", 10, 4)]);
    }

    #[test]
    fn variable_names() {
        for (name, ok) in [
            ("A", true),
            ("_x1", true),
            ("GO_VERSION", true),
            ("1A", false),
            ("", false),
            ("A-B", false),
            ("É", false),
        ] {
            assert_eq!(is_var_name(name), ok, "{name}");
        }
    }
}
