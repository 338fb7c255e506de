//! The command line: every subcommand, flag and help text of `gantry`, as clap types.
//!
//! Parsing only: values that need more than clap's checks (`K=V` pairs, secrets files)
//! are validated by the command that uses them, so that errors can name the pipeline.

use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "gantry: a container-native CI/CD engine in one binary";

const LONG_ABOUT: &str = "\
gantry runs the pipeline described in gantry.yml: a DAG of jobs, each starting from a
pristine copy of your working tree plus the artifacts of the jobs it needs.

Examples:
  gantry run                          run ./gantry.yml (or ./.gantry.yml)
  gantry run examples/hello           run the pipeline of another directory
  gantry run --job test --jobs 2      run `test` and what it needs, two jobs at a time
  gantry run --param VERSION=1.2.3    set a declared parameter
  gantry lint                         check gantry.yml and print every problem
  gantry graph --dot | dot -Tsvg      draw the pipeline's DAG with Graphviz
  gantry serve --data /var/lib/gantry start a CI server with a built-in executor
  gantry runs go-auth                 list runs of a repository on a server
  gantry logs 42 -f                   follow the logs of run 42
  gantry agent --server URL --token T run jobs of a server on this machine

Exit codes: 0 success, 1 the pipeline failed (or lint found errors),
2 invalid pipeline or usage, 130 cancelled (Ctrl-C / SIGTERM).";

/// The `gantry` command line.
#[derive(Debug, Parser)]
#[command(name = "gantry", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// When to use colors: auto (a terminal and NO_COLOR unset), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Whether output is colored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Color when writing to a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always color, even into a pipe.
    Always,
    /// Never color.
    Never,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline of a working tree, right here.
    #[command(long_about = RUN_LONG_ABOUT)]
    Run(RunArgs),
    /// Check a pipeline file and print every problem in it.
    #[command(long_about = LINT_LONG_ABOUT)]
    Lint(LintArgs),
    /// Print a pipeline's DAG of jobs, as text or Graphviz.
    #[command(long_about = GRAPH_LONG_ABOUT)]
    Graph(GraphArgs),
    /// Remove containers and networks left behind by gantry runs that were killed.
    #[command(long_about = GC_LONG_ABOUT)]
    Gc(GcArgs),
    /// List or clear the caches `gantry run` keeps for jobs with `cache:`.
    #[command(subcommand, long_about = CACHE_LONG_ABOUT)]
    Cache(CacheCommand),
    /// Start the CI server, with its built-in executor.
    #[command(long_about = SERVE_LONG_ABOUT)]
    Serve(ServeArgs),
    /// Manage the server's API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Register and list repositories on a server.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Manage the user accounts that log in to a server's web UI.
    #[command(subcommand, long_about = USER_LONG_ABOUT)]
    User(UserCommand),
    /// List runs on a server.
    #[command(long_about = RUNS_LONG_ABOUT)]
    Runs(RunsArgs),
    /// Start runs of a repository's pipelines on a server.
    #[command(long_about = TRIGGER_LONG_ABOUT)]
    Trigger(TriggerArgs),
    /// Print (or follow) the logs of a run on a server.
    #[command(long_about = LOGS_LONG_ABOUT)]
    Logs(LogsArgs),
    /// Cancel a run on a server.
    Cancel(CancelArgs),
    /// Run a finished run again (all of it, or only its failed jobs).
    #[command(long_about = RERUN_LONG_ABOUT)]
    Rerun(RerunArgs),
    /// Run jobs of a server on this machine: an executor that leases work over HTTP.
    #[command(long_about = AGENT_LONG_ABOUT)]
    Agent(AgentArgs),
    /// Create, list and revoke the tokens agents connect with.
    #[command(subcommand, name = "agent-token", long_about = AGENT_TOKEN_LONG_ABOUT)]
    AgentToken(AgentTokenCommand),
    /// List the agents online on a server.
    #[command(long_about = AGENTS_LONG_ABOUT)]
    Agents(AgentsArgs),
}

