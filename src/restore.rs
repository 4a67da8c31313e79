//! `credvault restore --in FILE`: a backup into the configured store, which must be empty.
//!
//! Everything that can refuse does so before anything is written: the file is read and its
//! checksum verified, the root key file is read (never created) and must open the backup's
//! keyring, and every entry must be a credential record. Only then is the data dir prepared and
//! the store opened; a store that holds anything is refused, untouched.

use std::path::{Path, PathBuf};

use crate::backup::{self, BackupError};
use crate::vault::{self, RestoreError};
use crate::{crypto, data_dir, Config, ServeError};

/// What a restore wrote.
#[derive(Debug, Clone)]
pub struct Restored {
    pub records: u64,
    pub unreadable: u64,
    pub keyring_version: u64,
    pub active_key: u32,
    pub taken_at: std::time::SystemTime,
    pub written_by: String,
    pub sha256: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreFailure {
    #[error("cannot read the backup {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("backup {}: {source}; nothing was written", path.display())]
    Backup { path: PathBuf, source: BackupError },
    #[error("root key file {}: {source}; nothing was written", path.display())]
    WrongKey { path: PathBuf, source: RestoreError },
    #[error("{0}; nothing was written")]
    Refused(RestoreError),
    #[error("restore failed while writing: {0}; run the same restore again to finish it")]
    Write(RestoreError),
    #[error(transparent)]
    Setup(#[from] ServeError),
}

impl RestoreFailure {
    /// The target was not empty (a precondition, not damage).
    pub fn is_not_empty(&self) -> bool {
        matches!(
            self,
            Self::Refused(RestoreError::NotEmpty(_) | RestoreError::OtherRestore)
        )
    }
}

/// Restores the backup at `path` into `config`'s store.
pub async fn restore(config: &Config, path: &Path) -> Result<Restored, RestoreFailure> {
    let (config, path) = (config.clone(), path.to_owned());
    let (verified, plan, config) = blocking(move || {
        let bytes = std::fs::read(&path).map_err(|source| RestoreFailure::Read {
            path: path.clone(),
            source,
        })?;
        let verified = backup::verify(&bytes).map_err(|source| RestoreFailure::Backup {
            path: path.clone(),
            source,
        })?;
        drop(bytes);
        let (key_path, _) = config.key_file();
        let root = crypto::load_or_create(&key_path, false).map_err(ServeError::from)?;
        let plan = vault::plan_restore(&root, &verified).map_err(|e| match e {
            RestoreError::WrongKey(_) => RestoreFailure::WrongKey {
                path: key_path,
                source: e,
            },
            e => RestoreFailure::Refused(e),
        })?;
        data_dir::prepare(&config.data_dir).map_err(ServeError::from)?;
        Ok((verified, plan, config))
    })
    .await?;
    let (store, _) = crate::open_store(&config).await?;
    let dir = config.data_dir.clone();
    vault::restore(store.clone(), &plan, &verified)
        .await
        .map_err(|e| match e {
            RestoreError::NotEmpty(_) | RestoreError::OtherRestore => RestoreFailure::Refused(e),
            e => RestoreFailure::Write(e),
        })?;
    drop(store);
    blocking(move || Ok(data_dir::mark_initialized(&dir).map_err(ServeError::from)?)).await?;
    let snap = &verified.snapshot;
    Ok(Restored {
        records: plan.records,
        unreadable: plan.unreadable,
        keyring_version: plan.keyring_version,
        active_key: plan.active_key,
        taken_at: snap.created_at,
        written_by: snap.written_by.clone(),
        sha256: verified.sha256,
    })
}

/// Runs blocking file and store work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RestoreFailure> + Send + 'static,
) -> Result<T, RestoreFailure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RestoreFailure::Setup(ServeError::OpenPanicked(e.to_string())))?
}
