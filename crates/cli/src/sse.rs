//! A Server-Sent Events parser for `gantry logs -f`: bytes in, whole events out, as the
//! EventSource rules say (fields `event`, `data`, `id`; `:` comments are keep-alives; an
//! empty line ends an event; `\n`, `\r\n` and `\r` all end lines).

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `event:` (default `message`).
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
    /// `id:` of this event, if it set one.
    pub id: Option<String>,
}

/// Parser state between chunks.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
}

impl Parser {
    /// Feeds bytes; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&String::from_utf8_lossy(&line)) {
                        events.push(event);
                    }
                }
                b => self.line.push(b),
            }
        }
        events
    }

    fn line_done(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            let id = self.id.take();
            // The standard drops events without data; gantry's `end` may carry none, so an
            // event with a name or an id is kept too.
            return match data {
                Some(data) => Some(Event {
                    event: event.unwrap_or_else(|| "message".to_owned()),
                    data,
                    id,
                }),
                None if id.is_some() || event.is_some() => Some(Event {
                    event: event.unwrap_or_else(|| "message".to_owned()),
                    data: String::new(),
                    id,
                }),
                None => None,
            };
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str, id: Option<&str>) -> Event {
        Event {
            event: event.to_owned(),
            data: data.to_owned(),
            id: id.map(str::to_owned),
        }
    }

    #[test]
    fn events_across_chunks_and_line_endings() {
        let check = |chunks: &[&str], want: Vec<Event>| {
            let mut p = Parser::default();
            let got: Vec<Event> = chunks.iter().flat_map(|c| p.feed(c.as_bytes())).collect();
            assert_eq!(got, want, "{chunks:?}");
        };
        check(
            &["event: line\ndata: hello\nid: 12\n\n"],
            vec![ev("line", "hello", Some("12"))],
        );
        check(
            &[
                "event: li",
                "ne\r\ndata:a\r",
                "\ndata: b\r\n\r\n: keep-alive\n\n",
            ],
            vec![ev("line", "a\nb", None)],
        );
        check(
            &["data: x\r\rdata: y\n\n"],
            vec![ev("message", "x", None), ev("message", "y", None)],
        );
        check(&["event: end\nid: 40\n\n"], vec![ev("end", "", Some("40"))]);
        check(&["event: end\n\n"], vec![ev("end", "", None)]);
        check(&["retry: 10\n\n", "data: incomplete"], vec![]);
        check(
            &["data:  two spaces\n\n"],
            vec![ev("message", " two spaces", None)],
        );
    }
}
