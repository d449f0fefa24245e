//! The request pipeline shared by every Citadel service.
//!
//! `core` owns the path every request takes (route, authenticate, authorize, execute, audit), the
//! types every stage reads ([`RequestContext`], [`Principal`]), the operation registry, identity
//! resolution for long-term keys, CloudTrail records, and the injected clock and randomness.
//! Services plug in through the [`Service`] trait; IAM and STS plug in through the
//! [`identity::PrincipalDirectory`], [`identity::SessionResolver`] and [`authz::PolicySource`] traits,
//! so that this crate depends on no service.
//!
//! Architecture invariant: a service's `execute` needs an [`Authorized`] proof that only the
//! pipeline can make, so no handler runs without a policy decision.

pub mod account;
pub mod audit;
pub mod authz;
pub mod clock;
pub mod conditions;
pub mod context;
pub mod identity;
pub mod lease;
pub mod pipeline;
pub mod principal;
pub mod random;
pub mod registry;
pub mod service;
pub mod wire_auth;

pub use clock::Clock;
pub use context::RequestContext;
pub use pipeline::{AuthMode, IncomingRequest, Pipeline, PipelineConfig};
pub use principal::{Principal, PrincipalKind, SessionInfo};
pub use random::{IdGen, Random};
pub use registry::{OperationSpec, ServiceSpec};
pub use service::{AuditResource, Authorization, Authorized, Call, Check, Effect, ResourcePolicyKind, Service};