const AGENT_LONG_ABOUT: &str = "\
Run jobs of a gantry server on this machine. The agent connects to the server with a token
made by `gantry agent-token create NAME`, announces its labels and how many jobs it runs at
once, and leases jobs: it checks out their source, runs them with the local backend (host
processes) or Docker (jobs with `image`), streams their logs, uploads their artifacts and
reports the result. Jobs with `runs_on: { KEY: VALUE }` only go to agents with that label.

Labels: backend=local|docker, os and arch are set automatically; add your own with
--label KEY=VALUE.

An unreachable server is retried with a growing pause; a wrong or revoked token, or a
server that speaks another protocol version, stops the agent with an error. At start, the
agent removes what a previous run of the same agent (same --work-dir) left behind when it
was killed: the processes its jobs left running, job directories, its unfinished leases
(the server gives them up at once, so their jobs run again), and Docker containers and
networks of gantry processes that died.

The first SIGINT/SIGTERM stops taking new jobs and waits for the running ones to finish;
a second one cancels them (the server runs them again elsewhere), a third exits at once.

Examples:
  gantry agent --server https://ci.example.com --token gantry_…
  GANTRY_AGENT_TOKEN=… gantry agent --server http://ci:8080 --name build-2 --jobs 4
  gantry agent --server http://ci:8080 --label pool=gpu --label zone=eu --backend docker

Exit codes: 0 stopped by a signal after the running jobs finished, 1 refused by the server
or failed, 2 usage, 130 stopped with running jobs cancelled.";

const AGENT_TOKEN_LONG_ABOUT: &str = "\
Tokens agents connect with (`gantry agent --token`). A token is shown once, when it is
created; the server keeps only its hash. Revoking a token disconnects the agents using it
at their next request; their running jobs go to other agents. Needs an admin token
(GANTRY_TOKEN).

Examples:
  gantry agent-token create build-1
  gantry agent-token list
  gantry agent-token revoke build-1";

const AGENTS_LONG_ABOUT: &str = "\
List the executors online on a server (remote agents and the server's built-in one): their
labels, how many jobs each runs at once and is running, and when each was last heard from.

Examples:
  gantry agents
  gantry agents --json | jq '.[].name'";

const SERVE_LONG_ABOUT: &str = "\
Start the CI server: the REST API, git polling, webhooks, cron schedules, the persistent
queue, notifications, and a built-in executor that runs jobs on this machine (host
processes, and Docker for jobs with `image` when a daemon answers).

State lives under --data: the SQLite database (unless --database names PostgreSQL), the
logs and the artifacts. On the first start an admin token is made and printed once; only
its hash is kept. `gantry token rotate --data DIR` makes a new one.

Runs survive restarts: jobs that were running when the server stopped are run again as a
new attempt, queued runs start, logs written before stay readable.

Examples:
  gantry serve --data /var/lib/gantry --listen 0.0.0.0:8080
  gantry serve --data ./ci --database postgres://gantry@localhost/gantry --jobs 4

Exit codes: 0 stopped by SIGINT/SIGTERM, 1 the server could not start or failed.";

const RUNS_LONG_ABOUT: &str = "\
List runs on a server, newest first: id, pipeline and number, state, ref, commit, cause,
when it started and how long it took. The id is what `gantry logs`, `cancel` and `rerun`
take.

Examples:
  gantry runs
  gantry runs go-auth --state failed --limit 5
  gantry runs go-auth --json | jq '.[0].state'";

const TRIGGER_LONG_ABOUT: &str = "\
Start runs of a repository's pipelines (the ones with `on: { manual: true }`), at the head
of a branch or tag, with parameters. Parameters are checked by the server against the
pipeline's `params:`; an invalid one starts nothing.

Examples:
  gantry trigger go-auth
  gantry trigger go-auth --pipeline release --ref v1.2.0 --param PUSH=true
  gantry trigger go-auth --wait            wait for the run and exit with its result

Exit codes: 0 started (with --wait: succeeded), 1 failed, 2 refused (bad parameter,
unknown repository or pipeline), 130 the run was cancelled (with --wait).";

const LOGS_LONG_ABOUT: &str = "\
Print the logs of a run: of one job (JOB = its key, e.g. `build` or `test-go-1.18`, or its
index), or of every job in order. With -f, follow them live until the job (or the run)
ends; a dropped connection is resumed where it stopped.

