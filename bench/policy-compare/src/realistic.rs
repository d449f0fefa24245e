//! The "realistic principal" workload: 10 identity policies x 10 statements, every statement with
//! wildcards in actions and resources and 3 conditions, evaluated against a stream of 1,000 varied
//! requests. Everything is generated from a fixed seed, so every run (and every machine) sees the same input.

use serde_json::{Value, json};

/// SplitMix64: a tiny deterministic generator, enough to vary the workload reproducibly.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const ACCOUNT: &str = "123456789012";

/// A service: its prefix, its actions, and the resource names it uses.
struct Service {
    prefix: &'static str,
    actions: &'static [&'static str],
    /// Resource ARN templates; `{r}` is the region, `{n}` a name from `names`.
    arns: &'static [&'static str],
    names: &'static [&'static str],
}

const SERVICES: &[Service] = &[
    Service {
        prefix: "s3",
        actions: &[
            "GetObject",
            "PutObject",
            "DeleteObject",
            "GetObjectVersion",
            "GetObjectTagging",
            "PutObjectTagging",
            "ListBucket",
            "CreateBucket",
            "DeleteBucket",
            "GetBucketPolicy",
            "PutBucketPolicy",
            "ListAllMyBuckets",
        ],
        arns: &[
            "arn:aws:s3:::{n}",
            "arn:aws:s3:::{n}/shared/report.csv",
            "arn:aws:s3:::{n}/uploads/a.bin",
        ],
        names: &[
            "app-data-prod",
            "app-data-dev",
            "bench-bucket",
            "public-assets",
            "logs-archive",
            "secure-vault",
        ],
    },
    Service {
        prefix: "kms",
        actions: &[
            "Encrypt",
            "Decrypt",
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "ReEncryptFrom",
            "DescribeKey",
            "CreateGrant",
            "ScheduleKeyDeletion",
            "Sign",
            "Verify",
            "ListKeys",
        ],
        arns: &[
            "arn:aws:kms:{r}:123456789012:key/{n}",
            "arn:aws:kms:{r}:123456789012:alias/{n}",
        ],
        names: &[
            "app-01",
            "sign-01",
            "restricted-02",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
        ],
    },
    Service {
        prefix: "iam",
        actions: &[
            "GetUser",
            "ListUsers",
            "CreateUser",
            "DeleteUser",
            "AttachUserPolicy",
            "PutUserPolicy",
            "ListAccessKeys",
            "CreateAccessKey",
            "PassRole",
            "GetRole",
            "ListRoles",
            "TagUser",
        ],
        arns: &[
            "arn:aws:iam::123456789012:user/{n}",
            "arn:aws:iam::123456789012:role/{n}",
        ],
        names: &["bench-alice", "app-web", "admin-root", "ops-bob"],
    },
    Service {
        prefix: "ec2",
        actions: &[
            "DescribeInstances",
            "DescribeVpcs",
            "StartInstances",
            "StopInstances",
            "TerminateInstances",
            "CreateVpc",
            "RunInstances",
        ],
        arns: &[
            "arn:aws:ec2:{r}:123456789012:instance/{n}",
            "arn:aws:ec2:{r}:123456789012:vpc/{n}",
        ],
        names: &["i-0123456789abcdef0", "i-0fedcba987654321", "vpc-1a2b3c"],
    },
    Service {
        prefix: "dynamodb",
        actions: &["GetItem", "PutItem", "Query", "Scan", "DeleteItem", "UpdateItem"],
        arns: &["arn:aws:dynamodb:{r}:123456789012:table/{n}"],
        names: &["app-orders", "app-users", "audit"],
    },
    Service {
        prefix: "sqs",
        actions: &["SendMessage", "ReceiveMessage", "DeleteMessage", "GetQueueAttributes"],
        arns: &["arn:aws:sqs:{r}:123456789012:{n}"],
        names: &["app-orders", "app-events", "dead-letter"],
    },
    Service {
        prefix: "logs",
        actions: &["CreateLogStream", "PutLogEvents", "GetLogEvents", "DescribeLogGroups"],
        arns: &["arn:aws:logs:{r}:123456789012:log-group:/{n}:log-stream:i-1"],
        names: &["app/web", "app/worker", "sys/audit"],
    },
    Service {
        prefix: "lambda",
        actions: &["InvokeFunction", "GetFunction", "UpdateFunctionCode"],
        arns: &["arn:aws:lambda:{r}:123456789012:function:{n}"],
        names: &["app-api", "app-cron", "other-fn"],
    },
];

