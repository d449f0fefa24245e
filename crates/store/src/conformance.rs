//! The conformance suite every [`Store`] backend must pass.
//!
//! Each case is an async function taking a fresh, empty `Arc<dyn Store>` and panicking (it is test
//! code) when the backend deviates from the contract documented on [`Store`].
//! [`conformance_tests!`](crate::conformance_tests) turns the whole list into `#[tokio::test]`
//! functions for a backend, given a factory; the redb tests in this crate and the PostgreSQL
//! backend's tests both use it, so the two backends are held to exactly the same behaviour.
//!
//! Enabled by the `conformance` feature (and always in this crate's own tests).

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support: a failed expectation must fail the calling test"
)]

use std::sync::Arc;

use crate::batch::WriteBatch;
use crate::error::CommitError;
use crate::keys::{Key, prefix_range};
use crate::store::Store;

/// Generates one `#[tokio::test]` per conformance case.
///
/// `$factory` is an async function returning `(Arc<dyn Store>, guard)`: a fresh empty store and a
/// value kept alive for the test's duration (a temporary directory, a scratch schema).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@cases $factory;
            get_put_delete,
            tables_are_isolated,
            binary_keys_sort_bytewise,
            scan_bounds_limit_reverse,
            scan_prefixes,
            preconditions,
            conflict_writes_nothing,
            later_batch_sees_earlier_batch,
            one_winner_among_contenders,
            generation_bumps,
            clear_removes_everything,
            submit_then_flush,
            snapshot_is_point_in_time,
            concurrent_counter_is_exact,
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $factory().await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

const T: &str = "conformance";
const OTHER: &str = "conformance_other";

fn put(table: &str, key: &[u8], value: &[u8]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.put(table, key, value);
    batch
}

