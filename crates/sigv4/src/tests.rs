//! Tests: the published vectors (sigv4.md section 10), botocore captures, round trips through the
//! client signer, every error path, and properties that no input panics the parser or the decoder.

use http::{HeaderMap, HeaderName, HeaderValue};
use time::OffsetDateTime;

use crate::canonical::{CanonicalInput, UriMode, canonical_request};
use crate::util::parse_amz_date;
use crate::*;

const SECRET_IAM: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SECRET_S3: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn at(amz_date: &str) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(parse_amz_date(amz_date).unwrap()).unwrap()
}

fn at_unix(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

fn request<'a>(method: &'a str, path: &'a str, query: &'a str, headers: &'a HeaderMap) -> RequestParts<'a> {
    RequestParts {
        method,
        raw_path: path,
        raw_query: query,
        headers,
        virtual_host_bucket: None,
    }
}

/// Parses and verifies with a fresh verifier.
fn check(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    secret: &str,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Verified, AuthError> {
    let parsed = parse_auth(headers, query)?;
    parsed.check_time(now)?;
    Verifier::default().verify(
        &parsed,
        secret.as_bytes(),
        &request(method, path, query, headers),
        Payload::Bytes(body),
        now,
    )
}

// ---------------------------------------------------------------- vectors

fn vector1_headers(signature: &str) -> HeaderMap {
    headers(&[
        ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
        ("host", "iam.amazonaws.com"),
        ("x-amz-date", "20150830T123600Z"),
        (
            "authorization",
            &format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature={signature}"
            ),
        ),
    ])
}

const VECTOR1_SIGNATURE: &str = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

#[test]
fn vector1_iam_query_get() {
    let map = vector1_headers(VECTOR1_SIGNATURE);
    let query = "Action=ListUsers&Version=2010-05-08";
    let (creq, all_present) = canonical_request(&CanonicalInput {
        method: "GET",
        raw_path: "/",
        raw_query: query,
        headers: &map,
        signed_headers: "content-type;host;x-amz-date",
        payload_hash: EMPTY_SHA256_HEX,
        uri_mode: UriMode::Normalized,
        exclude_signature: false,
    });
    assert!(all_present);
    assert_eq!(
        sha256_hex(&creq),
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    );
    assert_eq!(
        hex::encode(derive_signing_key_bytes(
            SECRET_IAM.as_bytes(),
            "20150830",
            "us-east-1",
            "iam"
        )),
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    );
    let verified = check("GET", "/", query, &map, SECRET_IAM, b"", at("20150830T123600Z")).unwrap();
    assert_eq!(verified.kind, AuthKind::Header);
    assert_eq!(verified.payload, PayloadCheck::Done);

    // The client signer reproduces the published signature.
    let mut signed = headers(&[
        ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
        ("host", "iam.amazonaws.com"),
    ]);
    let params = SigningParams {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: SECRET_IAM,
        security_token: None,
        region: "us-east-1",
        service: "iam",
        time: at("20150830T123600Z"),
    };
    let output = sign_request(&params, "GET", "/", query, &mut signed, EMPTY_SHA256_HEX).unwrap();
    assert_eq!(output.signature, VECTOR1_SIGNATURE);
}

fn vector2_headers(signature: &str) -> HeaderMap {
    headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_SHA256_HEX),
        ("x-amz-date", "20130524T000000Z"),
        (
            "authorization",
            &format!(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
                 SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature={signature}"
            ),
        ),
    ])
}

#[test]
fn vector2_s3_get() {
    let map = vector2_headers("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    let verified = check("GET", "/test.txt", "", &map, SECRET_S3, b"", at("20130524T000000Z")).unwrap();
    assert_eq!(verified.payload, PayloadCheck::Done);
    assert!(verified.chunk_context.is_some());
}

const VECTOR3_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

#[test]
fn vector3_s3_presigned_get() {
    let map = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
    let verified = check(
        "GET",
        "/test.txt",
        VECTOR3_QUERY,
        &map,
        SECRET_S3,
        b"",
        at("20130524T120000Z"),
    )
    .unwrap();
    assert_eq!(verified.kind, AuthKind::Presigned);
    assert_eq!(verified.payload, PayloadCheck::Unsigned);

    let params = SigningParams {
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: SECRET_S3,
        security_token: None,
        region: "us-east-1",
        service: "s3",
        time: at("20130524T000000Z"),
    };
    let url = presign_url(&params, "GET", "/test.txt", "", "examplebucket.s3.amazonaws.com", 86400).unwrap();
    assert_eq!(url, format!("/test.txt?{VECTOR3_QUERY}"));
}

const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const CHUNK1: &str = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648";
const CHUNK2: &str = "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497";
const FINAL: &str = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9";

fn vector4_headers() -> HeaderMap {
    headers(&[
        ("host", "s3.amazonaws.com"),
        ("content-encoding", "aws-chunked"),
        ("content-length", "66824"),
        ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-decoded-content-length", "66560"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        (
            "authorization",
            &format!(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
                 SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;\
                 x-amz-decoded-content-length;x-amz-storage-class,Signature={SEED}"
            ),
        ),
    ])
}

fn vector4_body(chunk1: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(format!("10000;chunk-signature={chunk1}\r\n").as_bytes());
    body.extend(std::iter::repeat_n(b'a', 65536));
    body.extend_from_slice(format!("\r\n400;chunk-signature={CHUNK2}\r\n").as_bytes());
    body.extend(std::iter::repeat_n(b'a', 1024));
    body.extend_from_slice(format!("\r\n0;chunk-signature={FINAL}\r\n\r\n").as_bytes());
    body
}

