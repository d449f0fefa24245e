//! CloudTrail event records, made by the pipeline for every authenticated request.
//!
//! Records are stored in the `events` table keyed by (account, time in milliseconds, event id), so
//! LookupEvents can scan an account's history newest first and trail delivery can follow a cursor.
//! A record is committed in the same store batch as the state change it describes.
//!
//! # How `requestParameters` and `responseElements` are written
//!
//! The pipeline has the call's input and output shaped like botocore's model (`UserName`,
//! `PolicyArn`, `KeyId`); [`elements`] rewrites them the way AWS's own records show them, walking
//! the model so that only structure members are renamed:
//!
//! 1. **Member names lose the capital of their first letter, and nothing else changes**: `UserName`
//!    → `userName`, `PolicyArn` → `policyArn`, `S3BucketName` → `s3BucketName`, and names that begin
//!    with an acronym keep the rest of it: STS writes `sAMLAssertionID`, not `samlAssertionId`.
//!    Sources: the IAM User Guide, "Logging IAM and AWS STS API calls with AWS CloudTrail"
//!    (<https://docs.aws.amazon.com/IAM/latest/UserGuide/cloudtrail-integration.html>: GetUserPolicy
//!    `{"userName", "policyName"}`, AssumeRole `{"roleArn", "roleSessionName", "serialNumber"}`,
//!    AssumeRoleWithSAML `{"sAMLAssertionID", "principalArn", "durationSeconds"}`); the KMS Developer
//!    Guide's log entries (<https://docs.aws.amazon.com/kms/latest/developerguide/ct-generatedatakey.html>,
//!    `ct-encrypt.html`: `{"keyId", "keySpec", "encryptionContext", "encryptionAlgorithm"}`).
//! 2. **KMS keeps a name whose first two letters are capitals** (Java's bean rule): its CreateKey
//!    record shows `keyMetadata: {"AWSAccountId", "keyId", "arn", "creationDate", ...}`
//!    (<https://docs.aws.amazon.com/kms/latest/developerguide/ct-createkey.html>). See [`Casing`].
//! 3. **Map keys are data and keep their spelling**: `encryptionContext: {"Department": ...}` in the
//!    same KMS examples. Lists of structures are renamed element by element (`tags: [{"key", "value"}]`).
//! 4. **Secrets are left out, not masked**: AssumeRole's `credentials` has `accessKeyId`,
//!    `sessionToken` and `expiration` but no secret key (IAM User Guide, above); CreateAccessKey's
//!    `accessKey` has no `secretAccessKey`, CreateLoginProfile's request no `password`; KMS Encrypt and
//!    GenerateDataKey records carry no plaintext and no ciphertext. So members named in
//!    [`SECRET_MEMBERS`] and every member of blob type (plaintexts, ciphertexts, MFA seeds and QR
//!    codes, import tokens, signatures) are dropped. The assertion of AssumeRoleWithSAML and the token
//!    of AssumeRoleWithWebIdentity are dropped the same way; AWS shows neither.
//! 5. **Timestamps** are written as AWS's records write them, `Jul 18, 2014 4:07:39 PM` (UTC), as in
//!    the `expiration` of the AssumeRole example and the `createDate` of IAM's records.
//! 6. **Parameters or elements that end up empty are `null`**: GetCallerIdentity has
//!    `"requestParameters": null, "responseElements": null`.
//!
//! `responseElements` are recorded for calls that change something, plus the STS calls that issue
//! credentials ([`records_response`]), which AWS records with their `credentials` and
//! `assumedRoleUser` though they are read-only; other read-only calls (GetCallerIdentity, Get*,
//! List*, KMS Encrypt/Decrypt/GenerateDataKey) have `null`.
//!
//! Whatever reaches [`record`] is then passed through [`redact`], which masks any member still named
//! like a secret, so no path (S3's hand-built parameters included) can leak one.

use crate::clock::Iso8601;
use crate::context::RequestContext;
use crate::principal::{Principal, PrincipalKind};
use crate::service::{AuditResource, Check};
use citadel_store::keys::Key;
use citadel_wire::codec::ServiceModel;
use citadel_wire::codec::model::ShapeType;
use serde_json::{Map, Value};

/// The table of CloudTrail records.
pub const EVENTS: &str = "events";

