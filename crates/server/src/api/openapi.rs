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
    let mut doc = json!({
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
            "/api/runs/{id}/jobs/{job}/approve": { "post": op("Approve a job that waits for approval (environment approval: required): it is queued and runs. Approving it again changes nothing", vec![run(), job()], std_err(json!({
                "200": ok("The run after the answer", schema("Run")),
                "403": err("The token may not change anything"),
                "409": err("The job is not waiting for approval (or was rejected)")
            }))) },
            "/api/runs/{id}/jobs/{job}/reject": { "post": op("Reject a job that waits for approval: it fails with \"rejected by NAME\" and the run goes on by the DAG rules. Rejecting it again changes nothing", vec![run(), job()], std_err(json!({
                "200": ok("The run after the answer", schema("Run")),
                "403": err("The token may not change anything"),
                "409": err("The job is not waiting for approval (or was approved)")
            }))) },
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
                    "state": { "enum": ["pending", "queued", "waiting", "running", "succeeded", "failed", "allowed_failure", "errored", "skipped", "cancelled"], "description": "waiting: held until a person approves it (environment approval: required)" },
                    "attempt": { "type": "integer" }, "executor": nullable("string"), "message": nullable("string"), "exit_code": nullable("integer"),
                    "queued_at": nullable("string"), "started_at": nullable("string"), "finished_at": nullable("string"),
                    "approval": { "oneOf": [{ "type": "null" }, schema("Approval")] }
                } },
                "Approval": { "type": "object", "required": ["answer", "by", "at"], "properties": {
                    "answer": { "enum": ["approved", "rejected"] }, "by": { "type": "string" }, "at": { "type": "string", "format": "date-time" }
                } },
                "Artifact": { "type": "object", "required": ["job", "job_idx", "path", "digest", "size"], "properties": {
                    "job": { "type": "string" }, "job_idx": { "type": "integer" }, "path": { "type": "string" }, "digest": { "type": "string" }, "size": { "type": "integer" }
                } },
                "HookResult": { "type": "object", "required": ["runs"], "properties": {
                    "runs": { "type": "array", "items": schema("Run") }, "ignored": { "type": "string" }
                } }
            }
        }
    });
    add_agents(&mut doc);
    add_users(&mut doc);
    add_caches(&mut doc);
    doc
}

/// Inserts every entry of `from` (an object) into `into`'s object at `key`.
fn extend(into: &mut Value, key: &str, from: Value) {
    if let (Some(map), Value::Object(from)) = (into[key].as_object_mut(), from) {
        map.extend(from);
    }
}

