//! The fake's replies: Twilio's error body, JSON answers, and the raw replies Twilio would not
//! give (stalled, endless, off-spec bodies) that tests ask for.

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// A reply that Twilio would not give (or would, in ways the happy path never sees).
#[derive(Clone)]
pub enum Raw {
    /// This status, body and content type.
    Body(u16, &'static str, Vec<u8>),
    /// This status with a Content-Length header of `declared` bytes, then `sent` bytes, then a
    /// body that never ends.
    Stalled {
        status: u16,
        declared: u64,
        sent: usize,
    },
    /// This status and a chunked body (no Content-Length) that never ends.
    Endless(u16),
}

/// Twilio's error body, as in the spec: `{"code", "message", "more_info", "status"}`.
pub fn twilio_error(status: u16, code: i32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    });
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

pub(super) fn raw_reply(raw: Raw) -> Response {
    match raw {
        Raw::Body(status, content_type, body) => (
            StatusCode::from_u16(status).unwrap(),
            [(header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response(),
        Raw::Stalled {
            status,
            declared,
            sent,
        } => {
            let first = futures_stream(vec![0x20; sent]);
            let mut r = Response::new(axum::body::Body::from_stream(first));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            r.headers_mut().insert(
                header::CONTENT_LENGTH,
                declared.to_string().parse().unwrap(),
            );
            r
        }
        Raw::Endless(status) => {
            let chunk = Bytes::from(vec![b' '; 64 * 1024]);
            let body = tokio_stream::iter(std::iter::repeat_with(move || {
                Ok::<_, std::io::Error>(chunk.clone())
            }));
            let mut r = Response::new(axum::body::Body::from_stream(body));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            r
        }
    }
}

/// `bytes`, then nothing for ever.
fn futures_stream(
    bytes: Vec<u8>,
) -> impl tokio_stream::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    use tokio_stream::StreamExt;
    tokio_stream::once(Ok(Bytes::from(bytes))).chain(tokio_stream::pending())
}

pub(super) fn json_ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}
