//! `cairn bench`: a warp-style S3 load generator. SigV4-signed requests over keep-alive
//! connections, objects prepared before GET/LIST/DELETE runs, fixed or random sizes, a
//! progress line while running, and at the end throughput, latency percentiles, time to
//! first byte and errors by code. [`null`] is the null server it is measured against.

mod histogram;
pub mod null;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use thiserror::Error;

use crate::auth::{sign_request, EMPTY_SHA256, UNSIGNED_PAYLOAD};
use histogram::Histogram;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("invalid size {0:?}: use 4KiB, 1MiB, 64MiB or range:1KiB-8MiB")]
    Size(String),
    #[error("invalid endpoint {0:?}: expected http://host:port or https://host:port")]
    Endpoint(String),
    #[error("unknown operation {0:?}: put, get, mixed, list, delete or multipart")]
    Op(String),
    #[error("setup failed: {0}")]
    Setup(String),
    #[error("TLS: {0}")]
    Tls(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Put,
    Get,
    Mixed,
    List,
    Delete,
    Multipart,
}

impl Op {
    pub fn parse(s: &str) -> Result<Op, BenchError> {
        Ok(match s {
            "put" => Op::Put,
            "get" => Op::Get,
            "mixed" => Op::Mixed,
            "list" => Op::List,
            "delete" => Op::Delete,
            "multipart" => Op::Multipart,
            _ => return Err(BenchError::Op(s.to_string())),
        })
    }
}

/// `4KiB`, `1MiB`, `64MiB`, `1000` (bytes), or `range:1KiB-8MiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub min: u64,
    pub max: u64,
}

pub fn parse_size(s: &str) -> Result<Sizes, BenchError> {
    let one = crate::units::parse_bytes;
    let err = || BenchError::Size(s.to_string());
    if let Some(r) = s.strip_prefix("range:") {
        let (a, b) = r.split_once('-').ok_or_else(err)?;
        let (min, max) = (one(a).ok_or_else(err)?, one(b).ok_or_else(err)?);
        if min > max {
            return Err(err());
        }
        return Ok(Sizes { min, max });
    }
    let n = one(s).ok_or_else(err)?;
    Ok(Sizes { min: n, max: n })
}

#[derive(Debug, Clone)]
pub struct Config {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub bucket: String,
    pub op: Op,
    pub sizes: Sizes,
    pub concurrency: usize,
    pub duration: Duration,
    /// Objects prepared for GET/mixed/list/delete.
    pub objects: usize,
    /// Leave what the run wrote (objects, and the bucket if it made it) in place; by
    /// default they are removed once the measurement ends, as warp does.
    pub keep_data: bool,
    /// Objects spread over this many prefixes (`cairn-bench/p{i mod n}/`), listed with
    /// delimiter `/`; 0 puts every object directly under `cairn-bench/`.
    pub prefixes: usize,
    /// Which certificates an https endpoint may present.
    pub trust: crate::tls::Trust,
}

/// Statistics of one operation type.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpStats {
    pub count: u64,
    pub bytes: u64,
    pub throughput_mib_s: f64,
    pub objects_s: f64,
    pub latency_ms: Percentiles,
    pub ttfb_ms: Percentiles,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Percentiles in milliseconds of a histogram of nanoseconds.
