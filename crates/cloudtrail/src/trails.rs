//! The trail handlers: create, update, delete, describe, status, logging, selectors, tags, keys.
//!
//! Handlers only read and return an [`Effect`]; every batch guards the configuration row it read,
//! so a concurrent change makes the pipeline run the handler again.

use crate::model::{self, RETIRED, STATES, TRAILS, TrailConfig, TrailRef};
use crate::sink::{KmsKeyCheck, KmsKeyError, LogSinkError};
use crate::{CloudTrail, error, selectors, signing};
use citadel_core::{AuditResource, Call, Effect};
use citadel_policy::{
    Context, Outcome, Policy, PolicyKind, PolicyRef, PolicySet, Principal, PrincipalKind, Request, ResourcePolicy,
    ResourcePolicyKind, evaluate,
};
use citadel_store::WriteBatch;
use citadel_store::keys::{Key, prefix_range};
use citadel_wire::AwsError;
use serde_json::{Value, json};

fn now_ms(call: &Call) -> i64 {
    i64::try_from(call.ctx.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn opt_str(input: &Value, name: &str) -> Option<String> {
    input.get(name).and_then(Value::as_str).map(str::to_string)
}

fn opt_bool(input: &Value, name: &str) -> Option<bool> {
    input.get(name).and_then(Value::as_bool)
}

fn trail_resource(config: &TrailConfig) -> Vec<AuditResource> {
    vec![AuditResource {
        arn: config.arn(),
        account_id: config.account.clone(),
        resource_type: "AWS::CloudTrail::Trail",
    }]
}

/// Whether a bucket policy lets `cloudtrail.amazonaws.com` read the bucket ACL and write the trail's logs.
pub fn policy_allows_delivery(
    policy_text: &str,
    bucket: &str,
    prefix: Option<&str>,
    account: &str,
    trail_arn: &str,
) -> bool {
    let Ok(policy) = Policy::parse(policy_text, PolicyKind::ResourceBased) else {
        return false;
    };
    let mut context = Context::new();
    context.insert("aws:SourceArn", trail_arn);
    context.insert("aws:SourceAccount", account);
    context.insert("s3:x-amz-acl", "bucket-owner-full-control");
    context.insert("aws:SecureTransport", "true");
    let principal = Principal::new(
        "cloudtrail.amazonaws.com",
        "",
        PrincipalKind::Service {
            name: "cloudtrail.amazonaws.com",
        },
    );
    let pfx = match prefix {
        Some(p) if !p.is_empty() => format!("{p}/"),
        _ => String::new(),
    };
    let object = format!("arn:aws:s3:::{bucket}/{pfx}AWSLogs/{account}/CloudTrail/x.json.gz");
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let set = PolicySet {
        resource: Some(ResourcePolicy {
            policy: PolicyRef {
                id: "bucket-policy",
                policy: &policy,
            },
            kind: ResourcePolicyKind::Generic,
        }),
        ..PolicySet::default()
    };
    [
        ("s3:GetBucketAcl", bucket_arn.as_str()),
        ("s3:PutObject", object.as_str()),
    ]
    .iter()
    .all(|(action, resource)| {
        let request = Request {
            principal,
            action,
            resource: Some(resource),
            resource_account: Some(account),
            context: &context,
        };
        evaluate(&request, &set).outcome == Outcome::Allowed
    })
}

fn parse_tags(input: &Value) -> Result<Vec<(String, String)>, AwsError> {
    let mut tags = Vec::new();
    for tag in input.get("TagsList").and_then(Value::as_array).into_iter().flatten() {
        let key = tag.get("Key").and_then(Value::as_str).unwrap_or("");
        let value = tag.get("Value").and_then(Value::as_str).unwrap_or("");
        if key.is_empty() || key.len() > 128 || value.len() > 256 || key.starts_with("aws:") {
            return Err(error::invalid_tag(format!("Tag key or value is invalid: {key}")));
        }
        tags.push((key.to_string(), value.to_string()));
    }
    Ok(tags)
}

fn tags_json(tags: &[(String, String)]) -> Value {
    Value::Array(tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect())
}

impl CloudTrail {
    async fn load(&self, account: &str, region: &str, name: &str) -> Result<Option<(TrailConfig, Vec<u8>)>, AwsError> {
        let raw = self
            .store
            .get(TRAILS, &model::trail_key(account, region, name))
            .await
            .map_err(error::internal)?;
        Ok(raw.and_then(|raw| model::decode::<TrailConfig>(&raw).map(|c| (c, raw))))
    }

    /// Every trail of `account`, in every region.
    pub(crate) async fn account_trails(&self, account: &str) -> Result<Vec<TrailConfig>, AwsError> {
        let (start, end) = prefix_range(&Key::new().str(account).finish());
        let rows = self
            .store
            .scan(TRAILS, &start, end.as_deref(), usize::MAX, false)
            .await
            .map_err(error::internal)?;
        Ok(rows
            .iter()
            .filter_map(|(_, v)| model::decode::<TrailConfig>(v))
            .collect())
    }

    /// Finds the trail a `Name`-like member names: an ARN, a trail of this region, or a multi-region
    /// trail of another region (a shadow trail), which only read operations may use.
    async fn find(&self, call: &Call, text: &str, mutating: bool) -> Result<(TrailConfig, Vec<u8>), AwsError> {
        let account = call.ctx.account_id();
        let region = call.ctx.region.as_str();
        let TrailRef {
            region: arn_region,
            account: arn_account,
            name,
        } = model::parse_trail_ref(text)?;
        if arn_account.as_deref().is_some_and(|a| a != account) {
            return Err(error::trail_not_found(account, region, text));
        }
        let found = match &arn_region {
            Some(r) => self.load(account, r, &name).await?,
            None => match self.load(account, region, &name).await? {
                Some(found) => Some(found),
                None => {
                    let shadow = self
                        .account_trails(account)
                        .await?
                        .into_iter()
                        .find(|t| t.name == name && t.multi_region);
                    match shadow {
                        Some(t) => self.load(account, &t.home_region, &t.name).await?,
                        None => None,
                    }
                }
            },
        };
        let (config, raw) = found.ok_or_else(|| error::trail_not_found(account, region, text))?;
        if mutating && config.home_region != region {
            return Err(error::wrong_home_region(&config.arn(), &config.home_region));
        }
        if !mutating && config.home_region != region && !config.multi_region {
            return Err(error::trail_not_found(account, region, text));
        }
        Ok((config, raw))
    }

    /// Checks a destination bucket, the CloudWatch Logs pair and the KMS key.
    ///
    /// The CloudWatch Logs pair and the key are checked only when they are new (`previous` is the
    /// configuration before an update), as a role losing a permission later shows up as a delivery
    /// error rather than blocking unrelated updates. The key is replaced by its ARN, as AWS shows it.
    async fn check_destination(
        &self,
        config: &mut TrailConfig,
        previous: Option<&TrailConfig>,
    ) -> Result<(), AwsError> {
        if !self.sink.bucket_exists(&config.bucket).await {
            return Err(error::bucket_missing(&config.bucket));
        }
        let policy = self.sink.bucket_policy(&config.bucket).await;
        let allowed = policy.as_deref().is_some_and(|p| {
            policy_allows_delivery(
                p,
                &config.bucket,
                config.prefix.as_deref(),
                &config.account,
                &config.arn(),
            )
        });
        if !allowed {
            return Err(error::insufficient_bucket_policy(&config.bucket));
        }
        if let Some(prefix) = &config.prefix
            && prefix.len() > 200
        {
            return Err(error::invalid_prefix("S3KeyPrefix must be at most 200 characters."));
        }
        if config.multi_region && !config.include_global {
            return Err(error::invalid_combination(
                "Multi-Region trail must include global service events.",
            ));
        }
        let cwl_changed =
            previous.is_none_or(|p| p.cwl_group_arn != config.cwl_group_arn || p.cwl_role_arn != config.cwl_role_arn);
        if cwl_changed {
            self.check_log_destination(config).await?;
        }
        let key_changed = previous.is_none_or(|p| p.kms_key_id != config.kms_key_id);
        if key_changed && let Some(key) = config.kms_key_id.clone() {
            let check = KmsKeyCheck {
                key_id: key.clone(),
                account: config.account.clone(),
                region: config.home_region.clone(),
                trail_arn: config.arn(),
            };
            let arn = self.sink.check_kms_key(&check).await.map_err(|e| match e {
                KmsKeyError::NotFound => error::kms_key_not_found(&key),
                KmsKeyError::Disabled => error::kms_key_disabled(&key),
                KmsKeyError::InsufficientPolicy => error::insufficient_encryption_policy(&key),
                KmsKeyError::Other(message) => error::kms_exception(message),
            })?;
            config.kms_key_id = Some(arn);
        }
        Ok(())
    }

    /// Checks the CloudWatch Logs group and role of a trail, when it has them.
    async fn check_log_destination(&self, config: &TrailConfig) -> Result<(), AwsError> {
        let (group, role) = match (&config.cwl_group_arn, &config.cwl_role_arn) {
            (Some(group), Some(role)) => (group, role),
            (None, None) => return Ok(()),
            _ => {
                return Err(error::invalid_combination(
                    "You must specify a log group and a role ARN together.",
                ));
            }
        };
        if model::parse_log_group_arn(group).is_none() {
            return Err(error::invalid_log_group_arn(group));
        }
        if !role.starts_with("arn:aws:iam::") || !role.contains(":role/") {
            return Err(error::invalid_log_role_arn(role));
        }
        let target = config.log_target().ok_or_else(|| error::invalid_log_group_arn(group))?;
        self.logs.check(&target).await.map_err(|e| match e {
            LogSinkError::InvalidRole(message) => AwsError::new("InvalidCloudWatchLogsRoleArnException", 400, message),
            LogSinkError::InvalidGroup(message) => {
                AwsError::new("InvalidCloudWatchLogsLogGroupArnException", 400, message)
            }
            LogSinkError::Unavailable(message) | LogSinkError::Other(message) => error::cwl_unavailable(message),
        })
    }

    pub(crate) async fn create_trail(&self, call: &Call) -> Result<Effect, AwsError> {
        let input = &call.input;
        let name = opt_str(input, "Name").unwrap_or_default();
        model::validate_trail_name(&name).map_err(error::invalid_trail_name)?;
        if opt_bool(input, "IsOrganizationTrail") == Some(true) {
            return Err(AwsError::new(
                "OrganizationsNotInUseException",
                400,
                "This account is not part of an organization.",
            ));
        }
        let account = call.ctx.account_id().to_string();
        let region = call.ctx.region.clone();
        if self.load(&account, &region, &name).await?.is_some() {
            return Err(error::trail_exists(&model::trail_arn(&region, &account, &name)));
        }
        let config = TrailConfig {
            uid: self.ids.uuid(),
            name: name.clone(),
            account: account.clone(),
            home_region: region.clone(),
            bucket: opt_str(input, "S3BucketName").unwrap_or_default(),
            prefix: opt_str(input, "S3KeyPrefix").filter(|p| !p.is_empty()),
            sns_topic: opt_str(input, "SnsTopicName").filter(|p| !p.is_empty()),
            include_global: opt_bool(input, "IncludeGlobalServiceEvents").unwrap_or(true),
            multi_region: opt_bool(input, "IsMultiRegionTrail").unwrap_or(false),
            log_file_validation: opt_bool(input, "EnableLogFileValidation").unwrap_or(false),
            cwl_group_arn: opt_str(input, "CloudWatchLogsLogGroupArn").filter(|p| !p.is_empty()),
            cwl_role_arn: opt_str(input, "CloudWatchLogsRoleArn").filter(|p| !p.is_empty()),
            kms_key_id: opt_str(input, "KmsKeyId").filter(|p| !p.is_empty()),
            event_selectors: None,
            advanced_event_selectors: None,
            insight_selectors: None,
            tags: parse_tags(input)?,
            is_logging: false,
            start_logging_ms: None,
            stop_logging_ms: None,
            logging_epoch: 0,
            validation_epoch: 0,
            created_ms: now_ms(call),
        };
        if config.tags.len() > 50 {
            return Err(error::tags_limit());
        }
        let mut config = config;
        self.check_destination(&mut config, None).await?;
        let key = model::trail_key(&account, &region, &name);
        let mut batch = WriteBatch::new();
        batch.expect(TRAILS, &key, None);
        batch.put(TRAILS, &key, &model::encode(&config));
        let mut effect = Effect::write(config.create_output(), batch);
        effect.resources = trail_resource(&config);
        Ok(effect)
    }

    pub(crate) async fn update_trail(&self, call: &Call) -> Result<Effect, AwsError> {
        let input = &call.input;
        let text = opt_str(input, "Name").unwrap_or_default();
        let (old, raw) = self.find(call, &text, true).await?;
        let mut config = old.clone();
        if let Some(bucket) = opt_str(input, "S3BucketName") {
            config.bucket = bucket;
        }
        if let Some(prefix) = opt_str(input, "S3KeyPrefix") {
            config.prefix = Some(prefix).filter(|p| !p.is_empty());
        }
        if let Some(topic) = opt_str(input, "SnsTopicName") {
            config.sns_topic = Some(topic).filter(|p| !p.is_empty());
        }
        if let Some(v) = opt_bool(input, "IncludeGlobalServiceEvents") {
            config.include_global = v;
        }
        if let Some(v) = opt_bool(input, "IsMultiRegionTrail") {
            config.multi_region = v;
        }
        if let Some(v) = opt_bool(input, "EnableLogFileValidation") {
            if v && !config.log_file_validation {
                config.validation_epoch = config.validation_epoch.saturating_add(1);
            }
            config.log_file_validation = v;
        }
        if let Some(arn) = opt_str(input, "CloudWatchLogsLogGroupArn") {
            config.cwl_group_arn = Some(arn).filter(|p| !p.is_empty());
        }
        if let Some(arn) = opt_str(input, "CloudWatchLogsRoleArn") {
            config.cwl_role_arn = Some(arn).filter(|p| !p.is_empty());
        }
        if let Some(key) = opt_str(input, "KmsKeyId") {
            config.kms_key_id = Some(key).filter(|p| !p.is_empty());
        }
        if opt_bool(input, "IsOrganizationTrail") == Some(true) {
            return Err(AwsError::new(
                "OrganizationsNotInUseException",
                400,
                "This account is not part of an organization.",
            ));
        }
        self.check_destination(&mut config, Some(&old)).await?;
        let key = model::trail_key(&config.account, &config.home_region, &config.name);
        let mut batch = WriteBatch::new();
        batch.expect(TRAILS, &key, Some(&raw));
        batch.put(TRAILS, &key, &model::encode(&config));
        let mut effect = Effect::write(config.create_output(), batch);
        effect.resources = trail_resource(&config);
        Ok(effect)
    }

    pub(crate) async fn delete_trail(&self, call: &Call) -> Result<Effect, AwsError> {
        let text = opt_str(&call.input, "Name").unwrap_or_default();
        let (mut config, raw) = self.find(call, &text, true).await?;
        let now = now_ms(call);
        let key = model::trail_key(&config.account, &config.home_region, &config.name);
        let mut batch = WriteBatch::new();
        batch.expect(TRAILS, &key, Some(&raw));
        batch.delete(TRAILS, &key);
        if config.is_logging {
            config.is_logging = false;
            config.stop_logging_ms = Some(now);
        }
        let resources = trail_resource(&config);
        let retired = model::retired_key(&config.account, &config.home_region, &config.name, now);
        batch.put(RETIRED, &retired, &model::encode(&model::RetiredTrail { config }));
        let mut effect = Effect::write(json!({}), batch);
        effect.resources = resources;
        Ok(effect)
    }

    pub(crate) async fn get_trail(&self, call: &Call) -> Result<Effect, AwsError> {
        let text = opt_str(&call.input, "Name").unwrap_or_default();
        let (config, _) = self.find(call, &text, false).await?;
        Ok(Effect::read(json!({"Trail": config.describe()})))
    }

    pub(crate) async fn describe_trails(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = call.ctx.account_id();
        let region = call.ctx.region.as_str();
        let shadows = opt_bool(&call.input, "includeShadowTrails").unwrap_or(true);
        let names: Vec<String> = call
            .input
            .get("trailNameList")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let all = self.account_trails(account).await?;
        let visible = |t: &TrailConfig| t.home_region == region || (shadows && t.multi_region);
        let mut list: Vec<Value> = Vec::new();
        if names.is_empty() {
            list.extend(all.iter().filter(|t| visible(t)).map(TrailConfig::describe));
        } else {
            for text in &names {
                let Ok(r) = model::parse_trail_ref(text) else { continue };
                let found = all.iter().find(|t| {
                    t.name == r.name && r.region.as_deref().is_none_or(|reg| reg == t.home_region) && visible(t)
                });
                if let Some(t) = found {
                    list.push(t.describe());
                }
            }
        }
        Ok(Effect::read(json!({"trailList": list})))
    }

    pub(crate) async fn list_trails(&self, call: &Call) -> Result<Effect, AwsError> {
        let all = self.account_trails(call.ctx.account_id()).await?;
        let trails: Vec<Value> = all
            .iter()
            .map(|t| json!({"TrailARN": t.arn(), "Name": t.name, "HomeRegion": t.home_region}))
            .collect();
        Ok(Effect::read(json!({"Trails": trails})))
    }

    pub(crate) async fn get_trail_status(&self, call: &Call) -> Result<Effect, AwsError> {
        let text = opt_str(&call.input, "Name").unwrap_or_default();
        let (config, _) = self.find(call, &text, false).await?;
        let state = self
            .store
            .get(STATES, &model::state_key(&config.uid))
            .await
            .map_err(error::internal)?
            .and_then(|raw| model::decode::<model::DeliveryState>(&raw))
            .unwrap_or_default();
        let seconds = |ms: Option<i64>| ms.map(|m| m as f64 / 1000.0);
        let iso = |ms: Option<i64>| {
            ms.and_then(|m| time::OffsetDateTime::from_unix_timestamp(m / 1000).ok())
                .map(citadel_core::clock::iso8601)
        };
        let mut out = json!({
            "IsLogging": config.is_logging,
            "StartLoggingTime": seconds(config.start_logging_ms),
            "StopLoggingTime": seconds(config.stop_logging_ms),
            "TimeLoggingStarted": iso(config.start_logging_ms),
            "TimeLoggingStopped": iso(config.stop_logging_ms),
            "LatestDeliveryTime": seconds(state.latest_delivery_ms),
            "LatestDigestDeliveryTime": seconds(state.latest_digest_ms),
            "LatestDeliveryAttemptTime": iso(state.latest_attempt_ms),
            "LatestDeliveryAttemptSucceeded": iso(state.latest_delivery_ms),
            "LatestNotificationAttemptTime": "",
            "LatestNotificationAttemptSucceeded": "",
            "LatestDeliveryError": state.latest_delivery_error,
            "LatestCloudWatchLogsDeliveryTime": seconds(state.latest_cwl_delivery_ms),
            "LatestCloudWatchLogsDeliveryError": state.latest_cwl_error,
            "LatestDigestDeliveryError": state.latest_digest_error,
        });
        if let Some(map) = out.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        Ok(Effect::read(out))
    }

    pub(crate) async fn set_logging(&self, call: &Call, on: bool) -> Result<Effect, AwsError> {
        let text = opt_str(&call.input, "Name").unwrap_or_default();
        let (mut config, raw) = self.find(call, &text, true).await?;
        let now = now_ms(call);
        if on && !config.is_logging {
            config.is_logging = true;
            config.start_logging_ms = Some(now);
            config.logging_epoch = config.logging_epoch.saturating_add(1);
        } else if !on && config.is_logging {
            config.is_logging = false;
            config.stop_logging_ms = Some(now);
        }
        let key = model::trail_key(&config.account, &config.home_region, &config.name);
        let mut batch = WriteBatch::new();
        batch.expect(TRAILS, &key, Some(&raw));
        batch.put(TRAILS, &key, &model::encode(&config));
        let mut effect = Effect::write(json!({}), batch);
        effect.resources = trail_resource(&config);
        Ok(effect)
    }

    pub(crate) async fn put_event_selectors(&self, call: &Call) -> Result<Effect, AwsError> {
        let input = &call.input;
        let text = opt_str(input, "TrailName").unwrap_or_default();
        let (mut config, raw) = self.find(call, &text, true).await?;
        let classic = input.get("EventSelectors").filter(|v| !v.is_null());
        let advanced = input.get("AdvancedEventSelectors").filter(|v| !v.is_null());
        selectors::validate(classic, advanced)?;
        config.event_selectors = classic.cloned();
        config.advanced_event_selectors = advanced.cloned();
        let key = model::trail_key(&config.account, &config.home_region, &config.name);
        let mut batch = WriteBatch::new();
        batch.expect(TRAILS, &key, Some(&raw));
        batch.put(TRAILS, &key, &model::encode(&config));
        let mut out = json!({"TrailARN": config.arn()});
        if let Some(v) = &config.event_selectors {
            out["EventSelectors"] = v.clone();
        }
        if let Some(v) = &config.advanced_event_selectors {
            out["AdvancedEventSelectors"] = v.clone();
        }
        let mut effect = Effect::write(out, batch);
        effect.resources = trail_resource(&config);
        Ok(effect)
    }

    pub(crate) async fn get_event_selectors(&self, call: &Call) -> Result<Effect, AwsError> {
        let text = opt_str(&call.input, "TrailName").unwrap_or_default();
        let (config, _) = self.find(call, &text, false).await?;
        let mut out = json!({"TrailARN": config.arn()});
        match (&config.event_selectors, &config.advanced_event_selectors) {
            (_, Some(advanced)) => out["AdvancedEventSelectors"] = advanced.clone(),
            (Some(classic), None) => out["EventSelectors"] = classic.clone(),
            (None, None) => {
                out["EventSelectors"] = json!([{
                    "ReadWriteType": "All", "IncludeManagementEvents": true,
                    "DataResources": [], "ExcludeManagementEventSources": []
                }]);
            }
        }
        Ok(Effect::read(out))
    }

    pub(crate) async fn put_insight_selectors(&self, call: &Call) -> Result<Effect, AwsError> {
        let input = &call.input;
        let text = opt_str(input, "TrailName").unwrap_or_default();
        let (mut config, raw) = self.find(call, &text, true).await?;
        let list = input.get("InsightSelectors").cloned().unwrap_or_else(|| json!([]));
        for selector in list.as_array().into_iter().flatten() {
            let kind = selector.get("InsightType").and_then(Value::as_str).unwrap_or("");
            if !matches!(kind, "ApiCallRateInsight" | "ApiErrorRateInsight") {
                return Err(error::invalid_insight_selectors(format!("Invalid InsightType: {kind}")));
            }
        }
        config.insight_selectors = Some(list.clone());
        let key = model::trail_key(&config.account, &config.home_region, &config.name);
        let mut batch = WriteBatch::new();
        batch.expect(TRAILS, &key, Some(&raw));
        batch.put(TRAILS, &key, &model::encode(&config));
        let mut effect = Effect::write(json!({"TrailARN": config.arn(), "InsightSelectors": list}), batch);
        effect.resources = trail_resource(&config);
        Ok(effect)
    }

    pub(crate) async fn get_insight_selectors(&self, call: &Call) -> Result<Effect, AwsError> {
        let text = opt_str(&call.input, "TrailName").unwrap_or_default();
        let (config, _) = self.find(call, &text, false).await?;
        match config
            .insight_selectors
            .as_ref()
            .filter(|l| l.as_array().is_some_and(|a| !a.is_empty()))
        {
            Some(list) => Ok(Effect::read(
                json!({"TrailARN": config.arn(), "InsightSelectors": list}),
            )),
            None => Err(error::insight_not_enabled(&config.arn())),
        }
    }

    async fn tagged_trail(&self, call: &Call, arn: &str) -> Result<(TrailConfig, Vec<u8>), AwsError> {
        if !arn.starts_with("arn:") {
            return Err(error::invalid_arn(arn));
        }
        self.find(call, arn, false).await.map_err(|e| {
            if e.code == "TrailNotFoundException" {
                error::resource_not_found(arn)
            } else {
                e
            }
        })
    }

    pub(crate) async fn change_tags(&self, call: &Call, add: bool) -> Result<Effect, AwsError> {
        let arn = opt_str(&call.input, "ResourceId").unwrap_or_default();
        let (mut config, raw) = self.tagged_trail(call, &arn).await?;
        let tags = parse_tags(&call.input)?;
        if add {
            for (k, v) in tags {
                match config.tags.iter_mut().find(|(key, _)| *key == k) {
                    Some(existing) => existing.1 = v,
                    None => config.tags.push((k, v)),
                }
            }
            if config.tags.len() > 50 {
                return Err(error::tags_limit());
            }
        } else {
            config.tags.retain(|(k, _)| !tags.iter().any(|(key, _)| key == k));
        }
        let key = model::trail_key(&config.account, &config.home_region, &config.name);
        let mut batch = WriteBatch::new();
        batch.expect(TRAILS, &key, Some(&raw));
        batch.put(TRAILS, &key, &model::encode(&config));
        let mut effect = Effect::write(json!({}), batch);
        effect.resources = trail_resource(&config);
        Ok(effect)
    }

    pub(crate) async fn list_tags(&self, call: &Call) -> Result<Effect, AwsError> {
        let ids: Vec<String> = call
            .input
            .get("ResourceIdList")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let mut list = Vec::new();
        for arn in &ids {
            let (config, _) = self.tagged_trail(call, arn).await?;
            list.push(json!({"ResourceId": config.arn(), "TagsList": tags_json(&config.tags)}));
        }
        Ok(Effect::read(json!({"ResourceTagList": list})))
    }

    pub(crate) async fn list_public_keys(&self, call: &Call) -> Result<Effect, AwsError> {
        let now_s = call.ctx.time.unix_timestamp();
        let seconds = |name: &str| {
            call.input
                .get(name)
                .and_then(citadel_wire::codec::timestamp::from_value)
                .map(|s| s.floor() as i64)
        };
        let start = seconds("StartTime").unwrap_or(now_s);
        let end = seconds("EndTime").unwrap_or(now_s);
        if start > end {
            return Err(error::invalid_time_range());
        }
        let region = call.ctx.region.as_str();
        let keys = signing::all_keys(self.store.as_ref(), region)
            .await
            .map_err(error::internal)?;
        let mut batch = WriteBatch::new();
        let listed = if keys.is_empty() {
            // A region's first key is made on first use, so that ListPublicKeys is never empty for "now".
            let fresh = signing::generate(&self.master, region, now_s).map_err(error::internal)?;
            let row = signing::key_row(region, now_s);
            batch.expect(model::KEYS, &row, None);
            batch.put(model::KEYS, &row, &model::encode(&fresh.record));
            signing::overlapping(&[fresh.record], start, end)
        } else {
            signing::overlapping(&keys, start, end)
        };
        let list: Vec<Value> = listed.iter().rev().map(signing::public_key_json).collect();
        Ok(Effect::write(json!({"PublicKeyList": list}), batch))
    }
}
