//! The one request pipeline: route, authenticate, authorize, execute, audit.
//!
//! Every non-S3 request goes through [`Pipeline::handle`]; S3 goes through s3s, whose auth and
//! access hooks call the same [`Pipeline::authenticate`] and [`Authorizer`]. The order of checks is
//! AWS's: signature and credentials first, then the operation, then the policy decision, then
//! input validation, then the handler, whose state change is committed in one batch with its
//! CloudTrail record.

use crate::audit::{self, EventFacts, Side};
use crate::authz::Authorizer;
use crate::clock::Clock;
use crate::context::RequestContext;
use crate::identity::{CredentialError, CredentialResolver};
use crate::principal::Principal;
use crate::random::IdGen;
use crate::service::{Authorized, Call, Service};
use crate::wire_auth::{self, AuthFailure};
use bytes::Bytes;
use citadel_store::{CommitError, Store};
use citadel_wire::codec;
use citadel_wire::{AwsError, Protocol};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// How unknown access keys are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every request must be signed with a known key (AWS's behaviour).
    Enforce,
    /// An unknown access key acts as the default account's root (LocalStack's default);
    /// known keys are still verified and their policies enforced.
    Permissive,
}

/// Settings the pipeline needs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The default region.
    pub region: String,
    /// The default account.
    pub account_id: String,
    /// Enforce or permissive authentication.
    pub auth_mode: AuthMode,
    /// Largest request body accepted for non-S3 services.
    pub max_body_bytes: usize,
}

/// A request as the HTTP layer hands it over.
#[derive(Debug)]
pub struct IncomingRequest {
    /// The method.
    pub method: http::Method,
    /// The URI as received (raw path and query).
    pub uri: http::Uri,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The peer address.
    pub remote: SocketAddr,
    /// True when the connection is TLS.
    pub secure: bool,
}

/// The pipeline and everything it dispatches to.
pub struct Pipeline {
    config: PipelineConfig,
    services: HashMap<&'static str, Arc<dyn Service>>,
    credentials: Arc<CredentialResolver>,
    authorizer: Arc<Authorizer>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: IdGen,
}

/// Attempts at executing a call whose batch conflicts with concurrent writes.
const MAX_ATTEMPTS: usize = 8;

/// Submitted audit records allowed to wait for the committer before requests wait with them.
const MAX_AUDIT_BACKLOG: usize = 8192;

impl Pipeline {
    /// A pipeline with no services yet.
    pub fn new(
        config: PipelineConfig,
        credentials: Arc<CredentialResolver>,
        authorizer: Arc<Authorizer>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: IdGen,
    ) -> Self {
        Self {
            config,
            services: HashMap::new(),
            credentials,
            authorizer,
            store,
            clock,
            ids,
        }
    }

    /// Registers a service under its signing name.
    pub fn register(&mut self, service: Arc<dyn Service>) {
        self.services.insert(service.spec().signing_name, service);
    }

    /// The registered services.
    pub fn services(&self) -> impl Iterator<Item = &Arc<dyn Service>> {
        self.services.values()
    }

    /// The configuration.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// The credential resolver.
    pub fn credentials(&self) -> &Arc<CredentialResolver> {
        &self.credentials
    }

    /// The authorizer.
    pub fn authorizer(&self) -> &Arc<Authorizer> {
        &self.authorizer
    }

