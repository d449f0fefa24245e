//! Shared machinery of the handlers: rows, commits with audit, encrypted streaming bodies.

use crate::checksum::{Algorithm, Checksum};
use crate::crypto::{
    self, ChunkOpener, ChunkSealer, CustomerKey, DataKeyProvider, Key256, ManagedKeyUse, SegmentHeader, WrappedDataKey,
};
use crate::frontend::{RequestState, error};
use crate::meta::{self, BucketRecord, ObjectEncryption, ObjectRecord, Segment};
use base64::Engine;
use bytes::Bytes;
use citadel_core::authz::Authorizer;
use citadel_core::identity::CredentialResolver;
use citadel_core::{Authorization, Check, Clock, IdGen, ResourcePolicyKind};
use citadel_store::{BlobStore, ByteStream, CommitError, Store, WriteBatch};
use futures::{StreamExt, TryStreamExt};
use md5::Digest as _;
use parking_lot::{Mutex, RwLock};
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3ErrorCode, S3Result};
use serde_json::Value;
use std::sync::Arc;

/// The largest single PUT (and part) AWS accepts: 5 GiB.
pub const MAX_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// State shared by the hooks and handlers.
pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub credentials: Arc<CredentialResolver>,
    pub authorizer: Arc<Authorizer>,
    pub clock: Arc<dyn Clock>,
    pub ids: IdGen,
    pub region: String,
    pub account_id: String,
    pub sse_s3: Arc<dyn DataKeyProvider>,
    pub kms: RwLock<Option<Arc<dyn DataKeyProvider>>>,
    /// Whether data events are recorded per account; `None` records them all.
    pub data_events: RwLock<Option<Arc<dyn crate::audit::DataEventGate>>>,
    pub access_logs: Arc<crate::access_log::AccessLogBuffer>,
    pub buckets: BucketCache,
}

/// Decoded bucket rows, each valid while the bucket table's store generation is the one read
/// before the row was (the same rule as `citadel_core::identity`'s credential cache).
///
/// Every object request reads its bucket (owner, policy, encryption, logging) at least twice,
/// in the access hook and in the handler; decoding the JSON row each time was a measurable share
/// of a small GET. A commit to `s3_buckets` on any node bumps the generation, so a cached row is
/// never served after a change this node has seen. Writers that guard a commit with the row's
/// bytes read it fresh ([`Inner::require_bucket_fresh`]), so that a peer node's change not yet
/// announced to this one cannot make them retry against a stale row.
#[derive(Default)]
pub(crate) struct BucketCache {
    rows: RwLock<std::collections::HashMap<String, CachedBucket>>,
}

struct CachedBucket {
    generation: u64,
    record: BucketRecord,
    raw: Vec<u8>,
}

/// The number of bucket rows kept; beyond it the cache starts over (buckets are few per account,
/// so this only bounds memory against a client naming many buckets).
const BUCKET_CACHE_LIMIT: usize = 4096;

impl BucketCache {
    fn get(&self, name: &str, generation: u64) -> Option<(BucketRecord, Vec<u8>)> {
        let rows = self.rows.read();
        let cached = rows.get(name)?;
        (cached.generation == generation).then(|| (cached.record.clone(), cached.raw.clone()))
    }

    fn put(&self, name: &str, generation: u64, record: &BucketRecord, raw: &[u8]) {
        let mut rows = self.rows.write();
        if rows.len() >= BUCKET_CACHE_LIMIT && !rows.contains_key(name) {
            rows.clear();
        }
        rows.insert(
            name.to_string(),
            CachedBucket {
                generation,
                record: record.clone(),
                raw: raw.to_vec(),
            },
        );
    }
}

/// The internal error clients see, with the cause logged.
pub(crate) fn internal(cause: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %cause, "s3 internal error");
    error(
        S3ErrorCode::InternalError,
        500,
        "We encountered an internal error. Please try again.",
    )
}

/// `NoSuchBucket`.
pub(crate) fn no_such_bucket(bucket: &str) -> S3Error {
    let _ = bucket;
    error(S3ErrorCode::NoSuchBucket, 404, "The specified bucket does not exist")
}

/// `NoSuchKey`.
pub(crate) fn no_such_key() -> S3Error {
    error(S3ErrorCode::NoSuchKey, 404, "The specified key does not exist.")
}

/// What a body upload produced.
pub(crate) struct Written {
    pub segment: Segment,
    pub md5_hex: String,
    pub checksum: Option<String>,
    /// The sealed segment when it is small enough to live in the store ([`meta::INLINE`]) rather
    /// than in a blob: the commit that makes the object visible must also write this row.
    pub inline: Option<Bytes>,
}

impl Written {
    /// Adds the inline body's row (if any) to the batch that publishes the object, so that the
    /// body is durable together with the metadata pointing at it.
    pub fn stage(&self, batch: &mut WriteBatch) {
        if let Some(sealed) = &self.inline {
            batch.put(meta::INLINE, self.segment.blob.as_bytes(), sealed);
        }
    }
}

/// The largest body kept in the store instead of a blob file, in plaintext bytes.
///
/// A blob costs its own file, fsync, rename and directory fsync on PUT, and an open, header
/// check and several reads on GET (each a hop to the blocking pool); for a few KiB that was most
/// of a small PUT's latency and a GET's CPU. Small bodies are instead sealed exactly as a blob
/// would be and written in the same batch as the object row and its CloudTrail record, so they
/// are durable with the one group-committed fsync. 16 KiB keeps rows small enough not to crowd
/// the store's page cache.
pub(crate) const INLINE_LIMIT: u64 = 16 * 1024;

