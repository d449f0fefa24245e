//! Tests of the redb backend: the shared conformance suite, durability across reopen and SIGKILL,
//! and the group-commit throughput figure.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use super::*;

async fn fresh_store() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("store.redb")).unwrap();
    (Arc::new(store), dir)
}

mod conformance {
    use super::fresh_store;
    crate::conformance_tests!(fresh_store);
}

fn put(table: &str, key: &[u8], value: &[u8]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.put(table, key, value);
    batch
}

#[tokio::test]
async fn close_makes_everything_durable_and_releases_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = RedbStore::open(&path).unwrap();
    // A second open of a file in use fails rather than corrupting it.
    assert!(RedbStore::open(&path).is_err());
    store.commit(put("t", b"committed", b"1")).await.unwrap();
    store.submit(put("t", b"submitted", b"2"));
    store.close().await.unwrap();
    assert_eq!(store.get("t", b"committed").await.unwrap_err(), StoreError::Closed);
    assert_eq!(
        store.commit(put("t", b"k", b"v")).await.unwrap_err(),
        CommitError::Backend(StoreError::Closed)
    );
    assert_eq!(store.flush().await.unwrap_err(), StoreError::Closed);
    store.close().await.unwrap();

    let reopened = RedbStore::open(&path).unwrap();
    assert_eq!(
        reopened.get("t", b"committed").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        reopened.get("t", b"submitted").await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
    reopened.close().await.unwrap();
}

#[tokio::test]
async fn dropping_the_store_still_commits_submitted_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = RedbStore::open(&path).unwrap();
    store.submit(put("t", b"k", b"v"));
    drop(store);
    // The committer drains the channel, then releases the file; wait for that.
    let deadline = Instant::now() + Duration::from_secs(5);
    let reopened = loop {
        match RedbStore::open(&path) {
            Ok(store) => break store,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(err) => panic!("{err}"),
        }
    };
    assert_eq!(reopened.get("t", b"k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

/// Runs `committers` tasks each committing `per_committer` small batches one after another;
/// returns the commit rate and the average number of batches per fsynced group.
async fn measure_group_commit(
    store: &Arc<RedbStore>,
    table: &'static str,
    committers: u32,
    per_committer: u32,
) -> (f64, f64) {
    let value = [7u8; 100];
    let before = store.commit_stats();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..committers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_committer {
                let key = crate::keys::Key::new().u64(u64::from(c)).u64(u64::from(i)).finish();
                let mut batch = WriteBatch::new();
                batch.expect(table, &key, None).put(table, &key, &value);
                store.commit(batch).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = store.commit_stats();
    let total = u64::from(committers * per_committer);
    let (groups, batches) = (stats.groups - before.groups, stats.batches - before.batches);
    assert_eq!(batches, total);
    let rows = store.scan(table, b"", None, usize::MAX, false).await.unwrap();
    assert_eq!(rows.len() as u64, total);
    (total as f64 / elapsed, batches as f64 / groups as f64)
}

/// The figure the brief asks for: 16 concurrent committers each committing small batches, plus a
/// single committer and 128 committers for scale.
/// Each committer waits for its fsync, so at most `committers` batches can share one group: the
/// rate is bounded by committers / fsync latency, and grows with concurrency.
/// Grouping is asserted; the rates are printed (they depend on the disk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("bench.redb")).unwrap());
    let (single_rate, _) = measure_group_commit(&store, "bench1", 1, 100).await;
    let (rate, per_group) = measure_group_commit(&store, "bench16", 16, 400).await;
    let (wide_rate, wide_per_group) = measure_group_commit(&store, "bench128", 128, 50).await;
    println!(
        "group commit: 1 committer {single_rate:.0} commits/s; 16 committers {rate:.0} commits/s \
         ({per_group:.1} batches per fsync); 128 committers {wide_rate:.0} commits/s ({wide_per_group:.1} batches per fsync)"
    );
    assert!(
        per_group > 2.0,
        "16 committers should share fsyncs, got {per_group:.1} batches per group"
    );
    store.close().await.unwrap();
}

const CRASH_CHILD_ENV: &str = "CITADEL_STORE_CRASH_CHILD";
const CRASH_TABLE: &str = "crash";
const CRASH_TEST: &str = "redb_adapter::tests::acknowledged_commits_survive_sigkill";

fn crash_value(n: u64) -> Vec<u8> {
    format!("record {n}").into_bytes()
}

/// The child side of the crash test: commits numbered records from 8 tasks forever, printing each
/// number once its commit is acknowledged, until the parent kills it.
fn crash_child(spec: &str) {
    let (path, base) = spec.split_once('|').unwrap();
    let base: u64 = base.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Arc::new(RedbStore::open(std::path::Path::new(path)).unwrap());
        let mut tasks = Vec::new();
        for task in 0..8u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let n = base + task * 100_000 + i;
                    let mut batch = WriteBatch::new();
                    batch.put(CRASH_TABLE, &n.to_be_bytes(), &crash_value(n));
                    // A second table in the same batch checks atomicity too.
                    batch.put("crash_index", &n.to_be_bytes(), b"");
                    store.commit(batch).await.unwrap();
                    // Raw stdout, bypassing the test harness's capture; one write per line.
                    std::io::stdout().lock().write_all(format!("{n}\n").as_bytes()).unwrap();
                }
            }));
        }
        // Submissions nobody waits on share groups with the acknowledged commits; they must never
        // make an acknowledged commit less durable or less atomic.
        let submitter = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0u64.. {
                let n = base + 900_000 + i;
                let mut batch = WriteBatch::new();
                batch.put("crash_submitted", &n.to_be_bytes(), &crash_value(n));
                batch.put("crash_submitted_index", &n.to_be_bytes(), b"");
                submitter.submit(batch);
                tokio::task::yield_now().await;
            }
        }));
        for task in tasks {
            task.await.unwrap();
        }
    });
}

