//! `credvault restore --in FILE`: a backup into the configured store (the server's config, as
//! `serve` reads it), which must be empty. Run it with the server stopped.

use std::path::PathBuf;

use super::exit::Exit;
use super::logs;
use super::serve::{self, ServeArgs};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    credvault restore --in credvault-2026-12-01.backup --data-dir ./credvault-restored\n  \
    credvault restore --in backup.cvb --config /etc/credvault.toml\n\n\
    The root key file (store.master_key_file) must be the one of the store the backup was taken\n\
    from. Nothing is written unless the checksum matches, that key opens the backup's keyring and\n\
    the target store is empty.")]
pub struct RestoreArgs {
    /// The backup file (`credvault backup --out`)
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    #[command(flatten)]
    pub serve: ServeArgs,
}

pub async fn run(args: RestoreArgs, log_format: Option<String>) -> Exit {
    let loaded = match serve::load(args.serve, log_format) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("credvault: {e}");
            return Exit::Usage;
        }
    };
    logs::init(loaded.config.log_format);
    let config = loaded.config;
    if let Err(e) = credvault::process::harden() {
        eprintln!("credvault: cannot harden the process (core dumps, ptrace): {e}");
        return Exit::Failure;
    }
    match credvault::restore(&config, &args.input).await {
        Ok(r) => {
            println!(
                "restored {} credential(s) into {} from {} (taken {} by credvault {}); keyring version {}, new active data key {}",
                r.records,
                config.data_dir.display(),
                args.input.display(),
                humantime::format_rfc3339_micros(r.taken_at),
                r.written_by,
                r.keyring_version,
                r.active_key
            );
            if r.unreadable > 0 {
                eprintln!(
                    "warning: {} record(s) were unreadable in the backup's source already; restored as they are (DATA_LOSS)",
                    r.unreadable
                );
            }
            Exit::Ok
        }
        Err(e) => {
            eprintln!("credvault: {e}");
            if e.is_not_empty() {
                Exit::FailedPrecondition
            } else {
                Exit::Failure
            }
        }
    }
}
