//! `credvault serve`: harden the process, read the config, listen, serve until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// Flags override the `CREDVAULT_*` environment.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// gRPC listen address [env: CREDVAULT_LISTEN; default: 127.0.0.1:50051]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Data dir (the store and, by default, the master key) [env: CREDVAULT_DATA_DIR; default:
    /// ./credvault-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

pub async fn run(args: ServeArgs) -> ExitCode {
    if let Err(e) = credvault::process::harden() {
        return fail(&format!(
            "cannot harden the process (core dumps, ptrace): {e}"
        ));
    }
    let mut config = match credvault::Config::from_env() {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    let listener = match TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", config.listen)),
    };
    match credvault::serve(listener, config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    tracing::error!("{e}");
    ExitCode::FAILURE
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
