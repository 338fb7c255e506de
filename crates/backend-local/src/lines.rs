//! Turns the raw bytes of a pipe into log lines, with [`LineSplitter`] from the backend
//! contract crate.
//!
//! Lines are pushed as soon as their newline arrives, so timestamps reflect when gantry
//! read them. Bytes are never buffered without bound: a line longer than the cap is cut
//! into pieces of at most `cap` bytes (at a UTF-8 character boundary where one is near),
//! and a final line without a newline is still delivered when the pipe closes. Invalid
//! UTF-8 is converted lossily, because a log must show *something* for binary output.

use gantry_backend::{CancellationToken, LineSplitter, LogSink, Stream};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Reads `reader` until it closes or `stop` fires, pushing each line into `logs` as it
/// arrives. On `stop` the unfinished line is still delivered.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: Stream,
    logs: LogSink,
    cap: usize,
    stop: CancellationToken,
) {
    let mut splitter = LineSplitter::new(cap);
    let mut emit = |text: String| logs.line(stream, text);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            // Data already in the pipe wins over `stop`, so a stop that races with the last
            // writes loses as little as possible.
            biased;
            read = reader.read(&mut chunk) => match read {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    logs.system(format!("reading the job's {stream:?} failed: {e}"));
                    break;
                }
            },
            () = stop.cancelled() => break,
        };
        splitter.push(&chunk[..n], &mut emit);
    }
    splitter.finish(&mut emit);
}
