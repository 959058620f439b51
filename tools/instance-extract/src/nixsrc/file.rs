//! A Nix file of the base: read from the tree, checked for nesting depth,
//! parsed, and able to turn a byte offset into a line and a column.

use std::path::{Path, PathBuf};

use fromgit_fs::walk::{Kind, SkipName, Walk, WalkError};
use rnix::SyntaxNode;

/// A Nix file of the base, with its text and parse tree.
pub struct NixFile {
    /// Path relative to the base directory.
    pub relative: PathBuf,
    pub text: String,
    pub root: SyntaxNode,
    /// Byte offset where each line starts: a position is a binary search,
    /// not a count of the newlines before it (a file with tens of thousands
    /// of findings made that quadratic).
    line_starts: Vec<usize>,
}

/// Why the base could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("`{path}` line {line}, column {column}: Nix syntax error ({reason})")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("`{path}` line {line}: nested deeper than {limit} levels; refused rather than risk the parser's stack")]
    TooDeep {
        path: PathBuf,
        line: usize,
        limit: usize,
    },
    #[error("`{path}` is a symbolic link to `{target}`, outside the base; `apply` would copy it into the base (replace it with the file itself or drop it)")]
    SymlinkOutside { path: PathBuf, target: PathBuf },
    #[error(transparent)]
    Walk(#[from] WalkError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl NixFile {
    pub fn parse(base: &Path, relative: PathBuf, text: String) -> Result<Self, SourceError> {
        if let Some(offset) = crate::nesting::too_deep_at(&text) {
            return Err(SourceError::TooDeep {
                path: base.join(&relative),
                line: line_column(&text, offset).0,
                limit: crate::nesting::MAX_NESTING,
            });
        }
        let parse = rnix::Root::parse(&text);
        if let Some(error) = parse.errors().first() {
            let offset = match error {
                rnix::ParseError::Unexpected(range)
                | rnix::ParseError::UnexpectedExtra(range)
                | rnix::ParseError::UnexpectedWanted(_, range, _)
                | rnix::ParseError::UnexpectedDoubleBind(range)
                | rnix::ParseError::DuplicatedArgs(range, _) => usize::from(range.start()),
                _ => text.len(),
            };
            let (line, column) = line_column(&text, offset);
            return Err(SourceError::Syntax {
                path: base.join(&relative),
                line,
                column,
                reason: error.to_string(),
            });
        }
        let root = parse.syntax();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Ok(NixFile {
            relative,
            text,
            root,
            line_starts,
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |l| l.chars().count())
            + 1;
        (line, column)
    }
}

/// Every `.nix` file under `base` (not `.git`, `result*` or hidden
/// directories), parsed, in path order.
pub fn read_tree(base: &Path) -> Result<Vec<NixFile>, SourceError> {
    let root = fs_err::canonicalize(base)?;
    let mut paths = nix_paths(base, &root)?;
    paths.sort();
    paths
        .into_iter()
        .map(|relative| {
            let text = fs_err::read_to_string(base.join(&relative))?;
            NixFile::parse(base, relative, text)
        })
        .collect()
}

/// The base's own tree as a split reads it: no hidden entry (`.git`), no
/// `result*` build link, links listed and not followed.
pub fn base_tree(base: &Path) -> Walk {
    Walk::new(base)
        .include_hidden(false)
        .skip(SkipName::StartsWith("result"))
        .follow_symlinks(false)
}

/// The `.nix` files under `base`, relative to it; `root` is `base`
/// resolved. An unreadable directory fails, naming it.
fn nix_paths(base: &Path, root: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let walk = base_tree(base);
    let mut out = Vec::new();
    for entry in walk.entries() {
        let entry = entry?;
        match entry.kind() {
            Kind::Symlink => {
                let path = entry.into_path();
                let target = fs_err::canonicalize(&path)?;
                if !target.starts_with(root) {
                    return Err(SourceError::SymlinkOutside { path, target });
                }
                // A link within the base: its target is read where it lives.
            }
            Kind::Dir => {}
            Kind::File | Kind::Other => {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "nix") {
                    out.push(path.strip_prefix(base).unwrap_or(path).to_path_buf());
                }
            }
        }
    }
    Ok(out)
}