fn percentiles(h: &Histogram) -> Percentiles {
    let ms = |ns: u64| ns as f64 / 1e6;
    Percentiles {
        p50: ms(h.quantile(0.5)),
        p90: ms(h.quantile(0.9)),
        p99: ms(h.quantile(0.99)),
        max: ms(h.max()),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub op: Op,
    pub concurrency: usize,
    pub seconds: f64,
    pub size_min: u64,
    pub size_max: u64,
    pub ops: BTreeMap<String, OpStats>,
    /// Objects removed after the measurement (none with `keep_data`).
    pub removed: u64,
}

#[derive(Default)]
struct Samples {
    /// Nanoseconds.
    latency: Histogram,
    ttfb: Histogram,
    bytes: u64,
    errors: BTreeMap<String, u64>,
}

struct Bench {
    cfg: Config,
    host: String,
    target: Arc<wire::Target>,
    data: Bytes,
    /// Paths of the prepared objects (at least one, so a read always has a key).
    keys: Vec<String>,
}

/// One worker's keep-alive connection. The worker's own task drives it (no connection task,
/// no pool), and requests go out as prepared bytes ([`wire`]): a request costs no wake-up
/// of another task or thread and no request objects, which is what separated a general
/// HTTP client from `wrk` against the null server.
struct Conn {
    wire: wire::Wire,
    signatures: Signatures,
    /// The request head being sent.
    out: Vec<u8>,
    /// A monotonic instant and the wall-clock time it was, to date requests without
    /// another clock read.
    epoch: (Instant, SystemTime),
}

/// SigV4-signed heads of this second's reads (GET, HEAD), by request. The signed date has a
/// resolution of one second, so an identical request within the same second carries the
/// same signature: a worker replaying GETs of its objects signs each one once a second
/// instead of on every request (every request still carries a complete, valid signature).
/// Cleared when the second changes, so it holds at most one second's distinct reads.
#[derive(Default)]
struct Signatures {
    second: u64,
    /// Reused to spell the lookup key without allocating.
    scratch: String,
    /// Request line and headers, each line ending in CRLF, without the blank line.
    /// Keyed with a fast non-cryptographic hash: the keys are this client's own requests.
    by_request: HashMap<String, Vec<u8>, foldhash::fast::RandomState>,
}

impl Conn {
    fn new(target: &Arc<wire::Target>) -> Conn {
        Conn {
            wire: wire::Wire::to(target.clone()),
            signatures: Signatures::default(),
            out: Vec::with_capacity(1024),
            epoch: (Instant::now(), SystemTime::now()),
        }
    }

    fn wall_clock(&self, at: Instant) -> SystemTime {
        self.epoch.1 + at.saturating_duration_since(self.epoch.0)
    }
}

/// Outcome of one request: status, bytes moved, time to first byte.
struct Done {
    status: u16,
    bytes: u64,
    ttfb: Duration,
    code: Option<String>,
}

impl Bench {
    /// Writes the signed head of a request into `conn.out` (signatures reused within the
    /// second, see [`Signatures`]).
    fn build(
        &self,
        conn: &mut Conn,
        at: Instant,
        method: &str,
        path: &str,
        query: &str,
        len: usize,
    ) {
        let payload = if len == 0 {
            EMPTY_SHA256
        } else {
            UNSIGNED_PAYLOAD
        };
        let now = conn.wall_clock(at);
        let second = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signatures = &mut conn.signatures;
        if second != signatures.second {
            signatures.by_request.clear();
            signatures.second = second;
        }
        use std::fmt::Write as _;
        signatures.scratch.clear();
        for part in [method, " ", path, "?", query, " ", payload] {
            signatures.scratch.push_str(part);
        }
        conn.out.clear();
        match signatures.by_request.get(signatures.scratch.as_str()) {
            Some(head) => conn.out.extend_from_slice(head),
            None => {
                let signed = sign_request(
                    method,
                    path,
                    query,
                    &self.host,
                    payload,
                    &self.cfg.access_key,
                    &self.cfg.secret_key,
                    &self.cfg.region,
                    now,
                );
                // Origin-form target and an explicit Host.
                let sep = if query.is_empty() { "" } else { "?" };
                let mut head = format!(
                    "{method} {path}{sep}{query} HTTP/1.1\r\nHost: {}\r\n",
                    self.host
                );
                for (k, v) in signed {
                    let _ = write!(head, "{k}: {v}\r\n");
                }
                conn.out.extend_from_slice(head.as_bytes());
                // Only reads repeat a request; a write's key is new every time.
                if method == "GET" || method == "HEAD" {
                    signatures
                        .by_request
                        .insert(signatures.scratch.clone(), head.into_bytes());
                }
            }
        }
        if method == "PUT" || method == "POST" {
            // S3 wants a length even for empty bodies.
            let _ =
                std::io::Write::write_fmt(&mut conn.out, format_args!("Content-Length: {len}\r\n"));
        }
        conn.out.extend_from_slice(b"\r\n");
    }

    /// Sends a request and reads its reply, keeping `keep` bytes of the body (4 KiB of an
    /// error's).
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        conn: &mut Conn,
        at: Instant,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        keep: usize,
    ) -> Result<wire::Reply, String> {
        self.build(conn, at, method, path, query, body.len());
        conn.wire
            .exchange(
                at,
                &mut conn.out,
                body,
                method == "HEAD",
                keep,
                keep.max(4096),
            )
            .await
    }

    async fn request(
        &self,
        conn: &mut Conn,
        at: Instant,
        method: &str,
        path: &str,
        query: &str,
        body: Bytes,
    ) -> Result<Done, String> {
        let sent = body.len() as u64;
        let r = self.send(conn, at, method, path, query, &body, 0).await?;
        let code = (r.status >= 300).then(|| {
            let text = String::from_utf8_lossy(&r.body);
            text.split("<Code>")
                .nth(1)
                .and_then(|s| s.split("</Code>").next())
                .map_or_else(|| format!("HTTP {}", r.status), String::from)
        });
        Ok(Done {
            status: r.status,
            bytes: if method == "PUT" { sent } else { r.received },
            ttfb: r.ttfb,
            code,
        })
    }

    fn size(&self, rng: &mut impl Rng) -> usize {
        rng.gen_range(self.cfg.sizes.min..=self.cfg.sizes.max) as usize
    }

    fn key(&self, i: usize) -> String {
        object_path(&self.cfg.bucket, self.cfg.prefixes, i)
    }

    async fn put(
        &self,
        conn: &mut Conn,
        at: Instant,
        path: &str,
        rng: &mut impl Rng,
    ) -> Result<Done, String> {
        let len = self.size(rng).min(self.data.len());
        let start = rng.gen_range(0..=self.data.len() - len);
        self.request(
            conn,
            at,
            "PUT",
            path,
            "",
            self.data.slice(start..start + len),
        )
        .await
    }

    async fn multipart(
        &self,
        conn: &mut Conn,
        path: &str,
        rng: &mut impl Rng,
    ) -> Result<Done, String> {
        let size = self.size(rng);
        let start = Instant::now();
        let id = self.upload_id(conn, path).await?;
        let ttfb = start.elapsed();
        let part = (5usize << 20).max(size / 100);
        let mut etags = Vec::new();
        let mut sent = 0;
        let mut n = 1;
        while sent < size.max(1) {
            let len = part.min(size - sent).min(self.data.len()).max(1);
            let q = format!("partNumber={n}&uploadId={id}");
            etags.push((
                n,
                self.request_etag(conn, path, &q, self.data.slice(0..len))
                    .await?,
            ));
            sent += len;
            n += 1;
        }
        let xml: String = etags
            .iter()
            .map(|(n, e)| format!("<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"))
            .collect();
        let body = Bytes::from(format!(
            "<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>"
        ));
        let mut done = self
            .request(
                conn,
                Instant::now(),
                "POST",
                path,
                &format!("uploadId={id}"),
                body,
            )
            .await?;
        done.bytes = sent as u64;
        done.ttfb = ttfb;
        Ok(done)
    }

    async fn upload_id(&self, conn: &mut Conn, path: &str) -> Result<String, String> {
        let r = self
            .send(conn, Instant::now(), "POST", path, "uploads=", &[], 1 << 16)
            .await?;
        let out = String::from_utf8_lossy(&r.body);
        out.split("<UploadId>")
            .nth(1)
            .and_then(|s| s.split("</UploadId>").next())
            .map(String::from)
            .ok_or_else(|| "no upload id".to_string())
    }

    async fn request_etag(
        &self,
        conn: &mut Conn,
        path: &str,
        query: &str,
        body: Bytes,
    ) -> Result<String, String> {
        let r = self
            .send(conn, Instant::now(), "PUT", path, query, &body, 0)
            .await?;
        r.etag
            .filter(|_| r.status == 200)
            .ok_or_else(|| format!("part upload failed: HTTP {}", r.status))
    }
}