/// The prefix of the segment keys whose sealed bytes are rows of [`meta::INLINE`].
const INLINE_PREFIX: &str = "s3/inline/";

/// Whether a segment's sealed bytes live in the store rather than in a blob.
pub(crate) fn is_inline(blob: &str) -> bool {
    blob.starts_with(INLINE_PREFIX)
}

#[derive(Default)]
struct Observer {
    size: u64,
    md5: md5::Md5,
    checksum: Option<Checksum>,
    too_large: bool,
    failure: Option<s3s::StdError>,
    sealing: bool,
}

/// A `Sync` wrapper for a `Send` stream, because s3s's bodies must be `Sync`.
pub(crate) struct SyncStream(Mutex<ByteStream>);

impl futures::Stream for SyncStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.get_mut().0.get_mut().poll_next_unpin(cx)
    }
}

/// A response body from a plaintext stream.
pub(crate) fn blob_body(stream: ByteStream) -> StreamingBlob {
    StreamingBlob::wrap(SyncStream(Mutex::new(stream)))
}

fn io_error(err: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(err.to_string())
}

impl Inner {
    /// A bucket row with its raw bytes, from the cache while the bucket table is unchanged.
    pub async fn bucket(&self, name: &str) -> S3Result<Option<(BucketRecord, Vec<u8>)>> {
        // The generation is read before the row, so a change committed in between leaves the
        // cached row under an older generation, never under the current one.
        let generation = self.store.generation(meta::BUCKETS);
        if let Some(hit) = self.buckets.get(name, generation) {
            return Ok(Some(hit));
        }
        let found = self.bucket_fresh(name).await?;
        if let Some((record, raw)) = &found {
            self.buckets.put(name, generation, record, raw);
        }
        Ok(found)
    }

    /// A bucket row read from the store, bypassing the cache.
    pub async fn bucket_fresh(&self, name: &str) -> S3Result<Option<(BucketRecord, Vec<u8>)>> {
        let raw = self
            .store
            .get(meta::BUCKETS, &meta::bucket_key(name))
            .await
            .map_err(internal)?;
        Ok(raw.and_then(|raw| meta::decode::<BucketRecord>(&raw).map(|record| (record, raw))))
    }

    /// A bucket row, or `NoSuchBucket`.
    pub async fn require_bucket(&self, name: &str) -> S3Result<(BucketRecord, Vec<u8>)> {
        self.bucket(name).await?.ok_or_else(|| no_such_bucket(name))
    }

    /// A bucket row read from the store, or `NoSuchBucket`: for writers whose commit expects the
    /// row's bytes.
    pub async fn require_bucket_fresh(&self, name: &str) -> S3Result<(BucketRecord, Vec<u8>)> {
        self.bucket_fresh(name).await?.ok_or_else(|| no_such_bucket(name))
    }

    /// The current object row with its raw bytes.
    pub async fn object(&self, bucket: &str, key: &str) -> S3Result<Option<(ObjectRecord, Vec<u8>)>> {
        let raw = self
            .store
            .get(meta::OBJECTS, &meta::object_key(bucket, key))
            .await
            .map_err(internal)?;
        Ok(raw.and_then(|raw| meta::decode::<ObjectRecord>(&raw).map(|record| (record, raw))))
    }

    /// Commits a change together with the request's CloudTrail record.
    pub async fn commit(
        &self,
        state: &RequestState,
        mut batch: WriteBatch,
        response: Option<Value>,
    ) -> Result<(), CommitError> {
        if crate::audit::wanted(self, state).await
            && let Some((key, record)) = crate::audit::build_record(self, state, None, response)
        {
            batch.put(citadel_core::audit::EVENTS, &key, &record);
        }
        self.store.commit(batch).await?;
        state.audit.lock().recorded = true;
        Ok(())
    }

    /// Removes blobs no row points at any more (best effort: a leftover is only wasted space).
    /// Inline bodies are rows; their deletion is queued for the group committer, like a blob
    /// deletion it needs no wait.
    pub async fn drop_blobs(&self, blobs: impl IntoIterator<Item = String>) {
        let mut rows = WriteBatch::new();
        for blob in blobs {
            if is_inline(&blob) {
                rows.delete(meta::INLINE, blob.as_bytes());
                continue;
            }
            if let Err(err) = self.blobs.delete(&blob).await {
                tracing::warn!(blob = %blob, error = %err, "could not delete an unused blob");
            }
        }
        self.store.submit(rows);
    }

    /// A fresh blob key.
    pub fn blob_key(&self, kind: &str) -> String {
        format!("s3/{kind}/{}", self.ids.uuid())
    }

    /// Encrypts a request body into a new segment blob, measuring it on the way.
    pub async fn write_segment(
        &self,
        body: Option<StreamingBlob>,
        data_key: &Key256,
        limit: u64,
        checksum: Option<Algorithm>,
        kind: &str,
    ) -> S3Result<Written> {
        self.write_body(body, data_key, limit, checksum, kind, false).await
    }

    /// Like [`Self::write_segment`], but a body of at most [`INLINE_LIMIT`] bytes is kept in
    /// memory for the caller to commit as a row ([`Written::stage`]) instead of becoming a blob.
    /// `declared` is the request's length, when it gave one: a larger body goes straight to a blob.
    pub async fn write_small_or_segment(
        &self,
        body: Option<StreamingBlob>,
        data_key: &Key256,
        limit: u64,
        checksum: Option<Algorithm>,
        declared: Option<u64>,
    ) -> S3Result<Written> {
        let inline = declared.is_none_or(|n| n <= INLINE_LIMIT);
        self.write_body(body, data_key, limit, checksum, "obj", inline).await
    }

