//! `citadel s3 cp`: copies files to and from S3 with client-side encryption in the Amazon S3
//! Encryption Client v2 format ([`citadel_s3::cse`]).
//!
//! `citadel s3 cp FILE s3://bucket/key --cse-kms KEY_ID` asks KMS for a data key under the
//! encryption context `{"aws:x-amz-cek-alg": "AES/GCM/NoPadding"}`, encrypts the file with it and
//! stores the ciphertext with the v2 metadata; `--cse-key FILE` wraps a fresh key under a local
//! 256-bit key instead.
//! `citadel s3 cp s3://bucket/key FILE` reads the metadata and decrypts: `kms+context` objects through
//! KMS Decrypt (no key id needed), `AES/GCM` objects with `--cse-key`.
//! Objects without the metadata, and uploads without a `--cse-*` flag, are copied as they are.
//!
//! Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`;
//! requests are signed with SigV4 and sent over plain HTTP/1.1, one connection per request, which
//! is all a command-line copy needs.

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use citadel_s3::cse::{self, Envelope};
use citadel_s3::sigv4;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `citadel s3 ...`.
#[derive(Debug, Subcommand)]
pub enum S3Command {
    /// Copies a local file to S3 (encrypting with `--cse-*`) or an S3 object to a local file
    /// (decrypting client-side-encrypted objects).
    Cp(CpArgs),
}

/// `citadel s3 cp` flags.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// The source: a local file or `s3://bucket/key`.
    pub src: String,
    /// The destination: `s3://bucket/key` or a local file.
    pub dst: String,
    /// Encrypt with a KMS data key from this key (id, ARN or alias) (`kms+context`).
    #[arg(long, conflicts_with = "cse_key")]
    pub cse_kms: Option<String>,
    /// Encrypt or decrypt with this local 256-bit key (`AES/GCM`): a file of 32 raw bytes, 64 hex
    /// characters, or base64.
    #[arg(long)]
    pub cse_key: Option<PathBuf>,
    /// Extra encryption context entries for `--cse-kms`, KEY=VALUE (repeatable).
    #[arg(long = "cse-context")]
    pub cse_context: Vec<String>,
    /// The Citadel endpoint (http only).
    #[arg(long, env = "AWS_ENDPOINT_URL", default_value = "http://127.0.0.1:4566")]
    pub endpoint_url: String,
    /// The region to sign for.
    #[arg(long, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
    pub region: String,
}

/// Runs `citadel s3 ...`.
pub async fn run(command: S3Command) -> anyhow::Result<()> {
    match command {
        S3Command::Cp(args) => cp(args).await,
    }
}

