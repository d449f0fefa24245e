//! End-to-end tests of the service and the delivery task over a real store, a manual clock and an
//! in-memory bucket: trails, LookupEvents, log files, and digest chains verified with the public keys.

use super::*;
use crate::model::TrailConfig;
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use base64::Engine;
use citadel_core::audit::{self, EventFacts};
use citadel_core::clock::ManualClock;
use citadel_core::random::SeededRandom;
use citadel_core::{Principal, RequestContext};
use citadel_store::RedbStore;
use serde_json::json;
use std::io::Read;
use std::time::Duration;
use time::OffsetDateTime;

const ACCOUNT: &str = "123456789012";
const BUCKET: &str = "ct-bucket";

fn cloudtrail_policy(bucket: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:GetBucketAcl", "Resource": format!("arn:aws:s3:::{bucket}")},
            {"Sid": "Write", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{bucket}/*"),
             "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}}
        ]
    })
    .to_string()
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    clock: ManualClock,
    sink: Arc<MemorySink>,
    logs: Arc<MemoryLogSink>,
    service: CloudTrail,
    deliverer: Deliverer,
    principal: Arc<Principal>,
    seq: std::sync::atomic::AtomicU64,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("db.redb")).unwrap());
        let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap());
        let sink = Arc::new(MemorySink::new());
        sink.add_bucket(BUCKET, Some(&cloudtrail_policy(BUCKET)));
        sink.add_bucket("no-policy", None);
        let master = Arc::new(MasterKey::generate());
        let ids = IdGen::new(Arc::new(SeededRandom::new(3)));
        let logs = Arc::new(MemoryLogSink::new());
        let service =
            CloudTrail::new(store.clone(), master.clone(), ids.clone(), sink.clone()).with_log_sink(logs.clone());
        let deliverer = Deliverer {
            store: store.clone(),
            master,
            clock: Arc::new(clock.clone()),
            ids,
            sink: sink.clone(),
            log_sink: logs.clone(),
            digest_interval: Duration::from_secs(60),
            settle: Duration::ZERO,
        };
        Self {
            _dir: dir,
            store,
            clock,
            sink,
            logs,
            service,
            deliverer,
            principal: Arc::new(Principal::root(ACCOUNT, Some("AKIAROOT".into()))),
            seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn ctx(&self, op: &'static str, region: &str, principal: Arc<Principal>) -> RequestContext {
        RequestContext {
            request_id: "req".into(),
            principal,
            region: region.into(),
            source_ip: "127.0.0.1".parse().unwrap(),
            user_agent: "test".into(),
            secure_transport: false,
            time: citadel_core::Clock::now(&self.clock),
            service: "cloudtrail",
            operation: op,
        }
    }

    /// Runs an operation as the pipeline would: execute, then commit its batch with its record.
    async fn run(&self, op: &str, input: Value) -> Result<Value, AwsError> {
        let spec = SPEC.operation(op).unwrap();
        let call = Call {
            ctx: self.ctx(spec.name, "us-east-1", self.principal.clone()),
            op: spec,
            input,
        };
        let effect = self.service.execute(&call, &Authorized::for_tests()).await?;
        let mut batch = effect.batch;
        let (key, record) = self.record(
            &call.ctx,
            "cloudtrail.amazonaws.com",
            spec.read_only,
            true,
            &effect.resources,
        );
        batch.put(audit::EVENTS, &key, &record);
        self.store.commit(batch).await.unwrap();
        Ok(effect.output)
    }

    fn record(
        &self,
        ctx: &RequestContext,
        source: &str,
        read_only: bool,
        management: bool,
        resources: &[citadel_core::AuditResource],
    ) -> (Vec<u8>, Vec<u8>) {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let event_id = format!("00000000-0000-4000-8000-{n:012}");
        let record = audit::record(EventFacts {
            ctx,
            event_source: source,
            read_only,
            management,
            request: None,
            response: None,
            error: None,
            resources,
            event_id: event_id.clone(),
            recipient_account_id: ACCOUNT,
        });
        let time_ms = u64::try_from(ctx.time.unix_timestamp_nanos() / 1_000_000).unwrap();
        (
            audit::event_key(ACCOUNT, time_ms, &event_id),
            serde_json::to_vec(&record).unwrap(),
        )
    }

    /// Records an event of another service, as the pipeline does for its calls.
    async fn event(&self, source: &'static str, name: &'static str, region: &str, read_only: bool, user: Option<&str>) {
        let principal = match user {
            Some(user) => Arc::new(Principal {
                account_id: ACCOUNT.into(),
                arn: format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
                principal_id: "AIDAEXAMPLE".into(),
                kind: citadel_core::PrincipalKind::User {
                    name: user.into(),
                    path: "/".into(),
                },
                access_key_id: Some(format!("AKIA{}", user.to_uppercase())),
                tags: Vec::new(),
                session: None,
            }),
            None => self.principal.clone(),
        };
        let ctx = self.ctx(name, region, principal);
        let (key, record) = self.record(&ctx, source, read_only, true, &[]);
        let mut batch = citadel_store::WriteBatch::new();
        batch.put(audit::EVENTS, &key, &record);
        self.store.commit(batch).await.unwrap();
    }

    fn advance(&self, seconds: i64) {
        self.clock.advance(time::Duration::seconds(seconds));
    }

    async fn create_trail(&self, name: &str, extra: Value) -> Result<Value, AwsError> {
        let mut input = json!({"Name": name, "S3BucketName": BUCKET});
        if let (Some(map), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
            map.extend(extra.clone());
        }
        self.run("CreateTrail", input).await
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

#[tokio::test]
async fn create_trail_checks_name_bucket_and_policy() {
    let h = Harness::new();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("x", json!({}), "InvalidTrailNameException"),
        (
            "good-name",
            json!({"S3BucketName": "missing-bucket"}),
            "S3BucketDoesNotExistException",
        ),
        (
            "good-name",
            json!({"S3BucketName": "no-policy"}),
            "InsufficientS3BucketPolicyException",
        ),
        (
            "good-name",
            json!({"CloudWatchLogsLogGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:g:*"}),
            "InvalidParameterCombinationException",
        ),
        (
            "good-name",
            json!({"IsMultiRegionTrail": true, "IncludeGlobalServiceEvents": false}),
            "InvalidParameterCombinationException",
        ),
    ];
    for (name, extra, code) in cases {
        let err = h.create_trail(name, extra.clone()).await.unwrap_err();
        assert_eq!(err.code, code, "{name} {extra}");
    }
    let out = h.create_trail("good-name", json!({})).await.unwrap();
    assert_eq!(
        out["TrailARN"],
        format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/good-name")
    );
    assert_eq!(out["LogFileValidationEnabled"], false);
    let err = h.create_trail("good-name", json!({})).await.unwrap_err();
    assert_eq!(err.code, "TrailAlreadyExistsException");
}

#[tokio::test]
async fn bucket_policy_evaluation_table() {
    let arn = format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/t");
    let only_put = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"}]})
    .to_string();
    let wrong_source = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": ["s3:GetBucketAcl", "s3:PutObject"],
        "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
        "Condition": {"StringEquals": {"aws:SourceArn": "arn:aws:cloudtrail:us-east-1:123456789012:trail/other"}}}]})
    .to_string();
    let right_source = wrong_source.replace("trail/other", "trail/t");
    let prefixed = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": ["s3:GetBucketAcl", "s3:PutObject"],
        "Resource": ["arn:aws:s3:::b", format!("arn:aws:s3:::b/pfx/AWSLogs/{ACCOUNT}/*")]}]})
    .to_string();
    let cases = [
        (cloudtrail_policy("b"), None, true),
        (cloudtrail_policy("other"), None, false),
        (only_put, None, false),
        (wrong_source, None, false),
        (right_source, None, true),
        (prefixed.clone(), Some("pfx"), true),
        (prefixed, None, false),
        ("not json".to_string(), None, false),
    ];
    for (policy, prefix, want) in cases {
        assert_eq!(
            policy_allows_delivery(&policy, "b", prefix, ACCOUNT, &arn),
            want,
            "{policy} {prefix:?}"
        );
    }
}

#[tokio::test]
async fn trail_lifecycle_selectors_and_tags() {
    let h = Harness::new();
    h.create_trail(
        "tr1",
        json!({"S3KeyPrefix": "pfx", "EnableLogFileValidation": true, "TagsList": [{"Key": "team", "Value": "sec"}]}),
    )
    .await
    .unwrap();
    h.create_trail("tr2", json!({})).await.unwrap();
    let arn = format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/tr1");

    let described = h.run("DescribeTrails", json!({})).await.unwrap();
    let list = described["trailList"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let t1 = list.iter().find(|t| t["Name"] == "tr1").unwrap();
    assert_eq!(t1["TrailARN"], arn);
    assert_eq!(t1["HomeRegion"], "us-east-1");
    assert_eq!(t1["S3KeyPrefix"], "pfx");
    assert_eq!(t1["LogFileValidationEnabled"], true);
    assert_eq!(t1["IsOrganizationTrail"], false);
    let t2 = list.iter().find(|t| t["Name"] == "tr2").unwrap();
    assert!(t2.get("S3KeyPrefix").is_none());
    let by_arn = h.run("DescribeTrails", json!({"trailNameList": [arn]})).await.unwrap();
    assert_eq!(by_arn["trailList"].as_array().unwrap().len(), 1);
    assert_eq!(
        h.run("GetTrail", json!({"Name": arn})).await.unwrap()["Trail"]["Name"],
        "tr1"
    );
    assert_eq!(
        h.run("ListTrails", json!({})).await.unwrap()["Trails"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let err = h.run("GetTrail", json!({"Name": "nope"})).await.unwrap_err();
    assert_eq!(err.code, "TrailNotFoundException");

    let status = h.run("GetTrailStatus", json!({"Name": "tr1"})).await.unwrap();
    assert_eq!(status["IsLogging"], false);
    h.run("StartLogging", json!({"Name": "tr1"})).await.unwrap();
    let status = h.run("GetTrailStatus", json!({"Name": "tr1"})).await.unwrap();
    assert_eq!(status["IsLogging"], true);
    assert!(status["StartLoggingTime"].as_f64().unwrap() > 1.7e9);
    h.advance(5);
    h.run("StopLogging", json!({"Name": arn})).await.unwrap();
    let status = h.run("GetTrailStatus", json!({"Name": "tr1"})).await.unwrap();
    assert_eq!(status["IsLogging"], false);
    assert!(status["StopLoggingTime"].as_f64() > status["StartLoggingTime"].as_f64());

    let defaults = h.run("GetEventSelectors", json!({"TrailName": "tr1"})).await.unwrap();
    assert_eq!(defaults["EventSelectors"][0]["ReadWriteType"], "All");
    let selectors = json!([{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": true,
        "ExcludeManagementEventSources": ["kms.amazonaws.com"]}]);
    h.run(
        "PutEventSelectors",
        json!({"TrailName": "tr1", "EventSelectors": selectors}),
    )
    .await
    .unwrap();
    let got = h.run("GetEventSelectors", json!({"TrailName": "tr1"})).await.unwrap();
    assert_eq!(got["EventSelectors"], selectors);
    let advanced = json!([{"Name": "m", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}]);
    h.run(
        "PutEventSelectors",
        json!({"TrailName": "tr1", "AdvancedEventSelectors": advanced}),
    )
    .await
    .unwrap();
    let got = h.run("GetEventSelectors", json!({"TrailName": "tr1"})).await.unwrap();
    assert_eq!(got["AdvancedEventSelectors"], advanced);
    assert!(got.get("EventSelectors").is_none());

    let err = h
        .run("GetInsightSelectors", json!({"TrailName": "tr1"}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "InsightNotEnabledException");
    let insights = json!([{"InsightType": "ApiCallRateInsight"}]);
    h.run(
        "PutInsightSelectors",
        json!({"TrailName": "tr1", "InsightSelectors": insights}),
    )
    .await
    .unwrap();
    let got = h.run("GetInsightSelectors", json!({"TrailName": "tr1"})).await.unwrap();
    assert_eq!(got["InsightSelectors"], insights);

    h.run(
        "AddTags",
        json!({"ResourceId": arn, "TagsList": [{"Key": "env", "Value": "prod"}]}),
    )
    .await
    .unwrap();
    h.run("RemoveTags", json!({"ResourceId": arn, "TagsList": [{"Key": "team"}]}))
        .await
        .unwrap();
    let tags = h.run("ListTags", json!({"ResourceIdList": [arn]})).await.unwrap();
    assert_eq!(
        tags["ResourceTagList"][0]["TagsList"],
        json!([{"Key": "env", "Value": "prod"}])
    );
    let err = h
        .run(
            "ListTags",
            json!({"ResourceIdList": [format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/zzz")]}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "ResourceNotFoundException");

    h.run(
        "UpdateTrail",
        json!({"Name": "tr2", "S3KeyPrefix": "new", "EnableLogFileValidation": true}),
    )
    .await
    .unwrap();
    let t2 = h.run("GetTrail", json!({"Name": "tr2"})).await.unwrap();
    assert_eq!(t2["Trail"]["S3KeyPrefix"], "new");
    assert_eq!(t2["Trail"]["LogFileValidationEnabled"], true);
    h.run("DeleteTrail", json!({"Name": "tr2"})).await.unwrap();
    let err = h.run("GetTrail", json!({"Name": "tr2"})).await.unwrap_err();
    assert_eq!(err.code, "TrailNotFoundException");
}

#[tokio::test]
async fn lookup_filters_and_pages_newest_first() {
    let h = Harness::new();
    for i in 0..7 {
        h.event(
            "iam.amazonaws.com",
            "CreateUser",
            "us-east-1",
            false,
            Some(if i % 2 == 0 { "alice" } else { "bob" }),
        )
        .await;
        h.advance(1);
    }
    h.event("kms.amazonaws.com", "Encrypt", "us-east-1", true, Some("alice"))
        .await;
    h.advance(1);
    // A data event never appears in LookupEvents.
    let ctx = h.ctx("GetObject", "us-east-1", h.principal.clone());
    let (key, record) = h.record(&ctx, "s3.amazonaws.com", true, false, &[]);
    let mut batch = citadel_store::WriteBatch::new();
    batch.put(audit::EVENTS, &key, &record);
    h.store.commit(batch).await.unwrap();
    h.advance(1);

    let by_name = h
        .run(
            "LookupEvents",
            json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}]}),
        )
        .await
        .unwrap();
    let events = by_name["Events"].as_array().unwrap();
    assert_eq!(events.len(), 7);
    let times: Vec<i64> = events.iter().map(|e| e["EventTime"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    assert_eq!(events[0]["ReadOnly"], "false");
    assert_eq!(events[0]["EventSource"], "iam.amazonaws.com");
    let inner: Value = serde_json::from_str(events[0]["CloudTrailEvent"].as_str().unwrap()).unwrap();
    assert_eq!(inner["eventName"], "CreateUser");

    let by_user = h
        .run(
            "LookupEvents",
            json!({"LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "bob"}]}),
        )
        .await
        .unwrap();
    assert_eq!(by_user["Events"].as_array().unwrap().len(), 3);
    let read_only = h
        .run(
            "LookupEvents",
            json!({"LookupAttributes": [{"AttributeKey": "ReadOnly", "AttributeValue": "true"}]}),
        )
        .await
        .unwrap();
    let names: Vec<&str> = read_only["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["EventName"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Encrypt") && !names.contains(&"GetObject") && !names.contains(&"CreateUser"));

    // Paging with MaxResults 3 sees every CreateUser exactly once, with distinct tokens.
    let mut seen = Vec::new();
    let mut tokens = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut input = json!({"MaxResults": 3,
            "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}]});
        if let Some(t) = &token {
            input["NextToken"] = json!(t);
        }
        let page = h.run("LookupEvents", input).await.unwrap();
        for e in page["Events"].as_array().unwrap() {
            seen.push(e["EventId"].as_str().unwrap().to_string());
        }
        match page.get("NextToken").and_then(Value::as_str) {
            Some(t) => {
                assert!(!tokens.contains(&t.to_string()), "token repeated");
                tokens.push(t.to_string());
                token = Some(t.to_string());
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 7);

    // A time range selects by event time.
    let start = citadel_core::Clock::now(&h.clock).unix_timestamp() - 9;
    let ranged = h
        .run(
            "LookupEvents",
            json!({"StartTime": start, "EndTime": start + 2,
            "LookupAttributes": [{"AttributeKey": "EventSource", "AttributeValue": "iam.amazonaws.com"}]}),
        )
        .await
        .unwrap();
    assert_eq!(ranged["Events"].as_array().unwrap().len(), 3);
}

/// Everything the CLI's validator checks, done here with aws-lc: signature, self-location,
/// contiguity, chaining and log hashes.
async fn verify_chain(h: &Harness, prefix: &str, trail: &str) -> (usize, usize) {
    let keys = h
        .run("ListPublicKeys", json!({"StartTime": 0, "EndTime": 4_000_000_000u64}))
        .await
        .unwrap();
    let public: Vec<(String, Vec<u8>)> = keys["PublicKeyList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let der = base64::engine::general_purpose::STANDARD
                .decode(k["Value"].as_str().unwrap())
                .unwrap();
            (k["Fingerprint"].as_str().unwrap().to_string(), der)
        })
        .collect();
    let pfx = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let digest_prefix = format!("{pfx}AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/");
    let digests: Vec<Delivery> = h
        .sink
        .objects()
        .into_iter()
        .filter(|o| o.key.starts_with(&digest_prefix))
        .collect();
    let mut previous: Option<(String, String, String, String)> = None; // key, hash, signature, end
    let mut n_logs = 0;
    for object in &digests {
        assert!(
            object
                .key
                .contains(&format!("_CloudTrail-Digest_us-east-1_{trail}_us-east-1_"))
        );
        let raw = gunzip(&object.body);
        let body: Value = serde_json::from_slice(&raw).unwrap();
        let meta: std::collections::BTreeMap<_, _> = object.metadata.iter().cloned().collect();
        assert_eq!(meta["signature-algorithm"], "SHA256withRSA");
        assert_eq!(body["digestS3Bucket"], BUCKET);
        assert_eq!(body["digestS3Object"], object.key);
        let end = body["digestEndTime"].as_str().unwrap();
        let stamp: String = end.chars().filter(|c| *c != '-' && *c != ':').collect();
        assert_eq!(&object.key[object.key.len() - 24..object.key.len() - 8], stamp);
        let hash = digest::sha256_hex(&raw);
        let prev_sig = body["previousDigestSignature"].as_str();
        let to_sign = format!("{end}\n{BUCKET}/{}\n{hash}\n{}", object.key, prev_sig.unwrap_or("null"));
        let fingerprint = body["digestPublicKeyFingerprint"].as_str().unwrap();
        let der = &public.iter().find(|(f, _)| f == fingerprint).expect("key listed").1;
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der)
            .verify(to_sign.as_bytes(), &hex::decode(&meta["signature"]).unwrap())
            .expect("signature verifies");
        match &previous {
            None => assert_eq!(body["previousDigestS3Object"], Value::Null),
            Some((key, prev_hash, sig, prev_end)) => {
                if body["previousDigestS3Object"].is_null() {
                    // A new chain after a stop: nothing to link.
                } else {
                    assert_eq!(body["previousDigestS3Object"], *key);
                    assert_eq!(body["previousDigestHashValue"], *prev_hash);
                    assert_eq!(body["previousDigestSignature"], *sig);
                    assert_eq!(body["digestStartTime"], *prev_end, "contiguous windows");
                }
            }
        }
        for log in body["logFiles"].as_array().unwrap() {
            let stored = h
                .sink
                .object(BUCKET, log["s3Object"].as_str().unwrap())
                .expect("log exists");
            assert_eq!(
                digest::sha256_hex(&gunzip(&stored.body)),
                log["hashValue"].as_str().unwrap()
            );
            n_logs += 1;
        }
        previous = Some((object.key.clone(), hash, meta["signature"].clone(), end.to_string()));
    }
    (digests.len(), n_logs)
}

#[tokio::test]
async fn delivery_writes_logs_and_a_verifiable_digest_chain() {
    let h = Harness::new();
    h.create_trail("chain", json!({"S3KeyPrefix": "pfx", "EnableLogFileValidation": true}))
        .await
        .unwrap();
    h.advance(1);
    h.run("StartLogging", json!({"Name": "chain"})).await.unwrap();
    h.advance(1);
    h.event("iam.amazonaws.com", "CreateUser", "us-east-1", false, Some("alice"))
        .await;
    h.event("kms.amazonaws.com", "Encrypt", "us-east-1", true, Some("alice"))
        .await;
    h.event("iam.amazonaws.com", "CreateUser", "eu-west-1", false, Some("alice"))
        .await; // global: included
    h.event("kms.amazonaws.com", "Encrypt", "eu-west-1", false, Some("alice"))
        .await; // other region: not
    h.advance(10);
    h.deliverer.run_once().await;

    let logs: Vec<Delivery> = h
        .sink
        .objects()
        .into_iter()
        .filter(|o| o.key.contains("/CloudTrail/"))
        .collect();
    assert_eq!(logs.len(), 2, "one file per event region");
    let home = logs.iter().find(|o| o.key.contains("/us-east-1/")).unwrap();
    assert!(home.key.starts_with(&format!(
        "pfx/AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/01/01/{ACCOUNT}_CloudTrail_us-east-1_20260101T0000Z_"
    )));
    assert!(home.key.ends_with(".json.gz"));
    let records: Value = serde_json::from_slice(&gunzip(&home.body)).unwrap();
    let names: Vec<&str> = records["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["StartLogging", "CreateUser", "Encrypt"]);
    // A second pass with nothing new delivers nothing.
    h.deliverer.run_once().await;
    assert_eq!(h.sink.objects().len(), 2);
    let status = h.run("GetTrailStatus", json!({"Name": "chain"})).await.unwrap();
    assert!(status["LatestDeliveryTime"].as_f64().is_some());

    // The window closes after the digest interval: one digest listing the home-region log.
    h.advance(60);
    h.deliverer.run_once().await;
    // A quiet window still gets its (empty) digest.
    h.advance(61);
    h.deliverer.run_once().await;
    h.event("iam.amazonaws.com", "DeleteUser", "us-east-1", false, Some("bob"))
        .await;
    h.advance(30);
    h.deliverer.run_once().await;
    // Stopping logging delivers what is left and closes the chain with a final digest.
    h.run("StopLogging", json!({"Name": "chain"})).await.unwrap();
    h.advance(1);
    h.deliverer.run_once().await;
    let status = h.run("GetTrailStatus", json!({"Name": "chain"})).await.unwrap();
    assert!(status["LatestDigestDeliveryTime"].as_f64().is_some());

    let (n_digests, n_logs) = verify_chain(&h, "pfx", "chain").await;
    assert_eq!(n_digests, 3, "two timed digests and a final one");
    let home_logs = h
        .sink
        .objects()
        .iter()
        .filter(|o| {
            o.key
                .starts_with(&format!("pfx/AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/"))
        })
        .count();
    assert_eq!(
        n_logs, home_logs,
        "every home-region log file is listed in exactly one digest"
    );
    assert!(n_logs >= 2);
    let last_log = h
        .sink
        .objects()
        .into_iter()
        .filter(|o| o.key.contains("/CloudTrail/us-east-1/"))
        .map(|o| String::from_utf8(gunzip(&o.body)).unwrap())
        .collect::<Vec<_>>()
        .join("");
    assert!(last_log.contains("\"DeleteUser\"") && last_log.contains("\"StopLogging\""));

    // Nothing more once the chain is closed.
    let before = h.sink.objects().len();
    h.advance(200);
    h.deliverer.run_once().await;
    assert_eq!(h.sink.objects().len(), before);
}

#[tokio::test]
async fn selectors_exclude_kms_and_deleted_trails_get_a_final_digest() {
    let h = Harness::new();
    h.create_trail("sel", json!({"EnableLogFileValidation": true}))
        .await
        .unwrap();
    h.run(
        "PutEventSelectors",
        json!({"TrailName": "sel", "EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": true,
            "ExcludeManagementEventSources": ["kms.amazonaws.com"]}]}),
    )
    .await
    .unwrap();
    h.advance(1);
    h.run("StartLogging", json!({"Name": "sel"})).await.unwrap();
    h.advance(1);
    h.event("kms.amazonaws.com", "Decrypt", "us-east-1", true, None).await;
    h.event("iam.amazonaws.com", "ListUsers", "us-east-1", true, None).await;
    h.advance(5);
    h.deliverer.run_once().await;
    let logs: Vec<Delivery> = h
        .sink
        .objects()
        .into_iter()
        .filter(|o| o.key.contains("/CloudTrail/"))
        .collect();
    assert_eq!(logs.len(), 1);
    let body = String::from_utf8(gunzip(&logs[0].body)).unwrap();
    assert!(body.contains("ListUsers") && !body.contains("Decrypt"), "{body}");

    h.advance(3);
    h.run("DeleteTrail", json!({"Name": "sel"})).await.unwrap();
    h.advance(1);
    h.deliverer.run_once().await;
    let (n_digests, n_logs) = verify_chain(&h, "", "sel").await;
    assert_eq!(n_digests, 1, "the final digest of the deleted trail");
    assert_eq!(n_logs, 2, "the first file and the one with DeleteTrail");
    assert!(
        h.store
            .scan(model::RETIRED, &[], None, 10, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        h.store
            .scan(model::STATES, &[], None, 10, false)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn failed_deliveries_are_reported_and_retried() {
    let h = Harness::new();
    h.create_trail("retry", json!({})).await.unwrap();
    h.advance(1);
    h.run("StartLogging", json!({"Name": "retry"})).await.unwrap();
    h.advance(2);
    h.sink.set_failing(true);
    h.deliverer.run_once().await;
    let status = h.run("GetTrailStatus", json!({"Name": "retry"})).await.unwrap();
    assert_eq!(status["LatestDeliveryError"], "AccessDenied");
    assert!(h.sink.objects().is_empty());
    h.sink.set_failing(false);
    h.advance(2);
    h.deliverer.run_once().await;
    let status = h.run("GetTrailStatus", json!({"Name": "retry"})).await.unwrap();
    assert!(status.get("LatestDeliveryError").is_none());
    let body = String::from_utf8(gunzip(&h.sink.objects()[0].body)).unwrap();
    assert!(body.contains("\"StartLogging\""), "{body}");
}

#[tokio::test]
async fn list_public_keys_makes_the_first_key_and_filters_by_time() {
    let h = Harness::new();
    let now = citadel_core::Clock::now(&h.clock).unix_timestamp();
    let first = h.run("ListPublicKeys", json!({})).await.unwrap();
    let list = first["PublicKeyList"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0]["Value"].as_str().unwrap().starts_with("MIIBCgKCAQEA"));
    assert_eq!(list[0]["ValidityStartTime"], now);
    let again = h.run("ListPublicKeys", json!({})).await.unwrap();
    assert_eq!(
        again["PublicKeyList"], first["PublicKeyList"],
        "the key is stored, not remade"
    );
    let before = h
        .run("ListPublicKeys", json!({"StartTime": now - 100, "EndTime": now - 1}))
        .await
        .unwrap();
    assert!(before["PublicKeyList"].as_array().unwrap().is_empty());
    let err = h
        .run("ListPublicKeys", json!({"StartTime": now, "EndTime": now - 1}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidTimeRangeException");
    let _ = TrailConfig::describe;
}

const GROUP_ARN: &str = "arn:aws:logs:us-east-1:123456789012:log-group:CloudTrail/audit:*";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/CloudTrailToLogs";

#[tokio::test]
async fn cloudwatch_logs_destination_is_checked_at_create_and_update() {
    let h = Harness::new();
    h.logs.add_group(GROUP_ARN);
    h.logs.set_role(ROLE_ARN, true);
    let cwl = |group: &str, role: &str| json!({"CloudWatchLogsLogGroupArn": group, "CloudWatchLogsRoleArn": role});
    let cases = [
        (
            cwl("arn:aws:s3:::bucket", ROLE_ARN),
            "InvalidCloudWatchLogsLogGroupArnException",
        ),
        (
            cwl("arn:aws:logs:us-east-1:123456789012:log-group:missing:*", ROLE_ARN),
            "InvalidCloudWatchLogsLogGroupArnException",
        ),
        (cwl(GROUP_ARN, "not-an-arn"), "InvalidCloudWatchLogsRoleArnException"),
        (
            cwl(GROUP_ARN, "arn:aws:iam::123456789012:role/Unknown"),
            "InvalidCloudWatchLogsRoleArnException",
        ),
        (
            json!({"CloudWatchLogsRoleArn": ROLE_ARN}),
            "InvalidParameterCombinationException",
        ),
    ];
    for (extra, code) in cases {
        let err = h.create_trail("cwl", extra.clone()).await.unwrap_err();
        assert_eq!(err.code, code, "{extra}");
    }
    let out = h.create_trail("cwl", cwl(GROUP_ARN, ROLE_ARN)).await.unwrap();
    assert_eq!(out["CloudWatchLogsLogGroupArn"], GROUP_ARN);
    assert_eq!(out["CloudWatchLogsRoleArn"], ROLE_ARN);
    // An update that does not touch the pair does not check it again; one that does, does.
    h.logs.set_role(ROLE_ARN, false);
    h.run("UpdateTrail", json!({"Name": "cwl", "EnableLogFileValidation": true}))
        .await
        .unwrap();
    let err = h
        .run(
            "UpdateTrail",
            json!({"Name": "cwl", "CloudWatchLogsLogGroupArn": GROUP_ARN.trim_end_matches(":*"), "CloudWatchLogsRoleArn": ROLE_ARN}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidCloudWatchLogsRoleArnException");
}

#[tokio::test]
async fn records_reach_cloudwatch_logs_and_a_lost_permission_is_reported() {
    let h = Harness::new();
    h.logs.add_group(GROUP_ARN);
    h.logs.set_role(ROLE_ARN, true);
    h.create_trail(
        "cwl",
        json!({"CloudWatchLogsLogGroupArn": GROUP_ARN, "CloudWatchLogsRoleArn": ROLE_ARN, "IsMultiRegionTrail": true}),
    )
    .await
    .unwrap();
    h.advance(1);
    h.run("StartLogging", json!({"Name": "cwl"})).await.unwrap();
    h.advance(1);
    h.event("iam.amazonaws.com", "CreateUser", "us-east-1", false, Some("alice"))
        .await;
    h.event("kms.amazonaws.com", "Encrypt", "eu-west-1", false, Some("alice"))
        .await;
    h.advance(5);
    h.deliverer.run_once().await;
    let home = h.logs.events(GROUP_ARN, &format!("{ACCOUNT}_CloudTrail_us-east-1"));
    let names: Vec<String> = home
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(&e.message).unwrap()["eventName"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, vec!["StartLogging", "CreateUser"]);
    let first: Value = serde_json::from_str(&home[0].message).unwrap();
    let event_time = OffsetDateTime::parse(
        first["eventTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(home[0].timestamp_ms, event_time.unix_timestamp() * 1000);
    let other = h.logs.events(GROUP_ARN, &format!("{ACCOUNT}_CloudTrail_eu-west-1"));
    assert_eq!(other.len(), 1, "one stream per event region");
    let status = h.run("GetTrailStatus", json!({"Name": "cwl"})).await.unwrap();
    assert!(status["LatestCloudWatchLogsDeliveryTime"].as_f64().is_some());
    assert!(status.get("LatestCloudWatchLogsDeliveryError").is_none());

    // The role loses its permission: S3 delivery goes on, CloudWatch Logs delivery fails and is reported.
    h.logs.set_role(ROLE_ARN, false);
    h.event("iam.amazonaws.com", "DeleteUser", "us-east-1", false, Some("bob"))
        .await;
    h.advance(5);
    h.deliverer.run_once().await;
    let status = h.run("GetTrailStatus", json!({"Name": "cwl"})).await.unwrap();
    assert!(
        status["LatestCloudWatchLogsDeliveryError"]
            .as_str()
            .unwrap()
            .contains("Access denied"),
        "{status}"
    );
    assert!(status.get("LatestDeliveryError").is_none());
    // Permission back: the held-back records are delivered, once.
    h.logs.set_role(ROLE_ARN, true);
    h.advance(5);
    h.deliverer.run_once().await;
    let home = h.logs.events(GROUP_ARN, &format!("{ACCOUNT}_CloudTrail_us-east-1"));
    let deletes = home.iter().filter(|e| e.message.contains("\"DeleteUser\"")).count();
    assert_eq!(deletes, 1);
    let status = h.run("GetTrailStatus", json!({"Name": "cwl"})).await.unwrap();
    assert!(status.get("LatestCloudWatchLogsDeliveryError").is_none());
}

#[tokio::test]
async fn kms_key_is_checked_and_encrypts_log_files_but_not_digests() {
    let h = Harness::new();
    let key_arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555";
    h.sink.add_kms_key("alias/trail", key_arn, true);
    h.sink
        .add_kms_key("alias/closed", "arn:aws:kms:us-east-1:123456789012:key/x", false);
    let err = h
        .create_trail("enc", json!({"KmsKeyId": "alias/missing"}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "KmsKeyNotFoundException");
    let err = h
        .create_trail("enc", json!({"KmsKeyId": "alias/closed"}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "InsufficientEncryptionPolicyException");
    let out = h
        .create_trail(
            "enc",
            json!({"KmsKeyId": "alias/trail", "EnableLogFileValidation": true}),
        )
        .await
        .unwrap();
    assert_eq!(out["KmsKeyId"], key_arn, "the key is shown as its ARN");
    h.advance(1);
    h.run("StartLogging", json!({"Name": "enc"})).await.unwrap();
    h.advance(2);
    h.deliverer.run_once().await;
    h.run("StopLogging", json!({"Name": "enc"})).await.unwrap();
    h.advance(2);
    h.deliverer.run_once().await;
    let objects = h.sink.objects();
    let logs: Vec<&Delivery> = objects.iter().filter(|o| o.key.contains("/CloudTrail/")).collect();
    let digests: Vec<&Delivery> = objects
        .iter()
        .filter(|o| o.key.contains("/CloudTrail-Digest/"))
        .collect();
    assert!(!logs.is_empty() && !digests.is_empty());
    assert!(logs.iter().all(|o| o.kms_key_id.as_deref() == Some(key_arn)));
    assert!(digests.iter().all(|o| o.kms_key_id.is_none()));
}