Examples:
  gantry logs 42
  gantry logs 42 build -f";

const RERUN_LONG_ABOUT: &str = "\
Start a new run with the same commit, ref and parameters as a finished one. With
--failed, only the jobs that failed (and those after them) run again; the others keep
their results and artifacts.";

/// Which server to talk to, and as whom.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The gantry server's URL.
    #[arg(
        long,
        value_name = "URL",
        env = "GANTRY_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,

    /// API token (better given through the environment than on the command line).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "GANTRY_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// `gantry serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the server keeps its state (database, logs, artifacts); created if missing.
    #[arg(long, value_name = "DIR", env = "GANTRY_DATA")]
    pub data: PathBuf,

    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Database URL: `postgres://…` for PostgreSQL (default: SQLite under --data).
    #[arg(long, value_name = "URL", env = "GANTRY_DATABASE")]
    pub database: Option<String>,

    /// Let requests without a token read (repositories, runs, logs, artifacts).
    #[arg(long)]
    pub anonymous_read: bool,

    /// How many jobs the built-in executor runs at once (default: the number of CPUs;
    /// 0 runs none, for a server whose jobs all run on agents).
    #[arg(long = "jobs", value_name = "N")]
    pub jobs: Option<u32>,

    /// How often repositories whose pipelines set no `on.poll` are polled, e.g. `1m`,
    /// `30s` (default: 5m).
    #[arg(long, value_name = "DURATION")]
    pub poll_interval: Option<String>,

    /// The server's URL as users reach it, for links in notifications.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,

    /// SMTP server for `notify: email` (host name).
    #[arg(long, value_name = "HOST")]
    pub smtp_host: Option<String>,

    /// SMTP port (default: 25 with --smtp-tls none, 587 with starttls, 465 with tls).
    #[arg(long, value_name = "PORT", requires = "smtp_host")]
    pub smtp_port: Option<u16>,

    /// Sender address of notification emails.
    #[arg(long, value_name = "ADDRESS", requires = "smtp_host")]
    pub smtp_from: Option<String>,

    /// SMTP login (the password is read from the environment variable
    /// GANTRY_SMTP_PASSWORD).
    #[arg(long, value_name = "USER", requires = "smtp_host")]
    pub smtp_username: Option<String>,

    /// How the SMTP connection is secured: starttls (must succeed), tls (from the first
    /// byte), none (a relay on loopback or a trusted network).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = SmtpTlsChoice::Starttls,
          requires = "smtp_host")]
    pub smtp_tls: SmtpTlsChoice,

    /// Where the built-in executor runs jobs (as for `gantry run`).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,

    /// How long a job's lease lives without a heartbeat from its executor, e.g. `30s`:
    /// when an agent dies or is cut off, its jobs run again elsewhere after this long.
    #[arg(long, value_name = "DURATION")]
    pub lease_ttl: Option<String>,

    /// How many times a job is handed out before a lost lease ends it errored.
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<NonZeroU32>,

    /// Largest artifact file an executor may upload, e.g. `1GiB`, `200MB`, `512KiB`.
    #[arg(long, value_name = "SIZE")]
    pub max_artifact_size: Option<String>,

    /// Most space the pipeline caches of all repositories take together, e.g. `10GiB`
    /// (the default); past it, the least recently used are removed.
    #[arg(long, value_name = "SIZE")]
    pub cache_max_size: Option<String>,
}

/// `--smtp-tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmtpTlsChoice {
    /// Plain text.
    None,
    /// A plain connection upgraded with STARTTLS, which must succeed.
    Starttls,
    /// TLS from the first byte.
    Tls,
}

