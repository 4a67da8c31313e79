//! `credvault list OWNER`: every credential of an owner (paging through them all), or one page.

use credvault::proto::v1::ListRequest;

use super::output::{self, Output};
use super::{failed, ClientArgs, Exit};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    credvault list acme\n  \
    credvault list acme -o json | jq -r .label        # one JSON object per line\n  \
    credvault list acme --page-size 50                # one page; the next token goes to stderr")]
pub struct ListArgs {
    pub owner: String,
    /// Fetch one page of at most this many (the server caps it at 500) instead of all
    #[arg(long, value_name = "N")]
    pub page_size: Option<i32>,
    /// Fetch the page after this token (from a previous `--page-size` listing)
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: ListArgs) -> Exit {
    let mut vault = match args.client.vault().await {
        Ok(vault) => vault,
        Err(exit) => return exit,
    };
    let one_page = args.page_size.is_some() || args.page_token.is_some();
    let mut request = ListRequest {
        owner: args.owner,
        page_size: args.page_size.unwrap_or(500),
        page_token: args.page_token.unwrap_or_default(),
    };
    let mut rows = Vec::new();
    loop {
        let page = match vault.list(request.clone()).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => return failed(&status),
        };
        for m in &page.credentials {
            match args.client.output {
                // Streamed: a long listing shows up as it comes.
                Output::Json => println!("{}", output::json(m, "CredentialMetadata")),
                Output::Table => rows.push(output::metadata_row(m)),
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        if one_page {
            eprintln!("next page: --page-token {}", page.next_page_token);
            break;
        }
        request.page_token = page.next_page_token;
    }
    if args.client.output == Output::Table {
        print!("{}", output::table(output::METADATA_HEADER, &rows));
    }
    Exit::Ok
}
