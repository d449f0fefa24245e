//! An incremental decoder for aws-chunked bodies (sigv4.md section 7).
//!
//! The decoder is a byte-level state machine: data bytes are handed to the caller as they arrive,
//! so memory stays bounded by one chunk-header or trailer line (at most [`MAX_LINE_LEN`] bytes)
//! however large the chunks are. The price is that data is provisional: a chunk's signature can
//! only be checked once all its bytes have passed, so the caller must discard everything it
//! received unless [`ChunkedDecoder::finish`] succeeds.

use aws_lc_rs::digest;
use http::HeaderMap;

use crate::checksum::ChecksumAlgorithm;
use crate::error::ChunkError;
use crate::util::{EMPTY_SHA256_HEX, decode_hex32, push_hex};
use crate::verify::{ChunkSigningContext, PayloadCheck, Verified};

/// The longest chunk-header or trailer line accepted, in bytes.
pub const MAX_LINE_LEN: usize = 4096;

/// The most trailer lines accepted.
pub const MAX_TRAILERS: usize = 16;

/// The aws-chunked variant, from the `x-amz-content-sha256` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkedMode {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: every chunk signed, no trailer.
    Signed,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: no chunk signatures, checksum trailer.
    UnsignedTrailer,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: signed chunks and a signed trailer.
    SignedTrailer,
}

impl ChunkedMode {
    /// The mode for an `x-amz-content-sha256` value, if it is one of the supported streaming values.
    pub fn from_content_sha256(value: &str) -> Option<Self> {
        match value {
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => Some(Self::Signed),
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Some(Self::UnsignedTrailer),
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => Some(Self::SignedTrailer),
            _ => None,
        }
    }

    /// The `x-amz-content-sha256` value of this mode.
    pub fn content_sha256(self) -> &'static str {
        match self {
            Self::Signed => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            Self::UnsignedTrailer => "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            Self::SignedTrailer => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        }
    }

    fn signed(self) -> bool {
        matches!(self, Self::Signed | Self::SignedTrailer)
    }

    fn has_trailer(self) -> bool {
        matches!(self, Self::UnsignedTrailer | Self::SignedTrailer)
    }
}

/// What a completely decoded body declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedSummary {
    /// The number of decoded data bytes.
    pub decoded_length: u64,
    /// The trailer lines as (lower-cased name, trimmed value), without `x-amz-trailer-signature`.
    pub trailers: Vec<(String, String)>,
}

impl ChunkedSummary {
    /// The first `x-amz-checksum-<alg>` trailer: its algorithm and base64 value.
    pub fn checksum(&self) -> Option<(ChecksumAlgorithm, &str)> {
        self.trailers.iter().find_map(|(name, value)| {
            ChecksumAlgorithm::from_header_name(name).map(|algorithm| (algorithm, value.as_str()))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SizeLine,
    Data,
    DataCr,
    DataLf,
    TrailerLine,
    Done,
    Failed,
}

/// Decodes an aws-chunked body fed in arbitrary pieces, verifying chunk signatures when signed.
pub struct ChunkedDecoder {
    mode: ChunkedMode,
    signing: Option<ChunkSigningContext>,
    previous_signature: [u8; 32],
    expected_length: Option<u64>,
    declared_trailers: Vec<String>,
    state: State,
    line: Vec<u8>,
    chunk_remaining: u64,
    chunk_signature: [u8; 32],
    chunk_hash: Option<digest::Context>,
    decoded: u64,
    chunk_index: u64,
    trailers: Vec<(String, String)>,
    trailer_signature: Option<[u8; 32]>,
}

impl std::fmt::Debug for ChunkedDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedDecoder")
            .field("mode", &self.mode)
            .field("state", &self.state)
            .field("decoded", &self.decoded)
            .field("chunk_index", &self.chunk_index)
            .finish_non_exhaustive()
    }
}

impl ChunkedDecoder {
    /// Creates a decoder.
    ///
    /// `signing` is required for the signed modes; `decoded_content_length` is `X-Amz-Decoded-Content-Length`;
    /// `declared_trailers` are the names in `X-Amz-Trailer`, which must all arrive.
    pub fn new(
        mode: ChunkedMode,
        signing: Option<ChunkSigningContext>,
        decoded_content_length: Option<u64>,
        declared_trailers: &[&str],
    ) -> Result<Self, ChunkError> {
        if mode.signed() && signing.is_none() {
            return Err(ChunkError::Malformed(
                "signed chunks require a SigV4 Authorization header",
            ));
        }
        Ok(Self {
            mode,
            previous_signature: signing
                .as_ref()
                .map(|context| context.seed_signature)
                .unwrap_or_default(),
            signing,
            expected_length: decoded_content_length,
            declared_trailers: declared_trailers
                .iter()
                .map(|name| name.trim().to_ascii_lowercase())
                .collect(),
            state: State::SizeLine,
            line: Vec::with_capacity(128),
            chunk_remaining: 0,
            chunk_signature: [0; 32],
            chunk_hash: None,
            decoded: 0,
            chunk_index: 0,
            trailers: Vec::new(),
            trailer_signature: None,
        })
    }

