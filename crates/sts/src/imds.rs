//! Workload credentials the way EC2's instance metadata service hands them out (IMDSv2).
//!
//! `citadel serve --imds-listen ADDR --imds-role ROLE` opens a second listener that answers the
//! three requests the AWS SDKs' instance-profile credential provider makes:
//!
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (1 to 21600): a session
//!   token for the following requests;
//! - `GET /latest/meta-data/iam/security-credentials/`: the role name;
//! - `GET /latest/meta-data/iam/security-credentials/<name>`: `Code`, `LastUpdated`, `Type`,
//!   `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`.
//!
//! Only IMDSv2 is served: a `GET` without a valid `X-aws-ec2-metadata-token` is `401`, as on an
//! instance that requires tokens. Metadata tokens are stateless: the expiry and an HMAC-SHA256 of it
//! under a key drawn when the listener starts, so a restart invalidates them, as a reboot does.
//!
//! The credentials are an `AssumeRole` of the role by the service principal `ec2.amazonaws.com`:
//! the role's trust policy must allow that principal `sts:AssumeRole`, decided by the policy engine.
//! A session is reused until five minutes before it expires, then a new one is minted.
//!
//! The HTTP side is a deliberately small HTTP/1.1 exchange over a TCP stream (one request per
//! connection, answered with `Connection: close`), so that this crate needs no HTTP server
//! dependency; [`Imds::handle`] is the protocol-free core that tests call directly.

use crate::{RoleInfo, Sts, iso8601_seconds, role_session};
use base64::Engine;
use citadel_core::clock::Clock;
use citadel_policy as policy;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The service principal that assumes the role.
pub const EC2_SERVICE: &str = "ec2.amazonaws.com";
/// The role session name (the instance id on EC2).
pub const INSTANCE_ID: &str = "i-0c17ade10000000001";
/// Lifetime of instance credentials (EC2 issues six-hour sessions).
const SESSION_SECONDS: i64 = 6 * 3600;
/// A cached session is replaced this long before it expires.
const REFRESH_MARGIN: i64 = 300;
/// Longest metadata token lifetime.
const MAX_TOKEN_TTL: i64 = 21_600;
/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Time allowed for reading one request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials/";

/// An answer: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsResponse {
    /// HTTP status.
    pub status: u16,
    /// The body (text or JSON).
    pub body: String,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

impl ImdsResponse {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }
}

/// The metadata service for one role.
pub struct Imds {
    sts: Arc<Sts>,
    role_arn: String,
    clock: Arc<dyn Clock>,
    token_key: aws_lc_rs::hmac::Key,
    cached: Mutex<Option<(i64, Value)>>,
}

impl std::fmt::Debug for Imds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imds")
            .field("role_arn", &self.role_arn)
            .finish_non_exhaustive()
    }
}

