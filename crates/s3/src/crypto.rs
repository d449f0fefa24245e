//! Encryption at rest: the chunked object format, data-key wrapping, SSE-C key checks.
//!
//! Every object Citadel stores is encrypted, whatever the request asked for: SSE-S3 is the default
//! (as on AWS since 2023), SSE-C uses the customer's key, SSE-KMS will plug in through
//! [`DataKeyProvider`].
//!
//! # Why chunks
//!
//! Objects are streamed in bounded memory and read with byte ranges, so they cannot be sealed as
//! one AES-GCM message: that would need the whole object to verify a single byte.
//! Instead each object (and each multipart part, a *segment*) is cut into chunks of
//! [`CHUNK_SIZE`] plaintext bytes, and each chunk is sealed on its own with the object's data key.
//! A range read decrypts only the chunks the range touches.
//!
//! # Byte layout of a segment blob (format version 1)
//!
//! ```text
//! header  = "CS3E" | version (1 byte, 1) | chunk size (u32 BE) | nonce prefix (8 random bytes)   17 bytes
//! chunk i = AES-256-GCM(data key, nonce = prefix | i as u32 BE,
//!                       aad = header | i as u64 BE | 1 if last chunk else 0)                  len_i + 16 bytes
//! ```
//!
//! Chunk `i` holds plaintext bytes `[i*C, min((i+1)*C, size))`; an empty segment is one empty
//! chunk (a bare tag). The plaintext size is kept in the object's metadata, so chunk `i` starts at
//! byte `17 + i*(C+16)` of the blob. Binding the index prevents reordering, and binding the
//! "last" flag prevents truncation at a chunk boundary; binding the header binds the nonce prefix.
//! Nonces never repeat under one data key: each segment draws a fresh 64-bit prefix, and the
//! counter is unique within a segment (at most 2^32 chunks, far above the 5 GiB part limit).
//!
//! # Data keys
//!
//! Each object (or multipart upload) has a fresh random 256-bit data key. It is stored only
//! wrapped: under the S3 key derived from the master key (`MasterKey::derive("s3")`) for SSE-S3,
//! or under the customer's key for SSE-C. For SSE-C we also keep a salted HMAC of the customer
//! key, so that a wrong key is refused with 403 before any decryption is attempted; the customer
//! key itself is never stored.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use bytes::{Bytes, BytesMut};
use rand::RngCore;
use zeroize::Zeroizing;

/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: u32 = 64 * 1024;
/// The AES-GCM tag that follows every chunk.
pub const TAG_LEN: usize = 16;
/// The segment header length.
pub const HEADER_LEN: usize = 17;
/// The associated data of a chunk: header, index, last flag.
const AAD_LEN: usize = HEADER_LEN + 8 + 1;
const MAGIC: &[u8; 4] = b"CS3E";
const VERSION: u8 = 1;

/// A 256-bit key.
pub type Key256 = Zeroizing<[u8; 32]>;

/// Why an encryption step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Sealing failed (the library refused the key or the input).
    #[error("encryption failed")]
    Seal,
    /// Authentication failed: the data was altered, or the key is wrong.
    #[error("decryption failed: data altered or wrong key")]
    Open,
    /// The stored data is shorter or longer than its metadata says.
    #[error("stored data has the wrong length")]
    Length,
    /// A segment would need more than 2^32 chunks.
    #[error("segment too large")]
    TooLarge,
    /// The key service refused the request; S3 reports `code` with `status` to the client
    /// (for SSE-KMS: `KMS.DisabledException`, `KMS.NotFoundException`, ...).
    #[error("{code}: {message}")]
    Service {
        /// The S3 error code.
        code: String,
        /// The HTTP status.
        status: u16,
        /// AWS's message.
        message: String,
    },
}

/// Fresh random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rng().fill_bytes(&mut out);
    out
}

/// A fresh random data key.
pub fn new_data_key() -> Key256 {
    Zeroizing::new(random_bytes::<32>())
}

