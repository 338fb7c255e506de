//! Log text with ANSI escape sequences → escaped HTML with `<span class="…">` for colours
//! and styles.
//!
//! Only SGR sequences (`ESC [ … m`) are rendered: the 8/16 standard colours as classes
//! (`fg-1`, `bg-4`, `fg-9` for bright red), 256-colour and RGB colours as inline
//! `color:#rrggbb` (numbers the server formats, never text from the log), bold, dim,
//! italic and underline. Every other escape sequence (cursor movement, erase line,
//! OSC titles) is dropped; every character of text is HTML-escaped.

use std::fmt::Write;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Color {
    #[default]
    None,
    /// 0–15.
    Indexed(u8),
    Rgb(u8, u8, u8),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    fg: Color,
    bg: Color,
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
}

impl Style {
    fn is_plain(&self) -> bool {
        *self == Style::default()
    }

    fn open_tag(&self, out: &mut String) {
        let mut classes = Vec::new();
        let mut css = String::new();
        match self.fg {
            Color::Indexed(i) => classes.push(format!("fg-{i}")),
            Color::Rgb(r, g, b) => {
                let _ = write!(css, "color:#{r:02x}{g:02x}{b:02x};");
            }
            Color::None => {}
        }
        match self.bg {
            Color::Indexed(i) => classes.push(format!("bg-{i}")),
            Color::Rgb(r, g, b) => {
                let _ = write!(css, "background-color:#{r:02x}{g:02x}{b:02x};");
            }
            Color::None => {}
        }
        for (on, name) in [
            (self.bold, "b"),
            (self.dim, "dim"),
            (self.italic, "i"),
            (self.underline, "u"),
        ] {
            if on {
                classes.push(name.to_string());
            }
        }
        out.push_str("<span");
        if !classes.is_empty() {
            out.push_str(" class=\"");
            out.push_str(&classes.join(" "));
            out.push('"');
        }
        if !css.is_empty() {
            out.push_str(" style=\"");
            out.push_str(&css);
            out.push('"');
        }
        out.push('>');
    }

    /// Applies the parameters of one SGR sequence.
    fn apply(&mut self, params: &[u16]) {
        if params.is_empty() {
            *self = Style::default();
            return;
        }
        let mut i = 0;
        while i < params.len() {
            let p = params[i];
            match p {
                0 => *self = Style::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => {
                    self.bold = false;
                    self.dim = false;
                }
                23 => self.italic = false,
                24 => self.underline = false,
                30..=37 => self.fg = Color::Indexed((p - 30) as u8),
                39 => self.fg = Color::None,
                40..=47 => self.bg = Color::Indexed((p - 40) as u8),
                49 => self.bg = Color::None,
                90..=97 => self.fg = Color::Indexed((p - 90 + 8) as u8),
                100..=107 => self.bg = Color::Indexed((p - 100 + 8) as u8),
                38 | 48 => {
                    let (color, used) = extended(&params[i + 1..]);
                    if let Some(c) = color {
                        if p == 38 {
                            self.fg = c;
                        } else {
                            self.bg = c;
                        }
                    }
                    i += used;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// `5;n` or `2;r;g;b` after a 38/48; returns the colour and how many params it used.
fn extended(rest: &[u16]) -> (Option<Color>, usize) {
    match rest {
        [5, n, ..] => (Some(color256(*n)), 2),
        [2, r, g, b, ..] => (
            Some(Color::Rgb(
                (*r).min(255) as u8,
                (*g).min(255) as u8,
                (*b).min(255) as u8,
            )),
            4,
        ),
        [5] => (None, 1),
        [2, ..] => (None, rest.len()),
        _ => (None, 0),
    }
}

/// The xterm 256-colour palette: 0–15 as classes, the cube and greys as RGB.
fn color256(n: u16) -> Color {
    let n = n.min(255) as u8;
    match n {
        0..=15 => Color::Indexed(n),
        16..=231 => {
            let i = n - 16;
            let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
            Color::Rgb(level(i / 36), level((i / 6) % 6), level(i % 6))
        }
        _ => {
            let g = 8 + (n - 232) * 10;
            Color::Rgb(g, g, g)
        }
    }
}

/// Appends `c` HTML-escaped.
pub fn escape_char(c: char, out: &mut String) {
    match c {
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '&' => out.push_str("&amp;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        // Other control characters would only show as boxes.
        c if c.is_control() && c != '\t' => {}
        c => out.push(c),
    }
}

/// Text without any escape sequence (for search and plain display). The same sequences
/// as [`to_html`] drops, skipped without reading their parameters (search strips every
/// line of a log).
pub fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\u{1b}') {
        out.push_str(&rest[..at]);
        let seq = &rest[at + 1..];
        let len = match seq.as_bytes().first() {
            // CSI: parameters up to a final byte in @..~.
            Some(b'[') => seq[1..]
                .bytes()
                .position(|b| (0x40..=0x7e).contains(&b))
                .map_or(seq.len(), |end| end + 2),
            // OSC: up to BEL or ESC \.
            Some(b']') => match seq.find(['\u{7}', '\u{1b}']) {
                Some(end) if seq[end..].starts_with("\u{1b}\\") => end + 2,
                Some(end) => end + 1,
                None => seq.len(),
            },
            // Any other escape: ESC and the char after it.
            Some(_) => seq.chars().next().map_or(0, char::len_utf8),
            None => 0,
        };
        rest = &seq[len..];
    }
    out.push_str(rest);
    out
}

/// Skips an escape sequence after its ESC; returns the SGR params when it was one.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<Vec<u16>> {
    match chars.peek() {
        Some('[') => {
            chars.next();
            let mut body = String::new();
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    if c == 'm' {
                        let params = body
                            .split([';', ':'])
                            .map(|p| {
                                if p.is_empty() {
                                    0
                                } else {
                                    p.parse().unwrap_or(0)
                                }
                            })
                            .collect();
                        return Some(params);
                    }
                    return None;
                }
                body.push(c);
            }
            None
        }
        Some(']') => {
            // OSC: up to BEL or ESC \.
            chars.next();
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    chars.next_if_eq(&'\\');
                    break;
                }
            }
            None
        }
        Some(_) => {
            chars.next();
            None
        }
        None => None,
    }
}

