use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = instance_extract::cli::Cli::parse();
    fromgit_cli::init_tracing(&cli.global);
    match instance_extract::run(&cli) {
        Ok(status) => status.into(),
        Err(err) => fromgit_cli::report_error(&err),
    }
}
