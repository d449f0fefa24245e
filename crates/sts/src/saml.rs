//! `AssumeRoleWithSAML`: a SAML 2.0 response from an identity provider becomes a role session.
//!
//! The `SAMLAssertion` parameter is the base64 `samlp:Response` the identity provider posted to the
//! AWS sign-in endpoint. [`verify_response`] checks it as AWS does, in this order:
//!
//! 1. It parses strictly ([`crate::c14n::parse`]: no DTD, bounded depth).
//! 2. Its shape leaves no room for signature wrapping: the document element is the `Response`, the
//!    document holds exactly one `Assertion` element anywhere and it is a direct child of the
//!    `Response`, there is no `EncryptedAssertion`, and no two elements share an `ID`. So the one
//!    assertion whose statements are read is the one a signature covers, whether the signature is
//!    on the `Response` (covering the assertion inside it) or on the `Assertion` itself.
//! 3. Every enveloped signature on the `Response` or the `Assertion` verifies ([`crate::xmldsig`])
//!    with a signing certificate of the provider's metadata, and at least one is present.
//! 4. The status is success, the issuer is the metadata's `entityID`, an `Audience` is the AWS
//!    sign-in endpoint, the single bearer `SubjectConfirmationData` has the sign-in endpoint as
//!    `Recipient` and has not expired (`NotOnOrAfter`), and the `Conditions` window holds.
//!
//! The handler then requires the requested role and provider as a pair of the
//! `https://aws.amazon.com/SAML/Attributes/Role` attribute and a `RoleSessionName` attribute, and
//! asks the policy engine whether the role's trust policy allows the provider, as a federated
//! principal, `sts:AssumeRoleWithSAML` (plus `sts:TagSession` for `PrincipalTag:*` attributes and
//! `sts:SetSourceIdentity` for `SourceIdentity`) with the `saml:*` context keys AWS documents.

use crate::c14n::{self, Element};
use crate::input::{opt_i64, req_str};
use crate::token::SessionClaims;
use crate::xmldsig::{self, DSIG, IdpMetadata};
use crate::{Sts, access_denied, expired_token, role_session};
use base64::Engine;
use citadel_core::{Call, Effect};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::{Map, Value, json};
use std::collections::HashSet;

/// The SAML 2.0 assertion namespace.
pub const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// The SAML 2.0 protocol namespace.
pub const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const NAMEID_FORMAT_PREFIX: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:";
const ROLE_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/Role";
const SESSION_NAME_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/RoleSessionName";
const SESSION_DURATION_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/SessionDuration";
const SOURCE_IDENTITY_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/SourceIdentity";
const TRANSITIVE_TAGS_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/TransitiveTagKeys";
const PRINCIPAL_TAG_PREFIX: &str = "https://aws.amazon.com/SAML/Attributes/PrincipalTag:";
/// The audience value AWS accepts besides the sign-in endpoint.
const AUDIENCE_URN: &str = "urn:amazon:webservices";
/// Tolerated clock difference for `NotBefore`, seconds.
const NOT_BEFORE_LEEWAY: i64 = 300;
/// Largest decoded response accepted (the model caps the base64 text at 100,000 characters).
const MAX_RESPONSE_BYTES: usize = 100_000;

/// Standard attributes whose values become `saml:` condition keys, by attribute name (OID URN).
const CONTEXT_ATTRIBUTES: &[(&str, &str)] = &[
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.1", "saml:edupersonaffiliation"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.2", "saml:edupersonnickname"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.3", "saml:edupersonorgdn"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.4", "saml:edupersonorgunitdn"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.5", "saml:edupersonprimaryaffiliation"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.6", "saml:edupersonprincipalname"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.7", "saml:edupersonentitlement"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.8", "saml:edupersonprimaryorgunitdn"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.9", "saml:edupersonscopedaffiliation"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.10", "saml:edupersontargetedid"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.11", "saml:edupersonassurance"),
    ("urn:oid:1.3.6.1.4.1.5923.1.2.1.2", "saml:eduorghomepageuri"),
    ("urn:oid:1.3.6.1.4.1.5923.1.2.1.3", "saml:eduorgidentityauthnpolicyuri"),
    ("urn:oid:1.3.6.1.4.1.5923.1.2.1.4", "saml:eduorglegalname"),
    ("urn:oid:1.3.6.1.4.1.5923.1.2.1.5", "saml:eduorgsuperioruri"),
    ("urn:oid:1.3.6.1.4.1.5923.1.2.1.6", "saml:eduorgwhitepagesuri"),
    ("urn:oid:2.5.4.3", "saml:cn"),
    ("urn:oid:2.5.4.4", "saml:surname"),
    ("urn:oid:2.5.4.42", "saml:givenName"),
    ("urn:oid:2.5.4.41", "saml:name"),
    ("urn:oid:2.5.4.45", "saml:x500UniqueIdentifier"),
    ("urn:oid:0.9.2342.19200300.100.1.1", "saml:uid"),
    ("urn:oid:0.9.2342.19200300.100.1.3", "saml:mail"),
];