fn vector4_decoder() -> ChunkedDecoder {
    let map = vector4_headers();
    let verified = Verifier::default()
        .verify(
            &parse_auth(&map, "").unwrap(),
            SECRET_S3.as_bytes(),
            &request("PUT", "/examplebucket/chunkObject.txt", "", &map),
            Payload::Deferred,
            at("20130524T000100Z"),
        )
        .unwrap();
    assert_eq!(verified.payload, PayloadCheck::Chunked(ChunkedMode::Signed));
    ChunkedDecoder::for_request(&verified, &map).unwrap().unwrap()
}

#[test]
fn vector4_s3_signed_chunks() {
    let body = vector4_body(CHUNK1);
    assert_eq!(body.len(), 66824);
    for piece in [1usize, 7, 90, 4096, body.len()] {
        let mut decoder = vector4_decoder();
        let mut decoded = Vec::new();
        for part in body.chunks(piece) {
            decoder.feed(part, |data| decoded.extend_from_slice(data)).unwrap();
        }
        let summary = decoder.finish().unwrap();
        assert_eq!(summary.decoded_length, 66560);
        assert!(decoded.iter().all(|&b| b == b'a') && decoded.len() == 66560);
    }

    // The client-side encoder produces the same bytes.
    let key = SigningKey::derive(SECRET_S3.as_bytes(), "20130524", "us-east-1", "s3");
    let encoded = encode_chunked_signed(
        &key,
        "20130524T000000Z",
        "20130524/us-east-1/s3/aws4_request",
        SEED,
        &[b'a'; 66560],
        65536,
        &[],
    );
    assert_eq!(encoded, body);
}

#[test]
fn vector4_bad_chunk_signature_is_rejected() {
    let mut wrong = CHUNK1.to_owned();
    wrong.replace_range(0..1, "b");
    let body = vector4_body(&wrong);
    let mut decoder = vector4_decoder();
    let error = decoder.feed(&body, |_| {}).unwrap_err();
    assert_eq!(error, ChunkError::SignatureMismatch { chunk_index: 0 });
    assert_eq!(error.code_and_status(), ("SignatureDoesNotMatch", 403));
    // The decoder stays failed.
    assert!(decoder.feed(b"0", |_| {}).is_err());
}

#[test]
fn vector5_sigv2() {
    let string_to_sign = "GET\n\n\n1175139620\n/johnsmith/photos/puppy.jpg";
    assert_eq!(
        sign_v2(SECRET_S3.as_bytes(), string_to_sign),
        "NpgCjnDzrM+WFzoENXmpNDUsSn8="
    );
    let map = headers(&[("host", "johnsmith.s3.amazonaws.com")]);
    let query = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D";
    let verified = check(
        "GET",
        "/johnsmith/photos/puppy.jpg",
        query,
        &map,
        SECRET_S3,
        b"",
        at_unix(1_175_139_000),
    )
    .unwrap();
    assert_eq!(verified.kind, AuthKind::SigV2Query);
    // The virtual-hosted form signs the same resource.
    let parsed = parse_auth(&map, query).unwrap();
    let parts = RequestParts {
        virtual_host_bucket: Some("johnsmith"),
        ..request("GET", "/photos/puppy.jpg", query, &map)
    };
    Verifier::default()
        .verify(
            &parsed,
            SECRET_S3.as_bytes(),
            &parts,
            Payload::Deferred,
            at_unix(1_175_139_000),
        )
        .unwrap();
    // After Expires it is refused.
    let error = check(
        "GET",
        "/johnsmith/photos/puppy.jpg",
        query,
        &map,
        SECRET_S3,
        b"",
        at_unix(1_175_139_621),
    )
    .unwrap_err();
    assert!(matches!(error, AuthError::RequestExpired { .. }));
}

