//! Authorization of S3 requests through Citadel's policy engine.
//!
//! s3s calls [`CitadelAccess::check`] once per request, after the signature is verified and the
//! operation is routed, before the body is read. We map the operation to its IAM action and
//! resource ([`crate::registry`]), load the bucket so that its policy is the resource policy and
//! its owner the resource account, add S3's condition keys, and ask the `Authorizer`. An explicit
//! deny in a bucket policy binds the account root too, because the engine sees the policy.
//! Anonymous callers get access only through a bucket policy that grants it to `"*"`, and Block
//! Public Access's RestrictPublicBuckets withdraws such grants from everyone outside the owner account.

use crate::engine::{Inner, internal};
use crate::frontend::{RequestState, current, error};
use crate::meta::BucketRecord;
use crate::names::{bucket_arn, object_arn};
use crate::registry::{self, ResourceKind, S3OperationSpec};
use citadel_core::{Authorization, Check, Principal, ResourcePolicyKind};
use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{S3ErrorCode, S3Result};
use serde_json::Value;
use std::sync::Arc;

/// The access hook.
pub(crate) struct CitadelAccess {
    pub inner: Arc<Inner>,
}

/// Operations whose decision may read the existing object's tags (`s3:ExistingObjectTag/<key>`).
const READS_EXISTING_TAGS: &[&str] = &[
    "GetObject",
    "HeadObject",
    "GetObjectTagging",
    "PutObjectTagging",
    "DeleteObjectTagging",
    "GetObjectAcl",
];

#[async_trait::async_trait]
impl S3Access for CitadelAccess {
    async fn put_object(&self, req: &mut s3s::S3Request<s3s::dto::PutObjectInput>) -> S3Result<()> {
        let is_post = current()?.audit.lock().op.is_some_and(|op| op.name == "PostObject");
        if is_post {
            return self.check_post_object(&req.input.key, &req.headers).await;
        }
        Ok(())
    }

    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let state = current()?;
        let name = cx.s3_op().name();
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => (None, None),
            S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        let principal = match cx.credentials() {
            _ if state.acting_service.is_some() => state
                .acting_service
                .clone()
                .unwrap_or_else(|| Arc::new(Principal::anonymous())),
            Some(_) => state
                .resolved
                .lock()
                .clone()
                .unwrap_or_else(|| Arc::new(Principal::anonymous())),
            None => Arc::new(Principal::anonymous()),
        };
        *state.principal.lock() = Some(principal.clone());
        let Some(spec) = registry::lookup(name) else {
            return Err(error(
                S3ErrorCode::NotImplemented,
                501,
                format!("Citadel does not implement the S3 operation {name} yet."),
            ));
        };
        {
            let mut facts = state.audit.lock();
            facts.op = Some(spec);
            facts.bucket = bucket.clone();
            facts.key = key.clone();
        }
        let query: Vec<(String, String)> = form_urlencoded::parse(cx.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut context = request_conditions(&state, cx.headers(), &query);
        if state.acting_service.is_some() {
            // Service calls made inside Citadel carry the resource they act for, as AWS passes it.
            for (header, key) in [
                ("x-citadel-source-arn", "aws:SourceArn"),
                ("x-citadel-source-account", "aws:SourceAccount"),
            ] {
                if let Some(value) = cx.headers().get(header).and_then(|v| v.to_str().ok()) {
                    context.push((key.to_string(), vec![value.to_string()]));
                }
            }
        }
        let versioned = param("versionId").is_some();
        let action = if versioned {
            registry::versioned_action(spec)
        } else {
            spec.action
        };
        let record = match &bucket {
            Some(b) => self.inner.bucket(b).await?.map(|(r, _)| r),
            None => None,
        };
        {
            let mut facts = state.audit.lock();
            facts.bucket_loaded = true;
            if let Some(record) = &record {
                facts.owner = Some(record.owner.clone());
                facts.logging = record.logging.clone();
            }
        }
        if spec.name == "PostObject" {
            // The key comes from the form, which s3s hands to the `put_object` hook below.
            return Ok(());
        }
        if spec.name == "DeleteObjects" {
            // Each key is authorized by the handler, as AWS reports per-key AccessDenied.
            return Ok(());
        }
        if let (Some(b), Some(k)) = (&bucket, &key)
            && READS_EXISTING_TAGS.contains(&spec.name)
        {
            let row = self.inner.object(b, k).await?;
            if let Some((object, _)) = &row {
                for (tag, value) in &object.tags {
                    context.push((format!("s3:ExistingObjectTag/{tag}"), vec![value.clone()]));
                }
            }
            *state.object_read.lock() = Some((b.clone(), k.clone(), row));
        }
        let mut checks = vec![resource_check(
            &principal,
            spec,
            action,
            bucket.as_deref(),
            key.as_deref(),
            record.as_ref(),
        )];
        if matches!(spec.name, "CopyObject" | "UploadPartCopy")
            && let Some(source) = cx.headers().get("x-amz-copy-source").and_then(|v| v.to_str().ok())
            && let Ok(s3s::dto::CopySource::Bucket {
                bucket: src_bucket,
                key: src_key,
                version_id,
            }) = s3s::dto::CopySource::parse(source)
        {
            let src_record = self.inner.bucket(&src_bucket).await?.map(|(r, _)| r);
            let get = registry::lookup("GetObject").ok_or_else(|| internal("registry lacks GetObject"))?;
            let src_action = if version_id.is_some() {
                registry::versioned_action(get)
            } else {
                get.action
            };
            checks.push(resource_check(
                &principal,
                get,
                src_action,
                Some(&src_bucket),
                Some(&src_key),
                src_record.as_ref(),
            ));
        }
        self.inner
            .decide(&state, spec, principal, checks, std::mem::take(&mut context))
            .await
    }
}

