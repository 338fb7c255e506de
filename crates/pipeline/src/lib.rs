//! The gantry pipeline file: `gantry.yml` → [`Spec`] → [`Plan`].
//!
//! This crate is pure: no IO, no async, no clock. Parsing turns YAML text into a typed
//! [`Spec`] whose values remember their source spans; validation reports every problem in
//! the file at once as [`Diagnostic`]s; planning takes a [`PlanContext`] (event, ref,
//! params, …) and yields a [`Plan`] — the only type the engine ever sees.

mod plan_types;

pub use plan_types::*;
