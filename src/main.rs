//! The `credvault` binary: the command line (`cli`), over the library.
#![forbid(unsafe_code)]

/// `print!` and `println!` for the command line's output: a reader that went away (`credvault
/// list acme | head -1`) ends the process quietly with 141, as SIGPIPE would, instead of
/// `println!`'s panic.
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::stdout(format_args!($($arg)*))
    };
}

macro_rules! println {
    ($($arg:tt)*) => {
        $crate::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod cli;

/// Writes to stdout; a closed pipe exits 141 (128 + SIGPIPE), any other failure exits 1.
fn stdout(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("credvault: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

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
