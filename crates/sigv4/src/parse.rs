//! Recognising the authentication form of a request and extracting its credential scope.
//!
//! This runs before the secret is known: the server needs the access key id to look the
//! secret up and the service name to route, and AWS checks the form and the clock before the key.

use http::HeaderMap;
use time::OffsetDateTime;

use crate::error::AuthError;
use crate::util::{
    MAX_SKEW_SECS, format_amz_date, format_iso8601, parse_amz_date, parse_http_date, percent_decode_str, query_items,
};

/// The longest validity of a SigV4 presigned URL, in seconds (7 days).
pub const MAX_PRESIGNED_EXPIRES_SECS: u64 = 604_800;

/// Which authentication form a request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthKind {
    /// `Authorization: AWS4-HMAC-SHA256 ...`.
    Header,
    /// SigV4 query parameters (`X-Amz-Algorithm=AWS4-HMAC-SHA256`).
    Presigned,
    /// S3 SigV2 header `Authorization: AWS AKID:signature`.
    SigV2Header,
    /// S3 SigV2 query parameters `AWSAccessKeyId`, `Signature`, `Expires`.
    SigV2Query,
    /// No credentials at all.
    Anonymous,
}

/// What a request's authentication says, before the secret is known.
///
/// Invariant (SigV4 forms): `amz_date` is a valid `YYYYMMDDTHHMMSSZ` whose first 8 characters equal `scope_date`,
/// and `signed_headers` names `host` (and the date header for the header form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuth {
    /// The authentication form.
    pub kind: AuthKind,
    /// The access key id (empty for anonymous requests).
    pub access_key_id: String,
    /// SigV4: the request time as `YYYYMMDDTHHMMSSZ` used in the string to sign. SigV2: the `Date`/`Expires` text.
    pub amz_date: String,
    /// The request time in Unix seconds (absent for SigV2 query and anonymous requests).
    pub request_time: Option<i64>,
    /// SigV4: the `yyyymmdd` of the credential scope (empty for SigV2).
    pub scope_date: String,
    /// SigV4: the region of the credential scope (empty for SigV2).
    pub region: String,
    /// The signing service name of the credential scope (`s3` for SigV2, empty for anonymous).
    pub service: String,
    /// SigV4: the SignedHeaders list exactly as sent (`a;b;c`).
    pub signed_headers: String,
    /// The signature as sent: hex for SigV4, base64 for SigV2.
    pub signature: String,
    /// The session token (`X-Amz-Security-Token` header or query parameter).
    pub security_token: Option<String>,
    /// SigV4 presigned: the `X-Amz-Expires` value in seconds.
    pub expires_in: Option<u64>,
    /// Presigned forms: the absolute expiry time in Unix seconds.
    pub expires_at: Option<i64>,
}

impl ParsedAuth {
    fn anonymous() -> Self {
        Self {
            kind: AuthKind::Anonymous,
            access_key_id: String::new(),
            amz_date: String::new(),
            request_time: None,
            scope_date: String::new(),
            region: String::new(),
            service: String::new(),
            signed_headers: String::new(),
            signature: String::new(),
            security_token: None,
            expires_in: None,
            expires_at: None,
        }
    }

    /// The credential scope `yyyymmdd/region/service/aws4_request` (SigV4 forms).
    pub fn scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.scope_date, self.region, self.service)
    }

    /// The names in SignedHeaders.
    pub fn signed_header_names(&self) -> impl Iterator<Item = &str> {
        self.signed_headers.split(';').filter(|name| !name.is_empty())
    }

    /// Rejects a credential scope for another region (S3 `AuthorizationHeaderMalformed` with the expected region).
    pub fn check_region(&self, expected: &str) -> Result<(), AuthError> {
        if matches!(self.kind, AuthKind::Header | AuthKind::Presigned) && self.region != expected {
            return Err(AuthError::WrongRegion {
                provided: self.region.clone(),
                expected: expected.to_owned(),
            });
        }
        Ok(())
    }

    /// Checks the request time against `now`: 15 minutes of skew either way, or the presigned expiry.
    ///
    /// AWS applies this before looking up the access key, so callers run it before their key lookup;
    /// [`crate::Verifier::verify`] runs it again.
    pub fn check_time(&self, now: OffsetDateTime) -> Result<(), AuthError> {
        let now = now.unix_timestamp();
        match self.kind {
            AuthKind::Anonymous => Ok(()),
            AuthKind::Header | AuthKind::SigV2Header => {
                let request_time = self.request_time.unwrap_or(now);
                check_skew(request_time, now)
            }
            AuthKind::Presigned => {
                let request_time = self.request_time.unwrap_or(now);
                if request_time > now + MAX_SKEW_SECS {
                    return check_skew(request_time, now);
                }
                match self.expires_at {
                    Some(expires_at) if now > expires_at => Err(self.expired(expires_at, now)),
                    Some(_) => Ok(()),
                    None => check_skew(request_time, now),
                }
            }
            AuthKind::SigV2Query => match self.expires_at {
                Some(expires_at) if now > expires_at => Err(self.expired(expires_at, now)),
                _ => Ok(()),
            },
        }
    }

    fn expired(&self, expires_at: i64, now: i64) -> AuthError {
        AuthError::RequestExpired {
            expires: format_iso8601(expires_at),
            server_time: format_iso8601(now),
            x_amz_expires: self.expires_in,
        }
    }
}