fn aead(key: &[u8; 32]) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Seal)
}

/// Wraps a data key under a key-encryption key: `nonce (12) | ciphertext (32) | tag (16)`.
pub fn wrap_key(kek: &[u8; 32], data_key: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce = random_bytes::<NONCE_LEN>();
    let mut buffer = data_key.to_vec();
    aead(kek)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buffer)
        .map_err(|_| CryptoError::Seal)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buffer);
    Ok(out)
}

/// Unwraps a key made by [`wrap_key`] with the same key-encryption key and aad.
pub fn unwrap_key(kek: &[u8; 32], wrapped: &[u8], aad: &[u8]) -> Result<Key256, CryptoError> {
    if wrapped.len() != NONCE_LEN + 32 + TAG_LEN {
        return Err(CryptoError::Length);
    }
    let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Length)?;
    let mut buffer = Zeroizing::new(sealed.to_vec());
    let plain = aead(kek)?
        .open_in_place(nonce, Aad::from(aad), &mut buffer)
        .map_err(|_| CryptoError::Open)?;
    let mut key = Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        return Err(CryptoError::Length);
    }
    key.copy_from_slice(plain);
    Ok(key)
}

/// The header of one segment blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// The random nonce prefix of this segment.
    pub nonce_prefix: [u8; 8],
}

impl SegmentHeader {
    /// A header with a fresh nonce prefix and the default chunk size.
    pub fn random() -> Self {
        Self {
            chunk_size: CHUNK_SIZE,
            nonce_prefix: random_bytes::<8>(),
        }
    }

    /// The encoded header.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(MAGIC);
        out[4] = VERSION;
        out[5..9].copy_from_slice(&self.chunk_size.to_be_bytes());
        out[9..].copy_from_slice(&self.nonce_prefix);
        out
    }

    /// The nonce prefix as hex, as the metadata stores it.
    pub fn nonce_hex(&self) -> String {
        hex::encode(self.nonce_prefix)
    }

    /// Rebuilds a header from the metadata's fields.
    pub fn from_parts(chunk_size: u32, nonce_hex: &str) -> Option<Self> {
        let bytes = hex::decode(nonce_hex).ok()?;
        let nonce_prefix: [u8; 8] = bytes.try_into().ok()?;
        (chunk_size > 0).then_some(Self {
            chunk_size,
            nonce_prefix,
        })
    }

    fn nonce(&self, index: u64) -> Result<Nonce, CryptoError> {
        let counter = u32::try_from(index).map_err(|_| CryptoError::TooLarge)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&self.nonce_prefix);
        nonce[8..].copy_from_slice(&counter.to_be_bytes());
        Ok(Nonce::assume_unique_for_key(nonce))
    }

    fn aad(&self, index: u64, last: bool) -> [u8; AAD_LEN] {
        let mut aad = [0u8; AAD_LEN];
        aad[..HEADER_LEN].copy_from_slice(&self.to_bytes());
        aad[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&index.to_be_bytes());
        aad[HEADER_LEN + 8] = u8::from(last);
        aad
    }

    /// The number of chunks of a segment of `plain_size` bytes (at least one).
    pub fn chunk_count(&self, plain_size: u64) -> u64 {
        plain_size.div_ceil(u64::from(self.chunk_size)).max(1)
    }

    /// The stored size of a segment of `plain_size` bytes.
    pub fn sealed_len(&self, plain_size: u64) -> u64 {
        HEADER_LEN as u64 + plain_size + self.chunk_count(plain_size) * TAG_LEN as u64
    }

    /// The plaintext length of chunk `index` in a segment of `plain_size` bytes.
    fn chunk_plain_len(&self, index: u64, plain_size: u64) -> u64 {
        let start = index * u64::from(self.chunk_size);
        plain_size.saturating_sub(start).min(u64::from(self.chunk_size))
    }

    /// The blob byte range `[start, end)` holding the chunks that cover plaintext `[from, to)`,
    /// and the index of the first of them. `from < to <= plain_size`, or `from == to == 0`.
    pub fn cipher_range(&self, from: u64, to: u64, plain_size: u64) -> (u64, u64, u64) {
        let chunk = u64::from(self.chunk_size);
        let first = from / chunk;
        let last = if to == 0 { 0 } else { (to - 1) / chunk };
        let unit = chunk + TAG_LEN as u64;
        let start = HEADER_LEN as u64 + first * unit;
        let end = (HEADER_LEN as u64 + (last + 1) * unit).min(self.sealed_len(plain_size));
        (start, end, first)
    }
}

