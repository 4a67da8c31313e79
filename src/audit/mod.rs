//! The audit log: one JSON line for every CredentialVault RPC, allowed or denied, chained by
//! SHA-256 so an edit, a removal, an insertion or a reordering shows. It fails closed: an RPC
//! whose line cannot be written fails with UNAVAILABLE, so no secret leaves unaudited.

mod log;
mod record;
mod verify;

pub use log::{rotated, AuditError, AuditLog, GENESIS};
pub use record::{code_name, mask, Event};
pub use verify::{verify, Verified, VerifyError};
