//! `credvault keys status|rotate|retire|rewrap|rotate-root`: the keyring, over the Admin service (an `admin` caller of
//! every owner; the bootstrap admin token is one).

use credvault::proto::v1::{self as pb, DataKeyState};

use super::output::{self, Output};
use super::{failed, ClientArgs, Exit};

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// The keyring: every data key's id, state, encryption count and records, and the active key.
    #[command(after_help = "Example:\n  credvault keys status")]
    Status(KeysArgs),
    /// Make a new data key active; new writes use it at once, old records stay readable.
    #[command(after_help = "Example:\n  credvault keys rotate && credvault keys status")]
    Rotate(KeysArgs),
    /// Destroy a data key for good, once no record uses it (exit 7 with the count otherwise).
    #[command(after_help = "Example:\n  credvault keys retire 1")]
    Retire(RetireArgs),
    /// Re-encrypt every record to the active data key in the background, following its progress
    /// (the server keeps serving; a restart resumes it).
    #[command(
        after_help = "Example:\n  credvault keys rotate && credvault keys rewrap && credvault keys retire 1"
    )]
    Rewrap(super::rewrap::RewrapArgs),
    /// Reseal the keyring under a new root key, atomically; then start the server with that key
    /// file and destroy the old one.
    #[command(
        name = "rotate-root",
        after_help = "Example:\n  credvault keys rotate-root --new-root-key-file /etc/credvault/root-2.key\n\n\
            The file is made (32 random bytes, mode 0600) when it does not exist. The key is sent to\n\
            the server: use TLS, or run this on the server's machine over loopback."
    )]
    RotateRoot(RotateRootArgs),
}

#[derive(Debug, clap::Args)]
pub struct RotateRootArgs {
    /// The new root key file: 32 bytes, mode 0600 or 0400 (made when it does not exist)
    #[arg(long, value_name = "FILE")]
    pub new_root_key_file: std::path::PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct RetireArgs {
    /// The data key's id (see `credvault keys status`).
    pub id: u32,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(command: KeysCommand) -> Exit {
    match command {
        KeysCommand::Status(args) => status(args).await,
        KeysCommand::Rotate(args) => rotate(args).await,
        KeysCommand::Retire(args) => retire(args).await,
        KeysCommand::Rewrap(args) => super::rewrap::run(args).await,
        KeysCommand::RotateRoot(args) => rotate_root(args).await,
    }
}

async fn retire(args: RetireArgs) -> Exit {
    let mut admin = match args.client.admin().await {
        Ok(admin) => admin,
        Err(exit) => return exit,
    };
    let request = pb::RetireDataKeyRequest { id: args.id };
    match admin.retire_data_key(request).await {
        Ok(reply) => {
            let reply = reply.into_inner();
            match args.client.output {
                Output::Json => println!("{}", output::json(&reply, "RetireDataKeyResponse")),
                Output::Table => println!(
                    "data key {} is retired (keyring version {}); its material is gone",
                    args.id, reply.keyring_version
                ),
            }
            Exit::Ok
        }
        Err(status) => failed(&status),
    }
}

async fn status(args: KeysArgs) -> Exit {
    let mut admin = match args.client.admin().await {
        Ok(admin) => admin,
        Err(exit) => return exit,
    };
    match admin.get_key_status(pb::GetKeyStatusRequest {}).await {
        Ok(reply) => {
            let reply = reply.into_inner();
            match args.client.output {
                Output::Json => println!("{}", output::json(&reply, "KeyStatus")),
                Output::Table => {
                    println!(
                        "keyring version {}, active key {}, root key {}",
                        reply.keyring_version, reply.active_key_id, reply.root_key_fingerprint
                    );
                    let rows: Vec<_> = reply.keys.iter().map(key_row).collect();
                    print!(
                        "{}",
                        output::table(
                            &["KEY", "STATE", "CREATED", "ENCRYPTIONS", "RECORDS"],
                            &rows
                        )
                    );
                }
            }
            Exit::Ok
        }
        Err(status) => failed(&status),
    }
}

async fn rotate(args: KeysArgs) -> Exit {
    let mut admin = match args.client.admin().await {
        Ok(admin) => admin,
        Err(exit) => return exit,
    };
    match admin.rotate_data_key(pb::RotateDataKeyRequest {}).await {
        Ok(reply) => {
            let reply = reply.into_inner();
            match args.client.output {
                Output::Json => println!("{}", output::json(&reply, "RotateDataKeyResponse")),
                Output::Table => println!(
                    "data key {} is active (keyring version {}); records sealed with older keys stay readable",
                    reply.active.map_or(0, |k| k.id),
                    reply.keyring_version
                ),
            }
            Exit::Ok
        }
        Err(status) => failed(&status),
    }
}

async fn rotate_root(args: RotateRootArgs) -> Exit {
    let path = &args.new_root_key_file;
    let existed = path.exists();
    let key = match credvault::crypto::load_or_create(path, true) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("credvault: {e}");
            return Exit::Usage;
        }
    };
    if !existed {
        eprintln!("wrote a new root key to {}", path.display());
    }
    let mut admin = match args.client.admin().await {
        Ok(admin) => admin,
        Err(exit) => return exit,
    };
    let request = pb::RotateRootKeyRequest {
        new_root_key: key.expose_secret().to_vec(),
    };
    let result = admin.rotate_root_key(request).await;
    match result {
        Ok(reply) => {
            let reply = reply.into_inner();
            match args.client.output {
                Output::Json => println!("{}", output::json(&reply, "RotateRootKeyResponse")),
                Output::Table => println!(
                    "keyring resealed under root key {} (keyring version {}; it was {}).\n\
                     From now on start the server with this key file: store.master_key_file = \"{}\"\n\
                     (CREDVAULT_MASTER_KEY_FILE), or move it over the old one; then destroy the old key.",
                    reply.root_key_fingerprint,
                    reply.keyring_version,
                    reply.previous_root_key_fingerprint,
                    path.display()
                ),
            }
            Exit::Ok
        }
        Err(status) => failed(&status),
    }
}

fn key_row(k: &pb::DataKey) -> Vec<String> {
    let state = match k.state() {
        DataKeyState::Active => "active",
        DataKeyState::DecryptOnly => "decrypt-only",
        DataKeyState::Retired => "retired",
        DataKeyState::Unspecified => "?",
    };
    vec![
        k.id.to_string(),
        state.into(),
        k.created_at
            .as_ref()
            .map_or_else(|| "-".into(), |t| t.to_string()),
        k.encryptions.to_string(),
        k.records.to_string(),
    ]
}