    async fn write_body(
        &self,
        body: Option<StreamingBlob>,
        data_key: &Key256,
        limit: u64,
        checksum: Option<Algorithm>,
        kind: &str,
        try_inline: bool,
    ) -> S3Result<Written> {
        let header = SegmentHeader::random();
        let sealer = ChunkSealer::new(data_key, header).map_err(internal)?;
        let observer = Arc::new(Mutex::new(Observer {
            checksum: checksum.map(Checksum::new),
            ..Default::default()
        }));
        let input: futures::stream::BoxStream<'static, Result<Bytes, s3s::StdError>> = match body {
            Some(body) => body.boxed(),
            None => futures::stream::empty().boxed(),
        };
        let watcher = observer.clone();
        let stream = futures::stream::unfold(
            (input, Some(sealer), watcher),
            move |(mut input, sealer, watcher)| async move {
                let mut sealer = sealer?;
                loop {
                    match input.next().await {
                        Some(Ok(bytes)) => {
                            {
                                let mut seen = watcher.lock();
                                seen.size += bytes.len() as u64;
                                if seen.size > limit {
                                    seen.too_large = true;
                                    drop(seen);
                                    return Some((Err(io_error("too large")), (input, None, watcher)));
                                }
                                seen.md5.update(&bytes);
                                if let Some(c) = seen.checksum.as_mut() {
                                    c.update(&bytes);
                                }
                            }
                            match sealer.push(&bytes) {
                                Ok(out) if out.is_empty() => continue,
                                Ok(out) => return Some((Ok(out), (input, Some(sealer), watcher))),
                                Err(err) => {
                                    watcher.lock().sealing = true;
                                    return Some((Err(io_error(err)), (input, None, watcher)));
                                }
                            }
                        }
                        Some(Err(err)) => {
                            watcher.lock().failure = Some(err);
                            return Some((Err(io_error("request body failed")), (input, None, watcher)));
                        }
                        None => {
                            return match sealer.finish() {
                                Ok(out) => Some((Ok(out), (input, None, watcher))),
                                Err(err) => {
                                    watcher.lock().sealing = true;
                                    Some((Err(io_error(err)), (input, None, watcher)))
                                }
                            };
                        }
                    }
                }
            },
        );
        let mut stream = stream.boxed();
        // A small body is gathered in memory; one that outgrows the inline limit (or a length
        // the request did not declare) continues into a blob with what was gathered so far.
        let mut held = bytes::BytesMut::new();
        let mut early: Option<std::io::Error> = None;
        let mut spill = !try_inline;
        if try_inline {
            let cap = header.sealed_len(INLINE_LIMIT);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(bytes) => {
                        held.extend_from_slice(&bytes);
                        if held.len() as u64 > cap {
                            spill = true;
                            break;
                        }
                    }
                    Err(err) => {
                        early = Some(err);
                        break;
                    }
                }
            }
        }
        let (blob, inline, result) = if let Some(err) = early {
            (String::new(), None, Err(err.to_string()))
        } else if spill {
            let blob = self.blob_key(kind);
            let head = futures::stream::iter((!held.is_empty()).then(|| Ok(held.freeze())));
            let result = self.blobs.put(&blob, head.chain(stream).boxed()).await;
            (blob, None, result.map(|_| ()).map_err(|e| e.to_string()))
        } else {
            (
                format!("{INLINE_PREFIX}{}", self.ids.uuid()),
                Some(held.freeze()),
                Ok(()),
            )
        };
        let mut seen = std::mem::take(&mut *observer.lock());
        if let Err(err) = result {
            if seen.too_large {
                return Err(error(
                    S3ErrorCode::EntityTooLarge,
                    400,
                    "Your proposed upload exceeds the maximum allowed size",
                ));
            }
            if let Some(failure) = seen.failure.take() {
                return Err(match failure.downcast::<S3Error>() {
                    Ok(s3) => *s3,
                    Err(other) => error(
                        S3ErrorCode::IncompleteBody,
                        400,
                        format!("The request body could not be read: {other}"),
                    ),
                });
            }
            return Err(internal(err));
        }
        let md5_hex = hex::encode(seen.md5.finalize());
        Ok(Written {
            segment: Segment {
                blob,
                size: seen.size,
                nonce: header.nonce_hex(),
                chunk_size: header.chunk_size,
            },
            md5_hex,
            checksum: seen.checksum.map(Checksum::finish),
            inline,
        })
    }

    /// The plaintext bytes `[from, to)` of a body made of `segments`, decrypted as they stream.
    pub fn read_plain(&self, segments: &[Segment], data_key: Key256, from: u64, to: u64) -> ByteStream {
        let mut plans = Vec::new();
        let mut offset = 0u64;
        for segment in segments {
            let start = from.max(offset);
            let end = to.min(offset + segment.size);
            if start < end {
                plans.push((segment.clone(), start - offset, end - offset));
            }
            offset += segment.size;
        }
        let blobs = self.blobs.clone();
        let store = self.store.clone();
        futures::stream::iter(plans)
            .then(move |(segment, a, b)| open_segment(blobs.clone(), store.clone(), segment, data_key.clone(), a, b))
            .try_flatten()
            .boxed()
    }

    /// The plaintext bytes `[from, to)` of a body stored as one inline segment (the common small
    /// object), read and decrypted at once. Serving it as one buffer rather than a stream spares
    /// a 4 KiB GET the stream machinery, and a body that fails to open is an error reply rather
    /// than a truncated one.
    pub async fn read_inline_plain(
        &self,
        segment: &Segment,
        data_key: &Key256,
        from: u64,
        to: u64,
    ) -> Result<Bytes, std::io::Error> {
        read_inline(self.store.as_ref(), segment, data_key, from, to).await
    }

    /// The SSE-KMS provider, when KMS is wired in.
    fn kms(&self) -> Option<Arc<dyn DataKeyProvider>> {
        self.kms.read().clone()
    }

    /// Chooses and creates the encryption of a new object: SSE-C when the customer sent a key,
    /// otherwise the requested or the bucket's default server-side encryption (SSE-S3 by default).
    ///
    /// `context` is the object's default encryption context (`aws:s3:arn` = the object ARN).
    pub async fn new_encryption(
        &self,
        state: &RequestState,
        bucket: &BucketRecord,
        requested: Option<&str>,
        kms: KmsOptions<'_>,
        customer: Option<&CustomerKey>,
        context: &[(String, String)],
    ) -> S3Result<(ObjectEncryption, Key256)> {
        if let Some(customer) = customer {
            if requested.is_some() {
                return Err(error(
                    S3ErrorCode::InvalidArgument,
                    400,
                    "Server Side Encryption with Customer provided key is incompatible with the encryption method specified",
                ));
            }
            let data_key = crypto::new_data_key();
            let wrapped = crypto::wrap_key(&customer.key, &data_key, crypto::SSE_C_WRAP_AAD).map_err(internal)?;
            let salt = crypto::random_bytes::<16>();
            let proof = crypto::customer_key_proof(&customer.key, &salt);
            let b64 = base64::engine::general_purpose::STANDARD;
            let encryption = ObjectEncryption {
                mode: "SSE-C".into(),
                wrapped_key: b64.encode(wrapped),
                kms_key_id: None,
                customer_salt: Some(b64.encode(salt)),
                customer_proof: Some(b64.encode(proof)),
                customer_key_md5: Some(customer.key_md5.clone()),
                bucket_key_enabled: false,
                kms_context: None,
            };
            return Ok((encryption, data_key));
        }
        let default = bucket.encryption.clone();
        let (mode, key_id, bucket_key) = match requested {
            Some(mode) => (
                mode.to_string(),
                kms.key_id.map(str::to_string),
                kms.bucket_key.unwrap_or(false),
            ),
            None => match default {
                Some(d) => (
                    d.algorithm,
                    kms.key_id.map(str::to_string).or(d.kms_key_id),
                    kms.bucket_key.unwrap_or(d.bucket_key_enabled),
                ),
                None => ("AES256".to_string(), None, false),
            },
        };
        let is_kms = matches!(mode.as_str(), "aws:kms" | "aws:kms:dsse");
        if !is_kms && (kms.key_id.is_some() || kms.context_b64.is_some()) {
            return Err(error(
                S3ErrorCode::InvalidArgument,
                400,
                "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms",
            ));
        }
        if !is_kms {
            if mode != "AES256" {
                return Err(error(
                    S3ErrorCode::InvalidArgument,
                    400,
                    "The encryption method specified is not supported",
                ));
            }
            let data_key = self.sse_s3.generate(None, &[]).await.map_err(crypto_error)?;
            let encryption = ObjectEncryption {
                mode: self.sse_s3.algorithm().to_string(),
                wrapped_key: base64::engine::general_purpose::STANDARD.encode(&data_key.wrapped.blob),
                kms_key_id: None,
                customer_salt: None,
                customer_proof: None,
                customer_key_md5: None,
                bucket_key_enabled: false,
                kms_context: None,
            };
            return Ok((encryption, data_key.plaintext));
        }
        let provider = self.kms_provider(state)?;
        let context = kms_context(context, &bucket.name, bucket_key, kms.context_b64)?;
        let principal = state.principal();
        let caller_account = self.caller_account(&principal, bucket);
        let key = provider
            .key_for_use(
                &caller_account,
                &bucket.region,
                key_id.as_deref(),
                "kms:GenerateDataKey",
                &context,
            )
            .await
            .map_err(crypto_error)?;
        let key_arn = match &key {
            Some(key) => {
                self.authorize_key_use(state, bucket, key, "kms:GenerateDataKey", &context)
                    .await?;
                Some(key.arn.clone())
            }
            None => key_id.clone(),
        };
        let data_key = provider
            .generate(key_arn.as_deref(), &context)
            .await
            .map_err(crypto_error)?;
        let encryption = ObjectEncryption {
            mode: provider.algorithm().to_string(),
            wrapped_key: base64::engine::general_purpose::STANDARD.encode(&data_key.wrapped.blob),
            kms_key_id: data_key.wrapped.key_id.clone(),
            customer_salt: None,
            customer_proof: None,
            customer_key_md5: None,
            bucket_key_enabled: bucket_key,
            kms_context: Some(context_json(&context)),
        };
        Ok((encryption, data_key.plaintext))
    }

    /// The SSE-KMS provider for a request, refusing SigV2 as AWS does.
    fn kms_provider(&self, state: &RequestState) -> S3Result<Arc<dyn DataKeyProvider>> {
        if state.signature_version == Some("AWS") {
            return Err(error(
                S3ErrorCode::InvalidArgument,
                400,
                "Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature Version 4.",
            ));
        }
        self.kms().ok_or_else(|| {
            error(
                S3ErrorCode::InvalidArgument,
                400,
                "Server Side Encryption with AWS KMS managed keys is not available on this server.",
            )
        })
    }

    /// The account key ids and aliases are resolved in: the caller's, as AWS does (an anonymous
    /// caller has none, so the bucket owner's).
    fn caller_account(&self, principal: &citadel_core::Principal, bucket: &BucketRecord) -> String {
        if principal.account_id.is_empty() {
            bucket.owner.clone()
        } else {
            principal.account_id.clone()
        }
    }

    /// Requires the caller to be allowed `action` on a KMS key, judged by the key policy (and,
    /// when it delegates to the account, the caller's IAM policies), with the `kms:*` condition
    /// keys KMS would see for a call made through S3.
    async fn authorize_key_use(
        &self,
        state: &RequestState,
        bucket: &BucketRecord,
        key: &ManagedKeyUse,
        action: &str,
        context: &[(String, String)],
    ) -> S3Result<()> {
        let principal = state.principal();
        let anonymous = matches!(principal.kind, citadel_core::PrincipalKind::Anonymous);
        let operation = state.audit.lock().op.map_or("GetObject", |spec| spec.name);
        let ctx = state.context(principal.clone(), operation, &self.region);
        let check = Check {
            action: action.to_string(),
            resource: key.arn.clone(),
            resource_account: Some(key.account.clone()),
            resource_policy: Some(Arc::from(key.policy.as_str())),
            resource_policy_kind: ResourcePolicyKind::KeyPolicy,
            resource_tags: key.tags.clone(),
        };
        let authorization = Authorization {
            checks: vec![check],
            context: kms_condition_keys(&bucket.region, &principal.account_id, context),
            always_allowed: false,
        };
        self.authorizer
            .authorize(&ctx, &authorization, false)
            .await
            .map_err(|denial| {
                let message = if anonymous {
                    "Access Denied".to_string()
                } else if action == "kms:Decrypt" {
                    "The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access.".to_string()
                } else {
                    denial.message
                };
                error(S3ErrorCode::AccessDenied, 403, message)
            })
    }

    /// Unwraps an object's data key, checking SSE-C keys the way AWS does, and for SSE-KMS that
    /// the caller may use the key (`kms:Decrypt`).
    ///
    /// `bucket` is the bucket holding the object; `context` is the object's default encryption
    /// context, used for objects stored before their context was recorded.
    pub async fn open_key(
        &self,
        state: &RequestState,
        bucket: &str,
        encryption: Option<&ObjectEncryption>,
        customer: Option<&CustomerKey>,
        context: &[(String, String)],
    ) -> S3Result<Key256> {
        let Some(encryption) = encryption else {
            return Err(internal("object without encryption metadata"));
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let wrapped = b64.decode(&encryption.wrapped_key).map_err(internal)?;
        if encryption.mode == "SSE-C" {
            let Some(customer) = customer else {
                return Err(error(
                    S3ErrorCode::InvalidRequest,
                    400,
                    "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
                ));
            };
            let salt = b64
                .decode(encryption.customer_salt.as_deref().unwrap_or_default())
                .map_err(internal)?;
            let proof = b64
                .decode(encryption.customer_proof.as_deref().unwrap_or_default())
                .map_err(internal)?;
            if !crypto::customer_key_matches(&customer.key, &salt, &proof) {
                return Err(error(S3ErrorCode::AccessDenied, 403, "Access Denied"));
            }
            return crypto::unwrap_key(&customer.key, &wrapped, crypto::SSE_C_WRAP_AAD).map_err(internal);
        }
        if customer.is_some() {
            return Err(error(
                S3ErrorCode::InvalidRequest,
                400,
                "The encryption parameters are not applicable to this object.",
            ));
        }
        let wrapped = WrappedDataKey {
            key_id: encryption.kms_key_id.clone(),
            blob: wrapped,
        };
        if encryption.mode == "AES256" {
            return self.sse_s3.decrypt(&wrapped, &[]).await.map_err(crypto_error);
        }
        let provider = self.kms_provider(state)?;
        let context = match &encryption.kms_context {
            Some(json) => parse_context_json(json).ok_or_else(|| internal("stored encryption context is not JSON"))?,
            None => context.to_vec(),
        };
        let (record, _) = self.require_bucket(bucket).await?;
        let principal = state.principal();
        let caller_account = self.caller_account(&principal, &record);
        let key = provider
            .key_for_use(
                &caller_account,
                &record.region,
                encryption.kms_key_id.as_deref(),
                "kms:Decrypt",
                &context,
            )
            .await
            .map_err(crypto_error)?;
        if let Some(key) = &key {
            self.authorize_key_use(state, &record, key, "kms:Decrypt", &context)
                .await?;
        }
        provider.decrypt(&wrapped, &context).await.map_err(crypto_error)
    }
}

