//! The master key file: 32 random bytes, readable by the vault's user only.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

pub const KEY_LEN: usize = 32;

/// The vault's master key, zeroized on drop and never printed.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub(super) fn as_array(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("master key file {0} does not exist")]
    Missing(PathBuf),
    #[error("master key file {path} is readable by group or others (mode {mode:o}); run: chmod 600 {path}")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error(
        "master key file {path} holds {len} bytes; it must hold exactly {KEY_LEN} random bytes"
    )]
    WrongLength { path: PathBuf, len: usize },
    #[error("cannot use master key file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Reads the key at `path`. When the file is absent and `create` is set, writes a new random key
/// there with mode 0600 (first start); otherwise a missing file is an error, so a mistyped path
/// can never silently start an empty vault under a fresh key.
pub fn load_or_create(path: &Path, create: bool) -> Result<MasterKey, KeyFileError> {
    let io_err = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::TooOpen {
                    path: path.to_owned(),
                    mode,
                });
            }
            let bytes = Zeroizing::new(fs::read(path).map_err(io_err)?);
            let key: [u8; KEY_LEN] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyFileError::WrongLength {
                        path: path.to_owned(),
                        len: bytes.len(),
                    })?;
            Ok(MasterKey::from_bytes(key))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => create_key(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(KeyFileError::Missing(path.to_owned()))
        }
        Err(e) => Err(io_err(e)),
    }
}

fn create_key(path: &Path) -> Result<MasterKey, KeyFileError> {
    let io_err = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(key.as_mut_slice()).map_err(|e| io_err(io::Error::other(e.to_string())))?;
    // create_new: never overwrite a key another process just wrote.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    file.write_all(key.as_slice()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    Ok(MasterKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_0600_then_reloads_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = load_or_create(&path, true).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = load_or_create(&path, false).unwrap();
        assert_eq!(a.as_array(), b.as_array());
    }

    #[test]
    fn refuses_open_permissions_wrong_length_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        assert!(matches!(
            load_or_create(&path, false),
            Err(KeyFileError::Missing(_))
        ));
        fs::write(&path, [0u8; 31]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            load_or_create(&path, true),
            Err(KeyFileError::WrongLength { len: 31, .. })
        ));
        fs::write(&path, [0u8; 32]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            load_or_create(&path, true),
            Err(KeyFileError::TooOpen { .. })
        ));
    }
}