#[test]
fn sigv2_header_form() {
    let date = "Tue, 27 Mar 2007 19:36:42 +0000";
    let string_to_sign = format!("GET\n\n\n{date}\n/johnsmith/photos/puppy.jpg");
    let signature = sign_v2(SECRET_S3.as_bytes(), &string_to_sign);
    let map = headers(&[
        ("host", "johnsmith.s3.amazonaws.com"),
        ("date", date),
        ("authorization", &format!("AWS AKIAIOSFODNN7EXAMPLE:{signature}")),
    ]);
    let now = at("20070327T194000Z");
    let verified = check("GET", "/johnsmith/photos/puppy.jpg", "", &map, SECRET_S3, b"", now).unwrap();
    assert_eq!(verified.kind, AuthKind::SigV2Header);
    let error = check("GET", "/johnsmith/photos/puppy.jpg", "", &map, "wrong", b"", now).unwrap_err();
    let AuthError::SignatureDoesNotMatch {
        string_to_sign: computed,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(computed, &string_to_sign);
    let error = check(
        "GET",
        "/johnsmith/photos/puppy.jpg",
        "",
        &map,
        SECRET_S3,
        b"",
        at("20070327T200000Z"),
    );
    assert_eq!(
        error.unwrap_err().code_and_status(ProtocolFamily::S3),
        ("RequestTimeTooSkewed", 403)
    );
}

#[test]
fn sigv2_sub_resources_and_amz_headers() {
    let map = headers(&[
        ("host", "h"),
        ("content-type", "text/plain"),
        ("content-md5", "abc=="),
        ("x-amz-meta-b", " two "),
        ("x-amz-meta-a", "one"),
        ("x-amz-meta-a", "uno"),
    ]);
    let input = SigV2Input {
        method: "put",
        raw_path: "/b/k%20x",
        raw_query: "uploadId=a%2Fb&partNumber=2&foo=bar&acl",
        headers: &map,
        virtual_host_bucket: None,
        date_or_expires: "D",
        query_form: false,
    };
    assert_eq!(
        string_to_sign_v2(&input),
        "PUT\nabc==\ntext/plain\nD\nx-amz-meta-a:one,uno\nx-amz-meta-b:two\n/b/k%20x?acl&partNumber=2&uploadId=a/b"
    );
}

// ---------------------------------------------------------------- botocore captures

/// Captured from botocore 1.43 `SigV4Auth(creds, 'sts', 'us-east-1').add_auth(AWSRequest(...))`.
mod botocore {
    pub const SECRET: &str = "fixtureSecretKey/EXAMPLE+abcdefghijklmnop";
    pub const TOKEN: &str = "FwoGZXIvYXdzEXAMPLETOKEN+/=";
    pub const DATE: &str = "20261129T041405Z";
    pub const BODY: &[u8] = b"Action=GetCallerIdentity&Version=2011-06-15";
    pub const AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIAFIXTUREEXAMPLE1/20261129/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=048bd0d3d770a3f4e8e15323c53378681d733c24fc1dcf4bd1d3b7209cb41ea1";
    pub const HEADERS: &[(&str, &str)] = &[
        ("Host", "127.0.0.1:4566"),
        ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
        ("X-Amz-Date", DATE),
        ("X-Amz-Security-Token", TOKEN),
        ("Authorization", AUTHORIZATION),
        ("Content-Length", "43"),
        ("User-Agent", "Boto3/1.43.11 md/Botocore#1.43.11"),
    ];
    /// `generate_presigned_url('get_object', ...)` in us-east-1: SigV2 with a session token.
    pub const V2_PRESIGNED: &str = "/mybucket/a%20b/c?response-content-type=text%2Fplain&AWSAccessKeyId=AKIDEXAMPLE&Signature=mxRko0TT9QLRshSLoGSSMKeYITI%3D&x-amz-security-token=TOK%2B%2F%3D&Expires=1856405651";
    /// The same call in us-east-2: SigV4 query parameters.
    pub const V4_PRESIGNED: &str = "/mybucket/a%20b/c~d%2Be.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261129%2Fus-east-2%2Fs3%2Faws4_request&X-Amz-Date=20261129T041411Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=2582cb711bdcbc100eef182e42cdf6562e30a943839416da330da70f51d6d9f5";
    pub const V2_V4_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
}

#[test]
fn botocore_get_caller_identity_verifies() {
    let map = headers(botocore::HEADERS);
    let parsed = parse_auth(&map, "").unwrap();
    assert_eq!(parsed.access_key_id, "AKIAFIXTUREEXAMPLE1");
    assert_eq!((parsed.region.as_str(), parsed.service.as_str()), ("us-east-1", "sts"));
    assert_eq!(parsed.security_token.as_deref(), Some(botocore::TOKEN));
    let verified = check(
        "POST",
        "/",
        "",
        &map,
        botocore::SECRET,
        botocore::BODY,
        at(botocore::DATE),
    )
    .unwrap();
    assert_eq!(verified.payload, PayloadCheck::Done);
    // A one-byte change in the body breaks it.
    let error = check(
        "POST",
        "/",
        "",
        &map,
        botocore::SECRET,
        b"Action=GetCallerIdentity&Version=2011-06-16",
        at(botocore::DATE),
    );
    assert!(matches!(error, Err(AuthError::SignatureDoesNotMatch { .. })));
}

#[test]
fn botocore_presigned_urls_verify() {
    let map = headers(&[("host", "127.0.0.1:9000")]);
    for (url, now, kind) in [
        (botocore::V2_PRESIGNED, at("20261129T041500Z"), AuthKind::SigV2Query),
        (botocore::V4_PRESIGNED, at("20261129T041500Z"), AuthKind::Presigned),
    ] {
        let (path, query) = url.split_once('?').unwrap();
        let verified = check("GET", path, query, &map, botocore::V2_V4_SECRET, b"", now).unwrap();
        assert_eq!(verified.kind, kind);
        let parsed = parse_auth(&map, query).unwrap();
        if kind == AuthKind::SigV2Query {
            assert_eq!(parsed.security_token.as_deref(), Some("TOK+/="));
        }
        // Tampering with the path breaks both.
        let error = check("GET", "/mybucket/other", query, &map, botocore::V2_V4_SECRET, b"", now).unwrap_err();
        assert!(matches!(error, AuthError::SignatureDoesNotMatch { .. }), "{error:?}");
    }
}

#[test]
fn botocore_unsigned_trailer_capture() {
    let body = b"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
    let mut decoder =
        ChunkedDecoder::new(ChunkedMode::UnsignedTrailer, None, Some(11), &["x-amz-checksum-crc32"]).unwrap();
    let mut decoded = Vec::new();
    decoder.feed(body, |data| decoded.extend_from_slice(data)).unwrap();
    let summary = decoder.finish().unwrap();
    assert_eq!(decoded, b"hello world");
    let (algorithm, value) = summary.checksum().unwrap();
    assert_eq!(algorithm, ChecksumAlgorithm::Crc32);
    assert_eq!(value, checksum_base64(ChecksumAlgorithm::Crc32, &decoded));
    assert_eq!(
        encode_chunked_unsigned(b"hello world", 1 << 20, &[("x-amz-checksum-crc32", "DUoRhQ==")]),
        body
    );
}

// ---------------------------------------------------------------- round trips

fn params<'a>(service: &'a str, token: Option<&'a str>, time: OffsetDateTime) -> SigningParams<'a> {
    SigningParams {
        access_key_id: "AKIDROUNDTRIP",
        secret_access_key: "round/trip+secret",
        security_token: token,
        region: "eu-west-1",
        service,
        time,
    }
}

#[test]
fn signer_round_trips_through_the_verifier() {
    let now = at("20260101T120000Z");
    let cases: &[(&str, &str, &str, &str, &[u8])] = &[
        ("sts", "POST", "/", "", b"Action=GetCallerIdentity&Version=2011-06-15"),
        ("kms", "POST", "/", "", br#"{"KeyId":"alias/x"}"#),
        (
            "iam",
            "GET",
            "/",
            "Action=ListUsers&Version=2010-05-08&Marker=a%2Bb%20c",
            b"",
        ),
        (
            "guardduty",
            "GET",
            "/detector/det%3A1%2Fx/findings",
            "maxResults=5&nextToken=a%3D%3D",
            b"",
        ),
        ("guardduty", "POST", "/a/./b/../c//d", "", b"{}"),
        ("s3", "PUT", "/b/a%20b/c%2Bd~e.txt", "", b"object data"),
        ("s3", "GET", "/b/k//./../x", "versionId=3&acl", b""),
        ("s3", "POST", "/b", "delete", b"<Delete/>"),
    ];
    let verifier = Verifier::new(16);
    for (service, method, path, query, body) in cases {
        for token in [None, Some("session/token+=")] {
            let mut map = headers(&[
                ("host", "localhost:9000"),
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-meta-note", "  spaced    out  "),
                ("user-agent", "test"),
            ]);
            let hash = sha256_hex(body);
            sign_request(&params(service, token, now), method, path, query, &mut map, &hash).unwrap();
            let parsed = parse_auth(&map, query).unwrap();
            assert_eq!(parsed.security_token.as_deref(), token);
            verifier
                .verify(
                    &parsed,
                    b"round/trip+secret",
                    &request(method, path, query, &map),
                    Payload::Bytes(body),
                    now,
                )
                .unwrap_or_else(|error| panic!("{service} {method} {path}: {error:?}"));
            // Presigned form of the same request.
            let url = presign_url(&params(service, token, now), method, path, query, "localhost:9000", 300).unwrap();
            let (url_path, url_query) = url.split_once('?').unwrap();
            let host_only = headers(&[("host", "localhost:9000")]);
            let parsed = parse_auth(&host_only, url_query).unwrap();
            assert_eq!(parsed.kind, AuthKind::Presigned);
            assert_eq!(parsed.expires_in, Some(300));
            verifier
                .verify(
                    &parsed,
                    b"round/trip+secret",
                    &request(method, url_path, url_query, &host_only),
                    Payload::Bytes(b""),
                    now,
                )
                .unwrap_or_else(|error| panic!("presigned {service} {path}: {error:?}"));
        }
    }
    // One cached key per service scope: the session token and the auth form do not change the key.
    assert_eq!(verifier.cache().len(), 5);
}

/// Signs a streaming S3 PUT and returns its headers and decoder.
fn streaming_put(mode: ChunkedMode, decoded_length: usize, trailer: Option<&str>) -> (HeaderMap, ChunkedDecoder) {
    let now = at("20260101T120000Z");
    let mut map = headers(&[
        ("host", "localhost:9000"),
        ("content-encoding", "aws-chunked"),
        ("x-amz-content-sha256", mode.content_sha256()),
        ("x-amz-decoded-content-length", &decoded_length.to_string()),
    ]);
    if let Some(trailer) = trailer {
        map.insert("x-amz-trailer", HeaderValue::from_str(trailer).unwrap());
    }
    sign_request(
        &params("s3", None, now),
        "PUT",
        "/b/k",
        "",
        &mut map,
        mode.content_sha256(),
    )
    .unwrap();
    let parsed = parse_auth(&map, "").unwrap();
    let verified = verify(
        &parsed,
        b"round/trip+secret",
        &request("PUT", "/b/k", "", &map),
        Payload::Deferred,
        now,
    )
    .unwrap();
    assert_eq!(verified.payload, PayloadCheck::Chunked(mode));
    let decoder = ChunkedDecoder::for_request(&verified, &map).unwrap().unwrap();
    (map, decoder)
}

fn seed_of(map: &HeaderMap) -> String {
    let auth = map.get("authorization").unwrap().to_str().unwrap();
    auth.rsplit_once("Signature=").unwrap().1.to_owned()
}

#[test]
fn signed_chunks_and_signed_trailer_round_trip() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let key = params("s3", None, at("20260101T120000Z")).signing_key();
    let scope = "20260101/eu-west-1/s3/aws4_request";
    let crc = checksum_base64(ChecksumAlgorithm::Crc32c, &data);
    for (mode, trailers) in [
        (ChunkedMode::Signed, vec![]),
        (
            ChunkedMode::SignedTrailer,
            vec![("x-amz-checksum-crc32c", crc.as_str())],
        ),
    ] {
        let trailer_header = (!trailers.is_empty()).then_some("x-amz-checksum-crc32c");
        let (map, mut decoder) = streaming_put(mode, data.len(), trailer_header);
        let body = encode_chunked_signed(&key, "20260101T120000Z", scope, &seed_of(&map), &data, 8192, &trailers);
        let mut decoded = Vec::new();
        for part in body.chunks(1000) {
            decoder.feed(part, |bytes| decoded.extend_from_slice(bytes)).unwrap();
        }
        let summary = decoder.finish().unwrap();
        assert_eq!(decoded, data);
        if mode == ChunkedMode::SignedTrailer {
            assert_eq!(summary.checksum(), Some((ChecksumAlgorithm::Crc32c, crc.as_str())));
            // A changed trailer value breaks the trailer signature.
            let (map, mut decoder) = streaming_put(mode, data.len(), trailer_header);
            let tampered =
                encode_chunked_signed(&key, "20260101T120000Z", scope, &seed_of(&map), &data, 8192, &trailers);
            let text = String::from_utf8_lossy(&tampered).replace(&crc, "AAAAAA==");
            let error = decoder.feed(text.as_bytes(), |_| {}).unwrap_err();
            assert!(matches!(error, ChunkError::SignatureMismatch { .. }), "{error:?}");
        }
    }
}

#[test]
fn upper_case_hex_sizes_are_accepted() {
    let body = b"B\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
    let mut decoder = ChunkedDecoder::new(ChunkedMode::UnsignedTrailer, None, Some(11), &[]).unwrap();
    let mut decoded = Vec::new();
    decoder.feed(body, |data| decoded.extend_from_slice(data)).unwrap();
    assert_eq!(decoder.finish().unwrap().decoded_length, 11);
    assert_eq!(decoded, b"hello world");
}

// ---------------------------------------------------------------- error paths

#[test]
fn clock_skew_in_both_directions() {
    let map = vector1_headers(VECTOR1_SIGNATURE);
    let query = "Action=ListUsers&Version=2010-05-08";
    let late = check("GET", "/", query, &map, SECRET_IAM, b"", at("20150830T125200Z")).unwrap_err();
    assert_eq!(
        late.message(ProtocolFamily::Query),
        "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T125200Z - 15 min.)"
    );
    assert_eq!(
        late.code_and_status(ProtocolFamily::Query),
        ("SignatureDoesNotMatch", 403)
    );
    assert_eq!(
        late.code_and_status(ProtocolFamily::Json),
        ("InvalidSignatureException", 400)
    );
    assert_eq!(late.code_and_status(ProtocolFamily::S3), ("RequestTimeTooSkewed", 403));
    let early = check("GET", "/", query, &map, SECRET_IAM, b"", at("20150830T122000Z")).unwrap_err();
    assert_eq!(
        early.message(ProtocolFamily::Json),
        "Signature not yet current: 20150830T123600Z is still later than 20150830T123500Z (20150830T122000Z + 15 min.)"
    );
    // Exactly 15 minutes either way is still accepted.
    check("GET", "/", query, &map, SECRET_IAM, b"", at("20150830T125100Z")).unwrap();
    check("GET", "/", query, &map, SECRET_IAM, b"", at("20150830T122100Z")).unwrap();
}

#[test]
fn wrong_secret_reports_the_canonical_request() {
    let map = vector1_headers(VECTOR1_SIGNATURE);
    let query = "Version=2010-05-08&Action=ListUsers";
    let error = check("GET", "/", query, &map, "not-the-secret", b"", at("20150830T123600Z")).unwrap_err();
    let AuthError::SignatureDoesNotMatch {
        canonical_request,
        string_to_sign,
        access_key_id,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(access_key_id, "AKIDEXAMPLE");
    assert!(canonical_request.starts_with("GET\n/\nAction=ListUsers&Version=2010-05-08\ncontent-type:"));
    assert!(string_to_sign.starts_with("AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n"));
    assert!(string_to_sign.ends_with("f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"));
    assert_eq!(
        error.code_and_status(ProtocolFamily::RestJson),
        ("InvalidSignatureException", 403)
    );
}

#[test]
fn malformed_authorization_headers() {
    let good = "Credential=AKID/20150830/us-east-1/iam/aws4_request, SignedHeaders=host;x-amz-date, Signature=";
    let sig = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
    let cases: Vec<(String, &str)> = vec![
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam/aws4_request, SignedHeaders=host;x-amz-date"
                .to_owned(),
            "requires 'Signature'",
        ),
        ("AWS4-HMAC-SHA256 ".to_owned(), "requires 'Credential'"),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam, SignedHeaders=host;x-amz-date, Signature={sig}"
            ),
            "valid region",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam/aws5_request, SignedHeaders=host;x-amz-date, Signature={sig}"
            ),
            "terminator",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20150831/us-east-1/iam/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}"
            ),
            "Date in Credential scope",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam/aws4_request, SignedHeaders=x-amz-date, Signature={sig}"
            ),
            "'Host'",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam/aws4_request, SignedHeaders=host, Signature={sig}"
            ),
            "'x-amz-date' must be",
        ),
        (format!("AWS4-HMAC-SHA256 {good}{sig}, Bogus"), "missing equal-sign"),
        (
            format!("AWS4-ECDSA-P256-SHA256 {good}{sig}"),
            "Unsupported AWS 'algorithm'",
        ),
        ("AWS AKIDONLY".to_owned(), "Expected AwsAccessKeyId:signature"),
    ];
    for (authorization, expected) in cases {
        let map = headers(&[
            ("host", "h"),
            ("x-amz-date", "20150830T123600Z"),
            ("authorization", &authorization),
        ]);
        let error = parse_auth(&map, "").unwrap_err();
        let AuthError::IncompleteSignature { message } = &error else {
            panic!("{authorization}: {error:?}")
        };
        assert!(message.contains(expected), "{authorization}: {message}");
        assert_eq!(
            error.code_and_status(ProtocolFamily::Query),
            ("IncompleteSignature", 400)
        );
        assert_eq!(
            error.code_and_status(ProtocolFamily::S3),
            ("AuthorizationHeaderMalformed", 400)
        );
    }
    // No date header at all.
    let map = headers(&[
        ("host", "h"),
        ("authorization", &format!("AWS4-HMAC-SHA256 {good}{sig}")),
    ]);
    assert!(
        matches!(parse_auth(&map, ""), Err(AuthError::IncompleteSignature { message }) if message.contains("'X-Amz-Date' or a 'Date'"))
    );
    // Header and query credentials together.
    let map = headers(&[
        ("host", "h"),
        ("x-amz-date", "20150830T123600Z"),
        ("authorization", &format!("AWS4-HMAC-SHA256 {good}{sig}")),
    ]);
    assert!(matches!(
        parse_auth(&map, "X-Amz-Algorithm=AWS4-HMAC-SHA256"),
        Err(AuthError::IncompleteSignature { .. })
    ));
}

