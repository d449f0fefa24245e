//! The S3 front door: one request in, through s3s, one response out, audited.
//!
//! s3s parses the REST-XML protocol and verifies SigV4/SigV2 signatures (header, presigned
//! query, aws-chunked streaming, POST forms). Citadel plugs its own pipeline pieces into s3s's
//! hooks so that S3 is no exception to the rules every other service follows:
//!
//! 1. [`S3Frontend::handle`] reads the session token itself (s3s's secret-key hook does not see
//!    it) and opens a task-local [`RequestState`] around the s3s call.
//! 2. The auth hook ([`CitadelAuth`]) resolves the access key with the token through
//!    `CredentialResolver` and hands s3s the secret; the resolved principal stays in the state.
//! 3. The access hook ([`CitadelAccess`], in [`crate::access`]) maps the operation to its IAM action
//!    and asks the `Authorizer`, with the bucket policy as resource policy.
//! 4. The handlers ([`crate::handlers`]) commit each metadata change in one batch with the
//!    request's CloudTrail record; every other outcome (reads, denials, errors) is recorded here,
//!    after the response is known.

use crate::access::CitadelAccess;
use crate::crypto::{DataKeyProvider, SseS3Keys};
use crate::engine::Inner;
use crate::handlers::Handlers;
use crate::names::BucketNames;
use crate::registry::S3OperationSpec;
use citadel_core::authz::Authorizer;
use citadel_core::identity::{CredentialError, CredentialResolver};
use citadel_core::{Clock, IdGen, Principal, RequestContext};
use citadel_store::{BlobStore, MasterKey, Store};
use parking_lot::Mutex;
use s3s::auth::{S3Auth, SecretKey};
use s3s::host::{S3Host, VirtualHost};
use s3s::{S3Error, S3ErrorCode, S3Result};
use std::net::SocketAddr;
use std::sync::Arc;
use time::OffsetDateTime;

tokio::task_local! {
    /// The state of the request being served by this task.
    pub(crate) static CURRENT: Arc<RequestState>;
}

/// What the audit record of a request needs, gathered as the request goes.
#[derive(Debug, Default)]
pub(crate) struct AuditFacts {
    /// The operation, once s3s has routed the request.
    pub op: Option<&'static S3OperationSpec>,
    /// The bucket named by the request.
    pub bucket: Option<String>,
    /// The object key named by the request.
    pub key: Option<String>,
    /// The bucket owner, when the bucket exists.
    pub owner: Option<String>,
    /// Whether a record was already committed with the request's state change.
    pub recorded: bool,
    /// Extra request parameters for the record.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Whether the bucket row was read (so `logging` is known).
    pub bucket_loaded: bool,
    /// The bucket's server access logging, when enabled.
    pub logging: Option<crate::meta::BucketLogging>,
}

/// One request's facts, shared by the hooks and handlers through [`CURRENT`].
#[derive(Debug)]
pub(crate) struct RequestState {
    /// `x-amz-request-id`: 16 upper-case hex characters, as AWS makes them.
    pub request_id: String,
    /// `x-amz-id-2`.
    pub host_id: String,
    /// When the request arrived (injected clock).
    pub time: OffsetDateTime,
    /// The peer.
    pub remote: SocketAddr,
    /// Over TLS.
    pub secure: bool,
    /// The User-Agent header.
    pub user_agent: String,
    /// The Host header.
    pub host: String,
    /// The request line as the access log shows it: method, path and query, HTTP version.
    pub request_line: (http::Method, String, http::Version),
    /// The Referer header.
    pub referer: Option<String>,
    /// The request body's declared length (decoded length for aws-chunked bodies).
    pub request_length: Option<u64>,
    /// The session token (header, SigV4 query or SigV2 query form).
    pub session_token: Option<String>,
    /// `s3:authType`: `REST-HEADER`, `REST-QUERY-STRING`, or `POST`.
    pub auth_type: Option<&'static str>,
    /// `s3:signatureversion`: `AWS4-HMAC-SHA256` or `AWS`.
    pub signature_version: Option<&'static str>,
    /// The region from the SigV4 credential scope, if any.
    pub signed_region: Option<String>,
    /// The principal the auth hook resolved.
    pub resolved: Mutex<Option<Arc<Principal>>>,
    /// For calls Citadel makes itself on behalf of an AWS service (CloudTrail delivering log files):
    /// the service principal, which the access hook uses instead of the (absent) signature.
    pub acting_service: Option<Arc<Principal>>,
    /// The principal the access hook decided with (resolved, or anonymous).
    pub principal: Mutex<Option<Arc<Principal>>>,
    /// Audit facts.
    pub audit: Mutex<AuditFacts>,
    /// The current object row the access hook read for its decision (bucket, key, row), so that
    /// a GET or HEAD serves the version it was authorized on without reading and decoding the
    /// row a second time.
    pub object_read: Mutex<Option<ObjectRead>>,
}

