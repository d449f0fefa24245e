//! `AssumeRoleWithWebIdentity`: OpenID Connect tokens become role sessions.
//!
//! The JWT's signature (RS256 or ES256) is verified against the issuer's JSON Web Key Set, which is
//! either configured statically ([`WebIdentityVerifier::set_jwks`]) or fetched from the issuer's
//! discovery document (`<issuer>/.well-known/openid-configuration` -> `jwks_uri`). The issuer must be
//! an OIDC provider registered in the role's account, the audience one of its client ids, and the
//! token inside its `nbf`..`exp` window. The role's trust policy is then evaluated by the policy
//! engine for the provider as a federated principal, with the token's claims as
//! `<provider>:sub`, `<provider>:aud` and `<provider>:amr` condition keys.
//!
//! Fetching speaks plain HTTP/1.1 over a TCP stream (`http://` issuers, such as a local test
//! issuer); `https://` issuers need their JWKS configured until a TLS client with thumbprint
//! verification is added.

use crate::input::{opt_i64, req_str};
use crate::token::SessionClaims;
use crate::{Sts, access_denied, expired_token, role_session};
use base64::Engine;
use citadel_core::{Call, Effect};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest HTTP response read from an identity provider.
const MAX_RESPONSE: usize = 1024 * 1024;
/// Time allowed for one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Tolerated clock difference for `nbf`, seconds.
const NBF_LEEWAY: i64 = 300;

/// Verifies web identity tokens; holds statically configured key sets.
#[derive(Debug, Default)]
pub struct WebIdentityVerifier {
    static_jwks: RwLock<HashMap<String, Value>>,
}

impl WebIdentityVerifier {
    /// Uses `jwks` (a JWKS JSON document) for tokens from `issuer` instead of fetching it.
    pub fn set_jwks(&self, issuer: &str, jwks: Value) {
        if let Ok(mut map) = self.static_jwks.write() {
            map.insert(issuer.trim_end_matches('/').to_string(), jwks);
        }
    }

    async fn jwks(&self, issuer: &str) -> Result<Value, AwsError> {
        let issuer = issuer.trim_end_matches('/');
        if let Some(jwks) = self.static_jwks.read().ok().and_then(|m| m.get(issuer).cloned()) {
            return Ok(jwks);
        }
        let base = if issuer.contains("://") {
            issuer.to_string()
        } else {
            format!("https://{issuer}")
        };
        let discovery: Value =
            serde_json::from_slice(&fetch(&format!("{base}/.well-known/openid-configuration")).await?)
                .map_err(|_| communication_error())?;
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(communication_error)?;
        serde_json::from_slice(&fetch(jwks_uri).await?).map_err(|_| communication_error())
    }
}

fn communication_error() -> AwsError {
    AwsError::new(
        "IDPCommunicationError",
        400,
        "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements",
    )
}

fn invalid_token(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidIdentityToken", 400, message)
}

/// GETs `url` over plain HTTP/1.1.
async fn fetch(url: &str) -> Result<Vec<u8>, AwsError> {
    let rest = url.strip_prefix("http://").ok_or_else(communication_error)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or(rest), rest.get(i..).unwrap_or("/")),
        None => (rest, "/"),
    };
    let address = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await.ok()?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\nUser-Agent: citadel-sts\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        let mut limited = (&mut stream).take(MAX_RESPONSE as u64 + 1);
        limited.read_to_end(&mut raw).await.ok()?;
        (raw.len() <= MAX_RESPONSE).then_some(raw)
    };
    let raw = tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .ok()
        .flatten()
        .ok_or_else(communication_error)?;
    parse_response(&raw).ok_or_else(communication_error)
}