/// What a write request said about SSE-KMS besides the algorithm.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KmsOptions<'a> {
    /// `x-amz-server-side-encryption-aws-kms-key-id`.
    pub key_id: Option<&'a str>,
    /// `x-amz-server-side-encryption-context` (base64 JSON).
    pub context_b64: Option<&'a str>,
    /// `x-amz-server-side-encryption-bucket-key-enabled`.
    pub bucket_key: Option<bool>,
}

/// A provider's failure as the S3 error clients see.
pub(crate) fn crypto_error(err: crypto::CryptoError) -> S3Error {
    match err {
        crypto::CryptoError::Service { code, status, message } => {
            let code = S3ErrorCode::from_bytes(code.as_bytes()).unwrap_or(S3ErrorCode::InternalError);
            error(code, status, message)
        }
        other => internal(other),
    }
}

/// The encryption context of an SSE-KMS data key: the object ARN (or the bucket ARN with Bucket
/// Keys) under `aws:s3:arn`, plus the pairs of `x-amz-server-side-encryption-context`.
pub(crate) fn kms_context(
    object_context: &[(String, String)],
    bucket: &str,
    bucket_key: bool,
    requested_b64: Option<&str>,
) -> S3Result<Vec<(String, String)>> {
    let invalid = || {
        error(
            S3ErrorCode::InvalidArgument,
            400,
            "The header 'x-amz-server-side-encryption-context' shall be Base64-encoded UTF-8 string holding JSON which represents a string-string map",
        )
    };
    let arn = if bucket_key {
        crate::names::bucket_arn(bucket)
    } else {
        object_context
            .iter()
            .find(|(k, _)| k == "aws:s3:arn")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| crate::names::bucket_arn(bucket))
    };
    let mut pairs: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    if let Some(text) = requested_b64 {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| invalid())?;
        let value: Value = serde_json::from_slice(&raw).map_err(|_| invalid())?;
        let map = value.as_object().ok_or_else(invalid)?;
        for (k, v) in map {
            let v = v.as_str().ok_or_else(invalid)?;
            pairs.insert(k.clone(), v.to_string());
        }
    }
    if let Some(given) = pairs.get("aws:s3:arn")
        && *given != arn
    {
        return Err(invalid());
    }
    pairs.insert("aws:s3:arn".to_string(), arn);
    Ok(pairs.into_iter().collect())
}

