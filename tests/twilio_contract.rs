//! Contract test: credvault's Twilio requests against mocks generated from Twilio's own OpenAPI
//! specs (tests/fixtures/twilio/*.yaml, vendored, MIT) by Stoplight Prism. Prism checks every request against the
//! spec (path and query parameters, basic auth, form body) and answers 4xx with validation errors
//! when one breaks it, so a passing run proves our requests match Twilio's published API.
//!
//! Needs prism (`bash .ci/install.d/30-prism.sh --force` puts it in .ci/node_modules). Without
//! it the test writes a notice past the test harness's capture, so `cargo test` shows it, and
//! passes; in CI (CI=true) it fails.

mod common;

use std::io::Write as _;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{add_request, TestServer};
use credvault::proto::v1 as pb;

// Prism answers with the first example of each operation in the spec. The credential below is
// made of the examples' own identifiers, so every check can pass: FetchAccount's example is
// ACaaaa... with status "active", FetchService's MGaaaa... belongs to ACaaaa..., the first
// ListIncomingPhoneNumber example lists +18089255327, and CreateMessage returns SMaaaa...
// (Prism does not check the basic-auth password, only that basic auth is sent.)
const ACCOUNT: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const KEY_SID: &str = "SKaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_SECRET: &str = "contract-test-secret";
const MG: &str = "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const FROM: &str = "+18089255327";
const EXAMPLE_MESSAGE_SID: &str = "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// What Prism logs for a request that breaks the spec.
const PRISM_VIOLATION: &str = "did not pass the validation rules";

/// A prism process, killed (by its own pid) when dropped.
struct Prism {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prism {
    fn start(prism: &Path, spec: &Path, log_dir: &Path) -> Self {
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let name = spec.file_stem().unwrap().to_string_lossy();
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(prism)
            .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(spec)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", prism.display()));
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Waits until Prism answers HTTP (parsing the large 2010 spec takes a few seconds).
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let http = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("prism exited with {status}:\n{}", self.log_text());
            }
            if http.get(&self.base).send().await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prism did not start:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test if Prism found any request that breaks the spec.
    fn assert_no_violations(&self) {
        let log = self.log_text();
        let bad: Vec<&str> = log
            .lines()
            // "Violation: response..." lines are Prism checking the spec's own examples
            // against its schemas (some examples break them); only requests are ours.
            .filter(|l| {
                l.contains(PRISM_VIOLATION)
                    || (l.contains("Violation:") && !l.contains("Violation: response"))
            })
            .collect();
        assert!(
            bad.is_empty(),
            "Prism rejected requests:\n{}",
            bad.join("\n")
        );
        assert!(
            log.contains("Request received"),
            "Prism saw no request:\n{log}"
        );
    }
}

/// prism from .ci/node_modules, or on PATH.
fn find_prism(root: &Path) -> Option<PathBuf> {
    let local = root.join(".ci/node_modules/.bin/prism");
    if local.exists() {
        return Some(local);
    }
    let found = Command::new("prism")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found.then(|| PathBuf::from("prism"))
}

/// Paths of prism and the shared specs, or `None` (after a notice) when this is not CI.
fn prerequisites() -> Option<(PathBuf, PathBuf)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let specs = root.join("tests/fixtures/twilio");
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let missing = match (
        find_prism(&root),
        specs.join("twilio_api_v2010.yaml").exists(),
    ) {
        (Some(prism), true) => return Some((prism, specs)),
        (None, _) => "prism not installed; run .ci/install.d/30-prism.sh --force (CI runs it)",
        (_, false) => "tests/fixtures/twilio/*.yaml missing from the checkout",
    };
    assert!(
        !in_ci,
        "CI=true but the Twilio contract test cannot run: {missing}"
    );
    // Straight to the process's stderr: libtest captures `eprintln!` of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "notice: tests/twilio_contract.rs skipped: {missing}"
    );
    None
}

fn credential(
    auth: pb::twilio_credential::Auth,
    sender: pb::twilio_credential::Sender,
) -> pb::TwilioCredential {
    pb::TwilioCredential {
        account_sid: ACCOUNT.into(),
        auth: Some(auth),
        sender: Some(sender),
        ..Default::default()
    }
}

#[tokio::test]
async fn validate_with_test_sms_matches_twilios_published_api() {
    let Some((prism, specs)) = prerequisites() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut api = Prism::start(&prism, &specs.join("twilio_api_v2010.yaml"), dir.path());
    let mut messaging = Prism::start(&prism, &specs.join("twilio_messaging_v1.yaml"), dir.path());
    api.wait_ready().await;
    messaging.wait_ready().await;

    // The mock really enforces the spec: a message without `To` is refused.
    let refused = reqwest::Client::new()
        .post(format!(
            "{}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
            api.base
        ))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .form(&[("From", FROM), ("Body", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status().as_u16(),
        422,
        "prism does not validate requests"
    );
    std::fs::write(&api.log, "").unwrap();

    let mut config = common::config(dir.path());
    config.twilio.api_base = api.base.clone();
    config.twilio.messaging_base = messaging.base.clone();
    config.twilio.max_retries = 0;
    let server = TestServer::start(config).await;
    let mut client = server.client().await;

    use pb::twilio_credential::{Auth, Sender};
    let cases = [
        (
            "auth-token",
            credential(
                Auth::AuthToken(pb::AuthToken {
                    auth_token: TOKEN.into(),
                }),
                Sender::MessagingServiceSid(MG.into()),
            ),
        ),
        (
            "api-key",
            credential(
                Auth::ApiKey(pb::ApiKey {
                    api_key_sid: KEY_SID.into(),
                    api_key_secret: KEY_SECRET.into(),
                }),
                Sender::FromNumber(FROM.into()),
            ),
        ),
    ];
    for (label, cred) in cases {
        client
            .add(add_request("contract", label, cred))
            .await
            .unwrap();
        let reply = client
            .validate(pb::ValidateRequest {
                owner: "contract".into(),
                label: label.into(),
                test_recipient: "+6591234567".into(),
                test_message_body: String::new(),
            })
            .await
            .unwrap_or_else(|s| {
                panic!(
                    "{label}: Validate failed: {s:?}\nprism log:\n{}",
                    api.log_text()
                )
            })
            .into_inner();
        let r = reply.result.unwrap();
        // A request that broke the spec would come back as a 4xx rejection (Prism's 422 or 401)
        // at the step that sent it; all three checks passing means all three requests were
        // accepted as Twilio documents them.
        assert!(r.valid, "{label}: {r:?}");
        assert_eq!(r.step(), pb::ValidationStep::TestMessage, "{label}: {r:?}");
        assert_eq!(
            (r.http_status, r.message_sid.as_str()),
            (201, EXAMPLE_MESSAGE_SID),
            "{label}: {r:?}"
        );
        // The key type probe (ListKey) was answered as the spec documents it: a key list.
        let want = if label == "api-key" {
            pb::KeyType::Main
        } else {
            pb::KeyType::Unspecified
        };
        assert_eq!(r.key_type(), want, "{label}: {r:?}");
    }
    api.assert_no_violations();
    messaging.assert_no_violations();
    server.stop().await.unwrap();
}
