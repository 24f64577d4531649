//! `cairn server`: configuration from the environment and the wiring of a node (drives,
//! sets, pools, peers, heal, listeners).

use super::*;

use std::sync::Arc;

use cairn::auth::RootCredentials;
use cairn::heal::ScannerConfig;
use cairn::object::{open_local, OpenOptions};
use cairn::placement::Endpoint;
use cairn::s3::{xml::Owner, S3State};

/// The root credentials and where they came from (the variables that gave each half).
fn credentials() -> anyhow::Result<(RootCredentials, String)> {
    let pick = |a: &'static str, b: &'static str| {
        env(a).map(|v| (v, a)).or_else(|| env(b).map(|v| (v, b)))
    };
    let user = pick("CAIRN_ROOT_USER", "MINIO_ROOT_USER");
    let password = match pick("CAIRN_ROOT_PASSWORD", "MINIO_ROOT_PASSWORD") {
        Some(p) => Some(p),
        None => password_from_file()?.map(|p| (p, "a *_ROOT_PASSWORD_FILE")),
    };
    match (user, password) {
        (Some((u, from_u)), Some((p, from_p))) => {
            if p.len() < 8 {
                bail!("the root password must be at least 8 characters");
            }
            Ok((
                RootCredentials {
                    access_key: u,
                    secret_key: p,
                },
                format!("{from_u} / {from_p}"),
            ))
        }
        (None, None) => Ok((
            RootCredentials {
                access_key: DEFAULT_CREDENTIAL.into(),
                secret_key: DEFAULT_CREDENTIAL.into(),
            },
            DEFAULT_SOURCE.to_string(),
        )),
        _ => bail!("set both the root user and the root password (CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD)"),
    }
}

fn parity_override() -> anyhow::Result<Option<usize>> {
    match env("CAIRN_STORAGE_CLASS_STANDARD") {
        None => Ok(None),
        Some(v) => {
            let n = v
                .strip_prefix("EC:")
                .and_then(|n| n.parse().ok())
                .with_context(|| {
                    format!("CAIRN_STORAGE_CLASS_STANDARD must look like EC:2, got {v:?}")
                })?;
            Ok(Some(n))
        }
    }
}

/// Parity of REDUCED_REDUNDANCY objects: `CAIRN_STORAGE_CLASS_RRS=EC:N` with
/// 1 ≤ N ≤ the standard parity (default EC:1, as MinIO's).
fn rrs_parity(standard: usize) -> anyhow::Result<usize> {
    let Some(v) = env("CAIRN_STORAGE_CLASS_RRS") else {
        return Ok(1.min(standard));
    };
    let n: usize = v
        .strip_prefix("EC:")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("CAIRN_STORAGE_CLASS_RRS must look like EC:1, got {v:?}"))?;
    if n == 0 || n > standard {
        anyhow::bail!(
            "CAIRN_STORAGE_CLASS_RRS={v}: parity must be from 1 to the standard parity ({standard})"
        );
    }
    Ok(n)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `CAIRN_SCANNER=off` disables the scanner; `CAIRN_SCANNER_INTERVAL` (default 1h) paces its
/// cycles and `CAIRN_SCANNER_DEEP_EVERY` (default 30d) its bitrot passes.
fn scanner_config() -> anyhow::Result<Option<ScannerConfig>> {
    if env("CAIRN_SCANNER").is_some_and(|v| v == "off") {
        return Ok(None);
    }
    let mut cfg = ScannerConfig::default();
    if let Some(v) = env("CAIRN_SCANNER_INTERVAL") {
        cfg.interval = parse_duration(&v)
            .with_context(|| format!("CAIRN_SCANNER_INTERVAL: bad duration {v:?}"))?;
    }
    if let Some(v) = env("CAIRN_MULTIPART_EXPIRY") {
        cfg.multipart_expiry = parse_duration(&v)
            .with_context(|| format!("CAIRN_MULTIPART_EXPIRY: bad duration {v:?}"))?;
    }
    if let Some(v) = env("CAIRN_SCANNER_DEEP_EVERY") {
        cfg.deep_every = parse_duration(&v)
            .with_context(|| format!("CAIRN_SCANNER_DEEP_EVERY: bad duration {v:?}"))?;
    }
    Ok(Some(cfg))
}

