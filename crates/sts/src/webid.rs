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
//! Fetching is HTTPS only ([`crate::oidc_fetch`]): the provider's certificate is verified against
//! the system's trust store plus `CITADEL_OIDC_CA_BUNDLE`, or else against its registered
//! thumbprints.

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
/// Tolerated clock difference for `nbf`, seconds.
const NBF_LEEWAY: i64 = 300;

/// How long a fetched key set is used before it is fetched again.
const JWKS_TTL_SECONDS: i64 = 600;
/// A token that fails against a cached key set older than this makes one refetch (the issuer may
/// have rotated its keys); younger sets are not refetched, so bad tokens cannot make Citadel hammer
/// the issuer.
const JWKS_REFRESH_AFTER_SECONDS: i64 = 60;
/// The most issuers whose key sets are kept.
const JWKS_CACHE_LIMIT: usize = 1024;

/// Verifies web identity tokens; holds statically configured key sets and fetched ones.
#[derive(Debug, Default)]
pub struct WebIdentityVerifier {
    static_jwks: RwLock<HashMap<String, Value>>,
    /// Fetched key sets by issuer and the thumbprints they were fetched under, with the fetch time
    /// (epoch seconds of the injected clock): two HTTPS round trips per call otherwise.
    fetched: RwLock<HashMap<String, (i64, Value)>>,
}

/// Where a key set came from, which decides whether a failed verification may refetch it.
enum KeySet {
    Static(Value),
    Fresh(Value),
    Cached { value: Value, age: i64 },
}

impl WebIdentityVerifier {
    /// Uses `jwks` (a JWKS JSON document) for tokens from `issuer` instead of fetching it.
    pub fn set_jwks(&self, issuer: &str, jwks: Value) {
        if let Ok(mut map) = self.static_jwks.write() {
            map.insert(issuer.trim_end_matches('/').to_string(), jwks);
        }
    }

    async fn jwks(&self, issuer: &str, thumbprints: &[String], now: i64) -> Result<KeySet, AwsError> {
        let issuer = issuer.trim_end_matches('/');
        if let Some(jwks) = self.static_jwks.read().ok().and_then(|m| m.get(issuer).cloned()) {
            return Ok(KeySet::Static(jwks));
        }
        let cache_key = format!("{issuer}\u{1}{}", thumbprints.join(","));
        let cached = self.fetched.read().ok().and_then(|m| m.get(&cache_key).cloned());
        if let Some((fetched_at, value)) = cached
            && (0..JWKS_TTL_SECONDS).contains(&(now - fetched_at))
        {
            return Ok(KeySet::Cached {
                value,
                age: now - fetched_at,
            });
        }
        let value = self.fetch_jwks(issuer, thumbprints).await?;
        if let Ok(mut map) = self.fetched.write() {
            if map.len() >= JWKS_CACHE_LIMIT {
                map.clear();
            }
            map.insert(cache_key, (now, value.clone()));
        }
        Ok(KeySet::Fresh(value))
    }

    /// Forgets the fetched key set of `issuer` (all thumbprint variants).
    fn forget(&self, issuer: &str) {
        let prefix = format!("{}\u{1}", issuer.trim_end_matches('/'));
        if let Ok(mut map) = self.fetched.write() {
            map.retain(|key, _| !key.starts_with(&prefix));
        }
    }

    async fn fetch_jwks(&self, issuer: &str, thumbprints: &[String]) -> Result<Value, AwsError> {
        let base = if issuer.contains("://") {
            issuer.to_string()
        } else {
            format!("https://{issuer}")
        };
        let discovery: Value =
            serde_json::from_slice(&fetch(&format!("{base}/.well-known/openid-configuration"), thumbprints).await?)
                .map_err(|_| communication_error())?;
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(communication_error)?;
        serde_json::from_slice(&fetch(jwks_uri, thumbprints).await?).map_err(|_| communication_error())
    }
}

fn communication_error() -> AwsError {
    AwsError::new(
        "IDPCommunicationError",
        400,
        "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements",
    )
}

/// GETs `url` from an identity provider; every failure is AWS's `IDPCommunicationError`.
async fn fetch(url: &str, thumbprints: &[String]) -> Result<Vec<u8>, AwsError> {
    crate::oidc_fetch::fetch(url, thumbprints).await.map_err(|error| {
        tracing::info!(url, %error, "cannot fetch from the OIDC provider");
        communication_error()
    })
}

fn invalid_token(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidIdentityToken", 400, message)
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
        let verified = match self.web.jwks(issuer, &provider.thumbprints, now).await? {
            KeySet::Static(jwks) | KeySet::Fresh(jwks) => verify_signature(&jwt, &jwks),
            KeySet::Cached { value, age } => {
                verify_signature(&jwt, &value)
                    || (age >= JWKS_REFRESH_AFTER_SECONDS && {
                        self.web.forget(issuer);
                        match self.web.jwks(issuer, &provider.thumbprints, now).await? {
                            KeySet::Static(jwks) | KeySet::Fresh(jwks) | KeySet::Cached { value: jwks, .. } => {
                                verify_signature(&jwt, &jwks)
                            }
                        }
                    })
            }
        };
        if !verified {
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
