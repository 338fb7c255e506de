//! Moving single blobs between the server and a job's artifact store, for artifacts
//! (`job.rs`) and caches (`caches.rs`) alike: a fetched blob is checked against its
//! digest before it enters the store, and a `Stale` refusal loses the lease.
//!
//! Errors are sentences for the job's log, naming the file through `what`
//! (`artifact out/app of job "build" (ab12…)`, `cache file target/x (ab12…)`).

use std::path::Path;

use gantry_engine::artifacts::ArtifactStore;
use gantry_protocol::{JobSource, LeaseError, LeaseId};

use crate::job::Control;
use crate::report::chain;

/// Fetches blob `digest` into `store` through `incoming` (a scratch directory), unless
/// the store has it already; its content must hash to `digest`.
pub(crate) async fn fetch(
    source: &dyn JobSource,
    lease: &LeaseId,
    digest: &str,
    store: &ArtifactStore,
    incoming: &Path,
    control: &Control,
    what: &str,
) -> Result<(), String> {
    let object = store
        .object_path(digest)
        .map_err(|e| format!("cannot restore {what}: {e}"))?;
    if object.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(incoming)
        .map_err(|e| format!("cannot create {}: {e}", incoming.display()))?;
    let tmp = incoming.join(digest);
    if let Err(e) = source.get_artifact(lease, digest, &tmp).await {
        lose_if_stale(&e, control);
        return Err(format!("cannot fetch {what}: {e}"));
    }
    let stored = {
        let store = store.clone();
        let tmp = tmp.clone();
        tokio::task::spawn_blocking(move || store.store_file(&tmp)).await
    };
    let _ = std::fs::remove_file(&tmp);
    match stored {
        Ok(Ok((got, _))) if got == digest => Ok(()),
        Ok(Ok((got, _))) => Err(format!(
            "{what} arrived damaged: its content hashes to {got}"
        )),
        Ok(Err(e)) => Err(format!("cannot store {what}: {}", chain(&e))),
        Err(e) => Err(format!("storing {what} panicked: {e}")),
    }
}

/// Sends blob `digest` of `store` to the server.
pub(crate) async fn upload(
    source: &dyn JobSource,
    lease: &LeaseId,
    digest: &str,
    store: &ArtifactStore,
    control: &Control,
    what: &str,
) -> Result<(), String> {
    let object = store
        .object_path(digest)
        .map_err(|e| format!("cannot upload {what}: {e}"))?;
    if let Err(e) = source.put_artifact(lease, digest, &object).await {
        lose_if_stale(&e, control);
        return Err(format!("cannot upload {what}: {e}"));
    }
    Ok(())
}

/// A `Stale` refusal means another executor may have the job: stop it, report nothing.
pub(crate) fn lose_if_stale(e: &LeaseError, control: &Control) {
    if matches!(e, LeaseError::Stale { .. }) {
        control.lose();
    }
}
