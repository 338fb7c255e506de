//! The gantry pipeline file: `gantry.yml` → [`Spec`] → [`Plan`].
//!
//! This crate is pure: no IO, no async, no clock. Parsing turns YAML text into a typed
//! [`Spec`] whose values remember their source spans; validation reports every problem in
//! the file at once as [`Diagnostic`]s; planning takes a [`PlanContext`] (event, ref,
//! params, …) and yields a [`Plan`] — the only type the engine ever sees.
//!
//! ```
//! let text = "jobs:\n  build:\n    script: [make]\n  test:\n    needs: [build]\n    script: [make test]\n";
//! let spec = gantry_pipeline::parse("gantry.yml", text).unwrap();
//! let plan = spec.plan(&gantry_pipeline::PlanContext::default()).unwrap();
//! assert_eq!(plan.jobs[1].needs, vec![0]);
//! ```

mod decode;
mod diagnostic;
mod duration;
mod glob;
mod graph;
mod parse;
mod plan;
mod plan_types;
mod select;
mod span;
mod spec;
mod suggest;
mod template;
mod validate;
mod yaml;

pub use diagnostic::{Diagnostic, Diagnostics, Location};
pub use duration::{DurationError, format_duration, parse_duration};
pub use glob::GlobPattern;
pub use parse::{PIPELINE_FILE_NAMES, default_pipeline_name, parse, parse_named};
pub use plan::{DEFAULT_READY_TIMEOUT, DEFAULT_TIMEOUT, DEFAULT_WORKSPACE};
pub use plan_types::*;
pub use select::SelectError;
pub use span::{Span, Spanned};
pub use spec::*;
pub use template::{Template, TemplateError, VarRef, is_var_name};
pub use validate::BUILTIN_VARS;