impl CitadelAccess {
    /// Authorizes a browser POST upload (PostObject) once s3s has read the form: `s3:PutObject`
    /// on the form's key, with the bucket policy, as for a PUT.
    async fn check_post_object(&self, key: &str, headers: &http::HeaderMap) -> S3Result<()> {
        let state = current()?;
        let spec = registry::lookup("PostObject").ok_or_else(|| internal("registry lacks PostObject"))?;
        let bucket = state.audit.lock().bucket.clone();
        let Some(bucket) = bucket else {
            return Err(internal("PostObject without a bucket"));
        };
        state.audit.lock().key = Some(key.to_string());
        let record = self.inner.bucket(&bucket).await?.map(|(r, _)| r);
        let principal = state.principal();
        let check = resource_check(&principal, spec, spec.action, Some(&bucket), Some(key), record.as_ref());
        let context = request_conditions(&state, headers, &[]);
        self.inner.decide(&state, spec, principal, vec![check], context).await
    }
}

impl Inner {
    /// Whether the target bucket's policy lets the logging service principal write log objects
    /// under `prefix` for `source` (PutBucketLogging's permission check, with `aws:SourceArn` and
    /// `aws:SourceAccount` as S3 sends them).
    pub(crate) async fn logging_service_may_write(
        &self,
        state: &RequestState,
        source: &BucketRecord,
        target: &BucketRecord,
        prefix: &str,
    ) -> bool {
        let principal = Arc::new(Principal {
            account_id: String::new(),
            arn: String::new(),
            principal_id: crate::access_log::LOGGING_SERVICE.to_string(),
            kind: citadel_core::PrincipalKind::Service {
                name: crate::access_log::LOGGING_SERVICE.to_string(),
            },
            access_key_id: None,
            tags: Vec::new(),
            session: None,
        });
        let Some(spec) = registry::lookup("PutObject") else {
            return false;
        };
        let mut check = resource_check(
            &principal,
            spec,
            spec.action,
            Some(&target.name),
            Some("x"),
            Some(target),
        );
        check.resource = crate::access_log::sample_object_arn(&target.name, prefix);
        let context = vec![
            ("aws:SourceArn".to_string(), vec![bucket_arn(&source.name)]),
            ("aws:SourceAccount".to_string(), vec![source.owner.clone()]),
        ];
        let ctx = state.context(principal, "PutObject", &self.region);
        let authorization = Authorization {
            checks: vec![check],
            context,
            always_allowed: false,
        };
        self.authorizer.authorize(&ctx, &authorization, true).await.is_ok()
    }

