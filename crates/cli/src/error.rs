//! The binary's one user-facing error type, and how each outcome maps to an exit code.
//!
//! Exit codes are a promise to scripts: 0 success, 1 the pipeline failed (or lint found
//! errors, or gantry could not run it), 2 invalid pipeline or usage, 130 cancelled.

use std::fmt;
use std::process::ExitCode;

/// How a command ended when it did not end with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything succeeded.
    Success,
    /// The pipeline ran and failed, or `lint` found errors.
    Failure,
    /// The run was cancelled by SIGINT/SIGTERM.
    Cancelled,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Cancelled => 130,
        }
    }
}

/// An error shown to the user: already worded for them, with the exit code it means.
#[derive(Debug)]
pub enum CliError {
    /// Bad command-line usage or an invalid pipeline: nothing ran (exit 2). The text is
    /// complete (diagnostics render several lines).
    Invalid(String),
    /// gantry itself could not do its work (IO, the backend): exit 1.
    Failed(anyhow::Error),
}

impl CliError {
    /// A usage/validation error from a message.
    pub fn invalid(msg: impl Into<String>) -> CliError {
        CliError::Invalid(msg.into())
    }

    /// The process exit code this error means.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Invalid(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Invalid(msg) => f.write_str(msg),
            // `{:#}` prints the whole cause chain on one line: "a: b: c".
            CliError::Failed(err) => write!(f, "{err:#}"),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(err: anyhow::Error) -> CliError {
        CliError::Failed(err)
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}
