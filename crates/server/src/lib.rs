//! `gantry serve`: the CI server. It keeps repositories, runs and jobs in a
//! [`gantry_store::Store`], watches repositories (polling, webhooks, cron), plans runs from
//! the pipeline file at each commit, decides which jobs are ready, hands them to executors
//! through the [`gantry_protocol::JobSource`] lease interface (the built-in executor uses it
//! in-process), stores logs and artifacts as files, notifies, and serves the REST API.
//!
//! Architecture invariant: the server links no backend crate; jobs run only through leases.
