//! The OpenAPI 3.1 document of the API, built here next to the router so that a route
//! and its description change together. It is served at `/api/openapi.json` and
//! committed as `crates/server/openapi.json`; the `openapi` test fails when the two
//! differ (regenerate with `UPDATE_OPENAPI=1 cargo test -p gantry-server --test openapi`).

use serde_json::{Value, json};

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn content(s: Value) -> Value {
    json!({ "application/json": { "schema": s } })
}

fn ok(description: &str, s: Value) -> Value {
    json!({ "description": description, "content": content(s) })
}

fn err(description: &str) -> Value {
    json!({ "description": description, "content": content(schema("Error")) })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn query_param(name: &str, ty: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": ty } })
}

fn body(s: Value, required: bool) -> Value {
    json!({ "required": required, "content": content(s) })
}

fn op(summary: &str, params: Vec<Value>, responses: Value) -> Value {
    json!({ "summary": summary, "parameters": params, "responses": responses })
}

fn with_body(mut op: Value, b: Value) -> Value {
    op["requestBody"] = b;
    op
}

fn public(mut op: Value) -> Value {
    op["security"] = json!([]);
    op
}

fn nullable(ty: &str) -> Value {
    json!({ "type": [ty, "null"] })
}

/// The document.
pub fn document() -> Value {
    let run = || path_param("id", "Run id");
    let job = || path_param("job", "Job plan index or key");
    let repo = || path_param("repo", "Repository name");
    let std_err = |mut v: Value| {
        v["401"] = err("No token, or an invalid one");
        v["404"] = err("No such repository, run or job");
        v
    };
    let text = |d: &str| json!({ "description": d, "content": { "text/plain": { "schema": { "type": "string" } } } });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "gantry server API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Repositories, runs, jobs, logs and artifacts of a gantry server. Errors are {\"error\": \"message\"}. Authenticate with Authorization: Bearer <token>."
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/health": { "get": public(op("Liveness and version", vec![], json!({ "200": ok("Up", schema("Health")) }))) },
            "/api/openapi.json": { "get": public(op("This document", vec![], json!({ "200": ok("The OpenAPI document", json!({ "type": "object" })) }))) },
            "/api/repos": {
                "get": op("List repositories", vec![], std_err(json!({ "200": ok("Repositories by name", json!({ "type": "array", "items": schema("Repo") })) }))),
                "post": with_body(op("Register a repository", vec![], std_err(json!({
                    "201": ok("Registered", schema("Repo")),
                    "400": err("Invalid name, URL or JSON"),
                    "403": err("The token may not change anything"),
                    "409": err("The name is taken"),
                    "413": err("Body too large")
                }))), body(schema("AddRepo"), true))
            },
            "/api/repos/{repo}": { "get": op("A repository with its pipelines", vec![repo()], std_err(json!({ "200": ok("The repository", schema("Repo")) }))) },
            "/api/repos/{repo}/pipelines/{pipeline}/params": {
                "get": op("Params of a pipeline, with the allowed values of ref params", vec![repo(), path_param("pipeline", "Pipeline name"), query_param("ref", "string", "Read the pipeline file at this branch or tag (default: the default branch)")],
                    std_err(json!({ "200": ok("Params in file order", json!({ "type": "array", "items": schema("Param") })), "502": err("The repository cannot be reached") })))
            },
            "/api/repos/{repo}/trigger": {
                "post": with_body(op("Start manual runs", vec![repo()], std_err(json!({
                    "201": ok("One run per pipeline started", json!({ "type": "array", "items": schema("Run") })),
                    "400": err("Malformed JSON"),
                    "403": err("The token may not change anything"),
                    "422": err("Invalid params (the message names the param), or manual runs are disabled"),
                    "502": err("The repository cannot be reached")
                }))), body(schema("Trigger"), false))
            },
            "/api/runs": {
                "get": op("List runs, newest first", vec![
                    query_param("repo", "string", "Only this repository"),
                    query_param("pipeline", "string", "Only this pipeline (needs repo)"),
                    query_param("state", "string", "Comma-separated states"),
                    query_param("before", "integer", "Only runs with a smaller id (the previous page's next)"),
                    query_param("limit", "integer", "Page size, 1 to 500 (default 50)")
                ], std_err(json!({ "200": ok("A page of runs", schema("RunPage")), "400": err("Invalid filter") })))
            },
            "/api/runs/{id}": { "get": op("A run with its jobs", vec![run()], std_err(json!({ "200": ok("The run", schema("Run")) }))) },
            "/api/runs/{id}/cancel": { "post": op("Cancel a run", vec![run()], std_err(json!({ "200": ok("The run after the request", schema("Run")), "403": err("The token may not change anything") }))) },
            "/api/runs/{id}/rerun": {
                "post": with_body(op("Rerun a finished run (all jobs, or only those that did not succeed)", vec![run()], std_err(json!({
                    "201": ok("The new run", schema("Run")),
                    "403": err("The token may not change anything"),
                    "422": err("The run is not finished, or was never planned")
                }))), body(schema("Rerun"), false))
            },
            "/api/runs/{id}/log": { "get": op("The run-level log (why a run could not be planned)", vec![run(), query_param("format", "string", "text (default) or stored")], std_err(json!({ "200": text("The log"), "206": text("A byte range of it"), "416": err("Range outside the log") }))) },
            "/api/runs/{id}/jobs/{job}/log": {
                "get": op("A job's log; honours Range: bytes=", vec![run(), job(), query_param("format", "string", "text (default: lines without time and stream) or stored (<unix_ms> <stream> <text> lines)")],
                    std_err(json!({ "200": text("The log"), "206": text("A byte range of it"), "400": err("Invalid job name or Range"), "416": err("Range outside the log") })))
            },
            "/api/runs/{id}/jobs/{job}/log/stream": {
                "get": op("Follow a job's log (Server-Sent Events): event line (data: one stored line, id: byte offset after it), event end (data: the job's state). Resume with Last-Event-ID or ?from=", vec![run(), job(), query_param("from", "integer", "Start after this byte offset")],
                    std_err(json!({ "200": { "description": "An event stream", "content": { "text/event-stream": { "schema": { "type": "string" } } } } })))
            },
            "/api/runs/{id}/artifacts": { "get": op("Artifact files of a run", vec![run()], std_err(json!({ "200": ok("Files", json!({ "type": "array", "items": schema("Artifact") })) }))) },
            "/api/runs/{id}/artifacts/{job}/{path}": {
                "get": op("Download one artifact file", vec![run(), job(), path_param("path", "Path in the workspace (may contain /)")],
                    std_err(json!({ "200": { "description": "The file", "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } }, "400": err("Unsafe path") })))
            },
            "/hooks/{repo}": {
                "post": public(op("Push and tag webhooks (GitHub X-Hub-Signature-256, Gitea/Forgejo signatures, GitLab X-Gitlab-Token)", vec![repo()], json!({
                    "201": ok("Runs started", schema("HookResult")),
                    "202": ok("Verified, nothing started (other event, deleted ref, no matching pipeline, already seen)", schema("HookResult")),
                    "400": err("Not a supported webhook, or a malformed payload"),
                    "401": err("Missing or bad signature; nothing started"),
                    "403": err("The repository has no webhook secret"),
                    "404": err("No such repository"),
                    "413": err("Body too large")
                })))
            },
            "/metrics": { "get": op("Prometheus metrics", vec![], json!({ "200": { "description": "Prometheus text format", "content": { "text/plain": { "schema": { "type": "string" } } } }, "401": err("No token, or an invalid one") })) }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } },
                "Health": { "type": "object", "required": ["ok", "version"], "properties": { "ok": { "type": "boolean" }, "version": { "type": "string" } } },
                "Repo": { "type": "object", "required": ["id", "name", "url", "webhook", "created_at"], "properties": {
                    "id": { "type": "integer" }, "name": { "type": "string" }, "url": { "type": "string" },
                    "webhook": { "type": "boolean", "description": "Whether a webhook secret is set (never shown)" },
                    "created_at": { "type": "string", "format": "date-time" },
                    "last_error": nullable("string"), "last_polled_at": nullable("string"), "next_poll_at": nullable("string"),
                    "pipelines": { "type": "array", "items": schema("Pipeline") }
                } },
                "Pipeline": { "type": "object", "required": ["name", "path"], "properties": { "name": { "type": "string" }, "path": { "type": "string" } } },
                "AddRepo": { "type": "object", "required": ["name", "url"], "additionalProperties": false, "properties": {
                    "name": { "type": "string" }, "url": { "type": "string" }, "webhook_secret": nullable("string")
                } },
                "Param": { "type": "object", "required": ["name", "type", "choices"], "properties": {
                    "name": { "type": "string" }, "type": { "enum": ["string", "bool", "choice", "ref"] },
                    "default": nullable("string"), "choices": { "type": "array", "items": { "type": "string" } },
                    "description": nullable("string"), "pattern": nullable("string"),
                    "allowed": { "type": "array", "items": { "type": "string" }, "description": "For ref params: matching tags (newest first), then branches" }
                } },
                "Trigger": { "type": "object", "additionalProperties": false, "properties": {
                    "pipeline": nullable("string"), "ref": nullable("string"),
                    "params": { "type": "object", "additionalProperties": { "type": "string" } }
                } },
                "Rerun": { "type": "object", "additionalProperties": false, "properties": { "failed_only": { "type": "boolean" } } },
                "RunPage": { "type": "object", "required": ["runs", "next"], "properties": {
                    "runs": { "type": "array", "items": schema("Run") }, "next": nullable("integer")
                } },
                "Run": { "type": "object", "required": ["id", "repo", "pipeline", "number", "state", "event", "ref", "commit", "cause", "params", "created_at", "cancel_requested"], "properties": {
                    "id": { "type": "integer" }, "repo": { "type": "string" }, "pipeline": { "type": "string" }, "number": { "type": "integer" },
                    "state": { "enum": ["queued", "running", "succeeded", "failed", "cancelled", "errored"] },
                    "event": { "type": "string" }, "ref": { "type": "string" }, "commit": { "type": "string" }, "cause": { "type": "string" },
                    "params": { "type": "object", "additionalProperties": { "type": "string" } },
                    "error": nullable("string"),
                    "created_at": { "type": "string", "format": "date-time" }, "started_at": nullable("string"), "finished_at": nullable("string"),
                    "duration_ms": nullable("integer"), "rerun_of": nullable("integer"), "cancel_requested": { "type": "boolean" },
                    "concurrency_group": nullable("string"),
                    "jobs": { "type": "array", "items": schema("Job") }
                } },
                "Job": { "type": "object", "required": ["idx", "key", "name", "needs", "state", "attempt"], "properties": {
                    "idx": { "type": "integer" }, "key": { "type": "string" }, "name": { "type": "string" },
                    "needs": { "type": "array", "items": { "type": "integer" } },
                    "state": { "enum": ["pending", "queued", "running", "succeeded", "failed", "allowed_failure", "errored", "skipped", "cancelled"] },
                    "attempt": { "type": "integer" }, "executor": nullable("string"), "message": nullable("string"), "exit_code": nullable("integer"),
                    "queued_at": nullable("string"), "started_at": nullable("string"), "finished_at": nullable("string")
                } },
                "Artifact": { "type": "object", "required": ["job", "job_idx", "path", "digest", "size"], "properties": {
                    "job": { "type": "string" }, "job_idx": { "type": "integer" }, "path": { "type": "string" }, "digest": { "type": "string" }, "size": { "type": "integer" }
                } },
                "HookResult": { "type": "object", "required": ["runs"], "properties": {
                    "runs": { "type": "array", "items": schema("Run") }, "ignored": { "type": "string" }
                } }
            }
        }
    })
}