fn check_skew(request_time: i64, now: i64) -> Result<(), AuthError> {
    // The time stamps are only formatted on failure, which keeps the success path allocation-free.
    let (request, server) = (|| format_amz_date(request_time), || format_amz_date(now));
    if request_time < now - MAX_SKEW_SECS {
        let (request, server) = (request(), server());
        let limit = format_amz_date(now - MAX_SKEW_SECS);
        return Err(AuthError::SignatureExpired {
            message: format!("Signature expired: {request} is now earlier than {limit} ({server} - 15 min.)"),
            request_time: request,
            server_time: server,
        });
    }
    if request_time > now + MAX_SKEW_SECS {
        let (request, server) = (request(), server());
        let limit = format_amz_date(now + MAX_SKEW_SECS);
        return Err(AuthError::SignatureExpired {
            message: format!("Signature not yet current: {request} is still later than {limit} ({server} + 15 min.)"),
            request_time: request,
            server_time: server,
        });
    }
    Ok(())
}

fn incomplete(message: impl Into<String>) -> AuthError {
    AuthError::IncompleteSignature {
        message: message.into(),
    }
}

fn query_error(message: impl Into<String>) -> AuthError {
    AuthError::InvalidQueryParameters {
        message: message.into(),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Recognises the authentication form of a request from its headers and raw query string and parses it.
///
/// Fails with `IncompleteSignature` (or `InvalidQueryParameters` for presigned URLs) when the form is
/// recognised but malformed; anonymous requests parse to [`AuthKind::Anonymous`].
pub fn parse_auth(headers: &HeaderMap, raw_query: &str) -> Result<ParsedAuth, AuthError> {
    let mut query_v4 = false;
    let mut query_v2 = false;
    for (name, _) in query_items(raw_query) {
        match name {
            "X-Amz-Algorithm" => query_v4 = true,
            "AWSAccessKeyId" | "Signature" => query_v2 = true,
            _ => {}
        }
    }
    let authorization = headers.get(http::header::AUTHORIZATION);
    if let Some(value) = authorization {
        if query_v4 || query_v2 {
            return Err(incomplete(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string \
                 parameter or the Authorization header should be specified",
            ));
        }
        let value = value
            .to_str()
            .map_err(|_| incomplete("Authorization header is not valid ASCII."))?;
        let value = value.trim();
        let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
        if algorithm == "AWS4-HMAC-SHA256" {
            return parse_v4_header(headers, value, rest);
        }
        if algorithm == "AWS" {
            return parse_v2_header(headers, rest);
        }
        return Err(incomplete(format!("Unsupported AWS 'algorithm': '{algorithm}'")));
    }
    if query_v4 {
        return parse_presigned(headers, raw_query);
    }
    if query_v2 {
        return parse_v2_query(headers, raw_query);
    }
    Ok(ParsedAuth::anonymous())
}

/// Splits `AKID/yyyymmdd/region/service/aws4_request` into its parts.
fn parse_credential(credential: &str) -> Result<(&str, &str, &str, &str), String> {
    let mut parts = credential.split('/');
    let (Some(akid), Some(date), Some(region), Some(service), Some(terminator), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            credential.split('/').nth(2).unwrap_or_default()
        ));
    };
    if terminator != "aws4_request" {
        return Err(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "
        ));
    }
    if akid.is_empty() {
        return Err(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term,".to_owned(),
        );
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "Invalid credential date \"{date}\". This date is not the same as X-Amz-Date: \"\"."
        ));
    }
    if region.is_empty() {
        return Err("Credential should be scoped to a valid region. ".to_owned());
    }
    if service.is_empty() {
        return Err("Credential should be scoped to correct service. ".to_owned());
    }
    Ok((akid, date, region, service))
}

