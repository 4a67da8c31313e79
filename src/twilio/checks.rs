//! The checks themselves, with the request and response shapes of Twilio's OpenAPI specs
//! (`FetchAccount`, `ListMessage`, `FetchService`, `ListIncomingPhoneNumber`, `ListKey`,
//! `CreateMessage`). Every request goes to the credential's Region (`BaseUrls`).
//!
//! Fail closed: a credential is VALID only on replies the spec describes, and INVALID only on
//! Twilio's own rejections (401/403/404 with its error body, an account or sender that does not
//! check out). Anything else is a [`TwilioError`]: the outcome is unknown and nothing is recorded.

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::client::{Idempotency, Reply};
use super::errors::{self, ApiErrorBody, TwilioError};
use super::key_type;
use super::{BaseUrls, Outcome, Step, TestMessage, TwilioClient};
use crate::domain::{Auth, Credential, KeyType, MessageSid, Region, Sender};

/// A check passed (`Ok`) or produced the final, rejecting outcome (`Err`).
pub(super) type Check = Result<u16, Outcome>;

/// The auth and sender checks, then (API keys) the key type probe, stopping at the first
/// rejection.
pub(super) async fn run(tw: &TwilioClient, cred: &Credential) -> Result<Outcome, TwilioError> {
    let urls = tw.hosts.for_location(cred.location);
    if let Err(rejected) = auth(tw, cred, &urls).await? {
        return Ok(rejected);
    }
    let status = match sender(tw, cred, &urls).await? {
        Ok(status) => status,
        Err(rejected) => return Ok(rejected),
    };
    let key_type = match &cred.auth {
        Auth::AuthToken(_) => None,
        Auth::ApiKey { .. } => Some(key_type::probe(tw, cred, &urls).await?),
    };
    if key_type == Some(KeyType::Restricted) {
        if let Err(rejected) = key_type::may_create_messages(tw, cred, &urls).await? {
            return Ok(rejected);
        }
    }
    Ok(Outcome {
        valid: true,
        step: Step::Sender,
        http_status: status,
        twilio_error_code: 0,
        reason: "Twilio accepted the auth and the sender belongs to the account".into(),
        message_sid: None,
        key_type,
    })
}

pub(super) fn get(tw: &TwilioClient, cred: &Credential, url: &str) -> reqwest::RequestBuilder {
    tw.http
        .client()
        .get(url)
        .basic_auth(cred.username(), Some(cred.password().expose()))
}

pub(super) fn post(tw: &TwilioClient, cred: &Credential, url: &str) -> reqwest::RequestBuilder {
    tw.http
        .client()
        .post(url)
        .basic_auth(cred.username(), Some(cred.password().expose()))
}

pub(super) fn account_url(urls: &BaseUrls, cred: &Credential, rest: &str) -> String {
    format!(
        "{}/2010-04-01/Accounts/{}{rest}",
        urls.api, cred.account_sid
    )
}

/// Twilio says only 20003 for a credential of another Region: name the likely cause.
fn other_region(cred: &Credential) -> String {
    let others: Vec<_> = Region::ALL
        .iter()
        .filter(|r| **r != cred.location.region)
        .map(|r| r.as_str())
        .collect();
    format!(
        "; or it belongs to another Twilio Region than {}, the one it is stored for (auth works \
         only in the Region it was created in: if that is {}, store it with that region)",
        cred.location.region,
        others.join(" or ")
    )
}

