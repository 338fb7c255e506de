//! The command line: `auth [-l LEVEL] run [OPTIONS]`, parsed by hand (a parser crate
//! would cost more build time than these few flags are worth).

use std::time::Duration;

use crate::log::Level;

/// Printed for `--help` and after a usage error.
pub const USAGE: &str = "\
usage: auth [-l LEVEL] run [OPTIONS]

  -l, --log-level LEVEL   error, warn, info (default) or debug

run options:
  --db-host HOST          database host (default localhost)
  --db-port PORT          database port (default 3306)
  --db-user USER          database user (default root)
  --db-password PASSWORD  database password (default rootpass)
  --database NAME         database name (default messenger)
  -p, --port PORT         HTTP port to listen on (default 9000)
  --token-ttl SECONDS     how long a token stays valid (default 3600)
";

/// What to do.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Print the usage.
    Help,
    /// Serve.
    Run(Options),
}

/// Everything `run` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub log_level: Level,
    pub db_host: String,
    pub db_port: u16,
    pub db_user: String,
    pub db_password: String,
    pub database: String,
    pub port: u16,
    pub token_ttl: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            log_level: Level::Info,
            db_host: "localhost".into(),
            db_port: 3306,
            db_user: "root".into(),
            db_password: "rootpass".into(),
            database: "messenger".into(),
            port: 9000,
            token_ttl: Duration::from_secs(3600),
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
            "--db-host" => o.db_host = value(arg)?,
            "--db-port" => o.db_port = number(arg, &value(arg)?)?,
            "--db-user" => o.db_user = value(arg)?,
            "--db-password" => o.db_password = value(arg)?,
            "--database" => o.database = value(arg)?,
            "-p" | "--port" => o.port = number(arg, &value(arg)?)?,
            "--token-ttl" => o.token_ttl = Duration::from_secs(number(arg, &value(arg)?)?),
            _ => return Err(format!("unknown option `{arg}`")),
        }
    }
    if !saw_run {
        return Err("missing command `run`".into());
    }
    Ok(Command::Run(o))
}

fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{name}: `{v}` is not a valid number"))
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
            "-l debug run --db-host db -p 9000",
            Ok(Command::Run(Options {
                log_level: Level::Debug,
                db_host: "db".into(),
                port: 9000,
                ..Options::default()
            })),
        );
        check(
            "run --db-port 3307 --db-user u --db-password pw --database m --token-ttl 5",
            Ok(Command::Run(Options {
                db_port: 3307,
                db_user: "u".into(),
                db_password: "pw".into(),
                database: "m".into(),
                token_ttl: Duration::from_secs(5),
                ..Options::default()
            })),
        );
        check("--help", Ok(Command::Help));
        check("", Err("missing command `run`"));
        check("serve", Err("unknown command `serve` (expected `run`)"));
        check("run --bogus", Err("unknown option `--bogus`"));
        check("run -p", Err("-p needs a value"));
        check("run -p http", Err("-p: `http` is not a valid number"));
        check("-l loud run", Err("unknown log level `loud`"));
    }
}