async fn cp(args: CpArgs) -> anyhow::Result<()> {
    let client = Client::from_env(&args.endpoint_url, &args.region)?;
    let local_key = args.cse_key.as_deref().map(read_local_key).transpose()?;
    match (parse_s3_url(&args.src), parse_s3_url(&args.dst)) {
        (None, Some((bucket, key))) => {
            let key = if key.is_empty() || key.ends_with('/') {
                let name = Path::new(&args.src)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| anyhow!("{} has no file name", args.src))?;
                format!("{key}{name}")
            } else {
                key
            };
            let plaintext = std::fs::read(&args.src).with_context(|| format!("reading {}", args.src))?;
            let (metadata, body) = if let Some(key_id) = &args.cse_kms {
                let user = parse_context(&args.cse_context)?;
                let context = cse::kms_context(&user)?;
                let (cek, blob) = client.generate_data_key(key_id, &context).await?;
                let (envelope, sealed) = cse::seal_with_kms_key(&cek, blob, context, &plaintext)?;
                (envelope.metadata(), sealed)
            } else if let Some(kek) = &local_key {
                let (envelope, sealed) = cse::seal_with_local_key(kek, &plaintext)?;
                (envelope.metadata(), sealed)
            } else {
                (Vec::new(), plaintext)
            };
            client.put_object(&bucket, &key, &metadata, body).await?;
            println!("upload: {} to s3://{bucket}/{key}", args.src);
            Ok(())
        }
        (Some((bucket, key)), None) => {
            let (headers, body) = client.get_object(&bucket, &key).await?;
            let meta = |name: &str| {
                headers
                    .get(format!("x-amz-meta-{name}"))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let plaintext = if meta(cse::names::KEY_V2).is_some() {
                let envelope = Envelope::from_metadata(meta)?;
                let cek = if envelope.wrap_alg == cse::WRAP_KMS_CONTEXT {
                    client.decrypt_data_key(&envelope).await?
                } else {
                    let kek = local_key
                        .as_ref()
                        .ok_or_else(|| anyhow!("s3://{bucket}/{key} is encrypted with a local key: pass --cse-key"))?;
                    cse::unwrap_local_key(kek, &envelope)?
                };
                cse::open_with_key(&cek, &envelope, &body)?
            } else if args.cse_kms.is_some() || local_key.is_some() {
                bail!("s3://{bucket}/{key} is not client-side encrypted");
            } else {
                body.to_vec()
            };
            let target = if Path::new(&args.dst).is_dir() {
                let name = key.rsplit('/').next().unwrap_or(&key);
                Path::new(&args.dst).join(name)
            } else {
                PathBuf::from(&args.dst)
            };
            std::fs::write(&target, plaintext).with_context(|| format!("writing {}", target.display()))?;
            println!("download: s3://{bucket}/{key} to {}", target.display());
            Ok(())
        }
        _ => bail!("one of SRC and DST must be s3://bucket/key and the other a local path"),
    }
}

/// `s3://bucket/key` as (bucket, key).
fn parse_s3_url(text: &str) -> Option<(String, String)> {
    let rest = text.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    Some((bucket.to_string(), key.to_string()))
}

fn parse_context(entries: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    entries
        .iter()
        .map(|entry| {
            entry
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("--cse-context takes KEY=VALUE, not {entry}"))
        })
        .collect()
}

/// Reads a 256-bit key: 32 raw bytes, 64 hex characters, or base64 of 32 bytes.
fn read_local_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    cse::parse_local_key(&bytes).ok_or_else(|| anyhow!("{} is not a 256-bit key (raw, hex or base64)", path.display()))
}

/// Characters percent-encoded in an S3 object path: everything but unreserved characters and `/`.
const PATH_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// A minimal SigV4 client for S3 and KMS.
struct Client {
    authority: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl Client {
    fn from_env(endpoint: &str, region: &str) -> anyhow::Result<Self> {
        let authority = endpoint
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("only http:// endpoints are supported, not {endpoint}"))?
            .trim_end_matches('/')
            .to_string();
        Ok(Self {
            authority,
            region: region.to_string(),
            access_key_id: std::env::var("AWS_ACCESS_KEY_ID").context("AWS_ACCESS_KEY_ID is not set")?,
            secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").context("AWS_SECRET_ACCESS_KEY is not set")?,
            session_token: std::env::var("AWS_SESSION_TOKEN").ok().filter(|t| !t.is_empty()),
        })
    }

