//! A fake Twilio on 127.0.0.1:0 serving both the REST API (2010-04-01) and the Messaging v1 API.
//!
//! It behaves like Twilio for the requests credvault makes (shapes and error bodies from
//! tests/fixtures/twilio/*.yaml) and *checks* every request: method, path, query, basic auth, form
//! fields. Anything credvault should never send is recorded as a violation, and
//! [`FakeTwilio::assert_clean`] fails the test on any.
#![allow(dead_code)] // each test binary uses a different part of the fake

mod messages;
mod replies;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::Notify;

#[allow(unused_imports)] // each test binary uses a different part
pub use messages::{recipient_with, RECIPIENT, RECIPIENT_ERRORS};
use replies::{json_ok, raw_reply};
pub use replies::{twilio_error, Raw};
pub const FOREIGN_ACCOUNT: &str = "ACffffffffffffffffffffffffffffffff";

/// What the fake knows about the one account it hosts. Tests change it through `FakeTwilio`.
#[derive(Debug, Clone)]
pub struct Account {
    pub sid: String,
    pub auth_token: String,
    pub status: &'static str,
    pub api_key_sid: String,
    pub api_key_secret: String,
    /// `Some((http status, code))`: the API key is a Restricted key without Messaging read.
    pub key_restricted: Option<(u16, i32)>,
    /// What the API key may do, as Twilio answers the key type probe.
    pub key_kind: KeyKind,
    /// Messaging services, each with the account that owns it.
    pub services: HashMap<String, String>,
    pub numbers: HashSet<String>,
}

/// Twilio's API key types, as the fake plays them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// May list the account's keys.
    Main,
    /// Refused on Keys.json with 401 / 20003.
    Standard,
    /// Refused outside its policy with 403 / 70051; `create`: may it create messages.
    Restricted { create: bool },
}

/// One SMS the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    pub to: String,
    pub body: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub sid: String,
}

#[derive(Default)]
struct Faults {
    /// Answer this many requests with 429 + Retry-After (`retry_after` s, default 1) before
    /// behaving.
    pending_429: AtomicU32,
    retry_after: AtomicU32,
    /// Answer every request with 500.
    always_500: AtomicBool,
    /// Sleep this long before answering.
    delay: Mutex<Option<Duration>>,
    /// Answer every message creation (POST Messages.json) with this status and code.
    sms_error: Mutex<Option<(u16, i32)>>,
    /// Accept (and count) every message creation, then sleep this long before answering.
    sms_delay: Mutex<Option<Duration>>,
    /// Park the next request: notify `arrived`, wait for `release`.
    hold: Mutex<Option<(Arc<Notify>, Arc<Notify>)>>,
    /// Raw replies for requests whose "METHOD /path" ends with the key, after the auth check.
    raw: Mutex<Vec<(String, Raw)>>,
}

struct State {
    account: Mutex<Account>,
    faults: Faults,
    /// "METHOD /path" of every request received, in order.
    log: Mutex<Vec<String>>,
    violations: Mutex<Vec<String>>,
    sent: Mutex<Vec<SentSms>>,
    /// Message creations without `To` or `Body` (the create permission probe).
    probes: AtomicU32,
    /// When each request came, in order (as `log`), and when each 429 was answered.
    times: Mutex<Vec<Instant>>,
    rate_limited: Mutex<Vec<Instant>>,
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
}

