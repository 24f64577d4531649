//! The admin API (`/cairn/admin/v1/…`, JSON, SigV4 with the root credentials) and its client.
//!
//! * `GET  info` — deployment, sets, drives (online/offline/healing, used/total), heal state;
//! * `POST heal?bucket=&prefix=&deep=&dry-run=` — start (or attach to) a heal; its status;
//! * `GET  heal/status` — heal state: running heal, replaced-drive trackers, workers, usage;
//! * `POST heal/speed?value=slow|normal|fast` — change heal pacing at runtime;
//! * `POST drive/replace?endpoint=` — the unformatted, empty drive `endpoint` is a real
//!   replacement: format it into its slot and heal its set onto it;
//! * `GET  quota?bucket=&prefix=` — a bucket's (or prefix's) hard quota and usage;
//! * `PUT  quota?bucket=&prefix=&size=` — set it (`size=0` removes it);
//! * `GET  pools` — the server pools: space, state, decommission and rebalance progress;
//! * `POST|DELETE pools/decommission?pool=N|ARG` — start or cancel a pool's decommission;
//! * `POST|DELETE pools/rebalance` — start or stop a rebalance.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::{self, RequestParts};
use crate::heal::{HealState, Healer, SequenceStatus, Speed};
use crate::object::HealOptions;
use crate::s3::S3State;

pub use crate::api::ADMIN_PREFIX as PREFIX;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriveInfo {
    pub endpoint: String,
    /// `online`, `offline` or `healing`.
    pub state: String,
    /// Why an offline drive is offline: `root missing`, `not mounted`, `device changed`,
    /// `format missing`, `timing out`, `unreachable: ...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub total: u64,
    pub used: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetInfo {
    /// The server pool (1-based).
    #[serde(default)]
    pub pool: usize,
    pub index: usize,
    pub data: usize,
    pub parity: usize,
    pub drives: Vec<DriveInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `host:port`, or `local` for a single-node deployment.
    pub node: String,
    /// `online` or `offline` (as this node sees it).
    pub state: String,
    pub drives_online: usize,
    pub drives: usize,
}

/// `GET /cairn/admin/v1/metrics`: what this node has served since it started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    /// S3 requests answered by this node, by operation (only those seen at least once).
    pub requests: std::collections::BTreeMap<String, crate::s3::counters::Outcomes>,
    /// Sums over every operation (the console's live charts take differences of these).
    #[serde(default)]
    pub totals: Totals,
}

/// Every request this node answered since it started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub received_bytes: u64,
    pub sent_bytes: u64,
    pub inflight: i64,
    /// Sum and count of the times to the last byte, for mean latencies.
    pub duration_secs: f64,
    pub duration_count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Info {
    pub version: String,
    pub deployment_id: String,
    pub region: String,
    /// The node that answered.
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub nodes: Vec<NodeInfo>,
    pub sets: Vec<SetInfo>,
    /// The server pools: capacity, state, decommission progress.
    #[serde(default)]
    pub pools: Vec<crate::heal::PoolStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<crate::object::RebalanceStatus>,
    pub heal: HealState,
    /// The scanner as this node runs it (cycles stay 0 on nodes that are not the leader).
    #[serde(default)]
    pub scanner: crate::heal::ScannerStatus,
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// An error answer's code, kept on the response for its audit entry.
#[derive(Clone)]
struct ErrorCode(String);

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let mut r = json(
        status,
        &serde_json::json!({ "code": code, "message": message }),
    );
    r.extensions_mut().insert(ErrorCode(code.to_string()));
    r
}

fn object_error(e: crate::object::ObjectError) -> Response<Body> {
    let e = crate::s3::error::S3Error::from(e);
    error(e.status, e.code, &e.message)
}

/// The node a drive endpoint is on (`local` for a path).
fn node_of(endpoint: &str) -> String {
    endpoint
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or("local")
        .to_string()
}

