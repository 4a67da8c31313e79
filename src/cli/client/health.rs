//! `credvault health`: grpc.health.v1 Check of the vault service; exit 0 when SERVING, else 1.

use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use super::output::Output;
use super::{failed, ClientArgs, Exit};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    credvault health                                   # SERVING, exit 0\n  \
    credvault health --addr http://10.0.0.5:50051 --timeout 2s")]
pub struct HealthArgs {
    /// The service to ask about ("" for the server as a whole)
    #[arg(long, default_value = "credvault.v1.CredentialVault")]
    pub service: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: HealthArgs) -> Exit {
    let channel = match args.client.channel().await {
        Ok(channel) => channel,
        Err(exit) => return exit,
    };
    let request = HealthCheckRequest {
        service: args.service,
    };
    let status = match HealthClient::new(channel).check(request).await {
        Ok(reply) => reply.into_inner().status(),
        Err(status) => {
            failed(&status);
            // NOT_FOUND (an unknown service) is "not healthy" too: a health check is 0 or 1.
            return Exit::Failure;
        }
    };
    let name = status.as_str_name();
    match args.client.output {
        Output::Json => println!("{}", serde_json::json!({ "status": name })),
        Output::Table => println!("{name}"),
    }
    if status == ServingStatus::Serving {
        Exit::Ok
    } else {
        Exit::Failure
    }
}
