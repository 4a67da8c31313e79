//! The request size limit, for every service: each gRPC message's length prefix is read as it
//! arrives, and one over the limit ends the RPC with RESOURCE_EXHAUSTED (what grpc-go, grpc-java
//! and C-core answer; tonic's own decoder says OUT_OF_RANGE) before its body is buffered.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tonic::Status;

/// Set once a request message broke the limit: `(its declared length, the limit)`. Shared by the
/// request body that finds it and the response that must report it.
#[derive(Clone, Default)]
pub struct Oversized(Arc<OnceLock<(u64, usize)>>);

impl Oversized {
    pub fn status(&self) -> Option<Status> {
        let (found, limit) = self.0.get()?;
        Some(Status::resource_exhausted(format!(
            "request message of {found} bytes is larger than the limit of {limit} bytes"
        )))
    }

    /// The response for an RPC whose request broke the limit ends RESOURCE_EXHAUSTED, whatever
    /// the service made of the cut-off stream: tonic's unary path already answers with our
    /// status, but a streaming service (reflection) may end its reply stream OK.
    pub fn apply(self, mut response: http::Response<Body>) -> http::Response<Body> {
        if let Some(status) = self.status() {
            let headers = response.headers_mut();
            if headers.contains_key("grpc-status") {
                let _ = status.add_header(headers);
            }
        }
        response.map(|body| {
            Body::new(Reported {
                inner: body,
                oversized: self,
            })
        })
    }
}

/// A request body that checks each message's 5-byte prefix (flag, u32 length) as it passes.
pub struct LimitedRequest {
    inner: Body,
    limit: usize,
    oversized: Oversized,
    /// Prefix bytes seen of the message being read, and how many body bytes of it remain.
    prefix: [u8; 5],
    prefix_len: usize,
    remaining: u64,
}

impl LimitedRequest {
    pub fn new(inner: Body, limit: usize, oversized: Oversized) -> Self {
        Self {
            inner,
            limit,
            oversized,
            prefix: [0; 5],
            prefix_len: 0,
            remaining: 0,
        }
    }

    /// Walks `data`; `Err` at the first prefix that declares too long a message.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = self.remaining.min(data.len() as u64);
                self.remaining -= skip;
                data = &data[skip as usize..];
                continue;
            }
            let take = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data = &data[take..];
            if self.prefix_len == 5 {
                self.prefix_len = 0;
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                if len as usize > self.limit {
                    let _ = self.oversized.0.set((u64::from(len), self.limit));
                    return Err(self.oversized.status().unwrap_or_else(|| {
                        Status::resource_exhausted("request message too large")
                    }));
                }
                self.remaining = u64::from(len);
            }
        }
        Ok(())
    }
}

impl HttpBody for LimitedRequest {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(status) = self.oversized.status() {
            return Poll::Ready(Some(Err(status)));
        }
        let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        if let Some(data) = frame.data_ref() {
            let data = data.clone();
            self.scan(data.chunk())?;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body whose trailers say RESOURCE_EXHAUSTED when the request broke the limit.
struct Reported {
    inner: Body,
    oversized: Oversized,
}

impl HttpBody for Reported {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let Some(Ok(frame)) = frame else {
            return Poll::Ready(frame);
        };
        match (self.oversized.status(), frame.into_trailers()) {
            (Some(status), Ok(mut trailers)) => {
                let _ = status.add_header(&mut trailers);
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            (_, Ok(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            (_, Err(frame)) => Poll::Ready(Some(Ok(frame))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut f = vec![0];
        f.extend_from_slice(&len.to_be_bytes());
        f.extend(std::iter::repeat_n(7u8, len.min(64) as usize));
        f
    }

    #[test]
    fn prefixes_are_found_across_chunk_boundaries() {
        let mut r = LimitedRequest::new(Body::empty(), 100, Oversized::default());
        let mut stream = frame(10);
        stream.extend(frame(64));
        // Fed one byte at a time: every prefix straddles a chunk boundary.
        for b in &stream {
            r.scan(std::slice::from_ref(b)).unwrap();
        }
        let mut big = frame(101);
        big.truncate(5);
        let split = big.split_off(2);
        r.scan(&big).unwrap();
        let err = r.scan(&split).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("101 bytes"), "{err:?}");
        assert!(r.oversized.status().is_some());
    }

    #[test]
    fn a_message_at_the_limit_passes() {
        let mut r = LimitedRequest::new(Body::empty(), 64, Oversized::default());
        r.scan(&frame(64)).unwrap();
        r.scan(&frame(0)).unwrap();
        assert!(r.oversized.status().is_none());
    }
}
