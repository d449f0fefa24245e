//! Service last accessed data: which services an entity's policies allow, and when each was last used.
//!
//! The answer comes from the CloudTrail records the pipeline commits with every request (core's
//! `events` table), so it is exact rather than sampled: an event counts for an entity when its
//! caller is that user, or a session of that role (the session issuer), or, for a group, one of its
//! members. A service counts when the entity's policies have an `Allow` whose actions can match the
//! service's namespace.
//!
//! AWS computes these reports asynchronously. Citadel computes the report when the job is created
//! and stores it in the `iam_jobs` table, so the job is `COMPLETED` at once and paging through it
//! later sees one consistent report.

use crate::Iam;
use crate::model::{
    self, GROUPS, GroupRecord, InlinePolicy, JOBS, JobRecord, ROLES, RoleRecord, Row, USERS, UserRecord,
};
use crate::policies::managed_document;
use crate::users::{account, load_group_by_id, load_user_by_id, now};
use crate::util::*;
use citadel_core::audit::EVENTS;
use citadel_core::{Call, Effect};
use citadel_store::WriteBatch;
use citadel_store::keys::{Key, prefix_range};
use citadel_wire::AwsError;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The job kind of a last-accessed report.
const REPORT_KIND: &str = "service-last-accessed";

/// How many events one store scan reads.
const SCAN_CHUNK: usize = 1024;

/// The service namespaces Citadel serves, with the names IAM reports for them; `*` in a policy
/// allows all of these.
const NAMESPACES: &[(&str, &str)] = &[
    ("cloudtrail", "AWS CloudTrail"),
    ("cloudwatch", "Amazon CloudWatch"),
    ("iam", "AWS Identity and Access Management"),
    ("kms", "AWS Key Management Service"),
    ("logs", "Amazon CloudWatch Logs"),
    ("s3", "Amazon S3"),
    ("sts", "AWS Security Token Service"),
];

/// The display name of a namespace (the namespace itself when Citadel does not know it).
fn service_name(namespace: &str) -> String {
    NAMESPACES
        .iter()
        .find(|(ns, _)| *ns == namespace)
        .map_or_else(|| namespace.to_string(), |(_, name)| (*name).to_string())
}

/// IAM's `?`/`*` wildcard match, case-insensitive (action prefixes are).
fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let text: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '?' || Some(c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

/// The service namespaces the `Allow` statements of a policy document can reach.
pub(crate) fn allowed_namespaces(document: &str, out: &mut BTreeSet<String>) {
    let Ok(parsed) = serde_json::from_str::<Value>(document) else {
        return;
    };
    let statements = match parsed.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one) => vec![one.clone()],
        None => Vec::new(),
    };
    let strings = |value: Option<&Value>| -> Vec<String> {
        match value {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => Vec::new(),
        }
    };
    for statement in statements {
        if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        if statement.get("NotAction").is_some() {
            // NotAction allows everything it does not name: every service, at least in part.
            out.extend(NAMESPACES.iter().map(|(ns, _)| (*ns).to_string()));
            continue;
        }
        for action in strings(statement.get("Action")) {
            let prefix = action.split(':').next().unwrap_or_default();
            if prefix.contains(['*', '?']) {
                out.extend(
                    NAMESPACES
                        .iter()
                        .filter(|(ns, _)| glob(prefix, ns))
                        .map(|(ns, _)| (*ns).to_string()),
                );
            } else if !prefix.is_empty() {
                out.insert(prefix.to_ascii_lowercase());
            }
        }
    }
}

/// One entity a report covers.
#[derive(Debug, Clone)]
struct Entity {
    arn: String,
    name: String,
    kind: &'static str,
    id: String,
    path: String,
    /// The caller ARNs whose events count for this entity (a group's are its members').
    callers: Vec<String>,
}

impl Entity {
    fn user(account: &str, user: &UserRecord) -> Self {
        let arn = entity_arn(account, "user", &user.path, &user.name);
        Self {
            callers: vec![arn.clone()],
            arn,
            name: user.name.clone(),
            kind: "USER",
            id: user.id.clone(),
            path: user.path.clone(),
        }
    }

