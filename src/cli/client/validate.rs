//! `credvault validate OWNER LABEL`: check a credential against Twilio; exit 8 if Twilio
//! rejects it, so `credvault validate acme prod && send` does what it reads as.

use credvault::proto::v1::ValidateRequest;

use super::output::{self, Output};
use super::{failed, ClientArgs, Exit};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    credvault validate acme prod\n  \
    credvault validate acme prod --test-recipient +14155550123 --test-message 'hello from credvault'")]
pub struct ValidateArgs {
    pub owner: String,
    pub label: String,
    /// Also send a test SMS to this E.164 number (rate limited per credential and recipient)
    #[arg(long, value_name = "NUMBER")]
    pub test_recipient: Option<String>,
    /// The test SMS's text (at most 320 characters)
    #[arg(long, value_name = "TEXT", requires = "test_recipient")]
    pub test_message: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: ValidateArgs) -> Exit {
    let mut vault = match args.client.vault().await {
        Ok(vault) => vault,
        Err(exit) => return exit,
    };
    let request = ValidateRequest {
        owner: args.owner,
        label: args.label,
        test_recipient: args.test_recipient.unwrap_or_default(),
        test_message_body: args.test_message.unwrap_or_default(),
    };
    let reply = match vault.validate(request).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return failed(&status),
    };
    let result = reply.result.clone().unwrap_or_default();
    match args.client.output {
        Output::Json => println!("{}", output::json(&reply, "ValidateResponse")),
        Output::Table => print!("{}", output::fields(&output::validation_fields(&result))),
    }
    if result.valid {
        Exit::Ok
    } else {
        Exit::CredentialInvalid
    }
}