/// The body of a `200` HTTP/1.x response (identity or chunked transfer encoding).
fn parse_response(raw: &[u8]) -> Option<Vec<u8>> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..split)?).ok()?;
    let body = raw.get(split + 4..)?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?;
    if status != "200" {
        return None;
    }
    let chunked = lines.any(|l| {
        let lower = l.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    if !chunked {
        return Some(body.to_vec());
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(rest.get(..line_end)?).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = rest.get(line_end + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// A decoded, not yet verified, JWT.
#[derive(Debug)]
pub struct Jwt {
    /// The header.
    pub header: Value,
    /// The claims.
    pub claims: Value,
    /// `header.payload`, the signed bytes.
    pub signed: String,
    /// The signature.
    pub signature: Vec<u8>,
}

fn b64url(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

/// Splits and decodes a compact JWS.
pub fn decode_jwt(token: &str) -> Option<Jwt> {
    let mut parts = token.trim().split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(Jwt {
        header: serde_json::from_slice(&b64url(header)?).ok()?,
        claims: serde_json::from_slice(&b64url(payload)?).ok()?,
        signed: format!("{header}.{payload}"),
        signature: b64url(signature)?,
    })
}

/// Verifies `jwt`'s signature with a key of `jwks` (matched by `kid` when the token names one).
pub fn verify_signature(jwt: &Jwt, jwks: &Value) -> bool {
    use aws_lc_rs::signature;
    let alg = jwt.header.get("alg").and_then(Value::as_str).unwrap_or("");
    let kid = jwt.header.get("kid").and_then(Value::as_str);
    let keys = jwks.get("keys").and_then(Value::as_array).cloned().unwrap_or_default();
    keys.iter()
        .filter(|k| kid.is_none() || k.get("kid").and_then(Value::as_str) == kid)
        .any(|key| {
            let kty = key.get("kty").and_then(Value::as_str).unwrap_or("");
            let field = |name: &str| key.get(name).and_then(Value::as_str).and_then(b64url);
            match (alg, kty) {
                ("RS256", "RSA") => {
                    let (Some(n), Some(e)) = (field("n"), field("e")) else {
                        return false;
                    };
                    signature::RsaPublicKeyComponents { n: &n, e: &e }
                        .verify(
                            &signature::RSA_PKCS1_2048_8192_SHA256,
                            jwt.signed.as_bytes(),
                            &jwt.signature,
                        )
                        .is_ok()
                }
                ("ES256", "EC") => {
                    let (Some(x), Some(y)) = (field("x"), field("y")) else {
                        return false;
                    };
                    if x.len() != 32 || y.len() != 32 {
                        return false;
                    }
                    let mut point = vec![4u8];
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                        .verify(jwt.signed.as_bytes(), &jwt.signature)
                        .is_ok()
                }
                _ => false,
            }
        })
}

/// The values of a claim that may be a string or a list of strings.
fn claim_values(claims: &Value, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

impl Sts {
    pub(crate) async fn assume_role_with_web_identity(&self, call: &Call) -> Result<Effect, AwsError> {
        let role_arn = req_str(&call.input, "RoleArn")?;
        let session_name = req_str(&call.input, "RoleSessionName")?;
        let token = req_str(&call.input, "WebIdentityToken")?;
        let now = call.ctx.time.unix_timestamp();
        let jwt = decode_jwt(token).ok_or_else(|| invalid_token("The ID Token provided is not a valid JWT."))?;
        let issuer = jwt
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_token("The ID Token provided does not contain an issuer."))?;
        let role = self.directory.role_by_arn(role_arn).await?;
        let account = role.as_ref().map(|r| r.account.clone()).unwrap_or_default();
        let provider =
            self.directory.oidc_provider(&account, issuer).await?.ok_or_else(|| {
                invalid_token(format!("No OpenIDConnect provider found in your account for {issuer}"))
            })?;
        let audiences = claim_values(&jwt.claims, "aud");
        let audience = audiences
            .iter()
            .find(|a| provider.client_ids.contains(a))
            .cloned()
            .ok_or_else(|| invalid_token("Incorrect token audience"))?;
        let exp = jwt
            .claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(|| invalid_token("The ID Token provided does not contain an expiration."))?;
        if now >= exp {
            return Err(expired_token(now, exp));
        }
        if let Some(nbf) = jwt.claims.get("nbf").and_then(Value::as_i64)
            && now + NBF_LEEWAY < nbf
        {
            return Err(invalid_token("The ID Token provided is not yet valid."));
        }
        let jwks = self.web.jwks(issuer).await?;
        if !verify_signature(&jwt, &jwks) {
            return Err(invalid_token("The ID Token provided could not be verified."));
        }

        // Trust: the provider, as a federated principal, must be allowed by the role's trust policy.
        let key_prefix = provider
            .url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let subject = jwt.claims.get("sub").and_then(Value::as_str).unwrap_or("").to_string();
        let denied = || {
            access_denied(format!(
                "Not authorized to perform sts:AssumeRoleWithWebIdentity on resource: {role_arn}"
            ))
        };
        let role = role.ok_or_else(denied)?;
        let mut context = role_session::federated_context(call, &provider.arn, session_name);
        context.insert(&format!("{key_prefix}:sub"), subject.as_str());
        context.insert_multi(&format!("{key_prefix}:aud"), audiences.iter().map(String::as_str));
        context.insert(&format!("{key_prefix}:oaud"), audience.as_str());
        let amr = claim_values(&jwt.claims, "amr");
        if !amr.is_empty() {
            context.insert_multi(&format!("{key_prefix}:amr"), amr.iter().map(String::as_str));
        }
        let principal = role_session::federated_principal(&provider.arn);
        if !role_session::trust_policy_allows(&role, principal, &["sts:AssumeRoleWithWebIdentity"], &context) {
            return Err(denied());
        }

        let duration = opt_i64(&call.input, "DurationSeconds").unwrap_or(crate::DEFAULT_ROLE_DURATION);
        role_session::check_duration(&role, duration)?;
        let policies = crate::input::session_policies(&call.input, self.directory.as_ref(), &role.account).await?;
        let packed = crate::input::packed_size(&policies, &[])?;
        let claims = SessionClaims {
            policies: policies.for_session(),
            federated_provider: Some(provider.arn.clone()),
            ..role_session::claims(&role, session_name, now, now + duration, "AssumeRoleWithWebIdentity")
        };
        let mut output = Map::new();
        output.insert("SubjectFromWebIdentityToken".into(), json!(subject));
        output.insert("Provider".into(), json!(key_prefix));
        output.insert("Audience".into(), json!(audience));
        self.start_role_session(&role, claims, packed, output, WriteBatch::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_responses_parse_plain_and_chunked() {
        let plain = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
        assert_eq!(parse_response(plain).unwrap(), b"{\"a\":1}");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), b"{\"a\":1}");
        assert_eq!(parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n"), None);
        assert_eq!(parse_response(b"garbage"), None);
    }

    #[test]
    fn jwts_decode_and_es256_signatures_verify() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let public = pair.public_key().as_ref().to_vec();
        let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
            "x": enc(&public[1..33]), "y": enc(&public[33..65])}]});
        let header = enc(br#"{"alg":"ES256","kid":"k1"}"#);
        let payload = enc(br#"{"iss":"http://issuer","sub":"s","aud":"a","exp":2000000000}"#);
        let signed = format!("{header}.{payload}");
        let signature = pair.sign(&rng, signed.as_bytes()).unwrap();
        let token = format!("{signed}.{}", enc(signature.as_ref()));
        let jwt = decode_jwt(&token).unwrap();
        assert_eq!(jwt.claims["sub"], "s");
        assert!(verify_signature(&jwt, &jwks));
        let tampered_payload = enc(br#"{"iss":"http://issuer","sub":"admin","aud":"a","exp":2000000000}"#);
        let tampered = decode_jwt(&format!("{header}.{tampered_payload}.{}", enc(signature.as_ref()))).unwrap();
        assert!(!verify_signature(&tampered, &jwks));
        let other_kid =
            json!({"keys": [{"kty": "EC", "kid": "k2", "x": enc(&public[1..33]), "y": enc(&public[33..65])}]});
        assert!(!verify_signature(&jwt, &other_kid));
        assert!(decode_jwt("a.b").is_none());
    }
}
