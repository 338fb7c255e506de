//! Turns raw output bytes into log lines: shared by every backend, so long lines, CRLF and
//! invalid UTF-8 come out the same whether they were read from a pipe or a container.
//!
//! Lines are pushed as soon as their newline arrives, so timestamps reflect when gantry
//! read them. Bytes are never buffered without bound: a line longer than the cap is cut
//! into pieces of at most `cap` bytes (at a UTF-8 character boundary where one is near),
//! and a final line without a newline is still delivered when the pipe closes. Invalid
//! UTF-8 is converted lossily, because a log must show *something* for binary output.

/// Splits a byte stream into lines of at most `cap` bytes.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    cap: usize,
}

impl LineSplitter {
    /// A splitter that never holds more than `cap` bytes of an unfinished line.
    pub fn new(cap: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            cap: cap.max(4),
        }
    }

    /// Feeds bytes and calls `emit` for every line they complete.
    pub fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(String)) {
        while !data.is_empty() {
            // Only the part of `data` that can still join the current line is scanned, so a
            // flood of bytes without newlines costs linear time and `cap` bytes of memory.
            let room = self.cap - self.buf.len();
            let window = &data[..data.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    self.buf.extend_from_slice(&window[..nl]);
                    let len = self.buf.len();
                    emit(take_line(&mut self.buf, len, true));
                    data = &data[nl + 1..];
                }
                None => {
                    self.buf.extend_from_slice(window);
                    data = &data[window.len()..];
                    if self.buf.len() >= self.cap {
                        let cut = utf8_cut(&self.buf, self.cap);
                        emit(take_line(&mut self.buf, cut, false));
                    }
                }
            }
        }
    }

    /// Delivers the unfinished last line, if any (the pipe closed without a newline).
    pub fn finish(&mut self, emit: &mut impl FnMut(String)) {
        if !self.buf.is_empty() {
            let len = self.buf.len();
            emit(take_line(&mut self.buf, len, true));
        }
    }
}

/// Removes the first `len` bytes of `buf` and returns them as text. A complete line loses
/// one trailing `\r`, so CRLF output reads like LF output; a piece of a split line keeps
/// its bytes exactly.
fn take_line(buf: &mut Vec<u8>, len: usize, complete: bool) -> String {
    let mut end = len;
    if complete && end > 0 && buf[end - 1] == b'\r' {
        end -= 1;
    }
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..len);
    text
}

/// Where to cut a too-long line of `buf` near `cap` without splitting a UTF-8 character:
/// at `cap`, or up to 3 bytes earlier when a multi-byte character starts there and would
/// end after the cap. Bytes that are not UTF-8 anyway are cut at `cap`. Never returns 0
/// (the cap is at least 4), so every cut makes progress.
fn utf8_cut(buf: &[u8], cap: usize) -> usize {
    for back in 1..=3 {
        let i = cap - back;
        let b = buf[i];
        if b & 0xC0 == 0x80 {
            // A continuation byte: the character started further back.
            continue;
        }
        let len = match b {
            // Never a leading byte in UTF-8.
            0xF8.. => 1,
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if len > back { i } else { cap };
    }
    cap
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after another into a splitter with `cap` and compares the lines.
    fn check(cap: usize, chunks: &[&[u8]], expect: &[&str]) {
        let mut out = Vec::new();
        let mut s = LineSplitter::new(cap);
        for c in chunks {
            s.push(c, &mut |l| out.push(l));
        }
        s.finish(&mut |l| out.push(l));
        assert_eq!(out, expect, "cap {cap}, chunks {chunks:?}");
    }

    #[test]
    fn splits_lines() {
        check(64, &[b"a\nb\n"], &["a", "b"]);
        check(64, &[b"a\nb"], &["a", "b"]);
        check(64, &[b"a", b"b\n", b"c"], &["ab", "c"]);
        check(64, &[b"\n\n"], &["", ""]);
        check(64, &[b""], &[]);
        check(64, &[b"crlf\r\n", b"x\r"], &["crlf", "x"]);
        check(64, &[b"\xff\xfeok\n"], &["\u{fffd}\u{fffd}ok"]);
    }

    #[test]
    fn caps_long_lines() {
        check(4, &[b"abcdefghij\n"], &["abcd", "efgh", "ij"]);
        check(4, &[b"ab", b"cd", b"ef\n"], &["abcd", "ef"]);
        check(4, &[b"abcd\n"], &["abcd", ""]);
        check(4, &[b"abc", b"d", b"\n"], &["abcd", ""]);
    }

    #[test]
    fn long_lines_are_cut_at_character_boundaries() {
        // "é" is 2 bytes; with cap 5, "aaaa" + "é" would cut inside it.
        check(5, &["aaaaé\n".as_bytes()], &["aaaa", "é"]);
        // "€" is 3 bytes.
        check(5, &["aaa€b\n".as_bytes()], &["aaa", "€b"]);
        check(5, &["aa€bcde\n".as_bytes()], &["aa€", "bcde"]);
        // Invalid bytes before the cut do not stop a boundary from being found.
        check(6, &[b"\xffaaa\xe2\x82\xacz\n"], &["\u{fffd}aaa", "€z"]);
        // Nothing but invalid bytes: cut at the cap.
        check(
            4,
            &[b"\xff\xff\xff\xff\xff\n"],
            &["\u{fffd}\u{fffd}\u{fffd}\u{fffd}", "\u{fffd}"],
        );
    }
}
