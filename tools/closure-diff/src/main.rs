//! Wiring only: parse the command line, set up logging, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    if let Some(code) = fromgit_cli::generate_if_asked::<closure_diff::Cli>() {
        return code;
    }
    let cli = closure_diff::Cli::parse();
    fromgit_cli::init_tracing(&cli.global);
    match closure_diff::run(&cli) {
        Ok(status) => status.into(),
        Err(err) => fromgit_cli::report_error(&err),
    }
}