/// `gantry agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The gantry server's URL.
    #[arg(long, value_name = "URL", env = "GANTRY_SERVER")]
    pub server: String,

    /// The agent token (`gantry agent-token create NAME` prints one); better given
    /// through the environment than on the command line.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "GANTRY_AGENT_TOKEN",
        hide_env_values = true
    )]
    pub token: String,

    /// The agent's name, unique among the server's agents (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// A label jobs can ask for with `runs_on: { KEY: VALUE }` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    /// How many jobs run at once.
    #[arg(long = "jobs", value_name = "N", default_value_t = NonZeroU32::MIN)]
    pub jobs: NonZeroU32,

    /// Where the agent keeps git mirrors and job directories (default: a directory per
    /// agent name under ~/.cache/gantry/agents, or $XDG_CACHE_HOME/gantry/agents).
    #[arg(long, value_name = "DIR", env = "GANTRY_AGENT_DIR")]
    pub work_dir: Option<PathBuf>,

    /// Where jobs run (as for `gantry run`).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
}

/// `gantry agent-token …`.
#[derive(Debug, Subcommand)]
pub enum AgentTokenCommand {
    /// Make a token for an agent; it is printed once.
    Create(AgentTokenNameArgs),
    /// List agent tokens: names, when each was made and which agents use it (never the
    /// secrets).
    List(AgentTokenListArgs),
    /// Revoke a token: agents using it are refused from their next request on.
    Revoke(AgentTokenNameArgs),
}

/// `gantry agent-token create|revoke NAME`.
#[derive(Debug, Args)]
pub struct AgentTokenNameArgs {
    /// The token's name (usually the agent's).
    #[arg(value_name = "NAME")]
    pub name: String,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry agent-token list`.
#[derive(Debug, Args)]
pub struct AgentTokenListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry agents`.
#[derive(Debug, Args)]
pub struct AgentsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Revoke the admin token and print a new one.
    Rotate(TokenRotateArgs),
}

/// `gantry token rotate`.
#[derive(Debug, Args)]
pub struct TokenRotateArgs {
    /// The server's data directory.
    #[arg(long, value_name = "DIR", env = "GANTRY_DATA")]
    pub data: PathBuf,

    /// Database URL, when the server uses PostgreSQL.
    #[arg(long, value_name = "URL", env = "GANTRY_DATABASE")]
    pub database: Option<String>,
}

/// `gantry repo …`.
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Register a repository: the server then polls it and accepts its webhooks.
    Add(RepoAddArgs),
    /// List registered repositories.
    List(RepoListArgs),
    /// List (or clear) the caches the server keeps for a repository's jobs with `cache:`.
    Caches(RepoCachesArgs),
}

/// `gantry repo caches`.
#[derive(Debug, Args)]
pub struct RepoCachesArgs {
    /// The repository.
    #[arg(value_name = "REPO")]
    pub repo: String,

    /// Remove the caches (all of them, or those named with --key) instead of listing
    /// them; needs an admin token.
    #[arg(long)]
    pub clear: bool,

    /// With --clear: only the cache under this key (repeatable).
    #[arg(long = "key", value_name = "KEY", requires = "clear")]
    pub keys: Vec<String>,

    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "clear")]
    pub json: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry repo add`.
#[derive(Debug, Args)]
pub struct RepoAddArgs {
    /// A unique name, used in URLs (`/hooks/NAME`).
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The git URL (or a path on the server's machine).
    #[arg(value_name = "URL")]
    pub url: String,

    /// The secret webhooks must be signed with (GitHub, Gitea, Forgejo) or carry
    /// (GitLab's X-Gitlab-Token). Without one, webhooks are refused.
    #[arg(long, value_name = "SECRET")]
    pub webhook_secret: Option<String>,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry repo list`.
#[derive(Debug, Args)]
pub struct RepoListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

const USER_LONG_ABOUT: &str = "\
User accounts log in to the web UI with a name and a password (beside the token login).
An admin may start, cancel, rerun and approve runs; a viewer only reads. The server keeps
only an argon2id hash of each password. Needs an admin token (GANTRY_TOKEN); works on a
running server.

Names are 1 to 64 lowercase letters, digits, '-', '_' or '.'; passwords have at least 8
characters. A password is read from the terminal (twice, not shown) or, with
--password-stdin, from standard input.

Examples:
  gantry user add alice --role admin
  printf '%s' \"$PASSWORD\" | gantry user add ci-viewer --password-stdin
  gantry user list
  gantry user passwd alice
  gantry user disable bob
  gantry user remove bob";

