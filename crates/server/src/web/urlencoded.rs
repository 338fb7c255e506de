//! `application/x-www-form-urlencoded`: decoding form bodies and encoding URL parts,
//! small enough not to need a dependency.

/// Percent-encodes everything but unreserved characters and `/` (for `next=` paths and
/// URL segments).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a path segment (`/` too).
pub fn encode_segment(s: &str) -> String {
    encode(s).replace('/', "%2F")
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The fields of a form body, in order (a name may repeat).
pub fn parse(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(kv), String::new()),
        })
        .collect()
}

/// The last value of field `name` (a checkbox after its hidden fallback wins).
pub fn last<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode() {
        let check = |input: &str, expect: &[(&str, &str)]| {
            let got = parse(input.as_bytes());
            let want: Vec<(String, String)> = expect
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want, "{input}");
        };
        check("a=1&b=two+words", &[("a", "1"), ("b", "two words")]);
        check("param.X=%3Cb%3E&csrf=", &[("param.X", "<b>"), ("csrf", "")]);
        check("bad=%zz&end=%4", &[("bad", "%zz"), ("end", "%4")]);
        check("utf=%C3%A9", &[("utf", "é")]);
        check("", &[]);
    }

    #[test]
    fn paths_encode() {
        assert_eq!(encode("/runs/1?x=a b"), "/runs/1%3Fx%3Da%20b");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }
}
