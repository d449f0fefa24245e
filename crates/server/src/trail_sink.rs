//! CloudTrail's log and digest files go into S3 through the S3 frontend itself, as the service
//! principal `cloudtrail.amazonaws.com`, so bucket policies, encryption at rest and audit apply
//! exactly as for any PutObject.

use async_trait::async_trait;
use citadel_cloudtrail::{Delivery, ObjectSink, SinkError};
use citadel_s3::S3Frontend;
use citadel_store::Store;
use http_body_util::BodyExt;
use std::sync::Arc;

/// The CloudTrail principal.
const CLOUDTRAIL: &str = "cloudtrail.amazonaws.com";

/// Delivers CloudTrail objects through [`S3Frontend::handle_as_service`].
pub struct S3TrailSink {
    /// The S3 frontend.
    pub s3: Arc<S3Frontend>,
    /// The store, for reading bucket records.
    pub store: Arc<dyn Store>,
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
