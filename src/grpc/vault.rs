//! `credvault.v1.CredentialVault`: parse the request, call the vault core, convert the answer.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tracing::Span;

use super::audited::Audit;
use super::authz::authorize;
use super::convert::{self, Violations};
use crate::audit::{AuditLog, Event};
use crate::auth::{Access, AuthError, Caller, Scope};
use crate::domain::{Label, Owner, PageToken, PhoneNumber};
use crate::proto::v1 as pb;
use crate::twilio::{TestMessage, DEFAULT_TEST_BODY, MAX_TEST_BODY_CHARS};
use crate::vault::{Validator, Vault};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 500;

pub struct VaultService {
    vault: Arc<Vault>,
    validator: Validator,
    access: Arc<Access>,
    audit: AuditLog,
}

impl VaultService {
    pub fn new(
        vault: Arc<Vault>,
        validator: Validator,
        access: Arc<Access>,
        audit: AuditLog,
    ) -> Self {
        Self {
            vault,
            validator,
            access,
            audit,
        }
    }
}

/// A test SMS only to the caller's `test_recipients`, when it has them.
fn may_text(caller: &Caller, test: Option<&TestMessage>) -> Result<(), Status> {
    match test {
        Some(t) if !caller.may_text(t.to.as_str()) => Err(AuthError::Recipient {
            caller: caller.name.clone(),
        }
        .into()),
        _ => Ok(()),
    }
}

/// Parses owner and label, recording them on the current span (they are not secret).
fn identity(v: &mut Violations, owner: &str, label: &str) -> Option<(Owner, Label)> {
    let owner = v.check("owner", Owner::parse(owner));
    let label = v.check("label", Label::parse(label));
    let (owner, label) = owner.zip(label)?;
    Span::current()
        .record("owner", owner.as_str())
        .record("label", label.as_str());
    Some((owner, label))
}

/// The optional test SMS: `None` with the violations recorded when a field is bad, `Some(None)`
/// when no SMS was asked for.
fn test_message(
    v: &mut Violations,
    recipient_field: &str,
    recipient: &str,
    body: &str,
) -> Option<Option<TestMessage>> {
    if body.chars().count() > MAX_TEST_BODY_CHARS {
        v.add(
            "test_message_body",
            format!("must be at most {MAX_TEST_BODY_CHARS} characters"),
        );
        return None;
    }
    if recipient.is_empty() {
        if !body.is_empty() {
            v.add("test_message_body", "is only used with test_recipient");
            return None;
        }
        return Some(None);
    }
    let to = v.check(recipient_field, PhoneNumber::parse(recipient))?;
    let body = if body.is_empty() {
        DEFAULT_TEST_BODY
    } else {
        body
    };
    Some(Some(TestMessage {
        to,
        body: body.to_owned(),
    }))
}

impl VaultService {
    async fn add_rpc(
        &self,
        req: Request<pb::AddRequest>,
        event: &mut Event,
    ) -> Result<Response<pb::AddResponse>, Status> {
        // Add with `validate` also talks to Twilio: it needs both scopes.
        let owner = &req.get_ref().owner;
        let allowed =
            authorize(&self.access, event, &req, Scope::Write, owner).and_then(|caller| {
                if req.get_ref().validate {
                    authorize(&self.access, event, &req, Scope::Validate, owner)
                } else {
                    Ok(caller)
                }
            });
        let mut req = req.into_inner();
        let caller = match allowed {
            Ok(caller) => caller,
            Err(status) => {
                convert::wipe_secrets(&mut req.credential);
                return Err(status);
            }
        };
        let mut v = Violations::default();
        let id = identity(&mut v, &req.owner, &req.label);
        let cred = convert::credential(&mut v, req.credential.as_ref());
        convert::wipe_secrets(&mut req.credential);
        let test = if !req.validate && !req.test_recipient.is_empty() {
            v.add("test_recipient", "is only used with validate");
            None
        } else {
            test_message(&mut v, "test_recipient", &req.test_recipient, "")
        };
        let (Some((owner, label)), Some(cred), Some(test)) = (id, cred, test) else {
            return Err(v.into_status());
        };
        may_text(&caller, test.as_ref())?;
        if req.validate {
            let done = self
                .validator
                .add_validated(&owner, &label, &cred, req.replace, test.as_ref())
                .await?;
            tracing::info!(
                version = done.metadata.version,
                "credential validated and stored"
            );
            return Ok(Response::new(pb::AddResponse {
                validation: Some(convert::validation_result(&done.outcome)),
                credential: Some(convert::metadata(done.metadata)),
            }));
        }
        let meta = self.vault.add(&owner, &label, &cred, req.replace).await?;
        tracing::info!(version = meta.version, "credential stored");
        Ok(Response::new(pb::AddResponse {
            credential: Some(convert::metadata(meta)),
            validation: None,
        }))
    }

    async fn validate_rpc(
        &self,
        req: Request<pb::ValidateRequest>,
        event: &mut Event,
    ) -> Result<Response<pb::ValidateResponse>, Status> {
        let caller = authorize(
            &self.access,
            event,
            &req,
            Scope::Validate,
            &req.get_ref().owner,
        )?;
        let req = req.into_inner();
        let mut v = Violations::default();
        let id = identity(&mut v, &req.owner, &req.label);
        let test = test_message(
            &mut v,
            "test_recipient",
            &req.test_recipient,
            &req.test_message_body,
        );
        let (Some((owner, label)), Some(test)) = (id, test) else {
            return Err(v.into_status());
        };
        may_text(&caller, test.as_ref())?;
        let done = self
            .validator
            .validate_stored(&owner, &label, test.as_ref())
            .await?;
        Ok(Response::new(pb::ValidateResponse {
            result: Some(convert::validation_result(&done.outcome)),
            credential: Some(convert::metadata(done.metadata)),
        }))
    }

