//! The gRPC edge: the vault service, health and server reflection (v1 and v1alpha).

mod admin;
mod audited;
mod authz;
mod convert;
mod status;
mod vault;

use std::sync::Arc;

use tonic::service::Routes;
use tonic_health::server::HealthReporter;

use crate::audit::AuditLog;
use crate::auth::Access;
use crate::proto::v1::admin_server::AdminServer;
use crate::proto::{self, v1::credential_vault_server::CredentialVaultServer};
use crate::store::Health;
use crate::twilio::TwilioClient;
use crate::vault::{Validator, Vault};
use crate::Config;
pub use admin::AdminService;
pub use vault::VaultService;

/// Full proto name of the vault service, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "credvault.v1.CredentialVault";

/// Every service credvault serves, and the health reporter to flip at shutdown.
pub async fn routes(
    vault: Arc<Vault>,
    twilio: TwilioClient,
    access: Arc<Access>,
    audit: AuditLog,
    config: &Config,
) -> Result<(Routes, HealthReporter), tonic_reflection::server::Error> {
    let max_request_bytes = config.limits.max_request_bytes;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<CredentialVaultServer<VaultService>>()
        .await;

    // Each reflection build registers only its own descriptor: register every served file so
    // `grpcurl list` shows all services, whichever reflection version the client speaks, and
    // google.rpc error details (BadRequest, ErrorInfo) so grpcurl can print them.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };

    let validator = Validator::new(vault.clone(), twilio, config);
    let admin_service = AdminServer::new(AdminService::new(
        vault.clone(),
        access.clone(),
        audit.clone(),
    ))
    .max_decoding_message_size(max_request_bytes);
    let vault_service =
        CredentialVaultServer::new(VaultService::new(vault, validator, access, audit))
            .max_decoding_message_size(max_request_bytes);
    // transport::limit holds every service to the size limit first (as RESOURCE_EXHAUSTED);
    // tonic's own limit is the backstop, the same for all of them (not its 4 MiB default).
    let routes = Routes::new(vault_service)
        .add_service(admin_service)
        .add_service(health_service.max_decoding_message_size(max_request_bytes))
        .add_service(
            reflection()
                .build_v1()?
                .max_decoding_message_size(max_request_bytes),
        )
        .add_service(
            reflection()
                .build_v1alpha()?
                .max_decoding_message_size(max_request_bytes),
        );
    Ok((routes, health))
}

/// Every service NOT_SERVING: at shutdown, and while the store takes no writes.
pub async fn set_not_serving(health: &HealthReporter) {
    for service in ["", SERVICE_NAME] {
        health
            .set_service_status(service, tonic_health::ServingStatus::NotServing)
            .await;
    }
}

/// Turns health NOT_SERVING when the store fails (it never recovers without a restart), so load
/// balancers and orchestrators move callers elsewhere.
pub async fn follow_store_health(
    mut store: tokio::sync::watch::Receiver<Health>,
    health: HealthReporter,
) {
    loop {
        // The current value first: the store may have failed before this task started.
        let now = store.borrow_and_update().clone();
        match now {
            Health::Failed(_) | Health::Unavailable(_) => set_not_serving(&health).await,
            // Back from Unavailable (a fail-stop store never comes back).
            Health::Serving => {
                for service in ["", SERVICE_NAME] {
                    health
                        .set_service_status(service, tonic_health::ServingStatus::Serving)
                        .await;
                }
            }
        }
        if store.changed().await.is_err() {
            return;
        }
    }
}

/// Resolve, List, health and reflection: the reads logged at DEBUG (a span per Resolve at INFO
/// cost 0.03-0.07 of the Resolve/health ratio, BENCHMARKS.md). Writes and Validate log at INFO.
pub fn is_hot_read(path: &str) -> bool {
    matches!(
        path,
        "/credvault.v1.CredentialVault/Resolve" | "/credvault.v1.CredentialVault/List"
    ) || path.starts_with("/grpc.")
}