/// `CAIRN_LIFECYCLE_DEBUG_DAY=<duration>` (testing only): one lifecycle day lasts that
/// long, and lifecycle passes run at least twice per such day.
fn lifecycle_day() -> anyhow::Result<cairn::lifecycle::Day> {
    Ok(match env("CAIRN_LIFECYCLE_DEBUG_DAY") {
        None => cairn::lifecycle::Day::default(),
        Some(v) => {
            let d = parse_duration(&v)
                .filter(|d| d.as_secs() >= 1)
                .with_context(|| {
                    format!("CAIRN_LIFECYCLE_DEBUG_DAY: a duration of at least 1s, got {v:?}")
                })?;
            tracing::warn!(day = ?d, "CAIRN_LIFECYCLE_DEBUG_DAY is set: lifecycle days are shortened (testing only)");
            cairn::lifecycle::Day::of(d)
        }
    })
}

/// Per-call drive deadlines: `CAIRN_DRIVE_META_TIMEOUT` (default 2s) and
/// `CAIRN_DRIVE_DATA_TIMEOUT` (default 10s).
fn drive_timeouts() -> anyhow::Result<cairn::drive::Timeouts> {
    let mut t = cairn::drive::Timeouts::default();
    for (var, slot) in [
        ("CAIRN_DRIVE_META_TIMEOUT", &mut t.meta),
        ("CAIRN_DRIVE_DATA_TIMEOUT", &mut t.data),
    ] {
        if let Some(v) = env(var) {
            *slot = parse_duration(&v)
                .filter(|d| !d.is_zero())
                .with_context(|| format!("{var} must be a duration such as 2s or 500ms"))?;
        }
    }
    Ok(t)
}

