//! `credvault config check [FILE]`: the effective config, as `serve` would read it, with where
//! each value came from; non-zero on any error, so it can gate a deploy.

use std::path::PathBuf;

use super::exit::Exit;
use super::serve::{self, ServeArgs};

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Check a config file and print the effective config (file < CREDVAULT_* < flags).
    #[command(after_help = "Examples:\n  \
        credvault config check /etc/credvault.toml\n  \
        CREDVAULT_CONFIG=/etc/credvault.toml credvault config check")]
    Check {
        /// The file [default: $CREDVAULT_CONFIG, else none: defaults and the environment]
        file: Option<PathBuf>,
    },
}

pub fn run(command: ConfigCommand) -> Exit {
    let ConfigCommand::Check { file } = command;
    let args = ServeArgs {
        config: file,
        ..ServeArgs::default()
    };
    match serve::load(args, None) {
        Ok(loaded) => {
            // What `serve` checks before it touches the data dir.
            if let Err(e) = credvault::twilio::TwilioClient::new(&loaded.config.twilio) {
                eprintln!("credvault: {e}");
                return Exit::Usage;
            }
            if let Err(e) = credvault::check_tls(&loaded.config) {
                eprintln!("credvault: {e}");
                return Exit::Usage;
            }
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            print!("{}", loaded.render());
            Exit::Ok
        }
        Err(e) => {
            eprintln!("credvault: {e}");
            Exit::Usage
        }
    }
}
