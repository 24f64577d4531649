//! Entry points of the parsers that read untrusted bytes, shared by the cargo-fuzz targets in
//! `fuzz/` and by the corpus replay test of the normal suite (`tests/fuzz_corpus.rs`), so
//! every input that ever crashed one is replayed on stable Rust in CI. Each takes arbitrary
//! bytes and must return — without panicking, hanging or allocating by a length it read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;

use crate::auth::{self, Credentials, Payload, RequestParts, RootCredentials, Verified};
use crate::rpc::wire;
use crate::s3::{features, router, xml, Ctx};

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// The targets, by the names of their `fuzz/fuzz_targets/*.rs` and corpus folders.
pub const TARGETS: &[(&str, Target)] = &[
    ("auth", auth),
    ("aws_chunked", aws_chunked),
    ("router", router),
    ("request_xml", request_xml),
    ("object_meta", object_meta),
    ("rpc_wire", rpc_wire),
];

/// A request written as text: `METHOD PATH[?QUERY]` on the first line, then `name: value`
/// header lines (names lower-cased, as the server hands them to the parsers).
struct TextRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
}

impl TextRequest {
    fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            method: &self.method,
            raw_path: &self.path,
            raw_query: &self.query,
            headers: &self.headers,
            host_bucket: None,
        }
    }
}

fn text_request(data: &[u8]) -> Option<TextRequest> {
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.lines();
    let (method, target) = lines.next()?.split_once(' ')?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(TextRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
    })
}

/// The clock the auth target checks signatures against: 2013-05-24T00:00:00Z, the date of
/// AWS's SigV4 examples, so their requests (and the corpus) verify.
fn fixed_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_369_353_600)
}

fn creds() -> RootCredentials {
    RootCredentials {
        access_key: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
    }
}

/// SigV4 and SigV2: headers, presigned queries, chunk-signing seeds.
pub fn auth(data: &[u8]) {
    let Some(r) = text_request(data) else { return };
    let parts = r.parts();
    let creds: &dyn Credentials = &creds();
    let _ = auth::verify(&parts, creds, "us-east-1", fixed_now());
    let _ = parts.query_pairs();
}

/// aws-chunked bodies, with and without a trailer. The first byte picks the mode.
pub fn aws_chunked(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let reader = std::io::Cursor::new(body.to_vec());
    let trailers = auth::chunked::Trailers::default();
    let stream = auth::chunked::decode(reader, None, mode & 1 == 1, trailers);
    futures::executor::block_on(stream.for_each(|_| async {}));
}

/// Request routing and the feature-header table over a text request.
pub fn router(data: &[u8]) {
    let Some(r) = text_request(data) else { return };
    let Ok(method) = http::Method::from_bytes(r.method.as_bytes()) else {
        return;
    };
    let Ok(target) = router::target(&r.path, None) else {
        return;
    };
    let parts = r.parts();
    let ctx = Ctx {
        method,
        target,
        query: parts.query_pairs(),
        headers: r.headers.clone(),
        verified: Verified {
            access_key: "fuzz".into(),
            payload: Payload::Unsigned,
            sts: false,
        },
        request_id: "fuzz".into(),
        identity: None,
        client_ip: None,
        secure: false,
        now_secs: 0,
    };
    if let Ok(op) = router::route(&ctx) {
        let _ = features::check(op, &ctx);
        let _ = features::write_condition(&ctx);
    }
}

/// Every XML body a request can carry.
pub fn request_xml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = xml::from_xml::<xml::CompleteMultipartUpload>(text, "CompleteMultipartUpload");
    let _ = xml::from_xml::<xml::DeleteRequest>(text, "Delete");
    let _ = xml::from_xml::<xml::CreateBucketConfiguration>(text, "CreateBucketConfiguration");
}

/// The per-object metadata file as read from a drive.
pub fn object_meta(data: &[u8]) {
    if let Ok(m) = crate::meta::ObjectMeta::decode(data) {
        // What decodes must encode and decode again to the same.
        let again = crate::meta::ObjectMeta::decode(&m.encode());
        assert!(again.is_ok_and(|a| a == m), "metadata does not round-trip");
    }
}

/// Internode messages as a node receives them.
pub fn rpc_wire(data: &[u8]) {
    let _ = wire::decode::<wire::DriveCall>(data);
    let _ = wire::decode::<Result<wire::DriveReply, wire::WireError>>(data);
    let _ = wire::decode::<wire::LockCall>(data);
    let _ = wire::decode::<wire::Hello>(data);
    let _ = wire::decode::<crate::heal::HealState>(data);
}
