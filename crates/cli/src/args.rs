//! The command line: every subcommand, flag and help text of `gantry`, as clap types.
//!
//! Parsing only: values that need more than clap's checks (`K=V` pairs, secrets files)
//! are validated by the command that uses them, so that errors can name the pipeline.

use std::num::NonZeroUsize;
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

const RUN_LONG_ABOUT: &str = "\
Run the pipeline of a working tree, right here: no server, no database.

The pipeline file is DIR/gantry.yml or DIR/.gantry.yml (or --file). Each job starts from a
pristine copy of DIR as you see it (in a git repository: tracked and untracked files that
are not ignored, uncommitted edits included), plus the artifacts of the jobs it needs.
Logs, artifacts and a summary.json of each run are kept under DIR/.gantry/runs/<n>/.

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
        assert_eq!(cli.color, ColorChoice::Never);
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
