//! Process hardening at start, before any secret is read: no core dumps (a dump of this process
//! holds the master key and decrypted credentials), no ptrace by other processes of the same
//! user, and files created private by default.
//!
//! Through rustix's safe wrappers, so this crate keeps `forbid(unsafe_code)`.

use std::io;

use rustix::fs::Mode;
use rustix::process::{DumpableBehavior, Resource, Rlimit};

/// Applies the hardening to the whole process. The binary calls it first thing; a library user
/// embedding the vault decides for its own process.
pub fn harden() -> io::Result<()> {
    // RLIMIT_CORE 0, soft and hard: no core file, and nothing in the process can raise it again.
    rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )?;
    // Not dumpable: no core dump even through a core_pattern pipe, and /proc/PID/mem and ptrace
    // are closed to other processes of the same user.
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    // Files credvault creates (sled's snapshots, blobs) are readable by its user only. The data
    // dir and the key are made private explicitly as well; this covers what sled adds later.
    rustix::process::umask(Mode::from_raw_mode(0o077));
    Ok(())
}
