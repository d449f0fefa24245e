//! What authorization adds to a request: `Authorizer::authorize` for an IAM user with a realistic
//! policy set (10 managed policies x 10 statements, wildcards, 3 conditions each), over a stream of
//! varied requests. Two sets: one whose conditions do not read the clock (the decision cache
//! serves repeats) and one that reads `aws:CurrentTime` (compiled without a cache, every request
//! evaluated). Run: `cargo bench -p citadel-core --bench authorize`.

use citadel_core::authz::{Authorizer, PolicySource, PrincipalPolicies};
use citadel_core::{Authorization, Check, Principal, PrincipalKind, RequestContext};
use citadel_policy::{Policy, PolicyKind};
use citadel_wire::AwsError;
use criterion::{Criterion, criterion_group, criterion_main};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

const SERVICES: [&str; 6] = ["s3", "kms", "iam", "logs", "cloudtrail", "sts"];
const VERBS: [&str; 8] = ["Get", "List", "Describe", "Put", "Create", "Delete", "Update", "Tag"];

struct FixedSource(Arc<PrincipalPolicies>);

#[async_trait::async_trait]
impl PolicySource for FixedSource {
    async fn principal_policies(&self, _: &Principal) -> Result<Arc<PrincipalPolicies>, AwsError> {
        Ok(self.0.clone())
    }
}

/// Ten policies of ten statements; statement `s` of policy `p` allows or denies one verb prefix on
/// one service, on a wildcard resource, under three conditions.
fn policies(read_clock: bool) -> PrincipalPolicies {
    let mut identity = Vec::new();
    for p in 0..10 {
        let statements: Vec<String> = (0..10)
            .map(|s| {
                let service = SERVICES[(p + s) % SERVICES.len()];
                let verb = VERBS[(p * 3 + s) % VERBS.len()];
                let effect = if (p + s) % 7 == 0 { "Deny" } else { "Allow" };
                let third = if read_clock && s % 3 == 0 {
                    r#""DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}"#.to_string()
                } else {
                    format!(r#""StringLike": {{"aws:PrincipalTag/team": ["team-1*", "team-{}*"]}}"#, s % 3)
                };
                format!(
                    r#"{{"Sid": "S{p}x{s}", "Effect": "{effect}", "Action": ["{service}:{verb}*", "{service}:*{p}{s}"],
                        "Resource": "arn:aws:{service}:*:000000000000:*{s}*",
                        "Condition": {{"IpAddress": {{"aws:SourceIp": ["10.0.0.0/8", "172.16.0.0/12", "192.168.{p}.0/24"]}},
                                       "StringEquals": {{"aws:RequestedRegion": ["us-east-1", "eu-west-{s}"]}},
                                       {third}}}}}"#
                )
            })
            .collect();
        let text = format!(
            r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#,
            statements.join(",")
        );
        let policy = Policy::parse(&text, PolicyKind::Identity).expect("bench policy parses");
        identity.push((format!("arn:aws:iam::000000000000:policy/bench-{p}"), Arc::new(policy)));
    }
    PrincipalPolicies::new(identity, None)
}

fn user() -> Arc<Principal> {
    Arc::new(Principal {
        account_id: "000000000000".into(),
        arn: "arn:aws:iam::000000000000:user/alice".into(),
        principal_id: "AIDAEXAMPLEALICE0001".into(),
        kind: PrincipalKind::User {
            name: "alice".into(),
            path: "/".into(),
        },
        access_key_id: Some("AKIAEXAMPLEALICE0001".into()),
        tags: vec![("team".into(), "team-1-blue".into())],
        session: None,
    })
}

/// 400 requests: actions across the services and verbs, resources with varied suffixes, three
/// source addresses.
fn requests() -> Vec<(RequestContext, Authorization)> {
    let principal = user();
    let now = time::OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("valid time");
    (0..400)
        .map(|i| {
            let service = SERVICES[i % SERVICES.len()];
            let verb = VERBS[(i / 6) % VERBS.len()];
            let ip: IpAddr = ["10.1.2.3", "192.168.4.7", "172.16.0.1"][i % 3].parse().expect("ip");
            let ctx = RequestContext {
                request_id: format!("req-{i}"),
                principal: principal.clone(),
                region: "us-east-1".into(),
                source_ip: ip,
                user_agent: "aws-cli/2.17 bench".into(),
                secure_transport: true,
                time: now,
                service: "bench",
                operation: "Bench",
            };
            let authz = Authorization {
                checks: vec![Check::new(
                    format!("{service}:{verb}Thing{}", i % 5),
                    format!("arn:aws:{service}:us-east-1:000000000000:thing/item-{}", i % 50),
                )],
                context: Vec::new(),
                always_allowed: false,
            };
            (ctx, authz)
        })
        .collect()
}

/// The authorizer's future never waits here (the policy source answers at once), so one poll runs it.
fn run_now<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("authorization waited"),
    }
}

fn bench(c: &mut Criterion) {
    let stream = requests();
    let sets = [
        ("cached (no clock keys)", false),
        ("uncached (reads aws:CurrentTime)", true),
    ];
    let only = std::env::var("AUTHORIZE_SET").ok();
    for (name, read_clock) in sets {
        if only.as_deref().is_some_and(|only| !name.starts_with(only)) {
            continue;
        }
        let authorizer = Authorizer::default();
        authorizer.set_source(Arc::new(FixedSource(Arc::new(policies(read_clock)))));
        let allowed = stream
            .iter()
            .filter(|(ctx, authz)| run_now(authorizer.authorize(ctx, authz, true)).is_ok())
            .count();
        // A stream that is all allow or all deny would not exercise the evaluation.
        assert!(allowed > 20 && allowed < 380, "{name}: {allowed} of 400 allowed");
        // `AUTHORIZE_COUNT=N` runs N decisions of the first set and exits, for instruction counts
        // (`perf stat -e instructions:u`), which do not depend on how busy the machine is.
        if let Some(count) = std::env::var("AUTHORIZE_COUNT")
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
        {
            let allowed = (0..count)
                .filter(|i| {
                    let (ctx, authz) = &stream[i % stream.len()];
                    run_now(authorizer.authorize(ctx, authz, true)).is_ok()
                })
                .count();
            println!("{name}: {allowed} of {count} allowed");
            return;
        }
        // Allowed and denied requests apart: a denial also formats AWS's AccessDenied message.
        let (allowed, denied): (Vec<_>, Vec<_>) = stream
            .iter()
            .partition(|(ctx, authz)| run_now(authorizer.authorize(ctx, authz, true)).is_ok());
        for (outcome, part) in [("allowed", allowed), ("denied", denied)] {
            let mut next = 0;
            c.bench_function(&format!("authorize, 10x10 statements, {name}, {outcome}"), |b| {
                b.iter(|| {
                    let (ctx, authz) = part[next % part.len()];
                    next += 1;
                    run_now(authorizer.authorize(ctx, authz, true)).is_ok()
                })
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