/// Re-executes this test binary to run only `test`, with `env` set to `value` (which makes that test
/// act as the child), its stdout piped to the caller.
fn spawn_child(test: &str, env: &str, value: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, value)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Re-executes this test binary as a writer, SIGKILLs it at a random moment five times, and checks
/// after each kill that every acknowledged record is in the reopened database.
#[test]
fn acknowledged_commits_survive_sigkill() {
    if let Ok(spec) = std::env::var(CRASH_CHILD_ENV) {
        crash_child(&spec);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut rng = rand::rng();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut total_acknowledged = 0;
    for round in 0..5u64 {
        let mut child = spawn_child(
            CRASH_TEST,
            CRASH_CHILD_ENV,
            &format!("{}|{}", path.display(), round * 1_000_000),
        );
        let stdout = child.stdout.take().unwrap();
        let (first_ack, first_ack_seen) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Lines that are not numbers are the harness's own output.
                if let Ok(n) = line.trim().parse::<u64>() {
                    if acknowledged.is_empty() {
                        let _ = first_ack.send(());
                    }
                    acknowledged.push(n);
                }
            }
            acknowledged
        });
        first_ack_seen
            .recv_timeout(Duration::from_secs(10))
            .expect("the child acknowledged nothing");
        std::thread::sleep(Duration::from_millis(rng.random_range(20..250)));
        child.kill().unwrap();
        child.wait().unwrap();
        let acknowledged = reader.join().unwrap();
        assert!(!acknowledged.is_empty());

        runtime.block_on(async {
            let store = RedbStore::open(&path).unwrap();
            for &n in &acknowledged {
                assert_eq!(
                    store.get(CRASH_TABLE, &n.to_be_bytes()).await.unwrap(),
                    Some(crash_value(n)),
                    "record {n}"
                );
            }
            // Atomicity: every record has its index entry and no index entry lacks its record.
            let records = store.scan(CRASH_TABLE, b"", None, usize::MAX, false).await.unwrap();
            let index = store.scan("crash_index", b"", None, usize::MAX, false).await.unwrap();
            let record_keys: Vec<_> = records.iter().map(|(k, _)| k).collect();
            let index_keys: Vec<_> = index.iter().map(|(k, _)| k).collect();
            assert_eq!(record_keys, index_keys);
            let submitted = store
                .scan("crash_submitted", b"", None, usize::MAX, false)
                .await
                .unwrap();
            let submitted_index = store
                .scan("crash_submitted_index", b"", None, usize::MAX, false)
                .await
                .unwrap();
            assert_eq!(
                submitted.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                submitted_index.iter().map(|(k, _)| k).collect::<Vec<_>>()
            );
            store.close().await.unwrap();
        });
        total_acknowledged += acknowledged.len();
    }
    println!("crash test: {total_acknowledged} acknowledged records survived 5 SIGKILLs");
}

const SUBMIT_CHILD_ENV: &str = "CITADEL_STORE_SUBMIT_CHILD";
const SUBMIT_TEST: &str = "redb_adapter::tests::submissions_become_durable_without_a_flush";

/// The child side: submits 100 batches, says so, and waits to be killed without flushing.
fn submit_child(path: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = RedbStore::open(std::path::Path::new(path)).unwrap();
        for n in 0u64..100 {
            store.submit(put("submitted", &n.to_be_bytes(), b"v"));
        }
        std::io::stdout().lock().write_all(b"submitted\n").unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

/// Submitted batches become durable on their own, without a flush and with nothing committed after
/// them: a SIGKILL a moment later loses none of them.
#[test]
fn submissions_become_durable_without_a_flush() {
    if let Ok(path) = std::env::var(SUBMIT_CHILD_ENV) {
        submit_child(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("submit.redb");
    let mut child = spawn_child(SUBMIT_TEST, SUBMIT_CHILD_ENV, &path.display().to_string());
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // The harness prints "test NAME ... " before the child's own output, on the same line.
    assert!(
        lines.any(|line| line.is_ok_and(|l| l.trim_end().ends_with("submitted"))),
        "the child never submitted"
    );
    // Far beyond one group commit, so that a slow fsync on a loaded machine does not matter.
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let store = RedbStore::open(&path).unwrap();
        let rows = store.scan("submitted", b"", None, usize::MAX, false).await.unwrap();
        assert_eq!(rows.len(), 100);
        store.close().await.unwrap();
    });
}