/// Encrypts a stream of plaintext into the chunked format, one push at a time.
pub struct ChunkSealer {
    key: LessSafeKey,
    header: SegmentHeader,
    index: u64,
    pending: BytesMut,
    header_written: bool,
}

impl ChunkSealer {
    /// A sealer for a new segment under `data_key`.
    pub fn new(data_key: &[u8; 32], header: SegmentHeader) -> Result<Self, CryptoError> {
        Ok(Self {
            key: aead(data_key)?,
            header,
            index: 0,
            pending: BytesMut::new(),
            header_written: false,
        })
    }

    /// Seals `plain` as the next chunk, appending it to `out`: the plaintext is copied once,
    /// into `out`, and encrypted there in place.
    fn seal_chunk(&mut self, plain: &[u8], last: bool, out: &mut BytesMut) -> Result<(), CryptoError> {
        let nonce = self.header.nonce(self.index)?;
        let aad = self.header.aad(self.index, last);
        let at = out.len();
        out.extend_from_slice(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), &mut out[at..])
            .map_err(|_| CryptoError::Seal)?;
        out.extend_from_slice(tag.as_ref());
        self.index += 1;
        Ok(())
    }

    fn start(&mut self, out: &mut BytesMut) {
        if !self.header_written {
            out.extend_from_slice(&self.header.to_bytes());
            self.header_written = true;
        }
    }

    /// Adds plaintext; returns the sealed bytes that are complete so far (maybe none).
    ///
    /// A full chunk is only sealed once more data follows it, because the last chunk is marked.
    /// Whole chunks are sealed straight from `data`; only a partial chunk is held back.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Bytes, CryptoError> {
        let chunk = self.header.chunk_size as usize;
        let held = self.pending.len() + data.len();
        // A chunk is sealed only when at least one more byte follows it.
        let sealable = held.saturating_sub(1) / chunk;
        let header = if self.header_written { 0 } else { HEADER_LEN };
        let mut out = BytesMut::with_capacity(header + sealable * (chunk + TAG_LEN));
        self.start(&mut out);
        if sealable == 0 {
            self.pending.extend_from_slice(data);
            return Ok(out.freeze());
        }
        if !self.pending.is_empty() {
            let take = chunk - self.pending.len();
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            let plain = std::mem::take(&mut self.pending);
            self.seal_chunk(&plain, false, &mut out)?;
            // Reuse the buffer (its plaintext is overwritten by the next chunk).
            self.pending = plain;
            self.pending.clear();
        }
        while data.len() > chunk {
            let (plain, rest) = data.split_at(chunk);
            self.seal_chunk(plain, false, &mut out)?;
            data = rest;
        }
        self.pending.extend_from_slice(data);
        Ok(out.freeze())
    }

    /// Seals what is left as the last chunk.
    pub fn finish(mut self) -> Result<Bytes, CryptoError> {
        let mut out = BytesMut::new();
        self.start(&mut out);
        let plain = std::mem::take(&mut self.pending);
        self.seal_chunk(&plain, true, &mut out)?;
        Ok(out.freeze())
    }
}

/// Decrypts the chunks covering a plaintext range, fed with the blob bytes of
/// [`SegmentHeader::cipher_range`].
pub struct ChunkOpener {
    key: LessSafeKey,
    header: SegmentHeader,
    plain_size: u64,
    index: u64,
    last_index: u64,
    from: u64,
    to: u64,
    pending: BytesMut,
}

