//! `credvault add OWNER LABEL`: store a credential, optionally validating it first.

use credvault::proto::v1::{
    twilio_credential::{Auth, Sender},
    AddRequest, ApiKey, AuthToken, TwilioCredential,
};
use secrecy::ExposeSecret;

use super::output::{self, Output};
use super::secret::SecretArgs;
use super::{failed, ClientArgs, Exit};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    # the auth token is prompted for, without echo\n  \
    credvault add acme prod --account-sid AC0123456789abcdef0123456789abcdef \\\n      \
    --messaging-service-sid MG0123456789abcdef0123456789abcdef\n  \
    # an API key, its secret from a file, validated before it is stored\n  \
    credvault add acme prod --account-sid AC... --api-key-sid SK... --secret-file key.txt \\\n      \
    --from +14155550100 --validate\n  \
    # from a script: the secret on stdin\n  \
    printf '%s' \"$TOKEN\" | credvault add acme prod --account-sid AC... --from +14155550100 --secret-stdin")]
pub struct AddArgs {
    /// The tenant or user the credential belongs to
    pub owner: String,
    /// Unique per owner: 1-50 characters of [a-z0-9-]
    pub label: String,
    /// Twilio Account SID (AC...)
    #[arg(long, value_name = "SID")]
    pub account_sid: String,
    /// Authenticate with this API key (SK...); its secret is read as the secret. Without it, the
    /// secret is the account's auth token
    #[arg(long, value_name = "SID")]
    pub api_key_sid: Option<String>,
    /// Send through this Messaging Service (MG...)
    #[arg(
        long,
        value_name = "SID",
        required_unless_present = "from",
        conflicts_with = "from"
    )]
    pub messaging_service_sid: Option<String>,
    /// Send from this E.164 number (+14155550100)
    #[arg(long, value_name = "NUMBER")]
    pub from: Option<String>,
    /// The Twilio Region the credential was created in: us1 (the default), ie1 or au1
    #[arg(
        long,
        value_name = "REGION",
        default_value = "",
        hide_default_value = true
    )]
    pub region: String,
    /// The edge location its requests take (default: the Region's own, e.g. dublin for ie1)
    #[arg(
        long,
        value_name = "EDGE",
        default_value = "",
        hide_default_value = true
    )]
    pub edge: String,
    /// Overwrite an existing credential under this label (its version is bumped)
    #[arg(long)]
    pub replace: bool,
    /// Validate against Twilio first; nothing is stored if Twilio rejects it
    #[arg(long)]
    pub validate: bool,
    /// With --validate: also send a test SMS to this E.164 number
    #[arg(long, value_name = "NUMBER", requires = "validate")]
    pub test_recipient: Option<String>,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: AddArgs) -> Exit {
    let what = if args.api_key_sid.is_some() {
        "API key secret"
    } else {
        "Auth token"
    };
    let secret = match args.secret.read(what) {
        Ok(secret) => secret,
        Err(exit) => return exit,
    };
    let auth = match args.api_key_sid {
        Some(api_key_sid) => Auth::ApiKey(ApiKey {
            api_key_sid,
            api_key_secret: secret.expose_secret().to_owned(),
        }),
        None => Auth::AuthToken(AuthToken {
            auth_token: secret.expose_secret().to_owned(),
        }),
    };
    let sender = match (args.messaging_service_sid, args.from) {
        (Some(sid), _) => Sender::MessagingServiceSid(sid),
        (None, Some(number)) => Sender::FromNumber(number),
        (None, None) => unreachable!("clap requires one"),
    };
    let request = AddRequest {
        owner: args.owner,
        label: args.label,
        credential: Some(TwilioCredential {
            account_sid: args.account_sid,
            auth: Some(auth),
            sender: Some(sender),
            region: args.region,
            edge: args.edge,
        }),
        replace: args.replace,
        validate: args.validate,
        test_recipient: args.test_recipient.unwrap_or_default(),
    };
    let mut vault = match args.client.vault().await {
        Ok(vault) => vault,
        Err(exit) => return exit,
    };
    let reply = match vault.add(request).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return failed(&status),
    };
    match args.client.output {
        Output::Json => println!("{}", output::json(&reply, "AddResponse")),
        Output::Table => {
            let m = reply.credential.unwrap_or_default();
            print!(
                "{}",
                output::table(output::METADATA_HEADER, &[output::metadata_row(&m)])
            );
            if let Some(v) = &reply.validation {
                print!("{}", output::fields(&output::validation_fields(v)));
            }
        }
    }
    Exit::Ok
}
