//! The S3-compatible blob store (`--blobs s3://...`, `citadel_store::object_blob`) against a real
//! S3-compatible server: Citadel itself.
//! These are the behaviours `FsBlobStore`'s tests check (crates/store/src/blob.rs), over HTTP.
//! A second Citadel keeping its blobs in the first is covered by tests/python/test_blobs_s3.py.
//! See: issue 9.

use bytes::Bytes;
use citadel_store::blob::READ_CHUNK;
use citadel_store::object_blob::{ObjectBlobStore, PART_SIZE, S3Credentials, S3Location};
use citadel_store::{BlobError, BlobRead, BlobStore, ByteStream};
use futures::StreamExt;

use crate::harness::{self, Server};

/// Creates `bucket` with a request signed by the root user.
fn create_bucket(server: &Server, bucket: &str) {
    let mut map = http::HeaderMap::new();
    let authority = server.endpoint.trim_start_matches("http://").to_string();
    map.insert("host", authority.parse().expect("host"));
    let params = citadel_sigv4::SigningParams {
        access_key_id: harness::ROOT_ACCESS_KEY_ID,
        secret_access_key: harness::ROOT_SECRET_ACCESS_KEY,
        security_token: None,
        region: "us-east-1",
        service: "s3",
        time: time::OffsetDateTime::now_utc(),
    };
    let path = format!("/{bucket}");
    citadel_sigv4::sign_request(&params, "PUT", &path, "", &mut map, citadel_sigv4::EMPTY_SHA256_HEX).expect("sign");
    let pairs: Vec<(String, String)> = map
        .iter()
        .filter(|(name, _)| name.as_str() != "host")
        .map(|(name, value)| (name.as_str().to_string(), value.to_str().unwrap_or("").to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let (status, body) = server.http("PUT", &path, b"", &refs);
    assert_eq!(status, 200, "CreateBucket: {body}");
}

/// A blob store in `bucket` (created here) under `prefix`, with the root user's credentials.
fn blob_store(server: &Server, bucket: &str, prefix: &str) -> ObjectBlobStore {
    create_bucket(server, bucket);
    let location = S3Location::parse(&format!("s3://{bucket}/{prefix}?endpoint={}", server.endpoint)).expect("url");
    let credentials = S3Credentials {
        access_key_id: harness::ROOT_ACCESS_KEY_ID.to_string(),
        secret_access_key: harness::ROOT_SECRET_ACCESS_KEY.to_string(),
        session_token: None,
    };
    ObjectBlobStore::s3(&location, &credentials).expect("blob store")
}

fn chunks(parts: Vec<Vec<u8>>) -> ByteStream {
    futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p)))).boxed()
}

async fn read_all(read: BlobRead) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = read.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("chunk");
        assert!(chunk.len() <= READ_CHUNK, "reads are bounded by the chunk size");
        out.extend_from_slice(&chunk);
    }
    out
}

fn pattern_byte(index: u64) -> u8 {
    (index * 31 % 251) as u8
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64).map(pattern_byte).collect()
}

/// `total` pattern bytes in 64 KiB chunks, made as they are read.
fn lazy_pattern(total: u64) -> ByteStream {
    futures::stream::unfold(0u64, move |sent| async move {
        (sent < total).then(|| {
            let n = (total - sent).min(64 * 1024);
            let chunk: Vec<u8> = (sent..sent + n).map(pattern_byte).collect();
            (Ok(Bytes::from(chunk)), sent + n)
        })
    })
    .boxed()
}

