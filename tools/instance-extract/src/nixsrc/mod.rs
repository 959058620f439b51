//! Nix source files, parsed losslessly (rnix keeps every byte, whitespace
//! and comments included), and the instance specifics found in them.
//!
//! Findings carry byte ranges into the original text, so a rewrite can
//! replace exactly those bytes and leave every other byte of the file as it
//! was.

mod domain;
mod file;
mod finding;
mod literals;
mod scan;
#[cfg(test)]
mod tests;

pub use domain::{domain_matches, replace_domain};
pub use file::{base_tree, line_column, read_tree, NixFile, SourceError};
pub use finding::{Context, Finding, FindingKind, Needles};
pub use scan::scan;
