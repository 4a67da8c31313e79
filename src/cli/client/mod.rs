//! The client subcommands: each a thin gRPC call to a running server, its answer printed as a
//! table for people or JSON for scripts, its failure as the status, its details and an exit code.

pub mod add;
pub mod delete;
pub mod health;
pub mod list;
mod output;
pub mod resolve;
mod secret;
pub mod validate;

use std::path::PathBuf;
use std::time::Duration;

use credvault::client::{vault_client, Bearer, VaultClient};
use tonic::transport::{Channel, Endpoint};
use zeroize::Zeroizing;

use super::exit::Exit;
pub use output::Output;

/// Where the server is and how long to wait for it: every client subcommand takes these.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The server's address
    #[arg(
        long,
        env = "CREDVAULT_ADDR",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL"
    )]
    pub addr: String,
    /// How long to wait for the connection and the answer (e.g. 500ms, 30s, 2m)
    #[arg(long, env = "CREDVAULT_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// `table` for people, `json` for scripts (one object, or one per line for lists)
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// File holding the bearer token to call with [default: $CREDVAULT_DATA_DIR/admin.token or
    /// ./credvault-data/admin.token, when it exists: the bootstrap admin token]
    #[arg(long, env = "CREDVAULT_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl ClientArgs {
    pub async fn channel(&self) -> Result<Channel, Exit> {
        let endpoint = Endpoint::from_shared(self.addr.clone()).map_err(|e| {
            eprintln!("credvault: invalid --addr {}: {e}", self.addr);
            Exit::Usage
        })?;
        endpoint
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .connect()
            .await
            .map_err(|e| {
                eprintln!("credvault: cannot connect to {}: {}", self.addr, chain(&e));
                Exit::Failure
            })
    }

    /// A vault client calling with the token file's token.
    pub async fn vault(&self) -> Result<VaultClient, Exit> {
        let bearer = self.bearer()?;
        Ok(vault_client(self.channel().await?, bearer))
    }

    fn bearer(&self) -> Result<Bearer, Exit> {
        let path = match &self.token_file {
            Some(path) => path.clone(),
            None => {
                let dir = std::env::var_os("CREDVAULT_DATA_DIR")
                    .filter(|d| !d.is_empty())
                    .map_or_else(|| PathBuf::from("credvault-data"), PathBuf::from);
                dir.join(credvault::auth::ADMIN_TOKEN_FILE)
            }
        };
        let token = std::fs::read_to_string(&path).map(Zeroizing::new).map_err(|e| {
            eprintln!(
                "credvault: cannot read the token file {}: {e} (give one with --token-file or CREDVAULT_TOKEN_FILE)",
                path.display()
            );
            Exit::Usage
        })?;
        Bearer::new(token.trim()).ok_or_else(|| {
            eprintln!(
                "credvault: the token file {} holds no valid token",
                path.display()
            );
            Exit::Usage
        })
    }
}

/// An error and its causes on one line ("transport error: Connection refused (os error 111)").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Prints a failed RPC (its code, message and rich details) and gives its exit code.
pub fn failed(status: &tonic::Status) -> Exit {
    eprint!("{}", output::status_report(status));
    Exit::of(status.code())
}
