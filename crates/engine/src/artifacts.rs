//! Artifacts: files a job leaves for the jobs that need it, in a content-addressed store.
//!
//! After a successful script, [`ArtifactStore::collect`] matches the job's `artifacts`
//! globs against its workspace (`globset` with `literal_separator`, so `dist/*` does not
//! reach into `dist/a/b`; a pattern that names a directory takes the whole directory),
//! stores each file once under `objects/ab/cdef…` (the hex sha256 of its content, so equal
//! files from any job are stored once), and writes a per-job manifest
//! (`<job_key>.json`: path → digest, size, mode). [`ArtifactStore::restore`] copies a
//! manifest's files into a dependent's workspace.
//!
//! A pattern that matches nothing is a warning in the job's log, not a failure. Artifacts
//! are often optional (a coverage report some matrix instances produce), and a dependent
//! that really needs the file fails in its own script with the file's name in the error,
//! which is the clearer message; this is also what users know from other CI systems.
//!
//! Paths are checked at both ends. Collecting never follows a symlink out of the
//! workspace (a link to a file inside is stored as that file; a link to outside, to a
//! directory or to nothing is skipped with a warning). Restoring refuses manifest paths
//! that are absolute or contain `..`, digests that are not 64 hex digits, and paths that
//! would pass through a symlink in the workspace, so a forged or corrupt manifest can
//! never write outside the workspace.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};

use crate::source::is_plain_relative;

/// The artifacts of one job: workspace-relative path → stored file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// The job's display name.
    pub job: String,
    /// Files by workspace-relative, `/`-separated path.
    pub files: BTreeMap<String, ManifestEntry>,
}

/// One stored file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManifestEntry {
    /// Hex sha256 of the content.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

/// What [`ArtifactStore::collect`] did.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The manifest, also written to disk.
    pub manifest: Manifest,
    /// Lines for the job log: patterns that matched nothing, links not followed.
    pub warnings: Vec<String>,
}

/// Why artifacts could not be collected or restored.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A pattern is not a valid glob.
    #[error("invalid artifact pattern \"{pattern}\"")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// Cause.
        #[source]
        source: globset::Error,
    },
    /// A path (pattern or manifest entry) would leave the workspace.
    #[error("artifact path \"{0}\" leaves the workspace (absolute or containing \"..\")")]
    UnsafePath(String),
    /// Restoring would write through a symlink in the workspace.
    #[error("artifact path \"{0}\" passes through a symbolic link in the workspace")]
    ThroughSymlink(String),
    /// Restoring would replace a directory with a file.
    #[error("artifact path \"{0}\" is a directory in the workspace")]
    IsDirectory(String),
    /// A manifest names an impossible digest.
    #[error("invalid artifact digest \"{0}\"")]
    BadDigest(String),
    /// The store lacks an object a manifest names, or it has the wrong size.
    #[error("artifact object {0} is missing or damaged")]
    MissingObject(String),
    /// A file-system operation failed.
    #[error("{context} {}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// Where.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A manifest is not valid JSON of the expected shape.
    #[error("invalid artifact manifest {}", path.display())]
    Manifest {
        /// Which file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
}

fn io<'p>(
    context: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> ArtifactError + 'p {
    move |source| ArtifactError::Io {
        context,
        path: path.to_path_buf(),
        source,
    }
}

/// The content-addressed artifact store of one run (`run_dir/artifacts`).
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

