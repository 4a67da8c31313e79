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

use std::time::Duration;

use credvault::proto::v1::credential_vault_client::CredentialVaultClient;
use tonic::transport::{Channel, Endpoint};

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

    pub async fn vault(&self) -> Result<CredentialVaultClient<Channel>, Exit> {
        Ok(CredentialVaultClient::new(self.channel().await?))
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