/// A current-version object row read during a request: `None` when the key had none.
pub(crate) type ObjectRead = (String, String, Option<(crate::meta::ObjectRecord, Vec<u8>)>);

impl RequestState {
    /// The object row the access hook read for `bucket`/`key`, if it read that one; taken, so
    /// a later read in the same request goes to the store.
    pub fn take_object_read(&self, bucket: &str, key: &str) -> Option<Option<(crate::meta::ObjectRecord, Vec<u8>)>> {
        let mut slot = self.object_read.lock();
        match slot.take() {
            Some((b, k, row)) if b == bucket && k == key => Some(row),
            other => {
                *slot = other;
                None
            }
        }
    }
}

impl RequestState {
    /// The principal of the request (anonymous until authenticated).
    pub fn principal(&self) -> Arc<Principal> {
        self.principal
            .lock()
            .clone()
            .unwrap_or_else(|| Arc::new(Principal::anonymous()))
    }

    /// The request context the authorizer and the audit record read.
    pub fn context(&self, principal: Arc<Principal>, operation: &'static str, region: &str) -> RequestContext {
        RequestContext {
            request_id: self.request_id.clone(),
            principal,
            region: self.signed_region.clone().unwrap_or_else(|| region.to_string()),
            source_ip: self.remote.ip(),
            user_agent: self.user_agent.clone(),
            secure_transport: self.secure,
            time: self.time,
            service: "s3",
            operation,
        }
    }
}

/// The state of the current request; an internal error outside a request scope.
pub(crate) fn current() -> S3Result<Arc<RequestState>> {
    CURRENT
        .try_with(Arc::clone)
        .map_err(|_| S3Error::with_message(S3ErrorCode::InternalError, "no request scope"))
}

/// Everything S3 needs from the rest of Citadel.
pub struct S3Config {
    /// The metadata store.
    pub store: Arc<dyn Store>,
    /// The object body store.
    pub blobs: Arc<dyn BlobStore>,
    /// The master key (S3's key-encryption key is derived from it).
    pub master: Arc<MasterKey>,
    /// Access key resolution.
    pub credentials: Arc<CredentialResolver>,
    /// Policy decisions.
    pub authorizer: Arc<Authorizer>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: IdGen,
    /// The default region (when a request is not SigV4-signed).
    pub region: String,
    /// The default account (for records of anonymous requests without a bucket).
    pub account_id: String,
    /// The base domain for virtual-host addressing (`s3.example.com` serves `bucket.s3.example.com`);
    /// `localhost` is always recognised too.
    pub base_domain: Option<String>,
}

/// The S3 service.
pub struct S3Frontend {
    service: s3s::service::S3Service,
    inner: Arc<Inner>,
}

