//! Every file in `tests/diagnostics/` is a pipeline with mistakes; the rendered
//! diagnostics of all of them are one snapshot, so a change in wording, position or
//! completeness shows up in review.

use std::fmt::Write as _;

#[test]
fn bad_files_render_all_their_problems() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/diagnostics");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/diagnostics exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected the whole set of bad files, found {}",
        files.len()
    );
    let mut out = String::new();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 file name")
            .to_string();
        let text = std::fs::read_to_string(&path).expect("readable fixture");
        let diags = match gantry_pipeline::parse(&name, &text) {
            Ok(_) => panic!("{name} parsed without errors"),
            Err(d) => d,
        };
        // Every diagnostic located in the file names it with line and column.
        for d in &diags {
            if let Some(loc) = &d.location {
                assert_eq!(loc.file, name);
                assert!(loc.line >= 1 && loc.column >= 1);
            }
        }
        writeln!(out, "=== {name}\n{diags}\n").expect("write to string");
    }
    insta::assert_snapshot!("diagnostics", out);
}