#[test]
fn date_header_fallback_is_used() {
    let mut map = headers(&[("host", "h"), ("date", "Sun, 30 Aug 2015 12:36:00 GMT")]);
    let p = params("iam", None, at("20150830T123600Z"));
    sign_request(&p, "GET", "/", "", &mut map, EMPTY_SHA256_HEX).unwrap();
    // Rewrite the signature without x-amz-date: sign a request whose only date is the Date header.
    map.remove("x-amz-date");
    let key = p.signing_key();
    let (creq, _) = canonical_request(&CanonicalInput {
        method: "GET",
        raw_path: "/",
        raw_query: "",
        headers: &map,
        signed_headers: "date;host",
        payload_hash: EMPTY_SHA256_HEX,
        uri_mode: UriMode::Normalized,
        exclude_signature: false,
    });
    let sts = format!(
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/eu-west-1/iam/aws4_request\n{}",
        sha256_hex(&creq)
    );
    let signature = hex::encode(key.sign_parts(&[sts.as_bytes()]));
    map.insert(
        "authorization",
        HeaderValue::from_str(&format!(
            "AWS4-HMAC-SHA256 Credential=AKIDROUNDTRIP/20150830/eu-west-1/iam/aws4_request,SignedHeaders=date;host,Signature={signature}"
        ))
        .unwrap(),
    );
    let parsed = parse_auth(&map, "").unwrap();
    assert_eq!(parsed.amz_date, "20150830T123600Z");
    check("GET", "/", "", &map, "round/trip+secret", b"", at("20150830T123600Z")).unwrap();
}

