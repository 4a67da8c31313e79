//! Generated code for the public contract, plus redacting `Debug` for the messages that carry
//! secrets (build.rs skips their derived `Debug`).

use std::fmt;

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("credvault.v1");
}

/// Encoded descriptors of the contract and its imports, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/credvault_descriptor.bin"));

use v1::{AddRequest, ApiKey, AuthToken, ResolveResponse, RotateRootKeyRequest, TwilioCredential};

impl ResolveResponse {
    /// Zeroizes the reply's copies of the secret (the password and the auth it came from).
    pub fn wipe_secrets(&mut self) {
        use zeroize::Zeroize;
        self.password.zeroize();
        match &mut self.auth {
            Some(v1::resolve_response::Auth::AuthToken(t)) => t.auth_token.zeroize(),
            Some(v1::resolve_response::Auth::ApiKey(k)) => k.api_key_secret.zeroize(),
            None => {}
        }
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthToken")
            .field("auth_token", &"[REDACTED]")
            .finish()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("api_key_sid", &self.api_key_sid)
            .field("api_key_secret", &"[REDACTED]")
            .finish()
    }
}

impl fmt::Debug for TwilioCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioCredential")
            .field("account_sid", &self.account_sid)
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for AddRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddRequest")
            .field("owner", &self.owner)
            .field("label", &self.label)
            .field("credential", &self.credential)
            .field("replace", &self.replace)
            .field("validate", &self.validate)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ResolveResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolveResponse")
            .field("account_sid", &self.account_sid)
            .field("username", &self.username)
            .field("sender", &self.sender)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RotateRootKeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotateRootKeyRequest")
            .field("new_root_key", &"[REDACTED]")
            .finish()
    }
}

/// The sender oneofs hold no secret but lose their derived `Debug` with their message.
macro_rules! sender_debug {
    ($($oneof:path),*) => {$(
        impl fmt::Debug for $oneof {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                use $oneof as S;
                match self {
                    S::MessagingServiceSid(sid) => f.debug_tuple("MessagingServiceSid").field(sid).finish(),
                    S::FromNumber(number) => f.debug_tuple("FromNumber").field(number).finish(),
                }
            }
        }
    )*};
}
sender_debug!(v1::twilio_credential::Sender, v1::resolve_response::Sender);
