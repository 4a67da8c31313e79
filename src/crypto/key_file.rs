//! The root key file: 32 random bytes in a regular file that only the vault's user can read.
//!
//! The file is opened once, without following a symbolic link and without blocking (a FIFO would
//! otherwise hang startup), and every check runs on the open descriptor (`fstat`), so nothing can
//! swap the file between the check and the read.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use zeroize::Zeroizing;

pub const KEY_LEN: usize = 32;

/// The root key (it seals the keyring), zeroized on drop and never printed.
pub struct RootKey(Zeroizing<[u8; KEY_LEN]>);

impl RootKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub(super) fn as_array(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key's bytes, to hand to a server (`keys rotate-root`); nothing else needs them.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// 16 hex digits naming this key (a domain-separated SHA-256 of it): tells two root keys
    /// apart in messages without revealing anything of either.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"credvault/root-key-fingerprint")
            .chain_update(self.0.as_slice())
            .finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey([REDACTED])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("root key file {0} does not exist")]
    Missing(PathBuf),
    #[error("root key file {0} is a symbolic link; credvault only opens the key file itself (point the setting at the link's target, e.g. a Kubernetes secret's ..data/<key>)")]
    Symlink(PathBuf),
    #[error("root key file {path} is a {kind}, not a regular file")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("root key file {path} is owned by uid {owner}, not by the user credvault runs as (uid {euid}); run: chown {euid} {path}")]
    WrongOwner {
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error("root key file {path} has mode {mode:04o}; it must be 0600 or 0400 (readable by its owner only); run: chmod 600 {path}")]
    BadMode { path: PathBuf, mode: u32 },
    #[error("root key file {path} holds {len} bytes; it must hold exactly {KEY_LEN} random bytes")]
    WrongLength { path: PathBuf, len: u64 },
    #[error("cannot use root key file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Reads the key at `path`. When the file is absent and `create` is set, writes a new random key
/// there with mode 0600 (first start); otherwise a missing file is an error, so a mistyped path
/// can never silently start an empty vault under a fresh key.
pub fn load_or_create(path: &Path, create: bool) -> Result<RootKey, KeyFileError> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    match rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => read_key(path, File::from(fd)),
        Err(Errno::NOENT) if create => create_key(path),
        Err(Errno::NOENT) => Err(KeyFileError::Missing(path.to_owned())),
        // O_NOFOLLOW on a symbolic link.
        Err(Errno::LOOP) => Err(KeyFileError::Symlink(path.to_owned())),
        Err(e) => Err(io_err(path)(e.into())),
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Checks the open file (type, owner, mode, size) and reads the key from it.
fn read_key(path: &Path, file: File) -> Result<RootKey, KeyFileError> {
    let meta = file.metadata().map_err(io_err(path))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let kind = if kind.is_fifo() {
            "FIFO (named pipe)"
        } else if kind.is_dir() {
            "directory"
        } else if kind.is_socket() {
            "socket"
        } else {
            "device"
        };
        return Err(KeyFileError::NotRegular {
            path: path.to_owned(),
            kind,
        });
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(KeyFileError::WrongOwner {
            path: path.to_owned(),
            owner: meta.uid(),
            euid,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode != 0o600 && mode != 0o400 {
        return Err(KeyFileError::BadMode {
            path: path.to_owned(),
            mode,
        });
    }
    let wrong_length = |len| KeyFileError::WrongLength {
        path: path.to_owned(),
        len,
    };
    if meta.len() != KEY_LEN as u64 {
        return Err(wrong_length(meta.len()));
    }
    // At most one byte more than a key: a file that grew since the fstat is still refused, and
    // nothing unbounded is read.
    let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
    file.take(KEY_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    let key: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| wrong_length(bytes.len() as u64))?;
    Ok(RootKey::from_bytes(key))
}

/// Writes a new key atomically: into a temporary file (0600, synced), then renamed into place
/// only if nothing is there yet, then the directory synced. A crash leaves either no key file or
/// a whole one, never an empty file that would refuse every later start.
fn create_key(path: &Path) -> Result<RootKey, KeyFileError> {
    let err = io_err(path);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(key.as_mut_slice()).map_err(|e| err(io::Error::other(e.to_string())))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    // Left by a crash during an earlier first start: it never held an acknowledged key.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd =
        rustix::fs::open(&tmp, flags, Mode::from_raw_mode(0o600)).map_err(|e| err(e.into()))?;
    let mut file = File::from(fd);
    file.write_all(key.as_slice()).map_err(&err)?;
    file.sync_all().map_err(&err)?;
    drop(file);
    // NOREPLACE: never overwrite a key another process just wrote.
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        &tmp,
        rustix::fs::CWD,
        path,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(|e| err(e.into()))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(&err)?;
    Ok(RootKey(key))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn creates_0600_then_reloads_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = load_or_create(&path, true).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.path().join("master.key.tmp").exists());
        let b = load_or_create(&path, false).unwrap();
        assert_eq!(a.as_array(), b.as_array());
        chmod(&path, 0o400);
        let c = load_or_create(&path, false).unwrap();
        assert_eq!(a.as_array(), c.as_array());
    }

    #[test]
    fn a_leftover_temporary_file_does_not_stop_the_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(dir.path().join("master.key.tmp"), b"").unwrap();
        load_or_create(&path, true).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 32);
    }

    #[test]
    fn refuses_bad_modes_wrong_length_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        assert!(matches!(
            load_or_create(&path, false),
            Err(KeyFileError::Missing(_))
        ));
        fs::write(&path, [0u8; 31]).unwrap();
        chmod(&path, 0o600);
        assert!(matches!(
            load_or_create(&path, true),
            Err(KeyFileError::WrongLength { len: 31, .. })
        ));
        fs::write(&path, [0u8; 33]).unwrap();
        assert!(matches!(
            load_or_create(&path, true),
            Err(KeyFileError::WrongLength { len: 33, .. })
        ));
        fs::write(&path, [0u8; 32]).unwrap();
        for mode in [0o640, 0o604, 0o700, 0o644, 0o200] {
            chmod(&path, mode);
            let err = load_or_create(&path, true).unwrap_err();
            assert!(
                matches!(err, KeyFileError::BadMode { .. }),
                "{mode:o}: {err}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn refuses_symlinks_fifos_and_directories_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.key");
        fs::write(&real, [7u8; 32]).unwrap();
        chmod(&real, 0o600);
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = load_or_create(&link, false).unwrap_err();
        assert!(matches!(err, KeyFileError::Symlink(_)), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");

        // A 0600 FIFO: opening it for reading would block until a writer came.
        let fifo = dir.path().join("fifo.key");
        let status = std::process::Command::new("mkfifo")
            .arg("-m")
            .arg("600")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = load_or_create(&fifo, false).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");

        let err = load_or_create(dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
    }

    #[test]
    fn refuses_a_key_owned_by_another_user() {
        if rustix::process::geteuid().as_raw() != 0 {
            // Only root can give a file away; as another user the check is the same code.
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        fs::write(&path, [1u8; 32]).unwrap();
        chmod(&path, 0o600);
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let err = load_or_create(&path, false).unwrap_err();
        assert!(
            matches!(err, KeyFileError::WrongOwner { owner: 65534, .. }),
            "{err}"
        );
    }
}
