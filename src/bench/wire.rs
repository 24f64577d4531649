//! The load generator's HTTP/1.1 connection: a request goes out as one prepared head (plus
//! its body) and the response is parsed in place from one reused buffer, the way `wrk`
//! does it. No request or header-map objects, no connection task: what a request costs the
//! client is a `write`, a `read` or two and a header parse, so the client measures the
//! server rather than itself.

use std::time::{Duration, Instant};

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Read buffer size: a response head must fit, bodies stream through it.
const BUF: usize = 64 << 10;
/// Bodies up to this size are copied behind the head and sent with it in one write.
const INLINE_BODY: usize = 16 << 10;

/// A response read to its end.
pub(super) struct Reply {
    pub status: u16,
    /// The `ETag` header, if any (part uploads need it).
    pub etag: Option<String>,
    /// Time from sending to a complete response head.
    pub ttfb: Duration,
    /// Body bytes received.
    pub received: u64,
    /// The body's first bytes, up to what the caller asked to keep.
    pub body: Vec<u8>,
}

/// How the response body is delimited.
#[derive(Clone, Copy)]
enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// Where connections go: `host:port`, and the TLS client and server name for `https`.
pub(super) struct Target {
    pub addr: String,
    pub tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
}

/// A connection, plain or TLS.
enum Stream {
    Plain(TcpStream),
    /// Buffered under TLS: rustls reads 4 KiB at a time.
    Tls(Box<tokio_rustls::client::TlsStream<tokio::io::BufReader<TcpStream>>>),
}

impl Stream {
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(b).await,
            Stream::Tls(s) => {
                s.write_all(b).await?;
                s.flush().await
            }
        }
    }

    async fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(b).await,
            Stream::Tls(s) => s.read(b).await,
        }
    }
}

async fn connect(target: &Target) -> std::io::Result<Stream> {
    let tcp = TcpStream::connect(&target.addr).await?;
    let _ = tcp.set_nodelay(true);
    Ok(match &target.tls {
        None => Stream::Plain(tcp),
        Some((connector, name)) => {
            let tcp = tokio::io::BufReader::with_capacity(64 << 10, tcp);
            Stream::Tls(Box::new(connector.connect(name.clone(), tcp).await?))
        }
    })
}

pub(super) struct Wire {
    target: Arc<Target>,
    stream: Option<Stream>,
    buf: Vec<u8>,
    /// `buf[at..end]` holds bytes read but not yet consumed.
    at: usize,
    end: usize,
}

impl Wire {
    /// A plain connection to `host` (`host:port`).
    #[cfg(test)]
    pub fn new(host: &str) -> Wire {
        Wire::to(Arc::new(Target {
            addr: host.to_string(),
            tls: None,
        }))
    }

    pub fn to(target: Arc<Target>) -> Wire {
        Wire {
            target,
            stream: None,
            buf: vec![0; BUF],
            at: 0,
            end: 0,
        }
    }

