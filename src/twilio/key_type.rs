//! What an API key may do (Twilio's Main, Standard and Restricted types), asked once its auth and
//! sender checked out, and for a Restricted key whether its policy lets it create messages.

use serde::Deserialize;

use super::checks::{
    account_url, get, lacks_permission, off_spec, parse, post, rejection, sender_field, Check,
};
use super::client::Idempotency;
use super::errors::{self, ApiErrorBody, TwilioError};
use super::{BaseUrls, Step, TwilioClient};
use crate::domain::{Credential, KeyType};

/// What an API key may do, once its auth is known good: listing the account's keys is for Main
/// keys only. Twilio answers 200 to a Main key, 401 with 20003 to a Standard key, and 70051 to a
/// Restricted key (outside its policy). An answer that tells none of these is `Unknown`: the
/// probe is advice, not a check, so only a rate limit (which the caller must honour) ends the
/// validation without a verdict.
pub(super) async fn probe(
    tw: &TwilioClient,
    cred: &Credential,
    urls: &BaseUrls,
) -> Result<KeyType, TwilioError> {
    const CALL: &str = "key type probe";
    let url = account_url(urls, cred, "/Keys.json");
    let reply = match tw
        .http
        .send(CALL, Idempotency::Safe, || {
            get(tw, cred, &url).query(&[("PageSize", "1")])
        })
        .await
    {
        Ok(reply) => reply,
        Err(e @ TwilioError::RateLimited { .. }) => return Err(e),
        Err(e) => {
            tracing::info!(error = %e, "API key type not told");
            return Ok(KeyType::Unknown);
        }
    };
    let code = ApiErrorBody::parse(&reply.body).code;
    Ok(match (reply.status.as_u16(), code) {
        (200, _) => {
            #[derive(Deserialize)]
            struct Keys {
                #[allow(dead_code)] // its presence is the check
                keys: Vec<serde::de::IgnoredAny>,
            }
            match parse::<Keys>(CALL, &reply) {
                Ok(_) => KeyType::Main,
                Err(_) => KeyType::Unknown,
            }
        }
        (_, Some(errors::KEY_LACKS_PERMISSION)) => KeyType::Restricted,
        (401, Some(errors::AUTHENTICATE)) => KeyType::Standard,
        (status, code) => {
            tracing::info!(status, code, "API key type not told by Twilio's answer");
            KeyType::Unknown
        }
    })
}

/// Whether a Restricted key's policy lets it create messages, asked without sending one: a POST
/// with the sender and no `To`, which no message can be made of. Twilio checks the key's
/// permission first (70051 without it), then the parameters (400, 21604 "A 'To' phone number is
/// required").
pub(super) async fn may_create_messages(
    tw: &TwilioClient,
    cred: &Credential,
    urls: &BaseUrls,
) -> Result<Check, TwilioError> {
    const CALL: &str = "message create permission probe";
    let url = account_url(urls, cred, "/Messages.json");
    let form = [sender_field(cred)];
    // Safe to repeat: without a recipient, nothing is created.
    let reply = tw
        .http
        .send(CALL, Idempotency::Safe, || post(tw, cred, &url).form(&form))
        .await?;
    let status = reply.status.as_u16();
    let body = ApiErrorBody::parse(&reply.body);
    if lacks_permission(body.code.unwrap_or(0), status) {
        let mut outcome = rejection(Step::KeyType, status, &body, |_, _| {
            "Restricted API key: its policy lacks Messages create, so it cannot send SMS".into()
        });
        outcome.key_type = Some(KeyType::Restricted);
        return Ok(Err(outcome));
    }
    match (status, body.code) {
        (400, Some(_)) => Ok(Ok(status)),
        _ => Err(off_spec(
            CALL,
            &reply,
            "an answer to a message without a recipient that is neither a permission refusal nor a parameter error",
        )),
    }
}
