//! CloudTrail event records, made by the pipeline for every authenticated request.
//!
//! Records are stored in the `events` table keyed by (account, time in milliseconds, event id), so
//! LookupEvents can scan an account's history newest first and trail delivery can follow a cursor.
//! A record is committed in the same store batch as the state change it describes.

use crate::clock::iso8601;
use crate::context::RequestContext;
use crate::principal::{Principal, PrincipalKind};
use crate::service::AuditResource;
use citadel_store::keys::Key;
use serde_json::{Map, Value, json};

/// The table of CloudTrail records.
pub const EVENTS: &str = "events";

/// Member names whose values never appear in a record (secrets, plaintexts, passwords, tokens).
const SECRET_MEMBERS: &[&str] = &[
    "SecretAccessKey",
    "SessionToken",
    "Password",
    "NewPassword",
    "OldPassword",
    "Plaintext",
    "PrivateKeyPlaintext",
    "AuthenticationCode1",
    "AuthenticationCode2",
    "TokenCode",
    "SAMLAssertion",
    "WebIdentityToken",
    "PrivateKey",
    "Base32StringSeed",
    "QRCodePNG",
    "ImportToken",
    "EncryptedKeyMaterial",
    "SSECustomerKey",
    "Message",
    "MessageBlob",
];

/// Replaces secret members anywhere in `value` with `HIDDEN_DUE_TO_SECURITY_REASONS`, as CloudTrail does.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, member) in map.iter_mut() {
                if SECRET_MEMBERS.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                    *member = Value::String("HIDDEN_DUE_TO_SECURITY_REASONS".into());
                } else {
                    redact(member);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// CloudTrail's `userIdentity` object for a principal.
pub fn user_identity(principal: &Principal) -> Value {
    let mut identity = Map::new();
    identity.insert("type".into(), json!(principal.identity_type()));
    match &principal.kind {
        PrincipalKind::Anonymous => {
            identity.insert("principalId".into(), json!(""));
            identity.insert("accountId".into(), json!("anonymous"));
            return Value::Object(identity);
        }
        PrincipalKind::Service { name } => {
            identity.insert("invokedBy".into(), json!(name));
            return Value::Object(identity);
        }
        _ => {}
    }
    identity.insert("principalId".into(), json!(principal.principal_id));
    identity.insert("arn".into(), json!(principal.arn));
    identity.insert("accountId".into(), json!(principal.account_id));
    if let Some(akid) = &principal.access_key_id {
        identity.insert("accessKeyId".into(), json!(akid));
    }
    match &principal.kind {
        PrincipalKind::User { name, .. } => {
            identity.insert("userName".into(), json!(name));
        }
        PrincipalKind::AssumedRole {
            role_arn,
            role_name,
            role_id,
            ..
        } => {
            let issuer = json!({
                "type": "Role", "principalId": role_id, "arn": role_arn,
                "accountId": principal.account_id, "userName": role_name,
            });
            identity.insert("sessionContext".into(), session_context(principal, issuer));
        }
        PrincipalKind::FederatedUser { issuer_arn, .. } => {
            let issuer_type = if issuer_arn.ends_with(":root") {
                "Root"
            } else {
                "IAMUser"
            };
            let issuer = json!({"type": issuer_type, "arn": issuer_arn, "accountId": principal.account_id});
            identity.insert("sessionContext".into(), session_context(principal, issuer));
        }
        _ => {
            if principal.session.is_some() {
                identity.insert("sessionContext".into(), session_context(principal, Value::Null));
            }
        }
    }
    Value::Object(identity)
}

fn session_context(principal: &Principal, issuer: Value) -> Value {
    let mut context = Map::new();
    if !issuer.is_null() {
        context.insert("sessionIssuer".into(), issuer);
    }
    if let Some(session) = &principal.session {
        context.insert(
            "attributes".into(),
            json!({
                "creationDate": iso8601(session.issued_at),
                "mfaAuthenticated": if session.mfa_authenticated_at.is_some() { "true" } else { "false" },
            }),
        );
        if let Some(source) = &session.source_identity {
            context.insert("sourceIdentity".into(), json!(source));
        }
        if let Some(provider) = &session.federated_provider {
            if session.issuer_operation == "AssumeRoleWithWebIdentity" {
                context.insert("webIdFederationData".into(), json!({"federatedProvider": provider}));
            }
        }
    }
    Value::Object(context)
}

/// The facts of one event, gathered by the pipeline.
pub struct EventFacts<'a> {
    /// The request context.
    pub ctx: &'a RequestContext,
    /// `iam.amazonaws.com`, ...
    pub event_source: &'a str,
    /// Whether the operation is read-only.
    pub read_only: bool,
    /// Management or data event.
    pub management: bool,
    /// The request parameters (redacted here).
    pub request: Option<Value>,
    /// The response elements for mutating calls (redacted here).
    pub response: Option<Value>,
    /// The error code and message of a failed call.
    pub error: Option<(&'a str, &'a str)>,
    /// Touched resources.
    pub resources: &'a [AuditResource],
    /// The event id (a UUID).
    pub event_id: String,
    /// The account receiving the event (the resource owner; usually the caller's account).
    pub recipient_account_id: &'a str,
}

