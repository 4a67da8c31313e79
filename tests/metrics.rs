//! Prometheus metrics over a real scrape: the server's `metrics.listen` serves `/metrics`, a
//! Prometheus text parser reads it, counters move with the calls made, and no label holds a
//! secret, a phone number, an owner or a label.

mod common;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;
#[path = "common/validate_env.rs"]
mod validate_env;

use std::net::SocketAddr;

use common::*;
use fake_twilio::RECIPIENT;
use validate_env::*;

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
