//! `credvault::process::harden` on a process of its own (this test binary): no core dumps, not
//! dumpable (no ptrace, no /proc/PID/mem for other processes), a private umask.

use rustix::process::{dumpable_behavior, getrlimit, DumpableBehavior, Resource};

#[test]
fn harden_turns_off_core_dumps_and_ptrace_and_makes_files_private() {
    credvault::process::harden().unwrap();
    let core = getrlimit(Resource::Core);
    assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
    assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "umask not applied");
}