/// This node's heal state with every reachable peer's replaced-drive trackers (a replaced
/// drive heals on the node that holds it) and the most recent lifecycle pass (it runs on the
/// leading node). Workers, queue and speed stay this node's.
async fn cluster_heal_state(state: &S3State, healer: &Healer) -> HealState {
    let mut heal = healer.state();
    let remote = futures::future::join_all(
        state
            .peers
            .iter()
            .map(|p| async move { crate::heal::peer_state(p).await }),
    )
    .await;
    for h in remote.into_iter().flatten() {
        heal.replacements.extend(h.replacements);
        if (h.lifecycle.last_finished, h.lifecycle.running)
            > (heal.lifecycle.last_finished, heal.lifecycle.running)
        {
            heal.lifecycle = h.lifecycle;
        }
    }
    heal
}

pub async fn info(state: &S3State, healer: &Healer) -> Info {
    let heal = cluster_heal_state(state, healer).await;
    let pools = healer.pools_status().await.unwrap_or_default();
    let healing: Vec<&str> = heal
        .replacements
        .iter()
        .filter(|t| !t.finished)
        .map(|t| t.drive.as_str())
        .collect();
    let mut sets = Vec::new();
    let mut first_slot = 0;
    for set in state.store.sets() {
        let mut drives = Vec::new();
        let set_first = first_slot;
        first_slot += set.size();
        for (pos, d) in set.drives.iter().enumerate() {
            let slot = set_first + pos;
            let (endpoint, disk, reason) = match d {
                Some(d) => {
                    let status = match d.probe().await {
                        Ok(p) => state.store.drive_status(slot, &p),
                        Err(e) => crate::drive::DriveStatus::Offline(
                            crate::drive::OfflineReason::Unreachable(e.to_string()),
                        ),
                    };
                    match status {
                        crate::drive::DriveStatus::Offline(r) => {
                            (d.name().to_string(), None, Some(r.to_string()))
                        }
                        _ => (d.name().to_string(), d.disk_info().await.ok(), None),
                    }
                }
                None => (
                    format!("set {} drive {pos} (missing)", set.index),
                    None,
                    Some("not found at start".to_string()),
                ),
            };
            let state = match &disk {
                None => "offline",
                Some(_) if healing.contains(&endpoint.as_str()) => "healing",
                Some(_) => "online",
            };
            let reason = match (&disk, reason) {
                (None, None) => Some("unreachable".to_string()),
                (_, r) => r,
            };
            drives.push(DriveInfo {
                reason,
                state: state.to_string(),
                total: disk.as_ref().map_or(0, |i| i.total),
                used: disk.as_ref().map_or(0, |i| i.total.saturating_sub(i.free)),
                endpoint,
            });
        }
        sets.push(SetInfo {
            pool: set.pool + 1,
            index: set.index,
            data: set.size() - set.parity,
            parity: set.parity,
            drives,
        });
    }
    let mut nodes: Vec<NodeInfo> = Vec::new();
    for d in sets.iter().flat_map(|s| s.drives.iter()) {
        let name = node_of(&d.endpoint);
        let i = match nodes.iter().position(|n| n.node == name) {
            Some(i) => i,
            None => {
                nodes.push(NodeInfo {
                    node: name.clone(),
                    state: "offline".into(),
                    drives_online: 0,
                    drives: 0,
                });
                nodes.len() - 1
            }
        };
        nodes[i].drives += 1;
        if d.state != "offline" {
            nodes[i].drives_online += 1;
        }
    }
    for n in &mut nodes {
        let up = state.node.as_deref() == Some(n.node.as_str())
            || n.node == "local"
            || state
                .peers
                .iter()
                .any(|p| p.node == n.node && p.is_online());
        n.state = if up { "online" } else { "offline" }.into();
    }
    Info {
        version: env!("CARGO_PKG_VERSION").to_string(),
        deployment_id: state.store.deployment_id().to_string(),
        region: state.region.clone(),
        node: state.node.clone().unwrap_or_else(|| "local".into()),
        nodes,
        sets,
        pools: pools.pools,
        rebalance: pools.rebalance,
        heal,
        scanner: healer.scanner_status(),
    }
}