/// Member names whose values never appear in a record (secrets, plaintexts, passwords, one-time
/// codes, assertions and tokens that are credentials by themselves). STS session tokens are not
/// among them: AWS shows them in `credentials`, and they are useless without the secret key.
const SECRET_MEMBERS: &[&str] = &[
    "SecretAccessKey",
    "RawSecretAccessKey",
    "Password",
    "NewPassword",
    "OldPassword",
    "ServicePassword",
    "KeyStorePassword",
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
    "SharedSecret",
    "SSECustomerKey",
    "Message",
    "MessageBlob",
];

fn is_secret(name: &str) -> bool {
    SECRET_MEMBERS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Replaces secret members anywhere in `value` with `HIDDEN_DUE_TO_SECURITY_REASONS`, as CloudTrail
/// does for values it must not show; the last line of defence behind [`elements`], which leaves
/// them out altogether.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, member) in map.iter_mut() {
                if is_secret(name) {
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

/// How a service's records spell member names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Casing {
    /// Lower-case the first letter only: `UserName` → `userName`, `SAMLAssertionID` →
    /// `sAMLAssertionID` (IAM, STS, CloudTrail, CloudWatch Logs, CloudWatch).
    FirstLetter,
    /// Java's bean rule: as [`Casing::FirstLetter`], except that a name whose first two letters are
    /// capitals is kept: `AWSAccountId` (KMS).
    Bean,
}

impl Casing {
    /// The casing of a service, by signing name.
    pub fn of_service(signing_name: &str) -> Self {
        if signing_name == "kms" {
            Self::Bean
        } else {
            Self::FirstLetter
        }
    }

    /// A model member name as the records spell it.
    pub fn member_name(self, name: &str) -> String {
        let mut chars = name.chars();
        let Some(first) = chars.next() else {
            return String::new();
        };
        if self == Self::Bean && first.is_uppercase() && chars.clone().next().is_some_and(char::is_uppercase) {
            return name.to_string();
        }
        first.to_lowercase().chain(chars).collect()
    }
}

/// True when a call's record carries its `responseElements`: calls that change something, and the
/// STS calls that issue credentials, which AWS records with their `credentials` and
/// `assumedRoleUser` although they change nothing. GetCallerIdentity and the other read-only calls
/// have `null`, as in AWS.
pub fn records_response(event_source: &str, operation: &str, read_only: bool) -> bool {
    !read_only
        || (event_source == "sts.amazonaws.com"
            && matches!(
                operation,
                "AssumeRole"
                    | "AssumeRoleWithSAML"
                    | "AssumeRoleWithWebIdentity"
                    | "GetSessionToken"
                    | "GetFederationToken"
                    | "AssumeRoot"
            ))
}

/// The `resources` of a call whose handler named none, from the resources it was authorized on.
/// Only KMS needs it: AWS lists the key in every KMS record, Encrypt and GenerateDataKey included
/// (`"resources": [{"ARN": "arn:aws:kms:...:key/...", "accountId": ...}]` in the KMS Developer
/// Guide's log entries), and the key is exactly what the call's checks name. Other services list
/// only what their handlers report, as AWS's IAM records mostly carry no `resources`.
pub fn resources_of_checks(event_source: &str, checks: &[Check], caller_account: &str) -> Vec<AuditResource> {
    if event_source != "kms.amazonaws.com" {
        return Vec::new();
    }
    let mut resources: Vec<AuditResource> = Vec::new();
    for check in checks {
        if check.resource.starts_with("arn:")
            && check.resource.contains(":key/")
            && !resources.iter().any(|r| r.arn == check.resource)
        {
            resources.push(AuditResource {
                arn: check.resource.clone(),
                account_id: check
                    .resource_account
                    .clone()
                    .unwrap_or_else(|| caller_account.to_string()),
                resource_type: "AWS::KMS::Key",
            });
        }
    }
    resources
}

/// Which side of an operation a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The input: `requestParameters`.
    Request,
    /// The output: `responseElements`.
    Response,
}

/// The `requestParameters` or `responseElements` of a call to `service` (signing name) from its
/// model-shaped input or output, as AWS writes them (see the module documentation); `None` when
/// nothing is left. Without a model the value is kept as it is, for [`redact`] to clean.
pub fn elements(service: &str, operation: &str, side: Side, value: &Value) -> Option<Value> {
    let model = citadel_wire::codec::model(service);
    let shape = model.and_then(|m| m.operation(operation)).and_then(|op| match side {
        Side::Request => op.input.as_ref(),
        Side::Response => op.output.as_ref(),
    });
    let converted = match (model, shape) {
        (Some(model), Some(shape)) => convert(model, &shape.shape, value, Casing::of_service(service)),
        _ => Some(value.clone()),
    };
    converted.filter(|v| match v {
        Value::Null => false,
        Value::Object(map) => !map.is_empty(),
        _ => true,
    })
}

