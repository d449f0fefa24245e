//! Tests of the PostgreSQL backend against a real server: the shared conformance suite, two nodes
//! sharing one database (cross-node generations, contention), the listener's reconnect, close,
//! error reporting, and a latency figure.
//!
//! The server's URL comes from `CITADEL_TEST_POSTGRES_URL` (see `scripts/pg-test-server.sh`).
//! Each test gets a database of its own, `citadel_test_<random>`, created through the URL's
//! database and dropped (`WITH (FORCE)`) when the test ends.
//! Without the variable the tests say loudly that PostgreSQL was not tested and pass, so a
//! developer without PostgreSQL can still run `cargo test`; under CI (`CI` set) the missing
//! variable is a failure, so CI can never skip them silently.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation must fail the test"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use citadel_store::{CommitError, PgStore, RedbStore, Store, StoreError, WriteBatch};

const URL_VARIABLE: &str = "CITADEL_TEST_POSTGRES_URL";

/// The test server's URL; `None` (after a loud message) when it is not configured.
///
/// # Panics
/// Under CI, when the URL is missing: a skipped backend must fail the run there.
fn server_url() -> Option<String> {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but {URL_VARIABLE} is not: start scripts/pg-test-server.sh and export its URL"
            );
            // Written to stderr directly, once: libtest captures `eprintln!` of passing tests, and
            // this message must be seen.
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                let banner = format!(
                    "\n{stars}\n*** SKIPPED: the PostgreSQL backend was NOT TESTED: {URL_VARIABLE} is unset.\n\
                     *** Run: export {URL_VARIABLE}=$(scripts/pg-test-server.sh start)\n{stars}\n",
                    stars = "*".repeat(80)
                );
                let _ = std::io::Write::write_all(&mut std::io::stderr(), banner.as_bytes());
            });
            None
        }
    }
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to {URL_VARIABLE}: {err}"));
    tokio::spawn(connection);
    client
}

/// A scratch database, dropped with every connection to it when the guard is dropped.
struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    async fn create(admin_url: &str) -> ScratchDatabase {
        let name = format!("citadel_test_{:016x}", rand::random::<u64>());
        admin_client(admin_url)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        ScratchDatabase {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with a runtime
        // of its own drops the database and is joined, so no connection or database outlives the
        // test.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
                    .await
                    .map_err(std::io::Error::other)?;
                let connection = tokio::spawn(connection);
                let result = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(std::io::Error::other);
                drop(client);
                let _ = connection.await;
                result
            })
        })
        .join();
        if let Ok(Err(err)) | Err(err) = dropped.map_err(|_| std::io::Error::other("panicked")) {
            eprintln!("could not drop test database {}: {err}", self.name);
        }
    }
}

/// What the conformance factory keeps alive: the scratch database, or without PostgreSQL the
/// stand-in store's directory.
enum Guard {
    Postgres(#[allow(dead_code, reason = "held for its Drop")] ScratchDatabase),
    Skipped(#[allow(dead_code, reason = "held for its Drop")] tempfile::TempDir),
}

/// A fresh PostgreSQL store in a scratch database.
///
/// The conformance macro has no way to skip a case, so without a server the case runs against an
/// embedded store instead, after the loud message of [`server_url`]; it then proves nothing about
/// PostgreSQL, which is exactly what the message says.
async fn fresh_store() -> (Arc<dyn Store>, Guard) {
    match server_url() {
        Some(url) => {
            let database = ScratchDatabase::create(&url).await;
            let store = PgStore::connect(&database.url).await.unwrap();
            (Arc::new(store), Guard::Postgres(database))
        }
        None => {
            let dir = tempfile::tempdir().unwrap();
            let store = RedbStore::open(&dir.path().join("stand-in.redb")).unwrap();
            (Arc::new(store), Guard::Skipped(dir))
        }
    }
}

mod conformance {
    use super::fresh_store;
    citadel_store::conformance_tests!(fresh_store);
}

fn put(table: &str, key: &[u8], value: &[u8]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.put(table, key, value);
    batch
}

/// Polls until `condition` holds, for at most `within`.
async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    condition()
}

#[test]
fn ci_never_skips_postgres() {
    if std::env::var_os("CI").is_some() {
        assert!(
            std::env::var(URL_VARIABLE).is_ok_and(|url| !url.is_empty()),
            "CI is set but {URL_VARIABLE} is not: the PostgreSQL backend would go untested"
        );
    }
}

#[test]
fn database_names_replace_the_urls() {
    let cases = [
        ("postgres://u@h:1/postgres", "postgres://u@h:1/x"),
        ("postgres://u@h:1", "postgres://u@h:1/x"),
        (
            "postgres://u@h:1/db?sslmode=disable",
            "postgres://u@h:1/x?sslmode=disable",
        ),
    ];
    for (url, want) in cases {
        assert_eq!(with_database(url, "x"), want);
    }
}

/// A write through one node raises the other node's generation for that table within a second,
/// and the other node then reads the new value; a clear reaches every table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_write_bumps_generation() {
    let Some(url) = server_url() else { return };
    let database = ScratchDatabase::create(&url).await;
    let node_a = PgStore::connect(&database.url).await.unwrap();
    let node_b = PgStore::connect(&database.url).await.unwrap();
    assert_ne!(node_a.node_id(), node_b.node_id());

