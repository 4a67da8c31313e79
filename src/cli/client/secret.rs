//! Where `add` gets the auth token or API key secret: never argv, which shell history and `ps`
//! show. A no-echo prompt on a terminal, or stdin, or a file; the text lives in a zeroizing
//! `SecretString` until the request is built.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use secrecy::SecretString;
use zeroize::Zeroizing;

use super::Exit;

#[derive(Debug, Clone, clap::Args)]
pub struct SecretArgs {
    /// Read the auth token or API key secret from stdin (one line; the newline is dropped)
    #[arg(long, conflicts_with = "secret_file")]
    pub secret_stdin: bool,
    /// Read the auth token or API key secret from this file (a trailing newline is dropped)
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

impl SecretArgs {
    /// The secret, or a printed error. `what` names it in the prompt ("Auth token").
    pub fn read(&self, what: &str) -> Result<SecretString, Exit> {
        let text = if let Some(path) = &self.secret_file {
            let mut text = Zeroizing::new(String::new());
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .map_err(|e| {
                    usage(&format!(
                        "cannot read --secret-file {}: {e}",
                        path.display()
                    ))
                })?;
            text
        } else if self.secret_stdin || !std::io::stdin().is_terminal() {
            if !self.secret_stdin {
                return Err(usage(
                    "stdin is not a terminal: pass --secret-stdin to read the secret from it, or --secret-file",
                ));
            }
            let mut text = Zeroizing::new(String::new());
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| usage(&format!("cannot read the secret from stdin: {e}")))?;
            text
        } else {
            Zeroizing::new(
                rpassword::prompt_password(format!("{what}: ")).map_err(|e| {
                    usage(&format!("cannot read the secret from the terminal: {e}"))
                })?,
            )
        };
        let secret = text.trim_end_matches(['\r', '\n']);
        if secret.is_empty() {
            return Err(usage(&format!("{what} is empty")));
        }
        Ok(SecretString::from(secret))
    }
}

fn usage(message: &str) -> Exit {
    eprintln!("credvault: {message}");
    Exit::Usage
}
