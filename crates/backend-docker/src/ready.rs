//! The readiness probe: a small POSIX `sh` program run in a probe container on the job's
//! network, which retries a TCP connect or an HTTP GET of a service by its name until it
//! succeeds.
//!
//! Why a container, and why this program:
//! - The check must run inside the job's network (the job reaches services by name there,
//!   and no port is published on the host), so it runs in a container attached to it. It
//!   also proves the name resolves, which is what the script will rely on.
//! - gantry ships no image of its own, so the probe runs in an image the job already has:
//!   the job's image (it is needed anyway), else the service's own image.
//! - Images differ in what they contain, so the program looks for a tool it can use, in
//!   order: for TCP `bash` (`/dev/tcp`), `perl`, `python3`, `nc -z`, `curl`; for HTTP
//!   `curl`, `wget`, `perl`, `python3`, `bash`. An image with none of them cannot be
//!   probed, and the error says so.
//! - One container per service loops inside (every [`INTERVAL`]) rather than one
//!   container per attempt: starting a container costs far more than an attempt.
//!
//! The program prints `gantry-probe: using TOOL` first, and exits 0 when the service
//! answered, or [`EXIT_NO_TOOL`] when the image has no usable tool. gantry enforces the
//! timeout by removing the container.

/// Exit code of the probe when the image has no tool to probe with.
pub(crate) const EXIT_NO_TOOL: i64 = 3;

/// Pause between two attempts, in seconds (as `sleep` takes it).
pub(crate) const INTERVAL: &str = "0.2";

/// The tools the probe may use, in order of preference, for TCP and for HTTP checks.
pub(crate) const TCP_TOOLS: &[&str] = &["bash", "perl", "python3", "nc", "curl"];
/// See [`TCP_TOOLS`].
pub(crate) const HTTP_TOOLS: &[&str] = &["curl", "wget", "perl", "python3", "bash"];

/// The probe program; its arguments are `HOST PORT PATH TOOLS INTERVAL` (`PATH` empty for
/// a TCP check, `TOOLS` space-separated).
const PROGRAM: &str = r#"host=$1 port=$2 path=$3 tools=$4 interval=$5
tcp_bash() { bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null; }
tcp_perl() { perl -MIO::Socket::INET -e 'exit(IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => $ARGV[1], Proto => "tcp", Timeout => 2) ? 0 : 1)' "$host" "$port" 2>/dev/null; }
tcp_python3() { python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2)' "$host" "$port" 2>/dev/null; }
tcp_nc() { nc -z -w 2 "$host" "$port" >/dev/null 2>&1; }
tcp_curl() { curl -s -o /dev/null --connect-timeout 2 --max-time 3 "http://$host:$port/" </dev/null; case $? in 6|7|28) return 1;; esac; }
http_curl() { curl -fsS -o /dev/null --max-time 3 "http://$host:$port$path" 2>/dev/null; }
http_wget() { wget -q -T 3 -O /dev/null "http://$host:$port$path" 2>/dev/null; }
http_perl() { perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => $ARGV[1], Proto => "tcp", Timeout => 3) or exit 1; print $s "GET $ARGV[2] HTTP/1.0\r\nHost: $ARGV[0]\r\n\r\n"; my $l = <$s>; exit(defined $l && $l =~ m{^HTTP/\d(\.\d)? [23]\d\d} ? 0 : 1)' "$host" "$port" "$path" 2>/dev/null; }
http_python3() { python3 -c 'import http.client, sys; c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=3); c.request("GET", sys.argv[3]); sys.exit(0 if c.getresponse().status < 400 else 1)' "$host" "$port" "$path" 2>/dev/null; }
http_bash() { bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1; printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$0" >&3; IFS= read -r -t 3 line <&3 || exit 1; case $line in HTTP/*" "[23][0-9][0-9]*) exit 0;; esac; exit 1' "$host" "$port" "$path" 2>/dev/null; }
if [ -n "$path" ]; then kind=http; else kind=tcp; fi
tool=
for t in $tools; do
    if command -v "$t" >/dev/null 2>&1; then tool=$t; break; fi
done
if [ -z "$tool" ]; then
    echo "gantry-probe: this image has none of: $tools" >&2
    exit 3
fi
echo "gantry-probe: using $tool"
while ! "${kind}_$tool"; do
    sleep "$interval" 2>/dev/null || sleep 1
done
"#;

/// What to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check<'a> {
    /// The service's name on the job's network.
    pub host: &'a str,
    pub port: u16,
    /// `Some` for an HTTP GET of this path.
    pub http_path: Option<&'a str>,
}

/// The probe container's entrypoint and command: `/bin/sh -c PROGRAM gantry-probe ARGS…`.
/// `tools` overrides the default tool list (tests use it to force one tool).
pub(crate) fn command(check: &Check<'_>, tools: Option<&[String]>) -> (Vec<String>, Vec<String>) {
    let defaults = if check.http_path.is_some() {
        HTTP_TOOLS
    } else {
        TCP_TOOLS
    };
    let tools = match tools {
        Some(list) => list.join(" "),
        None => defaults.join(" "),
    };
    let path = match check.http_path {
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) => format!("/{p}"),
        None => String::new(),
    };
    (
        vec!["/bin/sh".to_owned(), "-c".to_owned()],
        vec![
            PROGRAM.to_owned(),
            "gantry-probe".to_owned(),
            check.host.to_owned(),
            check.port.to_string(),
            path,
            tools,
            INTERVAL.to_owned(),
        ],
    )
}

/// How the check reads in messages: `tcp 3306`, `http GET /health on port 9000`.
pub(crate) fn describe(check: &Check<'_>) -> String {
    match check.http_path {
        Some(path) => format!("http GET {path} on port {}", check.port),
        None => format!("tcp {}", check.port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let tcp = Check {
            host: "db",
            port: 3306,
            http_path: None,
        };
        let (entry, cmd) = command(&tcp, None);
        assert_eq!(entry, ["/bin/sh", "-c"]);
        assert_eq!(
            cmd[1..],
            [
                "gantry-probe",
                "db",
                "3306",
                "",
                "bash perl python3 nc curl",
                "0.2"
            ]
        );
        let http = Check {
            host: "web",
            port: 80,
            http_path: Some("health"),
        };
        let (_, cmd) = command(&http, Some(&["wget".to_owned()]));
        assert_eq!(
            cmd[1..],
            ["gantry-probe", "web", "80", "/health", "wget", "0.2"]
        );
        assert_eq!(describe(&tcp), "tcp 3306");
        assert_eq!(describe(&http), "http GET health on port 80");
    }

    /// The program runs on the host's own `sh` too: with no usable tool it says so and
    /// exits 3, without trying to connect anywhere.
    #[test]
    fn without_a_tool_the_probe_gives_up_at_once() {
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                PROGRAM,
                "gantry-probe",
                "db",
                "1",
                "",
                "no-such-tool-xyz",
                "0.2",
            ])
            .output()
            .expect("sh runs");
        assert_eq!(out.status.code(), Some(EXIT_NO_TOOL as i32));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "gantry-probe: this image has none of: no-such-tool-xyz\n"
        );
    }
}
