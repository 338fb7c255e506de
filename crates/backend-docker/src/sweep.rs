//! The sweeper: removes what dead gantry processes left in Docker.
//!
//! Teardown removes a job's resources whenever gantry is alive to run it. When gantry is
//! killed (`kill -9`, a crash, a reboot) they stay; every resource carries its owner's
//! `pid@starttime` and boot id (see `owner`), so the next `gantry run` or `gantry gc`
//! can tell leftovers of dead processes from resources of runs still going on, which it
//! leaves alone. Containers go first (with their anonymous volumes), then networks (which
//! cannot be removed while a container uses them), then labelled volumes.

use std::collections::HashMap;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use gantry_backend::BackendError;

use crate::backend::Inner;
use crate::connect::{api_error, describe, is_not_found};
use crate::names::{LABEL_BOOT, LABEL_OWNER};
use crate::owner::{Verdict, is_alive, judge};

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Containers removed.
    pub containers: usize,
    /// Networks removed.
    pub networks: usize,
    /// Volumes removed.
    pub volumes: usize,
    /// Resources that could not be removed, with why.
    pub errors: Vec<String>,
}

impl SweepReport {
    /// Total number of resources removed.
    pub fn removed(&self) -> usize {
        self.containers + self.networks + self.volumes
    }
}

fn dead(inner: &Inner, labels: Option<&HashMap<String, String>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    judge(
        get(LABEL_OWNER),
        get(LABEL_BOOT),
        &inner.owner.boot,
        is_alive,
    ) == Verdict::Dead
}

pub(crate) async fn sweep(inner: &Inner) -> Result<SweepReport, BackendError> {
    let docker = &inner.docker;
    let mut report = SweepReport::default();
    let filters: HashMap<&str, Vec<&str>> = HashMap::from([("label", vec![LABEL_OWNER])]);

    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| api_error("list gantry's containers", &e))?;
    for c in containers {
        let Some(id) = c.id else { continue };
        if !dead(inner, c.labels.as_ref()) {
            continue;
        }
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(&id, Some(options)).await {
            Ok(()) => report.containers += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => report
                .errors
                .push(format!("container {}: {}", short(&id), describe(&e))),
        }
    }

    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(|e| api_error("list gantry's networks", &e))?;
    for n in networks {
        let Some(id) = n.id else { continue };
        if !dead(inner, n.labels.as_ref()) {
            continue;
        }
        match docker.remove_network(&id).await {
            Ok(()) => report.networks += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => report.errors.push(format!(
                "network {}: {}",
                n.name.unwrap_or(id),
                describe(&e)
            )),
        }
    }

    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(|e| api_error("list gantry's volumes", &e))?;
    for v in volumes.volumes.unwrap_or_default() {
        if !dead(inner, Some(&v.labels)) {
            continue;
        }
        let options = RemoveVolumeOptionsBuilder::new().force(true).build();
        match docker.remove_volume(&v.name, Some(options)).await {
            Ok(()) => report.volumes += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => report
                .errors
                .push(format!("volume {}: {}", v.name, describe(&e))),
        }
    }
    Ok(report)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