/// Builds the CloudTrail record for an event.
pub fn record(facts: EventFacts<'_>) -> Value {
    let ctx = facts.ctx;
    let mut request = facts.request;
    if let Some(r) = request.as_mut() {
        redact(r);
    }
    let mut response = facts.response;
    if let Some(r) = response.as_mut() {
        redact(r);
    }
    let mut record = Map::new();
    record.insert("eventVersion".into(), json!("1.09"));
    record.insert("userIdentity".into(), user_identity(&ctx.principal));
    record.insert("eventTime".into(), json!(iso8601(ctx.time)));
    record.insert("eventSource".into(), json!(facts.event_source));
    record.insert("eventName".into(), json!(ctx.operation));
    record.insert("awsRegion".into(), json!(ctx.region));
    record.insert("sourceIPAddress".into(), json!(ctx.source_ip.to_string()));
    let agent: String = ctx.user_agent.chars().take(1024).collect();
    record.insert("userAgent".into(), json!(agent));
    if let Some((code, message)) = facts.error {
        record.insert("errorCode".into(), json!(code));
        record.insert("errorMessage".into(), json!(message));
    }
    record.insert("requestParameters".into(), request.unwrap_or(Value::Null));
    record.insert("responseElements".into(), response.unwrap_or(Value::Null));
    record.insert("requestID".into(), json!(ctx.request_id));
    record.insert("eventID".into(), json!(facts.event_id));
    record.insert("readOnly".into(), json!(facts.read_only));
    if !facts.resources.is_empty() {
        let resources: Vec<Value> = facts
            .resources
            .iter()
            .map(|r| json!({"ARN": r.arn, "accountId": r.account_id, "type": r.resource_type}))
            .collect();
        record.insert("resources".into(), Value::Array(resources));
    }
    record.insert("eventType".into(), json!("AwsApiCall"));
    record.insert("managementEvent".into(), json!(facts.management));
    record.insert("recipientAccountId".into(), json!(facts.recipient_account_id));
    record.insert(
        "eventCategory".into(),
        json!(if facts.management { "Management" } else { "Data" }),
    );
    if ctx.secure_transport {
        record.insert(
            "tlsDetails".into(),
            json!({"tlsVersion": "TLSv1.3", "clientProvidedHostHeader": ""}),
        );
    }
    Value::Object(record)
}

/// The store key of an event: account, then time in milliseconds, then event id.
pub fn event_key(account_id: &str, time_ms: u64, event_id: &str) -> Vec<u8> {
    Key::new().str(account_id).u64(time_ms).str(event_id).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_at_any_depth() {
        let mut value =
            json!({"AccessKey": {"SecretAccessKey": "s3cr3t", "AccessKeyId": "AKIA"}, "List": [{"Password": "p"}]});
        redact(&mut value);
        assert_eq!(value["AccessKey"]["SecretAccessKey"], "HIDDEN_DUE_TO_SECURITY_REASONS");
        assert_eq!(value["AccessKey"]["AccessKeyId"], "AKIA");
        assert_eq!(value["List"][0]["Password"], "HIDDEN_DUE_TO_SECURITY_REASONS");
    }

    #[test]
    fn root_identity_has_account_fields() {
        let principal = Principal::root("123456789012", Some("AKIAEXAMPLE".into()));
        let identity = user_identity(&principal);
        assert_eq!(identity["type"], "Root");
        assert_eq!(identity["arn"], "arn:aws:iam::123456789012:root");
        assert_eq!(identity["accessKeyId"], "AKIAEXAMPLE");
    }
}
