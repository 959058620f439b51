//! `plan`: the findings of the base, listed without changing anything.

use std::fmt::Write as _;

use fromgit_cli::{ExitStatus, Printer};
use serde::Serialize;

use super::render::finding_line;
use super::{namespace, read_plan, request};
use crate::cli::PlanArgs;
use crate::nixsrc::Finding;

#[derive(Serialize)]
struct PlanReport<'a> {
    schema_version: u32,
    domain: &'a str,
    findings: &'a [Finding],
}

pub fn plan(args: &PlanArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let name = namespace(&args.split);
    let sops = crate::wiring::SopsRequest::default();
    let request = request(&args.split, &name, &sops);
    let plan = read_plan(&request)?;
    if printer.json() {
        printer.print_json(&PlanReport {
            schema_version: 1,
            domain: &args.split.domain,
            findings: &plan.findings,
        })?;
    } else {
        let mut text: String = plan.findings.iter().map(finding_line).collect();
        let _ = writeln!(
            text,
            "{} finding(s) in {} Nix file(s)",
            plan.findings.len(),
            plan.files.len()
        );
        printer.print_text(&text)?;
    }
    if !plan.mentions_domain() {
        fromgit_cli::warn(&format!(
            "`{}` occurs nowhere in the base's Nix files",
            args.split.domain
        ));
        return Ok(ExitStatus::Failure);
    }
    Ok(ExitStatus::Success)
}