impl Imds {
    /// The service for `role` (a role ARN, or a role name in `default_account`).
    pub fn new(sts: Arc<Sts>, role: &str, default_account: &str, clock: Arc<dyn Clock>) -> Self {
        let role_arn = if role.starts_with("arn:") {
            role.to_string()
        } else {
            format!("arn:aws:iam::{default_account}:role/{role}")
        };
        let key_bytes = sts.ids.bytes::<32>();
        Self {
            sts,
            role_arn,
            clock,
            token_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key_bytes),
            cached: Mutex::new(None),
        }
    }

    fn role_name(&self) -> &str {
        self.role_arn.rsplit('/').next().unwrap_or_default()
    }

    fn issue_token(&self, expires: i64) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.token_key, &expires.to_be_bytes());
        let mut raw = expires.to_be_bytes().to_vec();
        raw.extend_from_slice(tag.as_ref());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    fn token_valid(&self, token: &str, now: i64) -> bool {
        let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim()) else {
            return false;
        };
        let Some((expires, tag)) = raw.split_first_chunk::<8>() else {
            return false;
        };
        aws_lc_rs::hmac::verify(&self.token_key, expires, tag).is_ok() && now < i64::from_be_bytes(*expires)
    }

    /// Answers one request; `headers` names are matched case-insensitively.
    pub async fn handle(&self, method: &str, path: &str, headers: &[(String, String)]) -> ImdsResponse {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim())
        };
        let now = self.clock.now().unix_timestamp();
        let path = path.split('?').next().unwrap_or_default();
        if path == "/latest/api/token" {
            if method != "PUT" {
                return ImdsResponse::text(405, "");
            }
            if header("X-Forwarded-For").is_some() {
                return ImdsResponse::text(403, "");
            }
            let ttl = header("X-aws-ec2-metadata-token-ttl-seconds").and_then(|v| v.parse::<i64>().ok());
            let Some(ttl) = ttl.filter(|t| (1..=MAX_TOKEN_TTL).contains(t)) else {
                return ImdsResponse::text(400, "");
            };
            let mut response = ImdsResponse::text(200, self.issue_token(now + ttl));
            response
                .headers
                .push(("X-aws-ec2-metadata-token-ttl-seconds", ttl.to_string()));
            return response;
        }
        if method != "GET" && method != "HEAD" {
            return ImdsResponse::text(405, "");
        }
        if !header("X-aws-ec2-metadata-token").is_some_and(|t| self.token_valid(t, now)) {
            return ImdsResponse::text(401, "");
        }
        match path {
            "/latest/meta-data/iam/security-credentials" | CREDENTIALS_PATH => {
                ImdsResponse::text(200, self.role_name())
            }
            _ => match path.strip_prefix(CREDENTIALS_PATH) {
                Some(name) if name.trim_end_matches('/') == self.role_name() => match self.credentials(now).await {
                    Ok(document) => ImdsResponse::text(200, document.to_string()),
                    Err(message) => ImdsResponse::text(
                        200,
                        json!({"Code": "AssumeRoleUnauthorizedAccess", "Message": message,
                            "LastUpdated": iso8601_seconds(now)})
                        .to_string(),
                    ),
                },
                _ => ImdsResponse::text(404, ""),
            },
        }
    }

    /// The credentials document, from the cache while it is fresh.
    async fn credentials(&self, now: i64) -> Result<Value, String> {
        if let Ok(cache) = self.cached.lock()
            && let Some((expires, document)) = cache.as_ref()
            && now < expires - REFRESH_MARGIN
        {
            return Ok(document.clone());
        }
        let role = self
            .sts
            .directory
            .role_by_arn(&self.role_arn)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| format!("Role {} does not exist.", self.role_arn))?;
        if !ec2_may_assume(&role, self.clock.now()) {
            return Err(format!(
                "{EC2_SERVICE} is not authorized to perform: sts:AssumeRole on resource: {}",
                role.arn
            ));
        }
        let expires = now + SESSION_SECONDS;
        let claims = role_session::claims(&role, INSTANCE_ID, now, expires, "AssumeRole");
        let minted = self.sts.mint(claims).map_err(|e| e.message)?;
        let field = |name: &str| minted.get(name).cloned().unwrap_or(Value::Null);
        let document = json!({
            "Code": "Success",
            "LastUpdated": iso8601_seconds(now),
            "Type": "AWS-HMAC",
            "AccessKeyId": field("AccessKeyId"),
            "SecretAccessKey": field("SecretAccessKey"),
            "Token": field("SessionToken"),
            "Expiration": iso8601_seconds(expires),
        });
        if let Ok(mut cache) = self.cached.lock() {
            *cache = Some((expires, document.clone()));
        }
        Ok(document)
    }

    /// Serves HTTP/1.1 on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let imds = self.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(READ_TIMEOUT, imds.exchange(stream)).await;
            });
        }
    }

    async fn exchange(&self, mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let mut raw = Vec::new();
        let mut buffer = [0u8; 1024];
        let head_end = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if raw.len() > MAX_HEAD {
                return stream.write_all(&encode(&ImdsResponse::text(400, ""))).await;
            }
            let n = stream.read(&mut buffer).await?;
            if n == 0 {
                return Ok(());
            }
            raw.extend_from_slice(buffer.get(..n).unwrap_or_default());
        };
        let head = String::from_utf8_lossy(raw.get(..head_end).unwrap_or_default()).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split_whitespace();
        let (method, path) = (
            request_line.next().unwrap_or_default(),
            request_line.next().unwrap_or_default(),
        );
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut response = self.handle(method, path, &headers).await;
        if method == "HEAD" {
            response.body.clear();
        }
        stream.write_all(&encode(&response)).await?;
        stream.shutdown().await
    }
}

fn encode(response: &ImdsResponse) -> Vec<u8> {
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let content_type = if response.body.starts_with('{') {
        "application/json"
    } else {
        "text/plain"
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nServer: EC2ws\r\n",
        response.status,
        response.body.len()
    );
    for (name, value) in &response.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&response.body);
    out.into_bytes()
}

/// Whether the role's trust policy allows `ec2.amazonaws.com` to assume it.
fn ec2_may_assume(role: &RoleInfo, now: time::OffsetDateTime) -> bool {
    let mut context = policy::Context::new();
    context.insert_date("aws:CurrentTime", now);
    context.insert_number("aws:EpochTime", now.unix_timestamp());
    context.insert("aws:PrincipalServiceName", EC2_SERVICE);
    let principal = policy::Principal::new(EC2_SERVICE, "", policy::PrincipalKind::Service { name: EC2_SERVICE });
    role_session::trust_policy_allows(role, principal, &["sts:AssumeRole"], &context)
}
