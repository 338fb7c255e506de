//! The committed OpenAPI document (`crates/server/openapi.json`) is the generated one.
//! Regenerate after changing the API: `UPDATE_OPENAPI=1 cargo test -p gantry-server --test openapi`.

#![allow(clippy::unwrap_used)]

#[test]
fn openapi_json_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let generated =
        serde_json::to_string_pretty(&gantry_server::api::openapi::document()).unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "crates/server/openapi.json is out of date; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p gantry-server --test openapi`"
    );
}

#[test]
fn every_route_is_documented() {
    let doc = gantry_server::api::openapi::document();
    let paths = doc["paths"].as_object().unwrap();
    // The router's routes, with `{*path}` written as OpenAPI spells it.
    let source = include_str!("../src/api/mod.rs");
    let routes: Vec<String> = source
        .split(".route(")
        .skip(1)
        .filter_map(|s| s.trim_start().strip_prefix('"')?.split('"').next())
        .map(|r| r.replace("{*path}", "{path}"))
        .collect();
    assert!(routes.len() >= 15, "{routes:?}");
    for r in routes {
        assert!(
            paths.contains_key(&r),
            "route {r} is missing from the OpenAPI document"
        );
    }
}
