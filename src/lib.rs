//! credvault: a gRPC vault for Twilio credentials, encrypted at rest.
//!
//! A request reads top to bottom: `grpc` (parse, map errors) -> `vault` (the core) -> `crypto`
//! (seal/open) and `store` (durable bytes). `serve` wires them; the binary, the tests and the
//! benchmarks all run the same `serve`.
//!
//! Public: what the binary, the tests, the benchmarks and Rust clients need (`proto`, `client`,
//! `config`, `serve`/`serve_reloading`/`run`/`open_vault`, `auth` and `audit` for the CLI's token
//! and audit commands, and the core types tests build vaults from: `domain`, `crypto`, `store`,
//! `vault`, `twilio::TwilioClient`). The network edge (`transport`, `grpc`), SIGHUP handling
//! (`reload`) and the data dir's housekeeping stay private.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod backup;
pub mod client;
pub mod config;
pub mod crypto;
mod data_dir;
pub mod deadline;
pub mod domain;
mod grpc;
pub mod metrics;
pub mod process;
pub mod proto;
mod reload;
mod restore;
pub mod store;
mod transport;
pub mod twilio;
pub mod vault;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;
pub use restore::{restore, RestoreFailure, Restored};

/// The crate version and, when built from a git checkout, the commit: "0.1.0 (commit 1a2b3c4d5e6f)".
pub const VERSION: &str = match option_env!("CREDVAULT_GIT_COMMIT") {
    Some(_) => concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("CREDVAULT_GIT_COMMIT"),
        ")"
    ),
    None => env!("CARGO_PKG_VERSION"),
};
use crypto::KeyFileError;
use store::{SledStore, StoreError};
use vault::{OpenError, Vault};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    DataDir(#[from] data_dir::DataDirError),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error("cannot open the store in {path}: {source}")]
    Store { path: PathBuf, source: StoreError },
    /// Another process holds the data dir (its message names the dir).
    #[error(transparent)]
    InUse(StoreError),
    #[error("etcd at {endpoints}: {source}")]
    Etcd {
        endpoints: String,
        source: StoreError,
    },
    #[error("etcd prefix {prefix} holds no keyring, although this instance completed a first start on it ({}): the prefix was emptied, or the endpoints are another cluster's. Restore a backup into it (`credvault restore`); to start a new, empty vault there instead, remove that file", marker.display())]
    EtcdEmptied { prefix: String, marker: PathBuf },
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot build server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("server error: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Twilio(#[from] twilio::BuildError),
    #[error("final flush failed: {0}")]
    Flush(#[from] vault::VaultError),
    #[error(transparent)]
    Bootstrap(#[from] auth::BootstrapError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error("TLS: {0}")]
    Tls(#[from] transport::TlsError),
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    #[error("invalid [[callers]]: {0}")]
    Callers(String),
    #[error("root key file {}: {source}", path.display())]
    WrongRootKey { path: PathBuf, source: OpenError },
    #[error("opening the data dir failed unexpectedly ({0}); the store may be damaged")]
    OpenPanicked(String),
}

/// Opens the data dir: root key (created on first start), sled store, keyring (and the upgrade
/// of a first-release store).
pub async fn open_vault(config: &Config) -> Result<Arc<Vault>, ServeError> {
    let config = config.clone();
    let dir = config.data_dir.clone();
    let keys = config.keys;
    let policy = vault::KeyPolicy {
        rotate_after_encryptions: keys.rotate_after_encryptions,
        max_age: (keys.max_age_days > 0)
            .then(|| std::time::Duration::from_secs(u64::from(keys.max_age_days) * 86_400)),
        rewrap_per_second: keys.rewrap_per_second,
    };
    // Key file and data dir do blocking file I/O: keep it off the runtime threads.
    let (key, key_path) = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            data_dir::prepare(&config.data_dir)?;
            let (key_path, may_create) = config.key_file();
            let key = crypto::load_or_create(&key_path, may_create)?;
            Ok::<_, ServeError>((key, key_path))
        })
        .await
        .map_err(|e| ServeError::OpenPanicked(e.to_string()))??
    };
    let (store, initialized) = open_store(&config).await?;
    let etcd = (config.backend == config::Backend::Etcd).then(|| config.etcd.prefix.clone());
    let vault = Vault::open_with(store, key, policy, initialized)
        .await
        .map_err(|e| match (e, &etcd) {
            (e @ (OpenError::WrongKey(_) | OpenError::OtherRootKey { .. }), _) => {
                ServeError::WrongRootKey {
                    path: key_path,
                    source: e,
                }
            }
            (OpenError::KeyringMissing, Some(prefix)) => ServeError::EtcdEmptied {
                prefix: prefix.clone(),
                marker: data_dir::etcd_marker(&dir),
            },
            (e, _) => e.into(),
        })?;
    // Only now is the keyring durable: from here on a missing keyring means damage.
    tokio::task::spawn_blocking(move || match etcd {
        Some(prefix) => data_dir::mark_served_etcd(&dir, &prefix),
        None => data_dir::mark_initialized(&dir),
    })
    .await
    .map_err(|e| ServeError::OpenPanicked(e.to_string()))??;
    Ok(Arc::new(vault))
}

/// Opens the configured store: sled in the (prepared) data dir, or etcd. Also whether the store
/// completed a first start, so its keyring must be there: the data dir's marker for sled, and for
/// etcd the data dir's record of the prefixes this instance served. etcd is waited for, however
/// long it takes to answer.
async fn open_store(config: &Config) -> Result<(Arc<dyn store::Store>, bool), ServeError> {
    match config.backend {
        config::Backend::Sled => {
            let config = config.clone();
            tokio::task::spawn_blocking(move || {
                let dir = &config.data_dir;
                let store =
                    SledStore::open(dir, config.cache_bytes).map_err(|source| match source {
                        StoreError::InUse(_) => ServeError::InUse(source),
                        source => ServeError::Store {
                            path: dir.clone(),
                            source,
                        },
                    })?;
                data_dir::tighten_entries(dir)?;
                let store: Arc<dyn store::Store> = Arc::new(store);
                Ok((store, data_dir::is_initialized(dir)))
            })
            .await
            // A panic inside sled while opening a damaged store becomes a clean startup error
            // (exit 1), not a crash loop under a supervisor that restarts on signals.
            .map_err(|e| ServeError::OpenPanicked(e.to_string()))?
        }
        config::Backend::Etcd => {
            let etcd = &config.etcd;
            let fail = |source| ServeError::Etcd {
                endpoints: etcd.endpoints.join(","),
                source,
            };
            let store = store::EtcdStore::connect(etcd).await.map_err(fail)?;
            // A server started before its etcd waits for it rather than exit.
            store.wait_until_reachable().await.map_err(fail)?;
            let served = data_dir::served_etcd(&config.data_dir, &etcd.prefix);
            Ok((Arc::new(store), served))
        }
    }
}

/// Loads the TLS files of `config` as `serve` would (`config check` runs it).
pub fn check_tls(config: &Config) -> Result<(), ServeError> {
    if config.tls.enabled() {
        transport::Acceptor::load(&config.tls)?;
    }
    Ok(())
}

/// Serves credvault on `listener` until `shutdown` completes, then drains in-flight RPCs and
/// flushes the store.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_reloading(listener, config, shutdown, watch::channel(None).1).await
}