/// A context as the JSON object S3 stores and echoes.
pub(crate) fn context_json(context: &[(String, String)]) -> String {
    let map: serde_json::Map<String, Value> = context
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Value::Object(map).to_string()
}

/// Parses a stored context.
fn parse_context_json(text: &str) -> Option<Vec<(String, String)>> {
    let value: Value = serde_json::from_str(text).ok()?;
    value
        .as_object()?
        .iter()
        .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect()
}

/// The `kms:*` condition keys of a KMS call S3 makes for a caller.
fn kms_condition_keys(region: &str, caller_account: &str, context: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    let mut keys = vec![
        ("kms:ViaService".to_string(), vec![format!("s3.{region}.amazonaws.com")]),
        ("kms:CallerAccount".to_string(), vec![caller_account.to_string()]),
    ];
    for (k, v) in context {
        keys.push((format!("kms:EncryptionContext:{k}"), vec![v.clone()]));
    }
    if !context.is_empty() {
        keys.push((
            "kms:EncryptionContextKeys".to_string(),
            context.iter().map(|(k, _)| k.clone()).collect(),
        ));
    }
    keys
}

/// Reads and opens plaintext `[from, to)` of an inline segment: the whole sealed segment is one
/// small row, so the wanted chunks are opened in one go.
async fn read_inline(
    store: &dyn Store,
    segment: &Segment,
    data_key: &Key256,
    from: u64,
    to: u64,
) -> Result<Bytes, std::io::Error> {
    let header =
        SegmentHeader::from_parts(segment.chunk_size, &segment.nonce).ok_or_else(|| io_error("bad segment header"))?;
    let (start, end, _) = header.cipher_range(from, to, segment.size);
    let mut opener = ChunkOpener::new(data_key, header, segment.size, from, to).map_err(io_error)?;
    let sealed = store
        .get(meta::INLINE, segment.blob.as_bytes())
        .await
        .map_err(io_error)?
        .ok_or_else(|| io_error(format!("inline body {} is missing", segment.blob)))?;
    let range = usize::try_from(start).ok().zip(usize::try_from(end).ok());
    let wanted = range
        .and_then(|(a, b)| sealed.get(a..b))
        .ok_or_else(|| io_error(crypto::CryptoError::Length))?;
    let plain = opener.push(wanted).map_err(io_error)?;
    opener.finish().map_err(io_error)?;
    Ok(plain)
}