/// Rewrites `value` of shape `shape_name`; `None` means the value is left out of the record.
fn convert(model: &ServiceModel, shape_name: &str, value: &Value, casing: Casing) -> Option<Value> {
    let Some(shape) = model.shape(shape_name) else {
        return Some(value.clone());
    };
    match (shape.kind, value) {
        (ShapeType::Blob, _) => None,
        (ShapeType::Structure, Value::Object(object)) => {
            let mut out = Map::new();
            for (name, member_value) in object {
                if member_value.is_null() || is_secret(name) {
                    continue;
                }
                let converted = match shape.member(name) {
                    Some(member) => convert(model, &member.target.shape, member_value, casing),
                    None => Some(member_value.clone()),
                };
                if let Some(converted) = converted {
                    out.insert(casing.member_name(name), converted);
                }
            }
            Some(Value::Object(out))
        }
        (ShapeType::List, Value::Array(items)) => {
            let Some(member) = &shape.member else {
                return Some(value.clone());
            };
            Some(Value::Array(
                items
                    .iter()
                    .filter_map(|item| convert(model, &member.shape, item, casing))
                    .collect(),
            ))
        }
        (ShapeType::Map, Value::Object(entries)) => {
            let Some(target) = &shape.value else {
                return Some(value.clone());
            };
            Some(Value::Object(
                entries
                    .iter()
                    .filter_map(|(k, v)| convert(model, &target.shape, v, casing).map(|v| (k.clone(), v)))
                    .collect(),
            ))
        }
        (ShapeType::Timestamp, _) => Some(
            citadel_wire::codec::timestamp::from_value(value)
                .and_then(record_time)
                .map_or_else(|| value.clone(), Value::String),
        ),
        _ => Some(value.clone()),
    }
}

/// A time as AWS's records write timestamps inside parameters and elements: `Jul 18, 2014 4:07:39 PM`.
fn record_time(seconds: f64) -> Option<String> {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[month repr:short] [day padding:none], [year] [hour repr:12 padding:none]:[minute]:[second] [period]"
    );
    let whole = seconds.floor() as i64;
    time::OffsetDateTime::from_unix_timestamp(whole)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
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
    /// The request parameters, as AWS names them ([`elements`]); redacted here.
    pub request: Option<Value>,
    /// The response elements, when the call has them ([`records_response`], [`elements`]);
    /// redacted here.
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

/// The CloudTrail record for an event, as a JSON value: [`record_bytes`] parsed back, for callers
/// that inspect or edit a record (tests, benchmarks). The pipeline stores the bytes directly.
pub fn record(facts: EventFacts<'_>) -> Value {
    serde_json::from_slice(&record_bytes(facts)).unwrap_or(Value::Null)
}

/// The CloudTrail record for an event, serialized as JSON straight into the buffer instead of through
/// a `serde_json::Value` tree: the pipeline stores one of these for every call, and building the tree
/// (a map per object, a string per key) was most of its cost. The tests check it byte for byte
/// against a tree-built reference.
pub fn record_bytes(facts: EventFacts<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    let written = write_record(&mut serde_json::Serializer::new(&mut out), facts);
    debug_assert!(written.is_ok(), "writing JSON into a Vec cannot fail");
    out
}