#[test]
fn bad_signature_hex_and_missing_signed_header() {
    let query = "Action=ListUsers&Version=2010-05-08";
    for signature in [
        "zz",
        "5D672D79C15B13162D9279B0855CFBA6789A8EDB4C82C400E06B5924A6F2B5D",
        "not hex at all",
    ] {
        let map = vector1_headers(signature);
        let error = check("GET", "/", query, &map, SECRET_IAM, b"", at("20150830T123600Z")).unwrap_err();
        assert!(
            matches!(error, AuthError::SignatureDoesNotMatch { .. }),
            "{signature}: {error:?}"
        );
    }
    // A signed header absent from the request cannot match.
    let mut map = vector1_headers(VECTOR1_SIGNATURE);
    map.remove("content-type");
    let error = check("GET", "/", query, &map, SECRET_IAM, b"", at("20150830T123600Z")).unwrap_err();
    assert!(matches!(error, AuthError::SignatureDoesNotMatch { .. }));
}

#[test]
fn presigned_expiry_errors() {
    let map = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
    // Past X-Amz-Date + X-Amz-Expires (86400 s).
    let error = check(
        "GET",
        "/test.txt",
        VECTOR3_QUERY,
        &map,
        SECRET_S3,
        b"",
        at("20130525T000001Z"),
    )
    .unwrap_err();
    assert_eq!(
        error,
        AuthError::RequestExpired {
            expires: "2013-05-25T00:00:00Z".to_owned(),
            server_time: "2013-05-25T00:00:01Z".to_owned(),
            x_amz_expires: Some(86400),
        }
    );
    assert_eq!(error.code_and_status(ProtocolFamily::S3), ("AccessDenied", 403));
    assert_eq!(error.message(ProtocolFamily::S3), "Request has expired");
    // Dated more than 15 minutes in the future.
    let error = check(
        "GET",
        "/test.txt",
        VECTOR3_QUERY,
        &map,
        SECRET_S3,
        b"",
        at("20130523T234000Z"),
    )
    .unwrap_err();
    assert!(matches!(error, AuthError::SignatureExpired { .. }));
    // Longer than a week.
    let too_long = VECTOR3_QUERY.replace("X-Amz-Expires=86400", "X-Amz-Expires=604801");
    let error = parse_auth(&map, &too_long).unwrap_err();
    assert_eq!(
        error.code_and_status(ProtocolFamily::S3),
        ("AuthorizationQueryParametersError", 400)
    );
    assert_eq!(
        error.message(ProtocolFamily::S3),
        "X-Amz-Expires must be less than a week (in seconds) that is 604800"
    );
    // Missing parameter.
    let missing = VECTOR3_QUERY.replace("&X-Amz-SignedHeaders=host", "");
    assert!(matches!(
        parse_auth(&map, &missing),
        Err(AuthError::InvalidQueryParameters { .. })
    ));
}

