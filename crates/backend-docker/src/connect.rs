//! Reaching the Docker daemon: the socket, the API version, and how failures are worded.
//!
//! bollard 0.21.1 prefixes every path with its own API version (`/v1.53/...`), which
//! Debian's Docker 20.10 (API 1.41) refuses with "client version 1.53 is too new", and its
//! `negotiate_version` asks `/v1.53/version`, which fails the same way. So [`connect`]
//! asks the daemon itself: a refusal names the newest version the daemon speaks, and the
//! client is rebuilt for that version. gantry needs at least [`MIN_API`].

use bollard::errors::Error;
use bollard::{ClientVersion, Docker};
use gantry_backend::BackendError;

/// The oldest Engine API gantry works with (Docker 20.10).
pub(crate) const MIN_API: (usize, usize) = (1, 41);

/// The newest Engine API the bollard models describe.
const MAX_API: (usize, usize) = (1, 53);

/// Per-request timeout for the response head (streams such as logs and waits are not
/// limited by it once they started).
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// How to start a daemon, for error messages.
pub(crate) const START_HINT: &str =
    "start it with `dockerd &` (as root) or `systemctl start docker`, or run with --backend local";

/// Where the daemon listens: `DOCKER_HOST` or the standard socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A unix socket path.
    Unix(String),
    /// A plain-HTTP address (`tcp://host:port`).
    Http(String),
}

impl Endpoint {
    /// From the value of `DOCKER_HOST` (`None`: the default socket).
    pub(crate) fn parse(docker_host: Option<&str>) -> Result<Endpoint, String> {
        match docker_host.map(str::trim).filter(|h| !h.is_empty()) {
            None => Ok(Endpoint::Unix("/var/run/docker.sock".to_owned())),
            Some(h) => {
                if let Some(path) = h.strip_prefix("unix://") {
                    Ok(Endpoint::Unix(path.to_owned()))
                } else if h.starts_with("tcp://") || h.starts_with("http://") {
                    Ok(Endpoint::Http(h.to_owned()))
                } else {
                    Err(format!(
                        "DOCKER_HOST={h} is not supported: use unix:///path/to/docker.sock \
                         or tcp://host:port"
                    ))
                }
            }
        }
    }

    fn shown(&self) -> String {
        match self {
            Endpoint::Unix(p) => format!("unix://{p}"),
            Endpoint::Http(h) => h.clone(),
        }
    }

    fn client(&self, (major, minor): (usize, usize)) -> Result<Docker, Error> {
        let version = ClientVersion {
            major_version: major,
            minor_version: minor,
        };
        match self {
            Endpoint::Unix(p) => Docker::connect_with_unix(p, REQUEST_TIMEOUT_SECS, &version),
            Endpoint::Http(h) => Docker::connect_with_http(h, REQUEST_TIMEOUT_SECS, &version),
        }
    }
}

/// A client for the daemon at `host` (a `DOCKER_HOST` value; `None`: the default socket),
/// speaking the newest API version both sides know; also returns the daemon's version.
pub(crate) async fn connect(host: Option<&str>) -> Result<(Docker, String), BackendError> {
    let endpoint = Endpoint::parse(host).map_err(unavailable)?;
    let not_running = |e: &Error| {
        unavailable(format!(
            "the Docker daemon is not running or not reachable at {} ({}); {START_HINT}",
            endpoint.shown(),
            describe(e)
        ))
    };
    let mut api = MAX_API;
    for _ in 0..2 {
        let docker = endpoint.client(api).map_err(|e| not_running(&e))?;
        match docker.version().await {
            Ok(v) => {
                let server = v.version.unwrap_or_else(|| "unknown".to_owned());
                return Ok((docker, server));
            }
            Err(Error::DockerResponseServerError { message, .. })
                if message.contains("too new") =>
            {
                let Some(max) = max_version_in(&message) else {
                    return Err(unavailable(format!(
                        "the Docker daemon refused the API version: {message}"
                    )));
                };
                if max < MIN_API {
                    return Err(unavailable(format!(
                        "the Docker daemon speaks API {}.{}; gantry needs {}.{} (Docker 20.10) \
                         or newer",
                        max.0, max.1, MIN_API.0, MIN_API.1
                    )));
                }
                api = max;
            }
            Err(Error::DockerResponseServerError {
                status_code,
                message,
            }) => {
                return Err(unavailable(format!(
                    "the Docker daemon answered {status_code}: {message}"
                )));
            }
            Err(e) => return Err(not_running(&e)),
        }
    }
    Err(unavailable(
        "the Docker daemon did not agree on an API version".to_owned(),
    ))
}

