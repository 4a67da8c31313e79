//! `credvault token create`: a new caller token, printed once on stdout, and the `[[callers]]`
//! block to paste into the config on stderr (holding only the token's SHA-256).

use credvault::auth::token::{self, TokenHash};
use credvault::auth::CallerSpec;
use secrecy::ExposeSecret;

use super::exit::Exit;

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token for a new caller.
    #[command(after_help = "Examples:\n  \
        credvault token create --name sender --scope resolve --owner acme > sender.token\n  \
        credvault token create --name ops --scope list --scope write --owner 'gov.sg:*' \\\n      \
        --test-recipient '+65*'\n\n\
        The token goes to stdout (once: only its SHA-256 is kept); the [[callers]] block for the\n\
        config file goes to stderr.")]
    Create(CreateArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The caller's name, as logs and the audit log show it
    #[arg(long)]
    pub name: String,
    /// A scope: list, write (Add, Delete), validate, resolve, admin (repeat for more)
    #[arg(long = "scope", required = true, value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// An owner, or a prefix ending in `*` ("gov.sg:*"; "*" for all) (repeat for more)
    #[arg(long = "owner", required = true, value_name = "OWNER")]
    pub owners: Vec<String>,
    /// Allow test SMS only to this E.164 number or prefix ("+65*") (repeat for more)
    #[arg(long = "test-recipient", value_name = "NUMBER")]
    pub test_recipients: Vec<String>,
}

pub fn run(command: TokenCommand) -> Exit {
    let TokenCommand::Create(args) = command;
    let token = match token::generate() {
        Ok(token) => token,
        Err(e) => {
            eprintln!("credvault: no randomness for a token: {e}");
            return Exit::Failure;
        }
    };
    let spec = CallerSpec {
        name: args.name,
        token_sha256: Some(TokenHash::of_secret(&token).hex()),
        cert_identity: None,
        scopes: args.scopes,
        owners: args.owners,
        test_recipients: (!args.test_recipients.is_empty()).then_some(args.test_recipients),
    };
    let caller = match spec.check() {
        Ok(caller) => caller,
        Err(e) => {
            eprintln!("credvault: {e}");
            return Exit::Usage;
        }
    };
    println!("{}", token.expose_secret());
    eprint!(
        "# Add this caller to the config file (the token above is shown once; only its SHA-256 is kept):{}",
        credvault::config::render_caller(&caller)
    );
    Exit::Ok
}