impl S3Frontend {
    /// Builds the service.
    pub fn new(config: S3Config) -> Self {
        let sse_s3: Arc<dyn DataKeyProvider> = Arc::new(SseS3Keys::new(config.master.derive("s3")));
        let inner = Arc::new(Inner {
            store: config.store,
            blobs: config.blobs,
            credentials: config.credentials,
            authorizer: config.authorizer,
            clock: config.clock,
            ids: config.ids,
            region: config.region,
            account_id: config.account_id,
            sse_s3,
            kms: parking_lot::RwLock::new(None),
            data_events: parking_lot::RwLock::new(None),
            access_logs: Arc::new(crate::access_log::AccessLogBuffer::default()),
            buckets: crate::engine::BucketCache::default(),
        });
        let mut builder = s3s::service::S3ServiceBuilder::new(Handlers { inner: inner.clone() });
        builder.set_auth(CitadelAuth { inner: inner.clone() });
        builder.set_access(CitadelAccess { inner: inner.clone() });
        builder.set_validation(BucketNames);
        let mut domains = vec!["localhost".to_string()];
        if let Some(domain) = config.base_domain.filter(|d| !d.is_empty()) {
            domains.insert(0, domain.to_ascii_lowercase());
        }
        builder.set_host(CitadelHost { domains });
        Self {
            service: builder.build(),
            inner,
        }
    }

    /// Installs the SSE-KMS data key provider (the KMS crate's).
    pub fn set_kms_provider(&self, provider: Arc<dyn DataKeyProvider>) {
        *self.inner.kms.write() = Some(provider);
    }

    /// Installs the check that decides, per account, whether S3 data events are recorded
    /// (the CloudTrail trails'). Without one, every data event is recorded.
    pub fn set_data_event_gate(&self, gate: Arc<dyn crate::audit::DataEventGate>) {
        *self.inner.data_events.write() = Some(gate);
    }

    /// Serves one S3 request.
    pub async fn handle(
        &self,
        req: http::Request<s3s::Body>,
        remote: SocketAddr,
        secure: bool,
    ) -> http::Response<s3s::Body> {
        let (req, state) = prepare(req, remote, secure, self.inner.clock.now(), &self.inner.ids);
        let state = Arc::new(state);
        let result = CURRENT.scope(state.clone(), self.service.call(req)).await;
        let response = match result {
            Ok(response) => response,
            Err(err) => {
                tracing::error!(error = ?err, "s3s failed");
                let mut e = S3Error::with_message(
                    S3ErrorCode::InternalError,
                    "We encountered an internal error. Please try again.",
                );
                e.set_request_id(state.request_id.clone());
                e.to_http_response().unwrap_or_else(|_| {
                    let mut r = http::Response::new(s3s::Body::empty());
                    *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                    r
                })
            }
        };
        let response = crate::post_form::finish(&state, response);
        let response = crate::audit::finish(&self.inner, &state, response).await;
        crate::access_log::record(&self.inner, &state, &response).await;
        response
    }

