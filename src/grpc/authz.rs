//! The caller of a request: its bearer token (or certificate identities) checked against the
//! callers in force for the RPC's scope and the request's owner, before anything else is read.

use std::sync::Arc;

use tonic::{Request, Status};
use tracing::Span;

use crate::audit::Event;
use crate::auth::{token, Access, AuthError, Caller, Presented, Scope};
use crate::transport::ConnInfo;

/// The caller, recorded on the RPC's span; or UNAUTHENTICATED / PERMISSION_DENIED.
pub(super) fn authorize<T>(
    access: &Access,
    event: &mut Event,
    req: &Request<T>,
    scope: Scope,
    owner: &str,
) -> Result<Arc<Caller>, Status> {
    let token = match req.metadata().get("authorization") {
        None => None,
        Some(value) => Some(value.to_str().ok().and_then(token::bearer).ok_or_else(|| {
            Status::unauthenticated("authorization metadata must be `Bearer <token>`")
        })?),
    };
    let identities = req
        .extensions()
        .get::<ConnInfo>()
        .map(|c| c.identities.clone());
    let presented = Presented {
        token,
        cert_identities: identities.as_deref().unwrap_or(&[]),
    };
    let caller = access.authorize(presented, scope, owner).inspect_err(|e| {
        // A known caller that was refused is named in the audit line too.
        if let AuthError::Scope { caller, .. } | AuthError::Owner { caller, .. } = e {
            event.caller = Some(caller.clone());
        }
    })?;
    Span::current().record("caller", caller.name.as_str());
    event.caller = Some(caller.name.clone());
    Ok(caller)
}