fn parse_v4_header(headers: &HeaderMap, whole: &str, rest: &str) -> Result<ParsedAuth, AuthError> {
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((key, value)) = part.split_once('=') else {
            return Err(incomplete(format!(
                "'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{whole}'."
            )));
        };
        match key.trim() {
            "Credential" => credential = Some(value.trim()),
            "SignedHeaders" => signed_headers = Some(value.trim()),
            "Signature" => signature = Some(value.trim()),
            _ => {}
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) = (credential, signed_headers, signature) else {
        let mut message = String::new();
        for (name, present) in [
            ("Credential", credential.is_some()),
            ("Signature", signature.is_some()),
            ("SignedHeaders", signed_headers.is_some()),
        ] {
            if !present {
                message.push_str(&format!("Authorization header requires '{name}' parameter. "));
            }
        }
        message.push_str(&format!("Authorization={whole}"));
        return Err(incomplete(message));
    };
    let (akid, scope_date, region, service) = parse_credential(credential).map_err(incomplete)?;

    // The time comes from X-Amz-Date, else from the Date header.
    let (amz_date, request_time, date_header) = if let Some(text) = header_str(headers, "x-amz-date") {
        let time = parse_amz_date(text.trim())
            .ok_or_else(|| incomplete(format!("Date must be in ISO-8601 'basic format'. Got '{text}'.")))?;
        (text.trim().to_owned(), time, "x-amz-date")
    } else if let Some(text) = header_str(headers, "date") {
        let time = parse_http_date(text).ok_or_else(|| incomplete(format!("Invalid Date header '{text}'.")))?;
        (format_amz_date(time), time, "date")
    } else {
        return Err(incomplete(format!(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={whole}"
        )));
    };
    check_scope_date(scope_date, &amz_date).map_err(incomplete)?;
    let names = || signed_headers.split(';');
    if !names().any(|name| name == "host") {
        return Err(incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    if !names().any(|name| name == date_header) {
        return Err(incomplete(format!(
            "'{date_header}' must be a 'SignedHeader' in the AWS Authorization."
        )));
    }
    Ok(ParsedAuth {
        kind: AuthKind::Header,
        access_key_id: akid.to_owned(),
        amz_date,
        request_time: Some(request_time),
        scope_date: scope_date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed_headers.to_owned(),
        signature: signature.to_owned(),
        security_token: header_str(headers, "x-amz-security-token").map(str::to_owned),
        expires_in: None,
        expires_at: None,
    })
}

fn check_scope_date(scope_date: &str, amz_date: &str) -> Result<(), String> {
    if amz_date.get(..8) != Some(scope_date) {
        return Err(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope_date}' \
             != '{}', from '{amz_date}'.",
            amz_date.get(..8).unwrap_or_default()
        ));
    }
    Ok(())
}

/// The decoded value of the first query parameter named `name`.
fn query_param(raw_query: &str, name: &str) -> Option<String> {
    query_items(raw_query)
        .find(|(item, _)| *item == name)
        .map(|(_, value)| percent_decode_str(value))
}

