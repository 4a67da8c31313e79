//! `credvault delete OWNER LABEL`: erase a credential, irreversibly.

use credvault::proto::v1::DeleteRequest;

use super::output::{self, Output};
use super::{failed, ClientArgs, Exit};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  credvault delete acme prod        # exit 3 if there is none")]
pub struct DeleteArgs {
    pub owner: String,
    pub label: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: DeleteArgs) -> Exit {
    let mut vault = match args.client.vault().await {
        Ok(vault) => vault,
        Err(exit) => return exit,
    };
    let request = DeleteRequest {
        owner: args.owner.clone(),
        label: args.label.clone(),
    };
    match vault.delete(request).await {
        Ok(reply) => {
            let reply = reply.into_inner();
            match args.client.output {
                Output::Json => println!("{}", output::json(&reply, "DeleteResponse")),
                Output::Table => println!(
                    "deleted {}/{} (version {})",
                    args.owner, args.label, reply.version
                ),
            }
            Exit::Ok
        }
        Err(status) => failed(&status),
    }
}