fn keys_of(rows: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u8>> {
    rows.iter().map(|(k, _)| k.clone()).collect()
}

fn owned(keys: &[&[u8]]) -> Vec<Vec<u8>> {
    keys.iter().map(|k| k.to_vec()).collect()
}

/// Put, overwrite, get, delete; reading an unknown table is empty, not an error.
pub async fn get_put_delete(store: Arc<dyn Store>) {
    assert_eq!(store.get("never_written", b"k").await.unwrap(), None);
    assert!(
        store
            .scan("never_written", b"", None, 10, false)
            .await
            .unwrap()
            .is_empty()
    );
    store.commit(put(T, b"k", b"v1")).await.unwrap();
    assert_eq!(store.get(T, b"k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    store.commit(put(T, b"k", b"v2")).await.unwrap();
    assert_eq!(store.get(T, b"k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    let big = vec![0xA5u8; 1 << 20];
    store.commit(put(T, b"big", &big)).await.unwrap();
    assert_eq!(store.get(T, b"big").await.unwrap(), Some(big));
    store.commit(put(T, b"", b"empty key and")).await.unwrap();
    store.commit(put(T, b"empty value", b"")).await.unwrap();
    assert_eq!(store.get(T, b"").await.unwrap().as_deref(), Some(&b"empty key and"[..]));
    assert_eq!(store.get(T, b"empty value").await.unwrap().as_deref(), Some(&b""[..]));
    let mut batch = WriteBatch::new();
    batch.delete(T, b"k").delete(T, b"absent");
    store.commit(batch).await.unwrap();
    assert_eq!(store.get(T, b"k").await.unwrap(), None);
    // Writes within one batch apply in order: the last write of a key wins.
    let mut batch = WriteBatch::new();
    batch
        .put(T, b"order", b"first")
        .delete(T, b"order")
        .put(T, b"order", b"last");
    store.commit(batch).await.unwrap();
    assert_eq!(store.get(T, b"order").await.unwrap().as_deref(), Some(&b"last"[..]));
    store.commit(WriteBatch::new()).await.unwrap();
}

/// The same key in two tables is two keys.
pub async fn tables_are_isolated(store: Arc<dyn Store>) {
    let mut batch = WriteBatch::new();
    batch.put(T, b"k", b"in T").put(OTHER, b"k", b"in OTHER");
    store.commit(batch).await.unwrap();
    assert_eq!(store.get(T, b"k").await.unwrap().as_deref(), Some(&b"in T"[..]));
    assert_eq!(store.get(OTHER, b"k").await.unwrap().as_deref(), Some(&b"in OTHER"[..]));
    store
        .commit({
            let mut b = WriteBatch::new();
            b.delete(OTHER, b"k");
            b
        })
        .await
        .unwrap();
    assert_eq!(store.get(T, b"k").await.unwrap().as_deref(), Some(&b"in T"[..]));
    assert_eq!(store.scan(OTHER, b"", None, 10, false).await.unwrap().len(), 0);
}

/// Keys are compared as unsigned bytes, shorter first on a common prefix.
pub async fn binary_keys_sort_bytewise(store: Arc<dyn Store>) {
    let keys: [&[u8]; 6] = [b"\xff", b"\x00\x00", b"\x01", b"\x00", b"\x7f\xff", b"\x80"];
    let mut batch = WriteBatch::new();
    for key in keys {
        batch.put(T, key, key);
    }
    store.commit(batch).await.unwrap();
    let rows = store.scan(T, b"", None, usize::MAX, false).await.unwrap();
    assert_eq!(
        keys_of(&rows),
        owned(&[b"\x00", b"\x00\x00", b"\x01", b"\x7f\xff", b"\x80", b"\xff"])
    );
    assert!(rows.iter().all(|(k, v)| k == v));
}

/// `[start, end)` bounds, limits and reverse order.
pub async fn scan_bounds_limit_reverse(store: Arc<dyn Store>) {
    let mut batch = WriteBatch::new();
    for key in ["a", "b", "c", "d", "e"] {
        batch.put(T, key.as_bytes(), key.to_uppercase().as_bytes());
    }
    store.commit(batch).await.unwrap();
    type Case = (
        &'static [u8],
        Option<&'static [u8]>,
        usize,
        bool,
        &'static [&'static [u8]],
    );
    let cases: &[Case] = &[
        (b"", None, 100, false, &[b"a", b"b", b"c", b"d", b"e"]),
        (b"b", Some(b"d"), 100, false, &[b"b", b"c"]),
        (b"bb", Some(b"dd"), 100, false, &[b"c", b"d"]),
        (b"a", None, 2, false, &[b"a", b"b"]),
        (b"a", None, 2, true, &[b"e", b"d"]),
        (b"b", Some(b"e"), 100, true, &[b"d", b"c", b"b"]),
        (b"b", Some(b"e"), 1, true, &[b"d"]),
        (b"a", Some(b"a"), 100, false, &[]),
        (b"d", Some(b"b"), 100, false, &[]),
        (b"d", Some(b"b"), 100, true, &[]),
        (b"a", None, 0, false, &[]),
        (b"f", None, 100, false, &[]),
    ];
    for (start, end, limit, reverse, want) in cases {
        let rows = store.scan(T, start, *end, *limit, *reverse).await.unwrap();
        assert_eq!(
            keys_of(&rows),
            owned(want),
            "scan({start:?}, {end:?}, {limit}, {reverse})"
        );
    }
    let rows = store.scan(T, b"c", Some(b"d"), 10, false).await.unwrap();
    assert_eq!(rows, vec![(b"c".to_vec(), b"C".to_vec())]);
}

/// Tuple keys scanned by prefix, including partial string components.
pub async fn scan_prefixes(store: Arc<dyn Store>) {
    let rows = [
        ("acct1", "alice"),
        ("acct1", "al"),
        ("acct1", "bob"),
        ("acct10", "alice"),
        ("acct2", "al"),
    ];
    let mut batch = WriteBatch::new();
    for (account, user) in rows {
        batch.put(
            T,
            &Key::new().str(account).str(user).finish(),
            format!("{account}/{user}").as_bytes(),
        );
    }
    batch.put(T, b"\xff\xff", b"tail");
    store.commit(batch).await.unwrap();
    let cases: &[(Vec<u8>, &[&str])] = &[
        (
            Key::new().str("acct1").finish(),
            &["acct1/al", "acct1/alice", "acct1/bob"],
        ),
        (
            Key::new().str("acct1").str_prefix("al").finish(),
            &["acct1/al", "acct1/alice"],
        ),
        (Key::new().str("acct10").finish(), &["acct10/alice"]),
        (
            Key::new().str_prefix("acct").finish(),
            &["acct1/al", "acct1/alice", "acct1/bob", "acct10/alice", "acct2/al"],
        ),
        (b"\xff".to_vec(), &["tail"]),
    ];
    for (prefix, want) in cases {
        let (start, end) = prefix_range(prefix);
        let rows = store.scan(T, &start, end.as_deref(), usize::MAX, false).await.unwrap();
        let values: Vec<String> = rows
            .iter()
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
            .collect();
        assert_eq!(values, *want, "prefix {prefix:?}");
        let reversed = store.scan(T, &start, end.as_deref(), usize::MAX, true).await.unwrap();
        assert_eq!(reversed.into_iter().rev().collect::<Vec<_>>(), rows);
    }
}

/// Absent, present and equal-value preconditions, each passing and failing.
pub async fn preconditions(store: Arc<dyn Store>) {
    store.commit(put(T, b"k", b"v")).await.unwrap();
    let absent = |key: &[u8]| {
        let mut b = WriteBatch::new();
        b.expect(T, key, None).put(OTHER, b"marker", key);
        b
    };
    let present = |key: &[u8]| {
        let mut b = WriteBatch::new();
        b.expect_present(T, key).put(OTHER, b"marker", key);
        b
    };
    let equal = |key: &[u8], value: &[u8]| {
        let mut b = WriteBatch::new();
        b.expect(T, key, Some(value)).put(OTHER, b"marker", key);
        b
    };
    let cases: Vec<(&str, WriteBatch, bool)> = vec![
        ("absent holds", absent(b"nope"), true),
        ("absent fails", absent(b"k"), false),
        ("present holds", present(b"k"), true),
        ("present fails", present(b"nope"), false),
        ("equal holds", equal(b"k", b"v"), true),
        ("equal fails on other value", equal(b"k", b"w"), false),
        ("equal fails on absent", equal(b"nope", b"v"), false),
        (
            "absent in an unknown table holds",
            {
                let mut b = WriteBatch::new();
                b.expect("conformance_unknown", b"k", None);
                b
            },
            true,
        ),
    ];
    for (name, batch, should_apply) in cases {
        match store.commit(batch).await {
            Ok(()) => assert!(should_apply, "{name}: applied but should conflict"),
            Err(CommitError::Conflict { table, key }) => {
                assert!(!should_apply, "{name}: conflicted but should apply");
                assert_eq!(table, T, "{name}");
                assert!(key == b"k" || key == b"nope", "{name}");
            }
            Err(err) => panic!("{name}: {err}"),
        }
    }
}

/// A failing precondition anywhere leaves every write of the batch unapplied.
pub async fn conflict_writes_nothing(store: Arc<dyn Store>) {
    store.commit(put(T, b"guard", b"current")).await.unwrap();
    let generation = store.generation(OTHER);
    let mut batch = WriteBatch::new();
    batch
        .put(T, b"a", b"1")
        .put(OTHER, b"b", b"2")
        .delete(T, b"guard")
        .expect(T, b"a", None)
        .expect(T, b"guard", Some(b"stale"));
    let err = store.commit(batch).await.unwrap_err();
    assert_eq!(
        err,
        CommitError::Conflict {
            table: T.into(),
            key: b"guard".to_vec()
        }
    );
    assert_eq!(store.get(T, b"a").await.unwrap(), None);
    assert_eq!(store.get(OTHER, b"b").await.unwrap(), None);
    assert_eq!(store.get(T, b"guard").await.unwrap().as_deref(), Some(&b"current"[..]));
    assert_eq!(
        store.generation(OTHER),
        generation,
        "a rejected batch bumps no generation"
    );
}

/// A batch committed after another (possibly in the same group) sees its writes.
pub async fn later_batch_sees_earlier_batch(store: Arc<dyn Store>) {
    // submit() does not wait, so the commit right after it very likely lands in the same group.
    store.submit(put(T, b"k", b"v1"));
    let mut follow = WriteBatch::new();
    follow.expect(T, b"k", Some(b"v1")).put(T, b"k", b"v2");
    store.commit(follow).await.unwrap();
    assert_eq!(store.get(T, b"k").await.unwrap().as_deref(), Some(&b"v2"[..]));

    store.submit(put(T, b"x", b"taken"));
    let mut claim = WriteBatch::new();
    claim.expect(T, b"x", None).put(T, b"x", b"mine");
    let err = store.commit(claim).await.unwrap_err();
    assert!(matches!(err, CommitError::Conflict { .. }), "{err:?}");
    assert_eq!(store.get(T, b"x").await.unwrap().as_deref(), Some(&b"taken"[..]));
}

/// Many concurrent batches claiming the same absent key: exactly one wins, the others see it.
pub async fn one_winner_among_contenders(store: Arc<dyn Store>) {
    let contenders = 32u32;
    let mut tasks = Vec::new();
    for id in 0..contenders {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut batch = WriteBatch::new();
            batch
                .expect(T, b"slot", None)
                .put(T, b"slot", &id.to_be_bytes())
                .put(T, &id.to_be_bytes(), b"ran");
            (id, store.commit(batch).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (id, Ok(())) => winners.push(id),
            (_, Err(CommitError::Conflict { table, key })) => {
                assert_eq!((table.as_str(), key.as_slice()), (T, &b"slot"[..]))
            }
            (_, Err(err)) => panic!("{err}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let winner = winners[0];
    assert_eq!(
        store.get(T, b"slot").await.unwrap(),
        Some(winner.to_be_bytes().to_vec())
    );
    for id in 0..contenders {
        let ran = store.get(T, &id.to_be_bytes()).await.unwrap().is_some();
        assert_eq!(ran, id == winner, "contender {id}");
    }
}

/// Generations rise on every commit that writes a table, and only then (or on clear).
pub async fn generation_bumps(store: Arc<dyn Store>) {
    let (t0, other0) = (store.generation(T), store.generation(OTHER));
    store.commit(put(T, b"k", b"v")).await.unwrap();
    let t1 = store.generation(T);
    assert!(t1 > t0);
    assert_eq!(store.generation(OTHER), other0);
    let mut delete = WriteBatch::new();
    delete.delete(T, b"k");
    store.commit(delete).await.unwrap();
    let t2 = store.generation(T);
    assert!(t2 > t1);
    // Preconditions alone read, they do not write.
    let mut check = WriteBatch::new();
    check.expect(T, b"k", None);
    store.commit(check).await.unwrap();
    assert_eq!(store.generation(T), t2);
    store.submit(put(T, b"s", b"v"));
    store.flush().await.unwrap();
    assert!(
        store.generation(T) > t2,
        "submitted batches bump too, by the time flush returns"
    );
}

/// Clear removes every table and bumps generations.
pub async fn clear_removes_everything(store: Arc<dyn Store>) {
    let mut batch = WriteBatch::new();
    batch.put(T, b"a", b"1").put(OTHER, b"b", b"2");
    store.commit(batch).await.unwrap();
    let generation = store.generation(T);
    store.clear().await.unwrap();
    assert_eq!(store.get(T, b"a").await.unwrap(), None);
    assert!(store.scan(OTHER, b"", None, 10, false).await.unwrap().is_empty());
    assert!(store.generation(T) > generation);
    // The store is usable after a clear.
    let mut batch = WriteBatch::new();
    batch.expect(T, b"a", None).put(T, b"a", b"again");
    store.commit(batch).await.unwrap();
    assert_eq!(store.get(T, b"a").await.unwrap().as_deref(), Some(&b"again"[..]));
}

/// Everything submitted before a flush is visible once the flush returns.
pub async fn submit_then_flush(store: Arc<dyn Store>) {
    for i in 0u32..200 {
        store.submit(put(T, &i.to_be_bytes(), b"s"));
    }
    store.submit(WriteBatch::new());
    store.flush().await.unwrap();
    let rows = store.scan(T, b"", None, usize::MAX, false).await.unwrap();
    assert_eq!(rows.len(), 200);
    store.flush().await.unwrap();
}

/// A snapshot keeps seeing the state at the moment it was taken.
pub async fn snapshot_is_point_in_time(store: Arc<dyn Store>) {
    let mut batch = WriteBatch::new();
    batch.put(T, b"a", b"1").put(T, b"b", b"1");
    store.commit(batch).await.unwrap();
    let snapshot = store.snapshot().await.unwrap();
    let mut batch = WriteBatch::new();
    batch.put(T, b"a", b"2").delete(T, b"b").put(T, b"c", b"2");
    store.commit(batch).await.unwrap();
    assert_eq!(snapshot.get(T, b"a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(snapshot.get(T, b"b").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(snapshot.get(T, b"c").await.unwrap(), None);
    let rows = snapshot.scan(T, b"", None, 10, true).await.unwrap();
    assert_eq!(keys_of(&rows), owned(&[b"b", b"a"]));
    assert_eq!(store.get(T, b"a").await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(
        store
            .snapshot()
            .await
            .unwrap()
            .scan(T, b"", None, 10, false)
            .await
            .unwrap()
            .len(),
        2
    );
}

/// Read-modify-write with retry on conflict never loses an increment.
pub async fn concurrent_counter_is_exact(store: Arc<dyn Store>) {
    let (tasks, increments) = (16u64, 25u64);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            for _ in 0..increments {
                loop {
                    let current = store.get(T, b"counter").await.unwrap();
                    let value = current
                        .as_deref()
                        .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()));
                    let mut batch = WriteBatch::new();
                    batch
                        .expect(T, b"counter", current.as_deref())
                        .put(T, b"counter", &(value + 1).to_be_bytes());
                    match store.commit(batch).await {
                        Ok(()) => break,
                        Err(CommitError::Conflict { .. }) => conflicts += 1,
                        Err(err) => panic!("{err}"),
                    }
                }
            }
            conflicts
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let value = store.get(T, b"counter").await.unwrap().unwrap();
    assert_eq!(u64::from_be_bytes(value.try_into().unwrap()), tasks * increments);
}
