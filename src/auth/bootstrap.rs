//! First start stays two commands: with no callers configured, the server writes
//! `<data dir>/admin.token` (0600), an all-scopes, all-owners token, and accepts it. The log gives
//! the file's path, never the token. Once callers are configured, it is accepted only if listed.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::token::{self, TokenHash};
use super::Caller;

pub const ADMIN_TOKEN_FILE: &str = "admin.token";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot use the bootstrap token file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("bootstrap token file {path} {problem}; delete it to have a new one made, or configure [[callers]]")]
    Bad { path: PathBuf, problem: String },
}

/// The bootstrap admin caller of `data_dir`, making its token on first start. Also returns the
/// file's path and whether it was just created.
pub fn bootstrap_caller(data_dir: &Path) -> Result<(Caller, PathBuf, bool), BootstrapError> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let io = |source| BootstrapError::Io {
        path: path.clone(),
        source,
    };
    let (hash, created) = match open(&path) {
        Ok(file) => (read(&path, file)?, false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (create(&path).map_err(io)?, true),
        Err(e) => return Err(io(e)),
    };
    Ok((Caller::admin("admin", hash), path, created))
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

fn read(path: &Path, mut file: File) -> Result<TokenHash, BootstrapError> {
    let bad = |problem: &str| BootstrapError::Bad {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    let meta = file.metadata().map_err(|source| BootstrapError::Io {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(bad("is not a regular file"));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(bad("is readable by others (it must be 0600)"));
    }
    let mut text = Zeroizing::new(String::new());
    (&mut file)
        .take(256)
        .read_to_string(&mut text)
        .map_err(|source| BootstrapError::Io {
            path: path.to_owned(),
            source,
        })?;
    let token = text.trim();
    if !token.starts_with(token::PREFIX) || token.len() < token::PREFIX.len() + 32 {
        return Err(bad("does not hold a credvault token"));
    }
    Ok(TokenHash::of(token))
}

/// Written whole or not at all: a temporary file (0600, exclusive), fsynced, renamed over, and
/// the directory fsynced.
fn create(path: &Path) -> io::Result<TokenHash> {
    let token = token::generate().map_err(io::Error::other)?;
    let tmp = path.with_extension("token.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut line = Zeroizing::new(token.expose_secret().to_owned());
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(TokenHash::of_secret(&token))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::auth::Scope;

    #[test]
    fn made_once_0600_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (admin, path, created) = bootstrap_caller(dir.path()).unwrap();
        assert!(created);
        assert!(Scope::ALL.iter().all(|s| admin.has(*s)) && admin.may_access("anyone"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = std::fs::read_to_string(&path).unwrap();
        assert_eq!(admin.token_sha256, Some(TokenHash::of(token.trim())));

        let (again, _, created) = bootstrap_caller(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(again, admin);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = bootstrap_caller(dir.path()).unwrap_err().to_string();
        assert!(e.contains("readable by others"), "{e}");
        assert!(!e.contains(token.trim()), "the error holds the token");
    }
}
