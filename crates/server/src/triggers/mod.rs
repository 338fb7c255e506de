//! What starts a run: ref changes found by polling or reported by webhooks, and cron
//! schedules. Pure decisions and small parsers; the server's loops and the `/hooks`
//! handler call them.

pub mod cron;
pub mod refs;
pub mod webhook;
