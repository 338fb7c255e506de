//! Services: the job's private network, its service containers, their logs, and waiting
//! until each is ready.
//!
//! Each job with services gets a user-defined bridge network of its own; every service
//! joins it with its name as network alias (and hostname), so the job and the other
//! services reach it by name and two jobs never see each other's services. Nothing is
//! published on the host.
//!
//! A service's output is kept in the job log as [`gantry_backend::Stream::Service`] lines.
//! Until the service is ready its lines are held back: if it never becomes ready, the
//! last of them go into the [`ServiceFailure`] (which the engine shows right under the
//! error) and the earlier ones into the log, so nothing is lost and nothing is shown
//! twice. Once it is ready, lines flow into the log as they come.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use gantry_backend::{JobSpec, LogSink, ServiceFailure, ServiceSpec};
use tokio::task::JoinHandle;

use crate::backend::Inner;
use crate::connect::describe;
use crate::names::{Names, labels};
use crate::ready::{self, Check, EXIT_NO_TOOL};

/// Service lines held back before readiness, at most (older ones are counted, not kept).
const MAX_PENDING: usize = 1000;

/// What a job created, for teardown (and for the drop safety net). Shared because
/// readiness checks of several services run at once.
#[derive(Debug, Default)]
pub(crate) struct Tracked {
    pub containers: Vec<String>,
    pub network: Option<String>,
}

pub(crate) type SharedTracked = Arc<Mutex<Tracked>>;

pub(crate) fn track(tracked: &SharedTracked, container: &str) {
    lock(tracked).containers.push(container.to_owned());
}

pub(crate) fn untrack(tracked: &SharedTracked, container: &str) {
    lock(tracked).containers.retain(|c| c != container);
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The output of one service: held back until it is ready, then live.
#[derive(Debug)]
pub(crate) struct ServiceLog {
    service: String,
    sink: LogSink,
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    live: bool,
    pending: VecDeque<String>,
    dropped: usize,
}

impl ServiceLog {
    fn new(service: &str, sink: LogSink) -> Arc<ServiceLog> {
        Arc::new(ServiceLog {
            service: service.to_owned(),
            sink,
            state: Mutex::new(LogState::default()),
        })
    }

    fn line(&self, text: String) {
        let mut st = lock(&self.state);
        if st.live {
            self.sink.service_line(&self.service, text);
        } else {
            if st.pending.len() == MAX_PENDING {
                st.pending.pop_front();
                st.dropped += 1;
            }
            st.pending.push_back(text);
        }
    }

    /// The service is ready: what was held back goes into the log, the rest flows.
    fn go_live(&self) {
        let mut st = lock(&self.state);
        self.flush(&mut st, usize::MAX);
        st.live = true;
    }

    /// The service failed: all but the last `keep` held-back lines go into the log, and
    /// the last `keep` are returned for the error.
    fn fail(&self, keep: usize) -> Vec<String> {
        let mut st = lock(&self.state);
        let n = st.pending.len().saturating_sub(keep);
        self.flush(&mut st, n);
        st.live = true;
        st.pending.drain(..).collect()
    }

    fn flush(&self, st: &mut LogState, n: usize) {
        if st.dropped > 0 {
            self.sink.service_line(
                &self.service,
                format!("[{} earlier lines not kept]", st.dropped),
            );
            st.dropped = 0;
        }
        for _ in 0..n {
            let Some(line) = st.pending.pop_front() else {
                break;
            };
            self.sink.service_line(&self.service, line);
        }
    }
}

/// A started service.
#[derive(Debug)]
pub(crate) struct RunningService {
    pub container: String,
    pub log: Arc<ServiceLog>,
    /// Follows the container's output until it stops.
    pub follower: JoinHandle<()>,
}

/// Everything `start_all` needs from the job.
pub(crate) struct Ctx<'a> {
    pub inner: &'a Inner,
    pub job: &'a JobSpec,
    pub names: &'a Names,
    pub tracked: &'a SharedTracked,
    pub logs: &'a LogSink,
}

