//! Managed policies with versions, inline policies, attachments and ListEntitiesForPolicy.

use crate::Iam;
use crate::managed::{self, AwsManagedPolicy};
use crate::model::{self, GroupRecord, InlinePolicy, PolicyRecord, PolicyVersion, RoleRecord, Row, UserRecord};
use crate::model::{GROUPS, POLICIES, ROLES, USERS};
use crate::users::{account, now, resource};
use crate::util::*;
use citadel_core::{Call, Effect};
use citadel_policy::{Policy, PolicyKind, limits, size_without_whitespace};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// A policy that can be attached: a customer managed policy of the account or an AWS managed one.
pub(crate) enum Attachable {
    /// A customer managed policy, with the row read.
    Customer(Box<Row<PolicyRecord>>),
    /// An AWS managed policy.
    Aws(&'static AwsManagedPolicy),
}

/// Finds an attachable policy by ARN, or `NoSuchEntity` "... does not exist or is not attachable."
pub(crate) async fn resolve_attachable(iam: &Iam, account: &str, arn: &str) -> Result<Attachable, AwsError> {
    let missing = || no_such_entity(format!("Policy {arn} does not exist or is not attachable."));
    if managed::is_aws_arn(arn) {
        return managed::by_arn(arn).map(Attachable::Aws).ok_or_else(missing);
    }
    Ok(Attachable::Customer(Box::new(
        load_customer_policy(iam, account, arn).await?.ok_or_else(missing)?,
    )))
}

/// Loads a customer managed policy of `account` by its exact ARN.
pub(crate) async fn load_customer_policy(
    iam: &Iam,
    account: &str,
    arn: &str,
) -> Result<Option<Row<PolicyRecord>>, AwsError> {
    let Some((arn_account, _path, name)) = split_arn_name(arn) else {
        return Ok(None);
    };
    if arn_account != account || !arn.contains(":policy/") {
        return Ok(None);
    }
    let row: Option<Row<PolicyRecord>> =
        model::get(iam.store.as_ref(), POLICIES, model::name_key(account, name)).await?;
    Ok(row.filter(|r| entity_arn(account, "policy", &r.value.path, &r.value.name) == arn))
}

/// The default document of any managed policy ARN (for policy sources and simulation).
pub(crate) async fn managed_document(iam: &Iam, account: &str, arn: &str) -> Result<Option<String>, AwsError> {
    if managed::is_aws_arn(arn) {
        return Ok(managed::by_arn(arn).map(|p| p.document.clone()));
    }
    Ok(load_customer_policy(iam, account, arn)
        .await?
        .and_then(|row| row.value.default_document().map(str::to_string)))
}

/// Entities that carry inline and attached policies.
pub(crate) trait PolicyHolder: Serialize + DeserializeOwned + Clone + Send + Sync {
    /// The table.
    const TABLE: &'static str;
    /// `user`, `group`, `role`.
    const KIND: &'static str;
    /// The input member naming the entity.
    const NAME_MEMBER: &'static str;
    /// The aggregate inline policy quota.
    const INLINE_LIMIT: usize;
    /// The name in quota messages: `PoliciesPerUser`.
    const QUOTA: &'static str;
    /// The entity's name.
    fn name(&self) -> &str;
    /// The inline policies.
    fn inline(&mut self) -> &mut Vec<InlinePolicy>;
    /// The attached policy ARNs.
    fn attached(&mut self) -> &mut Vec<String>;
}

impl PolicyHolder for UserRecord {
    const TABLE: &'static str = USERS;
    const KIND: &'static str = "user";
    const NAME_MEMBER: &'static str = "UserName";
    const INLINE_LIMIT: usize = limits::INLINE_USER;
    const QUOTA: &'static str = "PoliciesPerUser";
    fn name(&self) -> &str {
        &self.name
    }
    fn inline(&mut self) -> &mut Vec<InlinePolicy> {
        &mut self.inline
    }
    fn attached(&mut self) -> &mut Vec<String> {
        &mut self.attached
    }
}

impl PolicyHolder for GroupRecord {
    const TABLE: &'static str = GROUPS;
    const KIND: &'static str = "group";
    const NAME_MEMBER: &'static str = "GroupName";
    const INLINE_LIMIT: usize = limits::INLINE_GROUP;
    const QUOTA: &'static str = "PoliciesPerGroup";
    fn name(&self) -> &str {
        &self.name
    }
    fn inline(&mut self) -> &mut Vec<InlinePolicy> {
        &mut self.inline
    }
    fn attached(&mut self) -> &mut Vec<String> {
        &mut self.attached
    }
}

impl PolicyHolder for RoleRecord {
    const TABLE: &'static str = ROLES;
    const KIND: &'static str = "role";
    const NAME_MEMBER: &'static str = "RoleName";
    const INLINE_LIMIT: usize = limits::INLINE_ROLE;
    const QUOTA: &'static str = "PoliciesPerRole";
    fn name(&self) -> &str {
        &self.name
    }
    fn inline(&mut self) -> &mut Vec<InlinePolicy> {
        &mut self.inline
    }
    fn attached(&mut self) -> &mut Vec<String> {
        &mut self.attached
    }
}

async fn load_holder<T: PolicyHolder>(iam: &Iam, call: &Call) -> Result<Row<T>, AwsError> {
    let name = req_str(&call.input, T::NAME_MEMBER)?;
    model::get(iam.store.as_ref(), T::TABLE, model::name_key(account(call), name))
        .await?
        .ok_or_else(|| not_found(T::KIND, name))
}

/// The `Policy` output shape of a customer managed policy.
pub(crate) fn policy_json(account: &str, p: &PolicyRecord, with_tags: bool) -> Value {
    let mut out = Map::new();
    out.insert("PolicyName".into(), json!(p.name));
    out.insert("PolicyId".into(), json!(p.id));
    out.insert("Arn".into(), json!(entity_arn(account, "policy", &p.path, &p.name)));
    out.insert("Path".into(), json!(p.path));
    out.insert("DefaultVersionId".into(), json!(p.default_version));
    out.insert("AttachmentCount".into(), json!(p.attachment_count));
    out.insert("PermissionsBoundaryUsageCount".into(), json!(p.boundary_count));
    out.insert("IsAttachable".into(), json!(true));
    if let Some(description) = &p.description {
        out.insert("Description".into(), json!(description));
    }
    out.insert("CreateDate".into(), json!(p.created));
    out.insert("UpdateDate".into(), json!(p.updated));
    if with_tags && !p.tags.is_empty() {
        out.insert("Tags".into(), model::tags_json(&p.tags));
    }
    Value::Object(out)
}

/// The `Policy` output shape of an AWS managed policy.
pub(crate) fn aws_policy_json(p: &AwsManagedPolicy, attachments: i64, boundaries: i64) -> Value {
    let mut out = Map::new();
    out.insert("PolicyName".into(), json!(p.name));
    out.insert("PolicyId".into(), json!(p.policy_id()));
    out.insert("Arn".into(), json!(p.arn));
    out.insert("Path".into(), json!(p.path));
    out.insert("DefaultVersionId".into(), json!(p.version_id));
    out.insert("AttachmentCount".into(), json!(attachments));
    out.insert("PermissionsBoundaryUsageCount".into(), json!(boundaries));
    out.insert("IsAttachable".into(), json!(true));
    if let Some(created) = &p.create_date {
        out.insert("CreateDate".into(), json!(created));
    }
    if let Some(updated) = &p.update_date {
        out.insert("UpdateDate".into(), json!(updated));
    }
    Value::Object(out)
}

/// Parses an identity policy document as IAM does on write.
pub(crate) fn parse_identity(document: &str) -> Result<Policy, AwsError> {
    Policy::parse(document, PolicyKind::Identity).map_err(|e| malformed(&e))
}

impl Iam {
    /// Counts how often each AWS managed policy is attached or used as a boundary in an account.
    async fn aws_policy_usage(&self, account: &str) -> Result<(HashMap<String, i64>, HashMap<String, i64>), AwsError> {
        let mut attached: HashMap<String, i64> = HashMap::new();
        let mut boundaries: HashMap<String, i64> = HashMap::new();
        let users: Vec<Row<UserRecord>> = model::scan_account(self.store.as_ref(), USERS, account).await?;
        let groups: Vec<Row<GroupRecord>> = model::scan_account(self.store.as_ref(), GROUPS, account).await?;
        let roles: Vec<Row<RoleRecord>> = model::scan_account(self.store.as_ref(), ROLES, account).await?;
        let lists = users
            .iter()
            .map(|u| (&u.value.attached, &u.value.boundary))
            .chain(roles.iter().map(|r| (&r.value.attached, &r.value.boundary)))
            .chain(groups.iter().map(|g| (&g.value.attached, &None)));
        for (list, boundary) in lists {
            for arn in list.iter().filter(|a| managed::is_aws_arn(a)) {
                *attached.entry(arn.clone()).or_default() += 1;
            }
            if let Some(arn) = boundary.as_ref().filter(|a| managed::is_aws_arn(a)) {
                *boundaries.entry(arn.clone()).or_default() += 1;
            }
        }
        Ok((attached, boundaries))
    }

