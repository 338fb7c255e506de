//! `cargo xtask images`: builds the container images gantry's tests and examples use,
//! offline from any image registry (none is reachable here; Debian's package mirror is).
//!
//! - `gantry-test/debian:bookworm`: a Debian rootfs made by `debootstrap --variant=minbase`
//!   and turned into an image by `docker import`.
//! - On top of it, with `docker build` (recipes in `xtask/images/<name>/`):
//!   `gantry-test/tools` (sh, curl, busybox) and `gantry-test/mariadb` (Debian's MariaDB
//!   server with an entrypoint that reads `MYSQL_*` variables like the official image).
//! - `gantry-test/rust:1.95`: a Rust builder (rustc, rustdoc, cargo, rustfmt, the
//!   standard library, gcc and libc6-dev), made from the host's own toolchain — the one `rustc` runs in the
//!   repository root — copied into the build context, since no registry offers one here;
//!   with the host's extra CA certificates, so cargo in a job reaches crates.io as the
//!   host does.
//!
//! Idempotent and cached: every image carries the label [`LABEL`] with a fingerprint of
//! its recipe (and of its base's fingerprint). An image whose label matches is kept, so a
//! second run costs one `docker image inspect` per image; changing a recipe file rebuilds
//! that image and everything built on it.
//!
//! `apt-get` inside `docker build` runs with `--network host`: the build then resolves and
//! reaches the Debian mirror exactly the way the host's own apt does, whatever DNS server
//! the host uses (a bridge network would need the host's resolver to be reachable from
//! the container's namespace).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::process::{self, command, is_root, say};
use crate::requirements::PROBE_TIMEOUT;

/// Label holding an image's recipe fingerprint.
pub const LABEL: &str = "gantry.test-image";

/// The Debian release every image is based on.
pub const SUITE: &str = "bookworm";

/// Bump to rebuild every image even though no recipe file changed (e.g. to pick up
/// security updates from the mirror).
const GENERATION: u32 = 1;

/// How an image is made.
#[derive(Debug, Clone, Copy)]
pub enum Recipe {
    /// `debootstrap --variant=minbase SUITE` + `docker import`.
    Debootstrap,
    /// `docker build` of `xtask/images/<dir>` with build arg `BASE` = the named image.
    Build {
        /// Folder under `xtask/images/`.
        dir: &'static str,
        /// The image it is built on (an earlier entry of [`IMAGES`]).
        base: &'static str,
    },
    /// Like [`Recipe::Build`], with the host's Rust toolchain (the parts a build needs)
    /// copied into the context as `toolchain/`. The fingerprint includes `rustc -vV`, so
    /// a toolchain upgrade rebuilds the image.
    RustToolchain {
        /// Folder under `xtask/images/`.
        dir: &'static str,
        /// The image it is built on (an earlier entry of [`IMAGES`]).
        base: &'static str,
    },
}

/// One test image.
#[derive(Debug, Clone, Copy)]
pub struct TestImage {
    /// Full reference, `repository:tag`.
    pub name: &'static str,
    /// How to make it.
    pub recipe: Recipe,
}

/// Every image, bases before the images built on them.
pub const IMAGES: &[TestImage] = &[
    TestImage {
        name: "gantry-test/debian:bookworm",
        recipe: Recipe::Debootstrap,
    },
    TestImage {
        name: "gantry-test/tools:latest",
        recipe: Recipe::Build {
            dir: "tools",
            base: "gantry-test/debian:bookworm",
        },
    },
    TestImage {
        name: "gantry-test/mariadb:latest",
        recipe: Recipe::Build {
            dir: "mariadb",
            base: "gantry-test/debian:bookworm",
        },
    },
    TestImage {
        name: "gantry-test/rust:1.95",
        recipe: Recipe::RustToolchain {
            dir: "rust",
            base: "gantry-test/debian:bookworm",
        },
    },
];

