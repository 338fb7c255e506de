//! Log forwarding: a job's log lines to [`JobSource::append_log`], in batches.
//!
//! Two tasks per job. The collector reads the job's events and cuts batches: every
//! [`FLUSH_EVERY`] or at [`MAX_LINES`] lines. The uploader sends them one at a time, in
//! order, numbered from 0. Between the two is a channel of [`QUEUED_BATCHES`] batches: while
//! the uploader is behind, the collector keeps filling its current batch up to
//! [`MAX_LINES`] and only then waits, so a slow server gets fewer, fuller batches and the
//! number of requests in flight stays bounded. (What waits beyond that is the job's event
//! channel: a backend's log sink never blocks a script.)
//!
//! A batch the server could not take for a transient reason is resent with the same
//! `seq`, which the server stores once. Once the lease is lost, batches are dropped.

use std::sync::Arc;
use std::time::Duration;

use gantry_engine::RunEvent;
use gantry_protocol::{JobSource, LeaseError, LeaseId, LogChunk, WireLogLine};
use tokio::sync::mpsc;

use crate::job::Control;
use crate::report::wire_line;

/// Longest a line waits before it is sent.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Most lines in one batch.
pub(crate) const MAX_LINES: usize = 500;
/// Batches cut but not yet sent.
const QUEUED_BATCHES: usize = 4;

/// Forwards the log lines of `events` until the channel closes and every batch is sent
/// (or dropped because the lease is lost).
pub(crate) async fn forward(
    source: Arc<dyn JobSource>,
    lease: LeaseId,
    events: mpsc::UnboundedReceiver<RunEvent>,
    control: Arc<Control>,
) {
    let (tx, rx) = mpsc::channel(QUEUED_BATCHES);
    let uploader = upload(source, lease, rx, control);
    tokio::join!(collect(events, tx), uploader);
}

async fn collect(mut events: mpsc::UnboundedReceiver<RunEvent>, tx: mpsc::Sender<LogChunk>) {
    let mut seq = 0;
    let mut batch: Vec<WireLogLine> = Vec::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(RunEvent::JobLog { line, .. }) => {
                    batch.push(wire_line(line));
                    if batch.len() >= MAX_LINES {
                        let lines = std::mem::take(&mut batch);
                        if tx.send(LogChunk { seq, lines }).await.is_err() {
                            return;
                        }
                        seq += 1;
                    }
                }
                Some(_) => {}
                None => break,
            },
            _ = tick.tick(), if !batch.is_empty() => {
                let lines = std::mem::take(&mut batch);
                match tx.try_send(LogChunk { seq, lines }) {
                    Ok(()) => seq += 1,
                    // The uploader is behind: keep filling this batch.
                    Err(mpsc::error::TrySendError::Full(chunk)) => batch = chunk.lines,
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(LogChunk { seq, lines: batch }).await;
    }
}

async fn upload(
    source: Arc<dyn JobSource>,
    lease: LeaseId,
    mut rx: mpsc::Receiver<LogChunk>,
    control: Arc<Control>,
) {
    while let Some(chunk) = rx.recv().await {
        let mut backoff = Duration::from_millis(100);
        while !control.silenced() {
            match source.append_log(&lease, chunk.clone()).await {
                Ok(()) => break,
                Err(LeaseError::Stale { .. }) => control.lose(),
                Err(LeaseError::Unavailable(_)) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                // Refused for good (malformed, too large): resending cannot help, and the
                // job's result matters more than this batch.
                Err(_) => break,
            }
        }
    }
}
