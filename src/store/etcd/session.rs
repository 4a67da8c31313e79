//! How the store reaches etcd: one channel balanced over the endpoints (TLS when they are
//! `https://`, with `etcd.ca_file` and, for client certificates, `etcd.cert_file` and
//! `etcd.key_file`), and the login (`etcd.username`, `etcd.password_file`): etcd's
//! `Auth.Authenticate` buys a token that every call carries as `token` metadata. The token is
//! renewed when etcd calls it invalid (it expires after `--auth-token-ttl` unused, and with a
//! restart); calls that met the invalid token are retried (`retry`) with the new one.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Notify;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};

use super::pb::etcdserverpb::{auth_client::AuthClient, AuthenticateRequest, AuthenticateResponse};
use crate::config::EtcdConfig;
use crate::store::StoreError;

/// Every etcd client of the store goes through this: the channel, with the token added.
pub(super) type Conn = InterceptedService<Channel, Session>;

/// etcd's answer to a call with a token it no longer knows.
const INVALID_TOKEN: &str = "invalid auth token";

/// The login, and the token it holds now. Cheap to clone (one shared state).
#[derive(Clone)]
pub(super) struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    /// `etcd.username` and the password read from `etcd.password_file`.
    login: Option<(String, SecretString)>,
    token: RwLock<Option<MetadataValue<Ascii>>>,
    /// Wakes the renewer: the token was refused.
    renew: Notify,
}

impl tonic::service::Interceptor for Session {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = self.inner.token.read().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = token.as_ref() {
            request.metadata_mut().insert("token", token.clone());
        }
        Ok(request)
    }
}

impl Session {
    /// A session for `login` (user and password), not logged in yet; `None`: etcd without auth.
    pub(super) fn new(login: Option<(String, SecretString)>) -> Self {
        Self {
            inner: Arc::new(Inner {
                login,
                token: RwLock::new(None),
                renew: Notify::new(),
            }),
        }
    }

    /// Looks at a failed call's status: a refused token is renewed (and the call, retried, will
    /// carry the new one).
    pub(super) fn saw(&self, status: &Status) {
        if self.inner.login.is_some() && is_invalid_token(status) {
            self.inner.renew.notify_one();
        }
    }

    pub(super) fn wrap(&self, channel: Channel) -> Conn {
        InterceptedService::new(channel, self.clone())
    }

    /// Logs in once (a wrong password is an error now, not a retry loop), then renews the token
    /// in the background whenever `saw` is told it was refused. An etcd that cannot be reached
    /// yet is no error: the renewer keeps trying.
    async fn start(
        &self,
        channel: Channel,
    ) -> Result<Option<tokio::task::AbortHandle>, StoreError> {
        let Some((user, _)) = &self.inner.login else {
            return Ok(None);
        };
        let mut auth = AuthClient::new(channel);
        match self.login(&mut auth).await {
            Err(status) if !retried(&status) => {
                return Err(StoreError::Backend(format!(
                    "etcd refused the login of user `{user}`: {}",
                    status.message()
                )))
            }
            Err(status) => tracing::warn!(
                reason = %status.message(),
                "etcd login: not answered yet; retrying in the background"
            ),
            Ok(()) => {}
        }
        let session = self.clone();
        let renewer = tokio::spawn(async move { session.renew(auth).await });
        Ok(Some(renewer.abort_handle()))
    }

