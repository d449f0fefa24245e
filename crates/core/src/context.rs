//! The facts about one request that every stage of the pipeline reads.

use crate::principal::Principal;
use std::net::IpAddr;
use std::sync::Arc;
use time::OffsetDateTime;

/// One request's context: who, from where, when, over what.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request id returned to the caller and recorded in CloudTrail.
    pub request_id: String,
    /// The authenticated caller.
    pub principal: Arc<Principal>,
    /// The region the request was signed for (`aws:RequestedRegion`).
    pub region: String,
    /// The caller's address (`aws:SourceIp`, `sourceIPAddress`).
    pub source_ip: IpAddr,
    /// The User-Agent header (`aws:UserAgent`).
    pub user_agent: String,
    /// True over TLS (`aws:SecureTransport`).
    pub secure_transport: bool,
    /// When the request arrived, from the injected clock.
    pub time: OffsetDateTime,
    /// The service's signing name.
    pub service: &'static str,
    /// The operation name.
    pub operation: &'static str,
}

impl RequestContext {
    /// The account the caller belongs to; services create resources there.
    pub fn account_id(&self) -> &str {
        &self.principal.account_id
    }
}