/// The agent routes: the admin's (`/api/agent-tokens`, `/api/agents`) and the agent
/// protocol (`/api/agent/v1/…`), whose refusals are `AgentError` bodies.
fn add_agents(doc: &mut Value) {
    let lease = || path_param("lease", "Lease id, as handed out by /api/agent/v1/lease");
    let digest = || path_param("digest", "sha256 of the blob: 64 lowercase hex digits");
    let agent_err = |d: &str| json!({ "description": d, "content": content(schema("AgentError")) });
    let refusals = |mut v: Value| {
        v["400"] = agent_err("Malformed request or JSON (error: invalid)");
        v["401"] = agent_err("No token, an invalid or a revoked one (error: unauthorized)");
        v["409"] = agent_err(
            "The lease expired, was superseded, or is held under another token; nothing changed (error: stale)",
        );
        v["503"] = agent_err("The server cannot answer right now; try again (error: unavailable)");
        v
    };
    let binary = || json!({ "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } });
    extend(
        doc,
        "paths",
        json!({
            "/api/agent-tokens": {
                "get": op("Live agent tokens (no secrets), with the online executors using each", vec![], json!({
                    "200": ok("Tokens", json!({ "type": "array", "items": schema("AgentToken") })),
                    "401": err("No token, or an invalid one"),
                    "403": err("Not the admin token")
                })),
                "post": with_body(op("Make an agent token; its secret is shown only in this answer", vec![], json!({
                    "201": ok("Made", schema("CreatedToken")),
                    "400": err("Invalid name or JSON"),
                    "401": err("No token, or an invalid one"),
                    "403": err("Not the admin token"),
                    "409": err("A live token has this name")
                })), body(schema("NewAgentToken"), true))
            },
            "/api/agent-tokens/{name}": {
                "delete": op("Revoke an agent token: agents using it are refused from their next call", vec![path_param("name", "Token name")], json!({
                    "204": { "description": "Revoked" },
                    "400": err("Not an agent token"),
                    "401": err("No token, or an invalid one"),
                    "403": err("Not the admin token"),
                    "404": err("No live agent token has this name")
                }))
            },
            "/api/agents": {
                "get": op("Executors online now (seen within the lease ttl or waiting for work), the built-in one included", vec![], json!({
                    "200": ok("Executors by name", json!({ "type": "array", "items": schema("Agent") })),
                    "401": err("No token, or an invalid one")
                }))
            },
            "/api/agent/v1/hello": {
                "post": with_body(op("Agent handshake: protocol version and limits; the leases an earlier run of the agent left are expired at once", vec![], refusals(json!({
                    "200": ok("Compatible", schema("ServerHello")),
                    "426": agent_err("The agent speaks another protocol version; the message names both (error: incompatible)")
                }))), body(schema("AgentHello"), true))
            },
            "/api/agent/v1/lease": {
                "post": with_body(op("Wait (long poll, at most 30 s) for a job this executor's labels match", vec![], refusals(json!({
                    "200": ok("A lease", json!({ "type": "object", "description": "gantry_protocol::Lease: the job, its plan, source and the artifacts to restore" })),
                    "204": { "description": "No job came within the wait" },
                    "426": agent_err("Another protocol version (error: incompatible)")
                }))), body(schema("LeaseRequest"), true))
            },
            "/api/agent/v1/leases/{lease}/heartbeat": {
                "post": op("Extend a lease; the answer says whether to carry on", vec![lease()], refusals(json!({
                    "200": ok("ok, cancelled (stop the job, finish it cancelled) or lost (stop, report nothing)", json!({ "enum": ["ok", "cancelled", "lost"] }))
                })))
            },
            "/api/agent/v1/leases/{lease}/logs": {
                "post": with_body(op("Append a batch of log lines; a batch resent with the same seq is stored once", vec![lease()], refusals(json!({
                    "204": { "description": "Stored" },
                    "413": agent_err("Larger than the server's log batch limit (error: too_large)")
                }))), body(json!({ "type": "object", "description": "gantry_protocol::LogChunk: {seq, lines: [{at_ms, stream, source?, text}]}" }), true))
            },
            "/api/agent/v1/leases/{lease}/artifacts/{digest}": {
                "put": with_body(op("Upload an artifact blob (streamed); its sha256 must be its name", vec![lease(), digest()], refusals(json!({
                    "204": { "description": "Stored (verified)" },
                    "413": agent_err("Larger than the server's artifact limit (error: too_large)")
                }))), json!({ "required": true, "content": binary() })),
                "get": op("Download a blob (streamed): an artifact of the lease's run, or a file of a cache of its repository", vec![lease(), digest()], refusals(json!({
                    "200": { "description": "The blob", "content": binary() }
                })))
            },
            "/api/agent/v1/leases/{lease}/finish": {
                "post": with_body(op("End a lease with the job's result (artifacts uploaded before)", vec![lease()], refusals(json!({
                    "204": { "description": "Recorded" }
                }))), body(json!({ "type": "object", "description": "gantry_protocol::Finish: {report, attempts, duration_ms, manifest}" }), true))
            }
        }),
    );
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.extend(agent_schemas());
    }
}

fn agent_schemas() -> serde_json::Map<String, Value> {
    let labels = || json!({ "type": "object", "additionalProperties": { "type": "string" } });
    let Value::Object(map) = json!({
        "AgentError": { "type": "object", "required": ["error", "message"], "properties": {
            "error": { "enum": ["stale", "unauthorized", "incompatible", "invalid", "too_large", "unavailable"] },
            "message": { "type": "string" },
            "lease": { "type": "string", "description": "stale: the lease" },
            "reason": { "type": "string", "description": "stale: why" },
            "executor": { "type": "integer", "description": "incompatible: the agent's protocol version" },
            "supported": { "type": "string", "description": "incompatible: what the server speaks" }
        } },
        "ExecutorInfo": { "type": "object", "required": ["name", "labels", "capacity", "protocol"], "properties": {
            "name": { "type": "string" }, "labels": labels(), "capacity": { "type": "integer" }, "protocol": { "type": "integer" }
        } },
        "AgentHello": { "type": "object", "required": ["name", "labels", "capacity", "protocol"], "properties": {
            "name": { "type": "string" }, "labels": labels(), "capacity": { "type": "integer" }, "protocol": { "type": "integer" },
            "abandoned": { "type": "array", "items": { "type": "string" }, "description": "Leases an earlier run of this agent (same work directory) left unfinished; those still current and held under this agent's name and token are expired at once" }
        } },
        "LeaseRequest": { "type": "object", "required": ["executor"], "properties": {
            "executor": schema("ExecutorInfo"), "wait_ms": { "type": "integer", "description": "Capped at 30000" }
        } },
        "ServerHello": { "type": "object", "required": ["protocol", "server_version", "lease_ttl_secs", "max_lease_wait_ms", "max_artifact_bytes", "max_log_batch_bytes"], "properties": {
            "protocol": { "type": "integer" }, "server_version": { "type": "string" }, "lease_ttl_secs": { "type": "integer" },
            "max_lease_wait_ms": { "type": "integer" }, "max_artifact_bytes": { "type": "integer" }, "max_log_batch_bytes": { "type": "integer" },
            "expired_leases": { "type": "integer", "description": "How many of the hello's abandoned leases were expired" }
        } },
        "NewAgentToken": { "type": "object", "required": ["name"], "additionalProperties": false, "properties": { "name": { "type": "string" } } },
        "CreatedToken": { "type": "object", "required": ["name", "token", "created_at"], "properties": {
            "name": { "type": "string" }, "token": { "type": "string", "description": "The secret; shown only here" }, "created_at": { "type": "string", "format": "date-time" }
        } },
        "AgentToken": { "type": "object", "required": ["name", "created_at", "agents"], "properties": {
            "name": { "type": "string" }, "created_at": { "type": "string", "format": "date-time" },
            "agents": { "type": "array", "items": { "type": "string" } }
        } },
        "Agent": { "type": "object", "required": ["name", "labels", "capacity", "running", "last_seen", "protocol", "builtin"], "properties": {
            "name": { "type": "string" }, "labels": labels(), "capacity": { "type": "integer" }, "running": { "type": "integer" },
            "last_seen": { "type": "string", "format": "date-time" }, "protocol": { "type": "integer" },
            "token": nullable("string"), "builtin": { "type": "boolean" }
        } }
    }) else {
        return serde_json::Map::new();
    };
    map
}

/// The user account routes (`/api/users…`, admin only).
fn add_users(doc: &mut Value) {
    let name = || path_param("name", "User name");
    let refusals = |mut v: Value| {
        v["401"] = err("No token, or an invalid one");
        v["403"] = err("Not an admin");
        v
    };
    extend(
        doc,
        "paths",
        json!({
            "/api/users": {
                "get": op("User accounts by name (no password hashes)", vec![], refusals(json!({
                    "200": ok("Users", json!({ "type": "array", "items": schema("User") }))
                }))),
                "post": with_body(op("Make a user account (the password is stored as an argon2id hash)", vec![], refusals(json!({
                    "201": ok("Made", schema("User")),
                    "400": err("Invalid name (1 to 64 of a-z, 0-9, -, _, .), role, password (8 characters at least) or JSON"),
                    "409": err("The name is taken")
                }))), body(schema("NewUser"), true))
            },
            "/api/users/{name}": {
                "get": op("A user account", vec![name()], refusals(json!({
                    "200": ok("The user", schema("User")),
                    "404": err("No such user")
                }))),
                "patch": with_body(op("Change a user's password, role or disabled state (a new password or disabling ends the user's sessions)", vec![name()], refusals(json!({
                    "200": ok("The user after the change", schema("User")),
                    "400": err("Invalid role, password or JSON"),
                    "404": err("No such user")
                }))), body(schema("ChangeUser"), true)),
                "delete": op("Delete a user account (its sessions end)", vec![name()], refusals(json!({
                    "204": { "description": "Deleted" },
                    "404": err("No such user")
                })))
            }
        }),
    );
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        let Value::Object(map) = json!({
            "User": { "type": "object", "required": ["id", "name", "role", "disabled", "created_at", "updated_at"], "properties": {
                "id": { "type": "integer" }, "name": { "type": "string" }, "role": { "enum": ["admin", "viewer"] },
                "disabled": { "type": "boolean" },
                "created_at": { "type": "string", "format": "date-time" },
                "updated_at": { "type": "string", "format": "date-time", "description": "When the password or role last changed" },
                "disabled_at": nullable("string")
            } },
            "NewUser": { "type": "object", "required": ["name", "password"], "additionalProperties": false, "properties": {
                "name": { "type": "string", "pattern": "^[a-z0-9._-]{1,64}$" },
                "password": { "type": "string", "minLength": 8 },
                "role": { "enum": ["admin", "viewer"], "description": "Default: viewer" }
            } },
            "ChangeUser": { "type": "object", "additionalProperties": false, "properties": {
                "password": { "type": "string", "minLength": 8 },
                "role": { "enum": ["admin", "viewer"] },
                "disabled": { "type": "boolean" }
            } }
        }) else {
            return;
        };
        schemas.extend(map);
    }
}

