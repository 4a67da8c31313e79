//! Periodic re-validation (`revalidate.every`) over real gRPC against the fake Twilio: a key
//! Twilio stops accepting turns INVALID within one period, a 429 pauses it for its Retry-After,
//! its schedule survives a restart (it comes from `checked_at`), it runs at most 2 at a time at
//! the configured request rate, never texts anyone, and stops at shutdown.

mod common;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;
#[path = "common/validate_env.rs"]
mod validate_env;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use credvault::proto::v1 as pb;
use tonic::Code;
use validate_env::*;

/// A period short enough for a test: due 1.6–1.8 s after a check, looked at every 200 ms.
const EVERY: Duration = Duration::from_secs(2);

async fn revalidating(every: Duration, tweak: impl FnOnce(&mut credvault::Config)) -> Env {
    env_with(|c| {
        c.revalidate.every = Some(every);
        c.revalidate.requests_per_second = 1000;
        tweak(c);
    })
    .await
}

fn checked_at(status: &pb::ValidationStatus) -> SystemTime {
    let t = status.checked_at.as_ref().expect("checked_at");
    SystemTime::UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos as u32)
}

/// Polls List every 50 ms until `done` holds for the label's status, for `within` at most.
async fn wait_for(
    env: &mut Env,
    label: &str,
    within: Duration,
    done: impl Fn(&pb::ValidationStatus) -> bool,
) -> pb::ValidationStatus {
    let end = Instant::now() + within;
    loop {
        let (_, status) = env.listed(label).await;
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < end, "not within {within:?}: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn add_valid(env: &mut Env, label: &str) -> pb::ValidationStatus {
    env.add(label, token_credential()).await;
    let r = env.validate(label, "", "").await.unwrap();
    assert!(r.result.unwrap().valid);
    env.listed(label).await.1
}

/// Adds and validates "sms-0" .. "sms-{n-1}"; their statuses after that first check.
async fn add_valid_labels(env: &mut Env, n: usize) -> Vec<pb::ValidationStatus> {
    let mut firsts = Vec::new();
    for i in 0..n {
        firsts.push(add_valid(env, &format!("sms-{i}")).await);
    }
    firsts
}

/// Until each "sms-{i}" was checked again after `firsts[i]`.
async fn wait_all_checked_again(env: &mut Env, firsts: &[pb::ValidationStatus]) {
    for (i, first) in firsts.iter().enumerate() {
        let label = format!("sms-{i}");
        wait_for(env, &label, Duration::from_secs(20), |s| {
            checked_at(s) > checked_at(first)
        })
        .await;
    }
}

#[tokio::test]
async fn a_revoked_credential_turns_invalid_within_one_period() {
    let mut env = revalidating(EVERY, |_| {}).await;
    let first = add_valid(&mut env, "sms").await;
    assert_eq!(first.state(), pb::ValidationState::Valid);
    env.resolve_valid("sms").await.unwrap();

    // Twilio stops accepting the token (revoked, rotated elsewhere).
    env.fake.update(|a| a.auth_token = "0".repeat(32));
    let flipped = wait_for(&mut env, "sms", EVERY * 3, |s| {
        s.state() == pb::ValidationState::Invalid
    })
    .await;
    let after = checked_at(&flipped)
        .duration_since(checked_at(&first))
        .unwrap();
    assert!(
        after >= EVERY.mul_f64(0.8) && after <= EVERY + Duration::from_secs(1),
        "re-checked {after:?} after the last check, period {EVERY:?}"
    );
    assert_eq!(flipped.twilio_error_code, 20003, "{flipped:?}");
    assert!(
        flipped
            .message
            .contains("Twilio refused the Account SID and Auth Token"),
        "{flipped:?}"
    );
    // A campaign asking for a valid credential now gets none.
    let refused = env.resolve_valid("sms").await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    let logs = logs_text();
    assert!(
        logs.contains("credential no longer valid: Twilio rejected it on re-validation"),
        "no warning of the flip in the logs"
    );
    no_secret(&logs);
    assert!(env.fake.sent().is_empty(), "re-validation sent an SMS");
    env.fake.assert_clean();
}

/// Twilio's answers for an account that is no longer active (20005) or suspended (20403) flip
/// a VALID credential just as a revoked token does.
#[tokio::test]
async fn an_inactive_or_suspended_account_turns_invalid() {
    let mut env = revalidating(EVERY, |_| {}).await;
    for (label, status, code, message, reason) in [
        (
            "inactive",
            401,
            20005,
            "Account not active",
            "is not active",
        ),
        ("suspended", 403, 20403, "Forbidden", "lacks the permission"),
    ] {
        let first = add_valid(&mut env, label).await;
        let body = serde_json::json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        });
        env.fake.reply_raw(
            &account_path(),
            fake_twilio::Raw::Body(status, "application/json", body.to_string().into_bytes()),
        );
        let flipped = wait_for(&mut env, label, EVERY * 3, |s| {
            s.state() == pb::ValidationState::Invalid
        })
        .await;
        assert!(checked_at(&flipped) > checked_at(&first));
        assert_eq!(flipped.twilio_error_code, code, "{flipped:?}");
        assert!(flipped.message.contains(reason), "{flipped:?}");
        env.fake.clear_raw();
        env.delete(label).await;
    }
}

