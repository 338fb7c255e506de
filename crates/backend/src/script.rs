//! Turns a job's script lines into one program for `sh -e`: shared by every backend so
//! that a script reads the same in every job log, on the host or in a container.
//!
//! Every command is preceded by a `printf` that writes `+ cmd` to stdout, so the log shows
//! each command exactly as written in gantry.yml, right before its output. `sh -x` is not
//! used on purpose: it prints commands *after* expansion (leaking the values of variables
//! into the log) and also traces commands inside functions and loops. A command that spans
//! several lines (a YAML block scalar) is echoed as `+ first line` followed by `> line`
//! for each further line, the way an interactive shell shows a continued command.
//!
//! The echo and the command share a line (`printf …; cmd`), so the shell's own line
//! numbers in messages like `sh: 2: foo: not found` count the lines of the script as the
//! user wrote it. The price: a command with a syntax error is reported without its echo,
//! because the shell parses a whole line before running any of it.

/// Renders `lines` as one shell program: line N of the script is line N of the program,
/// as long as every command is one line.
pub fn render_script(lines: &[String]) -> String {
    let mut out = String::new();
    for cmd in lines {
        // Blank lines around a block scalar's body are YAML layout, not part of the command.
        let body = trim_blank_lines(cmd);
        // A blank command is kept, unechoed, only so that line numbers stay right.
        if !body.is_empty() {
            push_echo(&mut out, body);
        }
        out.push_str(cmd);
        if !cmd.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Appends `printf …; ` that echoes `body` as `+ cmd` lines.
fn push_echo(out: &mut String, body: &str) {
    // One printf argument per echoed line: `printf` repeats its format for each, and
    // no newline enters the script, which would shift the shell's line numbers.
    out.push_str("printf '%s\\n'");
    for line in echo_lines(body) {
        out.push(' ');
        out.push_str(&single_quote(&line));
    }
    out.push_str("; ");
}

/// The `+ cmd` lines for one command: `+ ` before the first line, `> ` before the rest.
fn echo_lines(body: &str) -> impl Iterator<Item = String> + '_ {
    body.lines().enumerate().map(|(i, line)| {
        let prefix = if i == 0 { "+ " } else { "> " };
        format!("{prefix}{}", line.trim_end())
    })
}

/// `s` without leading and trailing lines that hold only whitespace.
fn trim_blank_lines(s: &str) -> &str {
    let start = s
        .char_indices()
        .find(|&(_, c)| !c.is_whitespace())
        .map(|(i, _)| s[..i].rfind('\n').map_or(0, |nl| nl + 1));
    match start {
        None => "",
        Some(start) => s[start..].trim_end(),
    }
}

/// `s` as one single-quoted shell word: inside single quotes nothing is special except
/// the quote itself, which is written as `'\''` (close, escaped quote, reopen).
fn single_quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('\'');
    for c in s.chars() {
        if c == '\'' {
            q.push_str("'\\''");
        } else {
            q.push(c);
        }
    }
    q.push('\'');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(lines: &[&str], expect: &str) {
        let lines: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        assert_eq!(render_script(&lines), expect, "script {lines:?}");
    }

    #[test]
    fn renders_echo_then_command() {
        check(&[], "");
        check(&["true"], "printf '%s\\n' '+ true'; true\n");
        check(
            &["echo a", "echo b"],
            "printf '%s\\n' '+ echo a'; echo a\nprintf '%s\\n' '+ echo b'; echo b\n",
        );
        check(&["", "  ", "\n"], "\n  \n\n");
    }

    #[test]
    fn quotes_are_escaped_in_the_echo_only() {
        check(
            &[r#"echo "it's" 'a "b"' $HOME %s \n"#],
            concat!(
                r#"printf '%s\n' '+ echo "it'\''s" '\''a "b"'\'' $HOME %s \n'; "#,
                r#"echo "it's" 'a "b"' $HOME %s \n"#,
                "\n"
            ),
        );
    }

    #[test]
    fn multi_line_commands_echo_every_line() {
        check(
            &["for i in 1 2; do\n  echo $i\ndone\n"],
            "printf '%s\\n' '+ for i in 1 2; do' '>   echo $i' '> done'; for i in 1 2; do\n  echo $i\ndone\n",
        );
        // Blank lines around the body are not echoed; indentation of the first line is.
        check(
            &["\n  cat <<EOF\nx\nEOF\n\n"],
            "printf '%s\\n' '+   cat <<EOF' '> x' '> EOF'; \n  cat <<EOF\nx\nEOF\n\n",
        );
    }
}
