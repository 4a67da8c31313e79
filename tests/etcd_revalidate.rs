//! Re-validation with several instances on one etcd: one instance at a time re-validates (it
//! holds the etcd lock), and when it stops, another takes over. Each instance has a fake Twilio
//! of its own, so the fakes tell which instance asked.

mod common;
#[path = "common/etcd.rs"]
mod etcd;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;
#[path = "common/validate_env.rs"]
mod validate_env;

use std::time::{Duration, Instant};

use common::*;
use credvault::proto::v1 as pb;
use fake_twilio::FakeTwilio;
use validate_env::*;

const EVERY: Duration = Duration::from_secs(1);

async fn instance(
    dir: &std::path::Path,
    name: &str,
    endpoint: &str,
    key: &std::path::Path,
    fake: &FakeTwilio,
) -> TestServer {
    let mut c = config(&dir.join(name));
    c.backend = credvault::config::Backend::Etcd;
    c.etcd.endpoints = vec![endpoint.to_owned()];
    c.master_key_file = Some(key.to_owned());
    c.twilio.api_base = fake.base.clone();
    c.twilio.messaging_base = fake.base.clone();
    c.revalidate.every = Some(EVERY);
    c.revalidate.requests_per_second = 1000;
    TestServer::start(c).await
}

fn asked(fake: &FakeTwilio) -> usize {
    fake.requests()
        .iter()
        .filter(|r| **r == account_path())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_revalidates_at_a_time_and_another_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let Some(etcd) = etcd::Etcd::start(&dir.path().join("etcd")) else {
        return;
    };
    let key = etcd::shared_root_key(dir.path());
    let (fake_a, fake_b) = (
        FakeTwilio::start(account()).await,
        FakeTwilio::start(account()).await,
    );
    let a = instance(dir.path(), "a", &etcd.endpoint, &key, &fake_a).await;
    let mut on_a = a.client().await;
    on_a.list(pb::ListRequest {
        owner: OWNER.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let b = instance(dir.path(), "b", &etcd.endpoint, &key, &fake_b).await;
    b.client().await; // serving
    for i in 0..3 {
        on_a.add(add_request(OWNER, &format!("sms-{i}"), token_credential()))
            .await
            .unwrap();
    }

    // Several periods: every credential is re-checked, each time by the same one instance.
    let end = Instant::now() + Duration::from_secs(20);
    while asked(&fake_a) + asked(&fake_b) < 9 {
        assert!(Instant::now() < end, "no re-validation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (by_a, by_b) = (asked(&fake_a), asked(&fake_b));
    assert!(
        by_a == 0 || by_b == 0,
        "both instances re-validated: {by_a} and {by_b} checks"
    );
    let (holder, mut standby, standby_fake) = if by_a > 0 {
        (a, b, &fake_b)
    } else {
        (b, a, &fake_a)
    };

    // The holder stops (and releases the lock): the other takes over, within its retry of the
    // lock (half the lock's 10 s TTL) and a period.
    holder.stop().await.unwrap();
    let before = asked(standby_fake);
    let end = Instant::now() + Duration::from_secs(15);
    while asked(standby_fake) == before {
        assert!(Instant::now() < end, "the other instance did not take over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    standby.shutdown().await.unwrap();
    fake_a.assert_clean();
    fake_b.assert_clean();
}