    fn role(account: &str, role: &RoleRecord) -> Self {
        let arn = entity_arn(account, "role", &role.path, &role.name);
        Self {
            callers: vec![arn.clone()],
            arn,
            name: role.name.clone(),
            kind: "ROLE",
            id: role.id.clone(),
            path: role.path.clone(),
        }
    }

    fn info(&self) -> Value {
        json!({"Arn": self.arn, "Name": self.name, "Type": self.kind, "Id": self.id, "Path": self.path})
    }
}

/// The last use of something by an entity.
#[derive(Debug, Clone)]
struct LastUse {
    time: i64,
    caller: String,
    region: String,
}

impl LastUse {
    /// Keeps the newer of the stored use and `used` under `key`.
    fn keep_newest<K: Ord>(map: &mut BTreeMap<K, LastUse>, key: K, used: &LastUse) {
        let slot = map.entry(key).or_insert_with(|| used.clone());
        if used.time >= slot.time {
            *slot = used.clone();
        }
    }

    /// Keeps the newer of `slot` and `candidate` in `slot`.
    fn newer(slot: &mut Option<LastUse>, candidate: &LastUse) {
        if slot.as_ref().is_none_or(|old| candidate.time >= old.time) {
            *slot = Some(candidate.clone());
        }
    }
}

/// The namespace of an event source (`monitoring` is CloudWatch's endpoint, `cloudwatch` its actions).
fn namespace_of(event_source: &str) -> String {
    let label = event_source.strip_suffix(".amazonaws.com").unwrap_or(event_source);
    match label {
        "monitoring" => "cloudwatch".to_string(),
        other => other.to_string(),
    }
}

