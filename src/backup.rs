//! The backup file: one consistent snapshot of a store, independent of the backend, so a backup
//! of the sled store restores into etcd (the migration path).
//!
//! ```text
//! "CVBACKUP"                      8 bytes of magic
//! Header                          length-delimited protobuf: format, time, the sealed keyring,
//!                                 the record count
//! Record x count                  length-delimited: the record's key and its sealed value, as
//!                                 stored (still encrypted)
//! Trailer                         length-delimited: the SHA-256 of every byte before it
//! ```
//!
//! Nothing here is decrypted: the file holds what the store holds (owner and label names in the
//! clear, everything else sealed), and is useless without the root key. Knows no store and no
//! crypto; `vault` makes and restores snapshots.

use std::time::SystemTime;

use prost::Message;
use sha2::{Digest, Sha256};

use crate::domain::{from_unix_micros, unix_micros};

pub const MAGIC: &[u8; 8] = b"CVBACKUP";
/// The format this release writes (and the only one it reads).
pub const FORMAT: u32 = 1;
/// Bytes per chunk the encoder hands out (and so per streamed message).
const CHUNK: usize = 64 * 1024;

#[derive(Clone, PartialEq, prost::Message)]
struct HeaderProto {
    #[prost(uint32, tag = "1")]
    format: u32,
    #[prost(uint64, tag = "2")]
    created_at_micros: u64,
    /// The credvault version that wrote it.
    #[prost(string, tag = "3")]
    written_by: String,
    /// The keyring as stored: sealed by the root key.
    #[prost(bytes = "vec", tag = "4")]
    keyring: Vec<u8>,
    #[prost(uint64, tag = "5")]
    keyring_version: u64,
    #[prost(uint64, tag = "6")]
    records: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RecordProto {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TrailerProto {
    #[prost(bytes = "vec", tag = "1")]
    sha256: Vec<u8>,
}

/// A snapshot: the sealed keyring and every record, as stored.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub created_at: SystemTime,
    pub written_by: String,
    pub keyring: Vec<u8>,
    pub keyring_version: u64,
    /// (key, sealed value), in key order.
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A file verified whole: its snapshot and its checksum.
#[derive(Debug, Clone)]
pub struct Verified {
    pub snapshot: Snapshot,
    pub sha256: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    #[error("not a credvault backup (it does not start with the backup header)")]
    NotABackup,
    #[error("backup format {0} is not one this release reads (it reads format {FORMAT})")]
    UnknownFormat(u32),
    #[error("the backup is cut short (no complete trailer): an interrupted copy?")]
    Truncated,
    #[error("the backup's SHA-256 does not match its trailer: the file was altered or damaged")]
    Checksum,
    #[error("the backup does not decode ({0})")]
    Malformed(&'static str),
}

/// Hands out a snapshot's file in chunks of about 64 KiB, checksum last.
pub struct Encoder {
    hash: Sha256,
    header: Option<Vec<u8>>,
    records: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    trailer_done: bool,
}

impl Encoder {
    pub fn new(snapshot: Snapshot) -> Self {
        let header = HeaderProto {
            format: FORMAT,
            created_at_micros: unix_micros(snapshot.created_at),
            written_by: snapshot.written_by,
            keyring: snapshot.keyring,
            keyring_version: snapshot.keyring_version,
            records: snapshot.records.len() as u64,
        };
        let mut first = MAGIC.to_vec();
        header
            .encode_length_delimited(&mut first)
            .expect("a Vec grows");
        Self {
            hash: Sha256::new(),
            header: Some(first),
            records: snapshot.records.into_iter(),
            trailer_done: false,
        }
    }
}

impl Iterator for Encoder {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.trailer_done {
            return None;
        }
        let mut chunk = self.header.take().unwrap_or_default();
        while chunk.len() < CHUNK {
            let Some((key, value)) = self.records.next() else {
                break;
            };
            RecordProto { key, value }
                .encode_length_delimited(&mut chunk)
                .expect("a Vec grows");
        }
        self.hash.update(&chunk);
        if chunk.len() < CHUNK {
            // The records are all out: the trailer closes this chunk.
            let sha256 = self.hash.clone().finalize().to_vec();
            TrailerProto { sha256 }
                .encode_length_delimited(&mut chunk)
                .expect("a Vec grows");
            self.trailer_done = true;
        }
        Some(chunk)
    }
}

/// The whole file, as [`Encoder`] hands it out.
pub fn encode(snapshot: Snapshot) -> Vec<u8> {
    Encoder::new(snapshot).flatten().collect()
}

/// Checks a whole file (magic, format, every frame, the checksum) and decodes it.
pub fn verify(bytes: &[u8]) -> Result<Verified, BackupError> {
    let body = bytes.strip_prefix(MAGIC).ok_or(BackupError::NotABackup)?;
    let mut rest = body;
    let header = HeaderProto::decode_length_delimited(&mut rest).map_err(|_| truncated(rest))?;
    if header.format != FORMAT {
        return Err(BackupError::UnknownFormat(header.format));
    }
    let count = usize::try_from(header.records).map_err(|_| BackupError::Malformed("count"))?;
    // A count no file of this size could hold is damage, not a reason to allocate.
    let mut records = Vec::with_capacity(count.min(rest.len() / 2));
    for _ in 0..count {
        let r = RecordProto::decode_length_delimited(&mut rest).map_err(|_| truncated(rest))?;
        records.push((r.key, r.value));
    }
    let covered = bytes.len() - rest.len();
    let trailer = TrailerProto::decode_length_delimited(&mut rest).map_err(|_| truncated(rest))?;
    if !rest.is_empty() {
        return Err(BackupError::Malformed("bytes after the trailer"));
    }
    let sha256: [u8; 32] = Sha256::digest(&bytes[..covered]).into();
    if trailer.sha256 != sha256 {
        return Err(BackupError::Checksum);
    }
    Ok(Verified {
        snapshot: Snapshot {
            created_at: from_unix_micros(header.created_at_micros),
            written_by: header.written_by,
            keyring: header.keyring,
            keyring_version: header.keyring_version,
            records,
        },
        sha256,
    })
}

/// A frame that did not decode: at the end of the file the copy was cut short; elsewhere a
/// damaged length or body, which the checksum would reject as well.
fn truncated(rest: &[u8]) -> BackupError {
    if rest.is_empty() {
        BackupError::Truncated
    } else {
        BackupError::Checksum
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn snapshot(n: usize) -> Snapshot {
        Snapshot {
            created_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            written_by: "test".into(),
            keyring: vec![7; 90],
            keyring_version: 4,
            records: (0..n)
                .map(|i| (format!("cred/o/l{i:05}").into_bytes(), vec![i as u8; 300]))
                .collect(),
        }
    }

    #[test]
    fn a_file_round_trips_in_chunks() {
        for n in [0, 1, 500, 5000] {
            let chunks: Vec<Vec<u8>> = Encoder::new(snapshot(n)).collect();
            assert!(
                chunks.iter().all(|c| c.len() <= CHUNK + 400),
                "chunks stay small"
            );
            let file: Vec<u8> = chunks.concat();
            let v = verify(&file).unwrap();
            assert_eq!(v.snapshot.records, snapshot(n).records);
            assert_eq!(v.snapshot.keyring, vec![7; 90]);
            assert_eq!(v.snapshot.keyring_version, 4);
            assert_eq!(
                v.sha256.as_slice(),
                &Sha256::digest(&file[..file.len() - 35])[..]
            );
        }
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let file = encode(snapshot(3));
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert!(verify(&bad).is_err(), "flipped byte {i} accepted");
        }
        for len in 0..file.len() {
            assert!(verify(&file[..len]).is_err(), "cut at {len} accepted");
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(verify(&longer).is_err());
        assert_eq!(verify(b"hello").unwrap_err(), BackupError::NotABackup);
    }
}