fn write_record<W: std::io::Write>(
    serializer: &mut serde_json::Serializer<W>,
    facts: EventFacts<'_>,
) -> Result<(), serde_json::Error> {
    use serde::ser::{SerializeMap, Serializer};
    let ctx = facts.ctx;
    let mut request = facts.request;
    if let Some(r) = request.as_mut() {
        redact(r);
    }
    let mut response = facts.response;
    if let Some(r) = response.as_mut() {
        redact(r);
    }
    let mut map = serializer.serialize_map(None)?;
    map.serialize_entry("eventVersion", "1.09")?;
    map.serialize_entry("userIdentity", &UserIdentity(&ctx.principal))?;
    map.serialize_entry("eventTime", &Iso8601(ctx.time))?;
    map.serialize_entry("eventSource", facts.event_source)?;
    map.serialize_entry("eventName", ctx.operation)?;
    map.serialize_entry("awsRegion", &ctx.region)?;
    map.serialize_entry("sourceIPAddress", &ctx.source_ip)?;
    let agent = ctx
        .user_agent
        .char_indices()
        .nth(1024)
        .map_or(ctx.user_agent.as_str(), |(end, _)| &ctx.user_agent[..end]);
    map.serialize_entry("userAgent", agent)?;
    if let Some((code, message)) = facts.error {
        map.serialize_entry("errorCode", code)?;
        map.serialize_entry("errorMessage", message)?;
    }
    map.serialize_entry("requestParameters", &request)?;
    map.serialize_entry("responseElements", &response)?;
    map.serialize_entry("requestID", &ctx.request_id)?;
    map.serialize_entry("eventID", &facts.event_id)?;
    map.serialize_entry("readOnly", &facts.read_only)?;
    if !facts.resources.is_empty() {
        map.serialize_entry("resources", &Resources(facts.resources))?;
    }
    map.serialize_entry("eventType", "AwsApiCall")?;
    map.serialize_entry("managementEvent", &facts.management)?;
    map.serialize_entry("recipientAccountId", facts.recipient_account_id)?;
    map.serialize_entry("eventCategory", if facts.management { "Management" } else { "Data" })?;
    if ctx.secure_transport {
        map.serialize_entry("tlsDetails", &TlsDetails)?;
    }
    map.end()
}

/// CloudTrail's `userIdentity` object for a principal, serialized straight into the record.
struct UserIdentity<'a>(&'a Principal);

impl serde::Serialize for UserIdentity<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let principal = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", principal.identity_type())?;
        match &principal.kind {
            PrincipalKind::Anonymous => {
                map.serialize_entry("principalId", "")?;
                map.serialize_entry("accountId", "anonymous")?;
                return map.end();
            }
            PrincipalKind::Service { name } => {
                map.serialize_entry("invokedBy", name)?;
                return map.end();
            }
            _ => {}
        }
        map.serialize_entry("principalId", &principal.principal_id)?;
        map.serialize_entry("arn", &principal.arn)?;
        map.serialize_entry("accountId", &principal.account_id)?;
        if let Some(akid) = &principal.access_key_id {
            map.serialize_entry("accessKeyId", akid)?;
        }
        match &principal.kind {
            PrincipalKind::User { name, .. } => map.serialize_entry("userName", name)?,
            PrincipalKind::AssumedRole { .. } | PrincipalKind::FederatedUser { .. } => {
                map.serialize_entry("sessionContext", &SessionContext(principal))?;
            }
            _ => {
                if principal.session.is_some() {
                    map.serialize_entry("sessionContext", &SessionContext(principal))?;
                }
            }
        }
        map.end()
    }
}

/// `userIdentity.sessionContext` with its issuer, serialized without building it: every request made with
/// session credentials writes one, and building it as a `Value` tree made a session request's record
/// cost about three times a long-term key's.
struct SessionContext<'a>(&'a Principal);

impl serde::Serialize for SessionContext<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let principal = self.0;
        let mut map = serializer.serialize_map(None)?;
        match &principal.kind {
            PrincipalKind::AssumedRole {
                role_arn,
                role_name,
                role_id,
                ..
            } => map.serialize_entry(
                "sessionIssuer",
                &SessionIssuer {
                    issuer_type: "Role",
                    principal_id: Some(role_id),
                    arn: role_arn,
                    account_id: &principal.account_id,
                    user_name: Some(role_name),
                },
            )?,
            PrincipalKind::FederatedUser { issuer_arn, .. } => map.serialize_entry(
                "sessionIssuer",
                &SessionIssuer {
                    issuer_type: if issuer_arn.ends_with(":root") {
                        "Root"
                    } else {
                        "IAMUser"
                    },
                    principal_id: None,
                    arn: issuer_arn,
                    account_id: &principal.account_id,
                    user_name: None,
                },
            )?,
            _ => {}
        }
        if let Some(session) = &principal.session {
            map.serialize_entry(
                "attributes",
                &SessionAttributes {
                    creation_date: Iso8601(session.issued_at),
                    mfa_authenticated: if session.mfa_authenticated_at.is_some() {
                        "true"
                    } else {
                        "false"
                    },
                },
            )?;
            if let Some(source) = &session.source_identity {
                map.serialize_entry("sourceIdentity", source)?;
            }
            if let Some(provider) = &session.federated_provider
                && session.issuer_operation == "AssumeRoleWithWebIdentity"
            {
                map.serialize_entry(
                    "webIdFederationData",
                    &WebIdFederationData {
                        federated_provider: provider,
                    },
                )?;
            }
        }
        map.end()
    }
}

