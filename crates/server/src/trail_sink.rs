//! CloudTrail's log and digest files go into S3 through the S3 frontend itself, as the service
//! principal `cloudtrail.amazonaws.com`, so bucket policies, encryption at rest and audit apply
//! exactly as for any PutObject.
//!
//! Log files of a trail with a KMS key are written with SSE-KMS under that key; S3 then asks the
//! key policy whether `cloudtrail.amazonaws.com` may make the data key, as it would for any caller.
//! CreateTrail asks the same question beforehand through [`ObjectSink::check_kms_key`].

use async_trait::async_trait;
use citadel_cloudtrail::{Delivery, KmsKeyCheck, KmsKeyError, ObjectSink, SinkError};
use citadel_core::authz::Authorizer;
use citadel_core::{Authorization, Check, Principal, PrincipalKind, RequestContext, ResourcePolicyKind};
use citadel_s3::S3Frontend;
use citadel_s3::crypto::{CryptoError, DataKeyProvider};
use citadel_store::Store;
use http_body_util::BodyExt;
use std::sync::Arc;

/// The CloudTrail service principal.
const CLOUDTRAIL: &str = "cloudtrail.amazonaws.com";

/// CloudTrail acting on its own behalf, as key policies and trust policies name it.
pub(crate) fn cloudtrail_service_principal() -> Arc<Principal> {
    Arc::new(Principal {
        account_id: String::new(),
        arn: String::new(),
        principal_id: CLOUDTRAIL.to_string(),
        kind: PrincipalKind::Service {
            name: CLOUDTRAIL.to_string(),
        },
        access_key_id: None,
        tags: Vec::new(),
        session: None,
    })
}

/// The context of a call CloudTrail makes itself, as `principal` at `time`: it comes from the
/// loopback address over a secure transport, with CloudTrail's name as the user agent, because no
/// client request stands behind it.
pub(crate) fn cloudtrail_request(
    principal: Arc<Principal>,
    region: &str,
    time: time::OffsetDateTime,
    service: &'static str,
    operation: &'static str,
) -> RequestContext {
    RequestContext {
        request_id: String::new(),
        principal,
        region: region.to_string(),
        source_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        user_agent: CLOUDTRAIL.to_string(),
        secure_transport: true,
        time,
        service,
        operation,
    }
}

/// A check of `action` on a resource that its own policy governs (a KMS key's key policy, a role's
/// trust policy), so that the policy engine reads that policy as the resource-based one.
pub(crate) fn governed_resource_check(
    action: &str,
    resource: &str,
    resource_account: &str,
    policy: &str,
    policy_kind: ResourcePolicyKind,
    resource_tags: &[(String, String)],
) -> Check {
    Check {
        resource_account: Some(resource_account.to_string()),
        resource_policy: Some(Arc::from(policy)),
        resource_policy_kind: policy_kind,
        resource_tags: resource_tags.to_vec(),
        ..Check::new(action, resource)
    }
}

/// The condition keys that name the trail a CloudTrail call is made for, which policies use to
/// stop one account's trail from using another account's key or role (the confused deputy).
pub(crate) fn trail_source_keys(trail_arn: &str, trail_account: &str) -> [(String, Vec<String>); 2] {
    [
        ("aws:SourceArn".to_string(), vec![trail_arn.to_string()]),
        ("aws:SourceAccount".to_string(), vec![trail_account.to_string()]),
    ]
}

/// Delivers CloudTrail objects through [`S3Frontend::handle_as_service`].
pub struct S3TrailSink {
    /// The S3 frontend.
    pub s3: Arc<S3Frontend>,
    /// The store, for reading bucket records.
    pub store: Arc<dyn Store>,
    /// SSE-KMS data keys, to find a trail's key and its policy.
    pub kms: Arc<dyn DataKeyProvider>,
    /// The policy decision point, for the key policy check.
    pub authorizer: Arc<Authorizer>,
    /// The injected clock.
    pub clock: Arc<dyn citadel_core::Clock>,
}

