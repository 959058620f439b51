//! Files and directories named after the instance.
//!
//! Real repositories keep a site's modules under its name
//! (`sites/blog.example.org.nix`, `services/example.org/nginx.nix`). A
//! generic base cannot carry that name, in any letter case, so such paths
//! are renamed (the domain becomes `instance`) and every relative path
//! literal that names them is rewritten the same way, which keeps imports
//! resolving.

use std::path::{Path, PathBuf};

use fromgit_fs::walk::{Kind, WalkError};
use rnix::SyntaxKind;

use crate::nixsrc::{self, NixFile};
use crate::rewrite::Edit;

/// What the domain becomes in a file or directory name.
pub const REPLACEMENT: &str = "instance";

/// `relative` with the domain replaced in every component, or `None` when no
/// component names it.
pub fn renamed(relative: &Path, domain: &str) -> Option<PathBuf> {
    let text = relative.to_str()?;
    let replaced = rename_text(text, domain);
    (replaced != text).then(|| PathBuf::from(replaced))
}

/// The domain replaced in each `/`-separated component; a file extension
/// (`lab.example.org.nix`) is set apart first, since the domain matcher
/// would otherwise read `example.org.nix` as a longer name.
fn rename_text(text: &str, domain: &str) -> String {
    text.split('/')
        .map(|component| {
            let (stem, extension) = match component.rsplit_once('.') {
                Some((stem, extension))
                    if !extension.is_empty()
                        && extension.len() <= 5
                        && !domain.ends_with(&format!(".{}", extension.to_ascii_lowercase())) =>
                {
                    (stem, &component[stem.len()..])
                }
                _ => (component, ""),
            };
            format!(
                "{}{extension}",
                nixsrc::replace_domain(stem, domain, REPLACEMENT)
            )
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every file under `base` (not `.git`, hidden or `result*`) whose path
/// names the domain, relative to `base`, in path order.
/// An unreadable directory fails, naming it.
pub fn named_files(base: &Path, domain: &str) -> Result<Vec<PathBuf>, WalkError> {
    let walk = crate::nixsrc::base_tree(base);
    let mut out = Vec::new();
    for entry in walk.entries() {
        let entry = entry?;
        if entry.kind() == Kind::File {
            let path = entry.path();
            let relative = path.strip_prefix(base).unwrap_or(path).to_path_buf();
            if renamed(&relative, domain).is_some() {
                out.push(relative);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The edits that rename the domain inside relative path literals
/// (`./sites/blog.example.org.nix` → `./sites/blog.instance.nix`).
pub fn path_literal_edits(file: &NixFile, domain: &str) -> Vec<Edit> {
    file.root
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::NODE_PATH_REL)
        .filter_map(|node| {
            let text = node.text().to_string();
            let replaced = rename_text(&text, domain);
            (replaced != text).then(|| Edit::replace(node.text_range(), replaced))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_under_the_domain_are_renamed_in_any_case() {
        assert_eq!(
            renamed(Path::new("sites/Blog.Example.org.nix"), "example.org"),
            Some(PathBuf::from("sites/Blog.instance.nix"))
        );
        assert_eq!(
            renamed(Path::new("services/example.org/nginx.nix"), "example.org"),
            Some(PathBuf::from("services/instance/nginx.nix"))
        );
        assert_eq!(
            renamed(Path::new("services/nginx.nix"), "example.org"),
            None
        );
        let file = NixFile::parse(
            Path::new("."),
            "m.nix".into(),
            "{ imports = [ ./sites/blog.example.org.nix ../EXAMPLE.ORG ./other.nix ]; }".to_owned(),
        )
        .expect("parses");
        let edited = crate::rewrite::apply(&file.text, &path_literal_edits(&file, "example.org"));
        assert_eq!(
            edited,
            "{ imports = [ ./sites/blog.instance.nix ../instance ./other.nix ]; }"
        );
    }
}