/// `sessionContext.sessionIssuer`, in AWS's member order.
#[derive(serde::Serialize)]
struct SessionIssuer<'a> {
    #[serde(rename = "type")]
    issuer_type: &'static str,
    #[serde(rename = "principalId", skip_serializing_if = "Option::is_none")]
    principal_id: Option<&'a str>,
    arn: &'a str,
    #[serde(rename = "accountId")]
    account_id: &'a str,
    #[serde(rename = "userName", skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct SessionAttributes {
    #[serde(rename = "creationDate")]
    creation_date: Iso8601,
    #[serde(rename = "mfaAuthenticated")]
    mfa_authenticated: &'static str,
}

#[derive(serde::Serialize)]
struct WebIdFederationData<'a> {
    #[serde(rename = "federatedProvider")]
    federated_provider: &'a str,
}

impl serde::Serialize for Iso8601 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct Resources<'a>(&'a [AuditResource]);

impl serde::Serialize for Resources<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct One<'a>(&'a AuditResource);
        impl serde::Serialize for One<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("ARN", &self.0.arn)?;
                map.serialize_entry("accountId", &self.0.account_id)?;
                map.serialize_entry("type", self.0.resource_type)?;
                map.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for resource in self.0 {
            seq.serialize_element(&One(resource))?;
        }
        seq.end()
    }
}

struct TlsDetails;

impl serde::Serialize for TlsDetails {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("tlsVersion", "TLSv1.3")?;
        map.serialize_entry("clientProvidedHostHeader", "")?;
        map.end()
    }
}

