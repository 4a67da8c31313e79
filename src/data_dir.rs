//! The data dir on disk: created 0700 and made durable, kept private, and marked once its first
//! start completed.
//!
//! The marker tells a new store from a damaged one. A data dir without it never finished a first
//! start (a crash between sled creating its files and the keyring reaching disk), so an empty
//! store there is simply new. With the marker, a missing keyring means the files lost their
//! contents, and startup is refused.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

const MARKER: &str = "credvault.initialized";
/// The etcd prefixes this data dir's instance completed a first start on, one per line.
const ETCD_MARKER: &str = "credvault.etcd-initialized";

#[derive(Debug, thiserror::Error)]
#[error("data dir {path}: {source}")]
pub struct DataDirError {
    pub path: PathBuf,
    pub source: io::Error,
}

impl DataDirError {
    /// The error constructor for I/O on `dir`.
    fn at(dir: &Path) -> impl Fn(io::Error) -> DataDirError + Copy + '_ {
        move |source| DataDirError {
            path: dir.to_owned(),
            source,
        }
    }
}

/// Creates `dir` (mode 0700, every new level synced into its parent) or, when it exists, makes
/// sure that only its owner can enter it.
pub fn prepare(dir: &Path) -> Result<(), DataDirError> {
    let err = DataDirError::at(dir);
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(err(io::Error::other("exists but is not a directory"))),
        Ok(_) => tighten(dir, 0o700).map_err(err),
        Err(e) if e.kind() == io::ErrorKind::NotFound => create(dir).map_err(err),
        Err(e) => Err(err(e)),
    }
}

/// Creates `dir` and any missing parents with mode 0700, then syncs each new entry's parent so
/// the directory survives a power cut along with the first writes inside it.
fn create(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        missing.push(p.to_owned());
        at = p.parent();
    }
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    for created in &missing {
        sync_dir(parent_of(created))?;
    }
    Ok(())
}

fn parent_of(p: &Path) -> &Path {
    match p.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Gives `path` mode `mode` if it has any group or other bits, and says so.
fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let current = meta.permissions().mode() & 0o7777;
    if current & 0o077 == 0 || meta.file_type().is_symlink() {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    tracing::warn!(
        path = %path.display(),
        was = format!("{current:04o}"),
        now = format!("{mode:04o}"),
        "tightened permissions: only credvault's user may read its data"
    );
    Ok(())
}

/// Makes every entry of the data dir (sled's files, its blob dir, the key file) private to its
/// owner: files 0600, directories 0700. sled creates its files with the process umask (0644 by
/// default); the dir itself is 0700 already, this is the second wall.
pub fn tighten_entries(dir: &Path) -> Result<(), DataDirError> {
    let err = DataDirError::at(dir);
    for entry in fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let kind = entry.file_type().map_err(err)?;
        if kind.is_dir() {
            tighten(&entry.path(), 0o700).map_err(err)?;
            tighten_entries(&entry.path())?;
        } else if kind.is_file() {
            tighten(&entry.path(), 0o600).map_err(err)?;
        }
    }
    Ok(())
}

/// Whether this data dir completed a first start.
pub fn is_initialized(dir: &Path) -> bool {
    dir.join(MARKER).exists()
}

/// Whether an instance with this data dir completed a first start on etcd under `prefix`: the
/// keyring must be there, and a prefix without one was emptied (or the endpoints are another
/// cluster's).
pub fn served_etcd(dir: &Path, prefix: &str) -> bool {
    fs::read_to_string(dir.join(ETCD_MARKER)).is_ok_and(|t| t.lines().any(|l| l == prefix))
}

/// The marker that `served_etcd` reads: `<data dir>/credvault.etcd-initialized`.
pub fn etcd_marker(dir: &Path) -> PathBuf {
    dir.join(ETCD_MARKER)
}

/// Records, durably, that this instance completed a first start on etcd under `prefix`.
pub fn mark_served_etcd(dir: &Path, prefix: &str) -> Result<(), DataDirError> {
    let err = DataDirError::at(dir);
    if served_etcd(dir, prefix) {
        return Ok(());
    }
    let path = etcd_marker(dir);
    let mut text = fs::read_to_string(&path).unwrap_or_else(|_| {
        "# credvault: the etcd prefixes this instance completed a first start on. Do not edit.\n"
            .into()
    });
    text.push_str(prefix);
    text.push('\n');
    let tmp = dir.join(format!("{ETCD_MARKER}.tmp"));
    fs::write(&tmp, text).map_err(err)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(err)?;
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(err)?;
    fs::rename(&tmp, &path).map_err(err)?;
    sync_dir(dir).map_err(err)
}

/// Records that the first start completed (the keyring is durable), durably.
pub fn mark_initialized(dir: &Path) -> Result<(), DataDirError> {
    let err = DataDirError::at(dir);
    if is_initialized(dir) {
        return Ok(());
    }
    let path = dir.join(MARKER);
    let text = "credvault data dir: its first start completed. Do not remove this file.\n";
    fs::write(&path, text).map_err(err)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(err)?;
    File::open(&path).and_then(|f| f.sync_all()).map_err(err)?;
    sync_dir(dir).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_private_dirs_and_tightens_open_ones() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/data");
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        let file = dir.join("db");
        fs::write(&file, b"x").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        fs::create_dir(dir.join("blobs")).unwrap();
        fs::set_permissions(dir.join("blobs"), fs::Permissions::from_mode(0o755)).unwrap();
        tighten_entries(&dir).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir.join("blobs")), 0o700);
    }

    #[test]
    fn a_file_in_the_way_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("data");
        fs::write(&path, b"").unwrap();
        let e = prepare(&path).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    #[test]
    fn marker() {
        let root = tempfile::tempdir().unwrap();
        assert!(!is_initialized(root.path()));
        mark_initialized(root.path()).unwrap();
        assert!(is_initialized(root.path()));
        assert_eq!(mode(&root.path().join(MARKER)), 0o600);
    }

    #[test]
    fn the_etcd_marker_remembers_each_prefix() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        assert!(!served_etcd(dir, "/credvault/"));
        mark_served_etcd(dir, "/credvault/").unwrap();
        mark_served_etcd(dir, "/other/").unwrap();
        mark_served_etcd(dir, "/credvault/").unwrap();
        assert!(served_etcd(dir, "/credvault/") && served_etcd(dir, "/other/"));
        assert!(!served_etcd(dir, "/credvault"));
        assert!(!is_initialized(dir), "the etcd marker is not sled's");
        assert_eq!(mode(&etcd_marker(dir)), 0o600);
    }
}
