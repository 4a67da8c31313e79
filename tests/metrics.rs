//! Prometheus metrics over a real scrape: the server's `metrics.listen` serves `/metrics`, a
//! Prometheus text parser reads it, counters move with the calls made, and no label holds a
//! secret, a phone number, an owner or a label.

mod common;
#[path = "common/etcd.rs"]
mod etcd;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;
#[path = "common/validate_env.rs"]
mod validate_env;

use std::net::SocketAddr;

use common::*;
use fake_twilio::RECIPIENT;
use validate_env::*;

/// The series are the process's: tests whose servers share this binary run one at a time, or
/// one's calls would move the other's counters.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn scrape(addr: SocketAddr) -> (String, prometheus_parse::Scrape) {
    // The gRPC port accepts (the test bound it) before the server has bound this one.
    let mut tries = 0;
    let reply = loop {
        match reqwest::get(format!("http://{addr}/metrics")).await {
            Ok(reply) => break reply,
            Err(e) if tries < 100 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no metrics at {addr}: {e}"),
        }
    };
    assert_eq!(reply.status(), 200);
    let text = reply.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("a Prometheus text exposition");
    (text, parsed)
}

/// The value of the sample `name` whose labels include all of `labels` (0 when absent).
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn a_scrape_parses_and_its_counters_move_with_the_calls() {
    let _one = ONE_AT_A_TIME.lock().await;
    let addr = free_port();
    let mut env = env_with(|c| c.metrics_listen = Some(addr)).await;
    let (_, before) = scrape(addr).await;
    assert_eq!(
        value(
            &before,
            "credvault_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    env.add("campaign-x9", token_credential()).await;
    env.resolve("campaign-x9", false).await.unwrap();
    env.resolve("campaign-x9", false).await.unwrap();
    env.resolve("missing", false).await.unwrap_err();
    let r = env.validate("campaign-x9", RECIPIENT, "").await.unwrap();
    assert!(r.result.unwrap().valid);

    let (text, after) = scrape(addr).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(
        moved(
            "credvault_requests_total",
            &[("method", "Resolve"), ("code", "OK")]
        ),
        2.0
    );
    assert_eq!(
        moved(
            "credvault_requests_total",
            &[("method", "Resolve"), ("code", "NOT_FOUND")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "credvault_requests_total",
            &[("method", "Add"), ("code", "OK")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "credvault_validations_total",
            &[("outcome", "valid"), ("twilio_code", "0")]
        ),
        1.0
    );
    assert_eq!(
        moved("credvault_test_sms_total", &[("result", "sent")]),
        1.0
    );
    // Latency: three Resolves observed, the first bucket below a millisecond.
    let count = |s: &prometheus_parse::Scrape| {
        s.samples
            .iter()
            .find(|x| {
                x.metric == "credvault_request_duration_seconds"
                    && x.labels.get("method") == Some("Resolve")
            })
            .and_then(|x| match &x.value {
                prometheus_parse::Value::Histogram(buckets) => buckets.last().map(|b| b.count),
                _ => None,
            })
            .unwrap_or(0.0)
    };
    assert_eq!(count(&after) - count(&before), 3.0);
    // The Add and the validation result were made durable by group flushes.
    let flushes = |s: &prometheus_parse::Scrape| {
        s.samples
            .iter()
            .find(|x| x.metric == "credvault_group_commit_writers")
            .and_then(|x| match &x.value {
                prometheus_parse::Value::Histogram(buckets) => buckets.last().map(|b| b.count),
                _ => None,
            })
            .unwrap_or(0.0)
    };
    assert!(
        flushes(&after) - flushes(&before) >= 1.0,
        "no group flush counted"
    );
    assert!(text.contains("le=\"0.0005\""), "no sub-millisecond bucket");

    // Nothing a caller sent shows: no owner, label, secret or number.
    for never in [OWNER, "campaign-x9", AUTH_TOKEN, RECIPIENT, ACCOUNT_SID] {
        assert!(!text.contains(never), "{never:?} in the metrics");
    }
    let other = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(other.status(), 404);
}

/// The stored-credentials gauge follows Adds and Deletes (a replace or a refused Add is no new
/// one) and is counted again at the next start; the rewrap gauges follow a key rotation's pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_count_and_the_rewrap_progress_are_gauges() {
    use credvault::proto::v1 as pb;
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    let addr = free_port();
    config.metrics_listen = Some(addr);
    let server = TestServer::start(config.clone()).await;
    let mut c = server.client().await;
    let stored = |s: &prometheus_parse::Scrape| value(s, "credvault_stored_credentials", &[]);
    assert_eq!(stored(&scrape(addr).await.1), 0.0);

    for label in ["a", "b", "c"] {
        c.add(add_request("acme", label, token_credential()))
            .await
            .unwrap();
    }
    let mut replace = add_request("acme", "a", api_key_credential());
    replace.replace = true;
    c.add(replace).await.unwrap();
    c.add(add_request("acme", "b", token_credential()))
        .await
        .unwrap_err();
    c.delete(delete_request("acme", "c")).await.unwrap();
    c.delete(delete_request("acme", "c")).await.unwrap_err();
    assert_eq!(stored(&scrape(addr).await.1), 2.0);

    let mut a = admin(server.channel().await, TEST_TOKEN);
    let idle = scrape(addr).await.1;
    assert_eq!(
        value(&idle, "credvault_rewrap_state", &[("state", "idle")]),
        1.0
    );
    assert_eq!(
        value(&idle, "credvault_rewrap_state", &[]),
        1.0,
        "one state at a time"
    );
    a.rotate_data_key(pb::RotateDataKeyRequest {})
        .await
        .unwrap();
    a.start_rewrap(pb::StartRewrapRequest {}).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let done = loop {
        let s = scrape(addr).await.1;
        if value(&s, "credvault_rewrap_state", &[("state", "running")]) == 0.0 {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "rewrap still running");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        value(&done, "credvault_rewrap_state", &[("state", "done")]),
        1.0
    );
    assert_eq!(value(&done, "credvault_rewrap_state", &[]), 1.0);
    // Admin's RPCs are counted like the vault's, by their own method names.
    for method in ["RotateDataKey", "StartRewrap"] {
        assert_eq!(
            value(
                &done,
                "credvault_requests_total",
                &[("method", method), ("code", "OK")]
            ),
            1.0,
            "{method}"
        );
    }
    assert_eq!(value(&done, "credvault_rewrap_target_key", &[]), 2.0);
    assert_eq!(value(&done, "credvault_rewrap_planned_records", &[]), 2.0);
    assert_eq!(value(&done, "credvault_rewrap_passed_records", &[]), 2.0);
    assert_eq!(
        value(&done, "credvault_rewrap_unreadable_records", &[]),
        0.0
    );
    server.stop().await.unwrap();

    let addr = free_port();
    config.metrics_listen = Some(addr);
    let server = TestServer::start(config).await;
    assert_eq!(stored(&scrape(addr).await.1), 2.0, "not counted at open");
    server.stop().await.unwrap();
}

/// Instances sharing etcd each keep the count of their own writes and count etcd again (a
/// count-only Range, at most every 10 s): A's gauge comes to show what B added and deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_etcd_the_stored_count_catches_up_with_other_instances() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let Some(etcd) = etcd::Etcd::start(&dir.path().join("etcd")) else {
        return;
    };
    let key = etcd::shared_root_key(dir.path());
    let instance = |name: &str| {
        let mut c = config(&dir.path().join(name));
        c.backend = credvault::config::Backend::Etcd;
        c.etcd.endpoints = vec![etcd.endpoint.clone()];
        c.master_key_file = Some(key.clone());
        c.metrics_listen = Some(free_port());
        c
    };
    let (config_a, config_b) = (instance("a"), instance("b"));
    let (metrics_a, metrics_b) = (
        config_a.metrics_listen.unwrap(),
        config_b.metrics_listen.unwrap(),
    );
    let stored = |s: &prometheus_parse::Scrape| value(s, "credvault_stored_credentials", &[]);

    let a = TestServer::start(config_a).await;
    let mut on_a = a.client().await;
    for label in ["a1", "a2"] {
        on_a.add(add_request("acme", label, token_credential()))
            .await
            .unwrap();
    }
    let b = TestServer::start(config_b).await;
    let mut on_b = b.client().await;
    for label in ["b1", "b2", "b3"] {
        on_b.add(add_request("acme", label, token_credential()))
            .await
            .unwrap();
    }
    on_b.delete(delete_request("acme", "a1")).await.unwrap();
    // B counted A's two at its start, and keeps its own writes at once.
    assert_eq!(stored(&scrape(metrics_b).await.1), 4.0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let seen = stored(&scrape(metrics_a).await.1);
        if seen == 4.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "A still shows {seen} stored credentials, not 4"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