    let before = node_b.generation("users");
    let untouched = node_b.generation("keys");
    assert_eq!(node_b.get("users", b"alice").await.unwrap(), None);
    let started = Instant::now();
    node_a.commit(put("users", b"alice", b"v2")).await.unwrap();
    assert!(
        eventually(Duration::from_secs(1), || node_b.generation("users") > before).await,
        "node B's generation did not move within 1 s"
    );
    eprintln!("cross-node invalidation took {:?}", started.elapsed());
    assert_eq!(
        node_b.get("users", b"alice").await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );
    assert_eq!(node_b.generation("keys"), untouched, "only the written table moves");

    // Submitted batches notify too.
    let before = node_b.generation("events");
    node_a.submit(put("events", b"e1", b"x"));
    node_a.flush().await.unwrap();
    assert!(eventually(Duration::from_secs(1), || node_b.generation("events") > before).await);

    // A clear on A invalidates every table on B, including ones A never named.
    let before = node_b.generation("anything");
    node_a.clear().await.unwrap();
    assert!(eventually(Duration::from_secs(1), || node_b.generation("anything") > before).await);
    assert_eq!(node_b.get("users", b"alice").await.unwrap(), None);

    node_a.close().await.unwrap();
    node_b.close().await.unwrap();
}

/// When the listening connection is killed, the node reconnects and bumps every generation,
/// because notifications may have been missed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_reconnect_bumps_every_generation() {
    let Some(url) = server_url() else { return };
    let database = ScratchDatabase::create(&url).await;
    let store = PgStore::connect(&database.url).await.unwrap();
    let before = store.generation("never_written");
    let admin = admin_client(&url).await;
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'citadel-listener'",
            &[&database.name],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 1, "one listener connection");
    assert!(
        eventually(Duration::from_secs(5), || store.generation("never_written") > before).await,
        "no bump after the listener reconnected"
    );
    // The new listening connection works: another node's write still arrives.
    let other = PgStore::connect(&database.url).await.unwrap();
    let before = store.generation("t");
    other.commit(put("t", b"k", b"v")).await.unwrap();
    assert!(eventually(Duration::from_secs(1), || store.generation("t") > before).await);
    store.close().await.unwrap();
    other.close().await.unwrap();
}

