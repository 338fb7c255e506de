//! The web UI: server-rendered HTML pages (askama templates under `templates/`) over the
//! same state as the API, with a little plain JavaScript (`assets/`) for live updates.
//!
//! Map: [`session`] logs people in (session cookie, CSRF tokens) and decides who may see
//! what; [`throttle`] slows down password guessing; [`view`] holds the small formatting
//! helpers every page shares (status icons, durations, times); [`ansi`] turns log text
//! with ANSI colours into escaped HTML; [`graph`] lays out a run's job DAG as SVG; the
//! page handlers are [`login`], [`dashboard`], [`pipeline`], [`run`] (with the approval
//! forms), [`log`] (with [`search`] over a whole log) and [`form`]; [`assets`] serves the
//! CSS and JS embedded in the binary.
//!
//! Pages need no JavaScript unless they show something live; every status is an icon
//! and a word, never a colour alone.

pub mod ansi;
pub mod assets;
pub mod dashboard;
pub mod form;
pub mod graph;
pub mod log;
pub mod login;
pub mod pipeline;
pub mod run;
pub mod search;
pub mod session;
pub mod throttle;
pub mod urlencoded;
pub mod view;

use axum::Router;
use axum::routing::{get, post};

use crate::state::State;

/// The web UI's routes, merged into the API router (which adds the state and limits).
pub fn routes() -> Router<State> {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/repos/{repo}/pipelines/{pipeline}", get(pipeline::page))
        .route(
            "/repos/{repo}/pipelines/{pipeline}/run",
            get(form::page).post(form::submit),
        )
        .route("/runs/{id}", get(run::page))
        .route("/runs/{id}/cancel", post(run::cancel))
        .route("/runs/{id}/rerun", post(run::rerun))
        .route("/runs/{id}/rerun-failed", post(run::rerun_failed))
        .route("/runs/{id}/jobs/{job}", get(log::page))
        .route("/runs/{id}/jobs/{job}/search", get(search::page))
        .route("/runs/{id}/jobs/{job}/approve", post(run::approve))
        .route("/runs/{id}/jobs/{job}/reject", post(run::reject))
        .route("/ui/runs/{id}/status", get(run::status))
        .route(
            "/ui/repos/{repo}/pipelines/{pipeline}/latest",
            get(pipeline::latest),
        )
        .route("/assets/{file}", get(assets::serve))
}
