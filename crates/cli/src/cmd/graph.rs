//! `gantry graph [FILE] [--dot]`: the planned DAG as text or Graphviz.

use std::path::Path;

use gantry_pipeline::PlanContext;

use crate::args::{ColorChoice, GraphArgs};
use crate::discover;
use crate::error::{CliError, Exit};
use crate::graph;
use crate::inputs;
use crate::paint::{self, Paint};

/// Runs `gantry graph`.
pub fn graph(args: GraphArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let file = discover::resolve(args.file.as_deref(), Path::new("."))?;
    let err_paint = Paint::stderr(color);
    let spec = super::load(&file, err_paint)?;
    let params = inputs::parse_pairs("--param", &args.params)?;
    super::check_declared(spec.params().iter().map(|p| p.name.as_str()), &params)?;
    // A manual run with defaults: `when` decisions show as notes, every job is listed.
    let ctx = PlanContext {
        params,
        run_number: 1,
        ..PlanContext::default()
    };
    let plan = spec
        .plan(&ctx)
        .map_err(|d| super::invalid_pipeline(&d, err_paint))?;
    if args.dot {
        paint::out(&graph::dot(&plan));
    } else {
        paint::out(&graph::text(&plan, Paint::stdout(color)));
    }
    Ok(Exit::Success)
}