    /// Sends one signed request; returns the status, headers and body.
    async fn send(
        &self,
        service: &str,
        method: &str,
        path: &str,
        mut headers: http::HeaderMap,
        body: Vec<u8>,
    ) -> anyhow::Result<(http::StatusCode, http::HeaderMap, Bytes)> {
        headers.insert(http::header::HOST, http::HeaderValue::from_str(&self.authority)?);
        let params = sigv4::SigningParams {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            security_token: self.session_token.as_deref(),
            region: &self.region,
            service,
            time: time::OffsetDateTime::now_utc(),
        };
        sigv4::sign_request(&params, method, path, "", &mut headers, &sigv4::sha256_hex(&body))
            .map_err(|e| anyhow!("signing: {e}"))?;
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("connecting to {}", self.authority))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::from(body)))?;
        *request.headers_mut() = headers;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, headers, body))
    }

    fn object_path(bucket: &str, key: &str) -> String {
        format!("/{bucket}/{}", percent_encoding::utf8_percent_encode(key, PATH_ENCODE))
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        metadata: &[(&str, String)],
        body: Vec<u8>,
    ) -> anyhow::Result<()> {
        let mut headers = http::HeaderMap::new();
        for (name, value) in metadata {
            headers.insert(
                http::HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes())?,
                http::HeaderValue::from_str(value)?,
            );
        }
        headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(body.len()));
        let (status, _, answer) = self
            .send("s3", "PUT", &Self::object_path(bucket, key), headers, body)
            .await?;
        if !status.is_success() {
            bail!("PutObject s3://{bucket}/{key} failed: {}", s3_error(status, &answer));
        }
        Ok(())
    }

    async fn get_object(&self, bucket: &str, key: &str) -> anyhow::Result<(http::HeaderMap, Bytes)> {
        let (status, headers, body) = self
            .send(
                "s3",
                "GET",
                &Self::object_path(bucket, key),
                http::HeaderMap::new(),
                Vec::new(),
            )
            .await?;
        if !status.is_success() {
            bail!("GetObject s3://{bucket}/{key} failed: {}", s3_error(status, &body));
        }
        Ok((headers, body))
    }

    async fn kms(&self, operation: &str, input: &Value) -> anyhow::Result<Value> {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        headers.insert(
            "x-amz-target",
            http::HeaderValue::from_str(&format!("TrentService.{operation}"))?,
        );
        let (status, _, body) = self
            .send("kms", "POST", "/", headers, input.to_string().into_bytes())
            .await?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let code = value.get("__type").and_then(Value::as_str).unwrap_or("");
            let message = value
                .get("message")
                .or_else(|| value.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or("");
            bail!("KMS {operation} failed ({status}): {code}: {message}");
        }
        Ok(value)
    }

    /// A fresh data key (plaintext, ciphertext blob) bound to `context`.
    async fn generate_data_key(
        &self,
        key_id: &str,
        context: &BTreeMap<String, String>,
    ) -> anyhow::Result<([u8; 32], Vec<u8>)> {
        let answer = self
            .kms(
                "GenerateDataKey",
                &json!({"KeyId": key_id, "KeySpec": "AES_256", "EncryptionContext": context}),
            )
            .await?;
        let plaintext = blob(&answer, "Plaintext")?;
        let cek = <[u8; 32]>::try_from(plaintext.as_slice())
            .map_err(|_| anyhow!("KMS returned a data key that is not 256 bits"))?;
        Ok((cek, blob(&answer, "CiphertextBlob")?))
    }

    /// The CEK of a `kms+context` envelope, from KMS Decrypt with the recorded context.
    async fn decrypt_data_key(&self, envelope: &Envelope) -> anyhow::Result<citadel_s3::crypto::Key256> {
        let answer = self
            .kms(
                "Decrypt",
                &json!({"CiphertextBlob": cse::encode_base64(&envelope.wrapped_key), "EncryptionContext": envelope.matdesc}),
            )
            .await?;
        let plaintext = blob(&answer, "Plaintext")?;
        let cek = <[u8; 32]>::try_from(plaintext.as_slice())
            .map_err(|_| anyhow!("KMS returned a key that is not 256 bits"))?;
        Ok(citadel_s3::crypto::Key256::new(cek))
    }
}

fn blob(answer: &Value, member: &str) -> anyhow::Result<Vec<u8>> {
    let text = answer
        .get(member)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("KMS answer lacks {member}"))?;
    cse::decode_base64(text).ok_or_else(|| anyhow!("KMS answer's {member} is not base64"))
}

fn s3_error(status: http::StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let element = |name: &str| {
        text.split(&format!("<{name}>"))
            .nth(1)
            .and_then(|rest| rest.split(&format!("</{name}>")).next())
            .unwrap_or("")
            .to_string()
    };
    format!("{status} {}: {}", element("Code"), element("Message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_split_into_bucket_and_key() {
        assert_eq!(parse_s3_url("s3://b/a/b.txt"), Some(("b".into(), "a/b.txt".into())));
        assert_eq!(parse_s3_url("s3://b"), Some(("b".into(), String::new())));
        assert_eq!(parse_s3_url("/tmp/x"), None);
    }
}
