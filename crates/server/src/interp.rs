//! `${VAR}` substitution for the parts of a pipeline file the server itself resolves
//! after planning: the `concurrency` group, `after` params, `notify` targets.
//!
//! Same rules as the planner's: `${NAME:-default}` takes the default when NAME is unset
//! or empty, `$$` is a literal `$`, an unknown name without default is an error.

use gantry_pipeline::Template;

/// Substitutes every `${…}` of `template` with `lookup`.
pub fn render(
    template: &Template,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let chars: Vec<char> = template.as_str().chars().collect();
    let vars: Vec<_> = template.vars().collect();
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some(v) = vars.iter().find(|v| v.offset == i) {
            let value = lookup(&v.name).filter(|s| !s.is_empty() || v.default.is_none());
            match (value, &v.default) {
                (Some(s), _) => out.push_str(&s),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(format!("unknown variable ${{{}}}", v.name)),
            }
            i += v.len.max(1);
            continue;
        }
        if chars[i] == '$' && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let lookup = |n: &str| match n {
            "A" => Some("x".to_string()),
            "E" => Some(String::new()),
            _ => None,
        };
        let check = |text: &str, expect: Result<&str, &str>| {
            let t = Template::parse(text, false).expect("parses");
            assert_eq!(
                render(&t, lookup).as_deref(),
                expect.map_err(|e| e.to_string()).as_deref(),
                "{text}"
            );
        };
        check("plain", Ok("plain"));
        check("deploy-${A}", Ok("deploy-x"));
        check("${E:-d}/${B:-z}", Ok("d/z"));
        check("$$${A}$$", Ok("$x$"));
        check("${B}", Err("unknown variable ${B}"));
    }
}