async fn auth(tw: &TwilioClient, cred: &Credential, urls: &BaseUrls) -> Result<Check, TwilioError> {
    const CALL: &str = "auth check";
    match &cred.auth {
        Auth::AuthToken(_) => {
            let url = account_url(urls, cred, ".json");
            let reply = tw
                .http
                .send(CALL, Idempotency::Safe, || get(tw, cred, &url))
                .await?;
            if reply.status != StatusCode::OK {
                return refused(CALL, Step::Auth, &reply, |code, status| match (code, status) {
                    (errors::ACCOUNT_INACTIVE, _) => inactive(cred),
                    (errors::AUTHENTICATE, _) | (_, 401) => {
                        format!("Twilio refused the Account SID and Auth Token (wrong token, or a suspended or closed account){}", other_region(cred))
                    }
                    (errors::NOT_FOUND, _) | (_, 404) => {
                        format!("account {} does not exist", cred.account_sid)
                    }
                    _ => generic(CALL, code, status),
                })
                .map(Err);
            }
            // Only `status` is taken from the Account resource; the rest of the body (it holds
            // the auth token) is skipped by the parser and wiped with the reply.
            #[derive(Deserialize)]
            struct Account {
                status: String,
            }
            let account: Account = parse(CALL, &reply)?;
            match account.status.as_str() {
                "active" => Ok(Ok(200)),
                state @ ("suspended" | "closed") => Ok(Err(invalid(
                    Step::Auth,
                    200,
                    format!("account {} is {state}", cred.account_sid),
                ))),
                _ => Err(off_spec(
                    CALL,
                    &reply,
                    "an account status the API does not list",
                )),
            }
        }
        // Standard keys may be refused on /Accounts itself; listing one message is something
        // every key that can send SMS may do.
        Auth::ApiKey { sid, .. } => {
            let url = account_url(urls, cred, "/Messages.json");
            let reply = tw
                .http
                .send(CALL, Idempotency::Safe, || {
                    get(tw, cred, &url).query(&[("PageSize", "1")])
                })
                .await?;
            if reply.status == StatusCode::OK {
                #[derive(Deserialize)]
                struct Messages {
                    #[allow(dead_code)] // its presence is the check
                    messages: Vec<serde::de::IgnoredAny>,
                }
                parse::<Messages>(CALL, &reply)?;
                return Ok(Ok(200));
            }
            let mut outcome = refused(CALL, Step::Auth, &reply, |code, status| {
                if code == errors::ACCOUNT_INACTIVE {
                    inactive(cred)
                } else if lacks_permission(code, status) {
                    format!("API key {sid} lacks permission to read the account's Messages: a Restricted key needs the Messaging read and create permissions")
                } else if code == errors::AUTHENTICATE || status == 401 {
                    format!("Twilio refused API key {sid} and its secret for account {} (wrong secret, deleted key, key of another account, or a suspended or closed account){}", cred.account_sid, other_region(cred))
                } else {
                    generic(CALL, code, status)
                }
            })?;
            // Only a Restricted key is refused for a permission once its auth is known.
            if outcome.twilio_error_code == errors::KEY_LACKS_PERMISSION {
                outcome.key_type = Some(KeyType::Restricted);
            }
            Ok(Err(outcome))
        }
    }
}

async fn sender(
    tw: &TwilioClient,
    cred: &Credential,
    urls: &BaseUrls,
) -> Result<Check, TwilioError> {
    const CALL: &str = "sender check";
    match &cred.sender {
        Sender::MessagingService(mg) => {
            let url = format!("{}/v1/Services/{mg}", urls.messaging);
            let reply = tw
                .http
                .send(CALL, Idempotency::Safe, || get(tw, cred, &url))
                .await?;
            if reply.status != StatusCode::OK {
                return refused(CALL, Step::Sender, &reply, |code, status| {
                    if code == errors::NOT_FOUND || status == 404 {
                        format!(
                            "messaging service {mg} does not exist in account {}",
                            cred.account_sid
                        )
                    } else if lacks_permission(code, status) {
                        format!("the credential lacks permission to read messaging service {mg}")
                    } else {
                        generic(CALL, code, status)
                    }
                })
                .map(Err);
            }
            #[derive(Deserialize)]
            struct Service {
                account_sid: Option<String>,
            }
            let service: Service = parse(CALL, &reply)?;
            match service.account_sid {
                Some(owner) if owner == cred.account_sid.as_str() => Ok(Ok(200)),
                Some(_) => Ok(Err(invalid(
                    Step::Sender,
                    200,
                    format!(
                        "messaging service {mg} belongs to another account, not {}",
                        cred.account_sid
                    ),
                ))),
                // Ownership unproven is not ownership.
                None => Err(off_spec(CALL, &reply, "no account_sid in the Service")),
            }
        }
        Sender::FromNumber(number) => {
            let url = account_url(urls, cred, "/IncomingPhoneNumbers.json");
            let reply = tw
                .http
                .send(CALL, Idempotency::Safe, || {
                    get(tw, cred, &url).query(&[("PhoneNumber", number.as_str())])
                })
                .await?;
            if reply.status != StatusCode::OK {
                return refused(CALL, Step::Sender, &reply, |code, status| {
                    if lacks_permission(code, status) {
                        "the credential lacks permission to list the account's phone numbers".into()
                    } else {
                        generic(CALL, code, status)
                    }
                })
                .map(Err);
            }
            #[derive(Deserialize)]
            struct Number {
                phone_number: Option<String>,
            }
            #[derive(Deserialize)]
            struct Numbers {
                incoming_phone_numbers: Vec<Number>,
            }
            let numbers: Numbers = parse(CALL, &reply)?;
            // PhoneNumber= also matches partial numbers: insist on the exact one.
            let owned = numbers
                .incoming_phone_numbers
                .iter()
                .any(|n| n.phone_number.as_deref() == Some(number.as_str()));
            if owned {
                Ok(Ok(200))
            } else {
                Ok(Err(invalid(
                    Step::Sender,
                    200,
                    format!(
                        "from number {} is not a phone number of account {}",
                        number.as_str(),
                        cred.account_sid
                    ),
                )))
            }
        }
    }
}