const REGIONS: &[&str] = &["us-east-1", "eu-west-1", "ap-south-1"];

fn arn(template: &str, region: &str, name: &str) -> String {
    template.replace("{r}", region).replace("{n}", name)
}

/// A wildcard resource pattern for `service`: a name prefix glob, a region glob or `*`.
fn resource_pattern(rng: &mut Rng, service: &Service) -> String {
    let template = rng.pick(service.arns);
    let name = rng.pick(service.names);
    match rng.below(4) {
        // Name prefix: `app-data-*`, `bench-*`, ...
        0 | 1 => {
            let cut = name.find('-').map_or(name.len().min(3), |i| i + 1);
            arn(template, rng.pick(REGIONS), &format!("{}*", &name[..cut]))
        }
        // Any region, exact name.
        2 => arn(template, "*", name),
        // Any resource of the kind in the region.
        _ => arn(template, rng.pick(REGIONS), "*"),
    }
}

/// A wildcard or literal action pattern of `service`.
fn action_pattern(rng: &mut Rng, service: &Service) -> String {
    let action = rng.pick(service.actions);
    match rng.below(10) {
        0..=3 => format!("{}:{action}", service.prefix),
        4..=6 => {
            // A verb prefix: `Get*`, `List*`, `Describe*`, `Put*`.
            let verb_end = action[1..]
                .find(|c: char| c.is_ascii_uppercase())
                .map_or(action.len(), |i| i + 1);
            format!("{}:{}*", service.prefix, &action[..verb_end])
        }
        7 | 8 => {
            // An infix: `*Object*`, `*Key*`, ...
            let start = action[1..].find(|c: char| c.is_ascii_uppercase()).map_or(0, |i| i + 1);
            let rest = &action[start..];
            let end = rest[1..]
                .find(|c: char| c.is_ascii_uppercase())
                .map_or(rest.len(), |i| i + 1);
            format!("{}:*{}*", service.prefix, &rest[..end])
        }
        _ => format!("{}:*", service.prefix),
    }
}

/// One condition `(operator, key, values)` from a pool of the condition kinds real policies use.
fn one_condition(rng: &mut Rng, kind: usize) -> (&'static str, &'static str, Value) {
    match kind {
        0 => ("StringEquals", "aws:RequestedRegion", json!(["us-east-1", "eu-west-1"])),
        1 => (
            "StringLike",
            "aws:PrincipalTag/team",
            json!([rng.pick(&["plat*", "data-*", "*"])]),
        ),
        2 => (
            "IpAddress",
            "aws:SourceIp",
            json!(["10.0.0.0/8", rng.pick(&["192.168.0.0/16", "203.0.113.0/24"])]),
        ),
        3 => ("Bool", "aws:SecureTransport", json!(rng.pick(&["true", "false"]))),
        4 => (
            "NumericLessThan",
            "aws:MultiFactorAuthAge",
            json!(rng.pick(&["3600", "86400"])),
        ),
        5 => (
            "DateGreaterThan",
            "aws:CurrentTime",
            json!(rng.pick(&["2024-01-01T00:00:00Z", "2030-01-01T00:00:00Z"])),
        ),
        6 => (
            "StringEqualsIfExists",
            "s3:x-amz-server-side-encryption",
            json!("aws:kms"),
        ),
        7 => (
            "StringNotEquals",
            "aws:ResourceTag/env",
            json!(rng.pick(&["prod", "dev"])),
        ),
        8 => ("ArnLike", "aws:SourceArn", json!("arn:aws:*:*:123456789012:*")),
        _ => ("BoolIfExists", "aws:MultiFactorAuthPresent", json!("true")),
    }
}