/// The admin action an API call needs (MinIO's names).
fn action_of(method: &Method, route: &str) -> Option<&'static str> {
    Some(match (method.as_str(), route) {
        ("GET", "info") => "admin:ServerInfo",
        ("GET", "metrics") => "admin:Prometheus",
        ("GET", "trace") => "admin:ServerTrace",
        ("POST", "heal") | ("GET", "heal/status") | ("POST", "heal/speed") => "admin:Heal",
        ("POST", "drive/replace") => "admin:Heal",
        ("GET", "pools") => "admin:ServerInfo",
        ("POST", "pools/decommission") | ("DELETE", "pools/decommission") => "admin:Decommission",
        ("POST", "pools/rebalance") | ("DELETE", "pools/rebalance") => "admin:Rebalance",
        ("GET", "kms/status") | ("GET", "kms/rotate") => "admin:KMSKeyStatus",
        ("POST", "kms/rotate") | ("DELETE", "kms/rotate") => "admin:KMSKeyRotate",
        ("GET", "quota") => "admin:GetBucketQuota",
        ("PUT", "quota") => "admin:SetBucketQuota",
        ("PUT", "iam/user") => "admin:CreateUser",
        ("GET", "iam/users") => "admin:ListUsers",
        ("GET", "iam/user") => "admin:GetUser",
        ("POST", "iam/user/enable") => "admin:EnableUser",
        ("POST", "iam/user/disable") => "admin:DisableUser",
        ("DELETE", "iam/user") => "admin:DeleteUser",
        ("PUT", "iam/group") => "admin:AddUserToGroup",
        ("DELETE", "iam/group") => "admin:RemoveUserFromGroup",
        ("GET", "iam/groups") => "admin:ListGroups",
        ("GET", "iam/group") => "admin:GetGroup",
        ("POST", "iam/group/enable") => "admin:EnableGroup",
        ("POST", "iam/group/disable") => "admin:DisableGroup",
        ("PUT", "iam/policy") => "admin:CreatePolicy",
        ("GET", "iam/policies") => "admin:ListUserPolicies",
        ("GET", "iam/policy") => "admin:GetPolicy",
        ("DELETE", "iam/policy") => "admin:DeletePolicy",
        ("POST", "iam/policy/attach") | ("POST", "iam/policy/detach") => {
            "admin:AttachUserOrGroupPolicy"
        }
        ("PUT", "iam/accesskey") => "admin:CreateServiceAccount",
        ("GET", "iam/accesskeys") => "admin:ListServiceAccounts",
        ("DELETE", "iam/accesskey") => "admin:RemoveServiceAccount",
        _ => return None,
    })
}

/// A pools call's answer: the pools' status, or why it was refused.
fn pools_answer(r: Result<crate::heal::PoolsStatus, crate::heal::PoolError>) -> Response<Body> {
    use crate::heal::PoolError;
    match r {
        Ok(s) => json(StatusCode::OK, &s),
        Err(PoolError::Object(e)) => object_error(e),
        Err(e @ PoolError::NoSuchPool(_)) => {
            error(StatusCode::NOT_FOUND, "NoSuchPool", &e.to_string())
        }
        Err(e @ PoolError::NoSpace { .. }) => {
            error(StatusCode::CONFLICT, "InsufficientCapacity", &e.to_string())
        }
        Err(e) => error(StatusCode::CONFLICT, "InvalidPoolState", &e.to_string()),
    }
}

fn iam_error(e: crate::iam::IamError) -> Response<Body> {
    use crate::iam::IamError;
    match e {
        IamError::Invalid(m) => error(StatusCode::BAD_REQUEST, "InvalidArgument", &m),
        IamError::Policy(p) => error(StatusCode::BAD_REQUEST, "MalformedPolicy", &p.0),
        IamError::NotFound(m) => error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{m} does not exist"),
        ),
        IamError::Exists(m) => error(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("{m} already exists"),
        ),
        e => {
            tracing::warn!(error = %e, "IAM change failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &e.to_string(),
            )
        }
    }
}

fn done(r: crate::iam::IamResult<()>) -> Response<Body> {
    match r {
        Ok(()) => json(StatusCode::OK, &serde_json::json!({ "ok": true })),
        Err(e) => iam_error(e),
    }
}