/// What a verified SAML response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedResponse {
    /// The assertion's `Issuer`.
    pub issuer: String,
    /// The `NameID` value.
    pub subject: String,
    /// The `NameID` `Format`, if given.
    pub subject_format: Option<String>,
    /// The `Recipient` of the subject confirmation (AWS's `Audience` output and `saml:aud`).
    pub recipient: String,
    /// The `SessionNotOnOrAfter` of the authentication statement, epoch seconds.
    pub session_not_on_or_after: Option<i64>,
    /// Every attribute with its values, in document order.
    pub attributes: Vec<(String, Vec<String>)>,
}

impl VerifiedResponse {
    /// The values of the attribute named `name`.
    pub fn values(&self, name: &str) -> Option<&[String]> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The single value of the attribute named `name`.
    fn value(&self, name: &str) -> Option<&str> {
        self.values(name).and_then(|v| v.first()).map(String::as_str)
    }

    /// `SubjectType` as AWS returns it: the 2.0 name-id format prefix removed.
    pub fn subject_type(&self) -> Option<String> {
        self.subject_format
            .as_deref()
            .map(|f| f.strip_prefix(NAMEID_FORMAT_PREFIX).unwrap_or(f).to_string())
    }
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidIdentityToken", 400, message)
}

fn invalid_response() -> AwsError {
    invalid("Invalid SAML response: the SAMLAssertion is not a well-formed, unencrypted SAML 2.0 Response.")
}

fn signature_invalid() -> AwsError {
    invalid("Response signature invalid")
}

fn parse_instant(text: &str) -> Result<i64, AwsError> {
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| invalid(format!("Invalid SAML response: {text} is not a valid dateTime.")))
}

/// True for the AWS sign-in endpoint, global (`https://signin.aws.amazon.com/saml`) or regional
/// (`https://us-east-1.signin.aws.amazon.com/saml`), optionally with `/acs/<provider id>`.
pub fn is_signin_endpoint(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let Some((host, path)) = rest.split_once('/') else {
        return false;
    };
    let host_ok = host == "signin.aws.amazon.com"
        || host.strip_suffix(".signin.aws.amazon.com").is_some_and(|region| {
            !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    let path_ok = path == "saml"
        || path
            .strip_prefix("saml/acs/")
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    host_ok && path_ok
}

fn exactly_one<'a>(parent: &'a Element, namespace: &'a str, local: &'a str) -> Option<&'a Element> {
    let mut found = parent.children_named(namespace, local);
    match (found.next(), found.next()) {
        (Some(element), None) => Some(element),
        _ => None,
    }
}

