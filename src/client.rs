//! For Rust clients of credvault (the CLI, the tests, the benchmarks, your service): a
//! CredentialVault (and Admin) client that sends a bearer token with every call.

use std::fmt;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;

use crate::proto::v1::credential_vault_client::CredentialVaultClient;

/// A CredentialVault client whose every call carries `authorization: Bearer <token>`.
pub type VaultClient = CredentialVaultClient<InterceptedService<Channel, Bearer>>;

/// Adds the token to each request, marked sensitive (HTTP/2 never indexes it in HPACK tables).
/// [`Bearer::none`] adds nothing: for callers known by their mTLS client certificate.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// `None` if the token is empty or not valid header text.
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        if token.is_empty() {
            return None;
        }
        let mut value = MetadataValue::try_from(format!("Bearer {token}")).ok()?;
        value.set_sensitive(true);
        Some(Self(Some(value)))
    }

    /// No token: the caller is its client certificate.
    pub fn none() -> Self {
        Self(None)
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bearer([REDACTED])")
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

/// A vault client over `channel`, authenticating with `bearer`.
pub fn vault_client(channel: Channel, bearer: Bearer) -> VaultClient {
    CredentialVaultClient::with_interceptor(channel, bearer)
}

/// An Admin (key management) client whose every call carries the bearer token.
pub type AdminClient =
    crate::proto::v1::admin_client::AdminClient<InterceptedService<Channel, Bearer>>;

/// An Admin client over `channel`, authenticating with `bearer`.
pub fn admin_client(channel: Channel, bearer: Bearer) -> AdminClient {
    crate::proto::v1::admin_client::AdminClient::with_interceptor(channel, bearer)
}