    /// Sends `head` (request line and headers, ending with the blank line) and `body`, and
    /// reads the whole response, keeping up to `keep` bytes of its body (`keep_errors` when
    /// the status is an error). A failed exchange drops the connection; the next one
    /// reconnects.
    pub async fn exchange(
        &mut self,
        start: Instant,
        head: &mut Vec<u8>,
        body: &[u8],
        is_head: bool,
        keep: usize,
        keep_errors: usize,
    ) -> Result<Reply, String> {
        let r = self
            .try_exchange(start, head, body, is_head, keep, keep_errors)
            .await;
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    async fn try_exchange(
        &mut self,
        start: Instant,
        head: &mut Vec<u8>,
        body: &[u8],
        is_head: bool,
        keep: usize,
        keep_errors: usize,
    ) -> Result<Reply, String> {
        if self.stream.is_none() {
            let stream = connect(&self.target)
                .await
                .map_err(|e| crate::tls::explain(&e.to_string()))?;
            self.stream = Some(stream);
            self.at = 0;
            self.end = 0;
        }
        {
            let Some(stream) = self.stream.as_mut() else {
                return Err("not connected".into());
            };
            if body.len() <= INLINE_BODY {
                head.extend_from_slice(body);
                stream.write_all(head).await.map_err(|e| e.to_string())?;
            } else {
                stream.write_all(head).await.map_err(|e| e.to_string())?;
                stream.write_all(body).await.map_err(|e| e.to_string())?;
            }
        }
        let (status, etag, framing, close) = self.read_head(is_head).await?;
        let ttfb = start.elapsed();
        let keep = if status >= 300 { keep_errors } else { keep };
        let mut kept = Vec::new();
        let received = match framing {
            Framing::Length(n) => self.read_body(n, keep, &mut kept).await?,
            Framing::Chunked => self.read_chunked(keep, &mut kept).await?,
            Framing::Close => self.read_body(u64::MAX, keep, &mut kept).await?,
        };
        if close || matches!(framing, Framing::Close) {
            self.stream = None;
        }
        Ok(Reply {
            status,
            etag,
            ttfb,
            received,
            body: kept,
        })
    }

    /// Reads more bytes behind the unconsumed ones; 0 at end of stream.
    async fn fill(&mut self) -> Result<usize, String> {
        if self.at == self.end {
            self.at = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.at..self.end, 0);
            self.end -= self.at;
            self.at = 0;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err("not connected".into());
        };
        let n = stream
            .read(&mut self.buf[self.end..])
            .await
            .map_err(|e| e.to_string())?;
        self.end += n;
        Ok(n)
    }