    pub(crate) async fn create_policy(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let name = req_str(&call.input, "PolicyName")?;
        check_name(name, "policyName", 128)?;
        let path = path_input(&call.input, "Path")?;
        let document = req_str(&call.input, "PolicyDocument")?;
        if size_without_whitespace(document) > limits::MANAGED {
            return Err(limit_exceeded(format!(
                "Cannot exceed quota for PolicySize: {}",
                limits::MANAGED
            )));
        }
        parse_identity(document)?;
        let tags = tags_input(&call.input, "Tags")?;
        check_tag_count(&tags)?;
        let key = model::name_key(account, name);
        if model::get::<PolicyRecord>(self.store.as_ref(), POLICIES, key.clone())
            .await?
            .is_some()
        {
            return Err(already_exists(format!(
                "A policy called {name} already exists. Duplicate names are not allowed."
            )));
        }
        let created = now(call);
        let policy = PolicyRecord {
            name: name.to_string(),
            id: self.ids.unique_id("ANPA"),
            path,
            description: opt_str(&call.input, "Description").map(str::to_string),
            created,
            updated: created,
            default_version: "v1".into(),
            next_version: 2,
            versions: vec![PolicyVersion {
                id: "v1".into(),
                document: document.to_string(),
                created,
            }],
            attachment_count: 0,
            boundary_count: 0,
            tags,
        };
        let mut batch = WriteBatch::new();
        model::insert(&mut batch, POLICIES, &key, &policy);
        model::put_id(&mut batch, account, &policy.id, "policy", &policy.name);
        let arn = entity_arn(account, "policy", &policy.path, &policy.name);
        Ok(Effect {
            output: json!({"Policy": policy_json(account, &policy, true)}),
            batch,
            resources: vec![resource(call, &arn, "AWS::IAM::Policy")],
        })
    }

