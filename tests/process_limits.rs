//! The real binary at the edges of its process: out of file descriptors (the accept loop backs off
//! instead of spinning a core), and SIGTERM with RPCs that never end (the shutdown deadline).

#[path = "common/child.rs"]
mod child;
mod common;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use child::{ChildServer, Launch};
use credvault::proto::v1 as pb;
use fake_twilio::{Account, FakeTwilio, KeyKind};
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

/// User plus system CPU time the process has used (Linux `/proc/PID/stat`, in clock ticks of
/// 10 ms: `getconf CLK_TCK` is 100 on every Linux this runs on).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_turns_off_core_dumps_and_makes_its_files_private() {
    let root = tempfile::tempdir().unwrap();
    let server = ChildServer::start(&child::data_dir(root.path()));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(),
        ["0", "0"],
        "{core}"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    assert!(status.lines().any(|l| l == "Umask:\t0077"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_accept_loop_backs_off_and_recovers() {
    let root = tempfile::tempdir().unwrap();
    let launch = Launch {
        fd_limit: Some(64),
        ..Default::default()
    };
    let server = ChildServer::start_with(&child::data_dir(root.path()), &launch);
    // More connections than descriptors: the kernel completes them into the listen backlog and
    // accept(2) fails with EMFILE for as long as they wait there.
    let mut sockets = Vec::new();
    for _ in 0..120 {
        sockets.push(std::net::TcpStream::connect(server.addr).unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_time(server.pid());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_time(server.pid()) - before;
    assert!(
        used < Duration::from_millis(500),
        "the accept loop used {used:?} of CPU in 2 s while out of descriptors"
    );
    assert!(
        server.log().contains("backing off"),
        "no log line says why:\n{}",
        server.log()
    );
    drop(sockets);
    // Descriptors free again: new connections are served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await;
        if let Ok(channel) = channel {
            let checked = HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await;
            if checked.is_ok() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "never recovered:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_within_the_shutdown_deadline_despite_endless_rpcs() {
    // A Twilio that never answers, so a Validate stays in flight.
    let fake = FakeTwilio::start(Account {
        sid: common::ACCOUNT_SID.into(),
        auth_token: common::AUTH_TOKEN.into(),
        status: "active",
        api_key_sid: common::API_KEY_SID.into(),
        api_key_secret: common::API_KEY_SECRET.into(),
        key_restricted: None,
        key_kind: KeyKind::Standard,
        services: HashMap::from([(common::MG_SID.into(), common::ACCOUNT_SID.into())]),
        numbers: HashSet::new(),
    })
    .await;
    fake.delay(Some(Duration::from_secs(600)));
    let root = tempfile::tempdir().unwrap();
    let env = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let launch = Launch {
        env: vec![
            env("CREDVAULT_SHUTDOWN_TIMEOUT_MS", "1000"),
            env("CREDVAULT_TWILIO_API_BASE", &fake.base),
            env("CREDVAULT_TWILIO_MESSAGING_BASE", &fake.base),
        ],
        ..Default::default()
    };
    let mut server = ChildServer::start_with(&child::data_dir(root.path()), &launch);
    let channel = server.channel().await;
    let mut vault = server.client().await;
    vault
        .add(common::add_request(
            "acme",
            "prod",
            common::token_credential(),
        ))
        .await
        .unwrap();
    // An open Health/Watch stream never ends by itself, nor does this Validate.
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(watch.message().await.unwrap().is_some());
    let validate = tokio::spawn(async move {
        vault
            .validate(pb::ValidateRequest {
                owner: "acme".into(),
                label: "prod".into(),
                ..Default::default()
            })
            .await
    });
    while fake.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let signalled = Instant::now();
    server.sigterm();
    let status = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(15)));
    let took = signalled.elapsed();
    let log = server.log();
    let status = status.unwrap_or_else(|| panic!("still running 15 s after SIGTERM:\n{log}"));
    assert!(status.success(), "exit {status:?}:\n{log}");
    assert!(took < Duration::from_secs(5), "took {took:?}:\n{log}");
    assert!(log.contains("shutdown deadline passed"), "{log}");
    assert!(log.contains("credvault stopped"), "no final flush:\n{log}");
    assert!(validate.await.unwrap().is_err());
    // Everything acknowledged before survives: the store was flushed.
    let restarted = ChildServer::start(&child::data_dir(root.path()));
    restarted
        .client()
        .await
        .resolve(common::resolve_request("acme", "prod"))
        .await
        .unwrap();
}
