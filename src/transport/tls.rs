//! TLS on the server's connections: our own rustls acceptor (not tonic's), so a reload swaps the
//! certificates and client CA for new handshakes while established connections carry on.
//! Handshakes run concurrently, off the accept loop, each under the connection's handshake
//! deadline; a client certificate's URI and DNS SANs become the connection's identities.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use super::conn::{Conn, ConnInfo};
use crate::config::{ClientAuth, TlsConfig};

/// Why a TLS configuration could not be loaded (it names the file).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The server's TLS settings in force; [`Acceptor::reload`] replaces them.
pub struct Acceptor {
    current: RwLock<Arc<ServerConfig>>,
}

impl Acceptor {
    pub fn load(tls: &TlsConfig) -> Result<Self, TlsError> {
        Ok(Self {
            current: RwLock::new(Arc::new(server_config(tls)?)),
        })
    }

    /// New handshakes use `tls`; a broken one leaves the old in force.
    pub fn reload(&self, tls: &TlsConfig) -> Result<(), TlsError> {
        let config = Arc::new(server_config(tls)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn server_config(tls: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) else {
        return Err(TlsError(
            "tls.cert_file and tls.key_file are both needed".into(),
        ));
    };
    let certs = certificates(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| TlsError(format!("tls.key_file {}: {e}", key_file.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(ca_file)? {
                roots.add(ca).map_err(|e| {
                    TlsError(format!("tls.client_ca_file {}: {e}", ca_file.display()))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match tls.client_auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                ClientAuth::Required => verifier,
            };
            builder.with_client_cert_verifier(
                verifier.build().map_err(|e| {
                    TlsError(format!("tls.client_ca_file {}: {e}", ca_file.display()))
                })?,
            )
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError(format!("tls.cert_file {}: {e}", cert_file.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The URI and DNS SANs of a certificate: what `cert_identity` is matched against.
fn identities(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(uri.to_string()),
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            _ => None,
        })
        .collect()
}

/// A connection as tonic sees it: plaintext, or TLS with the client certificate's identities.
pub enum Io {
    Plain(Conn),
    Tls(Box<TlsStream<Conn>>, Arc<[String]>),
}

impl Connected for Io {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        match self {
            Io::Plain(conn) => conn.connect_info(),
            Io::Tls(tls, ids) => tls.get_ref().0.connect_info().with_identities(ids.clone()),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(c) => Pin::new(c).poll_read(cx, buf),
            Io::Tls(t, _) => Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(c) => Pin::new(c).poll_write(cx, buf),
            Io::Tls(t, _) => Pin::new(t.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(c) => Pin::new(c).poll_flush(cx),
            Io::Tls(t, _) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(c) => Pin::new(c).poll_shutdown(cx),
            Io::Tls(t, _) => Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepted connections, through the TLS handshake when TLS is on. Handshakes run as tasks, so a
/// slow one holds up no other; a failed one is logged at DEBUG and dropped (with its slot).
pub struct Handshakes<S> {
    accepted: S,
    acceptor: Option<Arc<Acceptor>>,
    pending: JoinSet<io::Result<Io>>,
    accepted_done: bool,
}

impl<S> Handshakes<S> {
    pub fn new(accepted: S, acceptor: Option<Arc<Acceptor>>) -> Self {
        Self {
            accepted,
            acceptor,
            pending: JoinSet::new(),
            accepted_done: false,
        }
    }
}

impl<S: Stream<Item = io::Result<Conn>> + Unpin> Stream for Handshakes<S> {
    type Item = io::Result<Io>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while !this.accepted_done {
            match Pin::new(&mut this.accepted).poll_next(cx) {
                Poll::Ready(Some(Ok(conn))) => {
                    let Some(acceptor) = &this.acceptor else {
                        return Poll::Ready(Some(Ok(Io::Plain(conn))));
                    };
                    let config = acceptor.config();
                    this.pending.spawn(async move {
                        let tls = TlsAcceptor::from(config).accept(conn).await?;
                        let ids = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .map(identities)
                            .unwrap_or_default();
                        Ok(Io::Tls(Box::new(tls), ids.into()))
                    });
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => this.accepted_done = true,
                Poll::Pending => break,
            }
        }
        loop {
            match this.pending.poll_join_next(cx) {
                Poll::Ready(Some(Ok(Ok(io)))) => return Poll::Ready(Some(Ok(io))),
                Poll::Ready(Some(Ok(Err(e)))) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(error = %e, "a TLS handshake task failed");
                }
                Poll::Ready(None) if this.accepted_done => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}