/// Contenders on two nodes for one absent key: exactly one wins; an exact counter across nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_across_nodes() {
    let Some(url) = server_url() else { return };
    let database = ScratchDatabase::create(&url).await;
    let nodes: [Arc<dyn Store>; 2] = [
        Arc::new(PgStore::connect(&database.url).await.unwrap()),
        Arc::new(PgStore::connect(&database.url).await.unwrap()),
    ];
    let mut tasks = Vec::new();
    for id in 0..16u32 {
        let store = nodes[id as usize % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut batch = WriteBatch::new();
            batch.expect("t", b"slot", None).put("t", b"slot", &id.to_be_bytes());
            store.commit(batch).await
        }));
    }
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => winners += 1,
            Err(CommitError::Conflict { .. }) => {}
            Err(err) => panic!("{err}"),
        }
    }
    assert_eq!(winners, 1);

    let mut tasks = Vec::new();
    for worker in 0..8usize {
        let store = nodes[worker % 2].clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let current = store.get("t", b"counter").await.unwrap();
                    let value = current
                        .as_deref()
                        .map_or(0, |bytes| u64::from_be_bytes(bytes.try_into().unwrap()));
                    let mut batch = WriteBatch::new();
                    batch
                        .expect("t", b"counter", current.as_deref())
                        .put("t", b"counter", &(value + 1).to_be_bytes());
                    match store.commit(batch).await {
                        Ok(()) => break,
                        Err(CommitError::Conflict { .. }) => {}
                        Err(err) => panic!("{err}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let value = nodes[0].get("t", b"counter").await.unwrap().unwrap();
    assert_eq!(u64::from_be_bytes(value.try_into().unwrap()), 80);
    for node in nodes {
        node.close().await.unwrap();
    }
}

/// Close commits what was submitted; later calls fail with `Closed`; a new node sees the data;
/// snapshots list tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_commits_submissions_and_rejects_later_calls() {
    let Some(url) = server_url() else { return };
    let database = ScratchDatabase::create(&url).await;
    let store = PgStore::connect(&database.url).await.unwrap();
    store.commit(put("a", b"committed", b"1")).await.unwrap();
    store.submit(put("b", b"submitted", b"2"));
    store.close().await.unwrap();
    assert_eq!(store.get("a", b"committed").await.unwrap_err(), StoreError::Closed);
    assert_eq!(
        store.commit(put("a", b"k", b"v")).await.unwrap_err(),
        CommitError::Backend(StoreError::Closed)
    );
    assert_eq!(store.flush().await.unwrap_err(), StoreError::Closed);
    assert!(store.snapshot().await.is_err());
    store.close().await.unwrap();

    let reopened = PgStore::connect(&database.url).await.unwrap();
    assert_eq!(
        reopened.get("b", b"submitted").await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
    let snapshot = reopened.snapshot().await.unwrap();
    assert_eq!(snapshot.tables().await.unwrap(), vec!["a".to_owned(), "b".to_owned()]);
    drop(snapshot);
    reopened.close().await.unwrap();
}

/// Unreachable servers and bad URLs are errors with readable messages, not panics.
#[tokio::test]
async fn connection_failures_are_readable_errors() {
    let err = PgStore::connect("not a url at all").await.unwrap_err();
    assert!(err.to_string().contains("invalid PostgreSQL URL"), "{err}");
    // Port 1 on loopback refuses connections at once.
    let err = PgStore::connect("postgres://postgres@127.0.0.1:1/postgres?connect_timeout=2")
        .await
        .unwrap_err();
    let message = err.to_string();
    eprintln!("unreachable server: {message}");
    assert!(message.contains("PostgreSQL"), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
    let Some(url) = server_url() else { return };
    let err = PgStore::connect(&with_database(&url, "citadel_no_such_database"))
        .await
        .unwrap_err();
    eprintln!("missing database: {err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

/// Prints the latency of a durable single commit and of a get (median and 99th percentile) against
/// the test server; it asserts only correctness, since timings depend on the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_figures() {
    let Some(url) = server_url() else { return };
    let database = ScratchDatabase::create(&url).await;
    let store = PgStore::connect(&database.url).await.unwrap();
    let rounds = 300u32;
    let mut commits = Vec::new();
    for i in 0..rounds {
        let started = Instant::now();
        store.commit(put("bench", &i.to_be_bytes(), &[7u8; 100])).await.unwrap();
        commits.push(started.elapsed());
    }
    let mut gets = Vec::new();
    for i in 0..rounds {
        let started = Instant::now();
        assert!(store.get("bench", &i.to_be_bytes()).await.unwrap().is_some());
        gets.push(started.elapsed());
    }
    let mut conditional = Vec::new();
    for i in 0..rounds {
        let key = i.to_be_bytes();
        let started = Instant::now();
        let mut batch = WriteBatch::new();
        batch
            .expect("bench", &key, Some(&[7u8; 100]))
            .put("bench", &key, b"next");
        store.commit(batch).await.unwrap();
        conditional.push(started.elapsed());
    }
    let quantiles = |samples: &mut Vec<Duration>| {
        samples.sort();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
        format!("p50 {:?}, p99 {:?}", at(0.5), at(0.99))
    };
    eprintln!(
        "PgStore latency over {rounds} rounds: commit {}; conditional commit {}; get {}",
        quantiles(&mut commits),
        quantiles(&mut conditional),
        quantiles(&mut gets)
    );
    store.close().await.unwrap();
}
