//! The stored form of a credential: plaintext metadata (for List, which never decrypts) plus the
//! sealed credential (authoritative for Resolve). Encoded with protobuf so fields can be added.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use zeroize::{Zeroize, Zeroizing};

use crate::domain::{
    AccountSid, ApiKeySid, Auth, AuthKind, Credential, Label, MessagingServiceSid, Metadata, Owner,
    PhoneNumber, Secret, Sender, SenderInfo, ValidationState, ValidationStatus, WriteId,
};

/// Key of a credential: `cred/{owner}/{label}`. Neither part can contain '/', so keys are
/// unambiguous and one owner's credentials form one prefix, ordered by label.
pub fn key(owner: &Owner, label: &Label) -> Vec<u8> {
    key_with(owner, label.as_str().as_bytes())
}

pub fn owner_prefix(owner: &Owner) -> Vec<u8> {
    key_with(owner, b"")
}

/// One exact-size allocation: this runs on every Resolve (`format!` showed up in its profile).
fn key_with(owner: &Owner, label: &[u8]) -> Vec<u8> {
    let owner = owner.as_str().as_bytes();
    let mut k = Vec::with_capacity(PREFIX.len() + owner.len() + 1 + label.len());
    k.extend_from_slice(PREFIX);
    k.extend_from_slice(owner);
    k.push(b'/');
    k.extend_from_slice(label);
    k
}

/// Every credential's key starts with this.
pub const PREFIX: &[u8] = b"cred/";

#[derive(Clone, PartialEq, Message)]
pub struct StoredRecord {
    #[prost(string, tag = "1")]
    pub account_sid: String,
    /// 1 = auth token, 2 = API key.
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
    /// 1 = unvalidated, 2 = valid, 3 = invalid.
    #[prost(uint32, tag = "10")]
    pub validation_state: u32,
    #[prost(uint64, tag = "11")]
    pub checked_at_micros: u64,
    #[prost(int32, tag = "12")]
    pub twilio_error_code: i32,
    #[prost(string, tag = "13")]
    pub validation_message: String,
    /// Envelope of a `SealedCredential`.
    #[prost(bytes = "vec", tag = "14")]
    pub sealed: Vec<u8>,
    /// The write that stored this credential (see `WriteId`); empty in records written before
    /// write ids existed.
    #[prost(bytes = "vec", tag = "15")]
    pub write_id: Vec<u8>,
}

/// The plaintext inside the envelope. Its strings are wiped when it is dropped.
#[derive(Clone, PartialEq, Message)]
pub struct SealedCredential {
    #[prost(string, tag = "1")]
    pub account_sid: String,
    #[prost(string, tag = "2")]
    pub auth_token: String,
    #[prost(string, tag = "3")]
    pub api_key_sid: String,
    #[prost(string, tag = "4")]
    pub api_key_secret: String,
    #[prost(string, tag = "5")]
    pub messaging_service_sid: String,
    #[prost(string, tag = "6")]
    pub from_number: String,
}

impl Drop for SealedCredential {
    fn drop(&mut self) {
        self.auth_token.zeroize();
        self.api_key_secret.zeroize();
    }
}

/// Why stored bytes could not be turned back into a credential.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Undecodable(pub &'static str);

impl SealedCredential {
    /// Encodes `cred` into a buffer that is wiped on drop.
    pub fn encode(cred: &Credential) -> Zeroizing<Vec<u8>> {
        let mut sealed = SealedCredential::default();
        sealed.account_sid = cred.account_sid.as_str().to_owned();
        match &cred.auth {
            Auth::AuthToken(token) => sealed.auth_token = token.expose().to_owned(),
            Auth::ApiKey { sid, secret } => {
                sealed.api_key_sid = sid.as_str().to_owned();
                sealed.api_key_secret = secret.expose().to_owned();
            }
        }
        match &cred.sender {
            Sender::MessagingService(sid) => sealed.messaging_service_sid = sid.as_str().to_owned(),
            Sender::FromNumber(n) => sealed.from_number = n.as_str().to_owned(),
        }
        Zeroizing::new(sealed.encode_to_vec())
    }

    /// Decodes an opened envelope. The parsers run again: a record that decrypts but does not
    /// parse is as corrupt as one that does not decrypt.
    pub fn decode_credential(plain: &[u8]) -> Result<Credential, Undecodable> {
        let mut s = SealedCredential::decode(plain).map_err(|_| Undecodable("not a credential"))?;
        let bad = |_| Undecodable("stored credential breaks a field rule");
        let auth = if !s.auth_token.is_empty() {
            Auth::AuthToken(Secret::from_stored(&mut s.auth_token))
        } else {
            Auth::ApiKey {
                sid: ApiKeySid::parse(&s.api_key_sid).map_err(bad)?,
                secret: Secret::from_stored(&mut s.api_key_secret),
            }
        };
        let sender = if !s.messaging_service_sid.is_empty() {
            Sender::MessagingService(
                MessagingServiceSid::parse(&s.messaging_service_sid).map_err(bad)?,
            )
        } else {
            Sender::FromNumber(PhoneNumber::parse(&s.from_number).map_err(bad)?)
        };
        Ok(Credential {
            account_sid: AccountSid::parse(&s.account_sid).map_err(bad)?,
            auth,
            sender,
        })
    }
}