    /// Creates the decoder a verified request needs, reading `X-Amz-Decoded-Content-Length` and `X-Amz-Trailer`.
    ///
    /// Returns `None` when the body is not aws-chunked.
    pub fn for_request(verified: &Verified, headers: &HeaderMap) -> Option<Result<Self, ChunkError>> {
        let PayloadCheck::Chunked(mode) = verified.payload else {
            return None;
        };
        let decoded_length = match headers.get("x-amz-decoded-content-length") {
            None => None,
            Some(value) => match value.to_str().ok().and_then(|text| text.trim().parse::<u64>().ok()) {
                Some(length) => Some(length),
                None => return Some(Err(ChunkError::Malformed("invalid x-amz-decoded-content-length"))),
            },
        };
        let trailer_names: Vec<&str> = headers
            .get_all("x-amz-trailer")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .collect();
        Some(Self::new(
            mode,
            verified.chunk_context.clone(),
            decoded_length,
            &trailer_names,
        ))
    }

    /// The number of data bytes decoded so far.
    pub fn decoded_length(&self) -> u64 {
        self.decoded
    }

    /// Whether the final chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes the next piece of the body, passing decoded data slices to `on_data` in order.
    ///
    /// After an error the decoder stays failed.
    pub fn feed(&mut self, input: &[u8], mut on_data: impl FnMut(&[u8])) -> Result<(), ChunkError> {
        let result = self.feed_inner(input, &mut on_data);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn feed_inner(&mut self, mut input: &[u8], on_data: &mut dyn FnMut(&[u8])) -> Result<(), ChunkError> {
        while !input.is_empty() {
            match self.state {
                State::Failed => return Err(ChunkError::Malformed("decoder already failed")),
                State::Done => return Err(ChunkError::Malformed("data after the final chunk")),
                State::SizeLine | State::TrailerLine => {
                    let Some(consumed) = self.take_line(input)? else {
                        return Ok(());
                    };
                    input = input.get(consumed..).unwrap_or_default();
                    if self.state == State::SizeLine {
                        self.on_size_line()?;
                    } else {
                        self.on_trailer_line()?;
                    }
                    self.line.clear();
                }
                State::Data => {
                    let available = usize::try_from(self.chunk_remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let (data, rest) = input.split_at(available);
                    if let Some(hash) = self.chunk_hash.as_mut() {
                        hash.update(data);
                    }
                    on_data(data);
                    self.decoded += data.len() as u64;
                    self.chunk_remaining -= data.len() as u64;
                    input = rest;
                    if self.chunk_remaining == 0 {
                        self.on_chunk_complete()?;
                        self.state = State::DataCr;
                    }
                }
                State::DataCr | State::DataLf => {
                    let expected = if self.state == State::DataCr { b'\r' } else { b'\n' };
                    if input.first() != Some(&expected) {
                        return Err(ChunkError::Malformed("chunk data not followed by CRLF"));
                    }
                    input = input.get(1..).unwrap_or_default();
                    self.state = if self.state == State::DataCr {
                        State::DataLf
                    } else {
                        State::SizeLine
                    };
                }
            }
        }
        Ok(())
    }

    /// Accumulates a CRLF-terminated line; returns the bytes of `input` consumed once the line is complete.
    fn take_line(&mut self, input: &[u8]) -> Result<Option<usize>, ChunkError> {
        let newline = input.iter().position(|&b| b == b'\n');
        let take = newline.map_or(input.len(), |index| index + 1);
        if self.line.len() + take > MAX_LINE_LEN {
            return Err(ChunkError::Malformed("line too long"));
        }
        self.line.extend_from_slice(input.get(..take).unwrap_or_default());
        if newline.is_none() {
            return Ok(None);
        }
        // Drop the CRLF; a bare LF is malformed.
        if !self.line.ends_with(b"\r\n") {
            return Err(ChunkError::Malformed("line not terminated by CRLF"));
        }
        self.line.truncate(self.line.len() - 2);
        Ok(Some(take))
    }

    fn on_size_line(&mut self) -> Result<(), ChunkError> {
        let line = std::mem::take(&mut self.line);
        let result = self.parse_size_line(&line);
        self.line = line;
        result
    }

    fn parse_size_line(&mut self, line: &[u8]) -> Result<(), ChunkError> {
        let mut parts = line.split(|&b| b == b';');
        let size_text = parts.next().unwrap_or_default();
        if size_text.is_empty() || size_text.len() > 16 || !size_text.iter().all(u8::is_ascii_hexdigit) {
            return Err(ChunkError::Malformed("invalid chunk size"));
        }
        let size = size_text.iter().fold(0u64, |acc, &b| {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => b - b'A' + 10,
            };
            (acc << 4) | u64::from(digit)
        });
        let mut signature = None;
        for extension in parts {
            let (name, value) = match extension.iter().position(|&b| b == b'=') {
                Some(index) => (
                    extension.get(..index).unwrap_or_default(),
                    extension.get(index + 1..).unwrap_or_default(),
                ),
                None => (extension, &[][..]),
            };
            if name == b"chunk-signature" {
                signature = Some(decode_hex32(value).ok_or(ChunkError::Malformed("invalid chunk-signature"))?);
            }
        }
        if self.mode.signed() {
            self.chunk_signature = signature.ok_or(ChunkError::Malformed("missing chunk-signature"))?;
        }
        if let Some(expected) = self.expected_length {
            let total = self.decoded.saturating_add(size);
            if total > expected || (size == 0 && total != expected) {
                return Err(ChunkError::DecodedLengthMismatch {
                    expected,
                    actual: total,
                });
            }
        }
        if size == 0 {
            // The final chunk: its signature covers the empty data.
            if self.mode.signed() {
                self.verify_chunk_signature(EMPTY_SHA256_HEX.as_bytes())?;
            }
            self.state = State::TrailerLine;
        } else {
            self.chunk_remaining = size;
            self.chunk_hash = self.mode.signed().then(|| digest::Context::new(&digest::SHA256));
            self.state = State::Data;
        }
        Ok(())
    }

    fn on_chunk_complete(&mut self) -> Result<(), ChunkError> {
        if let Some(hash) = self.chunk_hash.take() {
            let mut hash_hex = Vec::with_capacity(64);
            push_hex(&mut hash_hex, hash.finish().as_ref());
            self.verify_chunk_signature(&hash_hex)?;
        }
        Ok(())
    }

    fn verify_chunk_signature(&mut self, data_hash_hex: &[u8]) -> Result<(), ChunkError> {
        let Some(context) = self.signing.as_ref() else {
            return Err(ChunkError::Malformed(
                "signed chunks require a SigV4 Authorization header",
            ));
        };
        let mut previous_hex = Vec::with_capacity(64);
        push_hex(&mut previous_hex, &self.previous_signature);
        let parts: [&[u8]; 10] = [
            b"AWS4-HMAC-SHA256-PAYLOAD\n",
            context.amz_date.as_bytes(),
            b"\n",
            context.scope.as_bytes(),
            b"\n",
            &previous_hex,
            b"\n",
            EMPTY_SHA256_HEX.as_bytes(),
            b"\n",
            data_hash_hex,
        ];
        if !context.key.verify_parts(&parts, &self.chunk_signature) {
            return Err(ChunkError::SignatureMismatch {
                chunk_index: self.chunk_index,
            });
        }
        self.previous_signature = self.chunk_signature;
        self.chunk_index += 1;
        Ok(())
    }

    fn on_trailer_line(&mut self) -> Result<(), ChunkError> {
        if self.line.is_empty() {
            return self.on_trailer_end();
        }
        let text = std::str::from_utf8(&self.line).map_err(|_| ChunkError::Malformed("trailer is not UTF-8"))?;
        let Some((name, value)) = text.split_once(':') else {
            return Err(ChunkError::Malformed("trailer line without ':'"));
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        if !self.mode.has_trailer() {
            return Err(ChunkError::Malformed("unexpected trailer"));
        }
        if name == "x-amz-trailer-signature" {
            if self.mode != ChunkedMode::SignedTrailer || self.trailer_signature.is_some() {
                return Err(ChunkError::Malformed("unexpected x-amz-trailer-signature"));
            }
            let signature =
                decode_hex32(value.as_bytes()).ok_or(ChunkError::Malformed("invalid x-amz-trailer-signature"))?;
            self.trailer_signature = Some(signature);
            return Ok(());
        }
        if self.trailer_signature.is_some() {
            return Err(ChunkError::Malformed("trailer after x-amz-trailer-signature"));
        }
        if self.trailers.len() >= MAX_TRAILERS {
            return Err(ChunkError::Malformed("too many trailers"));
        }
        self.trailers.push((name, value.to_owned()));
        Ok(())
    }

    fn on_trailer_end(&mut self) -> Result<(), ChunkError> {
        if self.mode == ChunkedMode::SignedTrailer {
            let Some(signature) = self.trailer_signature else {
                return Err(ChunkError::Malformed("missing x-amz-trailer-signature"));
            };
            let Some(context) = self.signing.as_ref() else {
                return Err(ChunkError::Malformed(
                    "signed chunks require a SigV4 Authorization header",
                ));
            };
            let mut canonical = Vec::new();
            for (name, value) in &self.trailers {
                canonical.extend_from_slice(name.as_bytes());
                canonical.push(b':');
                canonical.extend_from_slice(value.as_bytes());
                canonical.push(b'\n');
            }
            let mut trailer_hash_hex = Vec::with_capacity(64);
            push_hex(
                &mut trailer_hash_hex,
                digest::digest(&digest::SHA256, &canonical).as_ref(),
            );
            let mut previous_hex = Vec::with_capacity(64);
            push_hex(&mut previous_hex, &self.previous_signature);
            let parts: [&[u8]; 8] = [
                b"AWS4-HMAC-SHA256-TRAILER\n",
                context.amz_date.as_bytes(),
                b"\n",
                context.scope.as_bytes(),
                b"\n",
                &previous_hex,
                b"\n",
                &trailer_hash_hex,
            ];
            if !context.key.verify_parts(&parts, &signature) {
                return Err(ChunkError::SignatureMismatch {
                    chunk_index: self.chunk_index,
                });
            }
        }
        for declared in &self.declared_trailers {
            if !self.trailers.iter().any(|(name, _)| name == declared) {
                return Err(ChunkError::MissingTrailer(declared.clone()));
            }
        }
        self.state = State::Done;
        Ok(())
    }

    /// Confirms the body is complete and returns what it declared.
    ///
    /// # Errors
    /// `Truncated` when the final chunk or trailer section is missing, `DecodedLengthMismatch` when the
    /// decoded length differs from `X-Amz-Decoded-Content-Length`.
    pub fn finish(self) -> Result<ChunkedSummary, ChunkError> {
        if self.state != State::Done {
            return Err(ChunkError::Truncated);
        }
        if let Some(expected) = self.expected_length
            && expected != self.decoded
        {
            return Err(ChunkError::DecodedLengthMismatch {
                expected,
                actual: self.decoded,
            });
        }
        Ok(ChunkedSummary {
            decoded_length: self.decoded,
            trailers: self.trailers,
        })
    }
}
