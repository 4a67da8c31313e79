//! Hostile and malformed input over real HTTP/2: oversized messages, lying length prefixes,
//! garbage and deeply nested protobuf, invalid UTF-8, huge metadata, forged page tokens. Each gets
//! a clear status, and after each the server still answers a normal RPC.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::{Buf, BufMut, Bytes};
use common::{client_for, Client, TestServer};
use credvault::proto::v1 as pb;
use http_body_util::{BodyExt, Full};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, Service};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Sends message bytes as they are: tonic frames them, nothing encodes them.
#[derive(Clone, Default)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// Calls `method` of the vault service with `message` as its raw protobuf bytes.
async fn raw_call(channel: &Channel, method: &str, message: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("channel ready");
    let path = http::uri::PathAndQuery::try_from(format!("/credvault.v1.CredentialVault/{method}"))
        .unwrap();
    let mut req = tonic::Request::new(message);
    req.set_timeout(Duration::from_secs(10));
    grpc.unary(req, path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

/// The server still does real work: an Add and a Resolve of a fresh label.
async fn still_serving(client: &mut Client, label: &str) {
    let add = common::add_request("bad-input", label, common::token_credential());
    let added = client.add(add).await.expect("server still serves Add");
    assert_eq!(added.into_inner().credential.unwrap().version, 1);
    let resolved = client
        .resolve(common::resolve_request("bad-input", label))
        .await
        .expect("server still serves Resolve");
    assert_eq!(resolved.into_inner().password, common::AUTH_TOKEN);
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_resource_exhausted_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(common::config(dir.path())).await;
    let channel = server.channel().await;
    let mut client = client_for(channel.clone());

    // 100 KiB of API key secret: over the 64 KiB default.
    let mut cred = common::api_key_credential();
    if let Some(pb::twilio_credential::Auth::ApiKey(k)) = &mut cred.auth {
        k.api_key_secret = "x".repeat(100 * 1024);
    }
    let err = client
        .add(common::add_request("bad-input", "huge", cred))
        .await
        .unwrap_err();
    // RESOURCE_EXHAUSTED, as grpc-go, grpc-java and C-core answer (tonic alone says OUT_OF_RANGE).
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .contains("larger than the limit of 65536 bytes"),
        "unclear: {}",
        err.message()
    );
    assert!(!err.message().contains("xxxx"), "the payload is echoed");
    still_serving(&mut client, "after-huge").await;

    // A frame header that claims 2 GiB and sends 5 bytes: refused from the header alone, without
    // waiting for (or buffering) the claimed body.
    let mut body = vec![0u8];
    body.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
    body.extend_from_slice(b"hello");
    let (status, message) = raw_http2(&channel, server.addr, "Add", body).await;
    assert_eq!(status, Code::ResourceExhausted as i32, "{message}");
    assert!(message.contains("2147483647 bytes"), "{message}");
    still_serving(&mut client, "after-lying-prefix").await;

    // Health and reflection have the same limit (not tonic's 4 MiB) and the same answer.
    let err = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "h".repeat(100 * 1024),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "health: {err:?}");
    use tonic_reflection::pb::v1 as r;
    let huge = r::ServerReflectionRequest {
        host: "r".repeat(100 * 1024),
        message_request: Some(r::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut reflection = r::server_reflection_client::ServerReflectionClient::new(channel);
    let outcome = match reflection
        .server_reflection_info(tokio_stream::iter([huge]))
        .await
    {
        Err(status) => status,
        Ok(replies) => {
            let mut replies = replies.into_inner();
            loop {
                match replies.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("reflection ended OK after an oversized request"),
                    Err(status) => break status,
                }
            }
        }
    };
    assert_eq!(
        outcome.code(),
        Code::ResourceExhausted,
        "reflection: {outcome:?}"
    );
    still_serving(&mut client, "after-health-and-reflection").await;
    server.stop().await.unwrap();
}

/// Posts `body` as the whole gRPC request body (frame headers included) and returns the
/// grpc-status and grpc-message of the reply.
async fn raw_http2(
    channel: &Channel,
    addr: std::net::SocketAddr,
    method: &str,
    body: Vec<u8>,
) -> (i32, String) {
    let req = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{addr}/credvault.v1.CredentialVault/{method}"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(Full::new(Bytes::from(body))))
        .unwrap();
    let mut channel = channel.clone();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .expect("channel ready");
    let reply = tokio::time::timeout(Duration::from_secs(10), channel.call(req))
        .await
        .expect("server answers promptly")
        .expect("http/2 reply");
    let (parts, body) = reply.into_parts();
    let trailers = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("reply body ends promptly")
        .expect("reply body")
        .trailers()
        .cloned()
        .unwrap_or_default();
    let field = |name: &str| {
        trailers
            .get(name)
            .or_else(|| parts.headers.get(name))
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let status = field("grpc-status").expect("grpc-status").parse().unwrap();
    let message = field("grpc-message").unwrap_or_default();
    (status, percent_decode(&message))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_nested_and_non_utf8_protobuf_get_a_clear_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(common::config(dir.path())).await;
    let channel = server.channel().await;
    let mut client = client_for(channel.clone());

    let mut nested_groups = Vec::new();
    for _ in 0..30_000 {
        varint((99 << 3) | 3, &mut nested_groups); // field 99, start group
    }
    let mut deep_credential = vec![0x1a]; // field 3 (credential), length-delimited ...
    varint(u32::MAX as u64, &mut deep_credential); // ... claiming far more than is there
    deep_credential.extend_from_slice(&[0x12, 0x02, 0x0a, 0x00]);
    let mut non_utf8_owner = vec![0x0a, 0x04, 0xff, 0xfe, 0xc3, 0x28]; // owner: invalid UTF-8
    non_utf8_owner.extend_from_slice(&[0x12, 0x03, b'a', b'b', b'c']);
    let mut non_utf8_secret = vec![0x1a, 0x08, 0x12, 0x06, 0x0a, 0x04, 0xf0, 0x28, 0x8c, 0x28];
    non_utf8_secret.extend_from_slice(&[0x0a, 0x01, b'o', 0x12, 0x01, b'l']);
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "varint overflow",
            "Add",
            vec![
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ),
        ("truncated field", "Resolve", vec![0x0a, 0x10, b'a']),
        ("wire type 7", "List", vec![0x0f, 0x00]),
        ("30k nested groups", "Add", nested_groups),
        ("length beyond the message", "Add", deep_credential),
        ("non-UTF-8 owner", "Delete", non_utf8_owner),
        ("non-UTF-8 auth token", "Add", non_utf8_secret),
        (
            "random bytes",
            "Resolve",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
    ];
    for (what, method, bytes) in cases {
        let err = raw_call(&channel, method, bytes).await.expect_err(what);
        // Undecodable protobuf is INTERNAL by the gRPC status-code spec (tonic-prost follows
        // it); a message that happens to decode fails the field rules instead.
        let clear = (err.code() == Code::Internal
            && err
                .message()
                .starts_with("failed to decode Protobuf message"))
            || err.code() == Code::InvalidArgument;
        assert!(clear, "{what}: {err:?}");
        println!("{what}: {:?} {}", err.code(), err.message());
        still_serving(
            &mut client,
            &format!("after-{}", what.replace(' ', "-").to_lowercase()),
        )
        .await;
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_metadata_is_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(common::config(dir.path())).await;
    let mut client = server.client().await;

    for (what, headers) in [
        (
            "one 1 MiB header",
            vec![("x-pad".to_owned(), "a".repeat(1 << 20))],
        ),
        (
            "10k small headers",
            (0..10_000)
                .map(|i| (format!("x-h{i}"), "v".repeat(32)))
                .collect(),
        ),
    ] {
        let mut req = tonic::Request::new(common::resolve_request("bad-input", "nothing"));
        req.set_timeout(Duration::from_secs(10));
        for (k, v) in headers {
            req.metadata_mut().insert(
                tonic::metadata::MetadataKey::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let err = client.resolve(req).await.expect_err(what);
        // The server's HTTP/2 limit is 16 KiB of headers: the stream is refused before any
        // handler runs (never NOT_FOUND, which would mean the request was processed).
        assert_ne!(err.code(), Code::NotFound, "{what} was processed");
        println!("{what}: {:?} {}", err.code(), err.message());
        // A fresh connection, as a client would make after its connection was reset.
        let mut fresh = server.client().await;
        still_serving(
            &mut fresh,
            &format!("after-{}", what.replace(' ', "-").to_lowercase()),
        )
        .await;
        client = fresh;
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_foreign_page_tokens_are_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(common::config(dir.path())).await;
    let mut client = server.client().await;
    for owner in ["alice", "bob"] {
        for label in ["a", "m", "z"] {
            let add = common::add_request(
                owner,
                &format!("{owner}-{label}"),
                common::token_credential(),
            );
            client.add(add).await.unwrap();
        }
    }
    let token = |raw: &[u8]| URL_SAFE_NO_PAD.encode(raw);
    let mut forged = vec![
        "!!!".to_owned(),
        "AAAA".to_owned(),
        "=".to_owned(),
        "A".repeat(101),
        "\u{1F600}".to_owned(),
        token(&[1, b'U', b'P']),
        token(&[2, b'a', b'b']),
        token(&[1, 0xff, 0xfe]),
        token(&[1, b'a', b'/', b'.', b'.']),
        token(&[1]),
        token(b""),
    ];
    forged.push(token(&[&[1u8][..], "x".repeat(60).as_bytes()].concat()));
    for bad in forged {
        let err = client
            .list(pb::ListRequest {
                owner: "alice".into(),
                page_size: 2,
                page_token: bad.clone(),
            })
            .await;
        let err = match err {
            // The empty token is the first page, by contract.
            Ok(_) if bad.is_empty() => continue,
            Ok(page) => panic!("forged token {bad:?} accepted: {:?}", page.into_inner()),
            Err(e) => e,
        };
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}: {err:?}");
        assert_eq!(common::violated_fields(&err), ["page_token"], "{bad:?}");
    }

    // A token belongs to the owner whose List minted it: bob's token is refused for alice, and
    // so are tokens of the old format, which carried no owner.
    let bobs = client
        .list(pb::ListRequest {
            owner: "bob".into(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!bobs.next_page_token.is_empty());
    for page_token in [
        bobs.next_page_token.clone(),
        token(b"\x01alice-a"),
        token(b"\x01aaa"),
    ] {
        let err = client
            .list(pb::ListRequest {
                owner: "alice".into(),
                page_size: 50,
                page_token: page_token.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{page_token}: {err:?}");
        assert_eq!(common::violated_fields(&err), ["page_token"]);
    }
    assert!(
        client
            .list(pb::ListRequest {
                owner: "bob".into(),
                page_size: 50,
                page_token: bobs.next_page_token,
            })
            .await
            .unwrap()
            .into_inner()
            .credentials
            .iter()
            .all(|m| m.owner == "bob"),
        "bob's own token works for bob"
    );
    still_serving(&mut client, "after-tokens").await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_oversized_owner_gets_a_clear_status_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(common::config(dir.path())).await;
    let mut c = server.client().await;
    let huge = common::add_request(&"o".repeat(100 * 1024), "prod", common::token_credential());
    let err = c.add(huge).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(
        err.message().contains("larger than the limit"),
        "{}",
        err.message()
    );
    c.add(common::add_request(
        "acme",
        "prod",
        common::token_credential(),
    ))
    .await
    .unwrap();
}