impl ChunkOpener {
    /// An opener for plaintext `[from, to)` of a segment of `plain_size` bytes.
    pub fn new(
        data_key: &[u8; 32],
        header: SegmentHeader,
        plain_size: u64,
        from: u64,
        to: u64,
    ) -> Result<Self, CryptoError> {
        let (_, _, first) = header.cipher_range(from, to, plain_size);
        Ok(Self {
            key: aead(data_key)?,
            header,
            plain_size,
            index: first,
            last_index: header.chunk_count(plain_size) - 1,
            from,
            to,
            pending: BytesMut::new(),
        })
    }

    /// The sealed length of the next chunk, or `None` when every wanted chunk is open.
    fn next_unit(&self) -> Option<usize> {
        (self.index <= self.last_index)
            .then(|| self.header.chunk_plain_len(self.index, self.plain_size) as usize + TAG_LEN)
    }

    /// Opens one sealed chunk (the next one) and appends the wanted part of its plaintext to
    /// `out`: the ciphertext is copied once, into `out`, and decrypted there in place.
    fn open_unit(&mut self, sealed: &[u8], out: &mut BytesMut) -> Result<(), CryptoError> {
        let last = self.index == self.last_index;
        let nonce = self.header.nonce(self.index)?;
        let aad = self.header.aad(self.index, last);
        let at = out.len();
        out.extend_from_slice(sealed);
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut out[at..])
            .map(|plain| plain.len());
        let Ok(plain_len) = plain_len else {
            // Unauthenticated bytes are not left behind in freed memory.
            out[at..].fill(0);
            return Err(CryptoError::Open);
        };
        let chunk_start = self.index * u64::from(self.header.chunk_size);
        let skip = (self.from.saturating_sub(chunk_start) as usize).min(plain_len);
        let keep_to = (self.to.saturating_sub(chunk_start) as usize).min(plain_len);
        if skip < keep_to {
            if skip > 0 {
                out.copy_within(at + skip..at + keep_to, at);
            }
            out.truncate(at + keep_to - skip);
        } else {
            out.truncate(at);
        }
        self.index += 1;
        if chunk_start + plain_len as u64 >= self.to {
            // Everything wanted is out; ignore any further chunk the caller feeds.
            self.index = self.last_index + 1;
            self.pending.clear();
        }
        Ok(())
    }

    /// Adds sealed bytes; returns the plaintext (within the range) that could be opened so far.
    /// Whole chunks are opened straight from `data`; only a partial chunk is held back.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Bytes, CryptoError> {
        let Some(first_unit) = self.next_unit() else {
            // Everything wanted is out: the rest (the caller may feed a whole blob) is ignored.
            return Ok(Bytes::new());
        };
        let mut out = BytesMut::with_capacity(self.pending.len() + data.len());
        if !self.pending.is_empty() {
            let unit = first_unit;
            let take = (unit - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < unit {
                return Ok(out.freeze());
            }
            let sealed = std::mem::take(&mut self.pending);
            self.open_unit(&sealed, &mut out)?;
            self.pending = sealed;
            self.pending.clear();
        }
        while !data.is_empty() {
            let Some(unit) = self.next_unit() else {
                break;
            };
            if data.len() < unit {
                self.pending.extend_from_slice(data);
                break;
            }
            let (sealed, rest) = data.split_at(unit);
            self.open_unit(sealed, &mut out)?;
            data = rest;
        }
        Ok(out.freeze())
    }

    /// Checks that the stream ended where the range ends.
    pub fn finish(self) -> Result<(), CryptoError> {
        let wanted_done = self.to == 0 || self.index > self.last_index;
        if wanted_done && self.pending.is_empty() {
            Ok(())
        } else {
            Err(CryptoError::Length)
        }
    }
}