impl ArtifactStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> ArtifactStore {
        ArtifactStore { root: root.into() }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the object with this digest lives; refuses anything but 64 hex digits.
    pub fn object_path(&self, digest: &str) -> Result<PathBuf, ArtifactError> {
        let valid = digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(ArtifactError::BadDigest(digest.to_owned()));
        }
        Ok(self
            .root
            .join("objects")
            .join(&digest[..2])
            .join(&digest[2..]))
    }

    /// Where a job's manifest lives.
    pub fn manifest_path(&self, job_key: &str) -> PathBuf {
        self.root.join(format!("{job_key}.json"))
    }

    /// Reads a job's manifest.
    pub fn load(&self, job_key: &str) -> Result<Manifest, ArtifactError> {
        let path = self.manifest_path(job_key);
        let bytes = std::fs::read(&path).map_err(io("cannot read", &path))?;
        serde_json::from_slice(&bytes).map_err(|source| ArtifactError::Manifest { path, source })
    }

    /// Collects the files of `workspace` matching `patterns`, stores them and writes the
    /// manifest of `job_key`.
    pub fn collect(
        &self,
        job: &str,
        job_key: &str,
        workspace: &Path,
        patterns: &[String],
    ) -> Result<Collected, ArtifactError> {
        self.collect_for(Purpose::Artifacts, job, job_key, workspace, patterns)
    }

    /// [`ArtifactStore::collect`] for a job's `cache.paths`: the same matching and
    /// storing, with warnings worded for a cache, and the manifest written as
    /// `<job_key>.cache.json` so that it never replaces the job's artifact manifest (job
    /// keys hold no `.`).
    pub fn collect_cache(
        &self,
        job: &str,
        job_key: &str,
        workspace: &Path,
        paths: &[String],
    ) -> Result<Collected, ArtifactError> {
        let name = format!("{job_key}.cache");
        self.collect_for(Purpose::Cache, job, &name, workspace, paths)
    }

    fn collect_for(
        &self,
        purpose: Purpose,
        job: &str,
        job_key: &str,
        workspace: &Path,
        patterns: &[String],
    ) -> Result<Collected, ArtifactError> {
        let matcher = Matcher::new(patterns)?;
        let root = workspace
            .canonicalize()
            .map_err(io("cannot resolve", workspace))?;
        let mut found = Found {
            purpose,
            files: BTreeMap::new(),
            hits: vec![0; matcher.patterns.len()],
            warnings: Vec::new(),
        };
        walk(&matcher, &root, Path::new(""), None, &mut found)?;

        let mut manifest = Manifest {
            job: job.to_owned(),
            files: BTreeMap::new(),
        };
        for (rel, (full, mode)) in found.files {
            let (digest, size) = self.store_file(&full)?;
            manifest
                .files
                .insert(rel, ManifestEntry { digest, size, mode });
        }
        let mut warnings = found.warnings;
        for (pattern, hits) in matcher.patterns.iter().zip(found.hits) {
            if hits == 0 {
                warnings.push(match purpose {
                    Purpose::Artifacts => format!(
                        "warning: artifact pattern \"{pattern}\" matched no file; nothing stored for it"
                    ),
                    Purpose::Cache => format!(
                        "warning: cache path \"{pattern}\" matched no file; nothing saved for it"
                    ),
                });
            }
        }
        self.write_manifest(job_key, &manifest)?;
        Ok(Collected { manifest, warnings })
    }

    fn write_manifest(&self, job_key: &str, manifest: &Manifest) -> Result<(), ArtifactError> {
        std::fs::create_dir_all(&self.root).map_err(io("cannot create", &self.root))?;
        let path = self.manifest_path(job_key);
        let tmp = self.root.join(temp_name());
        let json =
            serde_json::to_vec_pretty(manifest).map_err(|source| ArtifactError::Manifest {
                path: path.clone(),
                source,
            })?;
        std::fs::write(&tmp, json).map_err(io("cannot write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("cannot write", &path))
    }

    /// Stores one file and returns its digest and size. The bytes are hashed as they are
    /// copied, so the digest is always that of the stored bytes.
    pub fn store_file(&self, path: &Path) -> Result<(String, u64), ArtifactError> {
        let objects = self.root.join("objects");
        std::fs::create_dir_all(&objects).map_err(io("cannot create", &objects))?;
        let tmp = objects.join(temp_name());
        let result = copy_hashing(path, &tmp).and_then(|(digest, size)| {
            let object = self.object_path(&digest)?;
            if object.exists() {
                // Same content already stored (by this job or another): keep one copy.
                let _ = std::fs::remove_file(&tmp);
            } else {
                let dir = object.parent().unwrap_or(&objects);
                std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444))
                    .map_err(io("cannot set the mode of", &tmp))?;
                std::fs::rename(&tmp, &object).map_err(io("cannot store", &object))?;
            }
            Ok((digest, size))
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Checks, without writing anything, that `manifest` can be restored from this store:
    /// every path stays inside a workspace (relative, no `..`), every digest is 64 hex
    /// digits and every object is present with the manifest's size. A restore of a
    /// manifest that passed can still fail on the workspace's side (a symlink in the way),
    /// but never because of the manifest or the store; checking first lets a caller refuse
    /// a forged or damaged manifest whole instead of restoring part of it.
    pub fn verify(&self, manifest: &Manifest) -> Result<(), ArtifactError> {
        for (rel, entry) in &manifest.files {
            self.checked_object(rel, entry)?;
        }
        Ok(())
    }

    /// The object of one manifest entry, after checking that its path stays inside a
    /// workspace and that the object is present with the entry's size.
    fn checked_object(&self, rel: &str, entry: &ManifestEntry) -> Result<PathBuf, ArtifactError> {
        if !is_plain_relative(Path::new(rel)) {
            return Err(ArtifactError::UnsafePath(rel.to_owned()));
        }
        let object = self.object_path(&entry.digest)?;
        match std::fs::metadata(&object) {
            Ok(m) if m.is_file() && m.len() == entry.size => Ok(object),
            _ => Err(ArtifactError::MissingObject(entry.digest.clone())),
        }
    }

    /// Writes a manifest's files into `workspace`, replacing files already there.
    pub fn restore(&self, manifest: &Manifest, workspace: &Path) -> Result<(), ArtifactError> {
        for (rel, entry) in &manifest.files {
            let object = self.checked_object(rel, entry)?;
            let dest = safe_dest(workspace, rel)?;
            reflink_copy::reflink_or_copy(&object, &dest).map_err(io("cannot restore", &dest))?;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(entry.mode & 0o7777))
                .map_err(io("cannot set the mode of", &dest))?;
        }
        Ok(())
    }
}

/// Makes the parent directories of `rel` under `workspace`, refusing to pass through a
/// symlink, and clears the way for the file itself. Returns the destination path.
fn safe_dest(workspace: &Path, rel: &str) -> Result<PathBuf, ArtifactError> {
    let rel_path = Path::new(rel);
    let mut cur = workspace.to_path_buf();
    let parents = rel_path.parent().into_iter().flat_map(Path::components);
    for component in parents {
        cur.push(component);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ArtifactError::ThroughSymlink(rel.to_owned()));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                // A file where the artifact needs a directory: the artifact wins, as a
                // later job's artifacts win over earlier ones.
                std::fs::remove_file(&cur).map_err(io("cannot replace", &cur))?;
                std::fs::create_dir(&cur).map_err(io("cannot create", &cur))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&cur).map_err(io("cannot create", &cur))?;
            }
            Err(e) => return Err(io("cannot read", &cur)(e)),
        }
    }
    let dest = workspace.join(rel_path);
    match std::fs::symlink_metadata(&dest) {
        Ok(m) if m.is_dir() => return Err(ArtifactError::IsDirectory(rel.to_owned())),
        // Remove, never write into: the old entry may be a symlink pointing anywhere.
        Ok(_) => std::fs::remove_file(&dest).map_err(io("cannot replace", &dest))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("cannot read", &dest)(e)),
    }
    Ok(dest)
}