    pub(crate) async fn get_policy(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let arn = req_str(&call.input, "PolicyArn")?;
        if let Some(policy) = managed::by_arn(arn) {
            let (attached, boundaries) = self.aws_policy_usage(account).await?;
            let out = aws_policy_json(
                policy,
                *attached.get(arn).unwrap_or(&0),
                *boundaries.get(arn).unwrap_or(&0),
            );
            return Ok(Effect::read(json!({"Policy": out})));
        }
        let row = load_customer_policy(self, account, arn)
            .await?
            .ok_or_else(|| no_such_entity(format!("Policy {arn} was not found.")))?;
        Ok(Effect::read(json!({"Policy": policy_json(account, &row.value, true)})))
    }

    pub(crate) async fn list_policies(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let scope = opt_str(&call.input, "Scope").unwrap_or("All");
        let only_attached = opt_bool(&call.input, "OnlyAttached").unwrap_or(false);
        let prefix = opt_str(&call.input, "PathPrefix").unwrap_or("/");
        let usage = opt_str(&call.input, "PolicyUsageFilter");
        let mut items: Vec<(String, Value)> = Vec::new();
        let usage_ok = |attachments: i64, boundaries: i64| match usage {
            Some("PermissionsPolicy") => !only_attached || attachments > 0,
            Some("PermissionsBoundary") => boundaries > 0 || !only_attached,
            _ => !only_attached || attachments > 0 || boundaries > 0,
        };
        if scope == "All" || scope == "AWS" {
            let (attached, boundaries) = self.aws_policy_usage(account).await?;
            for policy in managed::all().iter().filter(|p| p.path.starts_with(prefix)) {
                let a = *attached.get(&policy.arn).unwrap_or(&0);
                let b = *boundaries.get(&policy.arn).unwrap_or(&0);
                if usage_ok(a, b) {
                    items.push((
                        format!("{}\u{1}aws", policy.name.to_lowercase()),
                        aws_policy_json(policy, a, b),
                    ));
                }
            }
        }
        if scope == "All" || scope == "Local" {
            let rows: Vec<Row<PolicyRecord>> = model::scan_account(self.store.as_ref(), POLICIES, account).await?;
            for row in rows.iter().filter(|r| r.value.path.starts_with(prefix)) {
                let p = &row.value;
                if usage_ok(p.attachment_count, p.boundary_count) {
                    items.push((
                        format!("{}\u{1}local", p.name.to_lowercase()),
                        policy_json(account, p, false),
                    ));
                }
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let (page, next) = paginate(items, &call.input);
        let mut out = Map::new();
        out.insert("Policies".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn delete_policy(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let arn = req_str(&call.input, "PolicyArn")?;
        let row = load_customer_policy(self, account, arn)
            .await?
            .ok_or_else(|| no_such_entity(format!("Policy {arn} was not found.")))?;
        let policy = &row.value;
        if policy.attachment_count > 0 || policy.boundary_count > 0 {
            return Err(delete_conflict("Cannot delete a policy attached to entities."));
        }
        if policy.versions.len() > 1 {
            return Err(delete_conflict(
                "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
            ));
        }
        let mut batch = WriteBatch::new();
        model::remove(&mut batch, &row);
        model::delete_id(&mut batch, account, &policy.id);
        Ok(Effect {
            output: json!({}),
            batch,
            resources: vec![resource(call, arn, "AWS::IAM::Policy")],
        })
    }

    async fn load_policy_for_versions(&self, call: &Call) -> Result<Row<PolicyRecord>, AwsError> {
        let arn = req_str(&call.input, "PolicyArn")?;
        load_customer_policy(self, account(call), arn)
            .await?
            .ok_or_else(|| no_such_entity(format!("Policy {arn} was not found.")))
    }

    pub(crate) async fn create_policy_version(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = self.load_policy_for_versions(call).await?;
        let document = req_str(&call.input, "PolicyDocument")?;
        if size_without_whitespace(document) > limits::MANAGED {
            return Err(limit_exceeded(format!(
                "Cannot exceed quota for PolicySize: {}",
                limits::MANAGED
            )));
        }
        parse_identity(document)?;
        let mut policy = row.value.clone();
        if policy.versions.len() >= 5 {
            return Err(limit_exceeded(
                "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version.",
            ));
        }
        let id = format!("v{}", policy.next_version);
        policy.next_version += 1;
        let created = now(call);
        policy.versions.push(PolicyVersion {
            id: id.clone(),
            document: document.to_string(),
            created,
        });
        let set_default = opt_bool(&call.input, "SetAsDefault").unwrap_or(false);
        if set_default {
            policy.default_version = id.clone();
            policy.updated = created;
        }
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &row, &policy);
        Ok(Effect::write(
            json!({"PolicyVersion": {"VersionId": id, "IsDefaultVersion": set_default, "CreateDate": created}}),
            batch,
        ))
    }

    pub(crate) async fn get_policy_version(&self, call: &Call) -> Result<Effect, AwsError> {
        let arn = req_str(&call.input, "PolicyArn")?;
        let version_id = req_str(&call.input, "VersionId")?;
        let missing = || {
            no_such_entity(format!(
                "Policy {arn} version {version_id} does not exist or is not attachable."
            ))
        };
        if let Some(policy) = managed::by_arn(arn) {
            if policy.version_id != version_id {
                return Err(missing());
            }
            let mut version = Map::new();
            version.insert("Document".into(), json!(policy.document));
            version.insert("VersionId".into(), json!(policy.version_id));
            version.insert("IsDefaultVersion".into(), json!(true));
            if let Some(created) = &policy.update_date {
                version.insert("CreateDate".into(), json!(created));
            }
            return Ok(Effect::read(json!({"PolicyVersion": version})));
        }
        let row = load_customer_policy(self, account(call), arn)
            .await?
            .ok_or_else(missing)?;
        let policy = &row.value;
        let version = policy
            .versions
            .iter()
            .find(|v| v.id == version_id)
            .ok_or_else(missing)?;
        Ok(Effect::read(json!({"PolicyVersion": {
            "Document": version.document, "VersionId": version.id,
            "IsDefaultVersion": version.id == policy.default_version, "CreateDate": version.created,
        }})))
    }

    pub(crate) async fn list_policy_versions(&self, call: &Call) -> Result<Effect, AwsError> {
        let arn = req_str(&call.input, "PolicyArn")?;
        let items: Vec<(String, Value)> = if let Some(policy) = managed::by_arn(arn) {
            vec![(
                policy.version_id.clone(),
                json!({"VersionId": policy.version_id, "IsDefaultVersion": true, "CreateDate": policy.update_date}),
            )]
        } else {
            let row = self.load_policy_for_versions(call).await?;
            let policy = row.value;
            // Newest first, as IAM lists them; the sort key keeps the page boundary stable.
            let mut versions: Vec<(String, Value)> = policy
                .versions
                .iter()
                .rev()
                .enumerate()
                .map(|(i, v)| {
                    (
                        format!("{i:04}"),
                        json!({"VersionId": v.id, "IsDefaultVersion": v.id == policy.default_version, "CreateDate": v.created}),
                    )
                })
                .collect();
            versions.sort_by(|a, b| a.0.cmp(&b.0));
            versions
        };
        let (page, next) = paginate(items, &call.input);
        let mut out = Map::new();
        out.insert("Versions".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn delete_policy_version(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = self.load_policy_for_versions(call).await?;
        let version_id = req_str(&call.input, "VersionId")?;
        let mut policy = row.value.clone();
        if !policy.versions.iter().any(|v| v.id == version_id) {
            return Err(no_such_entity(format!(
                "Policy {} version {version_id} does not exist or is not attachable.",
                req_str(&call.input, "PolicyArn")?
            )));
        }
        if policy.default_version == version_id {
            return Err(delete_conflict("Cannot delete the default version of a policy."));
        }
        policy.versions.retain(|v| v.id != version_id);
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &row, &policy);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn set_default_policy_version(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = self.load_policy_for_versions(call).await?;
        let version_id = req_str(&call.input, "VersionId")?;
        let mut policy = row.value.clone();
        if !policy.versions.iter().any(|v| v.id == version_id) {
            return Err(no_such_entity(format!(
                "Policy {} version {version_id} does not exist or is not attachable.",
                req_str(&call.input, "PolicyArn")?
            )));
        }
        policy.default_version = version_id.to_string();
        policy.updated = now(call);
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &row, &policy);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn put_inline<T: PolicyHolder>(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = load_holder::<T>(self, call).await?;
        let policy_name = req_str(&call.input, "PolicyName")?;
        check_name(policy_name, "policyName", 128)?;
        let document = req_str(&call.input, "PolicyDocument")?;
        parse_identity(document)?;
        let mut entity = row.value.clone();
        let entity_name = entity.name().to_string();
        let inline = entity.inline();
        match inline.iter_mut().find(|p| p.name == policy_name) {
            Some(existing) => existing.document = document.to_string(),
            None => inline.push(InlinePolicy {
                name: policy_name.to_string(),
                document: document.to_string(),
            }),
        }
        let total: usize = inline.iter().map(|p| size_without_whitespace(&p.document)).sum();
        if total > T::INLINE_LIMIT {
            return Err(limit_exceeded(format!(
                "Maximum policy size of {} bytes exceeded for {} {entity_name}",
                T::INLINE_LIMIT,
                T::KIND
            )));
        }
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &row, &entity);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn get_inline<T: PolicyHolder>(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = load_holder::<T>(self, call).await?;
        let policy_name = req_str(&call.input, "PolicyName")?;
        let mut entity = row.value.clone();
        let entity_name = entity.name().to_string();
        let policy = entity
            .inline()
            .iter()
            .find(|p| p.name == policy_name)
            .cloned()
            .ok_or_else(|| {
                no_such_entity(format!(
                    "The {} policy with name {policy_name} cannot be found.",
                    T::KIND
                ))
            })?;
        let mut out = Map::new();
        out.insert(T::NAME_MEMBER.into(), json!(entity_name));
        out.insert("PolicyName".into(), json!(policy.name));
        out.insert("PolicyDocument".into(), json!(policy.document));
        Ok(Effect::read(Value::Object(out)))
    }

    pub(crate) async fn list_inline<T: PolicyHolder>(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = load_holder::<T>(self, call).await?;
        let mut entity = row.value;
        let mut names: Vec<(String, Value)> = entity
            .inline()
            .iter()
            .map(|p| (p.name.clone(), json!(p.name)))
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let (page, next) = paginate(names, &call.input);
        let mut out = Map::new();
        out.insert("PolicyNames".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn delete_inline<T: PolicyHolder>(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = load_holder::<T>(self, call).await?;
        let policy_name = req_str(&call.input, "PolicyName")?;
        let mut entity = row.value.clone();
        let inline = entity.inline();
        let before = inline.len();
        inline.retain(|p| p.name != policy_name);
        if inline.len() == before {
            return Err(no_such_entity(format!(
                "The {} policy with name {policy_name} cannot be found.",
                T::KIND
            )));
        }
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &row, &entity);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn attach<T: PolicyHolder>(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_holder::<T>(self, call).await?;
        let arn = req_str(&call.input, "PolicyArn")?;
        let target = resolve_attachable(self, account, arn).await?;
        let mut entity = row.value.clone();
        let attached = entity.attached();
        let mut batch = WriteBatch::new();
        if !attached.iter().any(|a| a == arn) {
            if attached.len() >= 10 {
                return Err(limit_exceeded(format!("Cannot exceed quota for {}: 10", T::QUOTA)));
            }
            attached.push(arn.to_string());
            if let Attachable::Customer(policy_row) = &target {
                let mut policy = policy_row.value.clone();
                policy.attachment_count += 1;
                model::replace(&mut batch, policy_row, &policy);
            }
        }
        model::replace(&mut batch, &row, &entity);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn detach<T: PolicyHolder>(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_holder::<T>(self, call).await?;
        let arn = req_str(&call.input, "PolicyArn")?;
        let mut entity = row.value.clone();
        let attached = entity.attached();
        if !attached.iter().any(|a| a == arn) {
            return Err(no_such_entity(format!("Policy {arn} was not found.")));
        }
        attached.retain(|a| a != arn);
        let mut batch = WriteBatch::new();
        if let Some(policy_row) = load_customer_policy(self, account, arn).await? {
            let mut policy = policy_row.value.clone();
            policy.attachment_count = (policy.attachment_count - 1).max(0);
            model::replace(&mut batch, &policy_row, &policy);
        }
        model::replace(&mut batch, &row, &entity);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn list_attached<T: PolicyHolder>(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = load_holder::<T>(self, call).await?;
        let prefix = opt_str(&call.input, "PathPrefix").unwrap_or("/");
        let mut entity = row.value;
        let mut items: Vec<(String, Value)> = Vec::new();
        for arn in entity.attached().iter() {
            let Some((_, path, name)) = split_arn_name(arn) else {
                continue;
            };
            if path.starts_with(prefix) {
                items.push((name.to_lowercase(), json!({"PolicyName": name, "PolicyArn": arn})));
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let (page, next) = paginate(items, &call.input);
        let mut out = Map::new();
        out.insert("AttachedPolicies".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn list_entities_for_policy(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let arn = req_str(&call.input, "PolicyArn")?;
        resolve_attachable(self, account, arn).await?;
        let filter = opt_str(&call.input, "EntityFilter");
        let prefix = opt_str(&call.input, "PathPrefix").unwrap_or("/");
        let boundary = opt_str(&call.input, "PolicyUsageFilter") == Some("PermissionsBoundary");
        let wants = |kind: &str| filter.is_none_or(|f| f == kind);
        let mut users = Vec::new();
        let mut groups = Vec::new();
        let mut roles = Vec::new();
        if wants("User") {
            let rows: Vec<Row<UserRecord>> = model::scan_account(self.store.as_ref(), USERS, account).await?;
            for u in rows.iter().map(|r| &r.value).filter(|u| u.path.starts_with(prefix)) {
                let uses = if boundary {
                    u.boundary.as_deref() == Some(arn)
                } else {
                    u.attached.iter().any(|a| a == arn)
                };
                if uses {
                    users.push(json!({"UserName": u.name, "UserId": u.id}));
                }
            }
        }
        if wants("Group") && !boundary {
            let rows: Vec<Row<GroupRecord>> = model::scan_account(self.store.as_ref(), GROUPS, account).await?;
            for g in rows.iter().map(|r| &r.value).filter(|g| g.path.starts_with(prefix)) {
                if g.attached.iter().any(|a| a == arn) {
                    groups.push(json!({"GroupName": g.name, "GroupId": g.id}));
                }
            }
        }
        if wants("Role") {
            let rows: Vec<Row<RoleRecord>> = model::scan_account(self.store.as_ref(), ROLES, account).await?;
            for r in rows.iter().map(|r| &r.value).filter(|r| r.path.starts_with(prefix)) {
                let uses = if boundary {
                    r.boundary.as_deref() == Some(arn)
                } else {
                    r.attached.iter().any(|a| a == arn)
                };
                if uses {
                    roles.push(json!({"RoleName": r.name, "RoleId": r.id}));
                }
            }
        }
        Ok(Effect::read(json!({
            "PolicyUsers": users, "PolicyGroups": groups, "PolicyRoles": roles, "IsTruncated": false,
        })))
    }
}
