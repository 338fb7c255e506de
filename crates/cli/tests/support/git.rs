//! Real git repositories for the server to poll and check out: a bare repository and a
//! clone of it the test commits and pushes in.

use std::path::PathBuf;

use gantry_test_support::{TempTree, git};

/// A bare repository (what the server is given) and a clone of it the test commits in.
pub struct Repo {
    _tmp: TempTree,
    /// The bare repository.
    pub bare: PathBuf,
    /// The clone commits are made in.
    pub work: PathBuf,
}

impl Repo {
    /// A bare repository whose `develop` has one commit with `gantry.yml`.
    pub fn new(pipeline: &str) -> Repo {
        let tmp = TempTree::new();
        let bare = tmp.join("origin.git");
        let work = tmp.join("work");
        std::fs::create_dir_all(&bare).expect("mkdir");
        std::fs::create_dir_all(&work).expect("mkdir");
        git(&bare, &["init", "-q", "--bare", "-b", "develop"]);
        git(&work, &["init", "-q", "-b", "develop"]);
        git(
            &work,
            &["remote", "add", "origin", &bare.display().to_string()],
        );
        let repo = Repo {
            _tmp: tmp,
            bare,
            work,
        };
        repo.commit("gantry.yml", pipeline, "pipeline");
        repo
    }

    /// Commits a file on `develop` and pushes it; returns the commit id.
    pub fn commit(&self, file: &str, text: &str, message: &str) -> String {
        std::fs::write(self.work.join(file), text).expect("write");
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "develop"]);
        self.head()
    }

    /// The commit id of the clone's `HEAD`.
    pub fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// Tags the current commit and pushes the tag.
    pub fn tag(&self, name: &str) {
        git(&self.work, &["tag", name]);
        git(&self.work, &["push", "-q", "origin", name]);
    }

    pub fn url(&self) -> String {
        self.bare.display().to_string()
    }
}