#[test]
fn s3_payload_hash_errors() {
    let now = at("20260101T120000Z");
    // Header auth for S3 without x-amz-content-sha256.
    let mut map = headers(&[("host", "h")]);
    sign_request(&params("s3", None, now), "GET", "/b/k", "", &mut map, EMPTY_SHA256_HEX).unwrap();
    let declared_map = map.clone();
    map.remove("x-amz-content-sha256");
    let parsed = parse_auth(&map, "").unwrap();
    let error = verify(
        &parsed,
        b"round/trip+secret",
        &request("GET", "/b/k", "", &map),
        Payload::Bytes(b""),
        now,
    )
    .unwrap_err();
    assert_eq!(error, AuthError::MissingContentSha256);
    assert_eq!(error.code_and_status(ProtocolFamily::S3), ("InvalidRequest", 400));
    // A body that does not hash to the declared value.
    let parsed = parse_auth(&declared_map, "").unwrap();
    let parts = request("GET", "/b/k", "", &declared_map);
    let error = verify(&parsed, b"round/trip+secret", &parts, Payload::Bytes(b"surprise"), now).unwrap_err();
    assert!(matches!(error, AuthError::ContentSha256Mismatch { .. }));
    assert_eq!(
        error.code_and_status(ProtocolFamily::S3),
        ("XAmzContentSHA256Mismatch", 400)
    );
    // A deferred body leaves the comparison to the caller.
    let verified = verify(&parsed, b"round/trip+secret", &parts, Payload::Deferred, now).unwrap();
    assert_eq!(
        verified.payload,
        PayloadCheck::Sha256Pending(EMPTY_SHA256_HEX.to_owned())
    );
}