/// The built-in KMS from `CAIRN_KMS_SECRET_KEY` or `MINIO_KMS_SECRET_KEY`, its keys checked
/// against the bytes their names stood for in this deployment (a key given with other
/// bytes stops the start: it would seal objects the right key could not open).
async fn static_kms(
    store: &cairn::object::Store,
    stop: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<Option<Arc<dyn cairn::kms::Kms>>> {
    let Some(var) = cairn::kms::StaticKms::env_name(env) else {
        return Ok(None);
    };
    if let (Some(a), Some(b)) = (env("CAIRN_KMS_SECRET_KEY"), env("MINIO_KMS_SECRET_KEY")) {
        if a != b {
            tracing::warn!("CAIRN_KMS_SECRET_KEY and MINIO_KMS_SECRET_KEY differ: CAIRN_KMS_SECRET_KEY is used");
        }
    }
    let Some(keys) = cairn::kms::StaticKms::from_env(env).context(var)? else {
        return Ok(None);
    };
    let checked = Arc::new(cairn::kms::Checked::new(Arc::new(keys)));
    let found = checked
        .check_at_start(
            cairn::kms::registry::records(store.drive_slots()),
            store.locker(),
            std::time::Duration::from_secs(10),
            stop.clone(),
        )
        .await;
    if let Some(k) = found.mismatched.first() {
        anyhow::bail!(
            "KMS key {k:?} in {var} is not the key this deployment sealed objects with under that name \
             (its bytes differ from those recorded when the name was first used): objects sealed \
             under it now would not open once the right key is back. Start with the original key; \
             a new key needs a new name"
        );
    }
    for (k, why) in &found.pending {
        tracing::warn!(
            key = k,
            error = why,
            "KMS key not checked against the deployment's record yet: nothing is sealed under it until it is"
        );
    }
    Ok(Some(checked as Arc<dyn cairn::kms::Kms>))
}

/// `~/.cairn/certs`, MinIO's `~/.minio/certs` in Cairn's name.
fn default_certs_dir() -> PathBuf {
    env("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
        .join(".cairn")
        .join("certs")
}

pub(crate) async fn server(
    address: Option<String>,
    certs_dir: Option<PathBuf>,
    console_address: Option<String>,
    drives: Vec<String>,
) -> anyhow::Result<()> {
    cairn::metrics::expose::mark_start();
    let drives = if drives.is_empty() {
        vec![DEFAULT_DRIVES.to_string()]
    } else {
        drives
    };
    let set_size = env("CAIRN_ERASURE_SET_DRIVE_COUNT")
        .map(|v| {
            v.parse::<usize>()
                .context("CAIRN_ERASURE_SET_DRIVE_COUNT must be a number")
        })
        .transpose()?;
    let layout = cairn::placement::Pools::from_args(&drives, set_size, parity_override()?)?;
    let endpoints = layout.endpoints();
    let certs_dir = certs_dir.unwrap_or_else(default_certs_dir);
    let certs = cairn::tls::Certs::open(&certs_dir)
        .with_context(|| format!("loading TLS certificates from {}", certs_dir.display()))?;
    if layout.is_distributed() {
        match (&certs, layout.is_tls()) {
            (None, true) => bail!(
                "the drive list uses https:// but {} has no {}: put this node's certificate and key there (or pass --certs-dir)",
                certs_dir.display(),
                cairn::tls::CERT_FILE
            ),
            (Some(_), false) => bail!(
                "{} holds a certificate, so this node serves HTTPS only, but the drive list uses http://: write the endpoints as https://",
                certs_dir.display()
            ),
            _ => {}
        }
    }
    let scheme = if certs.is_some() { "https" } else { "http" };
    let server_tls = certs.as_ref().map(|c| c.server_config()).transpose()?;
    // Peers are checked against the system's roots and the folder's CAs/.
    let peer_trust =
        cairn::tls::Trust::with_files(&cairn::tls::Certs::ca_files(&certs_dir))?.client_config()?;
    // Webhooks (audit, notifications) are checked against the same roots.
    let hook_trust = peer_trust.clone();
    cairn::drive::timed::set_default_timeouts(drive_timeouts()?);
    let (creds, cred_source) = credentials()?;
    // With the publicly known default credentials, only this machine may connect unless the
    // operator says otherwise.
    let loopback_only = address.is_none() && cred_source == DEFAULT_SOURCE;
    let address = address.unwrap_or_else(|| {
        if loopback_only {
            "127.0.0.1:9000".into()
        } else {
            "0.0.0.0:9000".into()
        }
    });
    let region = env("CAIRN_REGION").unwrap_or_else(|| "us-east-1".into());
    let domain = env("CAIRN_DOMAIN");
    let opts = OpenOptions {
        set_size: layout.pools[0].set_size,
        parity: layout.pools[0].parity,
        pools: layout
            .pools
            .iter()
            .zip(&layout.args)
            .map(|(p, arg)| cairn::object::PoolSpec {
                drives: p.endpoints.len(),
                set_size: p.set_size,
                parity: p.parity,
                arg: arg.clone(),
            })
            .collect(),
    };
    let listener = cairn::conn::listen(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let local = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stop.cancel();
        });
    }
    // Distributed: serve internode calls at once (peers need our drives to bootstrap).
    let cluster = if layout.is_distributed() {
        Some(Cluster::new(&layout, &creds, local, peer_trust)?)
    } else {
        None
    };
    let app = cairn::server::App::new(cluster.as_ref().map(|c| c.rpc.clone()));
    let limits =
        cairn::server::HttpLimits::from_env(env, parse_duration).map_err(anyhow::Error::msg)?;
    if let Some(c) = &certs {
        c.watch(std::time::Duration::from_secs(2), stop.clone());
    }
    let serving = tokio::spawn(cairn::server::serve(
        listener,
        app.clone(),
        limits,
        server_tls.clone(),
        stop.clone().cancelled_owned(),
    ));
    let mut leader_check: Option<cairn::heal::LeaderCheck> = None;
    let peers = cluster
        .as_ref()
        .map(|c| c.peers.clone())
        .unwrap_or_default();
    let this_node = cluster.as_ref().map(|c| c.nodes[c.me].clone());
    let rpc = cluster.as_ref().map(|c| c.rpc.clone());
    let store = match cluster {
        Some(c) => {
            let (peers, me) = (c.peers.clone(), c.me);
            // The scanner runs on the first node that is up.
            leader_check = Some(Arc::new(move || {
                peers[..me]
                    .iter()
                    .all(|p| p.as_ref().is_none_or(|p| !p.is_online()))
            }));
            println!(
                "Cairn node {} of {} ({}) — waiting for peers (listening on {local})",
                c.me + 1,
                c.nodes.len(),
                c.nodes[c.me]
            );
            c.check_peers().await?;
            for p in c.peers.iter().flatten() {
                p.start_heartbeat(std::time::Duration::from_secs(2), stop.clone());
            }
            let names: Vec<String> = endpoints.iter().map(|e| e.to_string()).collect();
            cairn::object::open_cluster(c.drives, &names, &opts, c.me == 0, &stop)
                .await
                .context("opening the cluster's drives")?
                .with_locker(c.locker)
        }
        None => {
            let paths: Vec<PathBuf> = endpoints
                .iter()
                .filter_map(|e| match e {
                    Endpoint::Local(p) => Some(p.clone()),
                    Endpoint::Url { .. } => None,
                })
                .collect();
            open_local(&paths, &opts).await.context("opening drives")?
        }
    };
    let endpoint_host = if local.ip().is_unspecified() {
        format!("127.0.0.1:{}", local.port())
    } else {
        local.to_string()
    };
    let owner_id = hex::encode(&blake3::hash(creds.access_key.as_bytes()).as_bytes()[..16]);
    let (access_key, secret_key) = (creds.access_key.clone(), creds.secret_key.clone());
    let store = Arc::new(store.with_rrs_parity(rrs_parity(
        layout.pools.iter().map(|p| p.parity).min().unwrap_or(0),
    )?));
    let iam = Arc::new(cairn::iam::Iam::new(
        creds.clone(),
        store.drive_slots(),
        store.locker(),
    ));
    // Test-only (like CAIRN_TEST_CRASH_AT): sessions shorter than AWS's 15 minutes.
    if let Some(v) = env("CAIRN_TEST_STS_MIN_SECS") {
        let secs: u64 = v
            .parse()
            .context("CAIRN_TEST_STS_MIN_SECS must be a number")?;
        iam.set_min_session(std::time::Duration::from_secs(secs));
    }
    if store.pools_changed {
        // A pool was added or removed: buckets and system records onto every drive.
        for p in 0..store.pools().len() {
            match store.seed_pool(p).await {
                Ok(n) if n > 0 => tracing::info!(
                    pool = p + 1,
                    buckets = n,
                    "bucket folders made on a new pool"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(pool = p + 1, error = %e, "buckets not made on the pool yet")
                }
            }
        }
        if let Err(e) = store.buckets().heal().await {
            tracing::warn!(error = %e, "bucket records not healed onto every pool");
        }
        if let Err(e) = iam.heal().await {
            tracing::warn!(error = %e, "identity records not healed onto every pool");
        }
        // Before the KMS keys are checked: a new pool's drives must not read as "no record".
        let kms_records = cairn::kms::registry::records(store.drive_slots());
        if let Err(e) = cairn::kms::registry::heal(&kms_records, store.locker().as_ref()).await {
            tracing::warn!(error = %e, "KMS key records not healed onto every pool");
        }
    }
    if !peers.is_empty() {
        let notifier = Arc::new(cairn::records::PeerNotifier(
            peers.iter().flatten().cloned().collect(),
        ));
        store.buckets().set_notifier(notifier.clone());
        iam.set_notifier(notifier);
    }
    if let Some(rpc) = &rpc {
        rpc.register(cairn::bucket::CHANGED_SERVICE, store.buckets().clone());
        rpc.register(cairn::iam::CHANGED_SERVICE, iam.clone());
    }
    // Bucket settings and identities are read before the first request; a failure here
    // (no read quorum yet) is retried by the refresh.
    if let Err(e) = store.load_buckets(&owner_id).await {
        tracing::warn!(error = %e, "bucket records not loaded yet");
    }
    store.buckets().spawn_refresh(stop.clone());
    let quotas = cairn::quota::Quotas::new(store.clone());
    if let Err(e) = quotas.migrate().await {
        tracing::warn!(error = %e, "quotas.json not moved into the bucket records yet");
    }
    if let Err(e) = iam.load().await {
        tracing::warn!(error = %e, "IAM records not loaded yet");
    }
    iam.spawn_refresh(stop.clone());
    let lifecycle_day = lifecycle_day()?;
    let cors_default = match env("CAIRN_CORS_ALLOW_ORIGIN") {
        Some(v) => Some(cairn::s3::cors::default_rules(&v).with_context(|| {
            format!("CAIRN_CORS_ALLOW_ORIGIN must be `*` or comma-separated origins (each with at most one `*`), got {v:?}")
        })?),
        None => None,
    };
    let kms = static_kms(&store, &stop).await?;
    let kms_line = kms
        .as_ref()
        .and_then(|k| k.default_key())
        .map(|k| format!("built-in, static keys (default {k:?}): SSE-S3, SSE-KMS"));
    // Event queues live in the system area of this node's first drive unless told otherwise.
    let queue_root = endpoints
        .iter()
        .find_map(|e| match e {
            Endpoint::Local(p) => Some(p.clone()),
            Endpoint::Url { path, .. } if Some(e.host()) == this_node => Some(PathBuf::from(path)),
            Endpoint::Url { .. } => None,
        })
        .map(|p| p.join(cairn::drive::SYS_DIR).join("queue"));
    let node_name = this_node.clone().unwrap_or_else(|| endpoint_host.clone());
    let audit = cairn::audit::AuditConfig::from_env(env)?;
    let observers = cairn::audit::Observers::new(&node_name, &store.deployment_id().to_string())
        .with_sinks(&audit, queue_root.as_deref(), hook_trust.clone(), &stop)?;
    let notify_targets = cairn::notify::targets_from_env(std::env::vars())?;
    let notifier = cairn::notify::Notifier::start(
        &region,
        &notify_targets,
        queue_root.as_deref(),
        hook_trust,
        &stop,
    )?;
    let events_line = {
        let mut parts = Vec::new();
        if let Some(f) = &audit.file {
            parts.push(format!("audit file {}", f.display()));
        }
        if let Some(w) = &audit.webhook {
            parts.push(format!("audit webhook {w}"));
        }
        parts.extend(notifier.arns());
        parts.join(", ")
    };
    let state = Arc::new(S3State {
        observers: Arc::new(observers),
        notifier: Arc::new(notifier),
        memory: Arc::new(
            cairn::memory::Budget::from_env().map_err(|e| anyhow::anyhow!(e))?,
        ),
        kms,
        cors_default,
        lifecycle_day,
        iam,
        quotas,
        store,
        owner: Owner {
            id: owner_id,
            display_name: creds.access_key.clone(),
        },
        region,
        domain,
        peers: peers.iter().flatten().cloned().collect(),
        node: this_node,
        requests: match env("CAIRN_METRICS").as_deref() {
            None | Some("on") => Some(Arc::new(cairn::s3::counters::table())),
            Some("off") => None,
            Some(v) => anyhow::bail!("CAIRN_METRICS must be on or off, got {v:?}"),
        },
        prometheus_public: match env("CAIRN_PROMETHEUS_AUTH_TYPE")
            .or_else(|| env("MINIO_PROMETHEUS_AUTH_TYPE"))
            .as_deref()
        {
            None | Some("jwt") => false,
            Some("public") => true,
            Some(v) => anyhow::bail!("CAIRN_PROMETHEUS_AUTH_TYPE must be jwt or public, got {v:?}"),
        },
        default_ownership: match env("CAIRN_DEFAULT_OBJECT_OWNERSHIP") {
            Some(v) => cairn::bucket::ObjectOwnership::parse(&v).with_context(|| {
                format!("CAIRN_DEFAULT_OBJECT_OWNERSHIP must be ObjectWriter, BucketOwnerPreferred or BucketOwnerEnforced, got {v:?}")
            })?,
            None => cairn::bucket::ObjectOwnership::ObjectWriter,
        },
    });
    if let Some(rpc) = &rpc {
        rpc.register_stream(
            cairn::audit::trace::SERVICE,
            Arc::new(cairn::audit::trace::TraceService {
                hub: state.observers.trace().clone(),
                node: node_name.clone(),
            }),
        );
    }
    let healer = cairn::heal::Healer::new(state.store.clone(), stop.clone());
    if let Some(v) = env("CAIRN_HEAL_SPEED") {
        healer.set_speed(cairn::heal::Speed::parse(&v).with_context(|| {
            format!("CAIRN_HEAL_SPEED must be slow, normal or fast, got {v:?}")
        })?);
    }
    let drive_check = match env("CAIRN_DRIVE_CHECK_INTERVAL") {
        Some(v) => parse_duration(&v)
            .with_context(|| format!("CAIRN_DRIVE_CHECK_INTERVAL: bad duration {v:?}"))?,
        None => std::time::Duration::from_secs(10),
    };
    if let Some(check) = leader_check {
        healer.set_leader_check(check);
    }
    if !state.peers.is_empty() {
        let peers = state.peers.clone();
        healer.set_peer_probe(Arc::new(move || {
            let peers = peers.clone();
            Box::pin(async move {
                futures::future::join_all(peers.iter().map(|p| p.probe_now())).await;
            })
        }));
    }
    {
        let iam = state.iam.clone();
        let kms_records = cairn::kms::registry::records(state.store.drive_slots());
        let locker = state.store.locker();
        healer.set_records_heal(Arc::new(move || {
            let (iam, kms_records, locker) = (iam.clone(), kms_records.clone(), locker.clone());
            Box::pin(async move {
                // Both, whatever the first does.
                let n = iam.heal().await.map_err(|e| e.to_string());
                let k = cairn::kms::registry::heal(&kms_records, locker.as_ref()).await;
                match (n, k) {
                    (Ok(n), Ok(k)) => Ok(n + k),
                    (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
                    (Err(a), Err(b)) => Err(format!("{a}; {b}")),
                }
            })
        }));
    }
    let scanner = scanner_config()?;
    healer.start_with(scanner, drive_check);
    healer.resume_rotation(state.kms.clone()).await;
    healer.start_pools(layout.args.clone());
    {
        let state = state.clone();
        healer.set_on_expired(Arc::new(move |e| {
            let state = state.clone();
            Box::pin(async move { cairn::s3::lifecycle_expired(&state, e).await })
        }));
    }
    healer.start_lifecycle(cairn::heal::LifecycleConfig::new(
        lifecycle_day,
        scanner.map_or(std::time::Duration::from_secs(3600), |s| s.interval),
    ));
    if let Some(rpc) = &rpc {
        rpc.register(cairn::heal::STATE_SERVICE, healer.clone());
        if let Some(r) = &state.requests {
            rpc.register(
                cairn::metrics::expose::REQUESTS_SERVICE,
                Arc::new(cairn::metrics::expose::RequestsService(r.clone())),
            );
        }
    }
    // Ready before the banner: whoever reads the endpoint from it can use it at once.
    app.set_ready(state.clone(), healer.clone());
    let console_url = match console_address.as_deref().map(str::trim) {
        Some("off") => None,
        given => {
            let addr = given.unwrap_or(":9001");
            let addr = match addr.strip_prefix(':') {
                Some(port) if loopback_only => format!("127.0.0.1:{port}"),
                Some(port) => format!("0.0.0.0:{port}"),
                None => addr.to_string(),
            };
            match cairn::conn::listen(&addr).await {
                Ok(l) => {
                    let bound = l.local_addr()?;
                    let console = cairn::console::Console::new(
                        state.clone(),
                        healer.clone(),
                        server_tls.is_some(),
                        cairn::console::S3Address {
                            public_url: env("CAIRN_SERVER_URL").or_else(|| env("MINIO_SERVER_URL")),
                            scheme,
                            port: local.port(),
                        },
                    );
                    tokio::spawn(cairn::server::serve_router(
                        l,
                        cairn::console::router(console),
                        limits,
                        server_tls.clone(),
                        stop.clone().cancelled_owned(),
                    ));
                    let host = if bound.ip().is_unspecified() {
                        format!("127.0.0.1:{}", bound.port())
                    } else {
                        bound.to_string()
                    };
                    Some(format!("{scheme}://{host}   (listening on {bound})"))
                }
                // Only the default port may be taken (another server on this machine).
                Err(e) if given.is_none() => {
                    tracing::warn!(address = %addr, error = %e, "web console not started: set --console-address");
                    None
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot listen on {addr} for the console"))
                }
            }
        }
    };
    println!(
        "Cairn {} — S3-compatible object storage",
        env!("CARGO_PKG_VERSION")
    );
    println!("  S3 endpoint:  {scheme}://{endpoint_host}   (listening on {local})");
    println!(
        "  Console:      {}",
        console_url.as_deref().unwrap_or("off")
    );
    if let Some(c) = &certs {
        let domains = c.domains();
        println!(
            "  TLS:          certificates from {}{}",
            certs_dir.display(),
            if domains.is_empty() {
                String::new()
            } else {
                format!(" (also for {})", domains.join(", "))
            }
        );
    }
    println!("  Region:       {}", state.region);
    println!(
        "  KMS:          {}",
        kms_line
            .as_deref()
            .unwrap_or("not configured (SSE-S3/SSE-KMS refused; set CAIRN_KMS_SECRET_KEY)")
    );
    if layout.is_distributed() {
        println!("  Nodes:        {}", layout.nodes().join(", "));
    }
    for (i, p) in layout.pools.iter().enumerate() {
        let pool = if layout.pools.len() > 1 {
            format!(" (pool {})", i + 1)
        } else {
            String::new()
        };
        println!(
            "  Layout:       {} set(s) x {} drives, EC {}+{} ({} drives){pool}",
            p.set_count(),
            p.set_size,
            p.data(),
            p.parity,
            p.endpoints.len()
        );
    }
    println!("  Deployment:   {}", state.store.deployment_id());
    if !events_line.is_empty() {
        println!("  Events:       {events_line}");
    }
    println!("  Credentials:  from {cred_source}");
    if cred_source == DEFAULT_SOURCE {
        println!("  AccessKey:    {}", access_key);
        println!("  SecretKey:    {}", secret_key);
        if loopback_only {
            println!(
                "  Listening on 127.0.0.1 only: the default credentials are in use (set \
                 CAIRN_ROOT_USER/CAIRN_ROOT_PASSWORD, or --address, to serve other hosts)."
            );
        }
        eprintln!(
            "WARNING: using the default root credentials {DEFAULT_CREDENTIAL}/{DEFAULT_CREDENTIAL}. \
             Set CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD before storing anything that matters."
        );
    }
    println!(
        "  Try:          AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY=<secret> aws --endpoint-url {scheme}://{endpoint_host} s3 ls",
        access_key
    );
    serving.await??;
    healer.save_mrf().await;
    println!("Cairn stopped.");
    Ok(())
}

/// This node's part of a distributed deployment: which node it is, its drives (local ones
/// opened, the others' reached over RPC), the lock servers and the RPC server.
struct Cluster {
    nodes: Vec<String>,
    peers: Vec<Option<Arc<cairn::rpc::Peer>>>,
    me: usize,
    drives: Vec<Option<Arc<dyn cairn::drive::Drive>>>,
    locker: Arc<dyn cairn::lock::Locker>,
    rpc: Arc<cairn::rpc::RpcServer>,
}

impl Cluster {
    /// Refuse to start when every peer that answers refuses this node (other endpoint list
    /// or credentials): this node is the odd one out. Peers that are down are waited for
    /// by the bootstrap.
    async fn check_peers(&self) -> anyhow::Result<()> {
        for round in 0..3 {
            let answers = futures::future::join_all(
                self.peers
                    .iter()
                    .flatten()
                    .map(|p| async move { (p.node.clone(), p.hello().await) }),
            )
            .await;
            let accepted = answers.iter().filter(|(_, r)| r.is_ok()).count();
            let refused: Vec<String> = answers
                .iter()
                .filter_map(|(n, r)| match r {
                    Err(e) if e.to_string().contains(cairn::rpc::REJECTED) => {
                        Some(format!("{n}: {e}"))
                    }
                    _ => None,
                })
                .collect();
            if refused.is_empty() || accepted > 0 {
                return Ok(());
            }
            if round == 2 {
                bail!(
                    "this node ({}) is refused by its peers — start every node with the same endpoint list and root credentials:\n  {}",
                    self.nodes[self.me],
                    refused.join("\n  ")
                );
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        Ok(())
    }

    fn new(
        layout: &cairn::placement::Pools,
        creds: &RootCredentials,
        listen: std::net::SocketAddr,
        tls: Arc<rustls::ClientConfig>,
    ) -> anyhow::Result<Cluster> {
        use cairn::lock::dist::{DistLocker, LockServer, LockTable};
        use cairn::rpc::{Peer, RemoteDrive, RpcAuth, RpcServer};
        let nodes = layout.nodes();
        let me = cairn::placement::layout::find_local_node(&nodes, listen)?;
        let endpoints = layout.endpoints();
        let auth = RpcAuth::new(creds, &endpoints);
        let mut peers: Vec<Option<Arc<Peer>>> = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let scheme = endpoints
                .iter()
                .find_map(|e| match e {
                    Endpoint::Url { scheme, .. } if e.host() == *n => Some(scheme.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "http".into());
            peers.push(
                (i != me).then(|| Peer::new(&scheme, n, &nodes[me], auth.clone(), tls.clone())),
            );
        }
        let mut drives: Vec<Option<Arc<dyn cairn::drive::Drive>>> = Vec::new();
        let mut local: Vec<Option<Arc<dyn cairn::drive::Drive>>> = Vec::new();
        for (idx, e) in endpoints.iter().enumerate() {
            let Endpoint::Url { path, .. } = e else {
                bail!("cannot mix local paths and URLs");
            };
            let node = nodes.iter().position(|n| *n == e.host()).unwrap_or(me);
            match &peers[node] {
                Some(peer) => {
                    drives.push(Some(Arc::new(RemoteDrive::new(
                        peer.clone(),
                        idx,
                        e.to_string(),
                    ))));
                    local.push(None);
                }
                None => {
                    let d: Arc<dyn cairn::drive::Drive> =
                        Arc::new(cairn::drive::LocalDrive::open_named(path, e.to_string()));
                    let d: Arc<dyn cairn::drive::Drive> =
                        Arc::new(cairn::drive::TimedDrive::new(d));
                    drives.push(Some(d.clone()));
                    local.push(Some(d));
                }
            }
        }
        let table = Arc::new(LockTable::default());
        let servers = peers
            .iter()
            .map(|p| match p {
                Some(p) => LockServer::Remote(p.clone() as Arc<dyn cairn::lock::dist::LockPeer>),
                None => LockServer::Local(table.clone()),
            })
            .collect();
        let rpc = Arc::new(RpcServer::new(auth, local, table, nodes[me].clone()));
        Ok(Cluster {
            nodes,
            peers,
            me,
            drives,
            locker: Arc::new(DistLocker::new(servers)),
            rpc,
        })
    }
}