    /// Serves an unsigned request made inside Citadel by an AWS service principal (for example
    /// `cloudtrail.amazonaws.com` writing log files). It goes through the same access hook, so the
    /// bucket policy must allow the service, and through the same audit path.
    pub async fn handle_as_service(&self, req: http::Request<s3s::Body>, service: &str) -> http::Response<s3s::Body> {
        let remote = SocketAddr::from(([127, 0, 0, 1], 0));
        let (req, mut state) = prepare(req, remote, true, self.inner.clock.now(), &self.inner.ids);
        let principal = Principal {
            account_id: String::new(),
            arn: String::new(),
            principal_id: service.to_string(),
            kind: citadel_core::PrincipalKind::Service {
                name: service.to_string(),
            },
            access_key_id: None,
            tags: Vec::new(),
            session: None,
        };
        state.acting_service = Some(Arc::new(principal));
        let state = Arc::new(state);
        let result = CURRENT.scope(state.clone(), self.service.call(req)).await;
        let response = match result {
            Ok(response) => response,
            Err(err) => {
                tracing::error!(error = ?err, "s3s failed on a service call");
                let mut r = http::Response::new(s3s::Body::empty());
                *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        };
        let response = crate::audit::finish(&self.inner, &state, response).await;
        if service != crate::access_log::LOGGING_SERVICE {
            crate::access_log::record(&self.inner, &state, &response).await;
        }
        response
    }

    /// Sets how often buffered server access log records are delivered (AWS's best effort is
    /// minutes; tests use seconds).
    pub fn set_access_log_interval(&self, interval: std::time::Duration) {
        self.inner.access_logs.set_interval(interval);
    }

    /// Starts the task that delivers server access logs every interval. The task holds the
    /// frontend weakly and ends when it is dropped; call [`Self::flush_access_logs`] at shutdown.
    pub fn spawn_access_log_delivery(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let frontend = Arc::downgrade(self);
        let logs = self.inner.access_logs.clone();
        tokio::spawn(async move {
            loop {
                let changed = logs.changed.notified();
                tokio::select! {
                    () = tokio::time::sleep(logs.interval()) => {}
                    () = changed => continue,
                }
                let Some(frontend) = frontend.upgrade() else { return };
                frontend.flush_access_logs().await;
            }
        })
    }

    /// Delivers every buffered server access log record now: one object per source bucket and
    /// destination, written as `logging.s3.amazonaws.com`.
    pub async fn flush_access_logs(&self) {
        let pending = self.inner.access_logs.take();
        for (destination, lines) in pending {
            let unique = hex::encode_upper(self.inner.ids.bytes::<8>());
            let key = crate::access_log::object_key(&destination.target_prefix, self.inner.clock.now(), &unique);
            let mut body = lines.join("\n");
            body.push('\n');
            let path = format!(
                "/{}/{}",
                destination.target_bucket,
                percent_encoding::utf8_percent_encode(&key, PATH_ENCODE)
            );
            let request = http::Request::builder()
                .method("PUT")
                .uri(&path)
                .header("host", "localhost")
                .header("content-type", "text/plain")
                .header("content-length", body.len())
                .header(
                    "x-citadel-source-arn",
                    crate::names::bucket_arn(&destination.source_bucket),
                )
                .header("x-citadel-source-account", &destination.source_owner)
                .body(s3s::Body::from(bytes::Bytes::from(body)));
            let Ok(request) = request else {
                tracing::warn!(bucket = %destination.target_bucket, "an access log object could not be built");
                continue;
            };
            let response = self
                .handle_as_service(request, crate::access_log::LOGGING_SERVICE)
                .await;
            let status = response.status().as_u16();
            match status {
                200 => {}
                403 | 404 => tracing::warn!(
                    source = %destination.source_bucket,
                    target = %destination.target_bucket,
                    status,
                    "server access logs were refused by the target bucket and dropped"
                ),
                _ => {
                    tracing::warn!(target = %destination.target_bucket, status, "server access log delivery failed; will retry");
                    self.inner.access_logs.restore(destination, lines);
                }
            }
        }
    }
}

/// Characters of a key percent-encoded in a request path: everything but unreserved characters and `/`.
const PATH_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Whether a request belongs to S3: SigV4 scope service `s3`, SigV2 (header or query), or an
/// unsigned request that is not a query/JSON protocol call.
pub fn is_s3_request(method: &http::Method, uri: &http::Uri, headers: &http::HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let query = uri.query().unwrap_or("");
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if let Some(auth) = header("authorization") {
        if let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256") {
            return scope_service(rest.split("Credential=").nth(1).unwrap_or("")) == Some("s3");
        }
        return auth.starts_with("AWS ");
    }
    if let Some(credential) = param("X-Amz-Credential") {
        return scope_service(credential) == Some("s3");
    }
    if param("AWSAccessKeyId").is_some() && param("Signature").is_some() {
        return true;
    }
    if header("x-amz-target").is_some() || param("Action").is_some() {
        return false;
    }
    let form = header("content-type").is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    !(method == http::Method::POST && uri.path() == "/" && form)
}