/// Builds every image whose label does not match its recipe; keeps the others.
pub fn run(root: &Path) -> Result<()> {
    if !process::succeeds(&["docker", "info"], PROBE_TIMEOUT) {
        bail!(
            "the Docker daemon does not answer (`docker info` fails); start it with \
             `dockerd &` or `systemctl start docker`, or run `cargo xtask test`, which \
             installs and starts it"
        );
    }
    let recipes = root.join("xtask/images");
    let prints = fingerprints(&recipes)?;
    for (image, print) in IMAGES.iter().zip(&prints) {
        if current_label(image.name).as_deref() == Some(print.as_str()) {
            say(&format!("{}: up to date", image.name));
            continue;
        }
        let started = Instant::now();
        match image.recipe {
            Recipe::Debootstrap => debootstrap_import(image.name, print)?,
            Recipe::Build { dir, base } => build(image.name, &recipes.join(dir), base, print)?,
            Recipe::RustToolchain { dir, base } => {
                build_with_toolchain(image.name, &recipes.join(dir), base, print)?;
            }
        }
        say(&format!(
            "{}: built in {:.0}s",
            image.name,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// The fingerprint of every image of [`IMAGES`], in order.
pub fn fingerprints(recipes: &Path) -> Result<Vec<String>> {
    let mut prints: Vec<String> = Vec::new();
    for image in IMAGES {
        let mut h = Fnv::new();
        h.write(format!("generation {GENERATION}\n").as_bytes());
        match image.recipe {
            Recipe::Debootstrap => {
                h.write(format!("debootstrap --variant=minbase {SUITE}\n").as_bytes());
            }
            Recipe::Build { dir, base } | Recipe::RustToolchain { dir, base } => {
                if let Recipe::RustToolchain { .. } = image.recipe {
                    h.write(format!("toolchain {}\n", toolchain_version()?).as_bytes());
                    for (name, bytes) in host_ca_certificates()? {
                        h.write(format!("ca {name} {}\n", bytes.len()).as_bytes());
                        h.write(&bytes);
                    }
                }
                let Some(i) = IMAGES.iter().position(|i| i.name == base) else {
                    bail!("{}: base image {base} is not in the table", image.name);
                };
                let Some(base_print) = prints.get(i) else {
                    bail!("{}: base image {base} must come before it", image.name);
                };
                h.write(format!("base {base} {base_print}\n").as_bytes());
                for (name, bytes) in recipe_files(&recipes.join(dir))? {
                    h.write(format!("file {name} {}\n", bytes.len()).as_bytes());
                    h.write(&bytes);
                }
            }
        }
        prints.push(format!("{:016x}", h.finish()));
    }
    Ok(prints)
}

/// The files of a recipe folder, sorted by name, with their contents.
fn recipe_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = fs::read(entry.path())
                .with_context(|| format!("cannot read {}", entry.path().display()))?;
            files.push((name, bytes));
        }
    }
    files.sort();
    Ok(files)
}

/// The value of [`LABEL`] on `image`, or `None` when the image is missing or unlabelled.
fn current_label(image: &str) -> Option<String> {
    let format = format!("{{{{index .Config.Labels \"{LABEL}\"}}}}");
    let out = command("docker")
        .args(["image", "inspect", "--format", &format, image])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let value = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !value.is_empty() && value != "<no value>").then_some(value)
}

/// Makes the Debian base image: debootstrap into a scratch folder, then stream it as a tar
/// into `docker import`.
fn debootstrap_import(name: &str, print: &str) -> Result<()> {
    if !is_root() {
        bail!("debootstrap needs root: run `cargo xtask images` as root");
    }
    let rootfs = std::env::temp_dir().join(format!("gantry-rootfs-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(rootfs.clone());
    let _ = fs::remove_dir_all(&rootfs);
    let mut debootstrap = command("debootstrap");
    debootstrap.args(["--variant=minbase", SUITE]).arg(&rootfs);
    // The host's configured mirror, so the image gets its packages where the host does.
    if let Some(mirror) = host_mirror(SUITE) {
        debootstrap.arg(mirror);
    }
    debootstrap.stdin(Stdio::null());
    let status = process::run(&mut debootstrap)?;
    if !status.success() {
        bail!("`{}` failed ({status})", process::display(&debootstrap));
    }

    let mut tar = command("tar");
    tar.arg("-C")
        .arg(&rootfs)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped());
    let mut import = command("docker");
    import.args([
        "import",
        "--change",
        &format!("LABEL {LABEL}={print}"),
        "--change",
        "CMD [\"sh\"]",
        "-",
        name,
    ]);
    say(&format!(
        "$ {} | {}",
        process::display(&tar),
        process::display(&import)
    ));
    let mut tar_child = tar.spawn().context("failed to start tar")?;
    let Some(tar_out) = tar_child.stdout.take() else {
        bail!("tar has no stdout");
    };
    let import_status = import
        .stdin(tar_out)
        .stdout(Stdio::null())
        .status()
        .context("failed to start docker import")?;
    let tar_status = tar_child.wait()?;
    if !tar_status.success() {
        bail!("tar of {} failed ({tar_status})", rootfs.display());
    }
    if !import_status.success() {
        bail!("docker import failed ({import_status})");
    }
    Ok(())
}

/// `docker build` of a recipe folder on top of `base`, labelled with its fingerprint.
fn build(name: &str, dir: &Path, base: &str, print: &str) -> Result<()> {
    let mut cmd = command("docker");
    cmd.args(["build", "--network", "host", "--build-arg"])
        .arg(format!("BASE={base}"))
        .arg("--label")
        .arg(format!("{LABEL}={print}"))
        .args(["--tag", name])
        .arg(dir)
        // The classic builder: Debian's docker.io has no BuildKit/buildx plugin.
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null());
    let status = process::run(&mut cmd)?;
    if !status.success() {
        bail!("`{}` failed ({status})", process::display(&cmd));
    }
    Ok(())
}