/// The pipeline caches: the admin's view (`/api/repos/{repo}/caches`) and the agent
/// protocol's (`/api/agent/v1/leases/{lease}/caches/{key}`).
fn add_caches(doc: &mut Value) {
    let repo = || path_param("repo", "Repository name");
    let lease = || path_param("lease", "Lease id, as handed out by /api/agent/v1/lease");
    let key = || {
        path_param(
            "key",
            "The resolved cache key, percent-encoded (at most 512 bytes, no control characters)",
        )
    };
    let agent_err = |d: &str| json!({ "description": d, "content": content(schema("AgentError")) });
    let refusals = |mut v: Value| {
        v["401"] = agent_err("No token, an invalid or a revoked one (error: unauthorized)");
        v["409"] = agent_err(
            "The lease expired, was superseded, or is held under another token; nothing changed (error: stale)",
        );
        v["503"] = agent_err("The server cannot answer right now; try again (error: unavailable)");
        v
    };
    let manifest = || json!({ "type": "object", "description": "gantry_engine::artifacts::Manifest: {job, files: {PATH: {digest, size, mode}}}" });
    extend(
        doc,
        "paths",
        json!({
            "/api/repos/{repo}/caches": {
                "get": op("The pipeline caches kept for a repository, most recently used first", vec![repo()], json!({
                    "200": ok("Its caches", schema("Caches")),
                    "401": err("No token, or an invalid one"),
                    "404": err("No such repository")
                })),
                "delete": op("Delete a repository's caches (or the one under key), with their blobs that no artifact or other cache names", vec![repo(), query_param("key", "string", "Only the cache under this key")], json!({
                    "200": ok("What was deleted", schema("DeletedCaches")),
                    "401": err("No token, or an invalid one"),
                    "403": err("The token may not change anything"),
                    "404": err("No such repository, or no cache under key")
                }))
            },
            "/api/agent/v1/leases/{lease}/caches/{key}": {
                "get": op("The cache entry of the lease's repository under key (marked used); fetch its blobs from artifacts/{digest}", vec![lease(), key()], refusals(json!({
                    "200": ok("The entry's manifest", manifest()),
                    "204": { "description": "No entry under this key" },
                    "400": agent_err("Empty, overlong or malformed key (error: invalid)")
                }))),
                "put": with_body(op("Save a cache entry for the lease's repository (its blobs uploaded to artifacts/{digest} before); an entry already under key is kept", vec![lease(), key()], refusals(json!({
                    "201": { "description": "Saved" },
                    "200": { "description": "An entry was already there and is kept (the first writer wins)" },
                    "400": agent_err("Bad key, a path that leaves the workspace, or a blob that was not uploaded (error: invalid); nothing stored"),
                    "413": agent_err("The entry is larger than the server keeps for all caches (error: too_large)")
                }))), body(manifest(), true))
            }
        }),
    );
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        let Value::Object(map) = json!({
            "Caches": { "type": "object", "required": ["repo", "caches", "size", "max_size"], "properties": {
                "repo": { "type": "string" },
                "caches": { "type": "array", "items": schema("Cache") },
                "size": { "type": "integer", "description": "Bytes of the repository's caches" },
                "max_size": { "type": "integer", "description": "Bytes the server keeps for the caches of all repositories (--cache-max-size); the least recently used are evicted past it" }
            } },
            "Cache": { "type": "object", "required": ["key", "files", "size", "created_at", "last_used_at"], "properties": {
                "key": { "type": "string" }, "files": { "type": "integer" }, "size": { "type": "integer" },
                "created_at": { "type": "string", "format": "date-time" },
                "last_used_at": { "type": "string", "format": "date-time", "description": "When a job last restored it (or when it was saved)" },
                "run_id": nullable("integer")
            } },
            "DeletedCaches": { "type": "object", "required": ["deleted", "size", "blobs"], "properties": {
                "deleted": { "type": "array", "items": { "type": "string" }, "description": "Keys of the deleted caches" },
                "size": { "type": "integer" },
                "blobs": { "type": "integer", "description": "Blobs deleted with them" }
            } }
        }) else {
            return;
        };
        schemas.extend(map);
    }
}
