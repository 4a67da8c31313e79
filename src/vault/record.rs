//! The stored form of a credential (`RecordBody`, sealed whole), encoded with protobuf so fields
//! can be added. The first release's form lives in `v1.rs`, read only by the upgrade.

use std::time::SystemTime;

use prost::Message;
use zeroize::{Zeroize, Zeroizing};

use crate::domain::{
    from_unix_micros, unix_micros, AccountSid, ApiKeySid, Auth, AuthKind, Credential, Edge,
    KeyType, Label, Location, MessagingServiceSid, Metadata, Owner, PhoneNumber, Region, Secret,
    Sender, SenderInfo, ValidationState, ValidationStatus, WriteId,
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

/// Owner and label of a credential's key (`None`: not one of `key`'s).
pub fn parse_key(key: &[u8]) -> Option<(Owner, Label)> {
    let rest = std::str::from_utf8(key.strip_prefix(PREFIX)?).ok()?;
    let (owner, label) = rest.split_once('/')?;
    Some((Owner::parse(owner).ok()?, Label::parse(label).ok()?))
}

/// Every credential's key starts with this.
pub const PREFIX: &[u8] = b"cred/";

/// A credential as stored since key management: metadata and secret together, sealed whole
/// under a data key (the envelope's key id names it) with the record's key in the AAD. So the
/// data dir shows owner and label names only, and an edited, swapped or half-replaced record
/// fails to open. Its secret strings are wiped when it is dropped; its `Debug` shows none.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct RecordBody {
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
    /// The write that stored this credential (see `WriteId`).
    #[prost(bytes = "vec", tag = "15")]
    pub write_id: Vec<u8>,
    #[prost(string, tag = "16")]
    pub auth_token: String,
    #[prost(string, tag = "17")]
    pub api_key_secret: String,
    /// The Twilio Region; empty (every record written before Regions) is us1.
    #[prost(string, tag = "18")]
    pub region: String,
    /// The edge given at Add; empty is the Region's default.
    #[prost(string, tag = "19")]
    pub edge: String,
    /// 0 = not told, 1 = main, 2 = standard, 3 = restricted, 4 = unknown.
    #[prost(uint32, tag = "20")]
    pub key_type: u32,
}

impl Drop for RecordBody {
    fn drop(&mut self) {
        self.auth_token.zeroize();
        self.api_key_secret.zeroize();
    }
}