/// Where Debian keeps locally added CA certificates (`update-ca-certificates` reads it).
const LOCAL_CA_DIR: &str = "/usr/local/share/ca-certificates";

/// The host's locally added CA certificates (`*.crt`), by name. Builds in the Rust image
/// fetch crates over HTTPS from inside a container; where the host reaches crates.io
/// through a TLS-inspecting proxy, the container must trust the same extra CAs.
fn host_ca_certificates() -> Result<Vec<(String, Vec<u8>)>> {
    let dir = Path::new(LOCAL_CA_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut certs: Vec<(String, Vec<u8>)> = recipe_files(dir)?
        .into_iter()
        .filter(|(name, _)| name.ends_with(".crt"))
        .collect();
    certs.sort();
    Ok(certs)
}

/// The host toolchain's sysroot: where `rustc` (as rustup resolves it here) lives.
fn toolchain_sysroot() -> Result<PathBuf> {
    let out = command("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("cannot run rustc")?;
    if !out.status.success() {
        bail!("`rustc --print sysroot` failed");
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// `rustc -vV` of the host toolchain: version, commit and host triple.
fn toolchain_version() -> Result<String> {
    let out = command("rustc")
        .arg("-vV")
        .output()
        .context("cannot run rustc")?;
    if !out.status.success() {
        bail!("`rustc -vV` failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The parts of a toolchain a build needs, relative to its sysroot: the compiler and its
/// libraries (`lib/*.so*`), rustdoc (`cargo test` runs doctests), cargo, rustfmt (for
/// `cargo fmt --check`), and the standard
/// library with the linker helpers of the host target. Docs, sources, clippy and the
/// debugger scripts stay out (they would double the image).
fn toolchain_parts(sysroot: &Path) -> Result<Vec<PathBuf>> {
    let mut parts: Vec<PathBuf> = [
        "bin/rustc",
        "bin/rustdoc",
        "bin/cargo",
        "bin/rustfmt",
        "bin/cargo-fmt",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    for entry in fs::read_dir(sysroot.join("lib"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.contains(".so") {
            parts.push(PathBuf::from("lib").join(name));
        }
    }
    let host = toolchain_version()?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("`rustc -vV` names no host")?;
    parts.push(PathBuf::from(format!("lib/rustlib/{host}")));
    for part in &parts {
        if !sysroot.join(part).exists() {
            bail!(
                "the toolchain at {} has no {}",
                sysroot.display(),
                part.display()
            );
        }
    }
    Ok(parts)
}

/// [`build`] on a scratch context: the recipe's files, the host's extra CA certificates
/// under `ca-certificates/` and the host toolchain under `toolchain/` (hard-linked when
/// the scratch folder is on the same filesystem).
fn build_with_toolchain(name: &str, dir: &Path, base: &str, print: &str) -> Result<()> {
    let sysroot = toolchain_sysroot()?;
    let context = std::env::temp_dir().join(format!("gantry-rust-context-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(context.clone());
    let _ = fs::remove_dir_all(&context);
    fs::create_dir_all(context.join("toolchain"))?;
    for (file, bytes) in recipe_files(dir)? {
        fs::write(context.join(file), bytes)?;
    }
    fs::create_dir_all(context.join("ca-certificates"))?;
    for (file, bytes) in host_ca_certificates()? {
        fs::write(context.join("ca-certificates").join(file), bytes)?;
    }
    say(&format!("copying the toolchain at {}", sysroot.display()));
    for part in toolchain_parts(&sysroot)? {
        let to = context.join("toolchain").join(&part);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        let linked = command("cp")
            .arg("-al")
            .arg(sysroot.join(&part))
            .arg(&to)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !linked {
            let _ = fs::remove_dir_all(&to);
            let _ = fs::remove_file(&to);
            let mut cp = command("cp");
            cp.arg("-a").arg(sysroot.join(&part)).arg(&to);
            let status = process::run(&mut cp)?;
            if !status.success() {
                bail!("`{}` failed ({status})", process::display(&cp));
            }
        }
    }
    build(name, &context, base, print)
}

/// The first mirror URI the host's apt sources give for `suite` (deb822 `.sources` files
/// first, then one-line `sources.list` entries).
fn host_mirror(suite: &str) -> Option<String> {
    let dir = Path::new("/etc/apt/sources.list.d");
    let mut deb822: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sources"))
        .collect();
    deb822.sort();
    for path in deb822 {
        if let Some(uri) = fs::read_to_string(&path)
            .ok()
            .and_then(|t| mirror_from_deb822(&t, suite))
        {
            return Some(uri);
        }
    }
    fs::read_to_string("/etc/apt/sources.list")
        .ok()
        .and_then(|t| mirror_from_list(&t, suite))
}

/// The first URI of a deb822 stanza with type `deb` that lists `suite` exactly.
pub fn mirror_from_deb822(text: &str, suite: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
        };
        let is_deb = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        let has_suite = field("Suites").is_some_and(|s| s.split_whitespace().any(|s| s == suite));
        if is_deb
            && has_suite
            && let Some(uri) = field("URIs").and_then(|u| u.split_whitespace().next())
        {
            return Some(uri.to_owned());
        }
    }
    None
}

/// The URI of the first `deb [options] URI SUITE …` line of a `sources.list`.
pub fn mirror_from_list(text: &str, suite: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != "deb" {
            return None;
        }
        let mut uri = words.next()?;
        if uri.starts_with('[') {
            // Options: skip words up to the one closing the bracket.
            let mut w = uri;
            while !w.ends_with(']') {
                w = words.next()?;
            }
            uri = words.next()?;
        }
        (words.next()? == suite).then(|| uri.to_owned())
    })
}

/// Removes a scratch folder however the task ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// 64-bit FNV-1a: a stable fingerprint without a hashing dependency (std's hasher may
/// change between Rust releases, which would rebuild every image after an upgrade).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_values() {
        for (input, expect) in [
            ("", 0xcbf2_9ce4_8422_2325_u64),
            ("a", 0xaf63_dc4c_8601_ec8c),
            ("foobar", 0x8594_4171_f739_67e8),
        ] {
            let mut h = Fnv::new();
            h.write(input.as_bytes());
            assert_eq!(h.finish(), expect, "{input:?}");
        }
    }

    #[test]
    fn fingerprints_follow_recipe_files_and_bases() {
        let real = crate::metadata::workspace_root().join("xtask/images");
        let tmp = std::env::temp_dir().join(format!("xtask-images-test-{}", std::process::id()));
        let _cleanup = RemoveOnDrop(tmp.clone());
        for image in IMAGES {
            if let Recipe::Build { dir, .. } | Recipe::RustToolchain { dir, .. } = image.recipe {
                fs::create_dir_all(tmp.join(dir)).expect("mkdir");
                for (name, bytes) in recipe_files(&real.join(dir)).expect("recipe") {
                    fs::write(tmp.join(dir).join(name), bytes).expect("copy");
                }
            }
        }
        let before = fingerprints(&tmp).expect("fingerprints");
        assert_eq!(
            before,
            fingerprints(&real).expect("same files, same prints")
        );
        assert_eq!(before.len(), IMAGES.len());

        // Changing the mariadb recipe changes its print only.
        fs::write(tmp.join("mariadb/entrypoint.sh"), "#!/bin/sh\n").expect("write");
        let after = fingerprints(&tmp).expect("fingerprints");
        let changed: Vec<&str> = IMAGES
            .iter()
            .zip(before.iter().zip(&after))
            .filter(|(_, (b, a))| b != a)
            .map(|(i, _)| i.name)
            .collect();
        assert_eq!(changed, ["gantry-test/mariadb:latest"]);
    }

    #[test]
    fn mirrors_from_apt_sources() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm \
                      bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: \
                      http://mirror.example/debian-security\nSuites: bookworm-security\n";
        for (suite, expect) in [
            ("bookworm", Some("http://mirror.example/debian")),
            (
                "bookworm-security",
                Some("http://mirror.example/debian-security"),
            ),
            ("trixie", None),
        ] {
            assert_eq!(
                mirror_from_deb822(deb822, suite).as_deref(),
                expect,
                "{suite}"
            );
        }
        assert_eq!(
            mirror_from_deb822(
                "Types: deb-src\nURIs: http://x/\nSuites: bookworm\n",
                "bookworm"
            ),
            None
        );

        for (list, expect) in [
            (
                "deb http://m.example/debian bookworm main",
                Some("http://m.example/debian"),
            ),
            (
                "# deb http://old/ bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://m/ bookworm main",
                Some("http://m/"),
            ),
            ("deb http://m/ bookworm-updates main", None),
            ("deb-src http://m/ bookworm main", None),
        ] {
            assert_eq!(
                mirror_from_list(list, "bookworm").as_deref(),
                expect,
                "{list}"
            );
        }
    }
}