/// [`serve`], taking each config sent on `reloads` (SIGHUP): its callers and TLS certificates
/// replace those in force; a broken one is logged and changes nothing.
pub async fn serve_reloading(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
    reloads: watch::Receiver<Option<Config>>,
) -> Result<(), ServeError> {
    // Before the data dir is touched: a bad Twilio base is a config error.
    let twilio = twilio::TwilioClient::new(&config.twilio)?;
    let vault = open_vault(&config).await?;
    serve_vault(listener, &config, vault, twilio, shutdown, reloads).await
}

/// [`serve`] over a vault that is already open (tests inject stores with faults this way).
pub async fn run(
    listener: TcpListener,
    config: &Config,
    vault: Arc<Vault>,
    twilio: twilio::TwilioClient,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_vault(
        listener,
        config,
        vault,
        twilio,
        shutdown,
        watch::channel(None).1,
    )
    .await
}

async fn serve_vault(
    listener: TcpListener,
    config: &Config,
    vault: Arc<Vault>,
    twilio: twilio::TwilioClient,
    shutdown: impl Future<Output = ()>,
    reloads: watch::Receiver<Option<Config>>,
) -> Result<(), ServeError> {
    let tls = match config.tls.enabled() {
        true => Some(Arc::new(transport::Acceptor::load(&config.tls)?)),
        false => None,
    };
    let access = Arc::new(auth::Access::new(reload::callers(config).await?));
    let reloading = tokio::spawn(reload::follow(
        reloads,
        config.clone(),
        access.clone(),
        tls.clone(),
    ));
    let audit = {
        let (audit, dir) = (config.audit.clone(), config.data_dir.clone());
        tokio::task::spawn_blocking(move || audit::AuditLog::open(&audit, &dir))
            .await
            .map_err(|e| ServeError::OpenPanicked(e.to_string()))??
    };
    let metrics = match config.metrics_listen {
        Some(addr) => {
            let vault = vault.clone();
            Some(metrics::serve(addr, move || vault.metrics_reading()).await?)
        }
        None => None,
    };
    let revalidation = vault::Revalidation::start(vault.clone(), &twilio, config);
    let (routes, health) = grpc::routes(vault.clone(), twilio, access, audit, config).await?;
    let follow = tokio::spawn(grpc::follow_store_health(
        vault.store_health(),
        health.clone(),
    ));
    tracing::info!(
        addr = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
        data_dir = %config.data_dir.display(),
        store = config.backend.as_str(),
        tls = tls.is_some(),
        mtls = config.tls.client_ca_file.is_some(),
        version = VERSION,
        "credvault serving"
    );
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        grpc::set_not_serving(&health).await;
    };
    let served = transport::serve(
        listener,
        routes,
        &config.limits,
        tls,
        grpc::is_hot_read,
        shutdown,
    )
    .await;
    follow.abort();
    reloading.abort();
    drop(metrics);
    if let Some(revalidation) = revalidation {
        revalidation.stop().await;
    }
    vault.stop_background().await;
    served?;
    vault.flush().await?;
    tracing::info!("credvault stopped");
    Ok(())
}
