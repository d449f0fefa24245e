//! Content digests: the MD5 behind ETags and the flexible checksums boto3 sends.
//!
//! botocore 1.43 sends `x-amz-checksum-crc32` with every upload by default (as a header over
//! http, as an aws-chunked trailer over https); other SDKs send CRC32C, CRC64NVME, SHA1 or
//! SHA256. S3 verifies the value against the bytes it received (`BadDigest` on mismatch), stores
//! it, and returns it when asked with `x-amz-checksum-mode: ENABLED`. Values travel as base64 of
//! the big-endian digest.

use aws_lc_rs::digest;
use base64::Engine;
use md5::Digest as _;

/// MD5 of a byte string (ETags, `Content-MD5`, SSE-C key checks).
pub fn md5(data: &[u8]) -> [u8; 16] {
    md5::Md5::digest(data).into()
}

/// A flexible checksum algorithm S3 supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// CRC32 (ISO-HDLC), the botocore default.
    Crc32,
    /// CRC32C (Castagnoli).
    Crc32c,
    /// CRC64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl Algorithm {
    /// Every algorithm, in the order S3 reports them.
    pub const ALL: [Algorithm; 5] = [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256];

    /// The name as in `x-amz-sdk-checksum-algorithm` (`CRC32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The header carrying the value, `x-amz-checksum-crc32`, ...
    pub fn header(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Parses a name, case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

/// A running checksum.
#[derive(Clone)]
pub enum Checksum {
    /// CRC32.
    Crc32(crc32fast::Hasher),
    /// CRC32C.
    Crc32c(u32),
    /// CRC64NVME.
    Crc64Nvme(crc64fast_nvme::Digest),
    /// SHA-1.
    Sha1(digest::Context),
    /// SHA-256.
    Sha256(digest::Context),
}

impl Checksum {
    /// A fresh checksum of `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Crc32 => Self::Crc32(crc32fast::Hasher::new()),
            Algorithm::Crc32c => Self::Crc32c(0),
            Algorithm::Crc64Nvme => Self::Crc64Nvme(crc64fast_nvme::Digest::new()),
            Algorithm::Sha1 => Self::Sha1(digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY)),
            Algorithm::Sha256 => Self::Sha256(digest::Context::new(&digest::SHA256)),
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(h) => h.update(data),
            Self::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Self::Crc64Nvme(d) => d.write(data),
            Self::Sha1(c) | Self::Sha256(c) => c.update(data),
        }
    }

    /// The base64 value.
    pub fn finish(self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        match self {
            Self::Crc32(h) => b64.encode(h.finalize().to_be_bytes()),
            Self::Crc32c(c) => b64.encode(c.to_be_bytes()),
            Self::Crc64Nvme(d) => b64.encode(d.sum64().to_be_bytes()),
            Self::Sha1(c) | Self::Sha256(c) => b64.encode(c.finish().as_ref()),
        }
    }
}

/// One checksum of one algorithm over some bytes.
pub fn compute(algorithm: Algorithm, data: &[u8]) -> String {
    let mut checksum = Checksum::new(algorithm);
    checksum.update(data);
    checksum.finish()
}

/// The multipart ETag: MD5 of the concatenated binary part MD5s, then `-<part count>`.
pub fn multipart_etag(part_md5_hex: &[String]) -> Option<String> {
    let mut joined = Vec::with_capacity(part_md5_hex.len() * 16);
    for part in part_md5_hex {
        joined.extend_from_slice(&hex::decode(part).ok()?);
    }
    Some(format!("{}-{}", hex::encode(md5(&joined)), part_md5_hex.len()))
}

/// The composite multipart checksum: the checksum of the concatenated binary part checksums,
/// then `-<part count>`.
pub fn composite_checksum(algorithm: Algorithm, part_values_b64: &[String]) -> Option<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut joined = Vec::new();
    for part in part_values_b64 {
        joined.extend_from_slice(&b64.decode(part).ok()?);
    }
    Some(format!("{}-{}", compute(algorithm, &joined), part_values_b64.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Values checked against botocore's own implementations (`hello world`).
        let cases = [
            (Algorithm::Crc32, "DUoRhQ=="),
            (Algorithm::Crc32c, "yZRlqg=="),
            (Algorithm::Sha1, "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            (Algorithm::Sha256, "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="),
        ];
        for (algorithm, want) in cases {
            assert_eq!(compute(algorithm, b"hello world"), want, "{}", algorithm.name());
        }
        assert_eq!(hex::encode(md5(b"hello world")), "5eb63bbbe01eeed093cb22bb8f5acdc3");
    }

    #[test]
    fn streaming_matches_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for algorithm in Algorithm::ALL {
            let mut running = Checksum::new(algorithm);
            for piece in data.chunks(333) {
                running.update(piece);
            }
            assert_eq!(running.finish(), compute(algorithm, &data), "{}", algorithm.name());
        }
    }

    #[test]
    fn names_parse_back() {
        for algorithm in Algorithm::ALL {
            assert_eq!(Algorithm::parse(&algorithm.name().to_lowercase()), Some(algorithm));
        }
        assert_eq!(Algorithm::parse("MD5"), None);
    }

    #[test]
    fn multipart_etag_is_md5_of_part_md5s() {
        let parts = [hex::encode(md5(b"a")), hex::encode(md5(b"b"))];
        let mut joined = md5(b"a").to_vec();
        joined.extend_from_slice(&md5(b"b"));
        assert_eq!(
            multipart_etag(&parts).unwrap(),
            format!("{}-2", hex::encode(md5(&joined)))
        );
        assert_eq!(multipart_etag(&["zz".to_string()]), None);
    }
}