/// What `PUT iam/user` carries.
#[derive(Debug, Serialize, Deserialize)]
pub struct NewUser {
    pub secret_key: String,
}

/// What `PUT|DELETE iam/group` carries.
#[derive(Debug, Serialize, Deserialize, Default)]
pub struct Members {
    #[serde(default)]
    pub members: Vec<String>,
}

pub use crate::api::NewAccessKey;

/// A live trace: this node's entries matching `filter` (and every other node's with
/// `all_nodes`) as JSON lines, until the client hangs up.
fn trace(state: &S3State, filter: &crate::audit::trace::Filter, all_nodes: bool) -> Response<Body> {
    use futures::StreamExt;
    let hub = state.observers.trace();
    let mut streams = vec![hub
        .subscribe(filter.clone())
        .into_lines(state.observers.node().to_string())
        .boxed()];
    if all_nodes {
        for p in &state.peers {
            streams.push(crate::audit::trace::relay(p.clone(), filter).boxed());
        }
    }
    let merged = futures::stream::select_all(streams).map(Ok::<_, std::convert::Infallible>);
    let mut r = Response::new(Body::from_stream(merged));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    r
}

/// Largest admin request body (a policy document, a key's policy).
const MAX_BODY: usize = 64 * 1024;

/// What an admin request turned out to be, for its audit entry.
#[derive(Default)]
struct Seen {
    access_key: String,
    action: Option<&'static str>,
}

/// Serve one admin request under a span with its request id (also answered in
/// `x-amz-request-id`), and hand its audit entry (who, which admin action, outcome) to the
/// audit sinks and live traces, as for S3 requests. A streamed answer (a live trace) is
/// audited when it starts.
pub async fn handle(
    state: Arc<S3State>,
    healer: Arc<Healer>,
    req: Request<Body>,
    request_id: &str,
) -> Response<Body> {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "admin",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    async move {
        let arrived = SystemTime::now();
        let start = std::time::Instant::now();
        let client = req
            .extensions()
            .get::<crate::conn::ClientAddr>()
            .map(|a| a.0.ip().to_string())
            .unwrap_or_default();
        let user_agent = req
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let rx = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut seen = Seen::default();
        let resp = serve(&state, &healer, req, &mut seen).await;
        let status = resp.status();
        tracing::debug!(status = status.as_u16(), action = seen.action, "done");
        if !state.observers.active() {
            return resp;
        }
        let error_code = resp
            .extensions()
            .get::<ErrorCode>()
            .map(|c| c.0.clone())
            .unwrap_or_default();
        let tx = resp
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let elapsed = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        state.observers.publish(&crate::audit::Entry {
            version: "1".into(),
            deployment_id: state.observers.deployment().to_string(),
            time: crate::audit::timestamp(arrived),
            node: state.observers.node().to_string(),
            request_id: request_id.to_string(),
            access_key: seen.access_key,
            remote_host: client,
            user_agent,
            api: crate::audit::Api {
                name: seen.action.unwrap_or("Unknown").to_string(),
                status: status.canonical_reason().unwrap_or("").to_string(),
                status_code: status.as_u16(),
                error_code,
                rx,
                tx,
                time_to_first_byte_ns: elapsed,
                time_to_response_ns: elapsed,
                ..Default::default()
            },
        });
        resp
    }
    .instrument(span)
    .await
}

