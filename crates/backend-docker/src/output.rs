//! Container output → log lines.
//!
//! The Engine API delivers stdout and stderr as frames that need not end at a newline, so
//! each stream gets its own [`LineSplitter`]: a line split across frames is delivered
//! whole, and an unfinished last line is delivered when the stream ends.

use bollard::container::LogOutput;
use bollard::errors::Error;
use futures_util::{Stream, StreamExt};
use gantry_backend::LineSplitter;

/// Longest log line; longer output lines are split.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024;

/// Reads `stream` to its end, calling `emit(is_stderr, line)` for every line. Returns the
/// stream's error, if it ended with one (the daemon went away).
pub(crate) async fn pump<S>(stream: S, mut emit: impl FnMut(bool, String)) -> Result<(), Error>
where
    S: Stream<Item = Result<LogOutput, Error>>,
{
    let mut out = LineSplitter::new(MAX_LINE_BYTES);
    let mut err = LineSplitter::new(MAX_LINE_BYTES);
    let mut stream = std::pin::pin!(stream);
    let mut result = Ok(());
    while let Some(item) = stream.next().await {
        match item {
            Ok(LogOutput::StdErr { message }) => err.push(&message, &mut |l| emit(true, l)),
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                out.push(&message, &mut |l| emit(false, l))
            }
            Ok(LogOutput::StdIn { .. }) => {}
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    out.finish(&mut |l| emit(false, l));
    err.finish(&mut |l| emit(true, l));
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn frames_become_lines_per_stream() {
        let frames = vec![
            Ok(LogOutput::StdOut {
                message: Bytes::from_static(b"hel"),
            }),
            Ok(LogOutput::StdErr {
                message: Bytes::from_static(b"oops\nhalf"),
            }),
            Ok(LogOutput::StdOut {
                message: Bytes::from_static(b"lo\nworld"),
            }),
        ];
        let mut got = Vec::new();
        pump(futures_util::stream::iter(frames), |e, l| got.push((e, l)))
            .await
            .expect("no error");
        assert_eq!(
            got,
            [
                (true, "oops".to_owned()),
                (false, "hello".to_owned()),
                (false, "world".to_owned()),
                (true, "half".to_owned()),
            ]
        );
    }
}