/// Decodes, verifies and checks a SAML response against the provider's `metadata` at `now`.
///
/// # Errors
/// `InvalidIdentityToken` for anything malformed, unsigned, badly signed, for another audience or
/// recipient, or from another issuer; `ExpiredTokenException` past `NotOnOrAfter`;
/// `IDPRejectedClaim` when the response's status is not success.
pub fn verify_response(encoded: &str, metadata: &IdpMetadata, now: i64) -> Result<VerifiedResponse, AwsError> {
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| invalid("Invalid SAML response: the SAMLAssertion is not valid base64."))?;
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(invalid_response());
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid_response())?;
    let root = c14n::parse(text).map_err(|_| invalid_response())?;
    if !root.is(PROTOCOL, "Response") {
        return Err(invalid_response());
    }

    // Shape: one assertion, a child of the response; unique IDs; nothing encrypted.
    let all = root.descendants();
    let mut ids = HashSet::new();
    let mut n_assertions = 0usize;
    for element in &all {
        if let Some(id) = element.attr("ID")
            && !ids.insert(id)
        {
            return Err(invalid_response());
        }
        if element.is(ASSERTION, "Assertion") {
            n_assertions += 1;
        }
        if element.is(ASSERTION, "EncryptedAssertion") || element.is(ASSERTION, "EncryptedAttribute") {
            return Err(invalid(
                "Invalid SAML response: encrypted assertions are not supported.",
            ));
        }
    }
    let assertion = root.child(ASSERTION, "Assertion").ok_or_else(invalid_response)?;
    if n_assertions != 1 {
        return Err(invalid_response());
    }

    // Signatures: every one present must verify, and there must be one.
    let mut n_signatures = 0usize;
    for signed in [&root, assertion] {
        let mut signatures = signed.children_named(DSIG, "Signature");
        if let Some(signature) = signatures.next() {
            if signatures.next().is_some() {
                return Err(signature_invalid());
            }
            xmldsig::verify_enveloped(signed, signature, &metadata.signing_keys).map_err(|error| {
                tracing::debug!(%error, "SAML signature rejected");
                signature_invalid()
            })?;
            n_signatures += 1;
        }
    }
    if n_signatures == 0 {
        return Err(signature_invalid());
    }

    // Status.
    let status = root
        .child(PROTOCOL, "Status")
        .and_then(|s| s.child(PROTOCOL, "StatusCode"))
        .and_then(|c| c.attr("Value"));
    if status != Some(STATUS_SUCCESS) {
        return Err(AwsError::new(
            "IDPRejectedClaim",
            403,
            "The identity provider reported that authentication failed.",
        ));
    }

    // Issuer.
    let issuer = assertion
        .child(ASSERTION, "Issuer")
        .map(|i| i.text().trim().to_string())
        .ok_or_else(invalid_response)?;
    let response_issuer = root.child(ASSERTION, "Issuer").map(|i| i.text().trim().to_string());
    if issuer != metadata.entity_id || response_issuer.is_some_and(|r| r != issuer) {
        return Err(invalid("Issuer not present in specified provider"));
    }

    // Conditions: validity window and audience.
    let conditions = assertion.child(ASSERTION, "Conditions");
    if let Some(conditions) = conditions {
        if let Some(not_before) = conditions.attr("NotBefore")
            && now + NOT_BEFORE_LEEWAY < parse_instant(not_before)?
        {
            return Err(invalid("Invalid SAML response: the assertion is not yet valid."));
        }
        if let Some(not_on_or_after) = conditions.attr("NotOnOrAfter") {
            let limit = parse_instant(not_on_or_after)?;
            if now >= limit {
                return Err(expired_token(now, limit));
            }
        }
    }
    let restrictions: Vec<&Element> = conditions
        .map(|c| c.children_named(ASSERTION, "AudienceRestriction").collect())
        .unwrap_or_default();
    let audience_ok = !restrictions.is_empty()
        && restrictions.iter().all(|restriction| {
            restriction.children_named(ASSERTION, "Audience").any(|a| {
                let audience = a.text();
                let audience = audience.trim();
                audience == AUDIENCE_URN || is_signin_endpoint(audience)
            })
        });
    if !audience_ok {
        return Err(invalid("Response does not contain the required audience."));
    }

    // Subject: the name id and the single bearer confirmation addressed to AWS.
    let subject = assertion.child(ASSERTION, "Subject").ok_or_else(invalid_response)?;
    let name_id = subject.child(ASSERTION, "NameID");
    let confirmation = exactly_one(subject, ASSERTION, "SubjectConfirmation")
        .filter(|c| c.attr("Method") == Some(BEARER))
        .and_then(|c| c.child(ASSERTION, "SubjectConfirmationData"))
        .ok_or_else(|| invalid("Invalid SAML response: exactly one bearer SubjectConfirmation is required."))?;
    let recipient = confirmation
        .attr("Recipient")
        .filter(|r| is_signin_endpoint(r))
        .ok_or_else(|| invalid("Invalid SAML response: the Recipient must be the AWS sign-in endpoint."))?;
    let not_on_or_after = confirmation
        .attr("NotOnOrAfter")
        .ok_or_else(|| invalid("Invalid SAML response: SubjectConfirmationData must have NotOnOrAfter."))
        .and_then(parse_instant)?;
    if now >= not_on_or_after {
        return Err(expired_token(now, not_on_or_after));
    }
    if let Some(not_before) = confirmation.attr("NotBefore")
        && now + NOT_BEFORE_LEEWAY < parse_instant(not_before)?
    {
        return Err(invalid("Invalid SAML response: the assertion is not yet valid."));
    }

    let session_not_on_or_after = match assertion
        .children_named(ASSERTION, "AuthnStatement")
        .find_map(|s| s.attr("SessionNotOnOrAfter"))
    {
        Some(text) => Some(parse_instant(text)?),
        None => None,
    };
    let mut attributes = Vec::new();
    for statement in assertion.children_named(ASSERTION, "AttributeStatement") {
        for attribute in statement.children_named(ASSERTION, "Attribute") {
            let Some(name) = attribute.attr("Name") else {
                continue;
            };
            let values = attribute
                .children_named(ASSERTION, "AttributeValue")
                .map(|v| v.text().trim().to_string())
                .collect();
            attributes.push((name.to_string(), values));
        }
    }
    Ok(VerifiedResponse {
        issuer,
        subject: name_id.map(|n| n.text().trim().to_string()).unwrap_or_default(),
        subject_format: name_id.and_then(|n| n.attr("Format")).map(str::to_string),
        recipient: recipient.to_string(),
        session_not_on_or_after,
        attributes,
    })
}