/// Creates the network, starts every service and waits until all are ready. Started
/// services are pushed to `running` even when a later step fails, so teardown finds them.
pub(crate) async fn start_all(
    ctx: &Ctx<'_>,
    running: &mut Vec<RunningService>,
) -> Result<(), ServiceFailure> {
    let Some(first) = ctx.job.services.first() else {
        return Ok(());
    };
    let docker = &ctx.inner.docker;
    let network = ctx.names.network();
    let request = NetworkCreateRequest {
        name: network.clone(),
        driver: Some("bridge".to_owned()),
        labels: Some(labels(ctx.job, &ctx.inner.owner, "network")),
        ..Default::default()
    };
    if let Err(e) = docker.create_network(request).await {
        return Err(failure(
            &first.name,
            format!(
                "could not start: creating the job's network failed: {}",
                describe(&e)
            ),
            vec![],
        ));
    }
    lock(ctx.tracked).network = Some(network.clone());

    // Services and their probes are started all at once: each container costs a create
    // and a start round trip to the daemon, and a probe simply retries until its service
    // answers. The readiness timeout counts from here.
    let started_at = tokio::time::Instant::now();
    let network: &str = &network;
    let starts = ctx.job.services.iter().map(|service| async move {
        tokio::join!(
            start_one(ctx, network, service),
            start_probe(ctx, network, service)
        )
    });
    let mut probes = Vec::new();
    let mut first_error = None;
    for (svc, probe) in futures_util::future::join_all(starts).await {
        match svc {
            Ok(svc) => running.push(svc),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        match probe {
            Ok(probe) => probes.push(probe),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    let waits = ctx
        .job
        .services
        .iter()
        .zip(running.iter())
        .zip(probes)
        .map(|((spec, svc), probe)| wait_ready(ctx, spec, svc, probe, started_at));
    futures_util::future::try_join_all(waits).await?;
    Ok(())
}

async fn start_one(
    ctx: &Ctx<'_>,
    network: &str,
    service: &ServiceSpec,
) -> Result<RunningService, ServiceFailure> {
    let docker = &ctx.inner.docker;
    let name = ctx.names.service(&service.name);
    ctx.logs.system(format!(
        "starting service {} ({})",
        service.name, service.image
    ));
    let body = ContainerCreateBody {
        image: Some(service.image.clone()),
        hostname: Some(service.name.clone()),
        env: Some(
            service
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        cmd: service.command.clone(),
        labels: Some(labels(ctx.job, &ctx.inner.owner, "service")),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_owned()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.to_owned(),
                EndpointSettings {
                    aliases: Some(vec![service.name.clone()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    if let Err(e) = docker.create_container(Some(options), body).await {
        return Err(failure(
            &service.name,
            format!(
                "could not be created (image {}): {}",
                service.image,
                describe(&e)
            ),
            vec![],
        ));
    }
    track(ctx.tracked, &name);
    let log = ServiceLog::new(&service.name, ctx.logs.clone());
    if let Err(e) = docker.start_container(&name, None).await {
        return Err(failure(
            &service.name,
            format!(
                "could not be started (image {}): {}",
                service.image,
                describe(&e)
            ),
            vec![],
        ));
    }
    let follower = tokio::spawn(follow(docker.clone(), name.clone(), log.clone()));
    Ok(RunningService {
        container: name,
        log,
        follower,
    })
}

/// Copies a container's output into its [`ServiceLog`] until the container stops.
async fn follow(docker: Docker, container: String, log: Arc<ServiceLog>) {
    let options = LogsOptionsBuilder::new()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let stream = docker.logs(&container, Some(options));
    let _ = crate::output::pump(stream, |_, line| log.line(line)).await;
}

/// A started readiness probe.
pub(crate) struct Probe {
    container: String,
    image: String,
}

/// Starts the readiness probe of `spec` (none without `ready`).
async fn start_probe(
    ctx: &Ctx<'_>,
    network: &str,
    spec: &ServiceSpec,
) -> Result<Option<Probe>, ServiceFailure> {
    let Some(ready) = &spec.ready else {
        return Ok(None);
    };
    let docker = &ctx.inner.docker;
    let check = Check {
        host: &spec.name,
        port: ready.port,
        http_path: ready.http_path.as_deref(),
    };
    let fail = |reason: String| failure(&spec.name, reason, vec![]);
    // The job's image is pulled anyway; a job that builds its own image has only the
    // service's to offer.
    let built = ctx
        .job
        .image_build
        .as_ref()
        .is_some_and(|b| ctx.job.image.as_ref().is_some_and(|i| b.tags.contains(i)));
    let image = match &ctx.job.image {
        Some(i) if !built => i.clone(),
        _ => spec.image.clone(),
    };
    let (entrypoint, cmd) = ready::command(&check, ctx.inner.settings.probe_tools.as_deref());
    let probe = ctx.names.probe(&spec.name);
    let body = ContainerCreateBody {
        image: Some(image.clone()),
        entrypoint: Some(entrypoint),
        cmd: Some(cmd),
        labels: Some(labels(ctx.job, &ctx.inner.owner, "probe")),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(&probe).build();
    if let Err(e) = docker.create_container(Some(options), body).await {
        return Err(fail(format!(
            "cannot be checked for readiness: creating a probe container of image {image} \
             failed: {}",
            describe(&e)
        )));
    }
    track(ctx.tracked, &probe);
    if let Err(e) = docker.start_container(&probe, None).await {
        remove_now(docker, ctx.tracked, &probe).await;
        return Err(fail(format!(
            "cannot be checked for readiness: the probe (image {image}, /bin/sh) did not \
             start: {}",
            describe(&e)
        )));
    }
    Ok(Some(Probe {
        container: probe,
        image,
    }))
}

/// Waits until `svc` answers its readiness check (or at once, without one): until its
/// probe exits, the service exits, or the timeout counted from `started_at` passes.
async fn wait_ready(
    ctx: &Ctx<'_>,
    spec: &ServiceSpec,
    svc: &RunningService,
    probe: Option<Probe>,
    started_at: tokio::time::Instant,
) -> Result<(), ServiceFailure> {
    let (
        Some(ready),
        Some(Probe {
            container: probe,
            image,
        }),
    ) = (&spec.ready, probe)
    else {
        svc.log.go_live();
        return Ok(());
    };
    let docker = &ctx.inner.docker;
    let check = Check {
        host: &spec.name,
        port: ready.port,
        http_path: ready.http_path.as_deref(),
    };
    let what = ready::describe(&check);
    let keep = ctx.inner.settings.service_log_lines;
    let fail = |reason: String| failure(&spec.name, reason, svc.log.fail(keep));

    enum Ended {
        Probe(Result<i64, Error>),
        Service(Result<i64, Error>),
        TimedOut,
    }
    let ended = tokio::select! {
        r = exit_code(docker, &probe) => Ended::Probe(r),
        r = exit_code(docker, &svc.container) => Ended::Service(r),
        () = tokio::time::sleep_until(started_at + ready.timeout) => Ended::TimedOut,
    };
    let probe_output = match &ended {
        Ended::Probe(Ok(code)) if *code != 0 => container_output(docker, &probe).await,
        _ => String::new(),
    };
    remove_now(docker, ctx.tracked, &probe).await;
    match ended {
        Ended::Probe(Ok(0)) => {
            ctx.logs
                .system(format!("service {} is ready ({what})", spec.name));
            svc.log.go_live();
            Ok(())
        }
        Ended::Probe(Ok(code)) if code == EXIT_NO_TOOL => Err(fail(format!(
            "cannot be checked for readiness ({what}): {}; use a job image that has one of \
             them, or remove `ready`",
            probe_output.trim().trim_start_matches("gantry-probe: ")
        ))),
        Ended::Probe(Ok(code)) => Err(fail(format!(
            "cannot be checked for readiness ({what}): the probe in image {image} exited with \
             code {code}: {}",
            probe_output.trim()
        ))),
        Ended::Probe(Err(e)) | Ended::Service(Err(e)) => Err(fail(format!(
            "readiness check ({what}) broke off: {}",
            describe(&e)
        ))),
        Ended::Service(Ok(code)) => Err(fail(format!(
            "exited with code {code} before it was ready ({what})"
        ))),
        Ended::TimedOut => Err(fail(format!(
            "did not become ready within {} ({what})",
            gantry_backend::human_duration(ready.timeout)
        ))),
    }
}

fn failure(service: &str, reason: String, last_logs: Vec<String>) -> ServiceFailure {
    ServiceFailure {
        service: service.to_owned(),
        reason,
        last_logs,
    }
}

/// The exit code of a container, once it has stopped. bollard reports a non-zero code
/// as an error; here it is just a code.
pub(crate) async fn exit_code(docker: &Docker, container: &str) -> Result<i64, Error> {
    let mut stream = docker.wait_container(container, None);
    match stream.next().await {
        Some(Ok(r)) => Ok(r.status_code),
        Some(Err(Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(e),
        None => Err(Error::DockerStreamError {
            error: format!("the wait for container {container} ended without a status"),
        }),
    }
}

/// Everything a stopped container printed (for short-lived helpers like the probe).
async fn container_output(docker: &Docker, container: &str) -> String {
    let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
    let mut text = String::new();
    let _ = crate::output::pump(docker.logs(container, Some(options)), |_, line| {
        text.push_str(&line);
        text.push('\n');
    })
    .await;
    text
}

/// Removes a container now (killing it), and forgets it when that worked.
pub(crate) async fn remove_now(docker: &Docker, tracked: &SharedTracked, container: &str) {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(container, Some(options)).await {
        Ok(()) => untrack(tracked, container),
        Err(e) if crate::connect::is_not_found(&e) => untrack(tracked, container),
        Err(_) => {}
    }
}

/// How long teardown waits for followers after their containers are gone.
pub(crate) async fn join_followers(running: Vec<RunningService>, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    for svc in running {
        let mut follower = svc.follower;
        if tokio::time::timeout_at(deadline, &mut follower)
            .await
            .is_err()
        {
            follower.abort();
        }
        // Whatever was still held back (a service without a readiness check that was
        // never marked live cannot exist; this covers a start that failed half-way).
        svc.log.go_live();
    }
}