fn scope_service(credential: &str) -> Option<&str> {
    let mut parts = credential.split(['/', ',']);
    parts.nth(3).map(str::trim)
}

/// Reads the authentication facts s3s's hooks cannot see, and rewrites SigV2 query tokens into
/// headers so that s3s includes them in the string to sign (AWS treats query `x-amz-*` values as
/// headers there).
fn prepare(
    mut req: http::Request<s3s::Body>,
    remote: SocketAddr,
    secure: bool,
    now: OffsetDateTime,
    ids: &IdGen,
) -> (http::Request<s3s::Body>, RequestState) {
    // Read the headers in place (cloning the whole map cost a dozen allocations per request).
    let headers = req.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let params: Vec<(String, String)> = match req.uri().query() {
        Some(query) if !query.is_empty() => form_urlencoded::parse(query.as_bytes()).into_owned().collect(),
        _ => Vec::new(),
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let authorization = header("authorization");
    let (auth_type, signature_version, signed_region) = match authorization.as_deref() {
        Some(a) if a.starts_with("AWS4-HMAC-SHA256") => {
            let scope = a.split("Credential=").nth(1).unwrap_or("");
            (
                Some("REST-HEADER"),
                Some("AWS4-HMAC-SHA256"),
                scope.split('/').nth(2).map(str::to_string),
            )
        }
        Some(a) if a.starts_with("AWS ") => (Some("REST-HEADER"), Some("AWS"), None),
        _ => match (param("X-Amz-Credential"), param("Signature")) {
            (Some(credential), _) => (
                Some("REST-QUERY-STRING"),
                Some("AWS4-HMAC-SHA256"),
                credential.split('/').nth(2).map(str::to_string),
            ),
            (None, Some(_)) => (Some("REST-QUERY-STRING"), Some("AWS"), None),
            _ => {
                let post = req.method() == http::Method::POST
                    && header("content-type").is_some_and(|ct| ct.starts_with("multipart/form-data"));
                (post.then_some("POST"), None, None)
            }
        },
    };
    let mut session_token = header("x-amz-security-token").or_else(|| param("X-Amz-Security-Token"));
    let user_agent = header("user-agent").unwrap_or_default();
    let host = header("host").unwrap_or_default();
    let referer = header("referer");
    let request_length = header("x-amz-decoded-content-length")
        .or_else(|| header("content-length"))
        .and_then(|v| v.parse().ok());
    if signature_version == Some("AWS")
        && auth_type == Some("REST-QUERY-STRING")
        && session_token.is_none()
        && let Some(token) = param("x-amz-security-token")
    {
        if let Ok(value) = http::HeaderValue::from_str(&token) {
            req.headers_mut().insert("x-amz-security-token", value);
        }
        session_token = Some(token);
    }
    // One fill for both ids: each fill of the OS source is a system call.
    let random = ids.bytes::<56>();
    let request_id = hex::encode_upper(&random[..8]);
    let host_id = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&random[8..])
    };
    let state = RequestState {
        request_id,
        host_id,
        time: now,
        remote,
        secure,
        user_agent,
        host,
        request_line: (
            req.method().clone(),
            req.uri()
                .path_and_query()
                .map_or_else(|| req.uri().path().to_string(), ToString::to_string),
            req.version(),
        ),
        referer,
        request_length,
        session_token,
        auth_type,
        signature_version,
        signed_region,
        resolved: Mutex::new(None),
        acting_service: None,
        principal: Mutex::new(None),
        audit: Mutex::new(AuditFacts::default()),
        object_read: Mutex::new(None),
    };
    (req, state)
}

/// The secret-key hook: resolves the access key (with the request's session token) through
/// Citadel's credential resolver.
pub(crate) struct CitadelAuth {
    inner: Arc<Inner>,
}