    /// Parses the response head: status, ETag, body framing, whether the server closes.
    async fn read_head(
        &mut self,
        is_head: bool,
    ) -> Result<(u16, Option<String>, Framing, bool), String> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf[self.at..self.end]) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.unwrap_or(0);
                    let mut etag = None;
                    let mut length = None;
                    let mut chunked = false;
                    let mut close = resp.version == Some(0);
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let v = std::str::from_utf8(h.value).ok();
                            length = Some(
                                v.and_then(|v| v.trim().parse::<u64>().ok())
                                    .ok_or("bad Content-Length")?,
                            );
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = h.value.eq_ignore_ascii_case(b"chunked");
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close = h.value.eq_ignore_ascii_case(b"close");
                        } else if h.name.eq_ignore_ascii_case("etag") {
                            etag = Some(String::from_utf8_lossy(h.value).into_owned());
                        }
                    }
                    self.at += len;
                    let framing = if is_head || status == 204 || status == 304 || status < 200 {
                        Framing::Length(0)
                    } else if chunked {
                        Framing::Chunked
                    } else if let Some(n) = length {
                        Framing::Length(n)
                    } else {
                        Framing::Close
                    };
                    return Ok((status, etag, framing, close));
                }
                Ok(httparse::Status::Partial) => {
                    if self.at == 0 && self.end == self.buf.len() {
                        return Err("response head too large".into());
                    }
                }
                Err(e) => return Err(format!("bad response: {e}")),
            }
            if self.fill().await? == 0 {
                return Err("connection closed".into());
            }
        }
    }

    /// Consumes up to `n` body bytes (to end of stream for `u64::MAX`), keeping the first
    /// `keep` in `kept`; returns how many were consumed.
    async fn read_body(&mut self, n: u64, keep: usize, kept: &mut Vec<u8>) -> Result<u64, String> {
        let mut got = 0u64;
        while got < n {
            if self.at == self.end && self.fill().await? == 0 {
                if n == u64::MAX {
                    break;
                }
                return Err("connection closed in a body".into());
            }
            let take = ((n - got) as usize).min(self.end - self.at);
            if kept.len() < keep {
                let k = take.min(keep - kept.len());
                kept.extend_from_slice(&self.buf[self.at..self.at + k]);
            }
            self.at += take;
            got += take as u64;
        }
        Ok(got)
    }

    /// One CRLF-terminated line (a chunk size or trailer), without its CRLF.
    async fn read_line(&mut self) -> Result<String, String> {
        loop {
            if let Some(i) = self.buf[self.at..self.end]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                let line = String::from_utf8_lossy(&self.buf[self.at..self.at + i]).into_owned();
                self.at += i + 2;
                return Ok(line);
            }
            if self.at == 0 && self.end == self.buf.len() {
                return Err("chunk line too long".into());
            }
            if self.fill().await? == 0 {
                return Err("connection closed in a chunked body".into());
            }
        }
    }

    async fn read_chunked(&mut self, keep: usize, kept: &mut Vec<u8>) -> Result<u64, String> {
        let mut total = 0u64;
        loop {
            let line = self.read_line().await?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size, 16).map_err(|_| "bad chunk size")?;
            if size == 0 {
                // Trailers, up to the blank line.
                while !self.read_line().await?.is_empty() {}
                return Ok(total);
            }
            total += self.read_body(size, keep, kept).await?;
            if !self.read_line().await?.is_empty() {
                return Err("chunk not followed by CRLF".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request (read up to its blank line, bodies ignored)
    /// with the next canned response, byte for byte, in `split`-byte writes.
    async fn canned(responses: Vec<&'static [u8]>, split: usize) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut buf = Vec::new();
            for r in responses {
                loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..i + 4);
                        break;
                    }
                    let mut b = [0u8; 4096];
                    let n = s.read(&mut b).await.expect("read");
                    assert!(n > 0, "client went away");
                    buf.extend_from_slice(&b[..n]);
                }
                for piece in r.chunks(split) {
                    s.write_all(piece).await.expect("write");
                    s.flush().await.expect("flush");
                    tokio::task::yield_now().await;
                }
            }
        });
        addr
    }

    fn get() -> Vec<u8> {
        b"GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()
    }

    #[tokio::test]
    async fn framings_on_one_keep_alive_connection() {
        for split in [1, 3, 1000] {
            let addr = canned(
                vec![
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"abc\"\r\n\r\nhello",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                    b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\n<Cod\r\n3\r\ne>N\r\n0\r\nT: v\r\n\r\n",
                    b"HTTP/1.1 204 No Content\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
                ],
                split,
            )
            .await;
            let mut w = Wire::new(&addr);
            let r = w
                .exchange(Instant::now(), &mut get(), b"", false, 2, 100)
                .await
                .expect("1");
            assert_eq!((r.status, r.received), (200, 5));
            assert_eq!(r.body, b"he");
            assert_eq!(r.etag.as_deref(), Some("\"abc\""));
            // A HEAD's Content-Length announces a body that never comes.
            let r = w
                .exchange(Instant::now(), &mut get(), b"", true, 10, 10)
                .await
                .expect("2");
            assert_eq!((r.status, r.received), (200, 0));
            let r = w
                .exchange(Instant::now(), &mut get(), b"", false, 0, 100)
                .await
                .expect("3");
            assert_eq!((r.status, r.received), (404, 7));
            assert_eq!(r.body, b"<Code>N");
            let r = w
                .exchange(Instant::now(), &mut get(), b"", false, 0, 100)
                .await
                .expect("4");
            assert_eq!((r.status, r.received), (204, 0));
            let r = w
                .exchange(Instant::now(), &mut get(), b"", false, 100, 0)
                .await
                .expect("5");
            assert_eq!(r.body, b"until the end");
            assert!(
                w.stream.is_none(),
                "a closing server's connection is dropped"
            );
        }
    }

    #[tokio::test]
    async fn a_truncated_body_is_an_error_and_drops_the_connection() {
        let addr = canned(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
            100,
        )
        .await;
        let mut w = Wire::new(&addr);
        let e = w
            .exchange(Instant::now(), &mut get(), b"", false, 0, 0)
            .await;
        assert!(e.is_err());
        assert!(w.stream.is_none());
    }

    #[tokio::test]
    async fn garbage_is_an_error() {
        let addr = canned(vec![b"SPDY/9 what\r\n\r\n"], 100).await;
        let mut w = Wire::new(&addr);
        assert!(w
            .exchange(Instant::now(), &mut get(), b"", false, 0, 0)
            .await
            .is_err());
    }
}