/// The peak resident memory of this process so far, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_ranges_and_overwrite() {
    let server = Server::start();
    let blobs = blob_store(&server, "blobs-ranges", "citadel/blobs");
    let data = pattern(300_000);
    let parts: Vec<Vec<u8>> = data.chunks(7_000).map(<[u8]>::to_vec).collect();
    assert_eq!(blobs.put("bucket/a.bin", chunks(parts)).await.unwrap(), 300_000);
    assert_eq!(read_all(blobs.get("bucket/a.bin", None).await.unwrap()).await, data);

    let ranges: &[((u64, u64), std::ops::Range<usize>)] = &[
        ((0, 1), 0..1),
        ((10, 70_000), 10..70_000),
        ((299_990, 400_000), 299_990..300_000),
        ((5, 5), 5..5),
        ((300_000, 300_010), 300_000..300_000),
    ];
    for ((start, end), want) in ranges {
        let read = blobs.get("bucket/a.bin", Some((*start, *end))).await.unwrap();
        assert_eq!((read.size, read.start, read.end), (300_000, *start, want.end as u64));
        assert_eq!(read_all(read).await, data[want.clone()], "range {start}..{end}");
    }
    for bad in [(10, 5), (300_001, 300_002)] {
        assert!(
            matches!(
                blobs.get("bucket/a.bin", Some(bad)).await,
                Err(BlobError::InvalidRange { .. })
            ),
            "{bad:?}"
        );
    }

    assert_eq!(
        blobs.put("bucket/a.bin", chunks(vec![b"new".to_vec()])).await.unwrap(),
        3
    );
    assert_eq!(read_all(blobs.get("bucket/a.bin", None).await.unwrap()).await, b"new");
    assert_eq!(blobs.put("empty", chunks(vec![])).await.unwrap(), 0);
    assert_eq!(read_all(blobs.get("empty", None).await.unwrap()).await, b"");
    assert!(matches!(blobs.get("missing", None).await, Err(BlobError::NotFound)));
    assert!(matches!(
        blobs.get("missing", Some((0, 10))).await,
        Err(BlobError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_exists_list_and_strange_keys() {
    let server = Server::start();
    let blobs = blob_store(&server, "blobs-list", "");
    for key in ["b/2", "a/1", "a/2", "c", "ab"] {
        blobs.put(key, chunks(vec![key.as_bytes().to_vec()])).await.unwrap();
    }
    assert_eq!(blobs.list("a/").await.unwrap(), vec!["a/1", "a/2"]);
    assert_eq!(blobs.list("a").await.unwrap(), vec!["a/1", "a/2", "ab"]);
    assert_eq!(blobs.list("").await.unwrap(), vec!["a/1", "a/2", "ab", "b/2", "c"]);
    assert!(blobs.exists("a/1").await.unwrap());
    assert!(blobs.delete("a/1").await.unwrap());
    assert!(!blobs.delete("a/1").await.unwrap());
    assert!(!blobs.exists("a/1").await.unwrap());
    assert!(matches!(blobs.get("a/1", None).await, Err(BlobError::NotFound)));
    assert_eq!(blobs.list("a").await.unwrap(), vec!["a/2", "ab"]);
    assert!(matches!(blobs.exists("").await, Err(BlobError::InvalidKey)));

    // Keys object names could not hold as they are still round-trip, and list back.
    let strange = ["../../escape", "/etc/passwd", "..", "a//b", "nul\0byte", "sp ace?&%#é"];
    for key in strange {
        blobs.put(key, chunks(vec![key.as_bytes().to_vec()])).await.unwrap();
        assert_eq!(
            read_all(blobs.get(key, None).await.unwrap()).await,
            key.as_bytes(),
            "{key:?}"
        );
    }
    let listed = blobs.list("").await.unwrap();
    for key in strange {
        assert!(listed.iter().any(|k| k == key), "{key:?} in {listed:?}");
    }
}

/// Peak memory is a property of the whole process, so this runs alone in its own process
/// (`scripts/test.sh` runs it with `--ignored`): a test running beside it would count too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures process memory: run alone, as scripts/test.sh does"]
async fn large_put_streams_in_bounded_memory() {
    let server = Server::start();
    let blobs = blob_store(&server, "blobs-large", "big");
    let total: u64 = 128 * 1024 * 1024 + 12_345;
    let before = peak_rss();
    assert_eq!(blobs.put("s3/object/large", lazy_pattern(total)).await.unwrap(), total);
    let grown = peak_rss().saturating_sub(before);
    // Parts in flight plus the one filling are 15 MiB; the body is 128 MiB.
    assert!(grown < 64 * 1024 * 1024, "peak memory grew by {grown} bytes");

    // Read back as a stream, compared on the fly.
    let read = blobs.get("s3/object/large", None).await.unwrap();
    assert_eq!(read.size, total);
    let mut offset = 0u64;
    let mut body = read.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.len() <= READ_CHUNK);
        for byte in chunk.iter() {
            assert_eq!(*byte, pattern_byte(offset), "byte {offset}");
            offset += 1;
        }
    }
    assert_eq!(offset, total);

    // A range across a part boundary.
    let boundary = PART_SIZE as u64;
    let read = blobs
        .get("s3/object/large", Some((boundary - 100, boundary + 100)))
        .await
        .unwrap();
    let want: Vec<u8> = (boundary - 100..boundary + 100).map(pattern_byte).collect();
    assert_eq!(read_all(read).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_put_keeps_old_blob() {
    let server = Server::start();
    let blobs = blob_store(&server, "blobs-failed", "");
    blobs.put("k", chunks(vec![b"old".to_vec()])).await.unwrap();
    // Fails once a single put's worth has been read (a multipart upload is under way)...
    let long: ByteStream = lazy_pattern(2 * PART_SIZE as u64)
        .chain(futures::stream::once(async {
            Err(std::io::Error::other("client went away"))
        }))
        .boxed();
    assert!(matches!(blobs.put("k", long).await, Err(BlobError::Io(_))));
    // ...and before.
    let short: ByteStream = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(std::io::Error::other("client went away")),
    ])
    .boxed();
    assert!(matches!(blobs.put("k", short).await, Err(BlobError::Io(_))));
    assert_eq!(read_all(blobs.get("k", None).await.unwrap()).await, b"old");
    assert_eq!(blobs.list("").await.unwrap(), vec!["k"]);
}