#[test]
fn anonymous_and_region_checks() {
    let map = headers(&[("host", "h")]);
    let parsed = parse_auth(&map, "Action=ListUsers").unwrap();
    assert_eq!(parsed.kind, AuthKind::Anonymous);
    let error = verify(
        &parsed,
        b"",
        &request("GET", "/", "", &map),
        Payload::Bytes(b""),
        at_unix(0),
    )
    .unwrap_err();
    assert_eq!(
        error.code_and_status(ProtocolFamily::Query),
        ("MissingAuthenticationToken", 403)
    );
    assert_eq!(
        error.code_and_status(ProtocolFamily::Json),
        ("MissingAuthenticationTokenException", 400)
    );
    let parsed = parse_auth(&vector1_headers(VECTOR1_SIGNATURE), "").unwrap();
    parsed.check_region("us-east-1").unwrap();
    let error = parsed.check_region("eu-west-1").unwrap_err();
    assert_eq!(
        error.message(ProtocolFamily::S3),
        "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'"
    );
}

#[test]
fn error_code_table() {
    use ProtocolFamily::{Json, Query, RestJson, S3};
    let cases: &[(AuthError, [(&str, u16); 4])] = &[
        (
            AuthError::InvalidAccessKey,
            [
                ("InvalidClientTokenId", 403),
                ("UnrecognizedClientException", 400),
                ("UnrecognizedClientException", 403),
                ("InvalidAccessKeyId", 403),
            ],
        ),
        (
            AuthError::ExpiredToken,
            [
                ("ExpiredToken", 403),
                ("ExpiredTokenException", 400),
                ("ExpiredTokenException", 403),
                ("ExpiredToken", 400),
            ],
        ),
        (
            AuthError::InvalidToken,
            [
                ("InvalidClientTokenId", 403),
                ("UnrecognizedClientException", 400),
                ("UnrecognizedClientException", 403),
                ("InvalidToken", 400),
            ],
        ),
        (
            AuthError::MissingAuthentication,
            [
                ("MissingAuthenticationToken", 403),
                ("MissingAuthenticationTokenException", 400),
                ("MissingAuthenticationTokenException", 403),
                ("AccessDenied", 403),
            ],
        ),
    ];
    for (error, expected) in cases {
        for (family, want) in [Query, Json, RestJson, S3].into_iter().zip(expected) {
            assert_eq!(error.code_and_status(family), *want, "{error:?} {family:?}");
            assert!(!error.message(family).is_empty());
        }
    }
    assert_eq!(
        AuthError::InvalidAccessKey.message(Query),
        "The security token included in the request is invalid."
    );
    assert_eq!(
        AuthError::InvalidToken.message(S3),
        "The provided token is malformed or otherwise invalid."
    );
    assert_eq!(AuthError::ExpiredToken.message(S3), "The provided token has expired.");
}