/// The store key of an event: account, then time in milliseconds, then event id.
pub fn event_key(account_id: &str, time_ms: u64, event_id: &str) -> Vec<u8> {
    Key::new().str(account_id).u64(time_ms).str(event_id).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::iso8601;
    use serde_json::json;

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
    fn member_names_follow_each_services_casing() {
        let first = Casing::FirstLetter;
        assert_eq!(first.member_name("UserName"), "userName");
        assert_eq!(first.member_name("PolicyArn"), "policyArn");
        assert_eq!(first.member_name("SAMLAssertionID"), "sAMLAssertionID");
        assert_eq!(first.member_name("S3BucketName"), "s3BucketName");
        assert_eq!(first.member_name("logGroupName"), "logGroupName");
        assert_eq!(first.member_name(""), "");
        let bean = Casing::of_service("kms");
        assert_eq!(bean.member_name("KeyId"), "keyId");
        assert_eq!(bean.member_name("AWSAccountId"), "AWSAccountId");
        assert_eq!(Casing::of_service("iam"), Casing::FirstLetter);
    }

    #[test]
    fn iam_parameters_are_lower_camel_with_list_members_renamed() {
        let input = json!({"UserName": "alice", "Path": "/", "Tags": [{"Key": "Team", "Value": "red"}]});
        let out = elements("iam", "CreateUser", Side::Request, &input).unwrap();
        assert_eq!(
            out,
            json!({"userName": "alice", "path": "/", "tags": [{"key": "Team", "value": "red"}]})
        );
        let input = json!({"UserName": "alice", "PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"});
        let out = elements("iam", "AttachUserPolicy", Side::Request, &input).unwrap();
        assert_eq!(out["userName"], "alice");
        assert_eq!(out["policyArn"], "arn:aws:iam::aws:policy/ReadOnlyAccess");
    }

    #[test]
    fn assume_role_elements_show_credentials_without_the_secret() {
        let output = json!({
            "Credentials": {
                "AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "s3cr3t",
                "SessionToken": "FwoGZXIvYXdzEXAMPLE", "Expiration": 1_405_696_059,
            },
            "AssumedRoleUser": {"AssumedRoleId": "AROAEXAMPLE:s", "Arn": "arn:aws:sts::111122223333:assumed-role/r/s"},
            "PackedPolicySize": 6,
        });
        let out = elements("sts", "AssumeRole", Side::Response, &output).unwrap();
        assert_eq!(
            out,
            json!({
                "credentials": {
                    "accessKeyId": "ASIAEXAMPLE", "sessionToken": "FwoGZXIvYXdzEXAMPLE",
                    "expiration": "Jul 18, 2014 3:07:39 PM",
                },
                "assumedRoleUser": {"assumedRoleId": "AROAEXAMPLE:s", "arn": "arn:aws:sts::111122223333:assumed-role/r/s"},
                "packedPolicySize": 6,
            })
        );
        let input = json!({"RoleArn": "arn:aws:iam::111122223333:role/r", "RoleSessionName": "s",
                           "SerialNumber": "arn:aws:iam::111122223333:mfa/a", "TokenCode": "123456"});
        let out = elements("sts", "AssumeRole", Side::Request, &input).unwrap();
        assert_eq!(
            out,
            json!({"roleArn": "arn:aws:iam::111122223333:role/r", "roleSessionName": "s",
                   "serialNumber": "arn:aws:iam::111122223333:mfa/a"})
        );
    }

    #[test]
    fn kms_records_keep_context_keys_and_never_carry_blobs() {
        let input = json!({
            "KeyId": "alias/app", "Plaintext": "c2VjcmV0", "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
            "EncryptionContext": {"Department": "Engineering", "aws:s3:arn": "arn:aws:s3:::b"},
        });
        let out = elements("kms", "Encrypt", Side::Request, &input).unwrap();
        assert_eq!(
            out,
            json!({"keyId": "alias/app", "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                   "encryptionContext": {"Department": "Engineering", "aws:s3:arn": "arn:aws:s3:::b"}})
        );
        let decrypt = json!({"CiphertextBlob": "AQIDBA==", "EncryptionContext": {"k": "v"}});
        assert_eq!(
            elements("kms", "Decrypt", Side::Request, &decrypt).unwrap(),
            json!({"encryptionContext": {"k": "v"}})
        );
        let data_key =
            json!({"CiphertextBlob": "AQID", "Plaintext": "BAUG", "KeyId": "arn:aws:kms:us-east-1:111122223333:key/k"});
        assert_eq!(
            elements("kms", "GenerateDataKey", Side::Response, &data_key).unwrap(),
            json!({"keyId": "arn:aws:kms:us-east-1:111122223333:key/k"})
        );
        let created = json!({"KeyMetadata": {"AWSAccountId": "111122223333", "KeyId": "k", "CreationDate": 0}});
        assert_eq!(
            elements("kms", "CreateKey", Side::Response, &created).unwrap(),
            json!({"keyMetadata": {"AWSAccountId": "111122223333", "keyId": "k", "creationDate": "Jan 1, 1970 12:00:00 AM"}})
        );
    }

    #[test]
    fn sensitive_members_are_left_out_after_renaming() {
        let cases = [
            (
                "iam",
                "CreateAccessKey",
                Side::Response,
                json!({"AccessKey": {"UserName": "a", "AccessKeyId": "AKIA", "Status": "Active", "SecretAccessKey": "s"}}),
                json!({"accessKey": {"userName": "a", "accessKeyId": "AKIA", "status": "Active"}}),
            ),
            (
                "iam",
                "CreateLoginProfile",
                Side::Request,
                json!({"UserName": "a", "Password": "hunter2", "PasswordResetRequired": true}),
                json!({"userName": "a", "passwordResetRequired": true}),
            ),
            (
                "iam",
                "ChangePassword",
                Side::Request,
                json!({"OldPassword": "o", "NewPassword": "n"}),
                Value::Null,
            ),
            (
                "iam",
                "EnableMFADevice",
                Side::Request,
                json!({"UserName": "a", "SerialNumber": "arn:mfa", "AuthenticationCode1": "1", "AuthenticationCode2": "2"}),
                json!({"userName": "a", "serialNumber": "arn:mfa"}),
            ),
            (
                "iam",
                "CreateVirtualMFADevice",
                Side::Response,
                json!({"VirtualMFADevice": {"SerialNumber": "arn:mfa", "Base32StringSeed": "QUJD", "QRCodePNG": "iVBO"}}),
                json!({"virtualMFADevice": {"serialNumber": "arn:mfa"}}),
            ),
            (
                "iam",
                "UploadServerCertificate",
                Side::Request,
                json!({"ServerCertificateName": "c", "CertificateBody": "-----BEGIN CERTIFICATE-----",
                    "PrivateKey": "-----BEGIN PRIVATE KEY-----"}),
                json!({"serverCertificateName": "c", "certificateBody": "-----BEGIN CERTIFICATE-----"}),
            ),
            (
                "sts",
                "AssumeRoleWithSAML",
                Side::Request,
                json!({"RoleArn": "arn:role", "PrincipalArn": "arn:saml", "SAMLAssertion": "PHNhbWw+"}),
                json!({"roleArn": "arn:role", "principalArn": "arn:saml"}),
            ),
            (
                "sts",
                "AssumeRoleWithWebIdentity",
                Side::Request,
                json!({"RoleArn": "arn:role", "RoleSessionName": "s", "WebIdentityToken": "eyJ"}),
                json!({"roleArn": "arn:role", "roleSessionName": "s"}),
            ),
            (
                "sts",
                "GetSessionToken",
                Side::Request,
                json!({"SerialNumber": "arn:mfa", "TokenCode": "123456"}),
                json!({"serialNumber": "arn:mfa"}),
            ),
        ];
        for (service, op, side, value, expected) in cases {
            let out = elements(service, op, side, &value).unwrap_or(Value::Null);
            assert_eq!(out, expected, "{service} {op}");
        }
    }

    #[test]
    fn read_only_calls_have_no_response_elements_but_credential_calls_do() {
        assert!(!records_response("sts.amazonaws.com", "GetCallerIdentity", true));
        assert!(!records_response("sts.amazonaws.com", "GetAccessKeyInfo", true));
        for op in [
            "AssumeRole",
            "AssumeRoleWithSAML",
            "AssumeRoleWithWebIdentity",
            "GetSessionToken",
            "GetFederationToken",
        ] {
            assert!(records_response("sts.amazonaws.com", op, true), "{op}");
        }
        assert!(!records_response("kms.amazonaws.com", "Encrypt", true));
        assert!(!records_response("iam.amazonaws.com", "GetUser", true));
        assert!(records_response("iam.amazonaws.com", "CreateUser", false));
        assert_eq!(elements("sts", "GetCallerIdentity", Side::Request, &json!({})), None);
    }

    #[test]
    fn kms_records_name_the_key_they_were_authorized_on() {
        let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let checks = [Check::new("kms:Encrypt", key), Check::new("kms:Encrypt", key)];
        let resources = resources_of_checks("kms.amazonaws.com", &checks, "111122223333");
        assert_eq!(resources.len(), 1);
        assert_eq!(resources[0].arn, key);
        assert_eq!(resources[0].account_id, "111122223333");
        assert_eq!(resources[0].resource_type, "AWS::KMS::Key");
        assert!(resources_of_checks("kms.amazonaws.com", &[Check::new("kms:CreateKey", "*")], "1").is_empty());
        assert!(resources_of_checks("iam.amazonaws.com", &checks, "1").is_empty());
    }

    #[test]
    fn records_carry_aws_shaped_elements_and_stay_redacted() {
        let principal = std::sync::Arc::new(Principal::root("111122223333", Some("AKIAEXAMPLE".into())));
        let ctx = RequestContext {
            request_id: "req".into(),
            principal,
            region: "us-east-1".into(),
            source_ip: "192.0.2.1".parse().unwrap(),
            user_agent: "test".into(),
            secure_transport: false,
            time: time::OffsetDateTime::UNIX_EPOCH,
            service: "sts",
            operation: "AssumeRole",
        };
        let output = json!({"Credentials": {"AccessKeyId": "ASIA", "SecretAccessKey": "wJalrSECRET", "SessionToken": "t", "Expiration": 0}});
        let response = elements("sts", "AssumeRole", Side::Response, &output);
        let record = record(EventFacts {
            ctx: &ctx,
            event_source: "sts.amazonaws.com",
            read_only: true,
            management: true,
            request: elements(
                "sts",
                "AssumeRole",
                Side::Request,
                &json!({"RoleArn": "arn:role", "RoleSessionName": "s"}),
            ),
            response,
            error: None,
            resources: &[],
            event_id: "e".into(),
            recipient_account_id: "111122223333",
        });
        assert_eq!(record["requestParameters"]["roleArn"], "arn:role");
        assert_eq!(record["responseElements"]["credentials"]["accessKeyId"], "ASIA");
        assert_eq!(record["responseElements"]["credentials"]["sessionToken"], "t");
        assert!(!record.to_string().contains("wJalrSECRET"), "{record}");
        // A secret-named member that reaches the record by another path is masked.
        let mut stray = json!({"credentials": {"secretAccessKey": "s"}, "newPassword": "p"});
        redact(&mut stray);
        assert_eq!(
            stray["credentials"]["secretAccessKey"],
            "HIDDEN_DUE_TO_SECURITY_REASONS"
        );
        assert_eq!(stray["newPassword"], "HIDDEN_DUE_TO_SECURITY_REASONS");
    }

    /// CloudTrail's `userIdentity` object for a principal, built field by field as a `Value`: the
    /// reference [`UserIdentity`] must match.
    fn user_identity(principal: &Principal) -> Value {
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
            if let Some(provider) = &session.federated_provider
                && session.issuer_operation == "AssumeRoleWithWebIdentity"
            {
                context.insert("webIdFederationData".into(), json!({"federatedProvider": provider}));
            }
        }
        Value::Object(context)
    }

    /// The record built as a `Value` tree, field by field: the reference `record_bytes` must match.
    fn reference_record(facts: EventFacts<'_>) -> Value {
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

    /// `record_bytes` writes exactly the bytes of the tree-built record serialized, for every kind of caller.
    #[test]
    fn record_bytes_match_the_record_value() {
        use crate::principal::SessionInfo;
        let session = SessionInfo {
            issued_at: time::OffsetDateTime::UNIX_EPOCH,
            expires_at: time::OffsetDateTime::UNIX_EPOCH,
            mfa_authenticated_at: Some(time::OffsetDateTime::UNIX_EPOCH),
            source_identity: Some("src".into()),
            tags: Vec::new(),
            policies: None,
            issuer_operation: "AssumeRoleWithWebIdentity".into(),
            federated_provider: Some("accounts.example.com".into()),
        };
        let base = Principal::root("111122223333", Some("AKIAEXAMPLE".into()));
        let principals = vec![
            base.clone(),
            Principal::root("111122223333", None),
            Principal::anonymous(),
            Principal {
                kind: PrincipalKind::User {
                    name: "alice".into(),
                    path: "/".into(),
                },
                ..base.clone()
            },
            Principal {
                kind: PrincipalKind::AssumedRole {
                    role_arn: "arn:aws:iam::111122223333:role/r".into(),
                    role_name: "r".into(),
                    role_id: "AROAEXAMPLE".into(),
                    session_name: "s".into(),
                },
                session: Some(session.clone()),
                ..base.clone()
            },
            Principal {
                kind: PrincipalKind::FederatedUser {
                    name: "fed".into(),
                    issuer_arn: "arn:aws:iam::111122223333:user/bob".into(),
                },
                session: Some(SessionInfo {
                    mfa_authenticated_at: None,
                    source_identity: None,
                    issuer_operation: "GetFederationToken".into(),
                    ..session.clone()
                }),
                ..base.clone()
            },
            Principal {
                kind: PrincipalKind::FederatedUser {
                    name: "fed-root".into(),
                    issuer_arn: "arn:aws:iam::111122223333:root".into(),
                },
                session: Some(session.clone()),
                ..base.clone()
            },
            Principal {
                session: Some(session),
                ..base.clone()
            },
            Principal {
                kind: PrincipalKind::Service {
                    name: "cloudtrail.amazonaws.com".into(),
                },
                ..base
            },
        ];
        let resources = [AuditResource {
            arn: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
            account_id: "111122223333".into(),
            resource_type: "AWS::KMS::Key",
        }];
        for (index, principal) in principals.into_iter().enumerate() {
            let ctx = RequestContext {
                request_id: "req-\"1\"".into(),
                principal: std::sync::Arc::new(principal),
                region: "us-east-1".into(),
                source_ip: if index % 2 == 0 { "192.0.2.1" } else { "2001:db8::1" }
                    .parse()
                    .unwrap(),
                user_agent: if index == 3 {
                    "ü".repeat(1500)
                } else {
                    "agent/1 \u{7}".into()
                },
                secure_transport: index % 3 == 0,
                time: time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(1_234_567),
                service: "sts",
                operation: "AssumeRole",
            };
            let facts = || EventFacts {
                ctx: &ctx,
                event_source: "sts.amazonaws.com",
                read_only: index % 2 == 1,
                management: index != 2,
                request: (index != 1).then(|| json!({"roleArn": "arn:role", "tokenCode": "123456"})),
                response: (index == 4).then(|| json!({"credentials": {"secretAccessKey": "s", "accessKeyId": "A"}})),
                error: (index == 5).then_some(("AccessDenied", "not \"allowed\"")),
                resources: if index == 6 { &resources } else { &[] },
                event_id: format!("event-{index}"),
                recipient_account_id: "111122223333",
            };
            let expected = serde_json::to_vec(&reference_record(facts())).unwrap();
            assert_eq!(
                String::from_utf8(record_bytes(facts())).unwrap(),
                String::from_utf8(expected).unwrap(),
                "principal {index}"
            );
        }
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
