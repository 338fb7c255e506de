//! Artifact blobs, content-addressed under `DATA/artifacts/objects/ab/cdef…` (the same
//! layout as the engine's per-run store, so equal files of any run are stored once).
//!
//! Every upload is verified: the server hashes what it received and refuses it when the
//! sha256 differs from the digest it was announced under, so a blob's name always tells
//! the truth about its content. Writes go to a temporary file that is renamed into place,
//! so a crash never leaves a half-written object under a valid name.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use gantry_engine::artifacts::ArtifactStore;
use sha2::{Digest, Sha256};

/// Why a blob could not be stored or fetched.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Not a 64-digit lowercase hex sha256.
    #[error("invalid digest {0:?}")]
    BadDigest(String),
    /// The content does not hash to the digest.
    #[error("content of blob {expected} hashes to {actual}")]
    Mismatch {
        /// The announced digest.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
    /// Larger than allowed.
    #[error("blob exceeds the limit of {limit} bytes (it has at least {size})")]
    TooLarge {
        /// Its size (for a stream: what had arrived when it was refused).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// No such blob.
    #[error("blob {0} not found")]
    Missing(String),
    /// The file system failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The blob store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    layout: ArtifactStore,
    limit: u64,
}

impl BlobStore {
    /// Blobs under `root`, refusing uploads above `limit` bytes.
    pub fn new(root: impl Into<PathBuf>, limit: u64) -> BlobStore {
        BlobStore {
            layout: ArtifactStore::new(root),
            limit,
        }
    }

    /// Where a blob lives (whether or not it exists).
    pub fn path(&self, digest: &str) -> Result<PathBuf, BlobError> {
        self.layout
            .object_path(digest)
            .map_err(|_| BlobError::BadDigest(digest.to_string()))
    }

    /// Whether a blob exists.
    pub fn contains(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Stores the file at `src` as blob `digest`, verifying its content.
    pub async fn put_file(&self, digest: &str, src: &Path) -> Result<(), BlobError> {
        let this = self.clone();
        let digest = digest.to_string();
        let src = src.to_path_buf();
        tokio::task::spawn_blocking(move || this.put_blocking(&digest, &src))
            .await
            .map_err(|e| BlobError::Io(io::Error::other(e.to_string())))?
    }

    fn put_blocking(&self, digest: &str, src: &Path) -> Result<(), BlobError> {
        let dest = self.path(digest)?;
        let size = std::fs::metadata(src)?.len();
        if size > self.limit {
            return Err(BlobError::TooLarge {
                size,
                limit: self.limit,
            });
        }
        let dir = dest
            .parent()
            .ok_or_else(|| BlobError::BadDigest(digest.into()))?;
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), unique()));
        let result = (|| {
            let mut input = std::fs::File::open(src)?;
            let mut output = std::fs::File::create(&tmp)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                output.write_all(&buf[..n])?;
            }
            output.sync_all()?;
            let actual = hex::encode(hasher.finalize());
            if actual != digest {
                return Err(BlobError::Mismatch {
                    expected: digest.to_string(),
                    actual,
                });
            }
            std::fs::rename(&tmp, &dest)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// The size of blob `digest`, or `None` when there is no such blob.
    pub fn size(&self, digest: &str) -> Option<u64> {
        let path = self.path(digest).ok()?;
        std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Marks blob `digest` as just written, as an upload of it would: a blob found in
    /// the store instead of uploaded again is as young as an upload (see
    /// [`BlobStore::remove_unused`]). Best effort.
    pub fn touch(&self, digest: &str) {
        if let Ok(path) = self.path(digest)
            && let Ok(file) = std::fs::File::open(path)
        {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
    }

    /// Deletes blob `digest` if it was last written (or [touched](BlobStore::touch))
    /// longer than `grace` ago; returns whether it did. The caller has checked that
    /// nothing names it; the grace keeps blobs of uploads whose manifest is on its way.
    pub fn remove_unused(&self, digest: &str, grace: std::time::Duration) -> io::Result<bool> {
        let path = self.path(digest).map_err(io::Error::other)?;
        let modified = match std::fs::metadata(&path) {
            Ok(m) => m.modified()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let age = modified.elapsed().unwrap_or_default();
        if age < grace {
            return Ok(false);
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The digests of the blobs last written (or touched) longer than `grace` ago: the
    /// candidates for [`BlobStore::remove_unused`]. Files that are not blobs (temporary
    /// uploads, anything else) are not listed.
    pub fn older_than(&self, grace: std::time::Duration) -> io::Result<Vec<String>> {
        let objects = self.layout.root().join("objects");
        let fans = match std::fs::read_dir(&objects) {
            Ok(fans) => fans,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut old = Vec::new();
        for fan in fans {
            let fan = fan?;
            let prefix = fan.file_name().to_string_lossy().into_owned();
            let Ok(files) = std::fs::read_dir(fan.path()) else {
                continue;
            };
            for file in files.flatten() {
                let digest = format!("{prefix}{}", file.file_name().to_string_lossy());
                let aged = file
                    .metadata()
                    .ok()
                    .filter(std::fs::Metadata::is_file)
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= grace);
                if aged && self.path(&digest).is_ok() {
                    old.push(digest);
                }
            }
        }
        Ok(old)
    }

    /// The size limit of one blob, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Stores the bytes of `body` as blob `digest` as they arrive, verifying their sha256
    /// and refusing more than the limit (without reading further); returns the size.
    /// The bytes go to a temporary file beside the object, renamed into place once
    /// verified, so nothing is held whole in memory and no half-written object appears.
    pub async fn put_stream<S, E>(&self, digest: &str, body: S) -> Result<u64, BlobError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>>,
        E: std::fmt::Display,
    {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;

        let dest = self.path(digest)?;
        let dir = dest
            .parent()
            .ok_or_else(|| BlobError::BadDigest(digest.into()))?
            .to_path_buf();
        tokio::fs::create_dir_all(&dir).await?;
        let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), unique()));
        let result = async {
            let mut output = tokio::fs::File::create(&tmp).await?;
            let mut hasher = Sha256::new();
            let mut size: u64 = 0;
            let mut body = std::pin::pin!(body);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    BlobError::Io(io::Error::other(format!("the upload broke off: {e}")))
                })?;
                size += chunk.len() as u64;
                if size > self.limit {
                    return Err(BlobError::TooLarge {
                        size,
                        limit: self.limit,
                    });
                }
                hasher.update(&chunk);
                output.write_all(&chunk).await?;
            }
            output.sync_all().await?;
            drop(output);
            let actual = hex::encode(hasher.finalize());
            if actual != digest {
                return Err(BlobError::Mismatch {
                    expected: digest.to_string(),
                    actual,
                });
            }
            tokio::fs::rename(&tmp, &dest).await?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// Copies blob `digest` to `dest`.
    pub async fn get_file(&self, digest: &str, dest: &Path) -> Result<(), BlobError> {
        let src = self.path(digest)?;
        if !tokio::fs::try_exists(&src).await.unwrap_or(false) {
            return Err(BlobError::Missing(digest.to_string()));
        }
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::copy(&src, dest).await?;
        Ok(())
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_digests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::new(dir.path().join("a"), 1024);
        let src = dir.path().join("f");
        std::fs::write(&src, b"hello").expect("write");
        let good = hex::encode(Sha256::digest(b"hello"));
        let bad = hex::encode(Sha256::digest(b"other"));
        assert!(matches!(
            store.put_file(&bad, &src).await,
            Err(BlobError::Mismatch { .. })
        ));
        assert!(!store.contains(&bad));
        assert!(matches!(
            store.put_file("../../etc", &src).await,
            Err(BlobError::BadDigest(_))
        ));
        store.put_file(&good, &src).await.expect("put");
        let out = dir.path().join("out/f");
        store.get_file(&good, &out).await.expect("get");
        assert_eq!(std::fs::read(&out).expect("read"), b"hello");
        assert!(matches!(
            store.get_file(&bad, &out).await,
            Err(BlobError::Missing(_))
        ));
    }
}
