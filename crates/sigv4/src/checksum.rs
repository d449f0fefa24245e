//! The flexible checksums S3 clients send (`x-amz-checksum-<alg>`), computed incrementally.
//!
//! S3 transmits each checksum as the base64 of its big-endian bytes (`DUoRhQ==` is the CRC32 of
//! `hello world`), so the hasher's output is exactly what is compared with headers and trailers.

use aws_lc_rs::digest;
use base64::Engine as _;

/// A checksum algorithm S3 accepts and this crate computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    /// CRC-32 (IEEE), botocore's default.
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl ChecksumAlgorithm {
    /// All supported algorithms.
    pub const ALL: [Self; 5] = [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256];

    /// The S3 name (`CRC32`, `CRC64NVME`, ...) as in `x-amz-sdk-checksum-algorithm`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The header (and trailer) name, `x-amz-checksum-crc32` and so on.
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Parses an S3 algorithm name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Parses a checksum header name, case-insensitively.
    pub fn from_header_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.header_name().eq_ignore_ascii_case(name.trim()))
    }

    /// Starts an incremental hasher.
    pub fn hasher(self) -> ChecksumHasher {
        ChecksumHasher::new(self)
    }
}

enum State {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(crc64fast_nvme::Digest),
    Digest(digest::Context),
}

/// An incremental checksum.
pub struct ChecksumHasher {
    algorithm: ChecksumAlgorithm,
    state: State,
}

impl std::fmt::Debug for ChecksumHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChecksumHasher")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl ChecksumHasher {
    /// Starts a hasher for `algorithm`.
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        let state = match algorithm {
            ChecksumAlgorithm::Crc32 => State::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Crc32c => State::Crc32c(0),
            ChecksumAlgorithm::Crc64Nvme => State::Crc64Nvme(crc64fast_nvme::Digest::new()),
            ChecksumAlgorithm::Sha1 => State::Digest(digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY)),
            ChecksumAlgorithm::Sha256 => State::Digest(digest::Context::new(&digest::SHA256)),
        };
        Self { algorithm, state }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc32(hasher) => hasher.update(data),
            State::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
            State::Crc64Nvme(hasher) => hasher.write(data),
            State::Digest(context) => context.update(data),
        }
    }

    /// The checksum as big-endian bytes.
    pub fn finish(self) -> Vec<u8> {
        match self.state {
            State::Crc32(hasher) => hasher.finalize().to_be_bytes().to_vec(),
            State::Crc32c(crc) => crc.to_be_bytes().to_vec(),
            State::Crc64Nvme(hasher) => hasher.sum64().to_be_bytes().to_vec(),
            State::Digest(context) => context.finish().as_ref().to_vec(),
        }
    }

    /// The checksum as S3 sends it: base64 of the big-endian bytes.
    pub fn finish_base64(self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.finish())
    }
}

/// The base64 checksum of `data` in one call.
pub fn checksum_base64(algorithm: ChecksumAlgorithm, data: &[u8]) -> String {
    let mut hasher = algorithm.hasher();
    hasher.update(data);
    hasher.finish_base64()
}
