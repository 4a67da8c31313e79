//! The client subcommands: each a thin gRPC call to a running server, its answer printed as a
//! table for people or JSON for scripts, its failure as the status, its details and an exit code.

pub mod add;
pub mod backup;
pub mod delete;
pub mod health;
pub mod keys;
pub mod list;
mod output;
pub mod resolve;
mod rewrap;
mod secret;
pub mod validate;

use std::path::PathBuf;
use std::time::Duration;

use credvault::client::{vault_client, Bearer, VaultClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
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
    /// CA certificate (PEM) to verify the server with; implies TLS (an https:// --addr)
    #[arg(long, env = "CREDVAULT_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS, with --key-file
    #[arg(
        long,
        env = "CREDVAULT_CERT_FILE",
        value_name = "FILE",
        requires = "key_file"
    )]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM)
    #[arg(
        long,
        env = "CREDVAULT_KEY_FILE",
        value_name = "FILE",
        requires = "cert_file"
    )]
    pub key_file: Option<PathBuf>,
}

impl ClientArgs {
    pub async fn channel(&self) -> Result<Channel, Exit> {
        let endpoint = Endpoint::from_shared(self.addr.clone()).map_err(|e| {
            eprintln!("credvault: invalid --addr {}: {e}", self.addr);
            Exit::Usage
        })?;
        let endpoint = match self.tls()? {
            Some(tls) => endpoint.tls_config(tls).map_err(|e| {
                eprintln!("credvault: TLS: {}", chain(&e));
                Exit::Usage
            })?,
            None => endpoint,
        };
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

    /// TLS when the address is https:// or a CA file is given; mTLS with a client certificate.
    fn tls(&self) -> Result<Option<ClientTlsConfig>, Exit> {
        if !self.addr.starts_with("https://") && self.ca_file.is_none() {
            return Ok(None);
        }
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| {
                eprintln!("credvault: cannot read {}: {e}", path.display());
                Exit::Usage
            })
        };
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &self.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            let key = Zeroizing::new(read(key)?);
            tls = tls.identity(Identity::from_pem(read(cert)?, key.as_slice()));
        }
        Ok(Some(tls))
    }

    /// A vault client calling with the token file's token.
    pub async fn vault(&self) -> Result<VaultClient, Exit> {
        let bearer = self.bearer()?;
        Ok(vault_client(self.channel().await?, bearer))
    }

    /// An Admin client calling with the token file's token.
    pub async fn admin(&self) -> Result<credvault::client::AdminClient, Exit> {
        let bearer = self.bearer()?;
        Ok(credvault::client::admin_client(
            self.channel().await?,
            bearer,
        ))
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
        if self.token_file.is_none() && self.cert_file.is_some() && !path.exists() {
            // An mTLS caller: its certificate names it.
            return Ok(Bearer::none());
        }
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