    /// The id generator.
    pub fn ids(&self) -> &IdGen {
        &self.ids
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Handles one non-S3 request end to end.
    pub async fn handle(&self, req: IncomingRequest) -> http::Response<Bytes> {
        let request_id = self.ids.uuid();
        let now = self.clock.now();
        // Route: which service, from the signature scope, the target header or the query action.
        let query_params = wire_auth::query_params(&req);
        let route = match wire_auth::route(&req, &query_params) {
            Some(route) => route,
            None => {
                let err = AwsError::new(
                    "UnknownOperationException",
                    400,
                    "Could not determine the service of this request.",
                );
                return respond_error(Protocol::Json, "1.1", "", &err, &request_id);
            }
        };
        let Some(service) = self.services.get(route.service.as_str()).cloned() else {
            let err = AwsError::new(
                "UnknownOperationException",
                400,
                format!("Citadel does not serve the service '{}'.", route.service),
            );
            return respond_error(Protocol::Json, "1.1", "", &err, &request_id);
        };
        let spec = service.spec();
        let Some(model) = codec::model(spec.signing_name) else {
            return respond_error(spec.protocol, "1.1", "", &AwsError::internal(), &request_id);
        };
        let family = wire_auth::family_of(spec.protocol);
        let error = |err: &AwsError| respond_model_error(model, spec.protocol, err, &request_id);

        // Authenticate.
        let principal = match self.authenticate(&req, &route, now).await {
            Ok(principal) => principal,
            // AWS serves the federation calls unsigned: the token or assertion is the credential.
            Err(AuthFailure::Missing) if spec.signing_name == "sts" && is_unsigned_federation(&req) => {
                Arc::new(Principal::anonymous())
            }
            Err(failure) => return error(&failure.to_aws(family)),
        };

        // Decode the operation.
        let decoded = match spec.protocol {
            Protocol::Query => codec::decode_query(model, &wire_auth::form_params(&req, query_params)),
            Protocol::Json => codec::decode_json(model, wire_auth::header(&req.headers, "x-amz-target"), &req.body),
            _ => Err(AwsError::internal()),
        };
        let (op_name, input) = match decoded {
            Ok(decoded) => decoded,
            Err(err) => return error(&err),
        };
        let Some(op) = spec.operation(op_name) else {
            let err = not_implemented(spec.protocol, op_name);
            return error(&err);
        };
        let ctx = RequestContext {
            request_id: request_id.clone(),
            principal,
            region: route.region.unwrap_or_else(|| self.config.region.clone()),
            source_ip: req.remote.ip(),
            user_agent: wire_auth::header(&req.headers, "user-agent").unwrap_or("").to_string(),
            secure_transport: req.secure,
            time: now,
            service: spec.signing_name,
            operation: op.name,
        };
        let call = Call { ctx, op, input };
        let outcome = self.run(service.as_ref(), &call, model, spec.protocol).await;
        match outcome {
            Ok(output) => match codec::encode_response(model, op.name, spec.protocol, &output, &request_id) {
                Ok(encoded) => {
                    let mut builder = http::Response::builder().status(encoded.status);
                    if !encoded
                        .headers
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case("x-amzn-requestid"))
                    {
                        builder = builder.header("x-amzn-RequestId", &request_id);
                    }
                    for (name, value) in encoded.headers {
                        builder = builder.header(name, value);
                    }
                    builder
                        .body(Bytes::from(encoded.body))
                        .unwrap_or_else(|_| http::Response::new(Bytes::new()))
                }
                Err(err) => error(&err),
            },
            Err(err) => error(&err),
        }
    }

    /// Authorizes, validates, executes and audits one decoded call.
    async fn run(
        &self,
        service: &dyn Service,
        call: &Call,
        model: &'static codec::ServiceModel,
        protocol: Protocol,
    ) -> Result<Value, AwsError> {
        let spec = service.spec();
        let audit_error = |err: &AwsError| self.audit_failure(call, spec.event_source, err);
        let authz = match service.authorize(call).await {
            Ok(authz) => authz,
            Err(err) => {
                audit_error(&err);
                return Err(err);
            }
        };
        if let Err(denial) = self.authorizer.authorize(&call.ctx, &authz, false).await {
            let code = match protocol {
                Protocol::Query => "AccessDenied",
                _ => "AccessDeniedException",
            };
            let status = match protocol {
                Protocol::Json => 400,
                _ => 403,
            };
            let err = AwsError::new(code, status, denial.message);
            audit_error(&err);
            return Err(err);
        }
        if let Err(err) = codec::validate_input(model, call.op.name, protocol, &call.input) {
            audit_error(&err);
            return Err(err);
        }
        let proof = Authorized { _private: () };
        for _attempt in 0..MAX_ATTEMPTS {
            let effect = match service.execute(call, &proof).await {
                Ok(effect) => effect,
                Err(err) => {
                    audit_error(&err);
                    return Err(err);
                }
            };
            let response = audit::records_response(spec.event_source, call.op.name, call.op.read_only)
                .then(|| audit::elements(spec.signing_name, call.op.name, Side::Response, &effect.output))
                .flatten();
            let checked;
            let resources = if effect.resources.is_empty() {
                checked = audit::resources_of_checks(spec.event_source, &authz.checks, call.ctx.account_id());
                &checked
            } else {
                &effect.resources
            };
            let (key, record) = self.event(call, spec.event_source, response, None, resources);
            let mut batch = effect.batch;
            let durable = !batch.is_empty();
            batch.put(audit::EVENTS, &key, &record);
            if !durable {
                self.submit_audit(batch).await;
                return Ok(effect.output);
            }
            match self.store.commit(batch).await {
                Ok(()) => return Ok(effect.output),
                Err(CommitError::Conflict { .. }) => continue,
                Err(err) => {
                    tracing::error!(error = %err, "commit failed");
                    let err = AwsError::internal();
                    audit_error(&err);
                    return Err(err);
                }
            }
        }
        let err = AwsError::new(
            "ConcurrentModification",
            409,
            "The request was rejected because of a concurrent modification. Retry it.",
        );
        audit_error(&err);
        Err(err)
    }

    /// The CloudTrail record of a call, as stored (JSON), and its store key; `response` is already
    /// in AWS's shape.
    fn event(
        &self,
        call: &Call,
        event_source: &str,
        response: Option<Value>,
        error: Option<&AwsError>,
        resources: &[crate::service::AuditResource],
    ) -> (Vec<u8>, Vec<u8>) {
        let event_id = self.ids.uuid();
        let key = audit::event_key(call.ctx.account_id(), event_millis(&call.ctx), &event_id);
        let record = audit::record_bytes(EventFacts {
            ctx: &call.ctx,
            event_source,
            read_only: call.op.read_only,
            management: true,
            request: audit::elements(call.ctx.service, call.op.name, Side::Request, &call.input),
            response,
            error: error.map(|e| (e.code.as_ref(), e.message.as_str())),
            resources,
            event_id,
            recipient_account_id: call.ctx.account_id(),
        });
        (key, record)
    }

