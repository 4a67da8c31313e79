//! The checks themselves, with the request and response shapes of Twilio's OpenAPI specs
//! (`FetchAccount`, `ListMessage`, `FetchService`, `ListIncomingPhoneNumber`, `CreateMessage`).

use reqwest::StatusCode;
use serde::Deserialize;

use super::client::{Idempotency, Reply};
use super::errors::{self, ApiErrorBody, TwilioError};
use super::{Outcome, Step, TestMessage, TwilioClient};
use crate::domain::{Auth, Credential, MessageSid, Sender};

/// A check passed (`Ok`) or produced the final, rejecting outcome (`Err`).
type Check = Result<u16, Outcome>;

pub(super) async fn run(
    tw: &TwilioClient,
    cred: &Credential,
    test: Option<&TestMessage>,
) -> Result<Outcome, TwilioError> {
    if let Err(rejected) = auth(tw, cred).await? {
        return Ok(rejected);
    }
    let sender_status = match sender(tw, cred).await? {
        Ok(status) => status,
        Err(rejected) => return Ok(rejected),
    };
    let Some(test) = test else {
        return Ok(Outcome {
            valid: true,
            step: Step::Sender,
            http_status: sender_status,
            twilio_error_code: 0,
            reason: "Twilio accepted the auth and the sender belongs to the account".into(),
            message_sid: None,
        });
    };
    test_message(tw, cred, test).await
}

fn get(tw: &TwilioClient, cred: &Credential, url: &str) -> reqwest::RequestBuilder {
    tw.http
        .client()
        .get(url)
        .basic_auth(cred.username(), Some(cred.password().expose()))
}

fn account_url(tw: &TwilioClient, cred: &Credential, rest: &str) -> String {
    format!(
        "{}/2010-04-01/Accounts/{}{rest}",
        tw.api_base, cred.account_sid
    )
}

async fn auth(tw: &TwilioClient, cred: &Credential) -> Result<Check, TwilioError> {
    match &cred.auth {
        Auth::AuthToken(_) => {
            let url = account_url(tw, cred, ".json");
            let reply = tw
                .http
                .send("auth check", Idempotency::Safe, || get(tw, cred, &url))
                .await?;
            if reply.status != StatusCode::OK {
                return Ok(Err(rejected(Step::Auth, &reply, |code, status| {
                    match (code, status) {
                        (errors::AUTHENTICATE, _) | (_, 401) => {
                            "Twilio refused the Account SID and Auth Token (wrong token, or a suspended or closed account)".into()
                        }
                        (errors::NOT_FOUND, _) | (_, 404) => {
                            format!("account {} does not exist", cred.account_sid)
                        }
                        _ => generic("auth check", code, status),
                    }
                })));
            }
            #[derive(Deserialize)]
            struct Account {
                status: Option<String>,
            }
            let account: Account = parse("auth check", &reply)?;
            match account.status.as_deref() {
                Some("active") => Ok(Ok(200)),
                Some(state @ ("suspended" | "closed")) => Ok(Err(invalid(
                    Step::Auth,
                    200,
                    format!("account {} is {state}", cred.account_sid),
                ))),
                other => Ok(Err(invalid(
                    Step::Auth,
                    200,
                    format!(
                        "account {} is not active (status: {})",
                        cred.account_sid,
                        other.unwrap_or("missing")
                    ),
                ))),
            }
        }
        // Standard keys may be refused on /Accounts itself; listing one message is something
        // every key that can send SMS may do.
        Auth::ApiKey { sid, .. } => {
            let url = account_url(tw, cred, "/Messages.json");
            let reply = tw
                .http
                .send("auth check", Idempotency::Safe, || {
                    get(tw, cred, &url).query(&[("PageSize", "1")])
                })
                .await?;
            if reply.status == StatusCode::OK {
                return Ok(Ok(200));
            }
            Ok(Err(rejected(Step::Auth, &reply, |code, status| {
                if lacks_permission(code, status) {
                    format!("API key {sid} lacks permission to read the account's Messages: a Restricted key needs the Messaging read and create permissions")
                } else if code == errors::AUTHENTICATE || status == 401 {
                    format!("Twilio refused API key {sid} and its secret for account {} (wrong secret, deleted key, key of another account, or a suspended or closed account)", cred.account_sid)
                } else {
                    generic("auth check", code, status)
                }
            })))
        }
    }
}

