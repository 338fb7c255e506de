//! Scratch: parse a file and print diagnostics or the plan (development aid).
#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    match gantry_pipeline::parse(&path, &text) {
        Err(d) => println!("{d}"),
        Ok(spec) => {
            let mut ctx = gantry_pipeline::PlanContext::default();
            for kv in std::env::args().skip(2) {
                let (k, v) = kv.split_once('=').unwrap();
                match k {
                    "branch" => ctx.branch = Some(v.into()),
                    "tag" => ctx.tag = Some(v.into()),
                    "event" => ctx.event = gantry_pipeline::Event::parse(v),
                    _ => { ctx.params.insert(k.into(), v.into()); }
                }
            }
            match spec.plan(&ctx) {
                Err(d) => println!("{d}"),
                Ok(plan) => println!("{plan:#?}"),
            }
        }
    }
}
