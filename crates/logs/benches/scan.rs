//! Scans ~50 MB of generated CloudTrail-like JSON events with compiled filter patterns.
//!
//! Run with `cargo bench -p citadel-logs --bench scan`; criterion reports the throughput in MB/s.

use citadel_logs::pattern::FilterPattern;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const NAMES: &[&str] = &[
    "ListUsers",
    "GetObject",
    "PutRolePolicy",
    "ConsoleLogin",
    "Decrypt",
    "DescribeInstances",
];

fn events() -> Vec<String> {
    let mut out = Vec::new();
    let mut total = 0;
    let mut i = 0u64;
    while total < 50 * 1024 * 1024 {
        let name = NAMES[(i % NAMES.len() as u64) as usize];
        let error = if i.is_multiple_of(97) {
            r#","errorCode":"AccessDenied","errorMessage":"User is not authorized""#
        } else {
            ""
        };
        let event = format!(
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","principalId":"AIDA{i:016}","arn":"arn:aws:iam::111122223333:user/u{i}","accountId":"111122223333","accessKeyId":"AKIA{i:016}","userName":"u{i}"}},"eventTime":"2024-01-01T00:00:00Z","eventSource":"iam.amazonaws.com","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"10.0.{}.{}","userAgent":"aws-cli/1.45.11 Python/3.11","requestParameters":{{"maxItems":100,"pathPrefix":"/"}},"responseElements":null{error},"requestID":"{i:032x}","eventID":"{i:032x}","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333"}}"#,
            i % 256,
            (i / 256) % 256
        );
        total += event.len();
        out.push(event);
        i += 1;
    }
    out
}

fn scan(c: &mut Criterion) {
    let events = events();
    let bytes: usize = events.iter().map(String::len).sum();
    let patterns = [
        (
            "cis_iam_policy_changes",
            "{($.eventName=DeleteGroupPolicy)||($.eventName=DeleteRolePolicy)||($.eventName=DeleteUserPolicy)||($.eventName=PutGroupPolicy)||($.eventName=PutRolePolicy)||($.eventName=PutUserPolicy)||($.eventName=CreatePolicy)||($.eventName=DeletePolicy)||($.eventName=CreatePolicyVersion)||($.eventName=DeletePolicyVersion)||($.eventName=AttachRolePolicy)||($.eventName=DetachRolePolicy)||($.eventName=AttachUserPolicy)||($.eventName=DetachUserPolicy)||($.eventName=AttachGroupPolicy)||($.eventName=DetachGroupPolicy)}",
        ),
        (
            "cis_unauthorized",
            r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }"#,
        ),
        (
            "cis_root",
            r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#,
        ),
        ("terms", "AccessDenied -ListUsers"),
        ("regex", "%AKIA0+9%"),
    ];
    let mut group = c.benchmark_group("scan_50mb");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(10);
    for (name, text) in patterns {
        let pattern = FilterPattern::parse(text).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| events.iter().filter(|e| pattern.matches(black_box(e))).count())
        });
    }
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