/// `1.41` out of "client version 1.53 is too new. Maximum supported API version is 1.41".
pub(crate) fn max_version_in(message: &str) -> Option<(usize, usize)> {
    let rest = message.split("Maximum supported API version is").nth(1)?;
    let word = rest.split_whitespace().next()?;
    let (major, minor) = word.trim_end_matches('.').split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

pub(crate) fn unavailable(message: String) -> BackendError {
    BackendError::Unavailable {
        backend: "docker",
        message,
    }
}

/// Whether `e` means the daemon cannot be reached (as opposed to refusing a request).
pub(crate) fn is_connection_error(e: &Error) -> bool {
    matches!(
        e,
        Error::IOError { .. }
            | Error::HyperResponseError { .. }
            | Error::HyperLegacyError { .. }
            | Error::RequestTimeoutError
            | Error::SocketNotFoundError(_)
    )
}

/// `e` in words for a user: the daemon's own message when it sent one.
pub(crate) fn describe(e: &Error) -> String {
    match e {
        Error::DockerResponseServerError { message, .. } if !message.is_empty() => message.clone(),
        Error::DockerStreamError { error } => error.clone(),
        Error::SocketNotFoundError(path) => format!("no socket at {path}"),
        Error::RequestTimeoutError => "the request timed out".to_owned(),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                let s_text = s.to_string();
                if !text.contains(&s_text) {
                    text.push_str(": ");
                    text.push_str(&s_text);
                }
                source = s.source();
            }
            text
        }
    }
}

/// An API call that failed, as a backend error: a daemon that went away is
/// `Unavailable` (so the user learns to look at the daemon), anything else is `Other`
/// with `what` was being done.
pub(crate) fn api_error(what: impl std::fmt::Display, e: &Error) -> BackendError {
    if is_connection_error(e) {
        unavailable(format!(
            "lost the Docker daemon while trying to {what} ({}); {START_HINT}",
            describe(e)
        ))
    } else {
        BackendError::Other(format!("failed to {what}: {}", describe(e)))
    }
}

/// Whether `e` is the daemon's 404 (no such container, image or network).
pub(crate) fn is_not_found(e: &Error) -> bool {
    matches!(
        e,
        Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_docker_host() {
        for (host, expect) in [
            (None, Ok(Endpoint::Unix("/var/run/docker.sock".into()))),
            (Some(""), Ok(Endpoint::Unix("/var/run/docker.sock".into()))),
            (
                Some("unix:///run/user/1000/docker.sock"),
                Ok(Endpoint::Unix("/run/user/1000/docker.sock".into())),
            ),
            (
                Some("tcp://127.0.0.1:2375"),
                Ok(Endpoint::Http("tcp://127.0.0.1:2375".into())),
            ),
            (
                Some("ssh://me@host"),
                Err("DOCKER_HOST=ssh://me@host is not supported: use \
                     unix:///path/to/docker.sock or tcp://host:port"
                    .to_owned()),
            ),
        ] {
            assert_eq!(Endpoint::parse(host), expect, "{host:?}");
        }
    }

    #[test]
    fn maximum_version_from_the_refusal() {
        for (message, expect) in [
            (
                "client version 1.53 is too new. Maximum supported API version is 1.41",
                Some((1, 41)),
            ),
            (
                "client version 1.53 is too new. Maximum supported API version is 1.52.",
                Some((1, 52)),
            ),
            ("something else", None),
        ] {
            assert_eq!(max_version_in(message), expect, "{message}");
        }
    }
}
