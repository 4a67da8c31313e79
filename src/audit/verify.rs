//! `credvault audit verify`: walks the chain through files in order. An edited, removed,
//! inserted or reordered line breaks it at the next line; a line cut from the end is caught by
//! `--head`, a chain head the server logged (at start, every few minutes, at rotation and stop).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::log::{hex, GENESIS};

#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub lines: u64,
    /// The `prev` of the first line: [`GENESIS`] for a chain read from its start.
    pub anchor: String,
    pub head: String,
    /// Whether `--head` was found.
    pub head_found: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file} line {line}: not an audit line ({reason})")]
    Malformed {
        file: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{file} line {line}: the chain breaks here: a line before it was edited, removed, inserted or reordered (prev {found}, expected {expected})")]
    Broken {
        file: PathBuf,
        line: u64,
        found: String,
        expected: String,
    },
    #[error("the chain head {0} is not in these files: lines were cut from the end, or the last one was edited")]
    HeadMissing(String),
}

pub fn verify(files: &[PathBuf], head: Option<&str>) -> Result<Verified, VerifyError> {
    let mut last: Option<String> = None;
    let mut anchor = None;
    let mut lines = 0;
    let mut head_found = head.map(|_| false);
    for file in files {
        let io = |source| VerifyError::Io {
            file: file.clone(),
            source,
        };
        let reader = BufReader::new(std::fs::File::open(file).map_err(io)?);
        for (i, line) in reader.split(b'\n').enumerate() {
            let line = line.map_err(io)?;
            let number = i as u64 + 1;
            let prev = prev_of(file, number, &line)?;
            match &last {
                None => anchor = Some(prev),
                Some(expected) if *expected != prev => {
                    return Err(VerifyError::Broken {
                        file: file.clone(),
                        line: number,
                        found: prev,
                        expected: expected.clone(),
                    })
                }
                Some(_) => {}
            }
            let hash = hex(&Sha256::digest(&line));
            if head.is_some_and(|h| h.eq_ignore_ascii_case(&hash)) {
                head_found = Some(true);
            }
            last = Some(hash);
            lines += 1;
        }
    }
    if let (Some(h), Some(false)) = (head, head_found) {
        return Err(VerifyError::HeadMissing(h.to_owned()));
    }
    Ok(Verified {
        lines,
        anchor: anchor.unwrap_or_else(|| GENESIS.to_owned()),
        head: last.unwrap_or_else(|| GENESIS.to_owned()),
        head_found,
    })
}

fn prev_of(file: &Path, line: u64, text: &[u8]) -> Result<String, VerifyError> {
    let malformed = |reason: String| VerifyError::Malformed {
        file: file.to_owned(),
        line,
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| malformed(e.to_string()))?;
    value["prev"]
        .as_str()
        .filter(|p| p.len() == 64)
        .map(str::to_owned)
        .ok_or_else(|| malformed("no 64-hex-digit `prev`".into()))
}
