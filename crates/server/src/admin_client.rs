//! A small SigV4-signing HTTP/1.1 client for the CLI's calls to a running server's admin API.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// Long-term credentials to sign with.
pub struct Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

/// POSTs `body` as JSON to `endpoint` + `path`, signed for the `sts` scope (the admin API accepts
/// any service scope); returns the JSON answer of a 2xx reply.
///
/// # Errors
/// The endpoint is not `http://`, cannot be reached, or answers an error.
pub async fn post_signed_json(
    endpoint: &str,
    path: &str,
    body: &serde_json::Value,
    credentials: &Credentials,
) -> anyhow::Result<serde_json::Value> {
    let authority = endpoint
        .strip_prefix("http://")
        .context("the admin client supports http:// endpoints only")?
        .trim_end_matches('/')
        .to_owned();
    let body = body.to_string().into_bytes();
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::HOST, http::HeaderValue::from_str(&authority)?);
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let params = citadel_sigv4::SigningParams {
        access_key_id: &credentials.access_key_id,
        secret_access_key: &credentials.secret_access_key,
        security_token: None,
        region: "us-east-1",
        service: "sts",
        time: time::OffsetDateTime::now_utc(),
    };
    citadel_sigv4::sign_request(
        &params,
        "POST",
        path,
        "",
        &mut headers,
        &citadel_sigv4::sha256_hex(&body),
    )
    .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = http::Request::post(path).body(Full::new(Bytes::from(body)))?;
    *request.headers_mut() = headers;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        bail!("the server answered {status}: {value}");
    }
    Ok(value)
}