/// The ARN an event's caller counts as: a role session counts as its role.
fn caller_arn(record: &Value) -> Option<String> {
    let identity = record.get("userIdentity")?;
    if identity.get("type").and_then(Value::as_str) == Some("AssumedRole") {
        return identity
            .pointer("/sessionContext/sessionIssuer/arn")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    identity.get("arn").and_then(Value::as_str).map(str::to_string)
}

fn event_time(record: &Value) -> Option<i64> {
    let text = record.get("eventTime").and_then(Value::as_str)?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

impl Iam {
    /// The policy documents that apply to an IAM ARN and the entities whose use counts for it.
    async fn report_subject(&self, account: &str, arn: &str) -> Result<(Vec<String>, Vec<Entity>), AwsError> {
        let invalid = || invalid_input(format!("ARN {arn} is not valid."));
        let (arn_account, _path, name) = split_arn_name(arn).ok_or_else(invalid)?;
        let store = self.store.as_ref();
        let mut documents = Vec::new();
        let inline_docs = |inline: &[InlinePolicy], out: &mut Vec<String>| {
            out.extend(inline.iter().map(|p| p.document.clone()));
        };
        let missing = || no_such_entity(format!("The entity with ARN {arn} cannot be found."));
        if arn.contains(":policy/") {
            let document = managed_document(self, account, arn).await?.ok_or_else(missing)?;
            documents.push(document);
            let mut entities = Vec::new();
            let users: Vec<Row<UserRecord>> = model::scan_account(store, USERS, account).await?;
            for user in users.iter().filter(|u| u.value.attached.iter().any(|a| a == arn)) {
                entities.push(Entity::user(account, &user.value));
            }
            let groups: Vec<Row<GroupRecord>> = model::scan_account(store, GROUPS, account).await?;
            for group in groups.iter().filter(|g| g.value.attached.iter().any(|a| a == arn)) {
                entities.push(self.group_entity(account, &group.value).await?);
            }
            let roles: Vec<Row<RoleRecord>> = model::scan_account(store, ROLES, account).await?;
            for role in roles.iter().filter(|r| r.value.attached.iter().any(|a| a == arn)) {
                entities.push(Entity::role(account, &role.value));
            }
            return Ok((documents, entities));
        }
        if arn_account != account {
            return Err(missing());
        }
        let mut attached: Vec<String> = Vec::new();
        let entities = if arn.contains(":user/") {
            let row: Row<UserRecord> = model::get(store, USERS, model::name_key(account, name))
                .await?
                .ok_or_else(missing)?;
            let user = row.value;
            if entity_arn(account, "user", &user.path, &user.name) != arn {
                return Err(missing());
            }
            inline_docs(&user.inline, &mut documents);
            attached.extend(user.attached.iter().cloned());
            for id in &user.groups {
                if let Some(group) = load_group_by_id(self, account, id).await? {
                    inline_docs(&group.value.inline, &mut documents);
                    attached.extend(group.value.attached.iter().cloned());
                }
            }
            vec![Entity::user(account, &user)]
        } else if arn.contains(":role/") {
            let row: Row<RoleRecord> = model::get(store, ROLES, model::name_key(account, name))
                .await?
                .ok_or_else(missing)?;
            let role = row.value;
            if entity_arn(account, "role", &role.path, &role.name) != arn {
                return Err(missing());
            }
            inline_docs(&role.inline, &mut documents);
            attached.extend(role.attached.iter().cloned());
            vec![Entity::role(account, &role)]
        } else if arn.contains(":group/") {
            let row: Row<GroupRecord> = model::get(store, GROUPS, model::name_key(account, name))
                .await?
                .ok_or_else(missing)?;
            let group = row.value;
            if entity_arn(account, "group", &group.path, &group.name) != arn {
                return Err(missing());
            }
            inline_docs(&group.inline, &mut documents);
            attached.extend(group.attached.iter().cloned());
            // A group's report names the members who used its permissions.
            let mut members = Vec::new();
            for id in &group.members {
                if let Some(user) = load_user_by_id(self, account, id).await? {
                    members.push(Entity::user(account, &user.value));
                }
            }
            members
        } else {
            return Err(invalid());
        };
        for policy_arn in attached {
            if let Some(document) = managed_document(self, account, &policy_arn).await? {
                documents.push(document);
            }
        }
        Ok((documents, entities))
    }

    async fn group_entity(&self, account: &str, group: &GroupRecord) -> Result<Entity, AwsError> {
        let mut callers = Vec::new();
        for id in &group.members {
            if let Some(user) = load_user_by_id(self, account, id).await? {
                callers.push(entity_arn(account, "user", &user.value.path, &user.value.name));
            }
        }
        Ok(Entity {
            arn: entity_arn(account, "group", &group.path, &group.name),
            name: group.name.clone(),
            kind: "GROUP",
            id: group.id.clone(),
            path: group.path.clone(),
            callers,
        })
    }

    /// Walks the account's CloudTrail records once and calls `visit` with each event's namespace,
    /// action, caller ARN, time and region.
    async fn each_event(
        &self,
        account: &str,
        mut visit: impl FnMut(&str, &str, &str, &LastUse),
    ) -> Result<(), AwsError> {
        let prefix = Key::new().str(account).finish();
        let (mut start, end) = prefix_range(&prefix);
        loop {
            let rows = self
                .store
                .scan(EVENTS, &start, end.as_deref(), SCAN_CHUNK, false)
                .await
                .map_err(model::store_error)?;
            let exhausted = rows.len() < SCAN_CHUNK;
            for (key, raw) in &rows {
                // The next scan starts right after this key.
                start.clone_from(key);
                start.push(0);
                let Ok(record) = serde_json::from_slice::<Value>(raw) else {
                    continue;
                };
                let (Some(caller), Some(time), Some(source), Some(action)) = (
                    caller_arn(&record),
                    event_time(&record),
                    record.get("eventSource").and_then(Value::as_str),
                    record.get("eventName").and_then(Value::as_str),
                ) else {
                    continue;
                };
                let region = record
                    .get("awsRegion")
                    .and_then(Value::as_str)
                    .unwrap_or("us-east-1")
                    .to_string();
                let namespace = namespace_of(source);
                let used = LastUse {
                    time,
                    caller: caller.clone(),
                    region,
                };
                visit(&namespace, action, &caller, &used);
            }
            if exhausted {
                return Ok(());
            }
        }
    }

    /// Builds a report: per allowed namespace, the last use, the count of entities that used it,
    /// the per-action last use (for ACTION_LEVEL), and the entities with their own last use.
    async fn build_report(&self, account: &str, arn: &str, action_level: bool) -> Result<Value, AwsError> {
        let (documents, entities) = self.report_subject(account, arn).await?;
        let mut namespaces = BTreeSet::new();
        for document in &documents {
            allowed_namespaces(document, &mut namespaces);
        }
        // (namespace, entity index) -> last use; (namespace, action) -> last use.
        let mut by_entity: BTreeMap<(String, usize), LastUse> = BTreeMap::new();
        let mut by_action: BTreeMap<(String, String), LastUse> = BTreeMap::new();
        self.each_event(account, |namespace, action, caller, used| {
            if !namespaces.contains(namespace) {
                return;
            }
            let mut counted = false;
            for (index, entity) in entities.iter().enumerate() {
                if entity.callers.iter().any(|c| c == caller) {
                    counted = true;
                    LastUse::keep_newest(&mut by_entity, (namespace.to_string(), index), used);
                }
            }
            if counted {
                LastUse::keep_newest(&mut by_action, (namespace.to_string(), action.to_string()), used);
            }
        })
        .await?;
        let mut services = Vec::new();
        let mut entity_lists = Map::new();
        for namespace in &namespaces {
            let mut last: Option<LastUse> = None;
            let mut count = 0;
            let mut listed = Vec::new();
            for (index, entity) in entities.iter().enumerate() {
                let mut item = Map::new();
                item.insert("EntityInfo".into(), entity.info());
                if let Some(used) = by_entity.get(&(namespace.clone(), index)) {
                    count += 1;
                    LastUse::newer(&mut last, used);
                    item.insert("LastAuthenticated".into(), json!(used.time));
                }
                listed.push(Value::Object(item));
            }
            let mut service = Map::new();
            service.insert("ServiceName".into(), json!(service_name(namespace)));
            service.insert("ServiceNamespace".into(), json!(namespace));
            if let Some(used) = &last {
                service.insert("LastAuthenticated".into(), json!(used.time));
                service.insert("LastAuthenticatedEntity".into(), json!(used.caller));
                service.insert("LastAuthenticatedRegion".into(), json!(used.region));
            }
            service.insert("TotalAuthenticatedEntities".into(), json!(count));
            if action_level {
                let tracked: Vec<Value> = by_action
                    .iter()
                    .filter(|((ns, _), _)| ns == namespace)
                    .map(|((_, action), used)| {
                        json!({
                            "ActionName": action,
                            "LastAccessedEntity": used.caller,
                            "LastAccessedTime": used.time,
                            "LastAccessedRegion": used.region,
                        })
                    })
                    .collect();
                service.insert("TrackedActionsLastAccessed".into(), Value::Array(tracked));
            }
            services.push(Value::Object(service));
            entity_lists.insert(namespace.clone(), Value::Array(listed));
        }
        Ok(json!({
            "JobType": if action_level { "ACTION_LEVEL" } else { "SERVICE_LEVEL" },
            "Services": services,
            "Entities": entity_lists,
        }))
    }

    pub(crate) async fn generate_service_last_accessed_details(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let arn = req_str(&call.input, "Arn")?;
        let action_level = match opt_str(&call.input, "Granularity") {
            None | Some("SERVICE_LEVEL") => false,
            Some("ACTION_LEVEL") => true,
            Some(other) => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{other}' at 'granularity' failed to satisfy constraint: Member must satisfy enum value set: [SERVICE_LEVEL, ACTION_LEVEL]"
                )));
            }
        };
        let report = self.build_report(account, arn, action_level).await?;
        let job_id = self.ids.uuid();
        let job = JobRecord {
            kind: REPORT_KIND.to_string(),
            created: now(call),
            completed: now(call),
            status: "COMPLETED".to_string(),
            result: report,
        };
        let mut batch = WriteBatch::new();
        model::insert(&mut batch, JOBS, &model::exact_key(account, &job_id), &job);
        Ok(Effect::write(json!({"JobId": job_id}), batch))
    }

    async fn load_report(&self, call: &Call) -> Result<JobRecord, AwsError> {
        let job_id = req_str(&call.input, "JobId")?;
        model::get::<JobRecord>(self.store.as_ref(), JOBS, model::exact_key(account(call), job_id))
            .await?
            .map(|row| row.value)
            .filter(|job| job.kind == REPORT_KIND)
            .ok_or_else(|| no_such_entity(format!("The job with id {job_id} cannot be found.")))
    }

    pub(crate) async fn get_service_last_accessed_details(&self, call: &Call) -> Result<Effect, AwsError> {
        let job = self.load_report(call).await?;
        let services = job
            .result
            .get("Services")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let items = services
            .into_iter()
            .map(|s| (opt_str(&s, "ServiceNamespace").unwrap_or_default().to_string(), s))
            .collect();
        let (page, next) = paginate(items, &call.input);
        let mut out = Map::new();
        out.insert("JobStatus".into(), json!(job.status));
        out.insert(
            "JobType".into(),
            job.result.get("JobType").cloned().unwrap_or(Value::Null),
        );
        out.insert("JobCreationDate".into(), json!(job.created));
        out.insert("JobCompletionDate".into(), json!(job.completed));
        out.insert("ServicesLastAccessed".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn get_service_last_accessed_details_with_entities(
        &self,
        call: &Call,
    ) -> Result<Effect, AwsError> {
        let job = self.load_report(call).await?;
        let namespace = req_str(&call.input, "ServiceNamespace")?;
        let entities = job
            .result
            .get("Entities")
            .and_then(|e| e.get(namespace))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let items = entities
            .into_iter()
            .map(|e| {
                let key = e
                    .pointer("/EntityInfo/Arn")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                (key, e)
            })
            .collect::<BTreeMap<String, Value>>()
            .into_iter()
            .collect();
        let (page, next) = paginate(items, &call.input);
        let mut out = Map::new();
        out.insert("JobStatus".into(), json!(job.status));
        out.insert("JobCreationDate".into(), json!(job.created));
        out.insert("JobCompletionDate".into(), json!(job.completed));
        out.insert("EntityDetailsList".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_come_from_allow_statements() {
        let mut out = BTreeSet::new();
        allowed_namespaces(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":["s3:GetObject","KMS:Decrypt"],"Resource":"*"},
                {"Effect":"Deny","Action":"iam:*","Resource":"*"},
                {"Effect":"Allow","Action":"c*:Describe*","Resource":"*"}]}"#,
            &mut out,
        );
        let got: Vec<&str> = out.iter().map(String::as_str).collect();
        assert_eq!(got, ["cloudtrail", "cloudwatch", "kms", "s3"]);
        let mut all = BTreeSet::new();
        allowed_namespaces(
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
            &mut all,
        );
        assert_eq!(all.len(), NAMESPACES.len());
    }

    #[test]
    fn globs_match_like_iam() {
        assert!(glob("s*", "s3"));
        assert!(glob("?3", "s3"));
        assert!(glob("*", "kms"));
        assert!(!glob("k*s3", "kms"));
        assert!(glob("CLOUD*", "cloudtrail"));
    }

    #[test]
    fn role_sessions_count_as_their_role() {
        let record = json!({"userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/R/s",
            "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::1:role/R"}}}});
        assert_eq!(caller_arn(&record).as_deref(), Some("arn:aws:iam::1:role/R"));
        assert_eq!(namespace_of("monitoring.amazonaws.com"), "cloudwatch");
        assert_eq!(namespace_of("s3.amazonaws.com"), "s3");
    }
}