/// `NameQualifier`: base64 of SHA-1 over issuer, account id, `/` and the provider's name.
pub fn name_qualifier(issuer: &str, account: &str, provider_name: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{issuer}{account}/{provider_name}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// True when `value` is a valid role session name or source identity (`[\w+=,.@-]{2,64}`).
fn valid_session_name(value: &str) -> bool {
    (2..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// True when one value of the Role attribute is the pair `role_arn,provider_arn`, in either order.
fn role_pair_present(values: &[String], role_arn: &str, provider_arn: &str) -> bool {
    values.iter().any(|value| {
        let parts: Vec<&str> = value.split(',').map(str::trim).collect();
        matches!(parts.as_slice(), [a, b] if (*a == role_arn && *b == provider_arn) || (*a == provider_arn && *b == role_arn))
    })
}

impl Sts {
    pub(crate) async fn assume_role_with_saml(&self, call: &Call) -> Result<Effect, AwsError> {
        let role_arn = req_str(&call.input, "RoleArn")?;
        let provider_arn = req_str(&call.input, "PrincipalArn")?;
        let encoded = req_str(&call.input, "SAMLAssertion")?;
        let now = call.ctx.time.unix_timestamp();
        let provider = self
            .directory
            .saml_provider(provider_arn)
            .await?
            .ok_or_else(|| invalid("Specified provider doesn't exist."))?;
        let metadata =
            xmldsig::parse_metadata(&provider.metadata).ok_or_else(|| invalid("Could not parse metadata."))?;
        let response = verify_response(encoded, &metadata, now)?;

        let denied = || access_denied("Not authorized to perform sts:AssumeRoleWithSAML");
        let roles = response.values(ROLE_ATTRIBUTE).unwrap_or_default();
        if !role_pair_present(roles, role_arn, provider_arn) {
            return Err(denied());
        }
        let session_name = response
            .value(SESSION_NAME_ATTRIBUTE)
            .ok_or_else(|| invalid("RoleSessionName is required in AuthnResponse"))?
            .to_string();
        if !valid_session_name(&session_name) {
            return Err(invalid(
                "RoleSessionName in AuthnResponse must match [a-zA-Z_0-9+=,.@-]{2,64}",
            ));
        }
        let source_identity = response.value(SOURCE_IDENTITY_ATTRIBUTE).map(str::to_string);
        if let Some(source) = &source_identity
            && (!valid_session_name(source) || source.to_ascii_lowercase().starts_with("aws:"))
        {
            return Err(invalid(
                "Source Identity must match [a-zA-Z_0-9+=,.@-]{2,64} and not begin with \"aws:\"",
            ));
        }
        let tag_list: Vec<Value> = response
            .attributes
            .iter()
            .filter_map(|(name, values)| {
                let key = name.strip_prefix(PRINCIPAL_TAG_PREFIX)?;
                Some(json!({"Key": key, "Value": values.first().cloned().unwrap_or_default()}))
            })
            .collect();
        let tags = crate::input::session_tags(&json!({ "Tags": tag_list }))?;
        let transitive_input =
            json!({"TransitiveTagKeys": response.values(TRANSITIVE_TAGS_ATTRIBUTE).unwrap_or_default()});
        let transitive = crate::input::transitive_keys(&transitive_input, &tags)?;

        let role = self.directory.role_by_arn(role_arn).await?.ok_or_else(denied)?;
        let (provider_account, _, provider_name) =
            crate::directory::split_iam_arn(&provider.arn, "saml-provider").ok_or_else(denied)?;
        let qualifier = name_qualifier(&response.issuer, provider_account, provider_name);

        // Trust: the provider, as a federated principal, with the assertion's claims as context.
        let mut context = role_session::federated_context(call, &provider.arn, &session_name);
        context.insert("saml:sub", response.subject.as_str());
        if let Some(sub_type) = response.subject_type() {
            context.insert("saml:sub_type", sub_type);
        }
        context.insert("saml:aud", response.recipient.as_str());
        context.insert("saml:iss", response.issuer.as_str());
        context.insert("saml:namequalifier", qualifier.as_str());
        context.insert("saml:doc", format!("{provider_account}/{provider_name}"));
        for (name, values) in &response.attributes {
            if let Some((_, key)) = CONTEXT_ATTRIBUTES.iter().find(|(oid, _)| oid == name) {
                context.insert_multi(key, values.iter().map(String::as_str));
            }
        }
        if let Some(source) = &source_identity {
            context.insert("sts:SourceIdentity", source.as_str());
        }
        for (key, value) in crate::input::tag_context(&tags, &transitive) {
            context.insert_multi(&key, value.iter().map(String::as_str));
        }
        let mut actions = vec!["sts:AssumeRoleWithSAML"];
        if !tags.is_empty() {
            actions.push("sts:TagSession");
        }
        if source_identity.is_some() {
            actions.push("sts:SetSourceIdentity");
        }
        let principal = role_session::federated_principal(&provider.arn);
        if !role_session::trust_policy_allows(&role, principal, &actions, &context) {
            return Err(denied());
        }

        let requested = opt_i64(&call.input, "DurationSeconds");
        let attribute_duration = match response.value(SESSION_DURATION_ATTRIBUTE) {
            Some(text) => Some(
                text.parse::<i64>()
                    .ok()
                    .filter(|d| (900..=43_200).contains(d))
                    .ok_or_else(|| {
                        invalid("SessionDuration in AuthnResponse must be between 900 and 43200 seconds.")
                    })?,
            ),
            None => None,
        };
        let duration = requested.or(attribute_duration).unwrap_or(crate::DEFAULT_ROLE_DURATION);
        role_session::check_duration(&role, duration)?;
        let mut expires = now + duration;
        if let Some(limit) = response.session_not_on_or_after {
            if limit <= now {
                return Err(expired_token(now, limit));
            }
            expires = expires.min(limit);
        }
        let policies = crate::input::session_policies(&call.input, self.directory.as_ref(), &role.account).await?;
        let packed = crate::input::packed_size(&policies, &tags)?;
        let claims = SessionClaims {
            source_identity,
            session_tags: tags,
            transitive_tag_keys: transitive,
            policies: policies.for_session(),
            federated_provider: Some(provider.arn.clone()),
            ..role_session::claims(&role, &session_name, now, expires, "AssumeRoleWithSAML")
        };
        let mut output = Map::new();
        output.insert("Subject".into(), json!(response.subject));
        if let Some(sub_type) = response.subject_type() {
            output.insert("SubjectType".into(), json!(sub_type));
        }
        output.insert("Issuer".into(), json!(response.issuer));
        output.insert("Audience".into(), json!(response.recipient));
        output.insert("NameQualifier".into(), json!(qualifier));
        self.start_role_session(&role, claims, packed, output, WriteBatch::new())
    }
}

#[cfg(test)]
mod tests;