/// The path of the benchmark's `i`th object (under prefix `p{i mod prefixes}/` when the
/// objects are spread).
fn object_path(bucket: &str, prefixes: usize, i: usize) -> String {
    match i.checked_rem(prefixes) {
        Some(p) => format!("/{bucket}/cairn-bench/p{p}/obj-{i:08}"),
        None => format!("/{bucket}/cairn-bench/obj-{i:08}"),
    }
}

/// Run a benchmark; `progress` is called about once a second with (seconds, operations).
pub async fn run(cfg: Config, mut progress: impl FnMut(f64, u64)) -> Result<Report, BenchError> {
    let (base, host) = crate::client::parse_endpoint(&cfg.endpoint)
        .map_err(|_| BenchError::Endpoint(cfg.endpoint.clone()))?;
    let tls = base.starts_with("https://");
    let target = Arc::new(wire::Target {
        addr: if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.clone()
        } else if tls {
            format!("{host}:443")
        } else {
            format!("{host}:80")
        },
        tls: if tls {
            let name = host
                .rsplit_once(':')
                .map_or(host.as_str(), |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let name = rustls_pki_types::ServerName::try_from(name)
                .map_err(|_| BenchError::Endpoint(cfg.endpoint.clone()))?;
            let client = cfg
                .trust
                .client_config()
                .map_err(|e| BenchError::Tls(e.to_string()))?;
            Some((tokio_rustls::TlsConnector::from(client), name))
        } else {
            None
        },
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let data_len = cfg.sizes.max.clamp(1, 64 << 20) as usize;
    let mut data = vec![0u8; data_len];
    rng.fill(&mut data[..]);
    // The host goes into request heads verbatim: it must be a valid header value.
    http::HeaderValue::from_str(&host).map_err(|_| BenchError::Endpoint(cfg.endpoint.clone()))?;
    let prepared = match cfg.op {
        Op::Get | Op::Mixed | Op::List => cfg.objects,
        Op::Delete => cfg.objects.max(cfg.concurrency * 100),
        _ => 0,
    };
    let keys = (0..prepared.max(1))
        .map(|i| object_path(&cfg.bucket, cfg.prefixes, i))
        .collect();
    let bench = Arc::new(Bench {
        cfg: cfg.clone(),
        host,
        target,
        data: Bytes::from(data),
        keys,
    });
    // Set up: the bucket (made only when missing, so an identity without
    // s3:CreateBucket can use an existing one), and objects for operations that read or
    // remove them (only those missing, so a read-only identity can measure GETs of objects
    // someone else prepared).
    let mut conn = Conn::new(&bench.target);
    let bucket_path = format!("/{}", cfg.bucket);
    let head = bench
        .request(
            &mut conn,
            Instant::now(),
            "HEAD",
            &bucket_path,
            "",
            Bytes::new(),
        )
        .await
        .map_err(BenchError::Setup)?;
    let made_bucket = head.status == 404;
    if made_bucket {
        let mk = bench
            .request(
                &mut conn,
                Instant::now(),
                "PUT",
                &bucket_path,
                "",
                Bytes::new(),
            )
            .await
            .map_err(BenchError::Setup)?;
        if mk.status != 200 && mk.code.as_deref() != Some("BucketAlreadyOwnedByYou") {
            return Err(BenchError::Setup(format!(
                "cannot create bucket {}: {}",
                cfg.bucket,
                mk.code.as_deref().unwrap_or("no error code")
            )));
        }
    } else if head.status != 200 {
        return Err(BenchError::Setup(format!(
            "cannot use bucket {}: HTTP {}{}",
            cfg.bucket,
            head.status,
            if head.status == 403 {
                " (AccessDenied)"
            } else {
                ""
            }
        )));
    }
    let next = Arc::new(AtomicU64::new(0));
    let prep: Vec<_> = (0..cfg.concurrency.max(1))
        .map(|w| {
            let (bench, next) = (bench.clone(), next.clone());
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
                let mut conn = Conn::new(&bench.target);
                let mut created = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= prepared {
                        return Ok::<Vec<usize>, String>(created);
                    }
                    let key = &bench.keys[i];
                    let have = bench
                        .request(&mut conn, Instant::now(), "HEAD", key, "", Bytes::new())
                        .await?;
                    if have.status == 200 {
                        continue;
                    }
                    let d = bench.put(&mut conn, Instant::now(), key, &mut rng).await?;
                    if d.status != 200 {
                        return Err(format!(
                            "preparing objects: {} ({key})",
                            d.code.as_deref().unwrap_or("no error code")
                        ));
                    }
                    created.push(i);
                }
            })
        })
        .collect();
    // Objects this run made and so removes at the end (a delete run removes its own).
    let mut made: Vec<String> = Vec::new();
    for p in prep {
        let created = p
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?
            .map_err(BenchError::Setup)?;
        made.extend(created.into_iter().map(|i| bench.keys[i].clone()));
    }
    // The measured run.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let samples: Arc<Mutex<BTreeMap<&'static str, Samples>>> = Arc::default();
    let delete_next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..cfg.concurrency.max(1))
        .map(|w| {
            let (bench, stop, count, samples, delete_next) = (
                bench.clone(),
                stop.clone(),
                count.clone(),
                samples.clone(),
                delete_next.clone(),
            );
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(1000 + w as u64);
                let mut conn = Conn::new(&bench.target);
                let conn = &mut conn;
                let mut local: BTreeMap<&'static str, Samples> = BTreeMap::new();
                let mut mine: Vec<String> = Vec::new();
                let mut n = 0usize;
                // One clock read per request: a request starts when the previous one ended.
                let mut t = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let pick = rng.gen_range(0..100);
                    let (name, result) = match bench.cfg.op {
                        Op::Put => {
                            let own = bench.key(1_000_000 + w * 1_000_000 + n);
                            let r = bench.put(conn, t, &own, &mut rng).await;
                            mine.push(own);
                            ("PUT", r)
                        }
                        Op::Multipart => {
                            let own = bench.key(50_000_000 + w * 100_000 + n);
                            let r = bench.multipart(conn, &own, &mut rng).await;
                            mine.push(own);
                            ("MULTIPART", r)
                        }
                        Op::Get => (
                            "GET",
                            bench
                                .request(
                                    conn,
                                    t,
                                    "GET",
                                    &bench.keys[rng.gen_range(0..bench.keys.len())],
                                    "",
                                    Bytes::new(),
                                )
                                .await,
                        ),
                        Op::List => (
                            "LIST",
                            bench
                                .request(
                                    conn,
                                    t,
                                    "GET",
                                    &format!("/{}", bench.cfg.bucket),
                                    if bench.cfg.prefixes > 0 {
                                        "list-type=2&max-keys=1000&prefix=cairn-bench%2F&delimiter=%2F"
                                    } else {
                                        "list-type=2&max-keys=1000&prefix=cairn-bench%2F"
                                    },
                                    Bytes::new(),
                                )
                                .await,
                        ),
                        Op::Delete => {
                            let i = delete_next.fetch_add(1, Ordering::Relaxed) as usize;
                            if i >= prepared {
                                break;
                            }
                            (
                                "DELETE",
                                bench
                                    .request(conn, t, "DELETE", &bench.keys[i], "", Bytes::new())
                                    .await,
                            )
                        }
                        Op::Mixed => {
                            // Reads go to the prepared objects; writes to this worker's own
                            // keys, which are the only ones it deletes: no false NoSuchKey.
                            let key = &bench.keys[rng.gen_range(0..bench.keys.len())];
                            match pick {
                                0..45 => (
                                    "GET",
                                    bench.request(conn, t, "GET", key, "", Bytes::new()).await,
                                ),
                                45..75 => (
                                    "STAT",
                                    bench.request(conn, t, "HEAD", key, "", Bytes::new()).await,
                                ),
                                75..90 => {
                                    let own = bench.key(10_000_000 + w * 1_000_000 + n);
                                    let r = bench.put(conn, t, &own, &mut rng).await;
                                    if r.as_ref().is_ok_and(|d| d.code.is_none()) {
                                        mine.push(own);
                                    }
                                    ("PUT", r)
                                }
                                _ => match mine.pop() {
                                    Some(own) => (
                                        "DELETE",
                                        bench
                                            .request(conn, t, "DELETE", &own, "", Bytes::new())
                                            .await,
                                    ),
                                    None => (
                                        "STAT",
                                        bench.request(conn, t, "HEAD", key, "", Bytes::new()).await,
                                    ),
                                },
                            }
                        }
                    };
                    let end = Instant::now();
                    let latency = end.duration_since(t);
                    t = end;
                    let s = local.entry(name).or_default();
                    match result {
                        Ok(d) if d.code.is_none() => {
                            s.latency.record(latency.as_nanos() as u64);
                            s.ttfb.record(d.ttfb.as_nanos() as u64);
                            s.bytes += d.bytes;
                        }
                        Ok(d) => *s.errors.entry(d.code.unwrap_or_default()).or_default() += 1,
                        Err(e) => *s.errors.entry(format!("transport: {e}")).or_default() += 1,
                    }
                    n += 1;
                    // The shared counter only feeds the progress line: batched, so the
                    // workers do not bounce its cache line between cores on every request.
                    if n.is_multiple_of(32) {
                        count.fetch_add(32, Ordering::Relaxed);
                    }
                }
                count.fetch_add(n as u64 % 32, Ordering::Relaxed);
                let mut all = samples.lock();
                for (k, v) in local {
                    let e = all.entry(k).or_default();
                    e.latency.merge(&v.latency);
                    e.ttfb.merge(&v.ttfb);
                    e.bytes += v.bytes;
                    for (code, c) in v.errors {
                        *e.errors.entry(code).or_default() += c;
                    }
                }
                // What this worker wrote and did not delete (a failed write may have
                // landed all the same: its key is removed too).
                mine
            })
        })
        .collect();
    // The progress clock is a plain thread, so the runtime needs no timer driver (whose
    // bookkeeping on every park of a worker showed in the client's profile).
    let tick = Arc::new(tokio::sync::Notify::new());
    {
        let (tick, stop, every) = (
            tick.clone(),
            stop.clone(),
            Duration::from_millis(250).min(cfg.duration),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(every);
                tick.notify_one();
            }
        });
    }
    while start.elapsed() < cfg.duration && !workers.iter().all(|w| w.is_finished()) {
        tick.notified().await;
        progress(start.elapsed().as_secs_f64(), count.load(Ordering::Relaxed));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        if let Ok(written) = w.await {
            made.extend(written);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut ops = BTreeMap::new();
    for (name, s) in std::mem::take(&mut *samples.lock()) {
        let count = s.latency.len();
        ops.insert(
            name.to_string(),
            OpStats {
                count,
                bytes: s.bytes,
                throughput_mib_s: s.bytes as f64 / seconds / (1 << 20) as f64,
                objects_s: count as f64 / seconds,
                latency_ms: percentiles(&s.latency),
                ttfb_ms: percentiles(&s.ttfb),
                errors: s.errors,
            },
        );
    }
    let removed = if cfg.keep_data {
        0
    } else {
        if cfg.op == Op::Delete {
            // Prepared objects the run did not get to.
            // (Spread over prefixes, the keys are not in sorted order: a set, not a search.)
            let done = (delete_next.load(Ordering::Relaxed) as usize).min(prepared);
            let deleted: std::collections::HashSet<&String> = bench.keys[..done].iter().collect();
            made.retain(|k| !deleted.contains(k));
        }
        remove(&bench, made, made_bucket).await
    };
    Ok(Report {
        op: cfg.op,
        concurrency: cfg.concurrency,
        seconds,
        size_min: cfg.sizes.min,
        size_max: cfg.sizes.max,
        ops,
        removed,
    })
}

/// Remove `keys` (concurrently, as the run ran), then the bucket when the run made it
/// and it is empty. Returns how many objects went; failures are left behind, not fatal.
async fn remove(bench: &Arc<Bench>, keys: Vec<String>, bucket: bool) -> u64 {
    let keys = Arc::new(keys);
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..bench.cfg.concurrency.max(1))
        .map(|_| {
            let (bench, keys, next) = (bench.clone(), keys.clone(), next.clone());
            tokio::spawn(async move {
                let mut conn = Conn::new(&bench.target);
                let mut removed = 0u64;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(key) = keys.get(i) else {
                        return removed;
                    };
                    let r = bench
                        .request(&mut conn, Instant::now(), "DELETE", key, "", Bytes::new())
                        .await;
                    if r.is_ok_and(|d| d.code.is_none()) {
                        removed += 1;
                    }
                }
            })
        })
        .collect();
    let mut removed = 0;
    for w in workers {
        removed += w.await.unwrap_or(0);
    }
    if bucket {
        let mut conn = Conn::new(&bench.target);
        let path = format!("/{}", bench.cfg.bucket);
        let _ = bench
            .request(&mut conn, Instant::now(), "DELETE", &path, "", Bytes::new())
            .await;
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(
            parse_size("4KiB").ok(),
            Some(Sizes {
                min: 4096,
                max: 4096
            })
        );
        assert_eq!(
            parse_size("64MiB").ok(),
            Some(Sizes {
                min: 64 << 20,
                max: 64 << 20
            })
        );
        assert_eq!(
            parse_size("range:1KiB-8MiB").ok(),
            Some(Sizes {
                min: 1024,
                max: 8 << 20
            })
        );
        assert!(parse_size("range:8MiB-1KiB").is_err());
        assert!(parse_size("lots").is_err());
    }
}