/// The associated data binding an SSE-S3 wrapped data key to its purpose.
pub const SSE_S3_WRAP_AAD: &[u8] = b"citadel-s3/sse-s3/data-key/v1";
/// The associated data binding an SSE-C wrapped data key to its purpose.
pub const SSE_C_WRAP_AAD: &[u8] = b"citadel-s3/sse-c/data-key/v1";

/// A data key wrapped by a [`DataKeyProvider`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    /// The provider's key id (the KMS key ARN for SSE-KMS; `None` for SSE-S3).
    pub key_id: Option<String>,
    /// The opaque wrapped key.
    pub blob: Vec<u8>,
}

/// A fresh data key, in the clear and wrapped.
pub struct DataKey {
    /// The plaintext key, used for this request only.
    pub plaintext: Key256,
    /// The wrapped key, stored with the object.
    pub wrapped: WrappedDataKey,
}

/// What S3 needs to know about a managed key to authorize a caller's use of it.
///
/// S3 evaluates `kms:GenerateDataKey` / `kms:Decrypt` itself, with the key policy as the resource
/// policy, because the caller (not S3) must be allowed to use the key, as on AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedKeyUse {
    /// The key ARN (what responses name in `x-amz-server-side-encryption-aws-kms-key-id`).
    pub arn: String,
    /// The account that owns the key.
    pub account: String,
    /// The key policy text, with any grant that allows the action to the caller folded in.
    pub policy: String,
    /// The key's tags (`aws:ResourceTag/*`).
    pub tags: Vec<(String, String)>,
}

/// Issues and unwraps per-object data keys for server-side encryption with managed keys.
///
/// SSE-S3 is implemented here by [`SseS3Keys`]. SSE-KMS is implemented by the KMS crate
/// (`citadel_kms::KmsDataKeys`): data keys are KMS ciphertext blobs bound to the object's
/// encryption context, so that this crate never sees a KMS key.
#[async_trait::async_trait]
pub trait DataKeyProvider: Send + Sync + 'static {
    /// The `x-amz-server-side-encryption` value of objects this provider protects.
    fn algorithm(&self) -> &'static str;

    /// Finds the key a request names (`None`: the provider's default key, which it may create)
    /// for `action` by a caller of `account` in `region`, so that S3 can authorize its use.
    ///
    /// Providers without per-caller keys (SSE-S3) need no authorization and return `Ok(None)`.
    async fn key_for_use(
        &self,
        account: &str,
        region: &str,
        key_id: Option<&str>,
        action: &str,
        context: &[(String, String)],
    ) -> Result<Option<ManagedKeyUse>, CryptoError> {
        let _ = (account, region, key_id, action, context);
        Ok(None)
    }

    /// A fresh data key for an object, under `key_id` when the request named one.
    async fn generate(&self, key_id: Option<&str>, context: &[(String, String)]) -> Result<DataKey, CryptoError>;

    /// Unwraps a stored data key.
    async fn decrypt(&self, wrapped: &WrappedDataKey, context: &[(String, String)]) -> Result<Key256, CryptoError>;
}

/// SSE-S3: data keys wrapped under a key derived from the master key.
pub struct SseS3Keys {
    kek: Key256,
}

impl SseS3Keys {
    /// A provider wrapping under `kek` (`MasterKey::derive("s3")`).
    pub fn new(kek: Key256) -> Self {
        Self { kek }
    }
}

#[async_trait::async_trait]
impl DataKeyProvider for SseS3Keys {
    fn algorithm(&self) -> &'static str {
        "AES256"
    }

    async fn generate(&self, _key_id: Option<&str>, _context: &[(String, String)]) -> Result<DataKey, CryptoError> {
        let plaintext = new_data_key();
        let blob = wrap_key(&self.kek, &plaintext, SSE_S3_WRAP_AAD)?;
        Ok(DataKey {
            plaintext,
            wrapped: WrappedDataKey { key_id: None, blob },
        })
    }

    async fn decrypt(&self, wrapped: &WrappedDataKey, _context: &[(String, String)]) -> Result<Key256, CryptoError> {
        unwrap_key(&self.kek, &wrapped.blob, SSE_S3_WRAP_AAD)
    }
}

