use std::process::ExitCode;

use clap::Parser as _;

// Large secrets (a certificate bundle) are parsed, sealed, emitted and read
// back in buffers of a few MiB; glibc's allocator maps and unmaps each one,
// and the page faults cost more than the encryption.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    if let Some(code) = fromgit_cli::generate_if_asked::<instance_extract::cli::Cli>() {
        return code;
    }
    let cli = instance_extract::cli::Cli::parse();
    fromgit_cli::init_tracing(&cli.global);
    match instance_extract::run(&cli) {
        Ok(status) => status.into(),
        Err(err) => fromgit_cli::report_error(&err),
    }
}