async fn serve(
    state: &Arc<S3State>,
    healer: &Arc<Healer>,
    req: Request<Body>,
    seen: &mut Seen,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let headers = crate::s3::header_pairs(&parts.headers);
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let req_parts = RequestParts {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: &raw_query,
        headers: &headers,
        host_bucket: None,
    };
    let checked = match parts.extensions.get::<crate::s3::OnBehalfOf>() {
        Some(crate::s3::OnBehalfOf(key)) => Ok(auth::Verified::on_behalf_of(key)),
        None => auth::verify(
            &req_parts,
            state.iam.as_ref(),
            &state.region,
            SystemTime::now(),
        ),
    };
    let verified = match checked {
        Ok(v) => v,
        Err(e) => {
            let e = crate::s3::error::S3Error::from(e);
            return error(e.status, e.code, &e.message);
        }
    };
    seen.access_key = verified.access_key.clone();
    let identity = match crate::s3::identify(state, &verified, &req_parts) {
        Ok(Some(i)) => i,
        Ok(None) => return error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied."),
        Err(e) => return error(e.status, e.code, &e.message),
    };
    let route = parts.uri.path().strip_prefix(PREFIX).unwrap_or("");
    let Some(action) = action_of(&parts.method, route) else {
        return error(StatusCode::NOT_FOUND, "NotFound", "no such admin API");
    };
    seen.action = Some(action);
    let query = req_parts.query_pairs();
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // A user manages access keys of its own without admin rights (as MinIO).
    let own_keys = match route {
        "iam/accesskeys" => q("user").is_none_or(|u| u == identity.user_name()),
        "iam/accesskey" if parts.method == Method::DELETE => q("key")
            .and_then(|k| state.iam.key_parent(k))
            .is_some_and(|p| p == identity.user_name()),
        _ => false,
    };
    if !own_keys && !identity.is_root() {
        // Quotas are a bucket's: a key limited to one bucket may read that one's.
        let resource = match (route, q("bucket")) {
            ("quota", Some(b)) => format!("arn:aws:s3:::{b}"),
            _ => "arn:aws:s3:::*".to_string(),
        };
        let ctx = crate::iam::Context {
            action,
            resource: &resource,
            principal: identity.principal(&verified.access_key),
            keys: &crate::iam::NoKeys,
        };
        let self_key = route == "iam/accesskey" && parts.method == Method::PUT;
        if identity.decide(&ctx) != crate::iam::Decision::Allow && !self_key {
            return error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied.");
        }
    }
    let body = match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, MAX_BODY))
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "request body too large",
            )
        }
    };
    if let auth::Payload::Sha256(want) = &verified.payload {
        use sha2::Digest;
        if hex::encode(sha2::Sha256::digest(&body)) != *want {
            return error(
                StatusCode::BAD_REQUEST,
                "XAmzContentSHA256Mismatch",
                "The body does not match its signed hash",
            );
        }
    }
    if route.starts_with("iam/") {
        return iam(state, &identity, &parts.method, route, &query, &body).await;
    }
    let flag = |k: &str| q(k).is_some_and(|v| v == "true" || v.is_empty());
    match (&parts.method, route) {
        (&Method::GET, "info") => json(StatusCode::OK, &info(state, healer).await),
        (&Method::GET, "metrics") => json(
            StatusCode::OK,
            &Metrics {
                requests: state
                    .requests
                    .as_deref()
                    .map(crate::s3::counters::snapshot)
                    .unwrap_or_default(),
                totals: state
                    .requests
                    .as_deref()
                    .map(|r| {
                        let s = r.snapshot();
                        Totals {
                            requests: s.apis.iter().map(|a| a.total).sum(),
                            errors: s
                                .apis
                                .iter()
                                .map(|a| a.client_errors + a.server_errors)
                                .sum(),
                            received_bytes: s.received,
                            sent_bytes: s.sent,
                            inflight: s.inflight,
                            duration_secs: s.apis.iter().map(|a| a.duration.sum_secs).sum(),
                            duration_count: s.apis.iter().map(|a| a.duration.count).sum(),
                        }
                    })
                    .unwrap_or_default(),
            },
        ),
        (&Method::POST, "heal") => {
            let bucket = q("bucket").filter(|b| !b.is_empty()).map(String::from);
            if let Some(b) = &bucket {
                match state.store.bucket_exists(b).await {
                    Ok(true) => {}
                    Ok(false) => {
                        return error(
                            StatusCode::NOT_FOUND,
                            "NoSuchBucket",
                            "The specified bucket does not exist",
                        )
                    }
                    Err(e) => return object_error(e),
                }
            }
            let opts = HealOptions {
                deep: flag("deep"),
                dry_run: flag("dry-run"),
            };
            let seq = healer.start_sequence(bucket, q("prefix").unwrap_or("").to_string(), opts);
            let status: SequenceStatus = seq.status();
            json(StatusCode::OK, &status)
        }
        (&Method::GET, "heal/status") => {
            json(StatusCode::OK, &cluster_heal_state(state, healer).await)
        }
        (&Method::GET, "pools") => pools_answer(healer.pools_status().await),
        (&Method::POST | &Method::DELETE, "pools/decommission") => {
            let Some(name) = q("pool").filter(|p| !p.is_empty()) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "name the pool: ?pool=NUMBER or ?pool=ARGUMENT",
                );
            };
            let pool = match healer.pool_index(name) {
                Ok(p) => p,
                Err(e) => return pools_answer(Err(e)),
            };
            pools_answer(if parts.method == Method::POST {
                healer.start_decommission(pool).await
            } else {
                healer.cancel_decommission(pool).await
            })
        }
        (&Method::POST, "pools/rebalance") => pools_answer(healer.start_rebalance().await),
        (&Method::DELETE, "pools/rebalance") => pools_answer(healer.stop_rebalance().await),
        (&Method::GET, "trace") => {
            let arg = |k: &str| q(k).filter(|v| !v.is_empty()).map(str::to_string);
            let filter = crate::audit::trace::Filter {
                errors: flag("errors"),
                op: arg("op"),
                bucket: arg("bucket"),
            };
            trace(state, &filter, flag("all-nodes"))
        }
        (&Method::POST, "drive/replace") => {
            let Some(endpoint) = q("endpoint").filter(|e| !e.is_empty()) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "endpoint is required",
                );
            };
            if let Err(e) = state.store.replace_drive(endpoint).await {
                return object_error(e);
            }
            // A drive of this node heals at once; another node's within its drive check.
            healer.check_drives().await;
            json(
                StatusCode::OK,
                &serde_json::json!({ "endpoint": endpoint, "state": "healing" }),
            )
        }
        (&Method::POST, "heal/speed") => match q("value").and_then(Speed::parse) {
            Some(s) => {
                healer.set_speed(s);
                json(StatusCode::OK, &healer.state())
            }
            None => error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "value must be slow, normal or fast",
            ),
        },
        (&Method::GET, "quota") | (&Method::PUT, "quota") => {
            let Some(bucket) = q("bucket").filter(|b| !b.is_empty()) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "bucket is required",
                );
            };
            let scope = crate::quota::Scope::new(bucket, q("prefix").unwrap_or(""));
            if parts.method == Method::PUT {
                let Some(size) = q("size").and_then(crate::units::parse_bytes) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "InvalidArgument",
                        "size must be a byte count such as 1073741824 or 64MiB (0 removes the quota)",
                    );
                };
                if let Err(e) = state.quotas.set(scope.clone(), size).await {
                    return object_error(e);
                }
            }
            match state.quotas.status(&scope).await {
                Ok(s) => json(StatusCode::OK, &s),
                Err(e) => object_error(e),
            }
        }
        (_, "kms/status" | "kms/rotate") => {
            let arg = |k: &str| q(k).filter(|v| !v.is_empty()).map(str::to_string);
            kms(state, healer, &parts.method, route, arg("from"), arg("to")).await
        }
        _ => error(StatusCode::NOT_FOUND, "NotFound", "no such admin API"),
    }
}

