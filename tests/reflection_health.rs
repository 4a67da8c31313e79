//! grpcurl-readiness: server reflection answers in both v1 and v1alpha, and health says SERVING.

mod common;

use common::*;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

macro_rules! reflection_list_services {
    ($pb:path, $channel:expr) => {{
        use $pb as r;
        let mut client = r::server_reflection_client::ServerReflectionClient::new($channel);
        let req = r::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(r::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let mut replies = client
            .server_reflection_info(tokio_stream::iter([req]))
            .await
            .unwrap()
            .into_inner();
        let reply = replies.message().await.unwrap().unwrap();
        match reply.message_response.unwrap() {
            r::server_reflection_response::MessageResponse::ListServicesResponse(list) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("unexpected reflection reply {other:?}"),
        }
    }};
}

macro_rules! reflection_describes_symbol {
    ($pb:path, $channel:expr, $symbol:expr) => {{
        use $pb as r;
        let mut client = r::server_reflection_client::ServerReflectionClient::new($channel);
        let req = r::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(r::server_reflection_request::MessageRequest::FileContainingSymbol($symbol.into())),
        };
        let mut replies = client.server_reflection_info(tokio_stream::iter([req])).await.unwrap().into_inner();
        let reply = replies.message().await.unwrap().unwrap();
        matches!(
            reply.message_response.unwrap(),
            r::server_reflection_response::MessageResponse::FileDescriptorResponse(f) if !f.file_descriptor_proto.is_empty()
        )
    }};
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_every_service() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let expected = [
        "credvault.v1.CredentialVault",
        "credvault.v1.Admin",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    let v1 = reflection_list_services!(tonic_reflection::pb::v1, server.channel().await);
    let v1alpha = reflection_list_services!(tonic_reflection::pb::v1alpha, server.channel().await);
    for list in [&v1, &v1alpha] {
        for service in expected {
            assert!(
                list.iter().any(|s| s == service),
                "{service} missing from {list:?}"
            );
        }
    }
    for symbol in [
        "credvault.v1.CredentialVault",
        "credvault.v1.ResolveResponse",
        "credvault.v1.KeyStatus",
        "google.rpc.BadRequest",
    ] {
        assert!(
            reflection_describes_symbol!(tonic_reflection::pb::v1, server.channel().await, symbol),
            "{symbol}"
        );
        assert!(
            reflection_describes_symbol!(
                tonic_reflection::pb::v1alpha,
                server.channel().await,
                symbol
            ),
            "{symbol}"
        );
    }
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_the_vault_service() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "credvault.v1.CredentialVault"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}
