//! `credvault audit verify FILE...`: checks the audit chain through the files, oldest first.

use std::path::PathBuf;

use super::exit::Exit;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check that no audit line was edited, removed, inserted or reordered.
    #[command(after_help = "Examples:\n  \
        credvault audit verify credvault-data/audit.log\n  \
        # rotated files oldest first, and a chain head the server logged, to catch a cut tail\n  \
        credvault audit verify audit.log.1 audit.log.2 audit.log --head 3f2a...\n\n\
        Exit 0 when the chain holds (it prints the lines, the first line's anchor and the head),\n\
        1 when it breaks (naming the file and line), 2 when a file cannot be read.")]
    Verify {
        /// Audit files, oldest first
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A chain head from the server's log: it must be in the files
        #[arg(long, value_name = "SHA256")]
        head: Option<String>,
    },
}

pub fn run(command: AuditCommand) -> Exit {
    let AuditCommand::Verify { files, head } = command;
    match credvault::audit::verify(&files, head.as_deref()) {
        Ok(v) => {
            let from = if v.anchor == credvault::audit::GENESIS {
                "the start of the chain".to_string()
            } else {
                format!("anchor {} (earlier files not given)", v.anchor)
            };
            println!("ok: {} lines from {from}; head {}", v.lines, v.head);
            Exit::Ok
        }
        Err(e @ credvault::audit::VerifyError::Io { .. }) => {
            eprintln!("credvault: {e}");
            Exit::Usage
        }
        Err(e) => {
            eprintln!("audit chain broken: {e}");
            Exit::Failure
        }
    }
}