/// One line of log text as HTML.
pub fn to_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut style = Style::default();
    let mut open = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if let Some(params) = skip_escape(&mut chars) {
                let mut next = style;
                next.apply(&params);
                if next != style {
                    if open {
                        out.push_str("</span>");
                        open = false;
                    }
                    style = next;
                }
            }
            continue;
        }
        if !open && !style.is_plain() {
            style.open_tag(&mut out);
            open = true;
        }
        escape_char(c, &mut out);
    }
    if open {
        out.push_str("</span>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: &str) {
        assert_eq!(to_html(input), expect, "input: {input:?}");
    }

    #[test]
    fn renders_colours_and_styles() {
        check("plain", "plain");
        check(
            "\x1b[31mred\x1b[0m ok",
            "<span class=\"fg-1\">red</span> ok",
        );
        check("\x1b[1;92mOK\x1b[m", "<span class=\"fg-10 b\">OK</span>");
        check("\x1b[44mbg\x1b[49m", "<span class=\"bg-4\">bg</span>");
        check("\x1b[38;5;196mx", "<span style=\"color:#ff0000;\">x</span>");
        check(
            "\x1b[38;2;1;2;3;48;5;2mx",
            "<span class=\"bg-2\" style=\"color:#010203;\">x</span>",
        );
        check("\x1b[1mA\x1b[22mB", "<span class=\"b\">A</span>B");
        check("\x1b[31m\x1b[32mg", "<span class=\"fg-2\">g</span>");
        check("\x1b[4;3mu", "<span class=\"i u\">u</span>");
    }

    #[test]
    fn drops_other_sequences() {
        check("a\x1b[2Kb", "ab");
        check("\x1b]0;title\x07text", "text");
        check("\x1b]8;;http://x\x1b\\link", "link");
        check("bell\x07", "bell");
        check("unterminated \x1b[31", "unterminated ");
        check("\x1b[38;5m", "");
    }

    #[test]
    fn escapes_html() {
        check(
            "<script>alert('x')</script> & \"q\"",
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;",
        );
        check(
            "\x1b[31m<img src=x onerror=alert(1)>",
            "<span class=\"fg-1\">&lt;img src=x onerror=alert(1)&gt;</span>",
        );
    }

    #[test]
    fn strips_for_search() {
        let check = |input: &str, expect: &str| assert_eq!(strip(input), expect, "{input:?}");
        check("\x1b[1;31merror\x1b[0m: x", "error: x");
        check("plain", "plain");
        check("a\x1b[2Kb\x1b[38;2;1;2;3mc", "abc");
        check("\x1b]0;title\x07after", "after");
        check("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link");
        check("a\x1b]unterminated", "a");
        check("a\x1b[12", "a");
        check("a\x1b(Bb", "aBb");
        check("ü\x1b[31mö\x1b[0mß\x1b", "üöß");
    }
}