    // Each RPC runs in the transport's `rpc` span (INFO for writes and Validate, DEBUG for the
    // hot reads Resolve and List); handlers record owner and label into it.
    async fn list_rpc(
        &self,
        req: Request<pb::ListRequest>,
        event: &mut Event,
    ) -> Result<Response<pb::ListResponse>, Status> {
        authorize(&self.access, event, &req, Scope::List, &req.get_ref().owner)?;
        let req = req.into_inner();
        let mut v = Violations::default();
        let owner = v.check("owner", Owner::parse(&req.owner));
        // A token is only meaningful for the owner it was minted for.
        let token = match &owner {
            Some(owner) => v.check("page_token", PageToken::parse(&req.page_token, owner)),
            None => None,
        };
        let page_size = match req.page_size {
            n if n < 0 => {
                v.add("page_size", "must not be negative");
                0
            }
            0 => DEFAULT_PAGE_SIZE,
            n => (n as usize).min(MAX_PAGE_SIZE),
        };
        let (Some(owner), Some(token)) = (owner, token) else {
            return Err(v.into_status());
        };
        if req.page_size < 0 {
            return Err(v.into_status());
        }
        Span::current().record("owner", owner.as_str());
        let page = self.vault.list(&owner, page_size, token).await?;
        Ok(Response::new(pb::ListResponse {
            credentials: page.items.into_iter().map(convert::metadata).collect(),
            next_page_token: page.next.map(|t| t.encode(&owner)).unwrap_or_default(),
        }))
    }

    async fn delete_rpc(
        &self,
        req: Request<pb::DeleteRequest>,
        event: &mut Event,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        authorize(
            &self.access,
            event,
            &req,
            Scope::Write,
            &req.get_ref().owner,
        )?;
        let req = req.into_inner();
        let mut v = Violations::default();
        let Some((owner, label)) = identity(&mut v, &req.owner, &req.label) else {
            return Err(v.into_status());
        };
        let version = self.vault.delete(&owner, &label).await?;
        tracing::info!(version, "credential deleted");
        Ok(Response::new(pb::DeleteResponse { version }))
    }

    async fn resolve_rpc(
        &self,
        req: Request<pb::ResolveRequest>,
        event: &mut Event,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        authorize(
            &self.access,
            event,
            &req,
            Scope::Resolve,
            &req.get_ref().owner,
        )?;
        let req = req.into_inner();
        let mut v = Violations::default();
        let Some((owner, label)) = identity(&mut v, &req.owner, &req.label) else {
            return Err(v.into_status());
        };
        let resolved = self
            .vault
            .resolve(&owner, &label, req.require_valid)
            .await?;
        tracing::debug!(version = resolved.version, "credential resolved");
        Ok(Response::new(convert::resolved(
            &resolved,
            self.validator.hosts(),
        )))
    }
}

/// Each RPC, audited: its line is written before its answer leaves (see `audited`).
#[tonic::async_trait]
impl pb::credential_vault_server::CredentialVault for VaultService {
    async fn add(&self, req: Request<pb::AddRequest>) -> Result<Response<pb::AddResponse>, Status> {
        let (owner, label) = (&req.get_ref().owner, &req.get_ref().label);
        let mut audit = Audit::start(&self.audit, "Add", &req, owner, label);
        if req.get_ref().validate && !req.get_ref().test_recipient.is_empty() {
            audit.event.test_recipient = Some(req.get_ref().test_recipient.clone());
        }
        let result = self.add_rpc(req, &mut audit.event).await;
        audit.finish(result).await
    }

    async fn validate(
        &self,
        req: Request<pb::ValidateRequest>,
    ) -> Result<Response<pb::ValidateResponse>, Status> {
        let (owner, label) = (&req.get_ref().owner, &req.get_ref().label);
        let mut audit = Audit::start(&self.audit, "Validate", &req, owner, label);
        if !req.get_ref().test_recipient.is_empty() {
            audit.event.test_recipient = Some(req.get_ref().test_recipient.clone());
        }
        let result = self.validate_rpc(req, &mut audit.event).await;
        audit.finish(result).await
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let mut audit = Audit::start(&self.audit, "List", &req, &req.get_ref().owner, "");
        let result = self.list_rpc(req, &mut audit.event).await;
        audit.finish(result).await
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let (owner, label) = (&req.get_ref().owner, &req.get_ref().label);
        let mut audit = Audit::start(&self.audit, "Delete", &req, owner, label);
        let result = self.delete_rpc(req, &mut audit.event).await;
        audit.finish(result).await
    }

    async fn resolve(
        &self,
        req: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        let (owner, label) = (&req.get_ref().owner, &req.get_ref().label);
        let mut audit = Audit::start(&self.audit, "Resolve", &req, owner, label);
        let result = self.resolve_rpc(req, &mut audit.event).await;
        audit.finish(result).await
    }
}