/// The test SMS: one POST, never retried. Its outcome says nothing of the recipient's number:
/// outcomes are stored in the plaintext metadata.
pub(super) async fn test_message(
    tw: &TwilioClient,
    cred: &Credential,
    test: &TestMessage,
) -> Result<Outcome, TwilioError> {
    const CALL: &str = "test SMS";
    let url = account_url(
        &tw.hosts.for_location(cred.location),
        cred,
        "/Messages.json",
    );
    let form = [
        ("To", test.to.as_str()),
        sender_field(cred),
        ("Body", test.body.as_str()),
    ];
    let reply = tw
        .http
        .send(CALL, Idempotency::CreatesMessage, || {
            post(tw, cred, &url).form(&form)
        })
        .await?;
    // Twilio's text may quote the number: it never reaches a status, a log or the record.
    let scrub = |text: String| text.replace(test.to.as_str(), "<test recipient>");
    let status = reply.status.as_u16();
    if reply.status.is_success() {
        #[derive(Deserialize)]
        struct Created {
            sid: Option<String>,
        }
        let sid = serde_json::from_slice::<Created>(&reply.body)
            .ok()
            .and_then(|c| c.sid)
            .and_then(|s| MessageSid::parse(&s).ok())
            .ok_or_else(|| TwilioError::MaybeSent {
                timed_out: false,
                detail: format!("Twilio answered HTTP {status} without a message SID (SM...)"),
            })?;
        return Ok(Outcome {
            valid: true,
            step: Step::TestMessage,
            http_status: status,
            twilio_error_code: 0,
            reason: "Twilio accepted the auth, the sender and a test SMS".into(),
            message_sid: Some(sid),
            key_type: None,
        });
    }
    // A 4xx: Twilio did not create the message.
    let body = ApiErrorBody::parse(&reply.body);
    if let Some(code) = body.code.filter(|c| errors::RECIPIENT_CODES.contains(c)) {
        let reason = errors::explain(code).unwrap_or("Twilio refused it");
        return Err(TwilioError::RecipientRejected {
            code,
            reason: scrub(with_twilio_message(reason.to_owned(), &body)),
        });
    }
    let is_sender_code = body.code.is_some_and(|c| errors::SENDER_CODES.contains(&c));
    if is_sender_code && reply.status == StatusCode::BAD_REQUEST {
        let mut outcome = rejection(Step::TestMessage, status, &body, |code, status| {
            generic(CALL, code, status)
        });
        outcome.reason = scrub(outcome.reason);
        return Ok(outcome);
    }
    let mut outcome = refused_with(CALL, Step::TestMessage, status, &body, |code, status| {
        if lacks_permission(code, status) {
            "the credential lacks permission to send messages".into()
        } else {
            generic(CALL, code, status)
        }
    })
    .map_err(|e| match e {
        TwilioError::Unexpected {
            call,
            status,
            detail,
        } => TwilioError::Unexpected {
            call,
            status,
            detail: scrub(format!("{detail}; no SMS was sent")),
        },
        other => other,
    })?;
    outcome.reason = scrub(outcome.reason);
    Ok(outcome)
}