    /// Asks the authorizer; a denial becomes `AccessDenied` with AWS's message.
    pub(crate) async fn decide(
        &self,
        state: &RequestState,
        spec: &S3OperationSpec,
        principal: Arc<Principal>,
        checks: Vec<Check>,
        context: Vec<(String, Vec<String>)>,
    ) -> S3Result<()> {
        let anonymous = matches!(principal.kind, citadel_core::PrincipalKind::Anonymous);
        let ctx = state.context(principal, spec.name, &self.region);
        let authorization = Authorization {
            checks,
            context,
            always_allowed: false,
        };
        self.authorizer
            .authorize(&ctx, &authorization, true)
            .await
            .map_err(|denial| {
                // AWS names no principal to anonymous callers.
                let message = if anonymous {
                    "Access Denied".to_string()
                } else {
                    denial.message
                };
                error(S3ErrorCode::AccessDenied, 403, message)
            })
    }

    /// Authorizes one object of a DeleteObjects request.
    pub(crate) async fn authorize_object(
        &self,
        state: &RequestState,
        spec: &S3OperationSpec,
        bucket: &BucketRecord,
        key: &str,
        versioned: bool,
    ) -> S3Result<()> {
        let principal = state.principal();
        let action = if versioned {
            registry::versioned_action(spec)
        } else {
            spec.action
        };
        let mut object_spec = *spec;
        object_spec.resource = ResourceKind::Object;
        let check = resource_check(
            &principal,
            &object_spec,
            action,
            Some(&bucket.name),
            Some(key),
            Some(bucket),
        );
        let context = request_conditions(state, &http::HeaderMap::new(), &[]);
        self.decide(state, spec, principal, vec![check], context).await
    }
}

/// The check for `action` on the operation's resource, governed by the bucket's policy.
fn resource_check(
    principal: &Principal,
    spec: &S3OperationSpec,
    action: &str,
    bucket: Option<&str>,
    key: Option<&str>,
    record: Option<&BucketRecord>,
) -> Check {
    let resource = match (spec.resource, bucket, key) {
        (ResourceKind::Object, Some(b), Some(k)) => object_arn(b, k),
        (ResourceKind::Bucket | ResourceKind::Object, Some(b), _) => bucket_arn(b),
        _ => "*".to_string(),
    };
    let mut check = Check::new(action, resource);
    if spec.name == "CreateBucket" || spec.name == "ListBuckets" {
        return check;
    }
    if let Some(record) = record {
        check.resource_account = Some(record.owner.clone());
        check.resource_tags = record.tags.clone();
        check.resource_policy_kind = ResourcePolicyKind::Generic;
        check.resource_policy = record
            .policy
            .as_deref()
            .filter(|policy| policy_applies(record, policy, principal))
            .map(Arc::from);
    }
    check
}

/// Whether a bucket policy's grants reach `principal`: RestrictPublicBuckets withdraws a public
/// policy from everyone outside the owner account.
fn policy_applies(record: &BucketRecord, policy: &str, principal: &Principal) -> bool {
    let restrict = record.public_access_block.is_some_and(|b| b.restrict_public_buckets);
    !(restrict && is_public_policy(policy) && principal.account_id != record.owner)
}