/// `gantry user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Make a user account (asks for its password).
    Add(UserAddArgs),
    /// List user accounts.
    List(UserListArgs),
    /// Set a user's password; their sessions end.
    Passwd(UserPasswordArgs),
    /// Change a user's role.
    Role(UserRoleArgs),
    /// Disable a user: they cannot log in, and their sessions end.
    Disable(UserNameArgs),
    /// Enable a disabled user again.
    Enable(UserNameArgs),
    /// Delete a user account; their sessions end.
    Remove(UserNameArgs),
}

/// What a user account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UserRole {
    /// Start, cancel, rerun and approve runs, besides reading.
    Admin,
    /// Read only.
    Viewer,
}

impl UserRole {
    /// The API's word.
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Admin => "admin",
            UserRole::Viewer => "viewer",
        }
    }
}

/// `gantry user add`.
#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The user's name: 1 to 64 lowercase letters, digits, '-', '_' or '.'.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// What the user may do.
    #[arg(long, value_enum, default_value = "viewer")]
    pub role: UserRole,

    /// Read the password from standard input (all of it, less one final newline)
    /// instead of asking on the terminal.
    #[arg(long)]
    pub password_stdin: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry user passwd`.
#[derive(Debug, Args)]
pub struct UserPasswordArgs {
    /// The user's name.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Read the password from standard input instead of asking on the terminal.
    #[arg(long)]
    pub password_stdin: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry user role`.
#[derive(Debug, Args)]
pub struct UserRoleArgs {
    /// The user's name.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The new role.
    #[arg(value_name = "ROLE", value_enum)]
    pub role: UserRole,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry user disable|enable|remove NAME`.
#[derive(Debug, Args)]
pub struct UserNameArgs {
    /// The user's name.
    #[arg(value_name = "NAME")]
    pub name: String,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry user list`.
#[derive(Debug, Args)]
pub struct UserListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs of this repository.
    #[arg(value_name = "REPO")]
    pub repo: Option<String>,

    /// Only runs of this pipeline (needs REPO).
    #[arg(long, value_name = "NAME", requires = "repo")]
    pub pipeline: Option<String>,

