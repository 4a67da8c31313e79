//! The `credvault` binary: the command line (`cli`), over the library.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc malloc (~9% of server CPU under load; BENCHMARKS.md). `no_thp`:
/// with transparent huge pages mimalloc doubled RSS and took 10x longer to reach SERVING.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before any runtime or file: --help, --version and usage errors exit here (0 or 2).
    let cli = cli::Cli::parse();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(cli::run(cli)),
        Err(e) => {
            eprintln!("credvault: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
