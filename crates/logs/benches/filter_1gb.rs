//! FilterLogEvents scan speed over at least 1 GB of CloudTrail-like JSON events on one core
//! (a plain `main`: one timed pass per pattern over the whole gigabyte is the figure).
//!
//! The events are generated in memory (about 1.1 KB each, 1 in 97 an AccessDenied), then each
//! pattern is compiled once and matched against every message on the calling thread, which is what
//! `FilterLogEvents` and metric filters do per event after reading it from the store.
//! Run with `cargo bench -p citadel-logs --bench filter_1gb` (env `FILTER_BENCH_MB`, default 1100).

use citadel_logs::pattern::FilterPattern;
use std::hint::black_box;
use std::time::Instant;

const NAMES: &[&str] = &[
    "ListUsers",
    "GetObject",
    "PutRolePolicy",
    "ConsoleLogin",
    "Decrypt",
    "AssumeRole",
];

fn event(i: u64) -> String {
    let name = NAMES[(i % NAMES.len() as u64) as usize];
    let error = if i.is_multiple_of(97) {
        r#","errorCode":"AccessDenied","errorMessage":"User: arn:aws:iam::111122223333:user/u is not authorized to perform: iam:ListUsers""#
    } else {
        ""
    };
    format!(
        r#"{{"eventVersion":"1.11","userIdentity":{{"type":"IAMUser","principalId":"AIDA{i:016}","arn":"arn:aws:iam::111122223333:user/u{u}","accountId":"111122223333","accessKeyId":"AKIA{i:016}","userName":"u{u}"}},"eventTime":"2026-01-01T00:00:00Z","eventSource":"iam.amazonaws.com","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"10.0.{a}.{b}","userAgent":"aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64 command/iam","requestParameters":{{"maxItems":100,"pathPrefix":"/engineering/"}},"responseElements":null{error},"requestID":"{i:032x}","eventID":"{i:032x}","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","eventCategory":"Management","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"iam.amazonaws.com"}}}}"#,
        u = i % 500,
        a = i % 256,
        b = (i / 256) % 256
    )
}

fn main() {
    let target = std::env::var("FILTER_BENCH_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1100)
        * 1_000_000;
    let started = Instant::now();
    let mut events = Vec::new();
    let mut total = 0usize;
    let mut i = 0u64;
    while total < target {
        let e = event(i);
        total += e.len();
        events.push(e);
        i += 1;
    }
    println!(
        "generated {} events, {:.1} MB, in {:.1} s",
        events.len(),
        total as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let patterns = [
        (
            "cis_unauthorized",
            r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }"#,
        ),
        (
            "cis_root",
            r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#,
        ),
        (
            "cis_iam_policy_changes",
            "{($.eventName=DeleteGroupPolicy)||($.eventName=DeleteRolePolicy)||($.eventName=DeleteUserPolicy)||($.eventName=PutGroupPolicy)||($.eventName=PutRolePolicy)||($.eventName=PutUserPolicy)||($.eventName=CreatePolicy)||($.eventName=DeletePolicy)||($.eventName=CreatePolicyVersion)||($.eventName=DeletePolicyVersion)||($.eventName=AttachRolePolicy)||($.eventName=DetachRolePolicy)||($.eventName=AttachUserPolicy)||($.eventName=DetachUserPolicy)||($.eventName=AttachGroupPolicy)||($.eventName=DetachGroupPolicy)}",
        ),
        ("event_name_is_null", "{ $.eventName IS NULL }"),
        ("terms", "AccessDenied -ListUsers"),
        ("regex", "%AKIA0+9%"),
    ];
    println!("| pattern | matches | seconds | MB/s |");
    println!("|---|---|---|---|");
    for (name, text) in patterns {
        let pattern = match FilterPattern::parse(text) {
            Ok(p) => p,
            Err(e) => {
                println!("| {name} | parse error {e:?} | | |");
                continue;
            }
        };
        let start = Instant::now();
        let matches = events.iter().filter(|e| pattern.matches(black_box(e))).count();
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "| {name} | {matches} | {seconds:.2} | {:.0} |",
            total as f64 / 1e6 / seconds
        );
    }
}