#[test]
fn chunk_framing_errors() {
    let cases: &[(&[u8], Option<u64>, ChunkError)] = &[
        (b"xyz\r\n", None, ChunkError::Malformed("invalid chunk size")),
        (b"\r\n", None, ChunkError::Malformed("invalid chunk size")),
        (
            b"11111111111111111\r\n",
            None,
            ChunkError::Malformed("invalid chunk size"),
        ),
        (b"3\nabc", None, ChunkError::Malformed("line not terminated by CRLF")),
        (
            b"3\r\nabcX",
            None,
            ChunkError::Malformed("chunk data not followed by CRLF"),
        ),
        (
            b"3\r\nabc\rX",
            None,
            ChunkError::Malformed("chunk data not followed by CRLF"),
        ),
        (
            b"0\r\nbad trailer\r\n",
            None,
            ChunkError::Malformed("trailer line without ':'"),
        ),
        (
            b"0\r\nx-amz-trailer-signature:00\r\n",
            None,
            ChunkError::Malformed("unexpected x-amz-trailer-signature"),
        ),
        (
            b"0\r\n\r\nmore",
            None,
            ChunkError::Malformed("data after the final chunk"),
        ),
        (
            b"5\r\nabcde\r\n",
            Some(4),
            ChunkError::DecodedLengthMismatch { expected: 4, actual: 5 },
        ),
        (
            b"3\r\nabc\r\n0\r\n",
            Some(4),
            ChunkError::DecodedLengthMismatch { expected: 4, actual: 3 },
        ),
    ];
    for (body, expected_length, expected) in cases {
        let mut decoder = ChunkedDecoder::new(ChunkedMode::UnsignedTrailer, None, *expected_length, &[]).unwrap();
        assert_eq!(
            decoder.feed(body, |_| {}).unwrap_err(),
            *expected,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // An over-long line is refused without buffering it.
    let mut decoder = ChunkedDecoder::new(ChunkedMode::UnsignedTrailer, None, None, &[]).unwrap();
    assert_eq!(
        decoder.feed(&[b'1'; MAX_LINE_LEN + 1], |_| {}).unwrap_err(),
        ChunkError::Malformed("line too long")
    );
    // Truncated bodies fail at finish.
    for body in [
        &b""[..],
        b"3\r\nab",
        b"3\r\nabc\r\n",
        b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n",
    ] {
        let mut decoder = ChunkedDecoder::new(ChunkedMode::UnsignedTrailer, None, None, &[]).unwrap();
        decoder.feed(body, |_| {}).unwrap();
        assert_eq!(decoder.finish().unwrap_err(), ChunkError::Truncated);
    }
    // A declared trailer that never arrives.
    let mut decoder = ChunkedDecoder::new(ChunkedMode::UnsignedTrailer, None, None, &["x-amz-checksum-crc32"]).unwrap();
    assert_eq!(
        decoder.feed(b"0\r\n\r\n", |_| {}).unwrap_err(),
        ChunkError::MissingTrailer("x-amz-checksum-crc32".into())
    );
    // Signed modes need a signature on every chunk, and a signing context.
    assert!(ChunkedDecoder::new(ChunkedMode::Signed, None, None, &[]).is_err());
    let (_, mut decoder) = streaming_put(ChunkedMode::Signed, 3, None);
    assert_eq!(
        decoder.feed(b"3\r\nabc\r\n", |_| {}).unwrap_err(),
        ChunkError::Malformed("missing chunk-signature")
    );
    let (_, mut decoder) = streaming_put(ChunkedMode::Signed, 3, None);
    assert_eq!(
        decoder.feed(b"3;chunk-signature=abc\r\n", |_| {}).unwrap_err(),
        ChunkError::Malformed("invalid chunk-signature")
    );
}

#[test]
fn checksums_match_known_values() {
    let cases = [
        (ChecksumAlgorithm::Crc32, "DUoRhQ=="),
        (ChecksumAlgorithm::Crc32c, "yZRlqg=="),
        (ChecksumAlgorithm::Sha1, "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
        (
            ChecksumAlgorithm::Sha256,
            "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
        ),
    ];
    for (algorithm, expected) in cases {
        assert_eq!(checksum_base64(algorithm, b"hello world"), expected, "{algorithm:?}");
        // Incremental updates give the same value.
        let mut hasher = algorithm.hasher();
        hasher.update(b"hello ");
        hasher.update(b"world");
        assert_eq!(hasher.finish_base64(), expected);
        assert_eq!(
            ChecksumAlgorithm::from_header_name(algorithm.header_name()),
            Some(algorithm)
        );
        assert_eq!(
            ChecksumAlgorithm::from_name(&algorithm.name().to_lowercase()),
            Some(algorithm)
        );
    }
    // CRC-64/NVME check value of "123456789" is 0xAE8B14860A799888.
    let crc64 = ChecksumAlgorithm::Crc64Nvme.hasher();
    let mut crc64 = crc64;
    crc64.update(b"123456789");
    assert_eq!(crc64.finish(), 0xAE8B_1486_0A79_9888u64.to_be_bytes());
}

// ---------------------------------------------------------------- properties

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn parser_and_verifier_never_panic(
            authorization in "(AWS4-HMAC-SHA256 |AWS |)[ -~]{0,200}",
            date in "[ -~]{0,24}",
            query in "[ -~]{0,120}",
            path in "/[ -~]{0,40}",
            body in proptest::collection::vec(any::<u8>(), 0..64),
            now in 0i64..4_000_000_000,
        ) {
            let mut map = HeaderMap::new();
            map.insert("host", HeaderValue::from_static("h"));
            if let Ok(value) = HeaderValue::from_str(&authorization) {
                map.insert("authorization", value);
            }
            if let Ok(value) = HeaderValue::from_str(&date) {
                map.insert("x-amz-date", value.clone());
                map.insert("date", value);
            }
            if let Ok(parsed) = parse_auth(&map, &query) {
                let now = at_unix(now);
                let _ = parsed.check_time(now);
                let _ = verify(&parsed, b"secret", &request("GET", &path, &query, &map), Payload::Bytes(&body), now);
            }
        }

        #[test]
        fn chunk_decoder_never_panics(
            body in proptest::collection::vec(any::<u8>(), 0..400),
            split in 1usize..50,
            mode in 0u8..3,
            length in proptest::option::of(0u64..300),
        ) {
            let mode = [ChunkedMode::UnsignedTrailer, ChunkedMode::Signed, ChunkedMode::SignedTrailer][usize::from(mode)];
            let context = ChunkSigningContext {
                key: SigningKey::from_bytes(b"k"),
                amz_date: "20260101T000000Z".into(),
                scope: "20260101/r/s3/aws4_request".into(),
                seed_signature: [7; 32],
            };
            let mut decoder = ChunkedDecoder::new(mode, Some(context), length, &[]).unwrap();
            for part in body.chunks(split) {
                if decoder.feed(part, |_| {}).is_err() {
                    break;
                }
            }
            let _ = decoder.finish();
        }

        #[test]
        fn chunked_data_survives_any_split(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            chunk_size in 1usize..700,
            split in 1usize..300,
        ) {
            let crc = checksum_base64(ChecksumAlgorithm::Crc32, &data);
            let body = encode_chunked_unsigned(&data, chunk_size, &[("x-amz-checksum-crc32", &crc)]);
            let mut decoder = ChunkedDecoder::new(
                ChunkedMode::UnsignedTrailer, None, Some(data.len() as u64), &["x-amz-checksum-crc32"]).unwrap();
            let mut decoded = Vec::new();
            for part in body.chunks(split) {
                decoder.feed(part, |bytes| decoded.extend_from_slice(bytes)).unwrap();
            }
            let summary = decoder.finish().unwrap();
            prop_assert_eq!(&decoded, &data);
            prop_assert_eq!(summary.checksum(), Some((ChecksumAlgorithm::Crc32, crc.as_str())));
        }
    }
}