async fn sender(tw: &TwilioClient, cred: &Credential) -> Result<Check, TwilioError> {
    match &cred.sender {
        Sender::MessagingService(mg) => {
            let url = format!("{}/v1/Services/{mg}", tw.messaging_base);
            let reply = tw
                .http
                .send("sender check", Idempotency::Safe, || get(tw, cred, &url))
                .await?;
            if reply.status != StatusCode::OK {
                return Ok(Err(rejected(Step::Sender, &reply, |code, status| {
                    if code == errors::NOT_FOUND || status == 404 {
                        format!(
                            "messaging service {mg} does not exist in account {}",
                            cred.account_sid
                        )
                    } else if lacks_permission(code, status) {
                        format!("the credential lacks permission to read messaging service {mg}")
                    } else {
                        generic("sender check", code, status)
                    }
                })));
            }
            #[derive(Deserialize)]
            struct Service {
                account_sid: Option<String>,
            }
            let service: Service = parse("sender check", &reply)?;
            match service.account_sid {
                Some(owner) if owner != cred.account_sid.as_str() => Ok(Err(invalid(
                    Step::Sender,
                    200,
                    format!(
                        "messaging service {mg} belongs to another account, not {}",
                        cred.account_sid
                    ),
                ))),
                _ => Ok(Ok(200)),
            }
        }
        Sender::FromNumber(number) => {
            let url = account_url(tw, cred, "/IncomingPhoneNumbers.json");
            let reply = tw
                .http
                .send("sender check", Idempotency::Safe, || {
                    get(tw, cred, &url).query(&[("PhoneNumber", number.as_str())])
                })
                .await?;
            if reply.status != StatusCode::OK {
                return Ok(Err(rejected(Step::Sender, &reply, |code, status| {
                    if lacks_permission(code, status) {
                        "the credential lacks permission to list the account's phone numbers".into()
                    } else {
                        generic("sender check", code, status)
                    }
                })));
            }
            #[derive(Deserialize)]
            struct Number {
                phone_number: Option<String>,
            }
            #[derive(Deserialize)]
            struct Numbers {
                incoming_phone_numbers: Vec<Number>,
            }
            let numbers: Numbers = parse("sender check", &reply)?;
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

async fn test_message(
    tw: &TwilioClient,
    cred: &Credential,
    test: &TestMessage,
) -> Result<Outcome, TwilioError> {
    let url = account_url(tw, cred, "/Messages.json");
    let sender = match &cred.sender {
        Sender::MessagingService(mg) => ("MessagingServiceSid", mg.as_str()),
        Sender::FromNumber(n) => ("From", n.as_str()),
    };
    let form = [
        ("To", test.to.as_str()),
        sender,
        ("Body", test.body.as_str()),
    ];
    let reply = tw
        .http
        .send("test SMS", Idempotency::CreatesMessage, || {
            tw.http
                .client()
                .post(&url)
                .basic_auth(cred.username(), Some(cred.password().expose()))
                .form(&form)
        })
        .await?;
    if !reply.status.is_success() {
        return Ok(rejected(Step::TestMessage, &reply, |code, status| {
            if lacks_permission(code, status) {
                "the credential lacks permission to send messages".into()
            } else {
                generic("test SMS", code, status)
            }
        }));
    }
    #[derive(Deserialize)]
    struct Created {
        sid: Option<String>,
    }
    let created: Created = parse("test SMS", &reply)?;
    let sid = created
        .sid
        .as_deref()
        .and_then(|s| MessageSid::parse(s).ok())
        .ok_or_else(|| TwilioError::Unexpected {
            call: "test SMS",
            status: reply.status.as_u16(),
            detail: "no SMS message SID (SM...) in the reply".into(),
        })?;
    Ok(Outcome {
        valid: true,
        step: Step::TestMessage,
        http_status: reply.status.as_u16(),
        twilio_error_code: 0,
        reason: format!(
            "Twilio accepted the auth, the sender and the test SMS to {}",
            test.to.as_str()
        ),
        message_sid: Some(sid),
    })
}

/// 403, or a code Twilio uses for a key without the permission (Restricted keys).
fn lacks_permission(code: i32, status: u16) -> bool {
    status == 403 || code == errors::FORBIDDEN || code == errors::KEY_LACKS_PERMISSION
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
    }
}

/// A 4xx reply as a rejecting outcome. `explain(code, status)` gives the reason for this step;
/// Twilio's own message is appended (it names resources, never secrets).
fn rejected(step: Step, reply: &Reply, explain: impl FnOnce(i32, u16) -> String) -> Outcome {
    let body = ApiErrorBody::parse(&reply.body);
    let code = body.code.unwrap_or(0);
    let status = reply.status.as_u16();
    let mut reason = explain(code, status);
    if let Some(msg) = body.message.filter(|m| !m.is_empty()) {
        let msg: String = msg.chars().take(200).collect();
        reason = format!("{reason} (Twilio {code}: {msg})");
    }
    Outcome {
        valid: false,
        step,
        http_status: status,
        twilio_error_code: code,
        reason,
        message_sid: None,
    }
}

fn parse<T: for<'de> Deserialize<'de>>(
    call: &'static str,
    reply: &Reply,
) -> Result<T, TwilioError> {
    serde_json::from_slice(&reply.body).map_err(|e| TwilioError::Unexpected {
        call,
        status: reply.status.as_u16(),
        detail: format!("the JSON does not have the documented shape ({e})"),
    })
}