    /// Only runs in this state: queued, running, succeeded, failed, cancelled, errored.
    #[arg(long, value_name = "STATE",
          value_parser = ["queued", "running", "succeeded", "failed", "cancelled", "errored"])]
    pub state: Option<String>,

    /// How many runs to show.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: u32,

    /// Print the runs as a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry trigger`.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The repository.
    #[arg(value_name = "REPO")]
    pub repo: String,

    /// Start only this pipeline (default: every pipeline of the repository with
    /// `on.manual`).
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,

    /// The branch or tag to build (default: `main`, `master` or `develop`, whichever the
    /// repository has).
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,

    /// Set a parameter declared under `params:` (repeatable).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,

    /// Wait until the runs finish, and exit with their result.
    #[arg(long)]
    pub wait: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The run id (as `gantry runs` shows it).
    #[arg(value_name = "RUN")]
    pub run: i64,

    /// Only this job (its key or index); default: every job, in order.
    #[arg(value_name = "JOB")]
    pub job: Option<String>,

    /// Follow: keep printing new lines until the job (or run) ends.
    #[arg(short = 'f', long)]
    pub follow: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run id.
    #[arg(value_name = "RUN")]
    pub run: i64,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gantry rerun`.
#[derive(Debug, Args)]
pub struct RerunArgs {
    /// The run id.
    #[arg(value_name = "RUN")]
    pub run: i64,

    /// Only the failed jobs (and the jobs after them); the others keep their results.
    #[arg(long)]
    pub failed: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

const GC_LONG_ABOUT: &str = "\
Remove the Docker containers, networks and volumes left behind by gantry processes that
are no longer running (killed with kill -9, crashed, or from before a reboot). Resources
of gantry runs still going on are left alone. `gantry run` does the same when it starts.

Exit codes: 0 done (also when there was nothing to remove), 1 Docker is not available or
something could not be removed.";

/// `gantry gc`.
#[derive(Debug, Args)]
pub struct GcArgs {}

const CACHE_LONG_ABOUT: &str = "\
The caches `gantry run` keeps for jobs with `cache: { key, paths }`, under
DIR/.gantry/cache: one per key, restored into the workspace of every job that names the
key, and saved when a job whose key has no cache yet succeeds. A cache is never
updated; put a hash of what its files depend on into the key
(`deps-${hash:Cargo.lock}`), and clear what is no longer used.

Examples:
  gantry cache list
  gantry cache clear                     remove every cache
  gantry cache clear KEY…                remove these (keys as `list` prints them)
  gantry cache clear --unused-for 30d    remove those not restored in 30 days

`gantry run --no-cache` runs without restoring or saving any cache.";

/// `gantry cache …`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List the caches: key, files, size, when each was last used and which job saved it,
    /// most recently used first.
    List(CacheListArgs),
    /// Remove caches (all of them, the given keys, or those unused for a while) and the
    /// files only they held.
    Clear(CacheClearArgs),
}

/// `gantry cache list`.
#[derive(Debug, Args)]
pub struct CacheListArgs {
    /// The working tree whose caches to list (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `gantry cache clear`.
#[derive(Debug, Args)]
pub struct CacheClearArgs {
    /// Keys of the caches to remove (default: every cache).
    #[arg(value_name = "KEY")]
    pub keys: Vec<String>,

    /// Remove only the caches not restored (or saved) for this long, e.g. `7d`, `12h`.
    #[arg(long, value_name = "DURATION", conflicts_with = "keys")]
    pub unused_for: Option<String>,

    /// The working tree whose caches to clear (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

const RUN_LONG_ABOUT: &str = "\
Run the pipeline of a working tree, right here: no server, no database.

The pipeline file is DIR/gantry.yml or DIR/.gantry.yml (or --file). Each job starts from a
pristine copy of DIR as you see it (in a git repository: tracked and untracked files that
are not ignored, uncommitted edits included), plus the artifacts of the jobs it needs.
Logs, artifacts and a summary.json of each run are kept under DIR/.gantry/runs/<n>/.
Jobs with `cache:` restore and save their caches under DIR/.gantry/cache/ (see
`gantry cache`; --no-cache runs without them).

In a terminal, running jobs show as live lines; otherwise every log line is printed,
prefixed with its job's name.

Examples:
  gantry run
  gantry run examples/hello --param GREETING=hi
  gantry run --job package --fail-fast
  gantry run --secret TOKEN --secrets-file .env.ci     (TOKEN taken from the environment)

Exit codes: 0 success, 1 the pipeline failed, 2 invalid pipeline or usage, 130 cancelled.";

const LINT_LONG_ABOUT: &str = "\
Check a pipeline file and print every problem in it, each with file:line:column, the
quoted line and, where one is knowable, a fix.

FILE defaults to gantry.yml or .gantry.yml in the current directory.

Exit codes: 0 no problems, 1 the file has errors, 2 the file could not be read.";

const GRAPH_LONG_ABOUT: &str = "\
Print the pipeline's DAG: jobs in topological layers (a job's layer is one more than the
deepest job it needs), matrix instances expanded, each with the jobs it needs.

With --dot, print the graph in Graphviz's language instead:
  gantry graph --dot | dot -Tsvg > pipeline.svg

FILE defaults to gantry.yml or .gantry.yml in the current directory.";

/// Where the pipeline file is: `[DIR]` and `--file`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The working tree to run (default: the current directory). `.gantry/runs/` is kept here.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// The pipeline file (default: DIR/gantry.yml, else DIR/.gantry.yml).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Set a parameter declared under `params:` (repeatable).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,

    /// Run only this job and the jobs it needs (repeatable). A matrix job's key selects all
    /// of its instances.
    #[arg(long = "job", value_name = "NAME")]
    pub jobs: Vec<String>,

    /// How many jobs may run at once (default: the number of CPUs).
    #[arg(long = "jobs", value_name = "N")]
    pub parallelism: Option<NonZeroUsize>,

    /// Where jobs run: auto runs jobs with `image`/`services`/`image_build` in Docker when a
    /// daemon answers and the others as host processes; docker insists on Docker.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,

    /// The event to plan for, as `when: { event: ... }` sees it.
    #[arg(long, value_name = "EVENT", default_value = "manual",
          value_parser = clap::builder::PossibleValuesParser::new(
              gantry_pipeline::Event::ALL.map(|e| e.as_str())))]
    pub event: String,

    /// The branch being built (default: the repository's current branch, or none when
    /// --tag is given).
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,

    /// The tag being built (default: none).
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,

    /// Give jobs a secret: NAME=VALUE, or NAME alone to take the value from the environment
    /// variable NAME (repeatable). Secrets are masked as *** in every log line.
    #[arg(short = 's', long = "secret", value_name = "NAME[=VALUE]")]
    pub secrets: Vec<String>,

    /// Read secrets from a file of NAME=VALUE lines (`#` starts a comment line; values may
    /// be quoted; a leading `export ` is allowed).
    #[arg(long, value_name = "FILE")]
    pub secrets_file: Vec<PathBuf>,

    /// On the first failure, cancel every running and pending job instead of letting
    /// independent jobs finish.
    #[arg(long)]
    pub fail_fast: bool,

    /// After the run, keep only the newest N run directories under .gantry/runs/
    /// (0 keeps all).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub keep: usize,

    /// Keep each job's workspace (and the frozen source) under the run directory instead
    /// of deleting them, for debugging.
    #[arg(long)]
    pub keep_workspaces: bool,

    /// Run without caches: jobs with `cache:` neither restore nor save theirs (kept in
    /// .gantry/cache/; see `gantry cache`).
    #[arg(long)]
    pub no_cache: bool,
}

