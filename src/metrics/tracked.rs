//! A response body that counts the bytes it hands to the connection and finishes its
//! request's counters (in flight, duration, canceled) when it ends or is dropped, then
//! tells whoever asked ([`Finished`]: the audit entry waits for this).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::instrument::InFlight;

/// Called once when a response ends: body bytes sent, time since the request arrived, and
/// whether the whole body went out.
pub type Finished = Box<dyn FnOnce(u64, std::time::Duration, bool) + Send>;

pub struct Tracked {
    inner: Body,
    inflight: Option<InFlight>,
    finished: Option<Finished>,
    sent: u64,
    api: Option<usize>,
    start: Instant,
    done: bool,
    /// The body's length when known: once that much is sent the answer is complete, even
    /// if the connection never polls for the end.
    left: Option<u64>,
}

impl Tracked {
    /// Wrap `inner`, the body of a request that arrived at `start` (`declared`: its
    /// `Content-Length`, which the connection stops at without polling for the end); the
    /// request stays in flight until the body ends.
    pub fn new(
        inner: Body,
        declared: Option<u64>,
        inflight: Option<InFlight>,
        api: Option<usize>,
        start: Instant,
        finished: Option<Finished>,
    ) -> Self {
        let left = inner.size_hint().exact().or(declared);
        Tracked {
            inner,
            inflight,
            finished,
            sent: 0,
            api,
            start,
            done: false,
            left,
        }
    }

    fn finish(&mut self, complete: bool) {
        if !self.done {
            self.done = true;
            let elapsed = self.start.elapsed();
            if let Some(inflight) = &self.inflight {
                inflight
                    .requests()
                    .stats(self.api)
                    .finish(elapsed, complete);
            }
            if let Some(f) = self.finished.take() {
                f(self.sent, elapsed, complete);
            }
        }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.sent += n;
                    if let Some(inflight) = &this.inflight {
                        inflight.requests().sent(n);
                    }
                    if let Some(left) = &mut this.left {
                        *left = left.saturating_sub(n);
                        if *left == 0 {
                            this.finish(true);
                        }
                    }
                }
            }
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // An empty body (HEAD, 204) may never be polled: it is complete all the same.
        let complete = self.inner.is_end_stream() || self.left == Some(0);
        self.finish(complete);
    }
}
