//! Tracing, audit and bucket notifications end to end, with the real binary: `cairn admin
//! trace` processes reading the live stream (filtered, and relayed from every node of a
//! cluster), the audit file and an audit webhook receiving one entry per request
//! (successful, failed, denied, anonymous, badly signed — and never a secret), and bucket
//! notifications delivered to a webhook that is down while events happen and across a
//! server restart (the on-disk queue keeps them), then comes up.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    Delete, Event, FilterRule, FilterRuleName, NotificationConfiguration,
    NotificationConfigurationFilter, ObjectIdentifier, QueueConfiguration, S3KeyFilter,
};
use cairn_integration::{
    admin, binary, client, client_for, wait_until, Cluster, Server, ACCESS_KEY, SECRET_KEY,
};
use serde_json::Value;

/// One request a webhook received.
#[derive(Debug, Clone)]
struct Delivery {
    authorization: String,
    body: String,
}

/// A tiny HTTP/1.1 server that answers every POST 200 and keeps what it got.
struct Hook {
    got: Arc<Mutex<Vec<Delivery>>>,
}

impl Hook {
    fn listen(listener: TcpListener) -> Hook {
        let got = Arc::new(Mutex::new(Vec::new()));
        let store = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let store = store.clone();
                std::thread::spawn(move || serve(conn, store));
            }
        });
        Hook { got }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().expect("hook").clone()
    }
}

