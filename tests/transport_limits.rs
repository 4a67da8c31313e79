//! The transport's limits over real sockets: one connection cannot starve the others, the
//! connection cap, the handshake deadline, keepalive pings, the server's RPC deadline, and load
//! shedding past the in-flight cap.

mod common;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;
#[path = "common/validate_env.rs"]
mod validate_env;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use validate_env::*;

/// HTTP/2's client connection preface and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

async fn health(channel: tonic::transport::Channel) -> Result<(), tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(drop)
}

/// One HTTP/2 frame as read off the wire: its type and payload.
type Frame = (u8, Vec<u8>);

/// Reads until the server closes the socket (EOF or reset), within `limit`; the HTTP/2 frames
/// seen on the way.
async fn until_closed(socket: &mut TcpStream, limit: Duration) -> Option<Vec<Frame>> {
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 4096];
        loop {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                frames.push((buf[3], buf[9..9 + len].to_vec()));
                buf.drain(..9 + len);
            }
        }
    })
    .await;
    closed.ok().map(|()| frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_connection_is_served_while_2000_slow_validations_wait_on_another() {
    let mut env = env_with(|c| c.limits.validate_queue = 5000).await;
    env.add("slow", token_credential()).await;
    env.add("fast", api_key_credential()).await;
    env.fake.delay(Some(Duration::from_secs(60)));
    let busy = env.server.channel().await;
    let calls: Vec<_> = (0..2000)
        .map(|_| {
            let mut c = client_for(busy.clone());
            tokio::spawn(async move { c.validate(validate_request("slow", "")).await })
        })
        .collect();
    // The validations are in: 16 at the (stalled) fake, the rest queued in the server or held
    // back by the connection's stream limit.
    let started = Instant::now();
    while env.fake.requests().len() < 16 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.fake.requests().len(), 16, "validations did not start");

    let fresh = env.server.channel().await;
    let asked = Instant::now();
    let mut c = client_for(fresh.clone());
    let got = c
        .resolve(resolve_request(OWNER, "fast"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.password, API_KEY_SECRET);
    health(fresh).await.unwrap();
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "a fresh connection waited {took:?}"
    );
    assert!(
        calls.iter().all(|c| !c.is_finished()),
        "validations are still pending"
    );
    for call in calls {
        call.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.max_connections = 3;
    let server = TestServer::start(cfg).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let channel = server.channel().await;
        health(channel.clone()).await.unwrap();
        open.push(channel);
    }
    let mut fourth = TcpStream::connect(server.addr).await.unwrap();
    let _ = fourth.write_all(PREFACE).await;
    assert!(
        until_closed(&mut fourth, Duration::from_secs(3))
            .await
            .is_some(),
        "the fourth connection was kept open"
    );
    for channel in &open {
        health(channel.clone()).await.unwrap();
    }
    // A slot frees up when a connection closes.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let attempt = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await;
        if let Ok(channel) = attempt {
            if health(channel).await.is_ok() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_no_request_in_time_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.handshake_timeout = Duration::from_millis(300);
    let server = TestServer::start(cfg).await;

    // Silent, and preface-then-silent (slowloris): both closed.
    for preface in [&b""[..], PREFACE] {
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        socket.write_all(preface).await.unwrap();
        let opened = Instant::now();
        assert!(
            until_closed(&mut socket, Duration::from_secs(5))
                .await
                .is_some(),
            "kept open"
        );
        assert!(opened.elapsed() >= Duration::from_millis(250));
    }

    // A connection that made a request may then idle past the timeout.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!(
        "http://{}/grpc.health.v1.Health/Check",
        server.addr
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        !connection.is_finished(),
        "a connection that made a request was closed by the handshake timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_pings_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.handshake_timeout = Duration::from_secs(60);
    cfg.limits.keepalive_interval = Duration::from_millis(200);
    cfg.limits.keepalive_timeout = Duration::from_millis(300);
    let server = TestServer::start(cfg).await;
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    socket.write_all(PREFACE).await.unwrap();
    // Never ACK anything: the server pings, gets no answer and closes.
    let frames = until_closed(&mut socket, Duration::from_secs(10))
        .await
        .expect("a dead peer was kept");
    const SETTINGS: u8 = 4;
    const PING: u8 = 6;
    let types: Vec<u8> = frames.iter().map(|(t, _)| *t).collect();
    assert!(
        types.contains(&PING),
        "no keepalive ping: frame types {types:?}"
    );
    // The server's SETTINGS cap concurrent streams per connection (id 3) at the default 128.
    let (_, settings) = frames.iter().find(|(t, _)| *t == SETTINGS).unwrap();
    let params: Vec<(u16, u32)> = settings
        .chunks(6)
        .map(|p| {
            (
                u16::from_be_bytes([p[0], p[1]]),
                u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
            )
        })
        .collect();
    assert!(params.contains(&(3, 128)), "SETTINGS {params:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_past_the_servers_deadline_are_deadline_exceeded() {
    let mut env = env_with(|c| c.limits.rpc_timeout = Duration::from_millis(500)).await;
    env.add("prod", token_credential()).await;
    env.fake.delay(Some(Duration::from_secs(10)));
    let started = Instant::now();
    let err = env.validate("prod", "", "").await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("server's deadline"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    env.resolve_valid("prod").await.unwrap_err();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_in_flight_cap_rpcs_are_shed_at_once() {
    let mut env = env_with(|c| c.limits.max_in_flight = 2).await;
    env.add("prod", token_credential()).await;
    env.fake.delay(Some(Duration::from_secs(30)));
    let held: Vec<_> = (0..2)
        .map(|_| {
            let mut c = env.client.clone();
            tokio::spawn(async move { c.validate(validate_request("prod", "")).await })
        })
        .collect();
    let started = Instant::now();
    while env.fake.requests().len() < 2 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = env
        .client
        .resolve(resolve_request(OWNER, "prod"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("limit of 2 RPCs"), "{err:?}");
    for h in held {
        h.abort();
    }
}