    fn audit_failure(&self, call: &Call, event_source: &str, err: &AwsError) {
        let (key, record) = self.event(call, event_source, None, Some(err), &[]);
        let mut batch = citadel_store::WriteBatch::new();
        batch.put(audit::EVENTS, &key, &record);
        self.store.submit(batch);
    }

    /// Submits an audit record without waiting for it, unless the committer has fallen behind:
    /// then the request waits for the backlog to drain, which bounds memory under load.
    async fn submit_audit(&self, batch: citadel_store::WriteBatch) {
        self.store.submit(batch);
        if self.store.backlog() > MAX_AUDIT_BACKLOG
            && let Err(err) = self.store.flush().await
        {
            tracing::error!(error = %err, "audit flush failed");
        }
    }

    /// Authenticates a request: parses its signature, resolves the credential and verifies the signature.
    pub async fn authenticate(
        &self,
        req: &IncomingRequest,
        route: &wire_auth::Route,
        now: time::OffsetDateTime,
    ) -> Result<Arc<Principal>, AuthFailure> {
        let parsed = route.auth.as_ref().ok_or(AuthFailure::Missing)?;
        let parsed = parsed.as_ref().map_err(|e| e.clone())?;
        wire_auth::check_time(parsed, now)?;
        let access_key_id = wire_auth::access_key_id(parsed);
        let token = wire_auth::session_token(parsed);
        let resolved = match self.credentials.resolve(access_key_id, token, now).await {
            Ok(resolved) => resolved,
            Err(CredentialError::UnknownKey) if self.config.auth_mode == AuthMode::Permissive => {
                return Ok(Arc::new(Principal::root(
                    &self.config.account_id,
                    Some(access_key_id.to_string()),
                )));
            }
            Err(CredentialError::UnknownKey) => return Err(AuthFailure::UnknownKey),
            Err(CredentialError::InvalidToken) => return Err(AuthFailure::InvalidToken),
            Err(CredentialError::ExpiredToken) => return Err(AuthFailure::ExpiredToken),
        };
        wire_auth::verify(parsed, req, &resolved.secret, now)?;
        self.credentials.note_use(
            access_key_id,
            &route.service,
            route.region.as_deref().unwrap_or(&self.config.region),
            now,
        );
        Ok(resolved.principal)
    }
}

/// True for STS's AssumeRoleWithWebIdentity and AssumeRoleWithSAML, which need no signature.
fn is_unsigned_federation(req: &IncomingRequest) -> bool {
    let params = wire_auth::form_params(req, wire_auth::query_params(req));
    params
        .iter()
        .any(|(k, v)| k == "Action" && matches!(v.as_str(), "AssumeRoleWithWebIdentity" | "AssumeRoleWithSAML"))
}

fn event_millis(ctx: &RequestContext) -> u64 {
    u64::try_from(ctx.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn not_implemented(protocol: Protocol, op: &str) -> AwsError {
    let message = format!("Citadel does not implement the operation {op} yet.");
    match protocol {
        Protocol::Query => AwsError::new("InvalidAction", 400, message),
        _ => AwsError::new("UnknownOperationException", 400, message),
    }
}

/// Renders an error response for a service, with the model's error metadata.
pub fn respond_model_error(
    model: &codec::ServiceModel,
    protocol: Protocol,
    err: &AwsError,
    request_id: &str,
) -> http::Response<Bytes> {
    let (status, headers, body) = codec::render_model_error(model, protocol, err, request_id);
    let mut builder = http::Response::builder().status(status);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("x-amzn-requestid")) {
        builder = builder.header("x-amzn-RequestId", request_id);
    }
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Bytes::from(body))
        .unwrap_or_else(|_| http::Response::new(Bytes::new()))
}

/// Renders an error response for `protocol`.
pub fn respond_error(
    protocol: Protocol,
    json_version: &str,
    xmlns: &str,
    err: &AwsError,
    request_id: &str,
) -> http::Response<Bytes> {
    let (status, headers, body) = codec::render_error(protocol, err, request_id, json_version, xmlns);
    let mut builder = http::Response::builder().status(status);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("x-amzn-requestid")) {
        builder = builder.header("x-amzn-RequestId", request_id);
    }
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Bytes::from(body))
        .unwrap_or_else(|_| http::Response::new(Bytes::new()))
}

/// Builds a response with the headers every AWS reply carries.
pub fn response(
    status: u16,
    content_type: &str,
    request_id: &str,
    extra: Vec<(&'static str, String)>,
    body: Vec<u8>,
) -> http::Response<Bytes> {
    let mut builder = http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-RequestId", request_id);
    for (name, value) in extra {
        builder = builder.header(name, value);
    }
    builder
        .body(Bytes::from(body))
        .unwrap_or_else(|_| http::Response::new(Bytes::new()))
}
