//! `credvault serve`: harden the process, read the config, listen, serve until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use credvault::config::{Loaded, Sources};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use super::exit::Exit;
use super::logs;

/// Flags override the config file and the `CREDVAULT_*` environment.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeArgs {
    /// TOML config file [env: CREDVAULT_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// gRPC listen address [env: CREDVAULT_LISTEN; file: server.listen; default: 127.0.0.1:50051]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Data dir (the store and, by default, the master key) [env: CREDVAULT_DATA_DIR; file:
    /// store.data_dir; default: ./credvault-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The settings `credvault serve` would run with (also what `config check` shows).
pub fn load(
    args: ServeArgs,
    log_format: Option<String>,
) -> Result<Loaded, credvault::config::ConfigError> {
    let mut sources = Sources::from_process(args.config);
    if let Some(listen) = args.listen {
        sources.flags.push(("server.listen", listen.to_string()));
    }
    if let Some(dir) = args.data_dir {
        sources
            .flags
            .push(("store.data_dir", dir.display().to_string()));
    }
    if let Some(format) = log_format {
        sources.flags.push(("log.format", format));
    }
    sources.load()
}

pub async fn run(args: ServeArgs, log_format: Option<String>) -> Exit {
    let loaded = match load(args.clone(), log_format.clone()) {
        Ok(loaded) => loaded,
        Err(e) => {
            // Logging is configured by the config that just failed: say it plainly.
            eprintln!("credvault: {e}");
            return Exit::Usage;
        }
    };
    logs::init(loaded.config.log_format);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let config = loaded.config;
    if let Err(e) = credvault::process::harden() {
        return fail(&format!(
            "cannot harden the process (core dumps, ptrace): {e}"
        ));
    }
    let listener = match TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", config.listen)),
    };
    let reloads = match reload_on_sighup(args, log_format) {
        Ok(reloads) => reloads,
        Err(e) => return fail(&format!("cannot install the SIGHUP handler: {e}")),
    };
    match credvault::serve_reloading(listener, config, shutdown_signal(), reloads).await {
        Ok(()) => Exit::Ok,
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> Exit {
    tracing::error!("{e}");
    Exit::Failure
}

/// On SIGHUP, the config read again as at start (file, environment, flags). A broken one is
/// logged and not sent: the config in force stays.
fn reload_on_sighup(
    args: ServeArgs,
    log_format: Option<String>,
) -> std::io::Result<watch::Receiver<Option<credvault::Config>>> {
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reading the config again");
            match load(args.clone(), log_format.clone()) {
                Ok(loaded) => {
                    for warning in &loaded.warnings {
                        tracing::warn!("{warning}");
                    }
                    if tx.send(Some(loaded.config)).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::error!("config reload failed, the config in force stays: {e}"),
            }
        }
    });
    Ok(rx)
}

async fn shutdown_signal() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