    async fn renew(&self, mut auth: AuthClient<Channel>) {
        let mut have = self
            .inner
            .token
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        loop {
            if have {
                self.inner.renew.notified().await;
            }
            match self.login(&mut auth).await {
                Ok(()) => have = true,
                Err(status) => {
                    tracing::warn!(reason = %status.message(), "etcd login failed; retrying in 1 s");
                    have = false;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn login(&self, auth: &mut AuthClient<Channel>) -> Result<(), Status> {
        let Some((user, password)) = &self.inner.login else {
            return Ok(());
        };
        let request = AuthenticateRequest {
            name: user.clone(),
            password: password.expose_secret().to_owned(),
        };
        let call = auth.authenticate(request);
        let reply = match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(reply) => reply?.into_inner(),
            Err(_) => return Err(Status::unavailable("no answer within 5 s")),
        };
        let mut token = MetadataValue::try_from(reply.token.as_str())
            .map_err(|_| Status::internal("etcd gave a token that is not ASCII"))?;
        // Never indexed by HPACK, never printed by a Debug of the headers.
        token.set_sensitive(true);
        *self.inner.token.write().unwrap_or_else(|e| e.into_inner()) = Some(token);
        Ok(())
    }
}

/// etcd's answer to a token it does not know (any more).
pub(super) fn is_invalid_token(status: &Status) -> bool {
    status.code() == Code::Unauthenticated && status.message().contains(INVALID_TOKEN)
}

/// A login failure that may pass by itself (etcd not reachable or busy), not a refusal.
fn retried(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}

/// The channel and the session for `config`, logged in; and the renewer's task, if any.
pub(super) async fn open(
    config: &EtcdConfig,
) -> Result<(Channel, Session, Option<tokio::task::AbortHandle>), StoreError> {
    let tls = tls(config)?;
    let endpoints = config
        .endpoints
        .iter()
        .map(|e| {
            let endpoint = Endpoint::from_shared(e.clone())
                .map_err(|err| StoreError::Backend(format!("etcd endpoint {e}: {err}")))?
                .connect_timeout(config.dial_timeout);
            match &tls {
                Some(tls) => endpoint
                    .tls_config(tls.clone())
                    .map_err(|err| StoreError::Backend(format!("etcd endpoint {e}: {err}"))),
                None => Ok(endpoint),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if endpoints.is_empty() {
        return Err(StoreError::Backend("no etcd endpoint given".into()));
    }
    let channel = Channel::balance_list(endpoints.into_iter());
    let login = match &config.password_file {
        Some(file) if !config.username.is_empty() => {
            Some((config.username.clone(), read_password(file)?))
        }
        _ => None,
    };
    let session = Session::new(login);
    let renewer = session.start(channel.clone()).await?;
    Ok((channel, session, renewer))
}

fn tls(config: &EtcdConfig) -> Result<Option<ClientTlsConfig>, StoreError> {
    let Some(ca) = &config.ca_file else {
        return Ok(None);
    };
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).map_err(|e| {
            StoreError::Backend(format!(
                "etcd TLS: cannot read {what} {}: {e}",
                path.display()
            ))
        })
    };
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca, "etcd.ca_file")?));
    if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
        tls = tls.identity(Identity::from_pem(
            read(cert, "etcd.cert_file")?,
            read(key, "etcd.key_file")?,
        ));
    }
    Ok(Some(tls))
}

/// The password file's first line (a trailing newline is not part of the password).
fn read_password(path: &std::path::Path) -> Result<SecretString, StoreError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        StoreError::Backend(format!(
            "cannot read etcd.password_file {}: {e}",
            path.display()
        ))
    })?);
    let password = text.lines().next().unwrap_or("");
    if password.is_empty() {
        return Err(StoreError::Backend(format!(
            "etcd.password_file {} is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(password.to_owned()))
}

/// The password and the token stay out of every Debug string (build.rs skips the derive).
impl std::fmt::Debug for AuthenticateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticateRequest")
            .field("name", &self.name)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl std::fmt::Debug for AuthenticateResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticateResponse")
            .field("header", &self.header)
            .field("token", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_and_the_token_never_show_in_debug() {
        let request = AuthenticateRequest {
            name: "credvault".into(),
            password: "hunter2-etcd-password".into(),
        };
        let reply = AuthenticateResponse {
            header: None,
            token: "tokenvalue.123".into(),
        };
        let shown = format!("{request:?} {reply:?}");
        assert!(shown.contains("credvault"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("tokenvalue"),
            "{shown}"
        );
    }

    #[test]
    fn the_password_is_the_first_line_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(read_password(&file).unwrap().expose_secret(), "s3cret");
        std::fs::write(&file, "\n").unwrap();
        let e = read_password(&file).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
    }
}