#[async_trait::async_trait]
impl S3Auth for CitadelAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let state = current()?;
        let resolved = self
            .inner
            .credentials
            .resolve(access_key, state.session_token.as_deref(), state.time)
            .await;
        match resolved {
            Ok(credential) => {
                *state.resolved.lock() = Some(credential.principal.clone());
                let secret = String::from_utf8_lossy(&credential.secret).into_owned();
                Ok(SecretKey::from(secret))
            }
            Err(CredentialError::UnknownKey) => Err(error(
                S3ErrorCode::InvalidAccessKeyId,
                403,
                "The AWS Access Key Id you provided does not exist in our records.",
            )),
            Err(CredentialError::InvalidToken) => Err(error(
                S3ErrorCode::InvalidToken,
                400,
                "The provided token is malformed or otherwise invalid.",
            )),
            Err(CredentialError::ExpiredToken) => {
                Err(error(S3ErrorCode::ExpiredToken, 400, "The provided token has expired."))
            }
        }
    }
}

/// An S3 error with an explicit status.
pub(crate) fn error(code: S3ErrorCode, status: u16, message: impl Into<String>) -> S3Error {
    let mut err = S3Error::with_message(code, message.into());
    if let Ok(status) = http::StatusCode::from_u16(status) {
        err.set_status_code(status);
    }
    err
}

/// Virtual-host addressing: `<bucket>.<domain>[:port]` names the bucket; any other host is path style.
pub(crate) struct CitadelHost {
    domains: Vec<String>,
}

impl S3Host for CitadelHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        for domain in &self.domains {
            if let Some(bucket) = name.strip_suffix(domain.as_str()).and_then(|h| h.strip_suffix('.'))
                && !bucket.is_empty()
            {
                return Ok(VirtualHost::new(domain.as_str()).with_bucket(bucket));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_requests_are_recognised() {
        let get = http::Method::GET;
        let post = http::Method::POST;
        let mut sigv4 = http::HeaderMap::new();
        sigv4.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x"
                .parse()
                .unwrap(),
        );
        let mut sts = http::HeaderMap::new();
        sts.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=x"
                .parse()
                .unwrap(),
        );
        let mut v2 = http::HeaderMap::new();
        v2.insert("authorization", "AWS AKID:c2ln".parse().unwrap());
        let mut form = http::HeaderMap::new();
        form.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
        let mut target = http::HeaderMap::new();
        target.insert("x-amz-target", "TrentService.ListKeys".parse().unwrap());
        let none = http::HeaderMap::new();
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        let cases = [
            (&get, uri("/b/k"), &sigv4, true),
            (&post, uri("/"), &sts, false),
            (&get, uri("/b/k"), &v2, true),
            (&get, uri("/b/k?AWSAccessKeyId=A&Signature=s&Expires=1"), &none, true),
            (
                &get,
                uri("/b/k?X-Amz-Credential=A%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=x"),
                &none,
                true,
            ),
            (
                &get,
                uri("/?Action=GetCallerIdentity&X-Amz-Credential=A%2F20240101%2Fus-east-1%2Fsts%2Faws4_request"),
                &none,
                false,
            ),
            (&get, uri("/public-bucket/key"), &none, true),
            (&post, uri("/"), &form, false),
            (&post, uri("/"), &target, false),
        ];
        for (method, uri, headers, want) in cases {
            assert_eq!(is_s3_request(method, &uri, headers), want, "{method} {uri}");
        }
    }

    #[test]
    fn virtual_hosts_name_buckets() {
        let host = CitadelHost {
            domains: vec!["s3.example.com".into(), "localhost".into()],
        };
        let cases = [
            ("bucket.s3.example.com", Some("bucket")),
            ("my.bucket.s3.example.com:443", Some("my.bucket")),
            ("s3.example.com", None),
            ("bucket.localhost:4566", Some("bucket")),
            ("localhost:4566", None),
            ("127.0.0.1:4566", None),
            ("other.example.org", None),
        ];
        for (header, bucket) in cases {
            let parsed = host.parse_host_header(header).unwrap();
            assert_eq!(parsed.bucket(), bucket, "{header}");
        }
    }
}