fn serve(conn: std::net::TcpStream, store: Arc<Mutex<Vec<Delivery>>>) {
    let mut out = conn.try_clone().expect("clone");
    let mut r = BufReader::new(conn);
    loop {
        let mut len = 0usize;
        let mut authorization = String::new();
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap_or((h, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => len = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = value.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        store.lock().expect("hook").push(Delivery {
            authorization,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        if out
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// A running `cairn admin trace` and the lines it printed.
struct Trace {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Trace {
    fn start(endpoint: &str, args: &[&str]) -> Trace {
        let mut child = Command::new(binary())
            .args(["admin", "trace"])
            .args(args)
            .arg("--endpoint")
            .arg(endpoint)
            .env("CAIRN_ROOT_USER", ACCESS_KEY)
            .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cairn admin trace");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let keep = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                keep.lock().expect("lines").push(l);
            }
        });
        Trace { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node metric from the public scrape of `endpoint` (the sum over matching samples).
fn metric(endpoint: &str, prefix: &str) -> f64 {
    let text = ureq::get(format!("{endpoint}/cairn/v1/metrics/node"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn entries(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("an audit entry is JSON"))
        .collect()
}

fn find<'a>(entries: &'a [Value], api: &str, key: &str, status: u64) -> Option<&'a Value> {
    entries.iter().find(|e| {
        e["api"]["name"] == api
            && e["api"]["object"].as_str().unwrap_or("") == key
            && e["api"]["statusCode"] == status
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_is_audited_and_traced_without_secrets() {
    let hook_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hook_url = format!("http://{}/audit", hook_listener.local_addr().expect("addr"));
    let hook = Hook::listen(hook_listener);
    let dir = tempfile::tempdir().expect("tempdir");
    let audit_file = dir.path().join("logs/audit.log");
    let server = Server::start_with(
        4,
        &[
            ("CAIRN_AUDIT_FILE", audit_file.to_str().expect("path")),
            ("CAIRN_AUDIT_WEBHOOK_ENDPOINT", &hook_url),
            ("CAIRN_AUDIT_WEBHOOK_AUTH_TOKEN", "audit-token"),
            ("CAIRN_PROMETHEUS_AUTH_TYPE", "public"),
        ],
    );
    let errors = Trace::start(&server.endpoint, &["--errors", "--bucket", "evb", "--json"]);
    let puts = Trace::start(&server.endpoint, &["--op", "PutObject"]);
    wait_until("both traces subscribed", Duration::from_secs(20), || {
        metric(&server.endpoint, "cairn_trace_subscribers") >= 2.0
    });

    let c = client(&server);
    c.create_bucket()
        .bucket("evb")
        .send()
        .await
        .expect("create");
    c.put_object()
        .bucket("evb")
        .key("dir/k1")
        .body(ByteStream::from(vec![7u8; 1000]))
        .send()
        .await
        .expect("put");
    let missing = c.get_object().bucket("evb").key("missing").send().await;
    assert!(missing.is_err());
    // Anonymous, and denied.
    let anon = ureq::get(format!("{}/evb/dir/k1", server.endpoint))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .expect("anonymous GET");
    assert_eq!(anon.status(), 403);
    // Signed with the wrong secret: the claimed key is audited, nothing secret.
    let forged = client_for(&server.endpoint, ACCESS_KEY, "not-the-secret", false);
    assert!(forged.head_bucket().bucket("evb").send().await.is_err());
    // An SSE-C key never reaches the log (the request itself is refused over plain HTTP).
    let ssec_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let _ = c
        .put_object()
        .bucket("evb")
        .key("secret")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(ssec_key)
        .sse_customer_key_md5("zZ5FnqcIqUjVwvWmyog4zw==")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;

    // Admin API calls are audited too: who, which admin action, the outcome, never the
    // secret a call carries.
    let (code, out) = admin(
        &server.endpoint,
        &["user", "add", "audited-user", "audited-secret-1"],
    );
    assert_eq!(code, 0, "{out}");
    let (code, _) = admin(
        &server.endpoint,
        &[
            "policy",
            "attach",
            "no-such-policy",
            "--user",
            "audited-user",
        ],
    );
    assert_ne!(code, 0, "attaching a missing policy fails");

    let mut file = String::new();
    wait_until(
        "the audit file has every request",
        Duration::from_secs(20),
        || {
            file = std::fs::read_to_string(&audit_file).unwrap_or_default();
            let e = entries(&file);
            find(&e, "HeadBucket", "", 403).is_some()
                && find(&e, "PutObject", "secret", 400).is_some()
                && e.iter()
                    .any(|x| x["api"]["name"] == "admin:AttachUserOrGroupPolicy")
        },
    );
    let e = entries(&file);
    let put = find(&e, "PutObject", "dir/k1", 200).expect("PutObject audited");
    assert_eq!(put["accessKey"], ACCESS_KEY);
    assert_eq!(put["api"]["bucket"], "evb");
    assert_eq!(put["api"]["rx"], 1000);
    assert_eq!(put["remotehost"], "127.0.0.1");
    assert!(put["userAgent"].as_str().unwrap_or("").contains("aws-sdk"));
    assert!(put["api"]["timeToResponseNS"].as_u64().unwrap_or(0) > 0);
    assert!(!put["requestID"].as_str().unwrap_or("").is_empty());
    assert_eq!(
        put["node"].as_str(),
        server.endpoint.strip_prefix("http://")
    );
    let failed = find(&e, "GetObject", "missing", 404).expect("failed request audited");
    assert_eq!(failed["api"]["errorCode"], "NoSuchKey");
    let denied = find(&e, "GetObject", "dir/k1", 403).expect("anonymous denied request audited");
    assert_eq!(denied["api"]["errorCode"], "AccessDenied");
    assert!(denied.get("accessKey").is_none(), "{denied}");
    let bad_sig = find(&e, "HeadBucket", "", 403).expect("badly signed request audited");
    assert_eq!(bad_sig["accessKey"], ACCESS_KEY);
    let added = find(&e, "admin:CreateUser", "", 200).expect("admin call audited");
    assert_eq!(added["accessKey"], ACCESS_KEY);
    assert!(!added["requestID"].as_str().unwrap_or("").is_empty());
    let refused = e
        .iter()
        .find(|x| x["api"]["name"] == "admin:AttachUserOrGroupPolicy")
        .expect("refused admin call audited");
    assert!(
        refused["api"]["statusCode"].as_u64() >= Some(400),
        "{refused}"
    );
    assert!(
        !refused["api"]["errorCode"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{refused}"
    );
    for secret in [
        SECRET_KEY,
        "not-the-secret",
        ssec_key,
        "Signature=",
        "audited-secret-1",
    ] {
        assert!(!file.contains(secret), "the audit log holds {secret:?}");
    }

    // The webhook gets the same entries, with its token.
    wait_until(
        "the audit webhook has the entries",
        Duration::from_secs(20),
        || {
            hook.deliveries()
                .iter()
                .any(|d| d.body.contains("\"SignatureDoesNotMatch\""))
        },
    );
    let delivered = hook.deliveries();
    assert!(delivered
        .iter()
        .all(|d| d.authorization == "Bearer audit-token"));
    let hooked: Vec<Value> = delivered
        .iter()
        .map(|d| serde_json::from_str(&d.body).expect("one entry per delivery"))
        .collect();
    let hooked_put = find(&hooked, "PutObject", "dir/k1", 200).expect("PutObject delivered");
    assert_eq!(hooked_put["requestID"], put["requestID"]);
    assert!(!delivered.iter().any(|d| d.body.contains(SECRET_KEY)));

    // The errors-on-evb trace saw the refusals and nothing that succeeded; the PutObject
    // trace saw the upload as a one-line summary.
    wait_until("the traces caught up", Duration::from_secs(20), || {
        errors.lines().iter().any(|l| l.contains("NoSuchKey"))
            && puts
                .lines()
                .iter()
                .any(|l| l.contains("PutObject evb/dir/k1 200"))
    });
    let traced = entries(&errors.lines().join("\n"));
    assert!(find(&traced, "GetObject", "dir/k1", 403).is_some());
    assert!(traced
        .iter()
        .all(|t| t["api"]["statusCode"].as_u64() >= Some(400)));
    assert!(traced.iter().all(|t| t["api"]["bucket"] == "evb"));
    assert!(puts.lines().iter().all(|l| l.contains(" PutObject ")));
    drop(errors);
    drop(puts);
    wait_until("traces unsubscribed", Duration::from_secs(20), || {
        metric(&server.endpoint, "cairn_trace_subscribers") == 0.0
    });
    assert!(metric(&server.endpoint, "cairn_audit_file_entries_written_total") >= 6.0);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_wait_out_a_down_target_and_a_restart() {
    let port = free_port();
    let hook_url = format!("http://127.0.0.1:{port}/events");
    let dir = tempfile::tempdir().expect("tempdir");
    let drives: Vec<PathBuf> = (1..=4).map(|i| dir.path().join(format!("d{i}"))).collect();
    let env = [
        ("CAIRN_NOTIFY_WEBHOOK_ENDPOINT_hook1", hook_url.as_str()),
        ("CAIRN_NOTIFY_WEBHOOK_AUTH_TOKEN_hook1", "events-token"),
        ("CAIRN_PROMETHEUS_AUTH_TYPE", "public"),
    ];
    let server = Server::start_on(&drives, &env);
    let c = client(&server);
    c.create_bucket()
        .bucket("nbk")
        .send()
        .await
        .expect("create");
    cairn_integration::enable_versioning(&c, "nbk").await;
    let arn = "arn:cairn:sqs::hook1:webhook";
    let rule = |id: &str, events: Vec<Event>, name: FilterRuleName, value: &str| {
        QueueConfiguration::builder()
            .id(id)
            .queue_arn(arn)
            .set_events(Some(events))
            .filter(
                NotificationConfigurationFilter::builder()
                    .key(
                        S3KeyFilter::builder()
                            .filter_rules(FilterRule::builder().name(name).value(value).build())
                            .build(),
                    )
                    .build(),
            )
            .build()
            .expect("rule")
    };
    let config = NotificationConfiguration::builder()
        .queue_configurations(rule(
            "created",
            vec![Event::from("s3:ObjectCreated:*")],
            FilterRuleName::Prefix,
            "in/",
        ))
        .queue_configurations(rule(
            "removed",
            vec![Event::from("s3:ObjectRemoved:*")],
            FilterRuleName::Suffix,
            ".log",
        ))
        .build();
    c.put_bucket_notification_configuration()
        .bucket("nbk")
        .notification_configuration(config)
        .send()
        .await
        .expect("put notification configuration");
    let got = c
        .get_bucket_notification_configuration()
        .bucket("nbk")
        .send()
        .await
        .expect("get notification configuration");
    let queues = got.queue_configurations();
    assert_eq!(queues.len(), 2);
    assert_eq!(queues[0].queue_arn(), arn);
    assert_eq!(queues[0].id(), Some("created"));
    // A target this server does not have is refused.
    let unknown = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder()
                .queue_arn("arn:cairn:sqs::nope:webhook")
                .events(Event::from("s3:ObjectCreated:*"))
                .build()
                .expect("rule"),
        )
        .build();
    let err = c
        .put_bucket_notification_configuration()
        .bucket("nbk")
        .notification_configuration(unknown)
        .send()
        .await
        .expect_err("unknown ARN refused");
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("InvalidArgument")
    );

    // Five events while the target is down; one write outside every rule.
    let put = c
        .put_object()
        .bucket("nbk")
        .key("in/a b.txt")
        .body(ByteStream::from(vec![1u8; 321]))
        .send()
        .await
        .expect("put");
    c.put_object()
        .bucket("nbk")
        .key("out/quiet")
        .body(ByteStream::from_static(b"q"))
        .send()
        .await
        .expect("put quiet");
    c.copy_object()
        .bucket("nbk")
        .key("in/copy")
        .copy_source("nbk/in/a%20b.txt")
        .send()
        .await
        .expect("copy");
    cairn_integration::multipart_bytes(&c, "nbk", "in/multi", &[vec![2u8; 1000]]).await;
    c.delete_object()
        .bucket("nbk")
        .key("x.log")
        .send()
        .await
        .expect("delete");
    c.delete_objects()
        .bucket("nbk")
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("y.log")
                        .build()
                        .expect("id"),
                )
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects");
    let queued = "cairn_notify_target_queue_length{server";
    assert_eq!(metric(&server.endpoint, queued), 5.0);
    wait_until("delivery attempts failing", Duration::from_secs(20), || {
        metric(&server.endpoint, "cairn_notify_target_failed_total") >= 1.0
    });

    // A restart keeps the queue; then the target comes up and gets every event.
    assert!(server.terminate().success());
    let server = Server::start_on(&drives, &env);
    assert_eq!(metric(&server.endpoint, queued), 5.0);
    let hook = Hook::listen(TcpListener::bind(("127.0.0.1", port)).expect("bind hook port"));
    wait_until("five events delivered", Duration::from_secs(60), || {
        let names: BTreeSet<String> = hook.deliveries().iter().map(|d| d.body.clone()).collect();
        names.len() >= 5
    });
    let delivered = hook.deliveries();
    assert!(delivered
        .iter()
        .all(|d| d.authorization == "Bearer events-token"));
    let events: Vec<Value> = delivered
        .iter()
        .map(|d| serde_json::from_str(&d.body).expect("event JSON"))
        .collect();
    let seen: BTreeSet<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["EventName"].as_str().unwrap_or("").to_string(),
                e["Key"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("s3:ObjectCreated:Put", "nbk/in/a b.txt"),
        ("s3:ObjectCreated:Copy", "nbk/in/copy"),
        ("s3:ObjectCreated:CompleteMultipartUpload", "nbk/in/multi"),
        ("s3:ObjectRemoved:DeleteMarkerCreated", "nbk/x.log"),
        ("s3:ObjectRemoved:DeleteMarkerCreated", "nbk/y.log"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen, want);
    let put_event = events
        .iter()
        .find(|e| e["EventName"] == "s3:ObjectCreated:Put")
        .expect("put event");
    let record = &put_event["Records"][0];
    assert_eq!(record["eventSource"], "aws:s3");
    assert_eq!(record["eventName"], "s3:ObjectCreated:Put");
    assert_eq!(record["s3"]["configurationId"], "created");
    assert_eq!(record["s3"]["bucket"]["name"], "nbk");
    assert_eq!(record["s3"]["object"]["key"], "in%2Fa+b.txt");
    assert_eq!(record["s3"]["object"]["size"], 321);
    assert_eq!(
        record["s3"]["object"]["versionId"].as_str(),
        put.version_id()
    );
    assert_eq!(
        format!(
            "\"{}\"",
            record["s3"]["object"]["eTag"].as_str().unwrap_or("")
        ),
        put.e_tag().unwrap_or("")
    );
    assert_eq!(record["userIdentity"]["principalId"], ACCESS_KEY);
    wait_until("the queue drained", Duration::from_secs(20), || {
        metric(&server.endpoint, queued) == 0.0
    });
    assert!(metric(&server.endpoint, "cairn_notify_target_sent_total") >= 5.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_all_nodes_relays_every_node() {
    let cluster = Cluster::start(2, 2, &[]);
    let trace = Trace::start(&cluster.endpoint(0), &["--all-nodes", "--json"]);
    let c0 = client_for(&cluster.endpoint(0), ACCESS_KEY, SECRET_KEY, true);
    let c1 = client_for(&cluster.endpoint(1), ACCESS_KEY, SECRET_KEY, true);
    // Requests through both nodes until the trace shows each (it subscribes to the other
    // node over RPC shortly after it starts).
    let mut n = 0;
    wait_until("both nodes traced", Duration::from_secs(30), || {
        n += 1;
        let rt = tokio::runtime::Handle::current();
        let bucket = format!("tr{n}");
        let (a, b) = (c0.clone(), c1.clone());
        std::thread::spawn(move || {
            rt.block_on(async {
                let _ = a.create_bucket().bucket(&bucket).send().await;
                let _ = b.head_bucket().bucket(&bucket).send().await;
            })
        })
        .join()
        .expect("requests");
        let nodes: BTreeSet<String> = entries(&trace.lines().join("\n"))
            .iter()
            .filter(|e| e["api"]["name"] == "HeadBucket" || e["api"]["name"] == "CreateBucket")
            .filter_map(|e| e["node"].as_str().map(str::to_string))
            .collect();
        nodes.len() == 2
    });
    let traced = entries(&trace.lines().join("\n"));
    let from_1 = traced
        .iter()
        .find(|e| e["node"].as_str() == Some(cluster.hosts[1].as_str()))
        .expect("an entry from node 2");
    assert_eq!(from_1["api"]["name"], "HeadBucket");
}

/// A target down for more than a minute (past the longest retry backoff) still gets the
/// event once it comes back, without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn notifications_survive_a_target_down_for_minutes() {
    let port = free_port();
    let hook_url = format!("http://127.0.0.1:{port}/events");
    let server = Server::start_with(
        4,
        &[
            ("CAIRN_NOTIFY_WEBHOOK_ENDPOINT_late", hook_url.as_str()),
            ("CAIRN_PROMETHEUS_AUTH_TYPE", "public"),
        ],
    );
    let c = client(&server);
    c.create_bucket()
        .bucket("late")
        .send()
        .await
        .expect("create");
    let config = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder()
                .queue_arn("arn:cairn:sqs::late:webhook")
                .events(Event::from("s3:ObjectCreated:Put"))
                .build()
                .expect("rule"),
        )
        .build();
    c.put_bucket_notification_configuration()
        .bucket("late")
        .notification_configuration(config)
        .send()
        .await
        .expect("configure");
    c.put_object()
        .bucket("late")
        .key("waited")
        .body(ByteStream::from_static(b"w"))
        .send()
        .await
        .expect("put");
    let started = std::time::Instant::now();
    let failed = "cairn_notify_target_failed_total{server";
    // Retries keep coming, further and further apart, for a minute and more.
    std::thread::sleep(Duration::from_secs(75));
    let attempts = metric(&server.endpoint, failed);
    assert!(
        attempts >= 6.0,
        "{attempts} attempts in {:?}",
        started.elapsed()
    );
    assert_eq!(
        metric(&server.endpoint, "cairn_notify_target_queue_length{server"),
        1.0
    );
    let hook = Hook::listen(TcpListener::bind(("127.0.0.1", port)).expect("bind hook port"));
    wait_until(
        "the event after the outage",
        Duration::from_secs(45),
        || !hook.deliveries().is_empty(),
    );
    let d = hook.deliveries();
    assert_eq!(d.len(), 1);
    assert!(
        d[0].body.contains("\"Key\":\"late/waited\""),
        "{}",
        d[0].body
    );
}

/// What the lifecycle expires fires `s3:LifecycleExpiration:*` events: a delete marker
/// written over the current version, then the noncurrent version removed.
#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_expiries_fire_events() {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter, NoncurrentVersionExpiration,
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hook_url = format!("http://{}/events", listener.local_addr().expect("addr"));
    let hook = Hook::listen(listener);
    let server = Server::start_with(
        4,
        &[
            ("CAIRN_NOTIFY_WEBHOOK_ENDPOINT_lc", hook_url.as_str()),
            ("CAIRN_LIFECYCLE_DEBUG_DAY", "2s"),
        ],
    );
    let c = client(&server);
    c.create_bucket()
        .bucket("lce")
        .send()
        .await
        .expect("create");
    cairn_integration::enable_versioning(&c, "lce").await;
    let config = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder()
                .id("expiries")
                .queue_arn("arn:cairn:sqs::lc:webhook")
                .events(Event::from("s3:LifecycleExpiration:*"))
                .build()
                .expect("rule"),
        )
        .build();
    c.put_bucket_notification_configuration()
        .bucket("lce")
        .notification_configuration(config)
        .send()
        .await
        .expect("configure");
    c.put_object()
        .bucket("lce")
        .key("old/a")
        .body(ByteStream::from_static(b"expire me"))
        .send()
        .await
        .expect("put");
    c.put_object()
        .bucket("lce")
        .key("kept/b")
        .body(ByteStream::from_static(b"keep me"))
        .send()
        .await
        .expect("put");
    let rule = LifecycleRule::builder()
        .id("old")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("old/").build())
        .expiration(LifecycleExpiration::builder().days(1).build())
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(1)
                .build(),
        )
        .build()
        .expect("rule");
    c.put_bucket_lifecycle_configuration()
        .bucket("lce")
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .expect("configuration"),
        )
        .send()
        .await
        .expect("lifecycle");
    let names = |hook: &Hook| -> Vec<(String, String, String)> {
        hook.deliveries()
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(&d.body).ok())
            .map(|v| {
                let r = &v["Records"][0];
                (
                    r["eventName"].as_str().unwrap_or("").to_string(),
                    r["s3"]["object"]["key"].as_str().unwrap_or("").to_string(),
                    r["userIdentity"]["principalId"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    };
    wait_until(
        "both lifecycle events delivered",
        Duration::from_secs(60),
        || {
            let got = names(&hook);
            got.iter()
                .any(|(e, _, _)| e == "s3:LifecycleExpiration:DeleteMarkerCreated")
                && got
                    .iter()
                    .any(|(e, _, _)| e == "s3:LifecycleExpiration:Delete")
        },
    );
    let got = names(&hook);
    assert!(
        got.iter()
            .all(|(_, k, p)| k == "old%2Fa" && p == "cairn:lifecycle"),
        "only old/a (keys URL-encoded, as AWS sends them) expired, by the lifecycle: {got:?}"
    );
}

/// Two targets named with one queue folder (as MinIO configurations often do), one of them
/// authenticated by the user info of its URL: both get every event of their own rule, once,
/// the credentials as Basic authentication and never in the log; rules sending the same
/// events on overlapping keys to one target are refused.
#[tokio::test(flavor = "multi_thread")]
async fn targets_sharing_a_queue_folder_each_get_their_events_once() {
    let (l1, l2) = (
        TcpListener::bind("127.0.0.1:0").expect("bind"),
        TcpListener::bind("127.0.0.1:0").expect("bind"),
    );
    let url1 = format!(
        "http://hookuser:hookP4ss@127.0.0.1:{}/one",
        l1.local_addr().expect("addr").port()
    );
    let url2 = format!(
        "http://127.0.0.1:{}/two",
        l2.local_addr().expect("addr").port()
    );
    let (h1, h2) = (Hook::listen(l1), Hook::listen(l2));
    let queues = tempfile::tempdir().expect("tempdir");
    let shared = queues.path().display().to_string();
    let env = [
        ("CAIRN_NOTIFY_WEBHOOK_ENDPOINT_1", url1.as_str()),
        ("CAIRN_NOTIFY_WEBHOOK_QUEUE_DIR_1", shared.as_str()),
        ("MINIO_NOTIFY_WEBHOOK_ENDPOINT_2", url2.as_str()),
        ("MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_2", shared.as_str()),
        ("MINIO_NOTIFY_WEBHOOK_ENDPOINT_3", url2.as_str()),
        ("MINIO_NOTIFY_WEBHOOK_ENABLE_3", "OFF"),
    ];
    let server = Server::start_with(4, &env);
    let c = client(&server);
    c.create_bucket()
        .bucket("shq")
        .send()
        .await
        .expect("create");
    let rule = |id: &str, target: &str, prefix: &str| {
        QueueConfiguration::builder()
            .id(id)
            .queue_arn(format!("arn:cairn:sqs::{target}:webhook"))
            .events(Event::from("s3:ObjectCreated:*"))
            .filter(
                NotificationConfigurationFilter::builder()
                    .key(
                        S3KeyFilter::builder()
                            .filter_rules(
                                FilterRule::builder()
                                    .name(FilterRuleName::Prefix)
                                    .value(prefix)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
            .expect("rule")
    };
    let put_rules = |rules: Vec<QueueConfiguration>| {
        let c = c.clone();
        async move {
            c.put_bucket_notification_configuration()
                .bucket("shq")
                .notification_configuration(
                    NotificationConfiguration::builder()
                        .set_queue_configurations(Some(rules))
                        .build(),
                )
                .send()
                .await
        }
    };
    // Overlapping rules to one target: refused. The disabled target is no target.
    let overlap = put_rules(vec![rule("a", "1", "one/"), rule("b", "1", "one/x")]).await;
    assert!(
        format!("{:?}", overlap.expect_err("overlap refused")).contains("overlap"),
        "overlapping rules refused with the AWS message"
    );
    assert!(put_rules(vec![rule("c", "3", "")]).await.is_err());
    put_rules(vec![rule("a", "1", "one/"), rule("b", "2", "two/")])
        .await
        .expect("rules");
    for i in 0..10 {
        for p in ["one", "two"] {
            c.put_object()
                .bucket("shq")
                .key(format!("{p}/{i}"))
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .expect("put");
        }
    }
    let keys = |h: &Hook| -> Vec<String> {
        h.deliveries()
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(&d.body).ok())
            .filter_map(|v| v["Key"].as_str().map(String::from))
            .collect()
    };
    wait_until(
        "both targets got their 10 events",
        Duration::from_secs(20),
        || keys(&h1).len() >= 10 && keys(&h2).len() >= 10,
    );
    std::thread::sleep(Duration::from_millis(500));
    let (k1, k2) = (keys(&h1), keys(&h2));
    let want = |p: &str| (0..10).map(|i| format!("shq/{p}/{i}")).collect::<Vec<_>>();
    assert_eq!(
        k1,
        want("one"),
        "target 1: each of its events once, in order"
    );
    assert_eq!(
        k2,
        want("two"),
        "target 2: each of its events once, in order"
    );
    assert!(h1
        .deliveries()
        .iter()
        .all(|d| d.authorization == "Basic aG9va3VzZXI6aG9va1A0c3M="));
    assert!(h2.deliveries().iter().all(|d| d.authorization.is_empty()));
    for id in ["1", "2"] {
        assert!(
            queues.path().join(format!("webhook-{id}")).is_dir(),
            "target {id} queues in its own subfolder"
        );
    }
    let log = server.log();
    assert!(!log.contains("hookP4ss"), "endpoint password in the log");
}
