//! The two git modes, read with gix and never through `git log -p`:
//!
//! - `--history` enumerates the object database in pack order (Nosey
//!   Parker's design), so each distinct blob is inflated and scanned once,
//!   in parallel, whatever the number of commits and paths it appears in;
//!   commits, tags and tree entry names are scanned too, as are ref names.
//!   Which commit and path introduced a blob is worked out afterwards, only
//!   for the objects with findings. A shallow or partial clone, an object
//!   that cannot be read, or a skipped blob makes the run unproven.
//! - `--staged` scans the full blob of every index entry that differs from
//!   `HEAD` (not diff hunks, which split PEM blocks), plus its path.

mod history;
mod object;
mod packwalk;
mod provenance;
mod staged;

use std::path::{Path, PathBuf};

use crate::engine::Hit;
use crate::report::{Coverage, Source};

pub use history::{history, HistoryOptions};
pub use staged::staged;

/// A hit located in git: the object it was found in and what the object is.
pub struct GitHit {
    pub hit: Hit,
    pub source: Source,
    pub path: Option<String>,
    pub commit: Option<String>,
    pub blob: Option<String>,
    pub history_only: bool,
}

pub struct GitOutcome {
    pub hits: Vec<GitHit>,
    pub coverage: Coverage,
    pub unproven: Vec<String>,
    /// The work tree root, where `.leak-scan.toml` and `.sops.yaml` live.
    pub root: PathBuf,
}

/// Opens the repository containing `dir`, with a clear error when there is none.
pub fn open(dir: &Path) -> anyhow::Result<gix::Repository> {
    let repo = gix::discover(dir)
        .map_err(|err| anyhow::anyhow!("`{}` is not in a git repository: {err}", dir.display()))?;
    Ok(repo)
}

pub fn root_of(repo: &gix::Repository) -> PathBuf {
    repo.workdir()
        .map_or_else(|| repo.git_dir().to_path_buf(), Path::to_path_buf)
}