/// The 10 policies x 10 statements, as `(name, JSON text)`.
pub fn policies(rng: &mut Rng) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in 0..10 {
        // Each policy is mostly about two services, as real ones are.
        let home = [rng.below(SERVICES.len()), rng.below(SERVICES.len())];
        let mut statements = Vec::new();
        for s in 0..10 {
            let service = &SERVICES[rng.pick(&home)];
            let effect = if rng.chance(20) { "Deny" } else { "Allow" };
            let actions: Vec<String> = (0..1 + rng.below(3)).map(|_| action_pattern(rng, service)).collect();
            let resources: Vec<String> = if rng.chance(15) {
                vec!["*".to_owned()]
            } else {
                (0..1 + rng.below(2)).map(|_| resource_pattern(rng, service)).collect()
            };
            let mut block = serde_json::Map::new();
            let mut kinds = Vec::new();
            while kinds.len() < 3 {
                let kind = rng.below(10);
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            for kind in kinds {
                let (operator, key, values) = one_condition(rng, kind);
                let entry = block.entry(operator).or_insert_with(|| json!({}));
                if let Some(map) = entry.as_object_mut() {
                    map.insert(key.to_owned(), values);
                }
            }
            statements.push(json!({
                "Sid": format!("P{p:02}S{s:02}"),
                "Effect": effect,
                "Action": actions,
                "Resource": resources,
                "Condition": block,
            }));
        }
        let document = json!({"Version": "2012-10-17", "Statement": statements});
        out.push((format!("realistic-{p:02}"), document.to_string()));
    }
    out
}

/// One generated request: action, resource and context pairs.
pub struct GenRequest {
    /// The IAM action.
    pub action: String,
    /// The resource ARN.
    pub resource: String,
    /// The condition context.
    pub context: Vec<(&'static str, String)>,
}

/// The stream of `n` varied requests.
pub fn requests(rng: &mut Rng, n: usize) -> Vec<GenRequest> {
    (0..n)
        .map(|_| {
            let service = &SERVICES[rng.below(SERVICES.len())];
            let region = rng.pick(REGIONS);
            let action = format!("{}:{}", service.prefix, rng.pick(service.actions));
            let resource = arn(rng.pick(service.arns), region, rng.pick(service.names));
            let mut context = vec![
                ("aws:RequestedRegion", region.to_owned()),
                (
                    "aws:SourceIp",
                    rng.pick(&["10.1.2.3", "192.168.1.10", "203.0.113.7", "198.51.100.9"])
                        .to_string(),
                ),
                (
                    "aws:SecureTransport",
                    if rng.chance(90) { "true" } else { "false" }.to_owned(),
                ),
                (
                    "aws:PrincipalTag/team",
                    rng.pick(&["platform", "data-eng", "web"]).to_string(),
                ),
                ("aws:CurrentTime", "2026-05-01T12:00:00Z".to_owned()),
                ("aws:username", "bench".to_owned()),
            ];
            if rng.chance(70) {
                context.push(("aws:MultiFactorAuthPresent", "true".to_owned()));
                context.push(("aws:MultiFactorAuthAge", rng.pick(&["60", "7200"]).to_string()));
            }
            if rng.chance(50) {
                context.push(("aws:ResourceTag/env", rng.pick(&["dev", "prod"]).to_string()));
            }
            if service.prefix == "s3" && rng.chance(50) {
                context.push((
                    "s3:x-amz-server-side-encryption",
                    rng.pick(&["aws:kms", "AES256"]).to_string(),
                ));
            }
            if rng.chance(30) {
                context.push(("aws:SourceArn", format!("arn:aws:s3:::{}", rng.pick(service.names))));
            }
            GenRequest {
                action,
                resource,
                context,
            }
        })
        .collect()
}

/// The account of the generated principal.
pub fn account() -> &'static str {
    ACCOUNT
}
