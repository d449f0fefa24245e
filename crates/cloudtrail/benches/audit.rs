//! Audit throughput figures for issue 8 (a plain `main`, not criterion: each figure is one long run).
//!
//! 1. `commit`: CloudTrail records committed durably (fsync'd group commit) through `RedbStore` by
//!    many concurrent committers, one realistic record (about 1.2 KB of JSON) per batch, the way the
//!    pipeline commits a write with its record; also the read-only path (`submit` + `flush`).
//! 2. `delivery`: a day of events (default 1,000,000) delivered as gzip log files with a signed digest
//!    chain by the delivery task, into an in-memory sink.
//!
//! Run with `cargo bench -p citadel-cloudtrail --bench audit` (env: `AUDIT_EVENTS`, `AUDIT_TASKS`,
//! `AUDIT_COMMITS`, `AUDIT_DAY_EVENTS`).

use citadel_cloudtrail::{CloudTrail, Deliverer, MemoryLogSink, MemorySink};
use citadel_core::audit::{self, EventFacts};
use citadel_core::clock::{Clock, ManualClock};
use citadel_core::random::SeededRandom;
use citadel_core::{Authorized, Call, IdGen, Principal, PrincipalKind, RequestContext, Service};
use citadel_store::{MasterKey, RedbStore, Store, WriteBatch};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const ACCOUNT: &str = "123456789012";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn principal(i: u64) -> Arc<Principal> {
    Arc::new(Principal {
        account_id: ACCOUNT.into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:user/user{}", i % 50),
        principal_id: format!("AIDA{:016}", i % 50),
        kind: PrincipalKind::User {
            name: format!("user{}", i % 50),
            path: "/".into(),
        },
        access_key_id: Some(format!("AKIA{:016}", i % 50)),
        tags: Vec::new(),
        session: None,
    })
}

/// One realistic record and its key, as the pipeline makes them.
fn record(i: u64, at: OffsetDateTime) -> (Vec<u8>, Vec<u8>) {
    let ctx = RequestContext {
        request_id: format!("{i:032x}"),
        principal: principal(i),
        region: "us-east-1".into(),
        source_ip: "10.0.0.1".parse().unwrap_or(std::net::IpAddr::from([10, 0, 0, 1])),
        user_agent: "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64 command/iam.create-user".into(),
        secure_transport: true,
        time: at,
        service: "iam",
        operation: "CreateUser",
    };
    let event_id = format!("00000000-0000-4000-8000-{i:012}");
    let value = audit::record(EventFacts {
        ctx: &ctx,
        event_source: "iam.amazonaws.com",
        read_only: false,
        management: true,
        request: Some(
            json!({"UserName": format!("user-{i}"), "Path": "/engineering/", "Tags": [{"Key": "team", "Value": "sec"}]}),
        ),
        response: Some(
            json!({"User": {"UserName": format!("user-{i}"), "UserId": format!("AIDA{i:016}"),
            "Arn": format!("arn:aws:iam::{ACCOUNT}:user/engineering/user-{i}"), "Path": "/engineering/",
            "CreateDate": "2026-01-01T00:00:00Z"}}),
        ),
        error: None,
        resources: &[],
        event_id: event_id.clone(),
        recipient_account_id: ACCOUNT,
    });
    let ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    (
        audit::event_key(ACCOUNT, ms, &event_id),
        serde_json::to_vec(&value).unwrap_or_default(),
    )
}

async fn bench_commit(dir: &std::path::Path) {
    let tasks = env_usize("AUDIT_TASKS", 256);
    let per_task = env_usize("AUDIT_COMMITS", 400);
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.join("commit.redb")).expect("store"));
    let (_, sample) = record(0, OffsetDateTime::now_utc());
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for n in 0..per_task {
                let i = (t * per_task + n) as u64;
                let (key, value) = record(i, OffsetDateTime::now_utc());
                let mut batch = WriteBatch::new();
                batch.put(audit::EVENTS, &key, &value);
                store.commit(batch).await.expect("commit");
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let total = tasks * per_task;
    println!(
        "commit: {total} durable commits of one {}-byte record by {tasks} concurrent committers in {elapsed:.2} s = {:.0} events/s",
        sample.len(),
        total as f64 / elapsed
    );

    // The read-only path: records submitted to the group committer, then one flush.
    let total = env_usize("AUDIT_EVENTS", 200_000);
    let start = Instant::now();
    for i in 0..total {
        let (key, value) = record(1_000_000_000 + i as u64, OffsetDateTime::now_utc());
        let mut batch = WriteBatch::new();
        batch.put(audit::EVENTS, &key, &value);
        store.submit(batch);
        if store.backlog() > 8192 {
            store.flush().await.expect("flush");
        }
    }
    store.flush().await.expect("flush");
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "submit: {total} read-only records submitted and flushed (durable) in {elapsed:.2} s = {:.0} events/s",
        total as f64 / elapsed
    );
    store.close().await.ok();
}

