//! `gantry repo caches REPO [--clear [--key K]…]`: the pipeline caches a server keeps for
//! a repository's jobs (`/api/repos/{repo}/caches`), listed or removed.

use reqwest::Method;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::api::{self, Api};
use crate::args::{ColorChoice, RepoCachesArgs};
use crate::error::{CliError, Exit};
use crate::paint::{self, Paint};
use crate::render::format::size;
use crate::table::Table;
use crate::when;

/// `GET /api/repos/{repo}/caches`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Listing {
    caches: Vec<Entry>,
    size: u64,
    max_size: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Entry {
    key: String,
    files: u64,
    size: u64,
    last_used_at: Option<String>,
    run_id: Option<i64>,
}

/// `DELETE /api/repos/{repo}/caches`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Deleted {
    deleted: Vec<String>,
    size: u64,
}

/// Runs `gantry repo caches`.
pub fn caches(args: RepoCachesArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    let segments = ["api", "repos", args.repo.as_str(), "caches"];
    if args.clear {
        return clear(&api, &args, &segments);
    }
    let value: serde_json::Value = api::block_on(api.get(&segments, &[]))?;
    if args.json {
        paint::out(&format!("{}\n", super::repo::pretty(&value)));
        return Ok(Exit::Success);
    }
    let listing: Listing = serde_json::from_value(value).unwrap_or_default();
    paint::out(&render(
        &args.repo,
        &listing,
        OffsetDateTime::now_utc(),
        Paint::stdout(color),
    ));
    Ok(Exit::Success)
}

fn clear(api: &Api, args: &RepoCachesArgs, segments: &[&str]) -> Result<Exit, CliError> {
    // No key: every cache of the repository, in one call.
    let queries: Vec<Vec<(&str, String)>> = if args.keys.is_empty() {
        vec![Vec::new()]
    } else {
        args.keys.iter().map(|k| vec![("key", k.clone())]).collect()
    };
    let mut removed = Deleted::default();
    for query in queries {
        let one: Deleted = api::block_on(async {
            let resp = api
                .send(api.request(Method::DELETE, segments).query(&query))
                .await?;
            resp.json().await.map_err(|e| api.transport(&e))
        })?;
        removed.deleted.extend(one.deleted);
        removed.size += one.size;
    }
    paint::out(&match removed.deleted.len() {
        0 => format!("repository {} has no caches; nothing removed\n", args.repo),
        n => format!(
            "removed {n} cache{} of {} ({})\n",
            if n == 1 { "" } else { "s" },
            args.repo,
            size(removed.size)
        ),
    });
    Ok(Exit::Success)
}

fn render(repo: &str, listing: &Listing, now: OffsetDateTime, paint: Paint) -> String {
    if listing.caches.is_empty() {
        return format!(
            "repository {repo} has no caches yet (jobs with `cache:` save theirs when they \
             succeed)\n"
        );
    }
    let mut table = Table::new(&["KEY", "FILES", "SIZE", "LAST USED", "SAVED BY"]);
    for entry in &listing.caches {
        table.row(vec![
            paint.bold(&entry.key),
            entry.files.to_string(),
            size(entry.size),
            entry
                .last_used_at
                .as_deref()
                .and_then(when::parse)
                .map(|t| when::ago(t, now))
                .unwrap_or_default(),
            entry
                .run_id
                .map(|id| format!("run {id}"))
                .unwrap_or_else(|| paint.dim("-")),
        ]);
    }
    format!(
        "{}{} in {} cache{} (the server keeps at most {} for all repositories)\n",
        table.render(),
        size(listing.size),
        listing.caches.len(),
        if listing.caches.len() == 1 { "" } else { "s" },
        size(listing.max_size)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing() {
        let now = when::parse("2026-11-29T12:00:00Z").expect("now");
        let listing: Listing = serde_json::from_str(
            r#"{"repo":"app","size":1536000,"max_size":10737418240,"caches":[
              {"key":"deps-3f2a","files":120,"size":1500000,"created_at":"2026-11-28T12:00:00Z",
               "last_used_at":"2026-11-29T11:58:00Z","run_id":42},
              {"key":"tools","files":2,"size":36000,"created_at":"2026-11-20T12:00:00Z",
               "last_used_at":"2026-11-27T12:00:00Z","run_id":null,"future":true}
            ]}"#,
        )
        .expect("listing");
        insta::assert_snapshot!(format!(
            "{}\n{}",
            render("app", &listing, now, Paint::PLAIN),
            render("app", &Listing::default(), now, Paint::PLAIN)
        ));
    }
}
