//! The YAML node tree → the typed [`Spec`], collecting every problem on the way.
//!
//! Each decoding function checks the shape and type of one part of the file, reports what
//! is wrong as a diagnostic and carries on with what it could read, so one pass finds every
//! local problem: unknown and duplicate keys, wrong types, bad durations, globs, cron
//! expressions, `${…}` syntax, paths that leave the workspace, invalid names. Checks that
//! need the whole file (needs, cycles, variable scopes) are in [`crate::validate`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::diagnostic::{Diagnostic, Source};
use crate::duration::parse_duration;
use crate::glob::GlobPattern;
use crate::plan_types::{Event, Probe, RunOn};
use crate::span::{Span, Spanned};
use crate::spec::*;
use crate::suggest::{help_did_you_mean, quoted_list};
use crate::template::{Template, is_var_name};
use crate::yaml::{Key, Kind, Node, Scalar};

const TOP_KEYS: &[&str] = &[
    "name",
    "on",
    "params",
    "env",
    "defaults",
    "jobs",
    "notify",
    "after",
    "concurrency",
];
const ON_KEYS: &[&str] = &["push", "tag", "poll", "schedule", "manual", "pull_request"];
const PARAM_KEYS: &[&str] = &["type", "default", "choices", "pattern", "description"];
const DEFAULTS_KEYS: &[&str] = &["image", "timeout", "retry", "workspace"];
pub(crate) const JOB_KEYS: &[&str] = &[
    "needs",
    "when",
    "image",
    "workspace",
    "env",
    "script",
    "services",
    "artifacts",
    "cache",
    "matrix",
    "runs_on",
    "timeout",
    "retry",
    "allow_failure",
    "image_build",
    "environment",
    "deploy",
];
const WHEN_KEYS: &[&str] = &["branch", "tag", "event", "changed", "param", "status"];
const SERVICE_KEYS: &[&str] = &["image", "env", "command", "ready"];
const READY_KEYS: &[&str] = &["tcp", "http", "port", "timeout"];
const CACHE_KEYS: &[&str] = &["key", "paths"];
const IMAGE_BUILD_KEYS: &[&str] = &["context", "dockerfile", "tag", "args", "push"];
const ENVIRONMENT_KEYS: &[&str] = &["name", "approval", "url"];
const DEPLOY_KEYS: &[&str] = &["compose", "kubernetes"];
const KUBERNETES_KEYS: &[&str] = &["manifests", "namespace"];
const NOTIFY_KEYS: &[&str] = &["on", "webhook", "email"];
const AFTER_KEYS: &[&str] = &["trigger", "params", "on"];
const CONCURRENCY_KEYS: &[&str] = &["group", "limit"];

/// Most retries a job may ask for.
pub(crate) const MAX_RETRY: u32 = 10;
/// Most instances one matrix may expand into.
pub(crate) const MAX_MATRIX: usize = 256;

/// The entries of a mapping after duplicate and unknown keys were reported.
struct Fields<'n> {
    entries: &'n [(Key, Node)],
}

impl<'n> Fields<'n> {
    /// The first value under `key`.
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.value == key)
            .map(|(_, v)| v)
    }

    /// The first value under `key`, unless it is null (`key:` with nothing after it is
    /// the same as leaving the key out for optional keys).
    fn get_some(&self, key: &str) -> Option<&'n Node> {
        self.get(key).filter(|n| !n.is_null())
    }

    fn key(&self, key: &str) -> Option<&'n Key> {
        self.entries
            .iter()
            .find(|(k, _)| k.value == key)
            .map(|(k, _)| k)
    }

    fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.value == key)
    }
}

/// Builds a [`Spec`] and the diagnostics found on the way.
pub(crate) struct Decoder<'s> {
    src: &'s Source,
    pub diags: Vec<Diagnostic>,
    /// Globs by text: the same `branch: main` in a hundred jobs is one compiled matcher.
    globs: HashMap<String, GlobPattern>,
}

impl<'s> Decoder<'s> {
    pub fn new(src: &'s Source) -> Self {
        Decoder {
            src,
            diags: Vec::new(),
            globs: HashMap::new(),
        }
    }

    fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        let d = self.src.error(span, message);
        self.diags.push(d);
        self.diags.last_mut().expect("just pushed")
    }

    fn type_error(&mut self, node: &Node, key: &str, ctx: &str, expected: &str) {
        let found = node.describe();
        self.error(
            node.span,
            format!("wrong type for {key:?} in {ctx}: expected {expected}, found {found}"),
        );
    }

    /// Checks that `node` is a mapping (null counts as empty), reporting duplicate keys
    /// and keys not in `allowed` (with a suggestion).
    /// `key` and `parent` name the value for a type error (`"when" in job "x"`); `ctx`
    /// names the mapping itself for key errors (`unknown key "y" in "when" of job "x"`).
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        key: &str,
        parent: &str,
        ctx: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let entries = self.map_entries(node, key, parent, "a mapping")?;
        for (i, (k, _)) in entries.iter().enumerate() {
            if let Some((first, _)) = entries[..i].iter().find(|(f, _)| f.value == k.value) {
                let line = first.span.line;
                self.error(k.span, format!("duplicate key {:?} in {ctx}", k.value))
                    .notes
                    .push(format!("first defined on line {line}"));
            } else if !allowed.contains(&k.value.as_str()) {
                let help =
                    help_did_you_mean(&k.value, allowed.iter().copied()).unwrap_or_else(|| {
                        format!("the keys allowed here are: {}", allowed.join(", "))
                    });
                self.error(k.span, format!("unknown key {:?} in {ctx}", k.value))
                    .help = Some(help);
            }
        }
        Some(Fields { entries })
    }

    /// The entries of a mapping (null counts as empty), or a type error.
    fn map_entries<'n>(
        &mut self,
        node: &'n Node,
        key: &str,
        ctx: &str,
        expected: &str,
    ) -> Option<&'n [(Key, Node)]> {
        match &node.kind {
            Kind::Map(entries) => Some(entries),
            _ if node.is_null() => Some(&[]),
            _ => {
                self.type_error(node, key, ctx, expected);
                None
            }
        }
    }

    /// The entries of a name → value mapping, reporting duplicate names as
    /// `duplicate {what} "x"`; only the first of duplicates is returned.
    fn named_entries<'n>(
        &mut self,
        node: &'n Node,
        key: &str,
        parent: &str,
        ctx: &str,
        what: &str,
        expected: &str,
    ) -> Vec<&'n (Key, Node)> {
        let Some(entries) = self.map_entries(node, key, parent, expected) else {
            return Vec::new();
        };
        let mut out: Vec<&'n (Key, Node)> = Vec::with_capacity(entries.len());
        // Name → position in `out`; a map, not a scan, because `jobs` may have thousands.
        let mut seen: HashMap<&'n str, usize> = HashMap::with_capacity(entries.len());
        for e in entries {
            if let Some(&first) = seen.get(e.0.value.as_str()) {
                let line = out[first].0.span.line;
                self.error(
                    e.0.span,
                    format!("duplicate {what} {:?} in {ctx}", e.0.value),
                )
                .notes
                .push(format!("first defined on line {line}"));
            } else {
                seen.insert(&e.0.value, out.len());
                out.push(e);
            }
        }
        out
    }

    /// Any non-null scalar, as the text written (`3306`, `true` and `1.20` stay text).
    fn text(
        &mut self,
        node: &Node,
        key: &str,
        ctx: &str,
        expected: &str,
    ) -> Option<Spanned<String>> {
        match &node.kind {
            Kind::Scalar(s, _) if !node.is_null() => Some(Spanned::new(s.clone(), node.span)),
            _ => {
                self.type_error(node, key, ctx, expected);
                None
            }
        }
    }

    /// A string proper: numbers, booleans and null are type errors. Used for names and
    /// keywords, where `needs: 5` is far more likely a mistake than a job called "5".
    fn name(
        &mut self,
        node: &Node,
        key: &str,
        ctx: &str,
        expected: &str,
    ) -> Option<Spanned<String>> {
        match (&node.kind, node.scalar_type()) {
            (Kind::Scalar(s, _), Some(Scalar::Str)) => Some(Spanned::new(s.clone(), node.span)),
            _ => {
                self.type_error(node, key, ctx, expected);
                None
            }
        }
    }

    /// A scalar or a list of scalars, each read with `item`.
    fn one_or_list<'n, T>(
        &mut self,
        node: &'n Node,
        key: &str,
        ctx: &str,
        expected_list: &str,
        mut item: impl FnMut(&mut Self, &'n Node) -> Option<T>,
    ) -> Vec<T> {
        match &node.kind {
            Kind::Seq(items) => items.iter().filter_map(|n| item(self, n)).collect(),
            Kind::Scalar(..) if !node.is_null() => item(self, node).into_iter().collect(),
            _ => {
                self.type_error(node, key, ctx, expected_list);
                Vec::new()
            }
        }
    }

    fn bool(&mut self, node: &Node, key: &str, ctx: &str) -> Option<Spanned<bool>> {
        match node.scalar_type() {
            Some(Scalar::Bool(b)) => Some(Spanned::new(b, node.span)),
            _ => {
                let help = match &node.kind {
                    Kind::Scalar(s, _) if matches!(s.as_str(), "yes" | "on" | "y" | "\"true\"") => {
                        Some("write true")
                    }
                    Kind::Scalar(s, _) if matches!(s.as_str(), "no" | "off" | "n") => {
                        Some("write false")
                    }
                    _ => None,
                };
                self.type_error(node, key, ctx, "true or false");
                if let Some(h) = help {
                    self.diags.last_mut().expect("just pushed").help = Some(h.into());
                }
                None
            }
        }
    }

    fn uint(
        &mut self,
        node: &Node,
        key: &str,
        ctx: &str,
        min: u32,
        max: u32,
    ) -> Option<Spanned<u32>> {
        let expected = format!("a whole number from {min} to {max}");
        let n = match (node.scalar_type(), &node.kind) {
            (Some(Scalar::Int(n)), _) => n,
            // "2" in quotes is still clearly a number.
            (Some(Scalar::Str), Kind::Scalar(s, _)) if s.trim().parse::<i64>().is_ok() => {
                s.trim().parse::<i64>().unwrap_or_default()
            }
            _ => {
                self.type_error(node, key, ctx, &expected);
                return None;
            }
        };
        if n < i64::from(min) || n > i64::from(max) {
            self.error(
                node.span,
                format!("{key:?} in {ctx} must be from {min} to {max}, not {n}"),
            );
            return None;
        }
        Some(Spanned::new(n as u32, node.span))
    }

    fn port(&mut self, node: &Node, key: &str, ctx: &str) -> Option<u16> {
        self.uint(node, key, ctx, 1, 65535).map(|n| n.value as u16)
    }

    /// A duration like `90s`; `positive` refuses zero.
    fn duration(
        &mut self,
        node: &Node,
        key: &str,
        ctx: &str,
        positive: bool,
    ) -> Option<Spanned<Duration>> {
        let text = self.text(node, key, ctx, "a duration like 90s, 5m or 1h30m")?;
        match parse_duration(&text.value) {
            Ok(d) if positive && d.is_zero() => {
                self.error(
                    node.span,
                    format!("{key:?} in {ctx} must be longer than zero"),
                );
                None
            }
            Ok(d) => Some(Spanned::new(d, node.span)),
            Err(e) => {
                let help = e.help();
                self.error(
                    node.span,
                    format!("invalid duration for {key:?} in {ctx}: {e}"),
                )
                .help = help;
                None
            }
        }
    }

    /// A string with `${…}` references; syntax errors point at the reference.
    fn template(
        &mut self,
        node: &Node,
        key: &str,
        ctx: &str,
        expected: &str,
        allow_hash: bool,
    ) -> Option<Spanned<Template>> {
        let text = self.text(node, key, ctx, expected)?;
        self.parse_template(&text, key, ctx, allow_hash)
    }

    fn parse_template(
        &mut self,
        text: &Spanned<String>,
        key: &str,
        ctx: &str,
        allow_hash: bool,
    ) -> Option<Spanned<Template>> {
        match Template::parse(&text.value, allow_hash) {
            Ok(t) => Some(Spanned::new(t, text.span)),
            Err(e) => {
                let span = sub_span(self.src, text.span, &text.value, e.offset, e.len);
                self.error(span, format!("{} in {key:?} of {ctx}", e.message))
                    .help = e.help;
                None
            }
        }
    }

    fn glob(&mut self, node: &Node, key: &str, ctx: &str) -> Option<Spanned<GlobPattern>> {
        let text = self.text(node, key, ctx, "a glob pattern")?;
        if let Some(g) = self.globs.get(&text.value) {
            return Some(Spanned::new(g.clone(), text.span));
        }
        match GlobPattern::new(&text.value) {
            Ok(g) => {
                self.globs.insert(text.value.clone(), g.clone());
                Some(Spanned::new(g, text.span))
            }
            Err(e) => {
                self.error(text.span, format!("invalid glob {:?} in {key:?} of {ctx}: {e}", text.value)).help =
                    Some("globs use `*`, `**`, `?`, `[abc]` and `{a,b}`; escape a literal character with `\\`".into());
                None
            }
        }
    }

    fn globs(&mut self, node: &Node, key: &str, ctx: &str) -> Vec<Spanned<GlobPattern>> {
        self.one_or_list(node, key, ctx, "a glob or a list of globs", |d, n| {
            d.glob(n, key, ctx)
        })
    }

    /// A path relative to the workspace: no absolute paths, no `..`.
    fn rel_path(
        &mut self,
        node: &Node,
        key: &str,
        ctx: &str,
        expected: &str,
    ) -> Option<Spanned<Template>> {
        let t = self.template(node, key, ctx, expected, false)?;
        if let Err(why) = check_relative(t.as_str()) {
            self.error(t.span, format!("{key:?} in {ctx} {why}")).help =
                Some("paths are relative to the workspace root and stay inside it".into());
            return None;
        }
        Some(t)
    }

    fn rel_paths(&mut self, node: &Node, key: &str, ctx: &str) -> Vec<Spanned<Template>> {
        self.one_or_list(node, key, ctx, "a path or a list of paths", |d, n| {
            d.rel_path(n, key, ctx, "a path")
        })
    }

    /// Like [`Self::fields`] for a key that must hold a mapping, and a value for a key
    /// that must be present.
    fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        key: &str,
        ctx: &str,
        owner: Span,
    ) -> Option<&'n Node> {
        match fields.get(key) {
            Some(n) if !n.is_null() => Some(n),
            Some(n) => {
                self.error(n.span, format!("{key:?} in {ctx} is empty"));
                None
            }
            None => {
                self.error(owner, format!("{ctx} has no {key:?}")).help =
                    Some(format!("add `{key}:`"));
                None
            }
        }
    }

    // --- the file ---------------------------------------------------------------------

    pub fn spec(&mut self, root: Option<&Node>, default_name: &str, source: Arc<Source>) -> Spec {
        let mut spec = Spec {
            name: Spanned::unspanned(default_name.to_string()),
            on: Triggers::default(),
            params: Vec::new(),
            env: Vec::new(),
            defaults: Defaults::default(),
            jobs: Vec::new(),
            notify: Vec::new(),
            after: Vec::new(),
            concurrency: None,
            source,
        };
        let Some(root) = root else {
            self.diags.push(
                Diagnostic::new(format!("{} is empty", self.src.path)).with_help(
                    "a pipeline needs at least `jobs:` with one job that has a `script`",
                ),
            );
            return spec;
        };
        if !matches!(root.kind, Kind::Map(_)) {
            let found = root.describe();
            self.error(
                root.span,
                format!(
                    "expected a mapping of keys (name, on, jobs, …) at the top level, found {found}"
                ),
            );
            return spec;
        }
        let ctx = "the top level";
        let Some(f) = self.fields(root, "", ctx, ctx, TOP_KEYS) else {
            return spec;
        };
        if let Some(n) = f.get("name")
            && let Some(name) = self.name(n, "name", ctx, "a pipeline name")
        {
            if name.value.trim().is_empty()
                || name.value.contains(['/', '\\'])
                || name.value.chars().any(char::is_control)
            {
                self.error(name.span, format!("invalid pipeline name {:?}", name.value))
                    .help = Some("use a non-empty name without slashes".into());
            } else {
                spec.name = name;
            }
        }
        if let Some(n) = f.get_some("on") {
            spec.on = self.triggers(n);
        }
        if let Some(n) = f.get_some("params") {
            spec.params = self.params(n);
        }
        if let Some(n) = f.get_some("env") {
            spec.env = self.env(n, "the top-level env");
        }
        if let Some(n) = f.get_some("defaults") {
            spec.defaults = self.defaults(n);
        }
        match f.get("jobs") {
            None => self.diags.push(
                Diagnostic::new(format!("{} has no `jobs:`", self.src.path))
                    .with_help("add `jobs:` with at least one job that has a `script`"),
            ),
            Some(n) => spec.jobs = self.jobs(n, f.key("jobs").map_or(n.span, |k| k.span)),
        }
        if let Some(n) = f.get_some("notify") {
            spec.notify = self.notify(n);
        }
        if let Some(n) = f.get_some("after") {
            spec.after = self.after(n);
        }
        if let Some(n) = f.get_some("concurrency") {
            spec.concurrency = self.concurrency(n);
        }
        spec
    }

    fn triggers(&mut self, node: &Node) -> Triggers {
        let ctx = "\"on\"";
        let mut t = Triggers::default();
        let Some(f) = self.fields(node, "on", "the top level", ctx, ON_KEYS) else {
            return t;
        };
        if let Some(n) = f.get_some("push") {
            t.push = self.globs(n, "push", ctx);
        }
        if let Some(n) = f.get_some("tag") {
            t.tag = self.globs(n, "tag", ctx);
        }
        if let Some(n) = f.get_some("pull_request") {
            t.pull_request = self.globs(n, "pull_request", ctx);
        }
        if let Some(n) = f.get_some("poll") {
            t.poll = self.duration(n, "poll", ctx, true);
        }
        if let Some(n) = f.get_some("schedule") {
            t.schedule = self.one_or_list(
                n,
                "schedule",
                ctx,
                "a cron expression or a list of them",
                |d, n| d.cron(n),
            );
        }
        if let Some(n) = f.get_some("manual") {
            t.manual = self.bool(n, "manual", ctx);
        }
        t
    }

    fn cron(&mut self, node: &Node) -> Option<Spanned<String>> {
        let text = self.text(node, "schedule", "\"on\"", "a cron expression")?;
        let expr = text.value.trim();
        let fields = expr.split_whitespace().count();
        let problem = if !expr.starts_with('@') && fields != 5 {
            Some(format!(
                "it has {fields} field{}, not 5",
                if fields == 1 { "" } else { "s" }
            ))
        } else {
            let parser = croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Disallowed)
                .year(croner::parser::Year::Disallowed)
                .build();
            parser
                .parse(expr)
                .err()
                .map(|e| lowercase_first(e.to_string().trim_end_matches('.')))
        };
        match problem {
            None => Some(text),
            Some(why) => {
                self.error(text.span, format!("invalid cron expression {:?}: {why}", text.value)).help = Some(
                    "a schedule has 5 fields, minute hour day-of-month month day-of-week, in UTC, e.g. \"0 3 * * 1-5\"".into(),
                );
                None
            }
        }
    }

    fn params(&mut self, node: &Node) -> Vec<Param> {
        let mut out = Vec::new();
        for (key, value) in self.named_entries(
            node,
            "params",
            "the top level",
            "\"params\"",
            "param",
            "a mapping of param names",
        ) {
            if !is_var_name(&key.value) {
                self.error(key.span, format!("invalid param name {:?}", key.value)).help =
                    Some("param names become environment variables: letters, digits and `_`, not starting with a digit".into());
                continue;
            }
            if key.value.starts_with("GANTRY_") || key.value == "CI" {
                self.error(
                    key.span,
                    format!(
                        "param name {:?} is reserved for gantry's built-in variables",
                        key.value
                    ),
                );
                continue;
            }
            if let Some(p) = self.param(key, value) {
                out.push(p);
            }
        }
        out
    }

    fn param(&mut self, key: &Key, node: &Node) -> Option<Param> {
        let ctx = format!("param {:?}", key.value);
        if matches!(node.kind, Kind::Scalar(..)) && !node.is_null() {
            self.type_error(
                node,
                &key.value,
                "\"params\"",
                "a mapping with `type`, `default`, …",
            );
            self.diags.last_mut().expect("just pushed").help = Some(format!(
                "write `{}: {{ default: ... }}` for a string param with a default",
                key.value
            ));
            return Some(Param::untyped(key));
        }
        let Some(f) = self.fields(node, &key.value, "\"params\"", &ctx, PARAM_KEYS) else {
            return Some(Param::untyped(key));
        };
        let kind = match f.get_some("type") {
            None => Spanned::unspanned(ParamType::String),
            Some(n) => {
                let Some(name) = self.name(n, "type", &ctx, "one of string, bool, choice, ref")
                else {
                    return Some(Param::untyped(key));
                };
                match ParamType::ALL
                    .into_iter()
                    .find(|t| t.as_str() == name.value)
                {
                    Some(t) => Spanned::new(t, name.span),
                    None => {
                        let help =
                            help_did_you_mean(&name.value, ParamType::ALL.map(ParamType::as_str))
                                .unwrap_or_else(|| {
                                    "the types are string, bool, choice and ref".into()
                                });
                        self.error(
                            name.span,
                            format!("unknown param type {:?} for {ctx}", name.value),
                        )
                        .help = Some(help);
                        // Keep the param (as a string) so references to it are not reported too.
                        Spanned::unspanned(ParamType::String)
                    }
                }
            }
        };
        let mut p = Param {
            name: key.clone(),
            kind,
            default: None,
            choices: Vec::new(),
            pattern: None,
            description: None,
        };
        if let Some(n) = f.get_some("description") {
            p.description = self.text(n, "description", &ctx, "a text");
        }
        if let Some(n) = f.get_some("choices") {
            let choices = self.one_or_list(n, "choices", &ctx, "a list of values", |d, n| {
                d.text(n, "choices", &ctx, "a value")
            });
            for (i, c) in choices.iter().enumerate() {
                if choices[..i].iter().any(|e| e.value == c.value) {
                    self.error(c.span, format!("duplicate choice {:?} in {ctx}", c.value));
                }
            }
            if p.kind.value != ParamType::Choice {
                self.error(
                    n.span,
                    format!("\"choices\" in {ctx} only applies to choice params"),
                )
                .help = Some("add `type: choice`".into());
            } else if choices.is_empty() {
                self.error(n.span, format!("{ctx} has no choices"));
            }
            p.choices = choices;
        } else if p.kind.value == ParamType::Choice {
            self.error(
                key.span,
                format!("{ctx} is a choice but has no \"choices\""),
            )
            .help = Some("add `choices: [a, b, ...]`".into());
        }
        if let Some(n) = f.get_some("pattern") {
            if p.kind.value != ParamType::Ref {
                self.error(
                    n.span,
                    format!("\"pattern\" in {ctx} only applies to ref params"),
                )
                .help = Some("add `type: ref`, or remove the pattern".into());
            } else {
                p.pattern = self.glob(n, "pattern", &ctx);
            }
        }
        if let Some(n) = f.get_some("default") {
            p.default = self.param_default(&p, n, &ctx);
        }
        Some(p)
    }

    fn param_default(&mut self, p: &Param, node: &Node, ctx: &str) -> Option<Spanned<String>> {
        match p.kind.value {
            ParamType::Bool => {
                let b = match (node.scalar_type(), &node.kind) {
                    (Some(Scalar::Bool(b)), _) => Some(b),
                    (Some(Scalar::Str), Kind::Scalar(s, _)) if s == "true" || s == "false" => {
                        Some(s == "true")
                    }
                    _ => None,
                };
                match b {
                    Some(b) => Some(Spanned::new(b.to_string(), node.span)),
                    None => {
                        let found = node.describe();
                        self.error(
                            node.span,
                            format!(
                                "the default of bool {ctx} must be true or false, found {found}"
                            ),
                        );
                        None
                    }
                }
            }
            ParamType::Choice => {
                let d = self.text(node, "default", ctx, "one of the choices")?;
                if !p.choices.is_empty() && !p.choices.iter().any(|c| c.value == d.value) {
                    let help =
                        help_did_you_mean(&d.value, p.choices.iter().map(|c| c.value.as_str()))
                            .unwrap_or_else(|| {
                                format!(
                                    "the choices are {}",
                                    quoted_list(p.choices.iter().map(|c| c.value.as_str()))
                                )
                            });
                    self.error(
                        d.span,
                        format!(
                            "the default {:?} of {ctx} is not one of its choices",
                            d.value
                        ),
                    )
                    .help = Some(help);
                    return None;
                }
                Some(d)
            }
            ParamType::String | ParamType::Ref => self.text(node, "default", ctx, "a value"),
        }
    }

    fn env(&mut self, node: &Node, ctx: &str) -> Vec<EnvVar> {
        let mut out = Vec::new();
        // `ctx` names the env map itself ("the env of job \"x\"").
        for (key, value) in self.named_entries(
            node,
            "env",
            ctx.strip_prefix("the env of ").unwrap_or("the top level"),
            ctx,
            "variable",
            "a mapping of variable names to values",
        ) {
            if !is_var_name(&key.value) {
                self.error(
                    key.span,
                    format!("invalid variable name {:?} in {ctx}", key.value),
                )
                .help = Some(
                    "variable names are letters, digits and `_`, and do not start with a digit"
                        .into(),
                );
                continue;
            }
            if key.value.starts_with("GANTRY_") {
                self.error(
                    key.span,
                    format!(
                        "variable name {:?} is reserved for gantry's built-in variables",
                        key.value
                    ),
                );
                continue;
            }
            let ctx_var = format!("variable {:?} of {ctx}", key.value);
            let value = match &value.kind {
                Kind::Map(_) => {
                    let Some(f) = self.fields(value, &key.value, ctx, &ctx_var, &["secret"]) else {
                        continue;
                    };
                    let Some(n) = self.required(&f, "secret", &ctx_var, value.span) else {
                        continue;
                    };
                    let Some(name) = self.name(n, "secret", &ctx_var, "a secret name") else {
                        continue;
                    };
                    if name.value.is_empty()
                        || !name
                            .value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                    {
                        self.error(name.span, format!("invalid secret name {:?}", name.value))
                            .help =
                            Some("secret names are letters, digits, `_`, `-` and `.`".into());
                        continue;
                    }
                    Spanned::new(EnvSource::Secret(name.value), value.span)
                }
                // `X:` with nothing after it is an empty value, as in a shell.
                _ if value.is_null() => {
                    Spanned::new(EnvSource::Plain(Template::literal("")), value.span)
                }
                _ => {
                    // A value with a bad `${…}` is reported and kept as literal text, so the
                    // variable still exists for the references to it.
                    let t = self
                        .template(value, &key.value, ctx, "a value or { secret: NAME }", false)
                        .unwrap_or_else(|| Spanned::new(Template::literal(""), value.span));
                    Spanned::new(EnvSource::Plain(t.value), t.span)
                }
            };
            out.push(EnvVar {
                name: key.clone(),
                value,
            });
        }
        out
    }

    fn defaults(&mut self, node: &Node) -> Defaults {
        let ctx = "\"defaults\"";
        let mut d = Defaults::default();
        let Some(f) = self.fields(node, "defaults", "the top level", ctx, DEFAULTS_KEYS) else {
            return d;
        };
        if let Some(n) = f.get_some("image") {
            d.image = self.template(n, "image", ctx, "an image name", false);
        }
        if let Some(n) = f.get_some("timeout") {
            d.timeout = self.duration(n, "timeout", ctx, true);
        }
        if let Some(n) = f.get_some("retry") {
            d.retry = self.uint(n, "retry", ctx, 0, MAX_RETRY);
        }
        if let Some(n) = f.get_some("workspace") {
            d.workspace = self.workspace(n, ctx);
        }
        d
    }

    fn workspace(&mut self, node: &Node, ctx: &str) -> Option<Spanned<Template>> {
        let t = self.template(node, "workspace", ctx, "an absolute path", false)?;
        let s = t.as_str();
        // A value starting with a variable is checked once it is resolved, at plan time.
        if !s.starts_with('/') && !s.starts_with("${") {
            self.error(t.span, format!("\"workspace\" in {ctx} must be an absolute path in the container, like /workspace"));
            return None;
        }
        if s.split('/').any(|c| c == "..") {
            self.error(
                t.span,
                format!("\"workspace\" in {ctx} must not contain `..`"),
            );
            return None;
        }
        Some(t)
    }

    fn jobs(&mut self, node: &Node, key_span: Span) -> Vec<Job> {
        if node.is_null() || matches!(&node.kind, Kind::Map(e) if e.is_empty()) {
            self.error(key_span, "\"jobs\" is empty").help = Some(
                "define at least one job, e.g. `jobs: { test: { script: [make test] } }`".into(),
            );
            return Vec::new();
        }
        let entries = self.named_entries(
            node,
            "jobs",
            "the top level",
            "\"jobs\"",
            "job",
            "a mapping of job names to jobs",
        );
        let mut out = Vec::new();
        for (key, value) in entries {
            if !is_job_name(&key.value) {
                self.error(key.span, format!("invalid job name {:?}", key.value)).help =
                    Some("job names are letters, digits, `-`, `_` and `.`, starting with a letter, digit or `_`".into());
                continue;
            }
            out.push(self.job(key, value));
        }
        out
    }

    fn job(&mut self, key: &Key, node: &Node) -> Job {
        let ctx = format!("job {:?}", key.value);
        let ctx = ctx.as_str();
        let mut job = Job {
            name: key.clone(),
            needs: Vec::new(),
            when: When::default(),
            image: None,
            workspace: None,
            env: Vec::new(),
            script: Vec::new(),
            services: Vec::new(),
            artifacts: Vec::new(),
            cache: None,
            matrix: Vec::new(),
            runs_on: Vec::new(),
            timeout: None,
            retry: None,
            allow_failure: None,
            image_build: None,
            environment: None,
            deploy: None,
        };
        let Some(f) = self.fields(node, &key.value, "\"jobs\"", ctx, JOB_KEYS) else {
            return job;
        };
        if let Some(n) = f.get_some("needs") {
            // A lone scalar must be a name too: `needs: 5` is "not a list of job names",
            // not a job called "5".
            job.needs =
                if matches!(n.kind, Kind::Scalar(..)) && n.scalar_type() != Some(Scalar::Str) {
                    self.type_error(n, "needs", ctx, "a list of job names");
                    Vec::new()
                } else {
                    self.one_or_list(n, "needs", ctx, "a list of job names", |d, n| {
                        d.name(n, "needs", ctx, "a job name")
                    })
                };
        }
        if let Some(n) = f.get_some("when") {
            job.when = self.when(n, ctx);
        }
        if let Some(n) = f.get_some("image") {
            job.image = self.template(n, "image", ctx, "an image name", false);
        }
        if let Some(n) = f.get_some("workspace") {
            job.workspace = self.workspace(n, ctx);
        }
        if let Some(n) = f.get_some("env") {
            job.env = self.env(n, &format!("the env of {ctx}"));
        }
        if let Some(n) = f.get("script") {
            job.script = self.one_or_list(
                n,
                "script",
                ctx,
                "a command or a list of commands",
                |d, n| {
                    let cmd = d.text(n, "script", ctx, "a command");
                    if let Kind::Map(_) = n.kind {
                        // `- echo a: b` is a mapping to YAML; the fix is quoting.
                        d.diags.last_mut().expect("just pushed").help = Some(
                            "a command containing \": \" must be quoted, e.g. - \"echo a: b\""
                                .into(),
                        );
                    }
                    cmd
                },
            );
            if job.script.is_empty()
                && (n.is_null() || matches!(&n.kind, Kind::Seq(v) if v.is_empty()))
            {
                self.error(n.span, format!("\"script\" of {ctx} is empty"))
                    .help = Some("add commands, or remove `script:`".into());
            }
        }
        if let Some(n) = f.get_some("services") {
            job.services = self.services(n, ctx);
        }
        if let Some(n) = f.get_some("artifacts") {
            job.artifacts = self.rel_paths(n, "artifacts", ctx);
            for a in &job.artifacts {
                if let Err(e) = GlobPattern::new(a.as_str()) {
                    self.error(
                        a.span,
                        format!(
                            "invalid glob {:?} in \"artifacts\" of {ctx}: {e}",
                            a.as_str()
                        ),
                    );
                }
            }
        }
        if let Some(n) = f.get_some("cache") {
            job.cache = self.cache(n, ctx);
        }
        if let Some(n) = f.get_some("matrix") {
            job.matrix = self.matrix(n, ctx);
        }
        if let Some(n) = f.get_some("runs_on") {
            for (k, v) in self.named_entries(
                n,
                "runs_on",
                ctx,
                &format!("\"runs_on\" of {ctx}"),
                "label",
                "a mapping of labels, e.g. { os: linux }",
            ) {
                if let Some(t) = self.template(v, &k.value, ctx, "a label value", false) {
                    job.runs_on.push((k.clone(), t));
                }
            }
        }
        if let Some(n) = f.get_some("timeout") {
            job.timeout = self.duration(n, "timeout", ctx, true);
        }
        if let Some(n) = f.get_some("retry") {
            job.retry = self.uint(n, "retry", ctx, 0, MAX_RETRY);
        }
        if let Some(n) = f.get_some("allow_failure") {
            job.allow_failure = self.bool(n, "allow_failure", ctx);
        }
        if let Some(n) = f.get_some("image_build") {
            job.image_build = self.image_build(n, ctx);
        }
        if let Some(n) = f.get_some("environment") {
            job.environment = self.environment(n, ctx);
        }
        if let Some(n) = f.get_some("deploy") {
            job.deploy = self.deploy(n, ctx);
        }
        // A misspelled `script:` was already reported with its fix; saying "nothing to
        // do" as well would be noise.
        let misspelled_work = f.entries.iter().any(|(k, _)| {
            !JOB_KEYS.contains(&k.value.as_str())
                && crate::suggest::did_you_mean(&k.value, ["script", "image_build", "deploy"])
                    .is_some()
        });
        if !f.has("script") && !f.has("image_build") && !f.has("deploy") && !misspelled_work {
            self.error(key.span, format!("{ctx} has nothing to do"))
                .help = Some("give it a \"script\", an \"image_build\" or a \"deploy\"".into());
        }
        job
    }

    fn when(&mut self, node: &Node, job_ctx: &str) -> When {
        let ctx = format!("\"when\" of {job_ctx}");
        let ctx = ctx.as_str();
        let mut w = When::default();
        let Some(f) = self.fields(node, "when", job_ctx, ctx, WHEN_KEYS) else {
            return w;
        };
        if let Some(n) = f.get_some("branch") {
            w.branch = Some(self.globs(n, "branch", ctx));
        }
        if let Some(n) = f.get_some("tag") {
            w.tag = Some(self.globs(n, "tag", ctx));
        }
        if let Some(n) = f.get_some("changed") {
            let globs: Vec<Spanned<GlobPattern>> = self.globs(n, "changed", ctx);
            w.changed = Some(globs);
        }
        if let Some(n) = f.get_some("event") {
            let events =
                self.one_or_list(n, "event", ctx, "an event or a list of events", |d, n| {
                    let name = d.name(n, "event", ctx, "an event name")?;
                    match Event::parse(&name.value) {
                        Some(e) => Some(Spanned::new(e, name.span)),
                        None => {
                            let all = Event::ALL.map(Event::as_str);
                            let help = help_did_you_mean(&name.value, all)
                                .unwrap_or_else(|| format!("the events are {}", all.join(", ")));
                            d.error(
                                name.span,
                                format!("unknown event {:?} in {ctx}", name.value),
                            )
                            .help = Some(help);
                            None
                        }
                    }
                });
            w.event = Some(events);
        }
        if let Some(n) = f.get_some("param") {
            for (k, v) in self.named_entries(
                n,
                "param",
                ctx,
                &format!("\"param\" of {ctx}"),
                "param",
                "a mapping of param names to values",
            ) {
                let values =
                    self.one_or_list(v, &k.value, ctx, "a value or a list of values", |d, n| {
                        d.glob(n, &k.value, ctx)
                    });
                w.param.push((k.clone(), values));
            }
        }
        if let Some(n) = f.get_some("status")
            && let Some(name) = self.name(n, "status", ctx, "success, failure or always")
        {
            let status = match name.value.as_str() {
                "success" => Some(RunOn::Success),
                "failure" => Some(RunOn::Failure),
                "always" => Some(RunOn::Always),
                other => {
                    let help = help_did_you_mean(other, ["success", "failure", "always"])
                        .unwrap_or_else(|| "the statuses are success, failure and always".into());
                    self.error(name.span, format!("unknown status {other:?} in {ctx}"))
                        .help = Some(help);
                    None
                }
            };
            w.status = status.map(|s| Spanned::new(s, name.span));
        }
        w
    }

    fn services(&mut self, node: &Node, job_ctx: &str) -> Vec<ServiceSpec> {
        let mut out = Vec::new();
        for (key, value) in self.named_entries(
            node,
            "services",
            job_ctx,
            &format!("\"services\" of {job_ctx}"),
            "service",
            "a mapping of service names to services",
        ) {
            if let Err(why) = check_hostname(&key.value) {
                let suggestion = hostname_suggestion(&key.value);
                self.error(
                    key.span,
                    format!(
                        "service name {:?} in {job_ctx} is not a valid hostname: {why}",
                        key.value
                    ),
                )
                .help = Some(match suggestion {
                    Some(s) => format!("services are reached by name; try {s:?}"),
                    None => "use lowercase letters, digits and `-`".into(),
                });
                continue;
            }
            let ctx = format!("service {:?} of {job_ctx}", key.value);
            let ctx = ctx.as_str();
            let Some(f) = self.fields(value, &key.value, job_ctx, ctx, SERVICE_KEYS) else {
                continue;
            };
            let image = self
                .required(&f, "image", ctx, key.span)
                .and_then(|n| self.template(n, "image", ctx, "an image name", false));
            let env = match f.get_some("env") {
                Some(n) => self.env(n, &format!("the env of {ctx}")),
                None => Vec::new(),
            };
            let command = f.get_some("command").and_then(|n| self.command(n, ctx));
            let ready = f.get_some("ready").and_then(|n| self.ready(n, ctx));
            if let Some(image) = image {
                out.push(ServiceSpec {
                    name: key.clone(),
                    image,
                    env,
                    command,
                    ready,
                });
            }
        }
        out
    }

    fn command(&mut self, node: &Node, ctx: &str) -> Option<Vec<Spanned<Template>>> {
        match &node.kind {
            Kind::Seq(items) => Some(
                items
                    .iter()
                    .filter_map(|n| self.template(n, "command", ctx, "an argument", false))
                    .collect(),
            ),
            Kind::Scalar(s, _) if !node.is_null() => {
                // A string is split on whitespace; quoting would need a shell parser, so it
                // is refused rather than guessed at.
                if s.contains(['"', '\'', '\\']) {
                    self.error(node.span, format!("\"command\" of {ctx} contains quotes"))
                        .help = Some(
                        "write the command as a list of arguments: [arg1, \"arg two\"]".into(),
                    );
                    return None;
                }
                let mut args = Vec::new();
                for word in s.split_whitespace() {
                    let word = Spanned::new(word.to_string(), node.span);
                    args.push(self.parse_template(&word, "command", ctx, false)?);
                }
                Some(args)
            }
            _ => {
                self.type_error(node, "command", ctx, "a list of arguments");
                None
            }
        }
    }

    fn ready(&mut self, node: &Node, service_ctx: &str) -> Option<ReadySpec> {
        let ctx = format!("\"ready\" of {service_ctx}");
        let ctx = ctx.as_str();
        let f = self.fields(node, "ready", service_ctx, ctx, READY_KEYS)?;
        let timeout = f
            .get_some("timeout")
            .and_then(|n| self.duration(n, "timeout", ctx, true));
        let probe = match (f.get_some("tcp"), f.get_some("http")) {
            (Some(_), Some(http)) => {
                self.error(http.span, format!("{ctx} has both \"tcp\" and \"http\""))
                    .help =
                    Some("keep one: `tcp: PORT`, or `http: /path` with `port: PORT`".into());
                None
            }
            (None, None) => {
                self.error(node.span, format!("{ctx} needs \"tcp\" or \"http\""))
                    .help = Some(
                    "write `ready: { tcp: 5432 }` or `ready: { http: /health, port: 8080 }`".into(),
                );
                None
            }
            (Some(tcp), None) => {
                if let Some(p) = f.get_some("port") {
                    self.error(p.span, format!("\"port\" in {ctx} is only for http probes"))
                        .help = Some("a tcp probe takes the port as its value: `tcp: 5432`".into());
                }
                self.port(tcp, "tcp", ctx)
                    .map(|port| Spanned::new(Probe::Tcp { port }, tcp.span))
            }
            (None, Some(http)) => {
                let path = self.text(http, "http", ctx, "a URL path like /health");
                if let Some(p) = &path
                    && !p.value.starts_with('/')
                {
                    self.error(
                        p.span,
                        format!("the http path in {ctx} must start with `/`"),
                    )
                    .help = Some(format!("write \"/{}\"", p.value.trim_start_matches('/')));
                }
                let port = match f.get_some("port") {
                    Some(n) => self.port(n, "port", ctx),
                    None => {
                        self.error(
                            http.span,
                            format!("{ctx} has an http probe but no \"port\""),
                        )
                        .help = Some("add `port: PORT`".into());
                        None
                    }
                };
                match (path, port) {
                    (Some(path), Some(port)) if path.value.starts_with('/') => Some(Spanned::new(
                        Probe::Http {
                            path: path.value,
                            port,
                        },
                        http.span,
                    )),
                    _ => None,
                }
            }
        };
        Some(ReadySpec {
            probe: probe?,
            timeout,
        })
    }

    fn cache(&mut self, node: &Node, job_ctx: &str) -> Option<CacheSpec> {
        let ctx = format!("\"cache\" of {job_ctx}");
        let ctx = ctx.as_str();
        let f = self.fields(node, "cache", job_ctx, ctx, CACHE_KEYS)?;
        let key = self
            .required(&f, "key", ctx, node.span)
            .and_then(|n| self.template(n, "key", ctx, "a cache key", true));
        let paths = self
            .required(&f, "paths", ctx, node.span)
            .map(|n| self.rel_paths(n, "paths", ctx));
        Some(CacheSpec {
            key: key?,
            paths: paths?,
        })
    }

    fn matrix(&mut self, node: &Node, job_ctx: &str) -> Vec<MatrixAxis> {
        let ctx = format!("\"matrix\" of {job_ctx}");
        let ctx = ctx.as_str();
        let mut axes = Vec::new();
        for (key, value) in self.named_entries(
            node,
            "matrix",
            job_ctx,
            ctx,
            "matrix variable",
            "a mapping of variable names to lists of values",
        ) {
            if !is_var_name(&key.value) {
                self.error(
                    key.span,
                    format!("invalid matrix variable name {:?} in {ctx}", key.value),
                )
                .help = Some(
                    "matrix variables become environment variables: letters, digits and `_`".into(),
                );
                continue;
            }
            if key.value.starts_with("GANTRY_") {
                self.error(
                    key.span,
                    format!(
                        "matrix variable name {:?} is reserved for gantry's built-in variables",
                        key.value
                    ),
                );
                continue;
            }
            let values = match &value.kind {
                Kind::Seq(items) => items
                    .iter()
                    .filter_map(|n| self.text(n, &key.value, ctx, "a value"))
                    .collect::<Vec<_>>(),
                _ => {
                    self.type_error(value, &key.value, ctx, "a list of values");
                    continue;
                }
            };
            if values.is_empty() {
                self.error(
                    value.span,
                    format!("matrix variable {:?} in {ctx} has no values", key.value),
                );
                continue;
            }
            for (i, v) in values.iter().enumerate() {
                if values[..i].iter().any(|e| e.value == v.value) {
                    self.error(
                        v.span,
                        format!("duplicate value {:?} for {:?} in {ctx}", v.value, key.value),
                    );
                }
                if v.value.contains([',', ')', '=', '\n']) {
                    self.error(v.span, format!("matrix value {:?} in {ctx} cannot contain `,`, `)`, `=` or a line break", v.value))
                        .help = Some("these characters would make the job names ambiguous".into());
                }
            }
            // Kept even when a value is bad (the file is refused anyway), so that `${NAME}`
            // references to the axis are not reported as unknown too.
            axes.push(MatrixAxis {
                name: key.clone(),
                values,
            });
        }
        let combos = axes
            .iter()
            .try_fold(1usize, |acc, a| acc.checked_mul(a.values.len()));
        if combos.is_none_or(|c| c > MAX_MATRIX) {
            self.error(
                node.span,
                format!("{ctx} expands into more than {MAX_MATRIX} jobs"),
            );
        }
        axes
    }

    fn image_build(&mut self, node: &Node, job_ctx: &str) -> Option<ImageBuildSpec> {
        let ctx = format!("\"image_build\" of {job_ctx}");
        let ctx = ctx.as_str();
        let f = self.fields(node, "image_build", job_ctx, ctx, IMAGE_BUILD_KEYS)?;
        let mut b = ImageBuildSpec {
            context: None,
            dockerfile: None,
            tags: Vec::new(),
            args: Vec::new(),
            push: None,
        };
        if let Some(n) = f.get_some("context") {
            b.context = self.rel_path(n, "context", ctx, "a directory");
        }
        if let Some(n) = f.get_some("dockerfile") {
            b.dockerfile = self.rel_path(n, "dockerfile", ctx, "a file");
        }
        if let Some(n) = self.required(&f, "tag", ctx, node.span) {
            b.tags = self.one_or_list(n, "tag", ctx, "an image tag or a list of tags", |d, n| {
                d.template(n, "tag", ctx, "an image tag", false)
            });
        }
        if let Some(n) = f.get_some("args") {
            for (k, v) in self.named_entries(
                n,
                "args",
                ctx,
                &format!("\"args\" of {ctx}"),
                "build arg",
                "a mapping of build args",
            ) {
                if let Some(t) = self.template(v, &k.value, ctx, "a value", false) {
                    b.args.push((k.clone(), t));
                }
            }
        }
        if let Some(n) = f.get_some("push") {
            b.push = self.bool(n, "push", ctx);
        }
        Some(b)
    }

    fn environment(&mut self, node: &Node, job_ctx: &str) -> Option<EnvironmentSpec> {
        let ctx = format!("\"environment\" of {job_ctx}");
        let ctx = ctx.as_str();
        if let Kind::Scalar(..) = node.kind {
            let name = self.template(
                node,
                "environment",
                job_ctx,
                "an environment name or { name, approval, url }",
                false,
            )?;
            return Some(EnvironmentSpec {
                name,
                approval_required: false,
                url: None,
            });
        }
        let f = self.fields(node, "environment", job_ctx, ctx, ENVIRONMENT_KEYS)?;
        let name = self
            .required(&f, "name", ctx, node.span)
            .and_then(|n| self.template(n, "name", ctx, "a name", false));
        let mut approval_required = false;
        if let Some(n) = f.get_some("approval") {
            match &n.kind {
                Kind::Scalar(s, _) if s == "required" => approval_required = true,
                _ => {
                    let found = n.describe();
                    self.error(
                        n.span,
                        format!("\"approval\" in {ctx} must be \"required\", found {found}"),
                    )
                    .help =
                        Some("write `approval: required`, or leave approval out for none".into());
                }
            }
        }
        let url = f
            .get_some("url")
            .and_then(|n| self.template(n, "url", ctx, "a URL", false));
        Some(EnvironmentSpec {
            name: name?,
            approval_required,
            url,
        })
    }

    fn deploy(&mut self, node: &Node, job_ctx: &str) -> Option<Spanned<DeploySpec>> {
        let ctx = format!("\"deploy\" of {job_ctx}");
        let ctx = ctx.as_str();
        let f = self.fields(node, "deploy", job_ctx, ctx, DEPLOY_KEYS)?;
        match (f.get("compose"), f.get("kubernetes")) {
            (Some(_), Some(k)) => {
                self.error(
                    k.span,
                    format!("{ctx} has both \"compose\" and \"kubernetes\""),
                )
                .help = Some("a job deploys one way; split it into two jobs".into());
                None
            }
            (None, None) => {
                self.error(node.span, format!("{ctx} needs \"compose\" or \"kubernetes\"")).help =
                    Some("write `deploy: { compose: FILE }` or `deploy: { kubernetes: { manifests: DIR } }`".into());
                None
            }
            (Some(c), None) => {
                let file = self.rel_path(c, "compose", ctx, "a compose file")?;
                Some(Spanned::new(DeploySpec::Compose { file }, node.span))
            }
            (None, Some(k)) => {
                let kctx = format!("\"kubernetes\" of {job_ctx}");
                let kf = self.fields(k, "kubernetes", ctx, &kctx, KUBERNETES_KEYS)?;
                let manifests = self
                    .required(&kf, "manifests", &kctx, k.span)
                    .and_then(|n| self.rel_path(n, "manifests", &kctx, "a directory or file"));
                let namespace = kf
                    .get_some("namespace")
                    .and_then(|n| self.template(n, "namespace", &kctx, "a namespace", false));
                Some(Spanned::new(
                    DeploySpec::Kubernetes {
                        manifests: manifests?,
                        namespace,
                    },
                    node.span,
                ))
            }
        }
    }

    fn outcomes(&mut self, node: &Node, ctx: &str) -> Vec<Spanned<OutcomeFilter>> {
        self.one_or_list(node, "on", ctx, "a list of outcomes", |d, n| {
            let name = d.name(n, "on", ctx, "failure, success, fixed or always")?;
            match OutcomeFilter::ALL
                .into_iter()
                .find(|o| o.as_str() == name.value)
            {
                Some(o) => Some(Spanned::new(o, name.span)),
                None => {
                    let all = OutcomeFilter::ALL.map(OutcomeFilter::as_str);
                    let help = help_did_you_mean(&name.value, all)
                        .unwrap_or_else(|| format!("the outcomes are {}", all.join(", ")));
                    d.error(
                        name.span,
                        format!("unknown outcome {:?} in {ctx}", name.value),
                    )
                    .help = Some(help);
                    None
                }
            }
        })
    }

    fn list<'n>(&mut self, node: &'n Node, key: &str, expected: &str) -> &'n [Node] {
        match &node.kind {
            Kind::Seq(items) => items,
            _ => {
                self.type_error(node, key, "the top level", expected);
                &[]
            }
        }
    }

    fn notify(&mut self, node: &Node) -> Vec<Notify> {
        let mut out = Vec::new();
        for (i, item) in self
            .list(node, "notify", "a list of notifications")
            .iter()
            .enumerate()
        {
            let ctx = format!("notification {} (\"notify\")", i + 1);
            let ctx = ctx.as_str();
            let Some(f) = self.fields(item, "notify", "the top level", ctx, NOTIFY_KEYS) else {
                continue;
            };
            let on = match f.get_some("on") {
                Some(n) => self.outcomes(n, ctx),
                None => vec![Spanned::unspanned(OutcomeFilter::Failure)],
            };
            let webhook = f
                .get_some("webhook")
                .and_then(|n| self.template(n, "webhook", ctx, "a URL", false));
            let email = match f.get_some("email") {
                Some(n) => self.one_or_list(
                    n,
                    "email",
                    ctx,
                    "an address or a list of addresses",
                    |d, n| {
                        let t = d.template(n, "email", ctx, "an email address", false)?;
                        if !t.as_str().contains('@') && !t.as_str().contains("${") {
                            d.error(
                                t.span,
                                format!("{:?} in {ctx} is not an email address", t.as_str()),
                            );
                            return None;
                        }
                        Some(t)
                    },
                ),
                None => Vec::new(),
            };
            if !f.has("webhook") && !f.has("email") {
                self.error(
                    item.span,
                    format!("{ctx} has neither \"webhook\" nor \"email\""),
                )
                .help = Some("add `webhook: URL` or `email: [address]`".into());
            }
            out.push(Notify { on, webhook, email });
        }
        out
    }

    fn after(&mut self, node: &Node) -> Vec<After> {
        let mut out = Vec::new();
        for (i, item) in self
            .list(node, "after", "a list of pipelines to trigger")
            .iter()
            .enumerate()
        {
            let ctx = format!("entry {} of \"after\"", i + 1);
            let ctx = ctx.as_str();
            let Some(f) = self.fields(item, "after", "the top level", ctx, AFTER_KEYS) else {
                continue;
            };
            let trigger = self
                .required(&f, "trigger", ctx, item.span)
                .and_then(|n| self.name(n, "trigger", ctx, "a pipeline name"));
            let mut params = Vec::new();
            if let Some(n) = f.get_some("params") {
                for (k, v) in self.named_entries(
                    n,
                    "params",
                    ctx,
                    &format!("\"params\" of {ctx}"),
                    "param",
                    "a mapping of param names to values",
                ) {
                    if let Some(t) = self.template(v, &k.value, ctx, "a value", false) {
                        params.push((k.clone(), t));
                    }
                }
            }
            let on = match f.get_some("on") {
                Some(n) => self.outcomes(n, ctx),
                None => vec![Spanned::unspanned(OutcomeFilter::Success)],
            };
            if let Some(trigger) = trigger {
                out.push(After {
                    trigger,
                    params,
                    on,
                });
            }
        }
        out
    }

    fn concurrency(&mut self, node: &Node) -> Option<Concurrency> {
        let ctx = "\"concurrency\"";
        let f = self.fields(node, "concurrency", "the top level", ctx, CONCURRENCY_KEYS)?;
        let group = self
            .required(&f, "group", ctx, node.span)
            .and_then(|n| self.template(n, "group", ctx, "a group name", false));
        let limit = match f.get_some("limit") {
            Some(n) => self.uint(n, "limit", ctx, 1, 10_000)?,
            None => Spanned::unspanned(1),
        };
        Some(Concurrency {
            group: group?,
            limit,
        })
    }
}