/// What `cairn admin kms status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KmsStatus {
    /// The built-in KMS's key names, and the one new objects use.
    pub keys: Vec<String>,
    pub default_key: Option<String>,
    /// The key rotation this node runs or last ran.
    pub rotation: Option<crate::heal::RotateStatus>,
    /// Buckets whose default encryption names a key this KMS lacks.
    #[serde(default)]
    pub missing_defaults: Vec<BucketKey>,
}

/// A bucket and the KMS key its default encryption names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketKey {
    pub bucket: String,
    pub key: String,
}

async fn kms(
    state: &S3State,
    healer: &Arc<Healer>,
    method: &Method,
    route: &str,
    from: Option<String>,
    to: Option<String>,
) -> Response<Body> {
    let Some(kms) = state.kms.clone() else {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "KMS not configured: set CAIRN_KMS_SECRET_KEY=<key-name>:<base64 of 32 bytes>",
        );
    };
    match (method.as_str(), route) {
        ("GET", "kms/status") => json(
            StatusCode::OK,
            &KmsStatus {
                keys: kms.key_ids(),
                default_key: kms.default_key().map(str::to_string),
                rotation: healer.rotation(),
                missing_defaults: state
                    .store
                    .buckets()
                    .list()
                    .iter()
                    .filter_map(|b| {
                        let key = b.config.encryption.as_ref()?.kms_key_id.as_deref()?;
                        (!kms.has_key(key)).then(|| BucketKey {
                            bucket: b.config.name.clone(),
                            key: key.to_string(),
                        })
                    })
                    .collect(),
            },
        ),
        ("GET", "kms/rotate") => match healer.rotation() {
            Some(r) => json(StatusCode::OK, &r),
            None => error(
                StatusCode::NOT_FOUND,
                "NoSuchRotation",
                "no key rotation has run on this node",
            ),
        },
        ("DELETE", "kms/rotate") => match healer.cancel_rotation().await {
            Some(r) => json(StatusCode::OK, &r),
            None => error(
                StatusCode::NOT_FOUND,
                "NoSuchRotation",
                "no key rotation is running on this node",
            ),
        },
        ("POST", "kms/rotate") => {
            let Some(to) = to.or_else(|| kms.default_key().map(str::to_string)) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "to: the key to re-seal under is required",
                );
            };
            match healer
                .start_rotation(kms.clone(), from.as_deref(), &to)
                .await
            {
                Ok(r) => json(StatusCode::OK, &r),
                Err(e @ crate::heal::RotateError::Running { .. }) => {
                    error(StatusCode::CONFLICT, "RotationRunning", &e.to_string())
                }
                Err(e @ crate::heal::RotateError::NoSuchKey(_)) => error(
                    StatusCode::BAD_REQUEST,
                    "KMS.NotFoundException",
                    &e.to_string(),
                ),
                Err(e) => error(StatusCode::BAD_REQUEST, "InvalidArgument", &e.to_string()),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "NotFound", "no such admin API"),
    }
}

