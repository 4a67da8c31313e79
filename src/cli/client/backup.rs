//! `credvault backup --out FILE`: streams a running server's backup into FILE (0600, never over
//! an existing file), verifies its checksum, and only then gives it its name.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use credvault::proto::v1 as pb;

use super::output::Output;
use super::{failed, ClientArgs, Exit};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    credvault backup --out credvault-$(date +%F).backup\n\n\
    The file holds the records still encrypted and the keyring sealed by the root key: keep the\n\
    root key elsewhere. Restore with `credvault restore --in FILE` into an empty data dir.")]
pub struct BackupArgs {
    /// Where to write the backup (refused if it exists)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: BackupArgs) -> Exit {
    if args.out.exists() {
        eprintln!(
            "credvault: {} exists; backup never overwrites a file",
            args.out.display()
        );
        return Exit::Usage;
    }
    let partial = partial_path(&args.out);
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
    {
        Ok(file) => file,
        Err(e) => {
            eprintln!("credvault: cannot create {}: {e}", partial.display());
            return Exit::Usage;
        }
    };
    let result = stream_into(&args, &mut file).await;
    let verified = result.and_then(|()| {
        file.sync_all().map_err(|e| io_failed(&partial, &e))?;
        let bytes = std::fs::read(&partial).map_err(|e| io_failed(&partial, &e))?;
        credvault::backup::verify(&bytes).map_err(|e| {
            eprintln!("credvault: the backup received does not verify: {e}");
            Exit::Failure
        })
    });
    let verified = match verified {
        Ok(v) => v,
        Err(exit) => {
            let _ = std::fs::remove_file(&partial);
            return exit;
        }
    };
    if let Err(e) = std::fs::rename(&partial, &args.out) {
        let _ = std::fs::remove_file(&partial);
        return io_failed(&args.out, &e);
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    let snap = &verified.snapshot;
    let sha = hex(&verified.sha256);
    let taken = humantime::format_rfc3339_micros(snap.created_at).to_string();
    match args.client.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "path": args.out.display().to_string(),
                "records": snap.records.len(),
                "keyringVersion": snap.keyring_version,
                "takenAt": taken,
                "sha256": sha,
            })
        ),
        Output::Table => println!(
            "backup of {} credential(s) written to {} (taken {taken}, keyring version {}); sha256 {sha}",
            snap.records.len(),
            args.out.display(),
            snap.keyring_version
        ),
    }
    Exit::Ok
}

async fn stream_into(args: &BackupArgs, file: &mut std::fs::File) -> Result<(), Exit> {
    let mut admin = args.client.admin().await?;
    let mut stream = admin
        .backup(pb::BackupRequest {})
        .await
        .map_err(|s| failed(&s))?
        .into_inner();
    loop {
        match stream.message().await {
            Ok(Some(chunk)) => file
                .write_all(&chunk.data)
                .map_err(|e| io_failed(&args.out, &e))?,
            Ok(None) => return Ok(()),
            Err(status) => return Err(failed(&status)),
        }
    }
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

fn io_failed(path: &Path, e: &std::io::Error) -> Exit {
    eprintln!("credvault: writing {}: {e}", path.display());
    Exit::Failure
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
