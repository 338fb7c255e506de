//! Telling people how a run ended, per the pipeline's `notify:` entries: which entries
//! apply to an outcome, the message, and sending it to a Slack-compatible webhook or by
//! email over SMTP.

pub mod email;
mod message;
pub mod webhook;

pub use message::{NotifyError, NotifyMessage, resolve_target, should_notify};