fn parse_presigned(headers: &HeaderMap, raw_query: &str) -> Result<ParsedAuth, AuthError> {
    let algorithm = query_param(raw_query, "X-Amz-Algorithm").unwrap_or_default();
    if algorithm != "AWS4-HMAC-SHA256" {
        return Err(query_error(format!(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\" (got \"{algorithm}\")"
        )));
    }
    let required = (
        query_param(raw_query, "X-Amz-Credential"),
        query_param(raw_query, "X-Amz-Date"),
        query_param(raw_query, "X-Amz-SignedHeaders"),
        query_param(raw_query, "X-Amz-Signature"),
    );
    let (Some(credential), Some(amz_date), Some(signed_headers), Some(signature)) = required else {
        return Err(query_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, \
             X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
        ));
    };
    let (akid, scope_date, region, service) = parse_credential(&credential).map_err(query_error)?;
    let request_time = parse_amz_date(&amz_date)
        .ok_or_else(|| query_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""))?;
    check_scope_date(scope_date, &amz_date).map_err(query_error)?;
    let expires_in = match query_param(raw_query, "X-Amz-Expires") {
        Some(text) => {
            let seconds: u64 = text
                .parse()
                .map_err(|_| query_error("X-Amz-Expires should be a number"))?;
            if seconds > MAX_PRESIGNED_EXPIRES_SECS {
                return Err(query_error(
                    "X-Amz-Expires must be less than a week (in seconds) that is 604800",
                ));
            }
            if seconds == 0 {
                return Err(query_error("X-Amz-Expires must be non-negative"));
            }
            Some(seconds)
        }
        // S3 requires an explicit validity; other services fall back to the 15-minute window.
        None if service == "s3" => {
            return Err(query_error(
                "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, \
                 X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
            ));
        }
        None => None,
    };
    if !signed_headers.split(';').any(|name| name == "host") {
        return Err(query_error("'Host' must be a 'SignedHeader' in the AWS Authorization."));
    }
    let security_token = query_param(raw_query, "X-Amz-Security-Token")
        .or_else(|| header_str(headers, "x-amz-security-token").map(str::to_owned));
    Ok(ParsedAuth {
        kind: AuthKind::Presigned,
        access_key_id: akid.to_owned(),
        request_time: Some(request_time),
        scope_date: scope_date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature,
        security_token,
        // `expires_in` is at most 604800, so the conversion cannot fail.
        expires_at: expires_in.map(|seconds| request_time + i64::try_from(seconds).unwrap_or(0)),
        expires_in,
        amz_date,
    })
}

fn parse_v2_header(headers: &HeaderMap, rest: &str) -> Result<ParsedAuth, AuthError> {
    let Some((akid, signature)) = rest.trim().rsplit_once(':') else {
        return Err(incomplete(
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
        ));
    };
    if akid.is_empty() || signature.is_empty() {
        return Err(incomplete(
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
        ));
    }
    // With x-amz-date the Date line of the string to sign is empty; x-amz-date itself is an amz header.
    let (date_text, request_time) = if let Some(text) = header_str(headers, "x-amz-date") {
        let time = parse_http_date(text).or_else(|| parse_amz_date(text.trim()));
        (String::new(), time)
    } else if let Some(text) = header_str(headers, "date") {
        (text.trim().to_owned(), parse_http_date(text))
    } else {
        (String::new(), None)
    };
    let Some(request_time) = request_time else {
        return Err(incomplete(
            "AWS authentication requires a valid Date or x-amz-date header",
        ));
    };
    Ok(ParsedAuth {
        kind: AuthKind::SigV2Header,
        access_key_id: akid.to_owned(),
        amz_date: date_text,
        request_time: Some(request_time),
        scope_date: String::new(),
        region: String::new(),
        service: "s3".to_owned(),
        signed_headers: String::new(),
        signature: signature.to_owned(),
        security_token: header_str(headers, "x-amz-security-token").map(str::to_owned),
        expires_in: None,
        expires_at: None,
    })
}

fn parse_v2_query(headers: &HeaderMap, raw_query: &str) -> Result<ParsedAuth, AuthError> {
    let (Some(akid), Some(signature), Some(expires)) = (
        query_param(raw_query, "AWSAccessKeyId"),
        query_param(raw_query, "Signature"),
        query_param(raw_query, "Expires"),
    ) else {
        return Err(query_error(
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
        ));
    };
    let expires_at: i64 = expires
        .parse()
        .map_err(|_| query_error("Invalid date (should be seconds since epoch)"))?;
    let security_token = query_param(raw_query, "x-amz-security-token")
        .or_else(|| header_str(headers, "x-amz-security-token").map(str::to_owned));
    Ok(ParsedAuth {
        kind: AuthKind::SigV2Query,
        access_key_id: akid,
        amz_date: expires,
        request_time: None,
        scope_date: String::new(),
        region: String::new(),
        service: "s3".to_owned(),
        signed_headers: String::new(),
        signature,
        security_token,
        expires_in: None,
        expires_at: Some(expires_at),
    })
}
