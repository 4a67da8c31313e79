//! `credvault resolve OWNER LABEL`: the auth a service needs to call Twilio. The table hides the
//! secret (it shows the hint) unless `--show-secrets`; JSON is for scripts and carries it.

use credvault::proto::v1::{resolve_response, ResolveRequest, ResolveResponse};
use zeroize::Zeroize;

use super::output::{self, Output};
use super::{failed, ClientArgs, Exit};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    credvault resolve acme prod                        # the secret hidden\n  \
    credvault resolve acme prod --show-secrets\n  \
    credvault resolve acme prod -o json | jq -r .password\n  \
    credvault resolve acme prod --require-valid        # exit 7 unless last validated VALID")]
pub struct ResolveArgs {
    pub owner: String,
    pub label: String,
    /// Fail (exit 7) unless the credential's last validation was VALID
    #[arg(long)]
    pub require_valid: bool,
    /// Print the auth token or API key secret in the table
    #[arg(long)]
    pub show_secrets: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: ResolveArgs) -> Exit {
    let mut vault = match args.client.vault().await {
        Ok(vault) => vault,
        Err(exit) => return exit,
    };
    let request = ResolveRequest {
        owner: args.owner,
        label: args.label,
        require_valid: args.require_valid,
    };
    let mut reply = match vault.resolve(request).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return failed(&status),
    };
    match args.client.output {
        Output::Json => {
            let mut text = output::json(&reply, "ResolveResponse");
            println!("{text}");
            text.zeroize();
        }
        Output::Table => print!("{}", output::fields(&table(&reply, args.show_secrets))),
    }
    reply.wipe_secrets();
    Exit::Ok
}

fn table(r: &ResolveResponse, show_secrets: bool) -> Vec<(&'static str, String)> {
    let auth = match &r.auth {
        Some(resolve_response::Auth::ApiKey(key)) => format!("api-key {}", key.api_key_sid),
        _ => "auth-token".into(),
    };
    let sender = match &r.sender {
        Some(resolve_response::Sender::MessagingServiceSid(sid)) => sid.clone(),
        Some(resolve_response::Sender::FromNumber(number)) => number.clone(),
        None => String::new(),
    };
    let password = if show_secrets {
        r.password.clone()
    } else {
        hidden(&r.password)
    };
    vec![
        ("account", r.account_sid.clone()),
        ("auth", auth),
        ("sender", sender),
        ("version", r.version.to_string()),
        ("region", r.region.clone()),
        ("api base url", r.api_base_url.clone()),
        ("messaging base url", r.messaging_base_url.clone()),
        ("username", r.username.clone()),
        ("password", password),
    ]
}

/// The same hint List shows: the last four characters of a secret of 16 or more.
fn hidden(secret: &str) -> String {
    let n = secret.chars().count();
    if n < 16 {
        return "(hidden; --show-secrets prints it)".into();
    }
    let tail: String = secret.chars().skip(n - 4).collect();
    format!("...{tail} (hidden; --show-secrets prints it)")
}
