//! `gantry logs RUN [JOB] [-f]`: a run's logs from a server. Without JOB, every job's log
//! in plan order under a header line. With `-f`, lines are followed live over the server's
//! Server-Sent Events stream until the job ends; a dropped connection (a server restart,
//! a proxy timeout) is resumed with `Last-Event-ID`, so no line is printed twice or lost.

use std::io::Write as _;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode};

use crate::api::{self, Api, Job};
use crate::args::{ColorChoice, LogsArgs};
use crate::error::{CliError, Exit};
use crate::paint::{self, Paint};
use crate::sse;

/// How long `-f` keeps trying to reconnect to a server that went away.
const RECONNECT_FOR: Duration = Duration::from_secs(120);

/// Runs `gantry logs`.
pub fn logs(args: LogsArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    let paint = Paint::stdout(color);
    let run_id = args.run.to_string();
    api::block_on(async {
        if let Some(job) = &args.job {
            if args.follow {
                follow(&api, &run_id, job).await?;
            } else {
                print_log(&api, &run_id, job).await?;
            }
            return Ok(Exit::Success);
        }
        let run = api.run(args.run).await?;
        let mut jobs = run.jobs.clone();
        jobs.sort_by_key(|j| j.idx);
        for job in &jobs {
            if args.follow {
                paint::out(&header(job, None, paint));
                follow(&api, &run_id, &job.key).await?;
                // The header said the state when following began; say how it ended.
                let done = api.run(args.run).await?;
                if let Some(now) = done.jobs.iter().find(|j| j.idx == job.idx) {
                    paint::out(&footer(now, paint));
                }
            } else {
                paint::out(&header(job, Some(&job.state), paint));
                if job.state != "pending" && job.state != "skipped" {
                    print_log(&api, &run_id, &job.key).await?;
                }
            }
        }
        if jobs.is_empty()
            && let Some(error) = &run.error
        {
            paint::out(&format!("{}\n{error}\n", paint.red("the run errored:")));
        }
        Ok(Exit::Success)
    })
}

/// `==> build [succeeded]` (with the message of skipped or errored jobs).
fn header(job: &Job, state: Option<&str>, paint: Paint) -> String {
    let mut line = format!("==> {}", paint.bold(&job.name));
    if let Some(state) = state {
        line.push_str(&format!(" [{}]", super::runs::state(state, paint)));
        if job.attempt > 1 {
            line.push_str(&format!(" (attempt {})", job.attempt));
        }
        if let Some(message) = &job.message
            && matches!(state, "skipped" | "errored" | "failed" | "cancelled")
        {
            line.push_str(&format!(": {}", super::repo::first_line(message)));
        }
    }
    line.push('\n');
    line
}

/// `<== build succeeded` after a followed job.
fn footer(job: &Job, paint: Paint) -> String {
    let mut line = format!(
        "<== {} {}",
        paint.bold(&job.name),
        super::runs::state(&job.state, paint)
    );
    if let Some(message) = &job.message
        && job.state != "succeeded"
    {
        line.push_str(&format!(": {}", super::repo::first_line(message)));
    }
    line.push('\n');
    line
}

/// Prints a job's whole log as stored so far.
async fn print_log(api: &Api, run: &str, job: &str) -> Result<(), CliError> {
    let resp = api
        .send(api.request(Method::GET, &["api", "runs", run, "jobs", job, "log"]))
        .await?;
    let mut body = resp.bytes_stream();
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| api.transport(&e))?;
        if out.write_all(&chunk).is_err() {
            // A closed pipe (`gantry logs 3 | head`) ends the output quietly.
            return Ok(());
        }
    }
    let _ = out.flush();
    Ok(())
}

/// Follows one job's log until the server says it ended.
async fn follow(api: &Api, run: &str, job: &str) -> Result<(), CliError> {
    let mut last_id: Option<String> = None;
    let mut failing_since: Option<Instant> = None;
    let mut delay = Duration::from_millis(250);
    loop {
        match stream_once(api, run, job, &mut last_id).await {
            Ok(Streamed::Ended) => return Ok(()),
            Ok(Streamed::Dropped) => {
                // The server closed the stream without `end`: reconnect at once, it is
                // reachable.
                failing_since = None;
                delay = Duration::from_millis(250);
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(e)) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > RECONNECT_FOR {
                    return Err(e);
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

enum Streamed {
    /// The `end` event came.
    Ended,
    /// The connection ended without it.
    Dropped,
}

enum Failure {
    /// Worth reconnecting (connection refused or reset, a 5xx while restarting).
    Retry(CliError),
    /// Not (unknown run or job, not authorized).
    Fatal(CliError),
}

async fn stream_once(
    api: &Api,
    run: &str,
    job: &str,
    last_id: &mut Option<String>,
) -> Result<Streamed, Failure> {
    let mut req = api
        .request(
            Method::GET,
            &["api", "runs", run, "jobs", job, "log", "stream"],
        )
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if let Some(id) = last_id.as_deref() {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| Failure::Retry(api.transport(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        let err = api.refused(resp).await;
        return Err(
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                Failure::Retry(err)
            } else {
                Failure::Fatal(err)
            },
        );
    }
    let mut parser = sse::Parser::default();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return Ok(Streamed::Dropped);
        };
        let mut text = String::new();
        let mut ended = false;
        for event in parser.feed(&chunk) {
            if let Some(id) = event.id {
                *last_id = Some(id);
            }
            match event.event.as_str() {
                "line" | "message" => {
                    text.push_str(shown_line(&event.data));
                    text.push('\n');
                }
                "end" => ended = true,
                _ => {}
            }
        }
        let mut out = std::io::stdout().lock();
        if out.write_all(text.as_bytes()).is_err() {
            return Ok(Streamed::Ended);
        }
        let _ = out.flush();
        if ended {
            return Ok(Streamed::Ended);
        }
    }
    Ok(Streamed::Dropped)
}

/// The text of a log line from the stream: the stored form `<unix_ms> <stream> <text>`
/// loses its first two fields, as in the raw download; anything else is shown as is.
fn shown_line(data: &str) -> &str {
    let mut parts = data.splitn(3, ' ');
    let (Some(ms), Some(stream)) = (parts.next(), parts.next()) else {
        return data;
    };
    let stored = !ms.is_empty()
        && ms.bytes().all(|b| b.is_ascii_digit())
        && (matches!(stream, "o" | "e" | "s") || stream.starts_with("v:"));
    if stored {
        parts.next().unwrap_or("")
    } else {
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_lines_lose_time_and_stream() {
        for (data, want) in [
            ("1764417600000 o hello world", "hello world"),
            ("1764417600000 e ", ""),
            (
                "1764417600000 v:db ready for connections",
                "ready for connections",
            ),
            ("1764417600000 s + make", "+ make"),
            ("plain text line", "plain text line"),
            ("2024 was a year", "2024 was a year"),
            ("", ""),
        ] {
            assert_eq!(shown_line(data), want, "{data}");
        }
    }
}