/// A customer-provided key (SSE-C), checked against its MD5 as AWS does.
pub struct CustomerKey {
    /// The 256-bit key.
    pub key: Key256,
    /// The base64 MD5 of the key, echoed in `x-amz-server-side-encryption-customer-key-MD5`.
    pub key_md5: String,
}

/// Why SSE-C headers were refused; each maps to an AWS error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerKeyError {
    /// Some but not all three headers were sent.
    Incomplete,
    /// The algorithm is not `AES256`.
    Algorithm,
    /// The key is not 256 bits of base64.
    KeyFormat,
    /// The MD5 header does not match the key.
    Md5Mismatch,
}

impl CustomerKeyError {
    /// The AWS error message.
    pub fn message(&self) -> &'static str {
        match self {
            Self::Incomplete => {
                "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key."
            }
            Self::Algorithm => {
                "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm."
            }
            Self::KeyFormat => "The secret key was invalid for the specified algorithm.",
            Self::Md5Mismatch => "The calculated MD5 hash of the key did not match the hash that was provided.",
        }
    }
}

/// Parses the three SSE-C headers; `Ok(None)` when none was sent.
pub fn customer_key(
    algorithm: Option<&str>,
    key_b64: Option<&str>,
    md5_b64: Option<&str>,
) -> Result<Option<CustomerKey>, CustomerKeyError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    match (algorithm, key_b64) {
        (None, None) if md5_b64.is_none() => return Ok(None),
        (Some(_), Some(_)) => {}
        _ => return Err(CustomerKeyError::Incomplete),
    }
    if algorithm != Some("AES256") {
        return Err(CustomerKeyError::Algorithm);
    }
    let raw = Zeroizing::new(
        b64.decode(key_b64.unwrap_or_default())
            .map_err(|_| CustomerKeyError::KeyFormat)?,
    );
    let key: [u8; 32] = raw.as_slice().try_into().map_err(|_| CustomerKeyError::KeyFormat)?;
    let key_md5 = b64.encode(crate::checksum::md5(&key));
    if let Some(given) = md5_b64
        && given != key_md5
    {
        return Err(CustomerKeyError::Md5Mismatch);
    }
    Ok(Some(CustomerKey {
        key: Zeroizing::new(key),
        key_md5,
    }))
}

/// The salted HMAC that lets us recognise a customer key without storing it.
pub fn customer_key_proof(key: &[u8; 32], salt: &[u8]) -> Vec<u8> {
    let mac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut message = b"citadel-s3/sse-c/key-proof/v1".to_vec();
    message.extend_from_slice(salt);
    aws_lc_rs::hmac::sign(&mac_key, &message).as_ref().to_vec()
}