fn copy_hashing(src: &Path, dst: &Path) -> Result<(String, u64), ArtifactError> {
    let mut input = File::open(src).map_err(io("cannot read", src))?;
    let mut output = File::create(dst).map_err(io("cannot write", dst))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("cannot read", src)(e)),
        };
        hasher.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .map_err(io("cannot write", dst))?;
        size += n as u64;
    }
    output.flush().map_err(io("cannot write", dst))?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// The hex sha256 and the size of a file's content, read in blocks.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut input = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// A name for a temporary file, unique within the machine (pid + counter).
pub(crate) fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

struct Matcher {
    /// Normalised patterns, by index in `set`.
    patterns: Vec<String>,
    set: GlobSet,
}

impl Matcher {
    fn new(patterns: &[String]) -> Result<Matcher, ArtifactError> {
        let mut normalised = Vec::new();
        let mut builder = GlobSetBuilder::new();
        for raw in patterns {
            // `./dist/` and `dist` mean the same directory.
            let p = raw.trim();
            let p = p.strip_prefix("./").unwrap_or(p).trim_end_matches('/');
            if p.is_empty() {
                continue;
            }
            if p.starts_with('/') || p.split('/').any(|c| c == "..") {
                return Err(ArtifactError::UnsafePath(raw.clone()));
            }
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map_err(|source| ArtifactError::BadPattern {
                    pattern: raw.clone(),
                    source,
                })?;
            builder.add(glob);
            normalised.push(p.to_owned());
        }
        let set = builder
            .build()
            .map_err(|source| ArtifactError::BadPattern {
                pattern: patterns.join(", "),
                source,
            })?;
        Ok(Matcher {
            patterns: normalised,
            set,
        })
    }
}

