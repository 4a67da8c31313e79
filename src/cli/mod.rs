//! The `credvault` command line (clap, derive). `credvault` alone, or `credvault serve`, runs the
//! server; `config check` reads the config; `restore` writes a backup into an empty store;
//! `add`, `list`, `validate`, `resolve`, `delete`, `health`, `keys` and `backup` are gRPC clients
//! of a running server. `--help`, `--version` and usage errors print
//! and exit without touching the disk. Exit codes: [`exit::Exit`] (stable, in the README).

mod audit_cmd;
mod client;
mod config_cmd;
mod exit;
mod logs;
mod restore;
mod serve;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "credvault",
    version = credvault::VERSION,
    about = "A gRPC vault for Twilio credentials, encrypted at rest",
    long_about = "A gRPC vault for Twilio credentials, encrypted at rest.\n\n\
        Without a subcommand, runs the server (as `credvault serve`). Settings come from a TOML \
        file (--config or CREDVAULT_CONFIG), then CREDVAULT_* environment variables, then flags; \
        examples/credvault.toml documents every one.",
    after_help = "Examples:\n  \
        credvault                                   # a vault on 127.0.0.1:50051, data in ./credvault-data\n  \
        credvault --config /etc/credvault.toml      # the same, configured by a file\n  \
        credvault list acme                         # in another terminal: acme's credentials\n\n\
        Exit codes: 0 OK, 1 server or transport error, 2 usage or configuration error, 3 not found,\n\
        4 already exists or aborted, 5 invalid argument, 6 unauthenticated or permission denied,\n\
        7 failed precondition, 8 the credential is invalid (validate), 141 stdout closed early.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Log format on stderr: `text` (colours only when stderr is a terminal) or `json` (one
    /// object per line) [env: CREDVAULT_LOG_FORMAT; file: log.format]
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,

    /// `credvault` alone serves, with these flags.
    #[command(flatten)]
    pub serve: serve::ServeArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    #[command(after_help = "Examples:\n  \
        credvault serve --listen 127.0.0.1:50051 --data-dir ./credvault-data\n  \
        credvault serve --config /etc/credvault.toml")]
    Serve(serve::ServeArgs),
    /// Read and check the configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Store a credential (the secret is read from a prompt, stdin or a file, never argv).
    Add(client::add::AddArgs),
    /// List an owner's credentials: metadata only, never a secret.
    List(client::list::ListArgs),
    /// Check a credential against Twilio and record the result.
    Validate(client::validate::ValidateArgs),
    /// Print the auth a service needs to call Twilio (secrets only with --show-secrets or json).
    Resolve(client::resolve::ResolveArgs),
    /// Erase a credential, irreversibly.
    Delete(client::delete::DeleteArgs),
    /// Ask a server whether it is serving (exit 0) or not (exit 1): for container health checks.
    Health(client::health::HealthArgs),
    /// Make caller tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Check the audit log.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Manage the keyring: `status`, `rotate`, `retire` (an admin caller of every owner).
    #[command(subcommand)]
    Keys(client::keys::KeysCommand),
    /// Write a running server's backup to a file (an admin caller of every owner).
    Backup(client::backup::BackupArgs),
    /// Restore a backup into an empty data dir, with the server stopped (reads the server's config).
    Restore(restore::RestoreArgs),
}

pub async fn run(cli: Cli) -> ExitCode {
    let log_format = cli.log_format;
    let code = match cli.command {
        None => serve::run(cli.serve, log_format).await,
        Some(Command::Serve(args)) => serve::run(args, log_format).await,
        Some(Command::Config(command)) => config_cmd::run(command),
        Some(Command::Token(command)) => token::run(command),
        Some(Command::Audit(command)) => audit_cmd::run(command),
        Some(Command::Restore(args)) => restore::run(args, log_format).await,
        Some(client) => {
            logs::init_client(log_format.as_deref());
            match client {
                Command::Add(args) => client::add::run(args).await,
                Command::List(args) => client::list::run(args).await,
                Command::Validate(args) => client::validate::run(args).await,
                Command::Resolve(args) => client::resolve::run(args).await,
                Command::Delete(args) => client::delete::run(args).await,
                Command::Health(args) => client::health::run(args).await,
                Command::Keys(command) => client::keys::run(command).await,
                Command::Backup(args) => client::backup::run(args).await,
                Command::Serve(_)
                | Command::Config(_)
                | Command::Token(_)
                | Command::Audit(_)
                | Command::Restore(_) => unreachable!("matched above"),
            }
        }
    };
    code.into()
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
