//! The upgrade from the first release's records: plaintext metadata with only the secret sealed
//! (format 1), under the master key itself, and a canary record that proved the key.
//!
//! At open, a store with the canary is upgraded in place: its master key becomes the root key
//! (the key file does not change), a keyring with a fresh data key is stored, every record is
//! re-sealed whole under that data key (compare-and-swap, so a record is either old or new,
//! never half), and the canary is removed last. A crash anywhere leaves a store the next start
//! resumes: the canary still says "not done", and old records are told from new ones by their
//! first byte (a protobuf field tag, never the envelope format byte 2).

use std::sync::Arc;

use prost::Message;
use tokio::task::JoinSet;
use zeroize::Zeroize;

use super::keys::Keys;
use super::record::{RecordBody, PREFIX};
use super::OpenError;
use crate::crypto::{LegacyCipher, FORMAT_RECORD};
use crate::store::Store;

/// Where the first release kept its key check.
pub(super) const CANARY_KEY: &[u8] = b"meta/canary";
const PAGE: usize = 256;

/// A record of the first release: metadata in the clear, the credential sealed in `sealed`.
#[derive(Clone, PartialEq, Message)]
pub struct V1Record {
    #[prost(string, tag = "1")]
    pub account_sid: String,
    #[prost(uint32, tag = "2")]
    pub auth_kind: u32,
    #[prost(string, tag = "3")]
    pub api_key_sid: String,
    #[prost(string, tag = "4")]
    pub messaging_service_sid: String,
    #[prost(string, tag = "5")]
    pub from_number: String,
    #[prost(string, tag = "6")]
    pub secret_hint: String,
    #[prost(uint64, tag = "7")]
    pub created_at_micros: u64,
    #[prost(uint64, tag = "8")]
    pub updated_at_micros: u64,
    #[prost(uint64, tag = "9")]
    pub version: u64,
    #[prost(uint32, tag = "10")]
    pub validation_state: u32,
    #[prost(uint64, tag = "11")]
    pub checked_at_micros: u64,
    #[prost(int32, tag = "12")]
    pub twilio_error_code: i32,
    #[prost(string, tag = "13")]
    pub validation_message: String,
    #[prost(bytes = "vec", tag = "14")]
    pub sealed: Vec<u8>,
    #[prost(bytes = "vec", tag = "15")]
    pub write_id: Vec<u8>,
}

/// The plaintext of a first-release envelope.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
struct V1Sealed {
    #[prost(string, tag = "1")]
    account_sid: String,
    #[prost(string, tag = "2")]
    auth_token: String,
    #[prost(string, tag = "3")]
    api_key_sid: String,
    #[prost(string, tag = "4")]
    api_key_secret: String,
    #[prost(string, tag = "5")]
    messaging_service_sid: String,
    #[prost(string, tag = "6")]
    from_number: String,
}

impl Drop for V1Sealed {
    fn drop(&mut self) {
        self.auth_token.zeroize();
        self.api_key_secret.zeroize();
    }
}

impl std::fmt::Debug for V1Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("V1Sealed([REDACTED])")
    }
}

/// Whether stored record bytes are of the first release's form.
pub(super) fn is_v1(bytes: &[u8]) -> bool {
    bytes.first() != Some(&FORMAT_RECORD)
}

/// The body of a first-release record: its metadata as it was, its credential from the sealed
/// part (which Resolve always took as authoritative).
fn convert(legacy: &LegacyCipher, key: &[u8], bytes: &[u8]) -> Result<RecordBody, String> {
    let old = V1Record::decode(bytes).map_err(|_| "record does not decode".to_owned())?;
    let plain = legacy.open(key, &old.sealed).map_err(|e| e.to_string())?;
    let mut sealed =
        V1Sealed::decode(plain.as_slice()).map_err(|_| "not a credential".to_owned())?;
    // Records written before write ids existed took the first 16 bytes of their nonce.
    let write_id = if old.write_id.len() == 16 {
        old.write_id.clone()
    } else {
        old.sealed
            .get(5..21)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    };
    let (auth_kind, api_key_sid) = if sealed.auth_token.is_empty() {
        (2, std::mem::take(&mut sealed.api_key_sid))
    } else {
        (1, String::new())
    };
    Ok(RecordBody {
        account_sid: std::mem::take(&mut sealed.account_sid),
        auth_kind,
        api_key_sid,
        messaging_service_sid: std::mem::take(&mut sealed.messaging_service_sid),
        from_number: std::mem::take(&mut sealed.from_number),
        secret_hint: old.secret_hint,
        created_at_micros: old.created_at_micros,
        updated_at_micros: old.updated_at_micros,
        version: old.version,
        validation_state: old.validation_state,
        checked_at_micros: old.checked_at_micros,
        twilio_error_code: old.twilio_error_code,
        validation_message: old.validation_message,
        write_id,
        auth_token: std::mem::take(&mut sealed.auth_token),
        api_key_secret: std::mem::take(&mut sealed.api_key_secret),
        // The first release knew no Regions: us1, the Region's default edge, no key type.
        region: String::new(),
        edge: String::new(),
        key_type: 0,
    })
}

/// Re-seals every first-release record whole under the active data key, then drops the canary.
/// Returns how many records were upgraded. A record that no longer opens is left as it is (it
/// answers DATA_LOSS, as it did before) and logged.
pub(super) async fn run(
    store: &Arc<dyn Store>,
    keys: &Keys,
    legacy: &LegacyCipher,
) -> Result<u64, OpenError> {
    let mut upgraded = 0;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.scan(PREFIX, after.as_deref(), PAGE).await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        let mut writes = JoinSet::new();
        for (key, bytes) in page {
            if !is_v1(&bytes) {
                continue;
            }
            let body = match convert(legacy, &key, &bytes) {
                Ok(body) => body,
                Err(reason) => {
                    tracing::warn!(
                        key = %String::from_utf8_lossy(&key),
                        %reason,
                        "a record of the old format does not open; left as it is (DATA_LOSS)"
                    );
                    continue;
                }
            };
            let sealed = keys
                .seal(&key, &body.encode_plain())
                .await
                .map_err(|e| OpenError::Upgrade(e.to_string()))?;
            let store = store.clone();
            // Concurrent compare-and-swaps share the store's group commit.
            writes.spawn(async move {
                store
                    .compare_and_swap(&key, &bytes, Some(sealed))
                    .await
                    .map(|swapped| (key, swapped))
            });
        }
        while let Some(done) = writes.join_next().await {
            let (key, swapped) = done.map_err(|e| OpenError::Upgrade(e.to_string()))??;
            if !swapped {
                // Nothing else writes during open: someone else holds this store.
                return Err(OpenError::Upgrade(format!(
                    "record {} changed while it was upgraded",
                    String::from_utf8_lossy(&key)
                )));
            }
            upgraded += 1;
        }
    }
    if let Some(canary) = store.get(CANARY_KEY).await? {
        store.compare_and_swap(CANARY_KEY, &canary, None).await?;
    }
    Ok(upgraded)
}
