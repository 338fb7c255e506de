//! The workspace as `cargo metadata --no-deps` describes it: members, their dependencies on
//! each other, and their targets. Only what the tasks need is kept.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().unwrap_or(xtask_dir).to_path_buf()
}

/// The cargo that runs us (`cargo run` sets `CARGO`), so nested calls use the same toolchain.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The workspace's members.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The directory holding the workspace's Cargo.toml.
    pub root: PathBuf,
    /// Every member package, in the order cargo lists them.
    pub members: Vec<Member>,
}

/// One member package.
#[derive(Debug, Clone)]
pub struct Member {
    /// The package name (`gantry-pipeline`).
    pub name: String,
    /// Path of its Cargo.toml.
    pub manifest_path: PathBuf,
    /// All its declared dependencies, external ones included.
    pub deps: Vec<Dep>,
    /// Its build targets.
    pub targets: Vec<Target>,
}

/// One declared dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    /// The package depended on (its real name, not a `package = ` rename).
    pub name: String,
    /// Which table of Cargo.toml declares it.
    pub kind: DepKind,
}

/// The Cargo.toml table a dependency is declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepKind {
    /// `[dependencies]`: linked into the crate.
    Normal,
    /// `[dev-dependencies]`: tests, examples and benches only.
    Dev,
    /// `[build-dependencies]`: the build script only.
    Build,
}

/// One build target of a package.
#[derive(Debug, Clone)]
pub struct Target {
    /// The target name (`plan` for `benches/plan.rs`).
    pub name: String,
    /// Cargo's kinds for it (`lib`, `bin`, `test`, `bench`, ...).
    pub kinds: Vec<String>,
}

impl Member {
    /// The directory holding the member's Cargo.toml.
    pub fn dir(&self) -> &Path {
        self.manifest_path.parent().unwrap_or(Path::new("."))
    }

    /// Names of its bench targets.
    pub fn benches(&self) -> Vec<&str> {
        self.targets
            .iter()
            .filter(|t| t.kinds.iter().any(|k| k == "bench"))
            .map(|t| t.name.as_str())
            .collect()
    }
}

impl Workspace {
    /// Runs `cargo metadata --format-version 1 --no-deps` for the workspace at `root`.
    pub fn load(root: &Path) -> Result<Self> {
        let manifest = root.join("Cargo.toml");
        let output = Command::new(cargo())
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .output()
            .context("failed to run `cargo metadata`")?;
        if !output.status.success() {
            bail!(
                "`cargo metadata` failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let json =
            String::from_utf8(output.stdout).context("`cargo metadata` printed non-UTF-8")?;
        Self::from_json(&json)
    }

    /// Reads the JSON that `cargo metadata --format-version 1` prints.
    pub fn from_json(json: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(json).context("`cargo metadata` output is not JSON")?;
        let root = str_field(&v, "workspace_root")?.into();
        let member_ids: Vec<&str> = v["workspace_members"]
            .as_array()
            .ok_or_else(|| anyhow!("`workspace_members` missing"))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let packages = v["packages"]
            .as_array()
            .ok_or_else(|| anyhow!("`packages` missing"))?;
        let mut members = Vec::new();
        for p in packages {
            if !member_ids.contains(&str_field(p, "id")?) {
                continue;
            }
            members.push(parse_member(p)?);
        }
        Ok(Self { root, members })
    }

    /// Whether a package of this name is a member.
    pub fn is_member(&self, name: &str) -> bool {
        self.members.iter().any(|m| m.name == name)
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// Each member with the members it depends on through `[dependencies]`: the graph the
    /// architecture rules are about. Dev- and build-dependencies are left out.
    pub fn normal_graph(&self) -> Vec<(String, Vec<String>)> {
        self.members
            .iter()
            .map(|m| {
                let deps = m
                    .deps
                    .iter()
                    .filter(|d| d.kind == DepKind::Normal && self.is_member(&d.name))
                    .map(|d| d.name.clone())
                    .collect();
                (m.name.clone(), deps)
            })
            .collect()
    }
}

fn parse_member(p: &Value) -> Result<Member> {
    let name = str_field(p, "name")?.to_owned();
    let manifest_path = str_field(p, "manifest_path")?.into();
    let mut deps = Vec::new();
    for d in p["dependencies"].as_array().into_iter().flatten() {
        let kind = match d["kind"].as_str() {
            None => DepKind::Normal,
            Some("dev") => DepKind::Dev,
            Some("build") => DepKind::Build,
            Some(other) => bail!("{name}: unknown dependency kind {other:?}"),
        };
        deps.push(Dep {
            name: str_field(d, "name")?.to_owned(),
            kind,
        });
    }
    let mut targets = Vec::new();
    for t in p["targets"].as_array().into_iter().flatten() {
        let kinds = t["kind"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        targets.push(Target {
            name: str_field(t, "name")?.to_owned(),
            kinds,
        });
    }
    Ok(Member {
        name,
        manifest_path,
        deps,
        targets,
    })
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v[key]
        .as_str()
        .ok_or_else(|| anyhow!("`cargo metadata` output lacks the string field `{key}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members_deps_and_targets() {
        let json = r#"{
          "workspace_root": "/w",
          "workspace_members": ["path+file:///w/crates/a#0.1.0", "path+file:///w/crates/b#0.1.0"],
          "packages": [
            {"id": "path+file:///w/crates/a#0.1.0", "name": "a", "manifest_path": "/w/crates/a/Cargo.toml",
             "dependencies": [
               {"name": "b", "kind": null},
               {"name": "serde", "kind": null},
               {"name": "c", "kind": "dev"},
               {"name": "cc", "kind": "build"}
             ],
             "targets": [{"name": "a", "kind": ["lib"]}, {"name": "plan", "kind": ["bench"]}]},
            {"id": "path+file:///w/crates/b#0.1.0", "name": "b", "manifest_path": "/w/crates/b/Cargo.toml",
             "dependencies": [], "targets": []},
            {"id": "registry+x#serde@1", "name": "serde", "manifest_path": "/r/Cargo.toml",
             "dependencies": [], "targets": []}
          ]
        }"#;
        let ws = Workspace::from_json(json).expect("valid metadata");
        assert_eq!(ws.root, Path::new("/w"));
        let names: Vec<_> = ws.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let a = ws.member("a").expect("a is a member");
        assert_eq!(a.dir(), Path::new("/w/crates/a"));
        assert_eq!(a.benches(), ["plan"]);
        assert_eq!(
            a.deps[2],
            Dep {
                name: "c".into(),
                kind: DepKind::Dev
            }
        );
        assert_eq!(a.deps[3].kind, DepKind::Build);
        // Only member-to-member `[dependencies]` edges make the graph.
        assert_eq!(
            ws.normal_graph(),
            [
                ("a".to_owned(), vec!["b".to_owned()]),
                ("b".to_owned(), vec![])
            ]
        );
    }
}