impl StoredRecord {
    pub fn new(
        cred: &Credential,
        sealed: Vec<u8>,
        write_id: WriteId,
        version: u64,
        created: SystemTime,
        now: SystemTime,
    ) -> Self {
        let (auth_kind, api_key_sid) = match &cred.auth {
            Auth::AuthToken(_) => (1, String::new()),
            Auth::ApiKey { sid, .. } => (2, sid.as_str().to_owned()),
        };
        let (messaging_service_sid, from_number) = match &cred.sender {
            Sender::MessagingService(sid) => (sid.as_str().to_owned(), String::new()),
            Sender::FromNumber(n) => (String::new(), n.as_str().to_owned()),
        };
        let mut record = Self {
            account_sid: cred.account_sid.as_str().to_owned(),
            auth_kind,
            api_key_sid,
            messaging_service_sid,
            from_number,
            secret_hint: cred.password().hint(),
            created_at_micros: micros(created),
            updated_at_micros: micros(now),
            version,
            sealed,
            write_id: write_id.0.to_vec(),
            ..Default::default()
        };
        record.set_validation(&ValidationStatus::unvalidated());
        record
    }

    pub fn set_validation(&mut self, v: &ValidationStatus) {
        self.validation_state = match v.state {
            ValidationState::Unvalidated => 1,
            ValidationState::Valid => 2,
            ValidationState::Invalid => 3,
        };
        self.checked_at_micros = v.checked_at.map_or(0, micros);
        self.twilio_error_code = v.twilio_error_code;
        self.validation_message = v.message.clone();
    }

    pub fn decode_bytes(bytes: &[u8]) -> Result<Self, Undecodable> {
        Self::decode(bytes).map_err(|_| Undecodable("record does not decode"))
    }

    /// The write id; for a record written before write ids existed, the first 16 bytes of its
    /// envelope's nonce, which are as random and as unique per write.
    pub fn write_id(&self) -> WriteId {
        let mut id = [0; 16];
        if let Ok(stored) = <[u8; 16]>::try_from(self.write_id.as_slice()) {
            id = stored;
        } else if let Some(nonce) = self.sealed.get(5..21) {
            id.copy_from_slice(nonce);
        }
        WriteId(id)
    }

    pub fn created_at(&self) -> SystemTime {
        from_micros(self.created_at_micros)
    }

    pub fn validation_state(&self) -> ValidationState {
        match self.validation_state {
            2 => ValidationState::Valid,
            3 => ValidationState::Invalid,
            _ => ValidationState::Unvalidated,
        }
    }

    pub fn metadata(&self, owner: &Owner, label: &Label) -> Result<Metadata, Undecodable> {
        let auth_kind = match self.auth_kind {
            1 => AuthKind::AuthToken,
            2 => AuthKind::ApiKey,
            _ => return Err(Undecodable("unknown auth kind")),
        };
        let sender = if !self.messaging_service_sid.is_empty() {
            SenderInfo::MessagingServiceSid(self.messaging_service_sid.clone())
        } else {
            SenderInfo::FromNumber(self.from_number.clone())
        };
        let state = self.validation_state();
        Ok(Metadata {
            owner: owner.clone(),
            label: label.clone(),
            account_sid: self.account_sid.clone(),
            auth_kind,
            api_key_sid: (auth_kind == AuthKind::ApiKey).then(|| self.api_key_sid.clone()),
            sender,
            secret_hint: self.secret_hint.clone(),
            created_at: from_micros(self.created_at_micros),
            updated_at: from_micros(self.updated_at_micros),
            version: self.version,
            write_id: self.write_id(),
            validation: ValidationStatus {
                state,
                checked_at: (self.checked_at_micros != 0)
                    .then(|| from_micros(self.checked_at_micros)),
                twilio_error_code: self.twilio_error_code,
                message: self.validation_message.clone(),
            },
        })
    }
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn from_micros(m: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_layout() {
        let owner = Owner::parse("acme").unwrap();
        assert_eq!(
            key(&owner, &Label::parse("prod").unwrap()),
            b"cred/acme/prod"
        );
        assert_eq!(owner_prefix(&owner), b"cred/acme/");
    }

    proptest! {
        /// Stored bytes may be damaged: decoding a record, deriving its metadata and decoding
        /// an opened envelope give a value or an error, never a panic.
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let owner = Owner::parse("o").unwrap();
            let label = Label::parse("l").unwrap();
            if let Ok(rec) = StoredRecord::decode_bytes(&bytes) {
                let _ = rec.metadata(&owner, &label);
            }
            let _ = SealedCredential::decode_credential(&bytes);
        }

        #[test]
        fn credentials_round_trip(body in "[0-9a-f]{32}", api_key in any::<bool>()) {
            let auth = if api_key {
                Auth::ApiKey {
                    sid: ApiKeySid::parse(&format!("SK{body}")).unwrap(),
                    secret: Secret::parse_api_key_secret(&body).unwrap(),
                }
            } else {
                Auth::AuthToken(Secret::parse_auth_token(&body).unwrap())
            };
            let cred = Credential {
                account_sid: AccountSid::parse(&format!("AC{body}")).unwrap(),
                auth,
                sender: Sender::MessagingService(MessagingServiceSid::parse(&format!("MG{body}")).unwrap()),
            };
            let back = SealedCredential::decode_credential(&SealedCredential::encode(&cred)).unwrap();
            prop_assert_eq!(back.account_sid.as_str(), cred.account_sid.as_str());
            prop_assert_eq!(back.password().expose(), cred.password().expose());
            prop_assert_eq!(back.username(), cred.username());
            prop_assert_eq!(&back.sender, &cred.sender);
        }
    }
}
