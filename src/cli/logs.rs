//! Logs on stderr: text for people (ANSI colours only when stderr is a terminal and `NO_COLOR` is
//! unset, so files and journald get plain lines), or one JSON object per line for collectors.

use std::io::IsTerminal;

use credvault::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// The server's subscriber; the filter is `RUST_LOG` (default `info`).
pub fn init(format: LogFormat) {
    install(format, "info");
}

/// A client command's: only warnings and errors, unless `RUST_LOG` says otherwise; its results go
/// to stdout, its own errors are printed, not logged.
pub fn init_client(format: Option<&str>) {
    let format = match format {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Text,
    };
    install(format, "warn");
}

fn install(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(ansi).init();
        }
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
