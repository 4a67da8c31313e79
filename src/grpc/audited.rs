//! Every CredentialVault RPC ends with its audit line: allowed or denied, its code and duration.
//! The reply waits for the line; if it cannot be written the RPC fails with UNAVAILABLE and a
//! Resolve's secrets are wiped, so nothing leaves unaudited.

use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::audit::{code_name, AuditLog, Event};
use crate::proto::v1 as pb;
use crate::transport::{ConnInfo, RequestId};

/// One RPC's audit line in the making.
pub(super) struct Audit<'a> {
    log: &'a AuditLog,
    pub event: Event,
    started: Instant,
}

impl<'a> Audit<'a> {
    pub fn start<T>(
        log: &'a AuditLog,
        method: &'static str,
        req: &Request<T>,
        owner: &str,
        label: &str,
    ) -> Self {
        let ext = req.extensions();
        Self {
            log,
            event: Event {
                request_id: ext
                    .get::<RequestId>()
                    .map(|id| id.as_str().to_owned())
                    .unwrap_or_default(),
                peer: ext.get::<ConnInfo>().map(|c| c.peer.to_string()),
                method,
                owner: owner.to_owned(),
                label: label.to_owned(),
                ..Event::default()
            },
            started: Instant::now(),
        }
    }

    /// The RPC's answer, once its line is written.
    pub async fn finish<R: Wipe>(
        mut self,
        result: Result<Response<R>, Status>,
    ) -> Result<Response<R>, Status> {
        self.event.code = code_name(match &result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        });
        self.event.duration = self.started.elapsed();
        if let Some(m) = crate::metrics::get() {
            m.rpc(self.event.method, self.event.code, self.event.duration);
        }
        match self.log.record(self.event).await {
            Ok(()) => result,
            Err(e) => {
                if let Ok(mut response) = result {
                    response.get_mut().wipe();
                }
                Err(Status::unavailable(e.to_string()))
            }
        }
    }
}

/// Replies whose secrets are wiped when they are not sent.
pub(super) trait Wipe {
    fn wipe(&mut self) {}
}

impl Wipe for pb::AddResponse {}
impl Wipe for pb::ValidateResponse {}
impl Wipe for pb::ListResponse {}
impl Wipe for pb::DeleteResponse {}

impl Wipe for pb::ResolveResponse {
    fn wipe(&mut self) {
        self.wipe_secrets();
    }
}