/// Whether `key` is the key whose proof was stored (constant time).
pub fn customer_key_matches(key: &[u8; 32], salt: &[u8], proof: &[u8]) -> bool {
    let mac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut message = b"citadel-s3/sse-c/key-proof/v1".to_vec();
    message.extend_from_slice(salt);
    aws_lc_rs::hmac::verify(&mac_key, &message, proof).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_all(key: &[u8; 32], header: SegmentHeader, data: &[u8], pieces: usize) -> Vec<u8> {
        let mut sealer = ChunkSealer::new(key, header).unwrap();
        let mut out = Vec::new();
        let step = (data.len() / pieces.max(1)).max(1);
        for part in data.chunks(step) {
            out.extend_from_slice(&sealer.push(part).unwrap());
        }
        out.extend_from_slice(&sealer.finish().unwrap());
        out
    }

    fn open_range(
        key: &[u8; 32],
        header: SegmentHeader,
        sealed: &[u8],
        size: u64,
        from: u64,
        to: u64,
    ) -> Result<Vec<u8>, CryptoError> {
        let (start, end, _) = header.cipher_range(from, to, size);
        let mut opener = ChunkOpener::new(key, header, size, from, to)?;
        let mut out = Vec::new();
        for piece in sealed[start as usize..end as usize].chunks(7_919) {
            out.extend_from_slice(&opener.push(piece)?);
        }
        opener.finish()?;
        Ok(out)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 253) as u8).collect()
    }

    #[test]
    fn sealed_length_and_round_trip_for_many_sizes() {
        let key = new_data_key();
        let c = CHUNK_SIZE as usize;
        for size in [0, 1, 100, c - 1, c, c + 1, 3 * c, 3 * c + 17] {
            let data = pattern(size);
            let header = SegmentHeader::random();
            let sealed = seal_all(&key, header, &data, 5);
            assert_eq!(sealed.len() as u64, header.sealed_len(size as u64), "size {size}");
            assert_eq!(&sealed[..4], b"CS3E");
            let whole = open_range(&key, header, &sealed, size as u64, 0, size as u64).unwrap();
            assert_eq!(whole, data, "size {size}");
        }
    }

    #[test]
    fn ranges_decrypt_only_what_they_cover() {
        let key = new_data_key();
        let c = CHUNK_SIZE as u64;
        let size = 3 * c + 100;
        let data = pattern(size as usize);
        let header = SegmentHeader::random();
        let sealed = seal_all(&key, header, &data, 3);
        let ranges = [
            (0, 1),
            (5, 10),
            (c - 1, c + 1),
            (c, 2 * c),
            (2 * c + 5, size),
            (size - 1, size),
            (0, size),
        ];
        for (from, to) in ranges {
            let got = open_range(&key, header, &sealed, size, from, to).unwrap();
            assert_eq!(got, &data[from as usize..to as usize], "range {from}..{to}");
        }
    }

    #[test]
    fn any_piece_sizes_seal_and_open_alike() {
        let key = new_data_key();
        let c = CHUNK_SIZE as usize;
        let unit = c + TAG_LEN;
        let size = 4 * c + 33;
        let data = pattern(size);
        let header = SegmentHeader::random();
        let reference = seal_all(&key, header, &data, 1);
        for push in [1000, c - 1, c, c + 1, 2 * c + 7, size] {
            let mut sealer = ChunkSealer::new(&key, header).unwrap();
            let mut sealed = Vec::new();
            for part in data.chunks(push) {
                sealed.extend_from_slice(&sealer.push(part).unwrap());
            }
            sealed.extend_from_slice(&sealer.finish().unwrap());
            assert_eq!(sealed, reference, "pushes of {push}");
        }
        let size = size as u64;
        for (from, to) in [(0, size), (3, size - 2), (c as u64 + 1, 3 * c as u64), (size - 1, size)] {
            let (start, end, _) = header.cipher_range(from, to, size);
            for feed in [1, 4096, unit - 1, unit, unit + 1, 3 * unit + 5, reference.len()] {
                let mut opener = ChunkOpener::new(&key, header, size, from, to).unwrap();
                let mut out = Vec::new();
                for piece in reference[start as usize..end as usize].chunks(feed) {
                    out.extend_from_slice(&opener.push(piece).unwrap());
                }
                opener.finish().unwrap();
                assert_eq!(
                    out,
                    &data[from as usize..to as usize],
                    "range {from}..{to}, feed {feed}"
                );
            }
        }
    }

    #[test]
    fn tampering_truncation_and_wrong_keys_are_detected() {
        let key = new_data_key();
        let c = CHUNK_SIZE as u64;
        let size = 2 * c + 10;
        let data = pattern(size as usize);
        let header = SegmentHeader::random();
        let sealed = seal_all(&key, header, &data, 4);
        let mut flipped = sealed.clone();
        flipped[HEADER_LEN + 5] ^= 1;
        assert_eq!(
            open_range(&key, header, &flipped, size, 0, size),
            Err(CryptoError::Open)
        );
        // Dropping the last chunk and claiming a shorter size fails: chunk 1 was not sealed as last.
        let unit = (c as usize) + TAG_LEN;
        let truncated = &sealed[..HEADER_LEN + 2 * unit];
        assert_eq!(
            open_range(&key, header, truncated, 2 * c, 0, 2 * c),
            Err(CryptoError::Open)
        );
        let other = new_data_key();
        assert_eq!(open_range(&other, header, &sealed, size, 0, 10), Err(CryptoError::Open));
        let mut other_header = header;
        other_header.nonce_prefix[0] ^= 1;
        assert_eq!(
            open_range(&key, other_header, &sealed, size, 0, 10),
            Err(CryptoError::Open)
        );
    }

    #[test]
    fn ciphertext_does_not_contain_the_plaintext() {
        let key = new_data_key();
        let data = b"attack at dawn, attack at dawn, attack at dawn".repeat(100);
        let sealed = seal_all(&key, SegmentHeader::random(), &data, 1);
        assert!(!sealed.windows(14).any(|w| w == b"attack at dawn"));
    }

    #[test]
    fn header_round_trips_through_metadata() {
        let header = SegmentHeader::random();
        let back = SegmentHeader::from_parts(header.chunk_size, &header.nonce_hex()).unwrap();
        assert_eq!(back, header);
        assert_eq!(SegmentHeader::from_parts(CHUNK_SIZE, "zz"), None);
    }

    #[test]
    fn key_wrapping_binds_kek_and_aad() {
        let kek = new_data_key();
        let dk = new_data_key();
        let wrapped = wrap_key(&kek, &dk, b"a").unwrap();
        assert_eq!(*unwrap_key(&kek, &wrapped, b"a").unwrap(), *dk);
        assert_eq!(unwrap_key(&kek, &wrapped, b"b"), Err(CryptoError::Open));
        assert_eq!(unwrap_key(&new_data_key(), &wrapped, b"a"), Err(CryptoError::Open));
        assert_eq!(unwrap_key(&kek, &wrapped[1..], b"a"), Err(CryptoError::Length));
    }

    #[tokio::test]
    async fn sse_s3_provider_round_trips() {
        let provider = SseS3Keys::new(new_data_key());
        let key = provider.generate(None, &[]).await.unwrap();
        assert_eq!(*provider.decrypt(&key.wrapped, &[]).await.unwrap(), *key.plaintext);
        assert_eq!(provider.algorithm(), "AES256");
    }

    #[test]
    fn customer_keys_are_checked_like_aws() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw = [7u8; 32];
        let key = b64.encode(raw);
        let md5 = b64.encode(crate::checksum::md5(&raw));
        let parsed = customer_key(Some("AES256"), Some(&key), Some(&md5)).unwrap().unwrap();
        assert_eq!(parsed.key_md5, md5);
        assert!(customer_key(None, None, None).unwrap().is_none());
        // (algorithm, key, key MD5) headers and the refusal they get.
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, CustomerKeyError);
        let cases: &[Case<'_>] = &[
            (Some("AES256"), None, None, CustomerKeyError::Incomplete),
            (None, Some(&key), None, CustomerKeyError::Incomplete),
            (Some("aws:kms"), Some(&key), None, CustomerKeyError::Algorithm),
            (Some("AES256"), Some("c2hvcnQ="), None, CustomerKeyError::KeyFormat),
            (
                Some("AES256"),
                Some(&key),
                Some("AAAAAAAAAAAAAAAAAAAAAA=="),
                CustomerKeyError::Md5Mismatch,
            ),
        ];
        for (alg, k, m, want) in cases {
            assert_eq!(customer_key(*alg, *k, *m).err().as_ref(), Some(want));
        }
        let salt = random_bytes::<16>();
        let proof = customer_key_proof(&raw, &salt);
        assert!(customer_key_matches(&raw, &salt, &proof));
        assert!(!customer_key_matches(&[8u8; 32], &salt, &proof));
    }
}