async fn open_segment(
    blobs: Arc<dyn BlobStore>,
    store: Arc<dyn Store>,
    segment: Segment,
    data_key: Key256,
    from: u64,
    to: u64,
) -> Result<ByteStream, std::io::Error> {
    let header =
        SegmentHeader::from_parts(segment.chunk_size, &segment.nonce).ok_or_else(|| io_error("bad segment header"))?;
    if is_inline(&segment.blob) {
        let plain = read_inline(store.as_ref(), &segment, &data_key, from, to).await?;
        return Ok(futures::stream::once(async move { Ok(plain) }).boxed());
    }
    let (start, end, _) = header.cipher_range(from, to, segment.size);
    let opener = ChunkOpener::new(&data_key, header, segment.size, from, to).map_err(io_error)?;
    let read = blobs.get(&segment.blob, Some((start, end))).await.map_err(io_error)?;
    let stream = futures::stream::unfold((read.body, Some(opener)), |(mut body, opener)| async move {
        let mut opener = opener?;
        loop {
            match body.next().await {
                Some(Ok(bytes)) => match opener.push(&bytes) {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Some((Ok(out), (body, Some(opener)))),
                    Err(err) => return Some((Err(io_error(err)), (body, None))),
                },
                Some(Err(err)) => return Some((Err(err), (body, None))),
                None => {
                    return match opener.finish() {
                        Ok(()) => None,
                        Err(err) => Some((Err(io_error(err)), (body, None))),
                    };
                }
            }
        }
    });
    Ok(stream.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `Inner` over a real redb store and blob directory.
    fn inner(dir: &std::path::Path) -> Inner {
        let store: Arc<dyn Store> = Arc::new(citadel_store::RedbStore::open(&dir.join("meta.redb")).unwrap());
        let blobs: Arc<dyn BlobStore> = Arc::new(citadel_store::FsBlobStore::new(&dir.join("blobs")).unwrap());
        let master = Arc::new(citadel_store::MasterKey::generate());
        Inner {
            store: store.clone(),
            blobs,
            credentials: Arc::new(CredentialResolver::new(store, master.clone())),
            authorizer: Arc::new(Authorizer::default()),
            clock: Arc::new(citadel_core::clock::SystemClock::default()),
            ids: IdGen::new(Arc::new(citadel_core::random::OsRandom)),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            sse_s3: Arc::new(crypto::SseS3Keys::new(master.derive("s3"))),
            kms: RwLock::new(None),
            data_events: RwLock::new(None),
            access_logs: Arc::new(crate::access_log::AccessLogBuffer::default()),
            buckets: BucketCache::default(),
        }
    }

    /// A request body arriving in pieces of `piece` bytes.
    fn body(data: &[u8], piece: usize) -> Option<StreamingBlob> {
        let pieces: Vec<Result<Bytes, std::io::Error>> =
            data.chunks(piece).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        Some(StreamingBlob::wrap(futures::stream::iter(pieces)))
    }

    async fn read(
        inner: &Inner,
        segment: &Segment,
        key: &Key256,
        from: u64,
        to: u64,
    ) -> Result<Vec<u8>, std::io::Error> {
        let pieces: Vec<Bytes> = inner
            .read_plain(std::slice::from_ref(segment), key.clone(), from, to)
            .try_collect()
            .await?;
        Ok(pieces.concat())
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[tokio::test]
    async fn small_bodies_live_in_the_store_and_commit_with_their_row() {
        let dir = tempfile::tempdir().unwrap();
        let inner = inner(dir.path());
        let key = crypto::new_data_key();
        let data = pattern(4096);
        let written = inner
            .write_small_or_segment(body(&data, 1000), &key, MAX_PUT_SIZE, None, Some(4096))
            .await
            .unwrap();
        assert!(is_inline(&written.segment.blob), "{}", written.segment.blob);
        assert_eq!(written.segment.size, 4096);
        assert_eq!(written.md5_hex, hex::encode(md5::Md5::digest(&data)));
        let sealed = written.inline.clone().unwrap();
        assert!(
            !sealed.windows(64).any(|w| w == &data[1000..1064]),
            "stored in the clear"
        );
        // Nothing is readable before the commit that publishes it, and no blob was made.
        assert!(read(&inner, &written.segment, &key, 0, 4096).await.is_err());
        assert!(inner.blobs.get(&written.segment.blob, None).await.is_err());
        let mut batch = WriteBatch::new();
        written.stage(&mut batch);
        inner.store.commit(batch).await.unwrap();
        assert_eq!(read(&inner, &written.segment, &key, 0, 4096).await.unwrap(), data);
        assert_eq!(
            read(&inner, &written.segment, &key, 100, 3000).await.unwrap(),
            data[100..3000]
        );
        // A wrong key does not open it.
        assert!(
            read(&inner, &written.segment, &crypto::new_data_key(), 0, 4096)
                .await
                .is_err()
        );
        // Dropping it removes the row.
        inner.drop_blobs([written.segment.blob.clone()]).await;
        inner.store.flush().await.unwrap();
        assert_eq!(
            inner
                .store
                .get(meta::INLINE, written.segment.blob.as_bytes())
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn tampered_inline_bodies_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inner = inner(dir.path());
        let key = crypto::new_data_key();
        let data = pattern(3000);
        let written = inner
            .write_small_or_segment(body(&data, 3000), &key, MAX_PUT_SIZE, None, Some(3000))
            .await
            .unwrap();
        let mut sealed = written.inline.clone().unwrap().to_vec();
        sealed[100] ^= 1;
        let mut batch = WriteBatch::new();
        batch.put(meta::INLINE, written.segment.blob.as_bytes(), &sealed);
        inner.store.commit(batch).await.unwrap();
        assert!(read(&inner, &written.segment, &key, 0, 3000).await.is_err());
        sealed.truncate(sealed.len() - 1);
        let mut batch = WriteBatch::new();
        batch.put(meta::INLINE, written.segment.blob.as_bytes(), &sealed);
        inner.store.commit(batch).await.unwrap();
        assert!(read(&inner, &written.segment, &key, 0, 3000).await.is_err());
    }

    #[tokio::test]
    async fn larger_or_undeclared_bodies_go_to_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let inner = inner(dir.path());
        let key = crypto::new_data_key();
        // Declared above the limit: a blob from the start.
        let big = pattern(200_000);
        let written = inner
            .write_small_or_segment(body(&big, 8192), &key, MAX_PUT_SIZE, None, Some(200_000))
            .await
            .unwrap();
        assert!(!is_inline(&written.segment.blob) && written.inline.is_none());
        assert_eq!(read(&inner, &written.segment, &key, 0, 200_000).await.unwrap(), big);
        // No declared length and more than the limit: gathered, then spilled into a blob whole.
        let written = inner
            .write_small_or_segment(body(&big, 5000), &key, MAX_PUT_SIZE, None, None)
            .await
            .unwrap();
        assert!(!is_inline(&written.segment.blob) && written.inline.is_none());
        assert_eq!(written.segment.size, 200_000);
        assert_eq!(
            read(&inner, &written.segment, &key, 70_000, 140_001).await.unwrap(),
            big[70_000..140_001]
        );
        // No declared length and small: inline; exactly the limit is still inline.
        let edge = pattern(INLINE_LIMIT as usize);
        let written = inner
            .write_small_or_segment(body(&edge, 4096), &key, MAX_PUT_SIZE, None, None)
            .await
            .unwrap();
        assert!(is_inline(&written.segment.blob));
        // The size limit still applies to gathered bodies.
        let err = match inner
            .write_small_or_segment(body(&edge, 4096), &key, 1000, None, None)
            .await
        {
            Err(err) => err,
            Ok(_) => panic!("a body over the limit was accepted"),
        };
        assert_eq!(err.code(), &S3ErrorCode::EntityTooLarge);
    }

    #[tokio::test]
    async fn bucket_rows_are_cached_until_the_table_changes() {
        let dir = tempfile::tempdir().unwrap();
        let inner = inner(dir.path());
        let mut record = BucketRecord {
            name: "b".into(),
            owner: "000000000000".into(),
            region: "us-east-1".into(),
            created_ms: 0,
            policy: None,
            public_access_block: None,
            encryption: None,
            versioning: None,
            version_seq: 0,
            tags: Vec::new(),
            logging: None,
        };
        let mut batch = WriteBatch::new();
        batch.put(meta::BUCKETS, &meta::bucket_key("b"), &meta::encode(&record));
        inner.store.commit(batch).await.unwrap();
        assert_eq!(inner.bucket("b").await.unwrap().unwrap().0, record);
        assert_eq!(inner.bucket("b").await.unwrap().unwrap().0, record);
        record.policy = Some("{}".into());
        let mut batch = WriteBatch::new();
        batch.put(meta::BUCKETS, &meta::bucket_key("b"), &meta::encode(&record));
        inner.store.commit(batch).await.unwrap();
        let (seen, raw) = inner.bucket("b").await.unwrap().unwrap();
        assert_eq!(seen, record);
        assert_eq!(raw, meta::encode(&record));
        let mut batch = WriteBatch::new();
        batch.delete(meta::BUCKETS, &meta::bucket_key("b"));
        inner.store.commit(batch).await.unwrap();
        assert!(inner.bucket("b").await.unwrap().is_none());
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn sse_kms_contexts_are_built_like_s3() {
        let object = vec![("aws:s3:arn".to_string(), "arn:aws:s3:::b/k".to_string())];
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        type Case = (bool, Option<String>, Result<Vec<(String, String)>, ()>);
        let cases: Vec<Case> = vec![
            (false, None, Ok(vec![pair("aws:s3:arn", "arn:aws:s3:::b/k")])),
            (true, None, Ok(vec![pair("aws:s3:arn", "arn:aws:s3:::b")])),
            (
                false,
                Some(b64(r#"{"team":"blue"}"#)),
                Ok(vec![pair("aws:s3:arn", "arn:aws:s3:::b/k"), pair("team", "blue")]),
            ),
            (
                false,
                Some(b64(r#"{"aws:s3:arn":"arn:aws:s3:::b/k"}"#)),
                Ok(vec![pair("aws:s3:arn", "arn:aws:s3:::b/k")]),
            ),
            (false, Some(b64(r#"{"aws:s3:arn":"arn:aws:s3:::other/k"}"#)), Err(())),
            (false, Some(b64(r#"{"n":1}"#)), Err(())),
            (false, Some(b64("[]")), Err(())),
            (false, Some("***".into()), Err(())),
        ];
        for (bucket_key, header, want) in cases {
            let got = kms_context(&object, "b", bucket_key, header.as_deref());
            match want {
                Ok(want) => assert_eq!(got.unwrap(), want, "{header:?}"),
                Err(()) => assert_eq!(got.unwrap_err().code(), &S3ErrorCode::InvalidArgument, "{header:?}"),
            }
        }
    }

    #[test]
    fn contexts_round_trip_through_json_and_become_condition_keys() {
        let context = vec![
            ("aws:s3:arn".to_string(), "arn:aws:s3:::b/k".to_string()),
            ("team".to_string(), "blue".to_string()),
        ];
        assert_eq!(parse_context_json(&context_json(&context)).unwrap(), context);
        assert_eq!(parse_context_json("[1]"), None);
        let keys = kms_condition_keys("eu-west-1", "111122223333", &context);
        let get = |name: &str| keys.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        assert_eq!(
            get("kms:ViaService"),
            Some(vec!["s3.eu-west-1.amazonaws.com".to_string()])
        );
        assert_eq!(get("kms:CallerAccount"), Some(vec!["111122223333".to_string()]));
        assert_eq!(
            get("kms:EncryptionContext:aws:s3:arn"),
            Some(vec!["arn:aws:s3:::b/k".to_string()])
        );
        assert_eq!(
            get("kms:EncryptionContextKeys"),
            Some(vec!["aws:s3:arn".to_string(), "team".to_string()])
        );
    }

    #[test]
    fn provider_failures_keep_their_s3_code() {
        let err = crypto_error(crypto::CryptoError::Service {
            code: "KMS.DisabledException".into(),
            status: 400,
            message: "arn:aws:kms:us-east-1:111122223333:key/k is disabled.".into(),
        });
        assert_eq!(err.code().as_str(), "KMS.DisabledException");
        assert_eq!(err.status_code().map(|s| s.as_u16()), Some(400));
        assert_eq!(
            crypto_error(crypto::CryptoError::Open).code(),
            &S3ErrorCode::InternalError
        );
    }
}
