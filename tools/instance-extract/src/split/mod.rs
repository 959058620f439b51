//! `plan`, `apply` and `verify`: the command-line side of the split.
//! This module holds what the three commands share: the request built from
//! the command line and the plan read from the base.

mod apply;
mod plan;
mod render;
mod transaction;
mod verify;

use std::path::Path;

use anyhow::Context as _;

use crate::cli::SplitArgs;
use crate::extract::{Plan, Request};

pub use apply::apply;
pub use plan::plan;
pub use verify::verify;

fn default_name(base: &Path) -> String {
    std::path::absolute(base)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| {
            n.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect()
        })
        .filter(|n: &String| n.starts_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or_else(|| "site".to_owned())
}

fn request<'a>(
    split: &'a SplitArgs,
    name: &'a str,
    sops: &'a crate::wiring::SopsRequest,
) -> Request<'a> {
    Request {
        base: &split.base,
        domain: &split.domain,
        secrets: &split.secrets,
        name,
        module: &split.module,
        sops,
    }
}

/// The option namespace the command line asked for, or the base's name.
fn namespace(split: &SplitArgs) -> String {
    split
        .name
        .clone()
        .unwrap_or_else(|| default_name(&split.base))
}

fn read_plan(request: &Request<'_>) -> anyhow::Result<Plan> {
    Plan::read(request)
        .with_context(|| format!("Failed to read the base `{}`", request.base.display()))
}
