//! `credvault.v1.Admin`: key management. Every RPC needs the `admin` scope and every owner, and
//! is audited like the vault's.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::audited::{Audit, Wipe};
use super::authz::authorize;
use crate::audit::{AuditLog, Event};
use crate::auth::{Access, Scope};
use crate::proto::v1 as pb;
use crate::vault::{KeyInfo, KeyState, RewrapProgress, RewrapState, Vault};

/// The owner an admin caller must be allowed: all of them (`owners = ["*"]`).
const ALL_OWNERS: &str = "*";

pub struct AdminService {
    vault: Arc<Vault>,
    access: Arc<Access>,
    audit: AuditLog,
}

impl AdminService {
    pub fn new(vault: Arc<Vault>, access: Arc<Access>, audit: AuditLog) -> Self {
        Self {
            vault,
            access,
            audit,
        }
    }

    fn admit<T>(&self, event: &mut Event, req: &Request<T>) -> Result<(), Status> {
        authorize(&self.access, event, req, Scope::Admin, ALL_OWNERS).map(drop)
    }

    async fn status_rpc(
        &self,
        req: Request<pb::GetKeyStatusRequest>,
        event: &mut Event,
    ) -> Result<Response<pb::KeyStatus>, Status> {
        self.admit(event, &req)?;
        let status = self.vault.key_status().await?;
        Ok(Response::new(pb::KeyStatus {
            keyring_version: status.keyring_version,
            active_key_id: status.active,
            root_key_fingerprint: status.root_key.clone(),
            keys: status
                .keys
                .iter()
                .map(|k| data_key(k, status.records.get(&k.id).copied().unwrap_or(0)))
                .collect(),
        }))
    }

    async fn rotate_rpc(
        &self,
        req: Request<pb::RotateDataKeyRequest>,
        event: &mut Event,
    ) -> Result<Response<pb::RotateDataKeyResponse>, Status> {
        self.admit(event, &req)?;
        let (active, keyring_version) = self.vault.rotate_key().await?;
        Ok(Response::new(pb::RotateDataKeyResponse {
            active: Some(data_key(&active, 0)),
            keyring_version,
        }))
    }

    async fn rotate_root_rpc(
        &self,
        req: Request<pb::RotateRootKeyRequest>,
        event: &mut Event,
    ) -> Result<Response<pb::RotateRootKeyResponse>, Status> {
        self.admit(event, &req)?;
        let bytes = zeroize::Zeroizing::new(req.into_inner().new_root_key);
        let (keyring_version, root, previous) = self.vault.rotate_root(&bytes).await?;
        Ok(Response::new(pb::RotateRootKeyResponse {
            keyring_version,
            root_key_fingerprint: root,
            previous_root_key_fingerprint: previous,
        }))
    }

    async fn start_rewrap_rpc(
        &self,
        req: Request<pb::StartRewrapRequest>,
        event: &mut Event,
    ) -> Result<Response<pb::RewrapStatus>, Status> {
        self.admit(event, &req)?;
        let progress = self.vault.start_rewrap().await?;
        Ok(Response::new(rewrap_status(progress)))
    }

