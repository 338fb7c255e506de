//! The command line: `session [-l LEVEL] run [OPTIONS]`, parsed by hand.

use crate::log::Level;

/// Printed for `--help` and after a usage error.
pub const USAGE: &str = "\
usage: session [-l LEVEL] run [OPTIONS]

  -l, --log-level LEVEL   error, warn, info (default) or debug

run options:
  --auth-host HOST        the auth service's host (default localhost)
  --auth-port PORT        the auth service's port (default 9000)
  -p, --port PORT         TCP port to listen on (default 9001)
";

/// What to do.
#[derive(Debug, PartialEq)]
pub enum Command {
    Help,
    Run(Options),
}

/// Everything `run` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub log_level: Level,
    pub auth_host: String,
    pub auth_port: u16,
    pub port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            log_level: Level::Info,
            auth_host: "localhost".into(),
            auth_port: 9000,
            port: 9001,
        }
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut o = Options::default();
    let mut it = args.iter();
    let mut saw_run = false;
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "-h" | "--help" | "help" => return Ok(Command::Help),
            "-l" | "--log-level" => {
                let v = value(arg)?;
                o.log_level = Level::parse(&v).ok_or_else(|| format!("unknown log level `{v}`"))?;
            }
            "run" if !saw_run => saw_run = true,
            _ if !saw_run => return Err(format!("unknown command `{arg}` (expected `run`)")),
            "--auth-host" => o.auth_host = value(arg)?,
            "--auth-port" => o.auth_port = number(arg, &value(arg)?)?,
            "-p" | "--port" => o.port = number(arg, &value(arg)?)?,
            _ => return Err(format!("unknown option `{arg}`")),
        }
    }
    if !saw_run {
        return Err("missing command `run`".into());
    }
    Ok(Command::Run(o))
}

fn number(name: &str, v: &str) -> Result<u16, String> {
    v.parse()
        .map_err(|_| format!("{name}: `{v}` is not a valid port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &str, expect: Result<Command, &str>) {
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        assert_eq!(parse(&args), expect.map_err(String::from), "{args:?}");
    }

    #[test]
    fn command_lines() {
        check("run", Ok(Command::Run(Options::default())));
        check(
            "-l debug run --auth-host auth --auth-port 9000 -p 9001",
            Ok(Command::Run(Options {
                log_level: Level::Debug,
                auth_host: "auth".into(),
                ..Options::default()
            })),
        );
        check("-h", Ok(Command::Help));
        check("", Err("missing command `run`"));
        check("run --port", Err("--port needs a value"));
        check("run -p 70000", Err("-p: `70000` is not a valid port"));
        check("run --db-host x", Err("unknown option `--db-host`"));
    }
}
