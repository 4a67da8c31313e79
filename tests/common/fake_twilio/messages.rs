//! Message creation (POST Messages.json) as Twilio answers it, including its refusals of the
//! `To` number.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{query_pairs, twilio_error, Account, SentSms, State};

/// A recipient Twilio accepts.
pub const RECIPIENT: &str = "+6591234567";

/// Recipients Twilio refuses, with its code and message (Twilio's error dictionary; `{to}` is
/// the number). None of these says anything about the credential.
pub const RECIPIENT_ERRORS: &[(&str, i32, &str)] = &[
    ("+15005550001", 21211, "Invalid 'To' Phone Number: {to}"),
    ("+15005550002", 21214, "'To' phone number cannot be reached"),
    ("+15005550009", 21608, "The number {to} is unverified. Trial accounts cannot send messages to unverified numbers; verify {to} at twilio.com/user/account/phone-numbers/verified, or purchase a Twilio number to send messages to unverified numbers."),
    ("+15005550010", 21610, "Attempt to send to unsubscribed recipient"),
    ("+15005550011", 21612, "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number via SMS."),
    ("+15005550012", 21614, "'To' number is not a valid mobile number"),
    ("+15005550013", 21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."),
];

/// The recipient for which Twilio answers `code`.
pub fn recipient_with(code: i32) -> &'static str {
    RECIPIENT_ERRORS
        .iter()
        .find(|(_, c, _)| *c == code)
        .map(|(n, _, _)| *n)
        .expect("a recipient with that code")
}

pub(super) fn create(
    state: &State,
    account: &Account,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &[u8],
    violation: &dyn Fn(String),
) -> Response {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if form_type != "application/x-www-form-urlencoded" {
        violation(format!(
            "POST Messages.json with content type {form_type:?}"
        ));
    }
    if !query.is_empty() {
        violation(format!("POST Messages.json with a query {query:?}"));
    }
    let form = query_pairs(std::str::from_utf8(body).unwrap_or(""));
    let field = |name: &str| -> Option<String> {
        let mut values = form
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone());
        let first = values.next();
        if values.next().is_some() {
            violation(format!("form field {name} repeated"));
        }
        first
    };
    for (k, _) in &form {
        if !["To", "From", "MessagingServiceSid", "Body"].contains(&k.as_str()) {
            violation(format!("unexpected form field {k}"));
        }
    }
    let (to, body, from, mg) = (
        field("To"),
        field("Body"),
        field("From"),
        field("MessagingServiceSid"),
    );
    if from.is_some() == mg.is_some() {
        violation(format!(
            "want exactly one of From / MessagingServiceSid, got {from:?} / {mg:?}"
        ));
    }
    if let Some(mg) = &mg {
        if account.services.get(mg) != Some(&account.sid) {
            return twilio_error(400, 21705, "The Messaging Service Sid is invalid.");
        }
    }
    if let Some(from) = &from {
        if !account.numbers.contains(from) {
            return twilio_error(400, 21606, "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination/account.");
        }
    }
    let (Some(to), Some(body)) = (to.clone(), body.clone()) else {
        // Neither: credvault's create permission probe, which no message can be made of.
        if to.is_some() || body.is_some() {
            violation("POST Messages.json with only one of To and Body".into());
        } else {
            state
                .probes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        return twilio_error(400, 21604, "A 'To' phone number is required.");
    };
    if let Some((_, code, message)) = RECIPIENT_ERRORS.iter().find(|(n, _, _)| *n == to) {
        return twilio_error(400, *code, &message.replace("{to}", &to));
    }
    let mut sent = state.sent.lock().unwrap();
    let sid = format!("SM{:032x}", sent.len() + 0xabc);
    sent.push(SentSms {
        to: to.clone(),
        body: body.clone(),
        from: from.clone(),
        messaging_service_sid: mg.clone(),
        sid: sid.clone(),
    });
    let reply = json!({
        "sid": sid, "account_sid": account.sid, "to": to, "from": from, "body": body,
        "messaging_service_sid": mg, "status": "queued", "direction": "outbound-api",
        "api_version": "2010-04-01", "error_code": null, "error_message": null,
    });
    (StatusCode::CREATED, axum::Json(reply)).into_response()
}
