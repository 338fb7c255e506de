//! `gantry cache list|clear`: the caches `gantry run` keeps under `DIR/.gantry/cache`
//! ([`DirCaches`]), for people: a table of entries, and removing them.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use gantry_engine::cache::{CacheEntry, DirCaches};
use time::OffsetDateTime;

use crate::args::{CacheClearArgs, CacheCommand, CacheListArgs, ColorChoice};
use crate::error::{CliError, Exit};
use crate::paint::{self, Paint};
use crate::render::format::size;
use crate::table::Table;
use crate::when;

/// `<dir>/.gantry/cache`: where `gantry run` keeps the caches of the working tree `dir`.
pub fn cache_root(dir: &Path) -> PathBuf {
    dir.join(".gantry").join("cache")
}

/// Runs `gantry cache …`.
pub fn cache(command: CacheCommand, color: ColorChoice) -> Result<Exit, CliError> {
    match command {
        CacheCommand::List(args) => list(args, color),
        CacheCommand::Clear(args) => clear(args),
    }
}

fn caches_of(dir: Option<&Path>) -> Result<DirCaches, CliError> {
    let dir = dir.unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(CliError::invalid(format!(
            "error: {} is not a directory",
            dir.display()
        )));
    }
    Ok(DirCaches::new(cache_root(dir)))
}

fn list(args: CacheListArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let caches = caches_of(args.dir.as_deref())?;
    let entries = caches
        .list()
        .map_err(|e| CliError::Failed(anyhow::anyhow!(e)))?;
    if args.json {
        let json: Vec<serde_json::Value> = entries.iter().map(entry_json).collect();
        let text = serde_json::to_string_pretty(&json).unwrap_or_else(|_| "[]".into());
        paint::out(&format!("{text}\n"));
        return Ok(Exit::Success);
    }
    if entries.is_empty() {
        paint::out(&format!(
            "no caches in {} yet (jobs with `cache:` save theirs when they succeed)\n",
            super::shown(caches.root())
        ));
        return Ok(Exit::Success);
    }
    paint::out(&table(
        &entries,
        caches.stored_bytes(),
        OffsetDateTime::now_utc(),
        Paint::stdout(color),
    ));
    Ok(Exit::Success)
}

/// The table of entries and a total line.
pub fn table(entries: &[CacheEntry], stored: u64, now: OffsetDateTime, paint: Paint) -> String {
    let mut table = Table::new(&["KEY", "FILES", "SIZE", "LAST USED", "SAVED BY"]);
    for e in entries {
        table.row(vec![
            paint.bold(&e.key),
            e.files.to_string(),
            size(e.size),
            when::ago(OffsetDateTime::from(e.last_used), now),
            e.job.clone(),
        ]);
    }
    let total: u64 = entries.iter().map(|e| e.size).sum();
    format!(
        "{}{} in {} cache{} ({} on disk: files shared by several caches are stored once)\n",
        table.render(),
        size(total),
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        size(stored),
    )
}

fn entry_json(e: &CacheEntry) -> serde_json::Value {
    let time = |t: SystemTime| {
        OffsetDateTime::from(t)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    serde_json::json!({
        "key": e.key,
        "job": e.job,
        "files": e.files,
        "size": e.size,
        "saved_at": time(e.saved),
        "last_used_at": time(e.last_used),
    })
}

fn clear(args: CacheClearArgs) -> Result<Exit, CliError> {
    let caches = caches_of(args.dir.as_deref())?;
    let failed = |e: gantry_engine::cache::CacheError| CliError::Failed(anyhow::anyhow!(e));
    let mut unknown = Vec::new();
    let removed = if let Some(text) = &args.unused_for {
        let age = gantry_pipeline::parse_duration(text)
            .map_err(|e| CliError::invalid(format!("error: --unused-for {text}: {e}")))?;
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        caches.remove_unused(cutoff).map_err(failed)?
    } else if args.keys.is_empty() {
        caches.clear().map_err(failed)?
    } else {
        let known: Vec<String> = caches
            .list()
            .map_err(failed)?
            .into_iter()
            .map(|e| e.key)
            .collect();
        let (found, missing): (Vec<String>, Vec<String>) =
            args.keys.iter().cloned().partition(|k| known.contains(k));
        unknown = missing;
        caches.remove(&found).map_err(failed)?
    };
    paint::out(&match removed.entries {
        0 => "nothing removed\n".to_owned(),
        n => format!(
            "removed {n} cache{}, freed {}\n",
            if n == 1 { "" } else { "s" },
            size(removed.bytes)
        ),
    });
    if unknown.is_empty() {
        return Ok(Exit::Success);
    }
    let names: Vec<String> = unknown.iter().map(|k| format!("\"{k}\"")).collect();
    Err(CliError::Failed(anyhow::anyhow!(
        "no cache with the key {}; `gantry cache list` shows the keys",
        names.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_table() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let at = |secs_ago: u64| SystemTime::from(now) - Duration::from_secs(secs_ago);
        let entries = [
            CacheEntry {
                key: "deps-2d27fbdf4e8ca207afbfa388ca9172fbcc6c70e534af2476b3b704f87debadcf".into(),
                job: "build".into(),
                files: 1204,
                size: 50_541_363,
                saved: at(7200),
                last_used: at(120),
            },
            CacheEntry {
                key: "node".into(),
                job: "test (NODE=22)".into(),
                files: 3,
                size: 1536,
                saved: at(9 * 86_400),
                last_used: at(3 * 86_400),
            },
        ];
        insta::assert_snapshot!(table(
            &entries,
            40_000_000,
            now,
            Paint::new(ColorChoice::Never, false)
        ));
    }
}