pub struct FakeTwilio {
    /// Base URL for both CREDVAULT_TWILIO_API_BASE and CREDVAULT_TWILIO_MESSAGING_BASE.
    pub base: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeTwilio {
    pub async fn start(account: Account) -> Self {
        let state = Arc::new(State {
            account: Mutex::new(account),
            faults: Faults::default(),
            log: Mutex::default(),
            violations: Mutex::default(),
            sent: Mutex::default(),
            probes: AtomicU32::new(0),
            times: Mutex::default(),
            rate_limited: Mutex::default(),
            in_flight: AtomicU32::new(0),
            max_in_flight: AtomicU32::new(0),
        });
        let app = Router::new().fallback({
            let state = state.clone();
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { handle(&state, method, uri, headers, body).await }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, state, task }
    }

    pub fn update(&self, f: impl FnOnce(&mut Account)) {
        f(&mut self.state.account.lock().unwrap());
    }

    pub fn fail_next_with_429(&self, n: u32) {
        self.fail_next_with_429_after(n, 1);
    }

    /// The next `n` requests get 429 with `Retry-After: {secs}`.
    pub fn fail_next_with_429_after(&self, n: u32, secs: u32) {
        self.state.faults.retry_after.store(secs, Ordering::SeqCst);
        self.state.faults.pending_429.store(n, Ordering::SeqCst);
    }

    /// When each request arrived, in order.
    pub fn request_times(&self) -> Vec<Instant> {
        self.state.times.lock().unwrap().clone()
    }

    /// When each 429 was answered.
    pub fn rate_limited_at(&self) -> Vec<Instant> {
        self.state.rate_limited.lock().unwrap().clone()
    }

    /// The most requests in progress at once since the last `reset_max_in_flight`.
    pub fn max_in_flight(&self) -> u32 {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn reset_max_in_flight(&self) {
        self.state.max_in_flight.store(0, Ordering::SeqCst);
    }

    pub fn always_500(&self, on: bool) {
        self.state.faults.always_500.store(on, Ordering::SeqCst);
    }

    pub fn delay(&self, d: Option<Duration>) {
        *self.state.faults.delay.lock().unwrap() = d;
    }

    /// Makes every POST Messages.json fail with `status` and Twilio `code` (`None`: behave).
    pub fn fail_sms_with(&self, error: Option<(u16, i32)>) {
        *self.state.faults.sms_error.lock().unwrap() = error;
    }

    /// Every POST Messages.json is accepted (the SMS counts as sent) and answered after `d`.
    pub fn delay_sms(&self, d: Option<Duration>) {
        *self.state.faults.sms_delay.lock().unwrap() = d;
    }

    /// Answers every request whose "METHOD /path" ends with `request` with `raw`.
    pub fn reply_raw(&self, request: &str, raw: Raw) {
        self.state
            .faults
            .raw
            .lock()
            .unwrap()
            .push((request.to_owned(), raw));
    }

    /// Back to answering like Twilio.
    pub fn clear_raw(&self) {
        self.state.faults.raw.lock().unwrap().clear();
    }

    /// Parks the next request until `release` is notified; `arrived` is notified when it comes.
    pub fn hold_next(&self) -> (Arc<Notify>, Arc<Notify>) {
        let pair = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        *self.state.faults.hold.lock().unwrap() = Some(pair.clone());
        pair
    }

    /// "METHOD /path" of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    /// How many create permission probes (a message without a recipient) came.
    pub fn create_probes(&self) -> u32 {
        self.state.probes.load(Ordering::SeqCst)
    }

    pub fn sent(&self) -> Vec<SentSms> {
        self.state.sent.lock().unwrap().clone()
    }

    /// Fails the test if credvault sent anything Twilio's API does not expect.
    pub fn assert_clean(&self) {
        let v = self.state.violations.lock().unwrap();
        assert!(v.is_empty(), "fake Twilio saw bad requests: {v:#?}");
    }
}

enum Caller {
    Token,
    Key,
}

/// Counts a request in progress until dropped (whichever way the handler returns).
struct InFlight<'a>(&'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    state: &State,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    {
        let mut log = state.log.lock().unwrap();
        log.push(format!("{method} {path}"));
        state.times.lock().unwrap().push(Instant::now());
    }
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _in_flight = InFlight(&state.in_flight);
    let violation = |what: String| state.violations.lock().unwrap().push(what);

    let hold = state.faults.hold.lock().unwrap().take();
    if let Some((arrived, release)) = hold {
        arrived.notify_one();
        release.notified().await;
    }
    let delay = *state.faults.delay.lock().unwrap();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if state.faults.always_500.load(Ordering::SeqCst) {
        return twilio_error(500, 20500, "Internal Server Error");
    }
    let take_429 = state
        .faults
        .pending_429
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if take_429 {
        let mut r = twilio_error(429, 20429, "Too Many Requests");
        let secs = state.faults.retry_after.load(Ordering::SeqCst).max(1);
        r.headers_mut()
            .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
        state.rate_limited.lock().unwrap().push(Instant::now());
        return r;
    }

    let account = state.account.lock().unwrap().clone();
    let query = query_pairs(uri.query().unwrap_or(""));
    for secret in [&account.auth_token, &account.api_key_secret] {
        if uri.to_string().contains(secret.as_str()) {
            violation(format!("a secret is in the URL of {method} {path}"));
        }
    }

    // Basic auth exactly as Twilio takes it; a wrong pair is Twilio's real 20003.
    let Some((user, pass)) = basic_auth(&headers) else {
        violation(format!("{method} {path} without basic auth"));
        return twilio_error(401, 20003, "Authenticate");
    };
    let caller = if user == account.sid && pass == account.auth_token {
        Caller::Token
    } else if user == account.api_key_sid && pass == account.api_key_secret {
        Caller::Key
    } else {
        return twilio_error(401, 20003, "Authenticate");
    };
    if account.status != "active" && matches!(caller, Caller::Key) {
        // Keys of a suspended account are refused like a wrong secret.
        return twilio_error(401, 20003, "Authenticate");
    }

    let request = format!("{method} {path}");
    let raw = state
        .faults
        .raw
        .lock()
        .unwrap()
        .iter()
        .find(|(k, _)| request.ends_with(k.as_str()))
        .map(|(_, r)| r.clone());
    if let Some(raw) = raw {
        return raw_reply(raw);
    }

    let acct = format!("/2010-04-01/Accounts/{}", account.sid);
    let not_found = || {
        twilio_error(
            404,
            20404,
            &format!("The requested resource {path} was not found"),
        )
    };

    if method == Method::GET && path == format!("{acct}.json") {
        if matches!(caller, Caller::Key) {
            violation(
                "API key used on /Accounts/{Sid}.json: Standard keys are refused there".into(),
            );
        }
        no_query(&query, &path, &violation);
        return json_ok(json!({
            "sid": account.sid,
            "friendly_name": "fake",
            "owner_account_sid": account.sid,
            "status": account.status,
            "type": "Full",
            "uri": format!("{acct}.json"),
        }));
    }
    if method == Method::GET && path == format!("{acct}/Messages.json") {
        if query != [("PageSize".to_owned(), "1".to_owned())] {
            violation(format!(
                "GET Messages.json with query {query:?}, want PageSize=1"
            ));
        }
        if let (Caller::Key, Some((status, code))) = (&caller, account.key_restricted) {
            return twilio_error(
                status,
                code,
                "Unable to authorize: the API key lacks the permission for this resource",
            );
        }
        return json_ok(
            json!({"messages": [], "page": 0, "page_size": 1, "start": 0, "end": 0,
            "first_page_uri": format!("{acct}/Messages.json?PageSize=1&Page=0"),
            "next_page_uri": null, "previous_page_uri": null, "uri": format!("{acct}/Messages.json?PageSize=1&Page=0")}),
        );
    }
    if method == Method::GET && path == format!("{acct}/Keys.json") {
        if query != [("PageSize".to_owned(), "1".to_owned())] {
            violation(format!(
                "GET Keys.json with query {query:?}, want PageSize=1"
            ));
        }
        let keys = || json_ok(json!({"keys": [], "page": 0, "page_size": 1}));
        return match (&caller, account.key_kind) {
            (Caller::Token, _) | (Caller::Key, KeyKind::Main) => keys(),
            (Caller::Key, KeyKind::Standard) => twilio_error(401, 20003, "Authenticate"),
            (Caller::Key, KeyKind::Restricted { .. }) => restricted_refusal(),
        };
    }
    if method == Method::GET && path == format!("{acct}/IncomingPhoneNumbers.json") {
        let wanted: Vec<_> = query.iter().filter(|(k, _)| k == "PhoneNumber").collect();
        if wanted.len() != 1 || query.len() != 1 {
            violation(format!(
                "IncomingPhoneNumbers.json with query {query:?}, want PhoneNumber=..."
            ));
        }
        let wanted = wanted.first().map(|(_, v)| v.clone()).unwrap_or_default();
        let list: Vec<Value> = account
            .numbers
            .iter()
            .filter(|n| **n == wanted)
            .map(|n| json!({"phone_number": n, "account_sid": account.sid, "sid": "PNaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "capabilities": {"sms": true}}))
            .collect();
        return json_ok(json!({"incoming_phone_numbers": list, "page": 0, "page_size": 50}));
    }
    if method == Method::GET && path.starts_with("/v1/Services/") {
        no_query(&query, &path, &violation);
        let sid = &path["/v1/Services/".len()..];
        return match account.services.get(sid) {
            // Twilio hides other accounts' services: 20404, as for one that does not exist.
            Some(owner) if *owner == account.sid => json_ok(json!({
                "sid": sid, "account_sid": owner, "friendly_name": "fake service",
                "url": format!("https://messaging.twilio.com/v1/Services/{sid}"),
            })),
            _ => not_found(),
        };
    }
    if method == Method::POST && path == format!("{acct}/Messages.json") {
        // Twilio checks the key's permission before the parameters.
        if let (Caller::Key, KeyKind::Restricted { create: false }) = (&caller, account.key_kind) {
            return restricted_refusal();
        }
        let forced = *state.faults.sms_error.lock().unwrap();
        if let Some((status, code)) = forced {
            return twilio_error(status, code, "Refused by the fake");
        }
        let reply = messages::create(state, &account, &headers, &query, &body, &violation);
        let delay = *state.faults.sms_delay.lock().unwrap();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        return reply;
    }
    violation(format!("unexpected request {method} {path}"));
    not_found()
}

fn restricted_refusal() -> Response {
    twilio_error(
        403,
        70051,
        "Authorization Failed: the API key is missing a permission for this request",
    )
}

fn no_query(query: &[(String, String)], path: &str, violation: &dyn Fn(String)) {
    if !query.is_empty() {
        violation(format!("GET {path} with an unexpected query {query:?}"));
    }
}

/// Decodes `application/x-www-form-urlencoded` (query strings and form bodies alike).
pub(crate) fn query_pairs(s: &str) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://x/?{s}")).unwrap();
    if s.is_empty() {
        return Vec::new();
    }
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let decoded = STANDARD.decode(value.strip_prefix("Basic ")?).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}
