//! The pipeline's view of request authentication: routing facts and SigV4 checks.
//!
//! This module adapts `citadel-sigv4` (pure verification) to the pipeline's request type and maps
//! its failures to each protocol's AWS error codes.

use crate::pipeline::IncomingRequest;
use citadel_sigv4 as sigv4;
use citadel_wire::{AwsError, Protocol};
use time::OffsetDateTime;

/// The protocol family whose error codes an authentication failure uses (the verifier's own type).
pub use citadel_sigv4::ProtocolFamily as Family;

/// The family of a service protocol.
pub fn family_of(protocol: Protocol) -> Family {
    match protocol {
        Protocol::Query => Family::Query,
        Protocol::Json => Family::Json,
        Protocol::RestJson => Family::RestJson,
        Protocol::RestXml => Family::S3,
    }
}

/// Why authentication failed.
#[derive(Debug, Clone)]
pub enum AuthFailure {
    /// No credentials at all.
    Missing,
    /// Unknown or inactive access key.
    UnknownKey,
    /// Malformed or foreign session token.
    InvalidToken,
    /// Expired session token.
    ExpiredToken,
    /// A failure the signature verifier reported.
    Signature(sigv4::AuthError),
}

impl From<sigv4::AuthError> for AuthFailure {
    fn from(err: sigv4::AuthError) -> Self {
        Self::Signature(err)
    }
}

impl AuthFailure {
    /// The AWS error for this failure in `family`'s protocol.
    pub fn to_aws(&self, family: Family) -> AwsError {
        let err = match self {
            Self::Missing => sigv4::AuthError::MissingAuthentication,
            Self::UnknownKey => sigv4::AuthError::InvalidAccessKey,
            Self::InvalidToken => sigv4::AuthError::InvalidToken,
            Self::ExpiredToken => sigv4::AuthError::ExpiredToken,
            Self::Signature(err) => err.clone(),
        };
        let (code, status) = err.code_and_status(family);
        AwsError::new(code, status, err.message(family))
    }
}

/// Where a request goes.
#[derive(Debug)]
pub struct Route {
    /// The service's signing name.
    pub service: String,
    /// The region from the credential scope.
    pub region: Option<String>,
    /// The parsed authentication, `None` for an unsigned request.
    pub auth: Option<Result<sigv4::ParsedAuth, AuthFailure>>,
}

/// Reads a header as text.
pub fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The decoded query-string parameters.
pub fn query_params(req: &IncomingRequest) -> Vec<(String, String)> {
    req.uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The query protocol's parameters: the query string plus a form-encoded body.
pub fn form_params(req: &IncomingRequest, mut params: Vec<(String, String)>) -> Vec<(String, String)> {
    let is_form =
        header(&req.headers, "content-type").is_none_or(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if req.method == http::Method::POST && is_form && !req.body.is_empty() {
        params.extend(form_urlencoded::parse(&req.body).into_owned());
    }
    params
}

/// Routes a request to a service.
pub fn route(req: &IncomingRequest, query: &[(String, String)]) -> Option<Route> {
    let auth = match sigv4::parse_auth(&req.headers, req.uri.query().unwrap_or("")) {
        Ok(parsed) if parsed.kind == sigv4::AuthKind::Anonymous => None,
        Ok(parsed) => Some(Ok(parsed)),
        Err(err) => Some(Err(AuthFailure::Signature(err))),
    };
    if let Some(Ok(parsed)) = &auth
        && !parsed.service.is_empty()
    {
        let region = (!parsed.region.is_empty()).then(|| parsed.region.clone());
        return Some(Route {
            service: parsed.service.clone(),
            region,
            auth,
        });
    }
    let service =
        service_from_target(header(&req.headers, "x-amz-target")).or_else(|| service_from_query(req, query))?;
    Some(Route {
        service: service.to_string(),
        region: None,
        auth,
    })
}

fn service_from_target(target: Option<&str>) -> Option<&'static str> {
    let prefix = target?.split('.').next()?;
    Some(match prefix {
        "TrentService" => "kms",
        "com" => "cloudtrail",
        "Logs_20140328" => "logs",
        "GraniteServiceVersion20100801" => "monitoring",
        _ => return None,
    })
}

fn service_from_query(req: &IncomingRequest, query: &[(String, String)]) -> Option<&'static str> {
    let version = query
        .iter()
        .find(|(k, _)| k == "Version")
        .map(|(_, v)| v.clone())
        .or_else(|| {
            form_urlencoded::parse(&req.body)
                .find(|(k, _)| k == "Version")
                .map(|(_, v)| v.into_owned())
        })?;
    match version.as_str() {
        "2010-05-08" => Some("iam"),
        "2011-06-15" => Some("sts"),
        _ => None,
    }
}

/// Checks the request time against the clock (skew, presigned expiry).
pub fn check_time(parsed: &sigv4::ParsedAuth, now: OffsetDateTime) -> Result<(), AuthFailure> {
    parsed.check_time(now).map_err(AuthFailure::Signature)
}

/// The access key id of a parsed signature.
pub fn access_key_id(parsed: &sigv4::ParsedAuth) -> &str {
    &parsed.access_key_id
}

/// The session token, if any.
pub fn session_token(parsed: &sigv4::ParsedAuth) -> Option<&str> {
    parsed.security_token.as_deref()
}

/// Verifies the signature of a non-S3 request.
pub fn verify(
    parsed: &sigv4::ParsedAuth,
    req: &IncomingRequest,
    secret: &[u8],
    now: OffsetDateTime,
) -> Result<(), AuthFailure> {
    let parts = sigv4::RequestParts {
        method: req.method.as_str(),
        raw_path: req.uri.path(),
        raw_query: req.uri.query().unwrap_or(""),
        headers: &req.headers,
        virtual_host_bucket: None,
    };
    sigv4::verify(parsed, secret, &parts, sigv4::Payload::Bytes(&req.body), now)
        .map(|_| ())
        .map_err(AuthFailure::Signature)
}