#[tokio::test]
async fn a_credential_never_validated_is_checked_too_and_one_deleted_is_skipped() {
    let mut env = revalidating(EVERY, |_| {}).await;
    env.add("fresh", token_credential()).await;
    env.add("gone", token_credential()).await;
    env.delete("gone").await;
    let status = wait_for(&mut env, "fresh", EVERY * 3, |s| {
        s.state() == pb::ValidationState::Valid
    })
    .await;
    assert!(status.checked_at.is_some());
    assert!(env.fake.sent().is_empty());
    env.fake.assert_clean();
}

#[tokio::test]
async fn a_429_pauses_revalidation_for_its_retry_after() {
    // No retries inside one check: the first 429 ends it, and the walk must wait.
    let mut env = revalidating(EVERY, |c| c.twilio.max_retries = 0).await;
    let first = add_valid(&mut env, "sms").await;
    env.fake.fail_next_with_429_after(1, 3);
    let again = wait_for(&mut env, "sms", Duration::from_secs(10), |s| {
        checked_at(s) > checked_at(&first)
    })
    .await;
    assert_eq!(again.state(), pb::ValidationState::Valid, "{again:?}");
    let limited = env.fake.rate_limited_at();
    assert_eq!(limited.len(), 1, "one 429 served");
    let next = env
        .fake
        .request_times()
        .into_iter()
        .find(|t| *t > limited[0])
        .expect("a request after the 429");
    let waited = next - limited[0];
    assert!(
        waited >= Duration::from_millis(2900),
        "asked Twilio again {waited:?} after a 429 with Retry-After: 3"
    );
    env.fake.assert_clean();
}

#[tokio::test]
async fn after_a_restart_the_next_check_is_due_from_checked_at() {
    let every = Duration::from_secs(4);
    let mut env = revalidating(every, |_| {}).await;
    let before = Instant::now();
    add_valid(&mut env, "sms").await;
    let validated = env.count(&account_path());
    // Down for longer than half the period: a schedule counted from the start would come late,
    // one that checks everything at start would come early.
    env.restart(Duration::from_millis(2500)).await;
    let end = Instant::now() + Duration::from_secs(10);
    while env.count(&account_path()) == validated {
        assert!(Instant::now() < end, "no re-validation after the restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (requests, times) = (env.fake.requests(), env.fake.request_times());
    let came = requests
        .iter()
        .zip(&times)
        .filter(|(r, _)| **r == account_path())
        .nth(validated)
        .map(|(_, t)| *t - before)
        .unwrap();
    assert!(
        came >= every.mul_f64(0.8) - Duration::from_millis(50),
        "re-checked {came:?} after the check: before 80% of the period"
    );
    assert!(
        came <= every + Duration::from_millis(1500),
        "re-checked {came:?} after the check: the restart moved the schedule"
    );
}

#[tokio::test]
async fn at_most_two_checks_run_at_once() {
    let mut env = revalidating(EVERY, |_| {}).await;
    let firsts = add_valid_labels(&mut env, 6).await;
    env.fake.delay(Some(Duration::from_millis(300)));
    env.fake.reset_max_in_flight();
    wait_all_checked_again(&mut env, &firsts).await;
    assert_eq!(env.fake.max_in_flight(), 2, "checks at once");
}

#[tokio::test]
async fn its_requests_are_paced_to_the_configured_rate() {
    let mut env = revalidating(EVERY, |c| c.revalidate.requests_per_second = 5).await;
    let firsts = add_valid_labels(&mut env, 4).await;
    let from = env.fake.request_times().len();
    wait_all_checked_again(&mut env, &firsts).await;
    let times = env.fake.request_times();
    let paced = &times[from..];
    assert!(paced.len() >= 8, "{} requests", paced.len());
    for pair in paced.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(150),
            "two requests {gap:?} apart at 5 a second"
        );
    }
}

#[tokio::test]
async fn shutdown_stops_a_check_in_flight() {
    let mut env = revalidating(Duration::from_secs(1), |_| {}).await;
    add_valid(&mut env, "sms").await;
    let seen = env.fake.requests().len();
    env.fake.delay(Some(Duration::from_secs(30)));
    let end = Instant::now() + Duration::from_secs(10);
    while env.fake.requests().len() == seen {
        assert!(Instant::now() < end, "no re-validation started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), env.server.shutdown())
        .await
        .expect("shutdown waited for a re-validation")
        .unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(5));
    let after = env.fake.requests().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        env.fake.requests().len(),
        after,
        "asked Twilio after stopping"
    );
}