async fn bench_delivery(dir: &std::path::Path) {
    let n_events = env_usize("AUDIT_DAY_EVENTS", 1_000_000);
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.join("delivery.redb")).expect("store"));
    let day_start = OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("time");
    let clock = ManualClock::new(day_start);
    let sink = Arc::new(MemorySink::new());
    let bucket_policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": ["s3:GetBucketAcl", "s3:PutObject"],
        "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}]})
    .to_string();
    sink.add_bucket("b", Some(&bucket_policy));
    let master = Arc::new(MasterKey::generate());
    let ids = IdGen::new(Arc::new(SeededRandom::new(7)));
    let service = CloudTrail::new(store.clone(), master.clone(), ids.clone(), sink.clone());
    let root = Arc::new(Principal::root(ACCOUNT, None));
    for (op, input) in [
        (
            "CreateTrail",
            json!({"Name": "day", "S3BucketName": "b", "EnableLogFileValidation": true}),
        ),
        ("StartLogging", json!({"Name": "day"})),
    ] {
        let spec = citadel_cloudtrail::SPEC.operation(op).expect("op");
        let call = Call {
            ctx: RequestContext {
                request_id: "bench".into(),
                principal: root.clone(),
                region: "us-east-1".into(),
                source_ip: std::net::IpAddr::from([127, 0, 0, 1]),
                user_agent: "bench".into(),
                secure_transport: true,
                time: clock.now(),
                service: "cloudtrail",
                operation: spec.name,
            },
            op: spec,
            input,
        };
        // Handlers are driven directly here, as in the crate's unit tests.
        let effect = service.execute(&call, &authorized()).await.expect("execute");
        store.commit(effect.batch).await.expect("commit");
    }
    // A day of events, spread evenly over 24 hours (insertion is not timed).
    let step_ms = (86_400_000 / n_events.max(1)) as i64;
    let mut batch = WriteBatch::new();
    for i in 0..n_events {
        let at = day_start + time::Duration::milliseconds(1 + i as i64 * step_ms);
        let (key, value) = record(i as u64, at);
        batch.put(audit::EVENTS, &key, &value);
        if (i + 1) % 20_000 == 0 {
            store.commit(std::mem::take(&mut batch)).await.expect("commit");
        }
    }
    store.commit(batch).await.expect("commit");
    let deliverer = Deliverer {
        store: store.clone(),
        master,
        clock: Arc::new(clock.clone()),
        ids,
        sink: sink.clone(),
        log_sink: Arc::new(MemoryLogSink::new()),
        digest_interval: Duration::from_secs(3600),
        settle: Duration::ZERO,
    };
    // The delivery task runs every 5 minutes over the day (288 passes), then once more at the end.
    let start = Instant::now();
    let mut passes = 0;
    for _ in 0..=288 {
        clock.advance(time::Duration::minutes(5));
        deliverer.run_once().await;
        passes += 1;
    }
    // Anything left over (more than 5,000 events per pass) is delivered by further passes.
    let mut delivered = 0;
    loop {
        let now = sink.objects().len();
        if now == delivered {
            break;
        }
        delivered = now;
        clock.advance(time::Duration::seconds(1));
        deliverer.run_once().await;
        passes += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let objects = sink.objects();
    let logs = objects.iter().filter(|o| o.key.contains("/CloudTrail/")).count();
    let digests = objects.iter().filter(|o| o.key.contains("/CloudTrail-Digest/")).count();
    let gz_bytes: usize = objects.iter().map(|o| o.body.len()).sum();
    println!(
        "delivery: {n_events} events of one day -> {logs} log files + {digests} signed digests ({:.1} MB gzip) in {passes} passes, {elapsed:.2} s = {:.0} events/s",
        gz_bytes as f64 / 1e6,
        n_events as f64 / elapsed
    );
    store.close().await.ok();
}

/// The handlers' proof, as the crate's unit tests make it.
fn authorized() -> Authorized {
    Authorized::for_tests()
}

fn main() {
    let which = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    runtime.block_on(async {
        if which.as_deref().is_none_or(|w| w == "commit") {
            bench_commit(dir.path()).await;
        }
        if which.as_deref().is_none_or(|w| w == "delivery") {
            bench_delivery(dir.path()).await;
        }
    });
}