/// Which backend runs jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// Docker for container jobs when a daemon answers, host processes for the others.
    Auto,
    /// Host processes, each job in its own process group. Jobs with `image`, `services`,
    /// `image_build` or `deploy` fail on it.
    Local,
    /// Like auto, but a Docker daemon that does not answer is an error before anything
    /// runs. Jobs without `image` still run as host processes.
    Docker,
}

/// `gantry lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// The pipeline file (default: gantry.yml, else .gantry.yml, in the current directory).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `gantry graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The pipeline file (default: gantry.yml, else .gantry.yml, in the current directory).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Print Graphviz (`dot`) instead of text.
    #[arg(long)]
    pub dot: bool,

    /// Set a parameter, for pipelines whose jobs depend on one (repeatable).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_flags_parse() {
        let cli = Cli::try_parse_from([
            "gantry",
            "run",
            "dir",
            "--param",
            "A=1",
            "-p",
            "B=2",
            "--job",
            "x",
            "--jobs",
            "3",
            "--event",
            "push",
            "--fail-fast",
            "--keep",
            "5",
            "--no-cache",
            "--color",
            "never",
        ])
        .expect("parses");
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.dir, Some(PathBuf::from("dir")));
        assert_eq!(run.params, ["A=1", "B=2"]);
        assert_eq!(run.jobs, ["x"]);
        assert_eq!(run.parallelism.map(NonZeroUsize::get), Some(3));
        assert_eq!(run.event, "push");
        assert!(run.fail_fast);
        assert_eq!(run.keep, 5);
        assert!(run.no_cache);
        assert_eq!(cli.color, ColorChoice::Never);
    }

    #[test]
    fn cache_commands_parse() {
        let cli = Cli::try_parse_from(["gantry", "cache", "clear", "a", "b", "--dir", "p"])
            .expect("parses");
        let Command::Cache(CacheCommand::Clear(clear)) = cli.command else {
            panic!("not cache clear")
        };
        assert_eq!(clear.keys, ["a", "b"]);
        assert_eq!(clear.dir, Some(PathBuf::from("p")));
        let err = Cli::try_parse_from(["gantry", "cache", "clear", "a", "--unused-for", "7d"])
            .expect_err("keys and --unused-for exclude each other");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for argv in [
            &["gantry", "run", "--jobs", "0"][..],
            &["gantry", "run", "--event", "nope"],
            &["gantry", "run", "--backend", "kubernetes"],
            &["gantry", "frobnicate"],
        ] {
            let err = Cli::try_parse_from(argv).expect_err("must fail");
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
    }
}