/// S3's request condition keys.
fn request_conditions(
    state: &RequestState,
    headers: &http::HeaderMap,
    query: &[(String, String)],
) -> Vec<(String, Vec<String>)> {
    let mut context = Vec::new();
    let mut add = |name: &str, value: &str| context.push((name.to_string(), vec![value.to_string()]));
    for (param, key) in [
        ("prefix", "s3:prefix"),
        ("delimiter", "s3:delimiter"),
        ("max-keys", "s3:max-keys"),
        ("versionId", "s3:VersionId"),
    ] {
        if let Some((_, value)) = query.iter().find(|(k, _)| k == param) {
            add(key, value);
        }
    }
    for header in [
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-content-sha256",
        "x-amz-acl",
        "x-amz-copy-source",
        "x-amz-metadata-directive",
        "x-amz-storage-class",
        "x-amz-server-side-encryption-customer-algorithm",
    ] {
        if let Some(value) = headers.get(header).and_then(|v| v.to_str().ok()) {
            add(&format!("s3:{header}"), value);
        }
    }
    if let Some(sig) = state.signature_version {
        add(
            "s3:signatureversion",
            if sig == "AWS" { "AWS" } else { "AWS4-HMAC-SHA256" },
        );
    }
    if let Some(auth_type) = state.auth_type {
        add("s3:authType", auth_type);
    }
    if let Some(tagging) = headers.get("x-amz-tagging").and_then(|v| v.to_str().ok()) {
        let tags: Vec<(String, String)> = form_urlencoded::parse(tagging.as_bytes()).into_owned().collect();
        let keys: Vec<String> = tags.iter().map(|(k, _)| k.clone()).collect();
        for (k, v) in tags {
            context.push((format!("s3:RequestObjectTag/{k}"), vec![v]));
        }
        if !keys.is_empty() {
            context.push(("s3:RequestObjectTagKeys".into(), keys));
        }
    }
    context
}

/// Condition keys that pin a grant to known callers, so a `"*"` grant using them is not public
/// (AWS's rules for "public" in Block Public Access and policy status).
const NON_PUBLIC_KEYS: &[&str] = &[
    "aws:sourceip",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:principalorgid",
    "aws:userid",
    "s3:dataaccesspointaccount",
    "s3:dataaccesspointarn",
];

/// Whether a bucket policy grants access to everyone: an `Allow` with principal `"*"` not pinned
/// by a fixed-value condition.
pub fn is_public_policy(text: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let statements = match doc.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => return false,
    };
    statements.iter().any(|statement| {
        let allow = statement.get("Effect").and_then(Value::as_str) == Some("Allow");
        let everyone = match statement.get("Principal") {
            Some(Value::String(s)) => s == "*",
            Some(Value::Object(map)) => map.get("AWS").is_some_and(|aws| match aws {
                Value::String(s) => s == "*",
                Value::Array(items) => items.iter().any(|i| i.as_str() == Some("*")),
                _ => false,
            }),
            _ => false,
        };
        let pinned = statement
            .get("Condition")
            .and_then(Value::as_object)
            .is_some_and(|conditions| {
                conditions.values().filter_map(Value::as_object).any(|keys| {
                    keys.keys()
                        .any(|key| NON_PUBLIC_KEYS.contains(&key.to_ascii_lowercase().as_str()))
                })
            });
        allow && everyone && !pinned
    })
}

/// Validates a bucket policy for PutBucketPolicy: the grammar (resource-based policy) and that
/// every resource lies in this bucket.
pub fn validate_bucket_policy(text: &str, bucket: &str) -> Result<(), String> {
    citadel_policy::Policy::parse(text, citadel_policy::PolicyKind::ResourceBased).map_err(|e| e.to_string())?;
    let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let statements = match doc.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one) => vec![one.clone()],
        None => Vec::new(),
    };
    let arn = bucket_arn(bucket);
    for statement in statements {
        let resources = match statement.get("Resource") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => Vec::new(),
        };
        for resource in resources {
            let in_bucket = resource == arn || resource.starts_with(&format!("{arn}/")) || resource == "*";
            if !in_bucket {
                return Err("Policy has invalid resource".to_string());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_policies_are_recognised() {
        let cases = [
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
                true,
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":"s3:*","Resource":"arn:aws:s3:::b"}}"#,
                true,
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b"}]}"#,
                false,
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:*","Resource":"arn:aws:s3:::b"}]}"#,
                false,
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
                false,
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#,
                true,
            ),
            ("not json", false),
        ];
        for (policy, public) in cases {
            assert_eq!(is_public_policy(policy), public, "{policy}");
        }
    }
}
