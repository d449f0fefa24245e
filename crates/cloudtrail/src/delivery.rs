//! The background delivery of log files and digest files to S3.
//!
//! Every `interval` the task walks all trails (and deleted trails awaiting their last delivery).
//! For each it:
//!
//! 1. closes the digest chains of a finished logging or validation session (a final digest), when
//!    the configuration's epochs moved on;
//! 2. reads the account's events after the trail's cursor and up to `now - settle` (the settle time
//!    lets group-committed records of read-only calls land first), keeps those the trail's regions
//!    and selectors want, and writes one gzip `{"Records": [...]}` file per event region;
//! 3. when validation is on, adds each file to its region's open digest window, and writes a
//!    signed digest for every window at least `digest_interval` old (also an empty one);
//! 4. writes a final digest for every chain once the trail stopped logging (or was deleted, or
//!    validation was switched off) and every event up to the stop was delivered;
//! 5. commits the new cursor, windows and delivery times in one batch guarded by the state it read.
//!
//! Objects are put before the state commit. A crash in between delivers those events again in a
//! new file, as CloudTrail's at-least-once delivery may; nothing is ever skipped.
//! Events whose records are committed more than `settle` after their event time can be missed,
//! because the cursor is a key position; `settle` should exceed the longest request.

use crate::digest::{self, DigestInput, SIGNATURE_ALGORITHM};
use crate::model::{
    self, Chain, DeliveredLog, DeliveryState, PreviousDigest, RETIRED, RetiredTrail, STATES, TRAILS, TrailConfig,
};
use crate::sink::{Delivery, LogEvent, LogSink, ObjectSink};
use crate::{selectors, signing};
use citadel_core::audit::EVENTS;
use citadel_core::{Clock, IdGen};
use citadel_store::keys::Key;
use citadel_store::{MasterKey, Store, WriteBatch};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Events read per trail per tick; the rest wait for the next tick.
const MAX_EVENTS_PER_TICK: usize = 5000;

/// What the delivery task needs.
#[derive(Clone)]
pub struct Deliverer {
    /// The store with trails, states and events.
    pub store: Arc<dyn Store>,
    /// Seals the signing keys.
    pub master: Arc<MasterKey>,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    /// Random parts of log file names.
    pub ids: IdGen,
    /// Where objects go.
    pub sink: Arc<dyn ObjectSink>,
    /// Where CloudWatch Logs events go.
    pub log_sink: Arc<dyn LogSink>,
    /// The digest window length.
    pub digest_interval: Duration,
    /// How old an event must be before it is delivered.
    pub settle: Duration,
}

/// Starts the delivery loop: a pass every `interval`, digests every `digest_interval`.
/// `settle` is how long records may take to be committed after their event time (a few seconds).
#[allow(clippy::too_many_arguments)] // The server wires each dependency explicitly; a struct would only rename them.
pub fn spawn_delivery(
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    ids: IdGen,
    sink: Arc<dyn ObjectSink>,
    log_sink: Arc<dyn LogSink>,
    interval: Duration,
    digest_interval: Duration,
    settle: Duration,
    lease: citadel_core::lease::Lease,
) -> tokio::task::JoinHandle<()> {
    let deliverer = Deliverer {
        store,
        master,
        clock,
        ids,
        sink,
        log_sink,
        digest_interval,
        settle,
    };
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            // With several nodes on one store, only the lease holder delivers, so each file and
            // digest is written once; a node that dies stops renewing and another takes over.
            match lease.acquire().await {
                Ok(true) => deliverer.run_once().await,
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "could not claim the CloudTrail delivery lease"),
            }
        }
    })
}

fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn at_seconds(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(s).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The smallest key after `key`.
fn after(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

impl Deliverer {
    /// One pass over every trail; errors are logged and recorded in the trails' states.
    pub async fn run_once(&self) {
        if let Err(err) = self.store.flush().await {
            tracing::warn!(error = %err, "cloudtrail delivery: flush failed");
        }
        match self.store.scan(TRAILS, &[], None, usize::MAX, false).await {
            Ok(rows) => {
                for (_, raw) in rows {
                    if let Some(config) = model::decode::<TrailConfig>(&raw) {
                        self.process(&config, None).await;
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cloudtrail delivery: cannot list trails"),
        }
        match self.store.scan(RETIRED, &[], None, usize::MAX, false).await {
            Ok(rows) => {
                for (key, raw) in rows {
                    if let Some(retired) = model::decode::<RetiredTrail>(&raw) {
                        self.process(&retired.config, Some(&key)).await;
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cloudtrail delivery: cannot list deleted trails"),
        }
    }

    async fn process(&self, config: &TrailConfig, retired_key: Option<&[u8]>) {
        let state_key = model::state_key(&config.uid);
        let raw = match self.store.get(STATES, &state_key).await {
            Ok(raw) => raw,
            Err(err) => {
                tracing::warn!(error = %err, "cloudtrail delivery: cannot read state");
                return;
            }
        };
        let mut state = raw
            .as_deref()
            .and_then(model::decode::<DeliveryState>)
            .unwrap_or_default();
        let before = state.clone();
        let now = self.clock.now();
        let now_s = now.unix_timestamp();

        // 1. A new logging or validation session closes the previous session's chains.
        if state.logging_epoch != config.logging_epoch || state.validation_epoch != config.validation_epoch {
            if !self.close_chains(config, &mut state, now_s).await {
                self.save(&state_key, raw.as_deref(), &before, &state, None).await;
                return;
            }
            if state.logging_epoch != config.logging_epoch {
                state.cursor = None;
                state.cwl_cursor = None;
            }
            state.logging_epoch = config.logging_epoch;
            state.validation_epoch = config.validation_epoch;
        }

        // 2. Log files, and their records as CloudWatch Logs events.
        self.deliver_to_logs(config, &mut state, now).await;
        let caught_up = self.deliver_events(config, &mut state, now).await;

        // 3. Digest windows.
        let validating = config.log_file_validation && config.is_logging && retired_key.is_none();
        if validating && !state.chains.contains_key(&config.home_region) {
            state.chains.insert(
                config.home_region.clone(),
                Chain {
                    window_start_s: now_s,
                    logs: Vec::new(),
                    previous: None,
                },
            );
        }
        let interval_s = i64::try_from(self.digest_interval.as_secs()).unwrap_or(3600).max(1);
        let regions: Vec<String> = state.chains.keys().cloned().collect();
        for region in regions {
            let due = state
                .chains
                .get(&region)
                .is_some_and(|c| now_s.saturating_sub(c.window_start_s) >= interval_s);
            if due {
                self.emit_digest(config, &mut state, &region, now_s).await;
            }
        }

        // 4. Final digests once the session is over and everything up to its end was delivered.
        let finished =
            !config.log_file_validation || (!config.is_logging && caught_up) || retired_key.is_some() && caught_up;
        let mut done = false;
        if finished && !state.chains.is_empty() {
            self.close_chains(config, &mut state, now_s).await;
        }
        if retired_key.is_some() && caught_up && state.chains.is_empty() {
            done = true;
        }

        // 5. Commit.
        let retire = if done { retired_key } else { None };
        self.save(&state_key, raw.as_deref(), &before, &state, retire).await;
    }

    /// Writes a final digest for every chain whose window is non-empty in time, and drops the chains.
    /// Returns false if a chain could not be closed yet (its window started this very second, or S3 failed).
    async fn close_chains(&self, config: &TrailConfig, state: &mut DeliveryState, now_s: i64) -> bool {
        let regions: Vec<String> = state.chains.keys().cloned().collect();
        let mut all = true;
        for region in regions {
            let window_start = state.chains.get(&region).map(|c| c.window_start_s).unwrap_or(now_s);
            if now_s <= window_start {
                // A digest must end after it starts, and its key (named after the end) must be new.
                all = false;
                continue;
            }
            if self.emit_digest(config, state, &region, now_s).await {
                state.chains.remove(&region);
            } else {
                all = false;
            }
        }
        all
    }

    /// Sends the records after the CloudWatch Logs cursor to the trail's log group, one stream per
    /// event region, as a session of the trail's role. A failure is recorded as
    /// `LatestCloudWatchLogsDeliveryError` and the same records are tried again on the next pass.
    async fn deliver_to_logs(&self, config: &TrailConfig, state: &mut DeliveryState, now: OffsetDateTime) {
        let Some(target) = config.log_target() else {
            state.cwl_cursor = None;
            state.cwl_group = None;
            return;
        };
        let Some(start_ms) = config.start_logging_ms else {
            return;
        };
        if state.cwl_group.as_deref() != Some(target.group_arn.as_str()) {
            // A destination added to a trail that is already delivering receives events from now on.
            state.cwl_cursor = state.cursor.clone();
            state.cwl_group = Some(target.group_arn.clone());
        }
        let Some((lower, upper)) = self.event_bounds(config, state.cwl_cursor.as_deref(), start_ms, now) else {
            return;
        };
        let rows = match self
            .store
            .scan(EVENTS, &lower, Some(&upper), MAX_EVENTS_PER_TICK, false)
            .await
        {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(error = %err, "cloudtrail logs delivery: cannot read events");
                return;
            }
        };
        let Some(last_key) = rows.last().map(|(k, _)| k.clone()) else {
            return;
        };
        for (region, records) in select_records(config, &rows) {
            let events: Vec<LogEvent> = records
                .iter()
                .map(|record| LogEvent {
                    timestamp_ms: record
                        .get("eventTime")
                        .and_then(Value::as_str)
                        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
                        .map_or_else(|| ms(now), ms),
                    message: record.to_string(),
                })
                .collect();
            let stream = model::log_stream_name(&config.account, &region);
            if let Err(err) = self.log_sink.deliver(&target, &stream, &events).await {
                tracing::warn!(trail = %config.arn(), error = %err, "cloudtrail logs delivery failed");
                state.latest_cwl_error = Some(err.to_string());
                return;
            }
        }
        state.cwl_cursor = Some(hex::encode(&last_key));
        state.latest_cwl_delivery_ms = Some(ms(now));
        state.latest_cwl_error = None;
    }

    /// The key range of events a pass reads after `cursor`: from the session start (or just after
    /// the cursor) up to `now - settle`, or the stop of a stopped session; `None` when empty.
    fn event_bounds(
        &self,
        config: &TrailConfig,
        cursor: Option<&str>,
        start_ms: i64,
        now: OffsetDateTime,
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let settle_ms = i64::try_from(self.settle.as_millis()).unwrap_or(0);
        let mut upto_ms = ms(now).saturating_sub(settle_ms);
        if !config.is_logging
            && let Some(stop) = config.stop_logging_ms
        {
            upto_ms = upto_ms.min(stop);
        }
        let account_prefix = Key::new().str(&config.account).finish();
        let mut lower = Key::new()
            .str(&config.account)
            .u64(u64::try_from(start_ms).unwrap_or(0))
            .finish();
        if let Some(cursor) = cursor.and_then(|c| hex::decode(c).ok())
            && cursor.starts_with(&account_prefix)
        {
            lower = lower.max(after(&cursor));
        }
        let upper = Key::new()
            .str(&config.account)
            .u64(u64::try_from(upto_ms.saturating_add(1)).unwrap_or(0))
            .finish();
        (lower < upper).then_some((lower, upper))
    }

    /// Delivers events after the cursor; returns whether every event up to the session's end was delivered.
    async fn deliver_events(&self, config: &TrailConfig, state: &mut DeliveryState, now: OffsetDateTime) -> bool {
        let Some(start_ms) = config.start_logging_ms else {
            return true;
        };
        let now_ms = ms(now);
        let settle_ms = i64::try_from(self.settle.as_millis()).unwrap_or(0);
        let mut upto_ms = now_ms.saturating_sub(settle_ms);
        let stopped = !config.is_logging;
        if stopped && let Some(stop) = config.stop_logging_ms {
            upto_ms = upto_ms.min(stop);
        }
        let reached_end = !stopped || config.stop_logging_ms.is_none_or(|stop| upto_ms >= stop);
        let Some((lower, upper)) = self.event_bounds(config, state.cursor.as_deref(), start_ms, now) else {
            return reached_end;
        };
        let rows = match self
            .store
            .scan(EVENTS, &lower, Some(&upper), MAX_EVENTS_PER_TICK, false)
            .await
        {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(error = %err, "cloudtrail delivery: cannot read events");
                return false;
            }
        };
        let complete = rows.len() < MAX_EVENTS_PER_TICK;
        let Some(last_key) = rows.last().map(|(k, _)| k.clone()) else {
            return reached_end;
        };
        let by_region = select_records(config, &rows);
        for (region, records) in by_region {
            state.latest_attempt_ms = Some(now_ms);
            let body = digest::log_body(&records);
            let Ok(packed) = digest::gzip(&body) else {
                return false;
            };
            let key = digest::log_key(
                config.prefix.as_deref(),
                &config.account,
                &region,
                now,
                &self.ids.alphanumeric(16),
            );
            let times: Vec<&str> = records
                .iter()
                .filter_map(|r| r.get("eventTime").and_then(Value::as_str))
                .collect();
            let newest = times.iter().max().copied().unwrap_or_default().to_string();
            let oldest = times.iter().min().copied().unwrap_or_default().to_string();
            let delivery = Delivery {
                bucket: config.bucket.clone(),
                key: key.clone(),
                body: packed,
                content_type: "application/json",
                metadata: Vec::new(),
                source_arn: config.arn(),
                source_account: config.account.clone(),
                kms_key_id: config.kms_key_id.clone(),
            };
            if let Err(err) = self.sink.put_object(delivery).await {
                tracing::warn!(trail = %config.arn(), error = %err, "cloudtrail delivery failed");
                state.latest_delivery_error = Some(err.to_string());
                return false;
            }
            state.latest_delivery_ms = Some(now_ms);
            state.latest_delivery_error = None;
            if config.log_file_validation {
                let chain = state.chains.entry(region).or_insert_with(|| Chain {
                    window_start_s: now.unix_timestamp(),
                    logs: Vec::new(),
                    previous: None,
                });
                chain.logs.push(DeliveredLog {
                    bucket: config.bucket.clone(),
                    key,
                    hash: digest::sha256_hex(&body),
                    newest,
                    oldest,
                });
            }
        }
        state.cursor = Some(hex::encode(&last_key));
        complete && reached_end
    }

    /// Writes the digest of `region`'s open window ending at `now_s`, and opens the next window.
    async fn emit_digest(&self, config: &TrailConfig, state: &mut DeliveryState, region: &str, now_s: i64) -> bool {
        let Some(chain) = state.chains.get(region).cloned() else {
            return true;
        };
        if now_s <= chain.window_start_s {
            return false;
        }
        let now_ms = now_s.saturating_mul(1000);
        let key = match signing::current_key(self.store.as_ref(), &self.master, region, now_s).await {
            Ok(key) => key,
            Err(err) => {
                tracing::warn!(error = %err, "cloudtrail digest: no signing key");
                state.latest_digest_error = Some("InternalFailure".into());
                return false;
            }
        };
        let end = at_seconds(now_s);
        let object = digest::digest_key(
            config.prefix.as_deref(),
            &config.account,
            region,
            &config.name,
            &config.home_region,
            end,
        );
        let body = digest::digest_body(&DigestInput {
            account: &config.account,
            start: at_seconds(chain.window_start_s),
            end,
            bucket: &config.bucket,
            key: &object,
            fingerprint: &key.record.fingerprint,
            logs: &chain.logs,
            previous: chain.previous.as_ref(),
        });
        let hash = digest::sha256_hex(&body);
        let to_sign = digest::string_to_sign(
            end,
            &config.bucket,
            &object,
            &hash,
            chain.previous.as_ref().map(|p| p.signature.as_str()),
        );
        let signature = match key.sign_hex(to_sign.as_bytes()) {
            Ok(s) => s,
            Err(_) => {
                state.latest_digest_error = Some("InternalFailure".into());
                return false;
            }
        };
        let Ok(packed) = digest::gzip(&body) else {
            return false;
        };
        let delivery = Delivery {
            bucket: config.bucket.clone(),
            key: object.clone(),
            body: packed,
            content_type: "application/json",
            metadata: vec![
                ("signature".to_string(), signature.clone()),
                ("signature-algorithm".to_string(), SIGNATURE_ALGORITHM.to_string()),
            ],
            source_arn: config.arn(),
            source_account: config.account.clone(),
            // Digest files are not encrypted with the trail's key, as on AWS.
            kms_key_id: None,
        };
        state.latest_attempt_ms = Some(now_ms);
        if let Err(err) = self.sink.put_object(delivery).await {
            tracing::warn!(trail = %config.arn(), error = %err, "cloudtrail digest delivery failed");
            state.latest_digest_error = Some(err.to_string());
            return false;
        }
        state.latest_digest_ms = Some(now_ms);
        state.latest_digest_error = None;
        state.chains.insert(
            region.to_string(),
            Chain {
                window_start_s: now_s,
                logs: Vec::new(),
                previous: Some(PreviousDigest {
                    bucket: config.bucket.clone(),
                    key: object,
                    hash,
                    signature,
                }),
            },
        );
        true
    }

    async fn save(
        &self,
        state_key: &[u8],
        raw: Option<&[u8]>,
        before: &DeliveryState,
        state: &DeliveryState,
        retired_key: Option<&[u8]>,
    ) {
        if state == before && retired_key.is_none() {
            return;
        }
        let mut batch = WriteBatch::new();
        batch.expect(STATES, state_key, raw);
        match retired_key {
            Some(key) => {
                batch.delete(STATES, state_key);
                batch.expect_present(RETIRED, key);
                batch.delete(RETIRED, key);
            }
            None => {
                batch.put(STATES, state_key, &model::encode(state));
            }
        }
        if let Err(err) = self.store.commit(batch).await {
            tracing::warn!(error = %err, "cloudtrail delivery: cannot save state");
        }
    }
}

/// The records of `rows` the trail delivers (its regions and selectors), grouped by event region.
fn select_records(config: &TrailConfig, rows: &[(Vec<u8>, Vec<u8>)]) -> BTreeMap<String, Vec<Value>> {
    let mut by_region: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (_, raw) in rows {
        let Ok(record) = serde_json::from_slice::<Value>(raw) else {
            continue;
        };
        let region = record
            .get("awsRegion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let source = record.get("eventSource").and_then(Value::as_str).unwrap_or("");
        if !selectors::region_matches(
            &config.home_region,
            config.multi_region,
            config.include_global,
            &region,
            source,
        ) {
            continue;
        }
        if !selectors::selects(
            config.event_selectors.as_ref(),
            config.advanced_event_selectors.as_ref(),
            &record,
        ) {
            continue;
        }
        let region = if region.is_empty() {
            config.home_region.clone()
        } else {
            region
        };
        by_region.entry(region).or_default().push(record);
    }
    by_region
}