async fn iam(
    state: &S3State,
    identity: &crate::iam::Identity,
    method: &Method,
    route: &str,
    query: &[(String, String)],
    body: &[u8],
) -> Response<Body> {
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let iam = &state.iam;
    let need = |k: &str| -> Result<String, Box<Response<Body>>> {
        q(k).filter(|v| !v.is_empty())
            .map(String::from)
            .ok_or_else(|| {
                Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    &format!("{k} is required"),
                ))
            })
    };
    macro_rules! arg {
        ($k:expr) => {
            match need($k) {
                Ok(v) => v,
                Err(r) => return *r,
            }
        };
    }
    macro_rules! body_of {
        ($t:ty) => {
            match serde_json::from_slice::<$t>(body) {
                Ok(v) => v,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "InvalidArgument",
                        &format!("bad request body: {e}"),
                    )
                }
            }
        };
    }
    match (method.as_str(), route) {
        ("PUT", "iam/user") => {
            let b = body_of!(NewUser);
            done(iam.add_user(&arg!("access-key"), &b.secret_key).await)
        }
        ("GET", "iam/users") => json(StatusCode::OK, &iam.list_users()),
        ("GET", "iam/user") => match iam.user_info(&arg!("access-key")) {
            Ok(u) => json(StatusCode::OK, &u),
            Err(e) => iam_error(e),
        },
        ("POST", "iam/user/enable") => done(iam.set_user_enabled(&arg!("access-key"), true).await),
        ("POST", "iam/user/disable") => {
            done(iam.set_user_enabled(&arg!("access-key"), false).await)
        }
        ("DELETE", "iam/user") => done(iam.remove_user(&arg!("access-key")).await),
        ("PUT", "iam/group") => {
            let b = body_of!(Members);
            done(iam.group_add(&arg!("name"), &b.members).await)
        }
        ("DELETE", "iam/group") => {
            let b = if body.is_empty() {
                Members::default()
            } else {
                body_of!(Members)
            };
            done(iam.group_remove(&arg!("name"), &b.members).await)
        }
        ("POST", "iam/group/enable") => done(iam.set_group_enabled(&arg!("name"), true).await),
        ("POST", "iam/group/disable") => done(iam.set_group_enabled(&arg!("name"), false).await),
        ("GET", "iam/groups") => json(StatusCode::OK, &iam.list_groups()),
        ("GET", "iam/group") => match iam.group_info(&arg!("name")) {
            Ok(g) => json(StatusCode::OK, &g),
            Err(e) => iam_error(e),
        },
        ("PUT", "iam/policy") => {
            let doc = String::from_utf8_lossy(body).into_owned();
            done(iam.create_policy(&arg!("name"), &doc).await)
        }
        ("GET", "iam/policies") => json(StatusCode::OK, &iam.list_policies()),
        ("GET", "iam/policy") => match iam.policy_info(&arg!("name")) {
            Ok(p) => json(StatusCode::OK, &p),
            Err(e) => iam_error(e),
        },
        ("DELETE", "iam/policy") => done(iam.remove_policy(&arg!("name")).await),
        ("POST", "iam/policy/attach") | ("POST", "iam/policy/detach") => {
            let target = match (q("user"), q("group")) {
                (Some(u), None) => crate::iam::Target::User(u.to_string()),
                (None, Some(g)) => crate::iam::Target::Group(g.to_string()),
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "InvalidArgument",
                        "give exactly one of user or group",
                    )
                }
            };
            done(
                iam.attach(
                    &arg!("name"),
                    &target,
                    route.ends_with("attach") && !route.ends_with("detach"),
                )
                .await,
            )
        }
        ("PUT", "iam/accesskey") => {
            let b = if body.is_empty() {
                NewAccessKey::default()
            } else {
                body_of!(NewAccessKey)
            };
            let parent = b
                .user
                .clone()
                .unwrap_or_else(|| identity.user_name().to_string());
            // Keys for another user need admin:CreateServiceAccount (checked by the caller
            // for everyone but the key's own user).
            if parent != identity.user_name() && !identity.is_root() {
                let ctx = crate::iam::Context {
                    action: "admin:CreateServiceAccount",
                    resource: "arn:aws:s3:::*",
                    principal: identity.principal(""),
                    keys: &crate::iam::NoKeys,
                };
                if identity.decide(&ctx) != crate::iam::Decision::Allow {
                    return error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied.");
                }
            }
            // A key made by a key cannot do more than the key that made it: temporary
            // credentials and keys limited by a policy of their own make none (a new key
            // would have only the user's policies), and a key that expires makes keys that
            // expire no later.
            let mut creator_expiry = None;
            if let crate::iam::Identity::Key {
                kind,
                inline,
                access_key,
                ..
            } = identity
            {
                if *kind == crate::iam::KeyKind::Session || inline.is_some() {
                    return error(
                        StatusCode::FORBIDDEN,
                        "AccessDenied",
                        "temporary credentials and access keys limited by a policy of their own cannot create access keys",
                    );
                }
                creator_expiry = iam.key_expiry(access_key);
            }
            let asked = b.expiry_secs.map(|s| {
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                i64::try_from(now.saturating_add(s)).unwrap_or(i64::MAX)
            });
            let expiry = match (asked, creator_expiry) {
                (Some(a), Some(c)) => Some(a.min(c)),
                (a, c) => a.or(c),
            };
            match iam
                .create_key(&parent, b.policy.as_deref(), expiry, b.name.as_deref())
                .await
            {
                Ok(k) => json(StatusCode::OK, &k),
                Err(e) => iam_error(e),
            }
        }
        ("GET", "iam/accesskeys") => {
            let user = q("user")
                .map(String::from)
                .unwrap_or_else(|| identity.user_name().to_string());
            let all = q("all").is_some() && identity.is_root();
            json(
                StatusCode::OK,
                &iam.list_keys(if all { None } else { Some(&user) }),
            )
        }
        ("DELETE", "iam/accesskey") => done(iam.remove_key(&arg!("key")).await),
        _ => error(StatusCode::NOT_FOUND, "NotFound", "no such admin API"),
    }
}
