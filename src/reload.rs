//! The parts of the config that change while serving (SIGHUP): the callers and the TLS
//! certificates. A new config replaces them whole, or, if any part is broken, not at all.

use std::sync::Arc;

use tokio::sync::watch;

use crate::transport::Acceptor;
use crate::{auth, data_dir, Config, ServeError};

/// The callers of `config`, or, when it names none, the bootstrap admin of the data dir.
pub async fn callers(config: &Config) -> Result<auth::Callers, ServeError> {
    if !config.callers.is_empty() {
        let callers = auth::Callers::new(config.callers.clone()).map_err(ServeError::Callers)?;
        tracing::info!(callers = callers.len(), "callers configured");
        return Ok(callers);
    }
    let dir = config.data_dir.clone();
    let (admin, path, created) = tokio::task::spawn_blocking(move || {
        data_dir::prepare(&dir)?;
        Ok::<_, ServeError>(auth::bootstrap_caller(&dir)?)
    })
    .await
    .map_err(|e| ServeError::OpenPanicked(e.to_string()))??;
    tracing::info!(
        path = %path.display(),
        created,
        "no [[callers]] configured: the bootstrap admin token in this file (all scopes, all owners) is the only caller"
    );
    auth::Callers::new(vec![admin]).map_err(ServeError::Callers)
}

/// Applies each config sent on `reloads` until the sender goes away.
pub async fn follow(
    mut reloads: watch::Receiver<Option<Config>>,
    mut current: Config,
    access: Arc<auth::Access>,
    tls: Option<Arc<Acceptor>>,
) {
    while reloads.changed().await.is_ok() {
        let Some(new) = reloads.borrow_and_update().clone() else {
            continue;
        };
        match apply(&new, &current, &access, tls.as_deref()).await {
            Ok(()) => current = new,
            Err(e) => tracing::error!("config reload failed, the config in force stays: {e}"),
        }
    }
}

async fn apply(
    new: &Config,
    current: &Config,
    access: &auth::Access,
    tls: Option<&Acceptor>,
) -> Result<(), String> {
    if new.tls.enabled() != current.tls.enabled()
        || new.tls.client_ca_file.is_some() != current.tls.client_ca_file.is_some()
    {
        return Err("turning TLS or mTLS on or off needs a restart".into());
    }
    // Everything is built before anything is swapped: a broken part changes nothing.
    let callers = callers(new).await.map_err(|e| e.to_string())?;
    if let Some(tls) = tls {
        tls.reload(&new.tls).map_err(|e| e.to_string())?;
    }
    let n = callers.len();
    access.replace(callers);
    tracing::info!(callers = n, tls = tls.is_some(), "config reloaded");
    Ok(())
}
