//! `/metrics`: the server's state in the Prometheus text exposition format (version
//! 0.0.4): queue depth, running jobs, finished runs by outcome, and a histogram of run
//! durations.
//!
//! Counts come from the store at scrape time ([`QueueStats`]), so they survive restarts;
//! the duration histogram is kept in memory by the server ([`RunDurations`]) and starts
//! empty after a restart, as Prometheus histograms may.

use std::fmt::Write as _;
use std::sync::Mutex;

use gantry_store::QueueStats;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the run duration buckets: CI runs take seconds to hours.
pub const DEFAULT_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];

/// A histogram of finished runs' durations. Shared by reference: [`observe`] takes
/// `&self`.
///
/// [`observe`]: RunDurations::observe
#[derive(Debug)]
pub struct RunDurations {
    bounds: Vec<f64>,
    inner: Mutex<Counts>,
}

#[derive(Debug, Clone, Default)]
struct Counts {
    /// Per bucket (not cumulative), plus one for `+Inf`.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for RunDurations {
    fn default() -> Self {
        RunDurations::new(DEFAULT_BUCKETS)
    }
}

impl RunDurations {
    /// A histogram with these bucket upper bounds (sorted, deduplicated; non-finite
    /// bounds are dropped since `+Inf` is always there).
    pub fn new(bounds: &[f64]) -> RunDurations {
        let mut bounds: Vec<f64> = bounds.iter().copied().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let buckets = vec![0; bounds.len() + 1];
        RunDurations {
            bounds,
            inner: Mutex::new(Counts {
                buckets,
                sum: 0.0,
                count: 0,
            }),
        }
    }

    /// Records one run that took `seconds` (negative or NaN values are ignored).
    pub fn observe(&self, seconds: f64) {
        if seconds.is_nan() || seconds < 0.0 {
            return;
        }
        let idx = self
            .bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(self.bounds.len());
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.buckets[idx] += 1;
        c.sum += seconds;
        c.count += 1;
    }

    /// How many runs were observed.
    pub fn count(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).count
    }
}

/// One more gauge for [`render`] (executors connected, repositories, …). `name` must be
/// a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`); invalid characters become `_`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// Metric name, e.g. `gantry_executors`.
    pub name: String,
    /// One line of help text.
    pub help: String,
    /// Current value.
    pub value: f64,
}

/// Renders the metrics page.
pub fn render(stats: &QueueStats, durations: &RunDurations, extra: &[Gauge]) -> String {
    let mut out = String::new();
    section(
        &mut out,
        "gantry_queue_depth",
        "gauge",
        "Jobs ready to run and waiting for an executor.",
        vec![format!("gantry_queue_depth {}", stats.queued_jobs)],
    );
    section(
        &mut out,
        "gantry_runs_queued",
        "gauge",
        "Runs accepted and not yet admitted.",
        vec![format!("gantry_runs_queued {}", stats.queued_runs)],
    );
    section(
        &mut out,
        "gantry_jobs_running",
        "gauge",
        "Jobs leased to an executor.",
        vec![format!("gantry_jobs_running {}", stats.running_jobs)],
    );
    section(
        &mut out,
        "gantry_runs_total",
        "counter",
        "Finished runs by outcome.",
        stats
            .runs_by_state
            .iter()
            .map(|(state, n)| format!("gantry_runs_total{{state=\"{}\"}} {n}", escape_label(state)))
            .collect(),
    );

    let c = durations
        .inner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut samples = Vec::new();
    let mut cumulative = 0;
    for (i, n) in c.buckets.iter().enumerate() {
        cumulative += n;
        let le = durations
            .bounds
            .get(i)
            .map_or("+Inf".to_string(), |b| float(*b));
        samples.push(format!(
            "gantry_run_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        ));
    }
    samples.push(format!("gantry_run_duration_seconds_sum {}", float(c.sum)));
    samples.push(format!("gantry_run_duration_seconds_count {}", c.count));
    section(
        &mut out,
        "gantry_run_duration_seconds",
        "histogram",
        "How long finished runs took, from creation to the end.",
        samples,
    );

    for g in extra {
        let name = metric_name(&g.name);
        let sample = format!("{name} {}", float(g.value));
        section(&mut out, &name, "gauge", &g.help, vec![sample]);
    }
    out
}

/// One metric family: HELP and TYPE lines, then its samples.
fn section(out: &mut String, name: &str, kind: &str, help: &str, samples: Vec<String>) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for s in samples {
        out.push_str(&s);
        out.push('\n');
    }
}

/// A float as Prometheus writes it (`+Inf`, `-Inf`, `NaN`, shortest round-trip decimal).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn metric_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_text() {
        let stats = QueueStats {
            queued_runs: 2,
            queued_jobs: 5,
            running_jobs: 3,
            runs_by_state: [("failed", 4), ("succeeded", 17), ("weird\"state", 1)]
                .into_iter()
                .map(|(s, n)| (s.to_string(), n))
                .collect(),
        };
        let durations = RunDurations::new(&[1.0, 30.0, 60.0, 0.5, f64::INFINITY, 30.0]);
        for s in [0.2, 0.5, 12.0, 45.5, 59.9, 3600.0, -1.0, f64::NAN] {
            durations.observe(s);
        }
        assert_eq!(durations.count(), 6);
        let extra = [
            Gauge {
                name: "gantry_executors".into(),
                help: "Executors connected.\nIncluding the built-in one.".into(),
                value: 1.0,
            },
            Gauge {
                name: "9 bad-name".into(),
                help: "Sanitized.".into(),
                value: f64::INFINITY,
            },
        ];
        insta::assert_snapshot!(render(&stats, &durations, &extra));
    }

    #[test]
    fn empty_state() {
        let text = render(&QueueStats::default(), &RunDurations::default(), &[]);
        assert!(text.contains("gantry_queue_depth 0\n"), "{text}");
        assert!(
            text.contains("# TYPE gantry_runs_total counter\n# HELP"),
            "{text}"
        );
        assert!(
            text.contains("gantry_run_duration_seconds_bucket{le=\"+Inf\"} 0\n"),
            "{text}"
        );
        // Every family has exactly one HELP and one TYPE line.
        for family in [
            "gantry_queue_depth",
            "gantry_jobs_running",
            "gantry_runs_total",
        ] {
            assert_eq!(
                text.matches(&format!("# TYPE {family} ")).count(),
                1,
                "{family}"
            );
            assert_eq!(
                text.matches(&format!("# HELP {family} ")).count(),
                1,
                "{family}"
            );
        }
    }

    #[test]
    fn floats() {
        let check = |v: f64, expect: &str| assert_eq!(float(v), expect);
        check(1.0, "1");
        check(0.25, "0.25");
        check(f64::INFINITY, "+Inf");
        check(f64::NEG_INFINITY, "-Inf");
        check(f64::NAN, "NaN");
    }
}