/// What files are collected for: the wording of warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Artifacts,
    Cache,
}

struct Found {
    purpose: Purpose,
    /// Relative path → (path to read, mode).
    files: BTreeMap<String, (PathBuf, u32)>,
    /// Files matched per pattern.
    hits: Vec<usize>,
    warnings: Vec<String>,
}

/// Walks `root/rel`. `taken` is the pattern that matched an enclosing directory: then
/// everything below is collected.
fn walk(
    matcher: &Matcher,
    root: &Path,
    rel: &Path,
    taken: Option<usize>,
    found: &mut Found,
) -> Result<(), ArtifactError> {
    let dir = root.join(rel);
    let mut children: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io("cannot read", &dir))?
        .collect::<Result<_, _>>()
        .map_err(io("cannot read", &dir))?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let child_rel = rel.join(child.file_name());
        let Some(name) = child_rel.to_str().map(|s| s.to_owned()) else {
            found.warnings.push(format!(
                "warning: {} is not valid UTF-8; {}",
                child_rel.display(),
                match found.purpose {
                    Purpose::Artifacts => "not collected as an artifact",
                    Purpose::Cache => "not saved in the cache",
                }
            ));
            continue;
        };
        let full = root.join(&child_rel);
        let meta = std::fs::symlink_metadata(&full).map_err(io("cannot read", &full))?;
        let pattern = taken.or_else(|| matcher.set.matches(&name).first().copied());
        if meta.is_dir() {
            walk(matcher, root, &child_rel, pattern, found)?;
            continue;
        }
        let Some(pattern) = pattern else { continue };
        if meta.file_type().is_symlink() {
            match std::fs::canonicalize(&full) {
                Ok(target) if target.starts_with(root) && target.is_file() => {
                    let mode = std::fs::metadata(&target).map_or(0o644, |m| m.permissions().mode());
                    found.files.insert(name, (target, mode & 0o7777));
                    found.hits[pattern] += 1;
                }
                _ => found.warnings.push(match found.purpose {
                    Purpose::Artifacts => format!(
                        "warning: artifact \"{name}\" is a symbolic link to a directory, to \
                         nothing, or to outside the workspace; not collected"
                    ),
                    Purpose::Cache => format!(
                        "warning: cache file \"{name}\" is a symbolic link to a directory, to \
                         nothing, or to outside the workspace; not saved"
                    ),
                }),
            }
        } else if meta.is_file() {
            found
                .files
                .insert(name, (full, meta.permissions().mode() & 0o7777));
            found.hits[pattern] += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_test_support::TempTree;

    fn collect(tree: &TempTree, patterns: &[&str]) -> (Vec<String>, Vec<String>) {
        let store = ArtifactStore::new(tree.join("store"));
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let c = store
            .collect("job", "job", &tree.join("ws"), &patterns)
            .expect("collect");
        (c.manifest.files.into_keys().collect(), c.warnings)
    }

    fn workspace() -> TempTree {
        let tree = TempTree::new();
        tree.file("ws/dist/app", "binary")
            .file("ws/dist/sub/deep.txt", "deep")
            .file("ws/report.xml", "<r/>")
            .file("ws/a/report.xml", "<r/>")
            .file("ws/notes.txt", "n");
        tree
    }

    #[test]
    fn globs_and_directories() {
        let tree = workspace();
        let check = |patterns: &[&str], files: &[&str]| {
            let (got, _) = collect(&tree, patterns);
            assert_eq!(got, files, "{patterns:?}");
        };
        check(&["dist"], &["dist/app", "dist/sub/deep.txt"]);
        check(&["./dist/"], &["dist/app", "dist/sub/deep.txt"]);
        check(&["dist/*"], &["dist/app", "dist/sub/deep.txt"]);
        check(&["dist/*.txt"], &[]);
        check(&["dist/**/*.txt"], &["dist/sub/deep.txt"]);
        check(&["*.xml"], &["report.xml"]);
        check(&["**/*.xml"], &["a/report.xml", "report.xml"]);
        check(&["notes.txt", "a"], &["a/report.xml", "notes.txt"]);
    }

    #[test]
    fn a_pattern_matching_nothing_is_a_warning() {
        let tree = workspace();
        let (files, warnings) = collect(&tree, &["missing/*", "notes.txt"]);
        assert_eq!(files, ["notes.txt"]);
        assert_eq!(
            warnings,
            ["warning: artifact pattern \"missing/*\" matched no file; nothing stored for it"]
        );
    }

    #[test]
    fn escaping_patterns_are_refused() {
        let tree = workspace();
        let store = ArtifactStore::new(tree.join("store"));
        for p in ["../x", "/etc/passwd", "a/../../b"] {
            let err = store
                .collect("job", "job", &tree.join("ws"), &[p.to_string()])
                .expect_err(p);
            assert!(matches!(err, ArtifactError::UnsafePath(_)), "{p}: {err}");
        }
    }

    #[test]
    fn symlinks_out_of_the_workspace_are_not_followed() {
        let tree = workspace();
        tree.file("secret", "outside")
            .symlink("ws/out/leak", "../../secret")
            .symlink("ws/out/inside", "../notes.txt")
            .symlink("ws/out/dir", "/etc");
        let (files, warnings) = collect(&tree, &["out"]);
        assert_eq!(files, ["out/inside"]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn content_addressed_and_deduplicated() {
        let tree = TempTree::new();
        tree.file("ws/a.txt", "same")
            .file("ws/b/c.txt", "same")
            .exec("ws/run", "x");
        let store = ArtifactStore::new(tree.join("store"));
        let c = store
            .collect("j", "j", &tree.join("ws"), &["**".to_string()])
            .expect("collect");
        let a = &c.manifest.files["a.txt"];
        assert_eq!(a.digest, c.manifest.files["b/c.txt"].digest);
        // sha256("same")
        assert_eq!(
            a.digest,
            "0967115f2813a3541eaef77de9d9d5773f1c0c04314b0bbfe4ff3b3b1c55b5d5"
        );
        assert_eq!(a.size, 4);
        assert_eq!(c.manifest.files["run"].mode, 0o755);
        let objects: Vec<_> = walkdir(&tree.join("store/objects"));
        assert_eq!(objects.len(), 2, "{objects:?}");
        assert!(store.object_path(&a.digest).expect("path").ends_with(
            "objects/09/67115f2813a3541eaef77de9d9d5773f1c0c04314b0bbfe4ff3b3b1c55b5d5"
        ));
        assert_eq!(store.load("j").expect("manifest on disk"), c.manifest);
    }

    fn walkdir(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).expect("read").flatten() {
            if e.path().is_dir() {
                out.extend(walkdir(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }

    #[test]
    fn restore_round_trip_with_modes() {
        let tree = TempTree::new();
        tree.exec("ws/bin/tool", "#!/bin/sh")
            .file("ws/x/y.txt", "y");
        let store = ArtifactStore::new(tree.join("store"));
        let c = store
            .collect("j", "j", &tree.join("ws"), &["bin".into(), "x".into()])
            .expect("collect");
        tree.file("other/x", "a file where a directory goes")
            .symlink("other/bin/tool", "/etc/passwd");
        store
            .restore(&c.manifest, &tree.join("other"))
            .expect("restore");
        assert_eq!(tree.read("other/x/y.txt"), "y");
        let tool = tree.join("other/bin/tool");
        let meta = std::fs::symlink_metadata(&tool).expect("stat");
        assert!(
            meta.is_file(),
            "the symlink was replaced, not written through"
        );
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    }

    #[test]
    fn forged_manifests_are_rejected() {
        let tree = TempTree::new();
        tree.file("ws/a", "a");
        let store = ArtifactStore::new(tree.join("store"));
        let good = store
            .collect("j", "j", &tree.join("ws"), &["a".into()])
            .expect("collect")
            .manifest;
        let entry = good.files["a"].clone();
        let check = |path: &str, digest: &str, expect: &str| {
            let mut m = Manifest {
                job: "j".into(),
                files: BTreeMap::new(),
            };
            let mut e = entry.clone();
            e.digest = digest.to_owned();
            m.files.insert(path.to_owned(), e);
            let err = store.restore(&m, &tree.join("target")).expect_err(path);
            assert!(err.to_string().contains(expect), "{path}: {err}");
        };
        check("../escape", &entry.digest, "leaves the workspace");
        check("/tmp/abs", &entry.digest, "leaves the workspace");
        check("a/../../b", &entry.digest, "leaves the workspace");
        check("ok", "../../../../etc/passwd", "invalid artifact digest");
        check("ok", &"0".repeat(64), "missing or damaged");
        tree.symlink("target/link", "/tmp");
        check("link/x", &entry.digest, "symbolic link");
        assert!(!tree.join("escape").exists());
    }
}