    async fn backup_rpc(
        &self,
        req: Request<pb::BackupRequest>,
        event: &mut Event,
    ) -> Result<Response<BackupStream>, Status> {
        self.admit(event, &req)?;
        let snapshot = self.vault.snapshot().await?;
        tracing::info!(
            records = snapshot.records.len(),
            keyring_version = snapshot.keyring_version,
            "backup taken; streaming it"
        );
        let chunks = crate::backup::Encoder::new(snapshot).map(|data| Ok(pb::BackupChunk { data }));
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn retire_rpc(
        &self,
        req: Request<pb::RetireDataKeyRequest>,
        event: &mut Event,
    ) -> Result<Response<pb::RetireDataKeyResponse>, Status> {
        self.admit(event, &req)?;
        let (retired, keyring_version) = self.vault.retire_key(req.get_ref().id).await?;
        Ok(Response::new(pb::RetireDataKeyResponse {
            retired: Some(data_key(&retired, 0)),
            keyring_version,
        }))
    }
}

fn rewrap_status(p: RewrapProgress) -> pb::RewrapStatus {
    let (state, error) = match p.state {
        RewrapState::Idle => (pb::RewrapState::Idle, String::new()),
        RewrapState::Running => (pb::RewrapState::Running, String::new()),
        RewrapState::Done => (pb::RewrapState::Done, String::new()),
        RewrapState::Failed(reason) => (pb::RewrapState::Failed, reason),
    };
    pb::RewrapStatus {
        state: state as i32,
        target_key_id: p.target,
        total: p.total,
        done: p.done,
        rewrapped: p.rewrapped,
        unreadable: p.unreadable,
        records_per_second: p.rate,
        eta: p.eta.and_then(|d| prost_types::Duration::try_from(d).ok()),
        started_at: p.started_at.map(prost_types::Timestamp::from),
        finished_at: p.finished_at.map(prost_types::Timestamp::from),
        error,
    }
}

fn data_key(k: &KeyInfo, records: u64) -> pb::DataKey {
    pb::DataKey {
        id: k.id,
        created_at: Some(prost_types::Timestamp::from(k.created_at)),
        state: match k.state {
            KeyState::Active => pb::DataKeyState::Active,
            KeyState::DecryptOnly => pb::DataKeyState::DecryptOnly,
            KeyState::Retired => pb::DataKeyState::Retired,
        } as i32,
        encryptions: k.encryptions,
        records,
    }
}

impl Wipe for pb::KeyStatus {}
impl Wipe for pb::RotateDataKeyResponse {}
impl Wipe for pb::RetireDataKeyResponse {}
impl Wipe for pb::RewrapStatus {}
impl Wipe for pb::RotateRootKeyResponse {}
impl Wipe for BackupStream {}

/// The backup file, in chunks.
pub type BackupStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::BackupChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    type BackupStream = BackupStream;

    async fn backup(
        &self,
        req: Request<pb::BackupRequest>,
    ) -> Result<Response<BackupStream>, Status> {
        let mut audit = Audit::start(&self.audit, "Backup", &req, "", "");
        let result = self.backup_rpc(req, &mut audit.event).await;
        audit.finish(result).await
    }

    async fn get_key_status(
        &self,
        req: Request<pb::GetKeyStatusRequest>,
    ) -> Result<Response<pb::KeyStatus>, Status> {
        let mut audit = Audit::start(&self.audit, "GetKeyStatus", &req, "", "");
        let result = self.status_rpc(req, &mut audit.event).await;
        audit.finish(result).await
    }

    async fn rotate_data_key(
        &self,
        req: Request<pb::RotateDataKeyRequest>,
    ) -> Result<Response<pb::RotateDataKeyResponse>, Status> {
        let mut audit = Audit::start(&self.audit, "RotateDataKey", &req, "", "");
        let result = self.rotate_rpc(req, &mut audit.event).await;
        audit.finish(result).await
    }

    async fn retire_data_key(
        &self,
        req: Request<pb::RetireDataKeyRequest>,
    ) -> Result<Response<pb::RetireDataKeyResponse>, Status> {
        let mut audit = Audit::start(&self.audit, "RetireDataKey", &req, "", "");
        let result = self.retire_rpc(req, &mut audit.event).await;
        audit.finish(result).await
    }

    async fn rotate_root_key(
        &self,
        req: Request<pb::RotateRootKeyRequest>,
    ) -> Result<Response<pb::RotateRootKeyResponse>, Status> {
        let mut audit = Audit::start(&self.audit, "RotateRootKey", &req, "", "");
        let result = self.rotate_root_rpc(req, &mut audit.event).await;
        audit.finish(result).await
    }

    async fn start_rewrap(
        &self,
        req: Request<pb::StartRewrapRequest>,
    ) -> Result<Response<pb::RewrapStatus>, Status> {
        let mut audit = Audit::start(&self.audit, "StartRewrap", &req, "", "");
        let result = self.start_rewrap_rpc(req, &mut audit.event).await;
        audit.finish(result).await
    }

    async fn get_rewrap_status(
        &self,
        req: Request<pb::GetRewrapStatusRequest>,
    ) -> Result<Response<pb::RewrapStatus>, Status> {
        let mut audit = Audit::start(&self.audit, "GetRewrapStatus", &req, "", "");
        let result = self
            .admit(&mut audit.event, &req)
            .map(|()| Response::new(rewrap_status(self.vault.rewrap_progress())));
        audit.finish(result).await
    }
}