impl std::fmt::Debug for RecordBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBody")
            .field("version", &self.version)
            .field("secret", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// Why stored bytes could not be turned back into a credential.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Undecodable(pub &'static str);

impl RecordBody {
    pub fn new(
        cred: &Credential,
        write_id: WriteId,
        version: u64,
        created: SystemTime,
        now: SystemTime,
    ) -> Self {
        let mut body = Self::default();
        body.account_sid = cred.account_sid.as_str().to_owned();
        body.secret_hint = cred.password().hint();
        body.created_at_micros = unix_micros(created);
        body.updated_at_micros = unix_micros(now);
        body.version = version;
        body.write_id = write_id.0.to_vec();
        body.region = cred.location.region.as_str().to_owned();
        body.edge = cred.location.edge.map_or("", Edge::as_str).to_owned();
        match &cred.auth {
            Auth::AuthToken(token) => {
                body.auth_kind = 1;
                body.auth_token = token.expose().to_owned();
            }
            Auth::ApiKey { sid, secret } => {
                body.auth_kind = 2;
                body.api_key_sid = sid.as_str().to_owned();
                body.api_key_secret = secret.expose().to_owned();
            }
        }
        match &cred.sender {
            Sender::MessagingService(sid) => body.messaging_service_sid = sid.as_str().to_owned(),
            Sender::FromNumber(n) => body.from_number = n.as_str().to_owned(),
        }
        body.set_validation(&ValidationStatus::unvalidated());
        body
    }

    /// The plaintext to seal, in a buffer that is wiped on drop.
    pub fn encode_plain(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.encode_to_vec())
    }

    /// Decodes an opened envelope. The field rules run again when the credential is built: a
    /// record that decrypts but does not parse is as corrupt as one that does not decrypt.
    pub fn decode_plain(plain: &[u8]) -> Result<Self, Undecodable> {
        Self::decode(plain).map_err(|_| Undecodable("record does not decode"))
    }

    pub fn set_validation(&mut self, v: &ValidationStatus) {
        self.validation_state = match v.state {
            ValidationState::Unvalidated => 1,
            ValidationState::Valid => 2,
            ValidationState::Invalid => 3,
        };
        self.checked_at_micros = v.checked_at.map_or(0, unix_micros);
        self.twilio_error_code = v.twilio_error_code;
        self.validation_message = v.message.clone();
        self.key_type = match v.key_type {
            None => 0,
            Some(KeyType::Main) => 1,
            Some(KeyType::Standard) => 2,
            Some(KeyType::Restricted) => 3,
            Some(KeyType::Unknown) => 4,
        };
    }

    fn key_type(&self) -> Option<KeyType> {
        match self.key_type {
            1 => Some(KeyType::Main),
            2 => Some(KeyType::Standard),
            3 => Some(KeyType::Restricted),
            4 => Some(KeyType::Unknown),
            _ => None,
        }
    }

    /// Region and edge as stored; a record from before Regions has neither and is us1.
    fn location(&self) -> Result<Location, Undecodable> {
        let bad = |_| Undecodable("stored location breaks a field rule");
        Ok(Location {
            region: Region::parse(&self.region).map_err(bad)?,
            edge: Edge::parse(&self.edge).map_err(bad)?,
        })
    }

    pub fn write_id(&self) -> WriteId {
        let mut id = [0; 16];
        if let Ok(stored) = <[u8; 16]>::try_from(self.write_id.as_slice()) {
            id = stored;
        }
        WriteId(id)
    }

    pub fn created_at(&self) -> SystemTime {
        from_unix_micros(self.created_at_micros)
    }

    pub fn validation_state(&self) -> ValidationState {
        match self.validation_state {
            2 => ValidationState::Valid,
            3 => ValidationState::Invalid,
            _ => ValidationState::Unvalidated,
        }
    }

    /// The credential, its secret moved out of the body (which keeps an empty string).
    pub fn credential(&mut self) -> Result<Credential, Undecodable> {
        let bad = |_| Undecodable("stored credential breaks a field rule");
        let auth = match self.auth_kind {
            1 => Auth::AuthToken(Secret::from_stored(&mut self.auth_token)),
            2 => Auth::ApiKey {
                sid: ApiKeySid::parse(&self.api_key_sid).map_err(bad)?,
                secret: Secret::from_stored(&mut self.api_key_secret),
            },
            _ => return Err(Undecodable("unknown auth kind")),
        };
        let sender = if !self.messaging_service_sid.is_empty() {
            Sender::MessagingService(
                MessagingServiceSid::parse(&self.messaging_service_sid).map_err(bad)?,
            )
        } else {
            Sender::FromNumber(PhoneNumber::parse(&self.from_number).map_err(bad)?)
        };
        Ok(Credential {
            account_sid: AccountSid::parse(&self.account_sid).map_err(bad)?,
            auth,
            sender,
            location: self.location()?,
        })
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
            location: self.location()?,
            secret_hint: self.secret_hint.clone(),
            created_at: from_unix_micros(self.created_at_micros),
            updated_at: from_unix_micros(self.updated_at_micros),
            version: self.version,
            write_id: self.write_id(),
            validation: ValidationStatus {
                state,
                checked_at: (self.checked_at_micros != 0)
                    .then(|| from_unix_micros(self.checked_at_micros)),
                twilio_error_code: self.twilio_error_code,
                message: self.validation_message.clone(),
                key_type: self.key_type(),
            },
        })
    }
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
        let (o, l) = parse_key(b"cred/acme/prod").unwrap();
        assert_eq!((o.as_str(), l.as_str()), ("acme", "prod"));
        assert!(parse_key(b"meta/rewrap").is_none());
        assert!(parse_key(b"cred/acme").is_none());
    }

    #[test]
    fn a_record_from_before_regions_is_us1() {
        let cred = Credential {
            account_sid: AccountSid::parse(&format!("AC{}", "a".repeat(32))).unwrap(),
            auth: Auth::AuthToken(Secret::parse_auth_token(&"b".repeat(32)).unwrap()),
            sender: Sender::FromNumber(PhoneNumber::parse("+14155550100").unwrap()),
            location: Location::default(),
        };
        let mut old = RecordBody::new(
            &cred,
            WriteId([1; 16]),
            1,
            SystemTime::now(),
            SystemTime::now(),
        );
        // What the releases before Regions wrote: no fields 18-20 at all.
        old.region.clear();
        let mut back = RecordBody::decode_plain(&old.encode_plain()).unwrap();
        let (owner, label) = (Owner::parse("o").unwrap(), Label::parse("l").unwrap());
        let meta = back.metadata(&owner, &label).unwrap();
        assert_eq!(meta.location.region, Region::Us1);
        assert_eq!(meta.location.edge, None);
        assert_eq!(meta.validation.key_type, None);
        assert!(
            meta.over_privileged(),
            "an auth token is more than sending needs"
        );
        assert_eq!(back.credential().unwrap().location, Location::default());
    }

    proptest! {
        /// Opened bytes may be damaged (or written by a buggy release): decoding a body,
        /// deriving its metadata and its credential give a value or an error, never a panic.
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let owner = Owner::parse("o").unwrap();
            let label = Label::parse("l").unwrap();
            if let Ok(mut body) = RecordBody::decode_plain(&bytes) {
                let _ = body.metadata(&owner, &label);
                let _ = body.credential();
            }
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
                location: Location { region: Region::Au1, edge: Edge::parse("tokyo").unwrap() },
            };
            let body = RecordBody::new(&cred, WriteId([7; 16]), 3, SystemTime::now(), SystemTime::now());
            let mut back = RecordBody::decode_plain(&body.encode_plain()).unwrap();
            prop_assert_eq!(back.version, 3);
            prop_assert_eq!(back.write_id(), WriteId([7; 16]));
            let back = back.credential().unwrap();
            prop_assert_eq!(back.account_sid.as_str(), cred.account_sid.as_str());
            prop_assert_eq!(back.password().expose(), cred.password().expose());
            prop_assert_eq!(back.username(), cred.username());
            prop_assert_eq!(&back.sender, &cred.sender);
            prop_assert_eq!(back.location, cred.location);
        }
    }
}