/// The form field naming the credential's sender.
pub(super) fn sender_field(cred: &Credential) -> (&'static str, &str) {
    match &cred.sender {
        Sender::MessagingService(mg) => ("MessagingServiceSid", mg.as_str()),
        Sender::FromNumber(n) => ("From", n.as_str()),
    }
}

/// 403, or a code Twilio uses for a key without the permission (Restricted keys).
pub(super) fn lacks_permission(code: i32, status: u16) -> bool {
    status == 403 || code == errors::FORBIDDEN || code == errors::KEY_LACKS_PERMISSION
}

fn inactive(cred: &Credential) -> String {
    format!(
        "account {} is not active (suspended or closed)",
        cred.account_sid
    )
}

fn generic(call: &str, code: i32, status: u16) -> String {
    match errors::explain(code) {
        Some(text) => format!("{call}: {text}"),
        None => format!("{call}: Twilio refused the request (HTTP {status})"),
    }
}

fn invalid(step: Step, http_status: u16, reason: String) -> Outcome {
    Outcome {
        valid: false,
        step,
        http_status,
        twilio_error_code: 0,
        reason,
        message_sid: None,
        key_type: None,
    }
}

/// A non-2xx reply: Twilio's rejection of the credential (401, 403 or 404 with Twilio's error
/// body), as an INVALID outcome; anything else (a redirect, 409, a proxy's page, a 400 that is
/// about the request) is an unexpected reply, and nothing is recorded.
fn refused(
    call: &'static str,
    step: Step,
    reply: &Reply,
    explain: impl FnOnce(i32, u16) -> String,
) -> Result<Outcome, TwilioError> {
    let body = ApiErrorBody::parse(&reply.body);
    refused_with(call, step, reply.status.as_u16(), &body, explain)
}

/// [`refused`] over an error body already parsed.
fn refused_with(
    call: &'static str,
    step: Step,
    status: u16,
    body: &ApiErrorBody,
    explain: impl FnOnce(i32, u16) -> String,
) -> Result<Outcome, TwilioError> {
    let detail = match body.code {
        Some(_) if matches!(status, 401 | 403 | 404) => {
            return Ok(rejection(step, status, body, explain))
        }
        Some(code) => {
            format!("a Twilio error that says nothing about the credential (code {code})")
        }
        None => "not a Twilio error body (a proxy, or a wrong base URL?)".into(),
    };
    Err(TwilioError::Unexpected {
        call,
        status,
        detail,
    })
}

/// A rejecting outcome: `explain(code, status)` gives the reason for this step, and Twilio's own
/// message (bounded) is appended.
pub(super) fn rejection(
    step: Step,
    status: u16,
    body: &ApiErrorBody,
    explain: impl FnOnce(i32, u16) -> String,
) -> Outcome {
    let code = body.code.unwrap_or(0);
    Outcome {
        valid: false,
        step,
        http_status: status,
        twilio_error_code: code,
        reason: with_twilio_message(explain(code, status), body),
        message_sid: None,
        key_type: None,
    }
}

/// `reason`, followed by Twilio's code and its own (bounded) message when it gave one.
fn with_twilio_message(reason: String, body: &ApiErrorBody) -> String {
    match body.message_text() {
        Some(msg) => format!("{reason} (Twilio {}: {msg})", body.code.unwrap_or(0)),
        None => reason,
    }
}

pub(super) fn off_spec(call: &'static str, reply: &Reply, what: &str) -> TwilioError {
    TwilioError::Unexpected {
        call,
        status: reply.status.as_u16(),
        detail: format!("{what}; the outcome is unknown"),
    }
}

/// Parses a 200 reply into the documented shape. serde's error text quotes the input, so only
/// its position is kept.
pub(super) fn parse<T: DeserializeOwned>(
    call: &'static str,
    reply: &Reply,
) -> Result<T, TwilioError> {
    serde_json::from_slice(&reply.body).map_err(|e| {
        let what = if e.is_data() {
            "the JSON does not have the documented shape"
        } else {
            "the reply is not JSON"
        };
        off_spec(
            call,
            reply,
            &format!("{what} (line {}, column {})", e.line(), e.column()),
        )
    })
}
