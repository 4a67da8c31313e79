//! The `credvault` command line (clap, derive). `credvault` alone, or `credvault serve`, runs the
//! server; `--help`, `--version` and usage errors print and exit without touching the disk.
//!
//! Exit codes (stable, documented in the README): 0 OK, 1 a server or transport error, 2 a usage
//! error (clap's own).

mod logs;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use logs::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "credvault",
    version = credvault::VERSION,
    about = "A gRPC vault for Twilio credentials, encrypted at rest",
    long_about = "A gRPC vault for Twilio credentials, encrypted at rest.\n\n\
        Without a subcommand, runs the server (as `credvault serve`). Settings come from \
        CREDVAULT_* environment variables (see the README); flags override them.",
    after_help = "Example:\n  credvault                      # a vault on 127.0.0.1:50051, data in ./credvault-data\n  credvault serve --listen 127.0.0.1:6000 --data-dir /var/lib/credvault"
)]
pub struct Cli {
    /// Log format on stderr: `text` (colours only when stderr is a terminal) or `json` (one
    /// object per line).
    #[arg(long, global = true, env = "CREDVAULT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    #[command(
        after_help = "Example:\n  credvault serve --listen 127.0.0.1:50051 --data-dir ./credvault-data"
    )]
    Serve(serve::ServeArgs),
}

pub async fn run(cli: Cli) -> ExitCode {
    logs::init(cli.log_format);
    match cli.command {
        Some(Command::Serve(args)) => serve::run(args).await,
        None => serve::run(serve::ServeArgs::default()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