#[async_trait]
impl ObjectSink for S3TrailSink {
    async fn put_object(&self, delivery: Delivery) -> Result<(), SinkError> {
        let path = format!("/{}/{}", delivery.bucket, encode_key(&delivery.key));
        let mut builder = http::Request::builder()
            .method("PUT")
            .uri(&path)
            .header("host", "localhost")
            .header("content-type", delivery.content_type)
            .header("content-length", delivery.body.len())
            .header("x-amz-acl", "bucket-owner-full-control")
            .header("x-citadel-source-arn", &delivery.source_arn)
            .header("x-citadel-source-account", &delivery.source_account);
        for (name, value) in &delivery.metadata {
            builder = builder.header(format!("x-amz-meta-{name}"), value);
        }
        if let Some(key) = &delivery.kms_key_id {
            builder = builder
                .header("x-amz-server-side-encryption", "aws:kms")
                .header("x-amz-server-side-encryption-aws-kms-key-id", key)
                .header(
                    "x-amz-server-side-encryption-context",
                    citadel_cloudtrail::kms_encryption_context_b64(&delivery.source_arn),
                );
        }
        let request = builder
            .body(citadel_s3::Body::from(bytes::Bytes::from(delivery.body)))
            .map_err(|e| SinkError::Other(e.to_string()))?;
        let response = self.s3.handle_as_service(request, CLOUDTRAIL).await;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let code = text
            .split("<Code>")
            .nth(1)
            .and_then(|rest| rest.split("</Code>").next())
            .unwrap_or("");
        Err(match (status, code) {
            (_, "NoSuchBucket") => SinkError::NoSuchBucket,
            (403, _) => SinkError::AccessDenied,
            _ => SinkError::Other(if code.is_empty() {
                status.to_string()
            } else {
                code.to_string()
            }),
        })
    }

    async fn bucket_policy(&self, bucket: &str) -> Option<String> {
        let bytes = self
            .store
            .get(citadel_s3::meta::BUCKETS, &citadel_s3::meta::bucket_key(bucket))
            .await
            .ok()??;
        citadel_s3::meta::decode::<citadel_s3::meta::BucketRecord>(&bytes)?.policy
    }

    async fn bucket_exists(&self, bucket: &str) -> bool {
        matches!(
            self.store
                .get(citadel_s3::meta::BUCKETS, &citadel_s3::meta::bucket_key(bucket))
                .await,
            Ok(Some(_))
        )
    }

    async fn check_kms_key(&self, check: &KmsKeyCheck) -> Result<String, KmsKeyError> {
        let context = vec![("aws:cloudtrail:arn".to_string(), check.trail_arn.clone())];
        let key = self
            .kms
            .key_for_use(
                &check.account,
                &check.region,
                Some(&check.key_id),
                "kms:GenerateDataKey",
                &context,
            )
            .await
            .map_err(|err| match err {
                CryptoError::Service { code, message, .. } if code.contains("NotFound") => {
                    tracing::debug!(%message, "trail key not found");
                    KmsKeyError::NotFound
                }
                CryptoError::Service { code, .. } if code.contains("Disabled") || code.contains("InvalidState") => {
                    KmsKeyError::Disabled
                }
                other => KmsKeyError::Other(other.to_string()),
            })?
            .ok_or(KmsKeyError::NotFound)?;
        if !key.arn.starts_with(&format!("arn:aws:kms:{}:", check.region)) {
            return Err(KmsKeyError::NotFound);
        }
        let ctx = cloudtrail_request(
            cloudtrail_service_principal(),
            &check.region,
            self.clock.now(),
            "kms",
            "GenerateDataKey",
        );
        let mut context = vec![
            (
                "kms:EncryptionContext:aws:cloudtrail:arn".to_string(),
                vec![check.trail_arn.clone()],
            ),
            (
                "kms:EncryptionContextKeys".to_string(),
                vec!["aws:cloudtrail:arn".to_string()],
            ),
        ];
        context.extend(trail_source_keys(&check.trail_arn, &check.account));
        let authorization = Authorization {
            checks: vec![governed_resource_check(
                "kms:GenerateDataKey",
                &key.arn,
                &key.account,
                &key.policy,
                ResourcePolicyKind::KeyPolicy,
                &key.tags,
            )],
            context,
            always_allowed: false,
        };
        self.authorizer
            .authorize(&ctx, &authorization, false)
            .await
            .map_err(|_| KmsKeyError::InsufficientPolicy)?;
        Ok(key.arn)
    }
}

/// Percent-encodes an object key for a path, keeping `/`.
fn encode_key(key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(key, KEEP).to_string()
}

/// S3's data-event check, answered by the CloudTrail trails.
pub struct TrailDataEventGate(pub citadel_cloudtrail::data_events::DataEventTrails);

#[async_trait::async_trait]
impl citadel_s3::DataEventGate for TrailDataEventGate {
    async fn records_data_events(&self, account: &str) -> bool {
        self.0.records_data_events(account).await
    }
}