/// Job names: `[A-Za-z0-9_][A-Za-z0-9_.-]*`. They appear in `needs`, on the command line
/// and in matrix instance names, so spaces and brackets are kept out.
pub(crate) fn is_job_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// A service name must work as a hostname label (RFC 1123).
fn check_hostname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 63 {
        return Err("it must be 1 to 63 characters long");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("only lowercase letters, digits and `-` are allowed");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("it cannot start or end with `-`");
    }
    Ok(())
}

fn hostname_suggestion(name: &str) -> Option<String> {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s.trim_matches('-').to_string();
    (check_hostname(&s).is_ok()).then_some(s)
}

/// Checks that a workspace-relative path stays inside the workspace.
pub(crate) fn check_relative(path: &str) -> Result<(), &'static str> {
    if path.starts_with('/') || path.starts_with('\\') || path.starts_with('~') {
        return Err("must be a relative path inside the workspace, not an absolute one");
    }
    if path.as_bytes().get(1) == Some(&b':')
        && path.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
    {
        return Err("must be a relative path inside the workspace, not an absolute one");
    }
    if path.split(['/', '\\']).any(|c| c == "..") {
        return Err("must not leave the workspace with `..`");
    }
    Ok(())
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The span of `len` characters at `offset` in a scalar's value, when the scalar is
/// written on one line exactly as its value (plain, or quoted without escapes); the whole
/// scalar otherwise.
pub(crate) fn sub_span(src: &Source, scalar: Span, value: &str, offset: usize, len: usize) -> Span {
    if scalar.line != scalar.end_line {
        return scalar;
    }
    let line: Vec<char> = src.line(scalar.line).chars().collect();
    let start = scalar.col as usize;
    let needle: Vec<char> = value.chars().skip(offset).take(len).collect();
    // Plain scalars start at the value; quoted ones one character later.
    for shift in [0usize, 1] {
        let at = start + shift + offset;
        if line.get(at..at + needle.len()) == Some(&needle[..]) {
            return scalar.sub(shift + offset, needle.len());
        }
    }
    scalar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let cases = [
            ("dist/app", true),
            ("target/**/*.so", true),
            ("./out", true),
            ("a/../b", false),
            ("../x", false),
            ("..", false),
            ("/abs", false),
            ("~/x", false),
            ("C:/x", false),
            ("a..b/c", true),
        ];
        for (path, ok) in cases {
            assert_eq!(check_relative(path).is_ok(), ok, "{path}");
        }
    }

    #[test]
    fn hostnames() {
        let cases = [
            ("db", true),
            ("go-auth", true),
            ("a1", true),
            ("my_db", false),
            ("DB", false),
            ("-x", false),
            ("", false),
        ];
        for (name, ok) in cases {
            assert_eq!(check_hostname(name).is_ok(), ok, "{name}");
        }
        assert_eq!(hostname_suggestion("My_DB").as_deref(), Some("my-db"));
    }

    #[test]
    fn job_names() {
        let cases = [
            ("build", true),
            ("deploy-staging", true),
            ("a.b_c", true),
            ("1st", true),
            ("-x", false),
            ("a b", false),
            ("x(y)", false),
            ("", false),
        ];
        for (name, ok) in cases {
            assert_eq!(is_job_name(name), ok, "{name}");
        }
    }
}
