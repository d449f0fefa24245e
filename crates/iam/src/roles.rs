//! Roles (trust policies, session duration, boundaries) and instance profiles.

use crate::Iam;
use crate::model::{self, INSTANCE_PROFILES, InstanceProfileRecord, ROLES, RoleRecord, Row, USERS};
use crate::users::{account, boundary_json, now, resource};
use crate::util::*;
use citadel_core::{AuditResource, Call, Effect};
use citadel_policy::{Policy, PolicyKind, limits, size_without_whitespace};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::{Map, Value, json};

/// The `Role` output shape; `full` adds tags, boundary and last use as GetRole shows them.
pub(crate) fn role_json(account: &str, role: &RoleRecord, full: bool) -> Value {
    let mut out = Map::new();
    out.insert("Path".into(), json!(role.path));
    out.insert("RoleName".into(), json!(role.name));
    out.insert("RoleId".into(), json!(role.id));
    out.insert("Arn".into(), json!(entity_arn(account, "role", &role.path, &role.name)));
    out.insert("CreateDate".into(), json!(role.created));
    out.insert("AssumeRolePolicyDocument".into(), json!(role.trust_policy));
    if let Some(description) = &role.description {
        out.insert("Description".into(), json!(description));
    }
    out.insert("MaxSessionDuration".into(), json!(role.max_session_duration));
    if full {
        if let Some(boundary) = &role.boundary {
            out.insert("PermissionsBoundary".into(), boundary_json(boundary));
        }
        if !role.tags.is_empty() {
            out.insert("Tags".into(), model::tags_json(&role.tags));
        }
        out.insert("RoleLastUsed".into(), json!({}));
    }
    Value::Object(out)
}

/// Loads a role by name, or `NoSuchEntity`.
pub(crate) async fn load_role(iam: &Iam, account: &str, name: &str) -> Result<Row<RoleRecord>, AwsError> {
    model::get(iam.store.as_ref(), ROLES, model::name_key(account, name))
        .await?
        .ok_or_else(|| not_found("role", name))
}

async fn load_profile(iam: &Iam, account: &str, name: &str) -> Result<Row<InstanceProfileRecord>, AwsError> {
    model::get(iam.store.as_ref(), INSTANCE_PROFILES, model::name_key(account, name))
        .await?
        .ok_or_else(|| not_found("instance profile", name))
}

/// Writes `role`, new in `account`, into `batch` with its unique id, and answers as CreateRole does:
/// the whole role but its last use, which a new role cannot have.
pub(crate) fn role_created(call: &Call, account: &str, role: &RoleRecord, mut batch: WriteBatch) -> Effect {
    model::insert(&mut batch, ROLES, &model::name_key(account, &role.name), role);
    model::put_id(&mut batch, account, &role.id, "role", &role.name);
    let mut output = role_json(account, role, true);
    if let Some(map) = output.as_object_mut() {
        map.remove("RoleLastUsed");
    }
    Effect {
        output: json!({"Role": output}),
        batch,
        resources: vec![role_resource(call, account, role)],
    }
}

/// Removes the role `row` of `account` and its unique id in `batch`.
pub(crate) fn remove_role(batch: &mut WriteBatch, account: &str, row: &Row<RoleRecord>) {
    model::remove(batch, row);
    model::delete_id(batch, account, &row.value.id);
}

/// `role` as the resource a call's CloudTrail record names.
pub(crate) fn role_resource(call: &Call, account: &str, role: &RoleRecord) -> AuditResource {
    resource(
        call,
        &entity_arn(account, "role", &role.path, &role.name),
        "AWS::IAM::Role",
    )
}

fn check_max_session(value: i64) -> Result<(), AwsError> {
    if !(3600..=43200).contains(&value) {
        return Err(validation(format!(
            "1 validation error detected: Value '{value}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value {}",
            if value < 3600 {
                "greater than or equal to 3600"
            } else {
                "less than or equal to 43200"
            }
        )));
    }
    Ok(())
}

impl Iam {
    /// Whether `account` has a role named `name`.
    pub(crate) async fn role_exists(&self, account: &str, name: &str) -> Result<bool, AwsError> {
        let row = model::get::<RoleRecord>(self.store.as_ref(), ROLES, model::name_key(account, name)).await?;
        Ok(row.is_some())
    }

    /// A role as CreateRole and CreateServiceLinkedRole first make it: a fresh `AROA` id, created now,
    /// with the call's `Description`, and no tags, boundary, policies or instance profiles yet.
    pub(crate) fn new_role(
        &self,
        call: &Call,
        name: &str,
        path: String,
        trust_policy: String,
        max_session_duration: i64,
    ) -> RoleRecord {
        RoleRecord {
            name: name.to_string(),
            id: self.ids.unique_id("AROA"),
            path,
            created: now(call),
            trust_policy,
            description: opt_str(&call.input, "Description").map(str::to_string),
            max_session_duration,
            tags: Vec::new(),
            boundary: None,
            inline: Vec::new(),
            attached: Vec::new(),
            instance_profiles: Vec::new(),
            service_linked: None,
        }
    }

    /// Validates a trust policy as IAM does: the grammar, the size quota, and that every IAM user or
    /// role of this account it names exists.
    pub(crate) async fn check_trust_policy(&self, account: &str, document: &str) -> Result<(), AwsError> {
        if size_without_whitespace(document) > limits::TRUST {
            return Err(limit_exceeded(format!(
                "Cannot exceed quota for ACLSizePerRole: {}",
                limits::TRUST
            )));
        }
        Policy::parse(document, PolicyKind::Trust).map_err(|e| malformed(&e))?;
        let parsed: Value = serde_json::from_str(document).unwrap_or(Value::Null);
        let statements = match parsed.get("Statement") {
            Some(Value::Array(list)) => list.clone(),
            Some(one) => vec![one.clone()],
            None => Vec::new(),
        };
        for statement in statements {
            let aws = statement.get("Principal").and_then(|p| p.get("AWS"));
            let names: Vec<String> = match aws {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                _ => Vec::new(),
            };
            for arn in names {
                let Some((arn_account, _path, name)) = split_arn_name(&arn) else {
                    continue;
                };
                if arn_account != account {
                    continue;
                }
                let exists = if arn.contains(":user/") {
                    model::get::<model::UserRecord>(self.store.as_ref(), USERS, model::name_key(account, name))
                        .await?
                        .is_some_and(|r| entity_arn(account, "user", &r.value.path, &r.value.name) == arn)
                } else if arn.contains(":role/") {
                    model::get::<RoleRecord>(self.store.as_ref(), ROLES, model::name_key(account, name))
                        .await?
                        .is_some_and(|r| entity_arn(account, "role", &r.value.path, &r.value.name) == arn)
                } else {
                    true
                };
                if !exists {
                    return Err(AwsError::new(
                        "MalformedPolicyDocument",
                        400,
                        format!("Invalid principal in policy: \"AWS\":\"{arn}\""),
                    ));
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn create_role(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let name = req_str(&call.input, "RoleName")?;
        check_name(name, "roleName", 64)?;
        let path = path_input(&call.input, "Path")?;
        let trust = req_str(&call.input, "AssumeRolePolicyDocument")?;
        let max_session = opt_i64(&call.input, "MaxSessionDuration").unwrap_or(3600);
        check_max_session(max_session)?;
        let tags = tags_input(&call.input, "Tags")?;
        check_tag_count(&tags)?;
        if self.role_exists(account, name).await? {
            return Err(already_exists(format!("Role with name {name} already exists.")));
        }
        self.check_trust_policy(account, trust).await?;
        let mut batch = WriteBatch::new();
        let boundary = match opt_str(&call.input, "PermissionsBoundary") {
            Some(arn) => Some(self.use_boundary(account, arn, &mut batch).await?),
            None => None,
        };
        let role = RoleRecord {
            tags,
            boundary,
            ..self.new_role(call, name, path, trust.to_string(), max_session)
        };
        Ok(role_created(call, account, &role, batch))
    }

    pub(crate) async fn get_role(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_role(self, account, req_str(&call.input, "RoleName")?).await?;
        Ok(Effect::read(json!({"Role": role_json(account, &row.value, true)})))
    }

    pub(crate) async fn list_roles(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let prefix = opt_str(&call.input, "PathPrefix").unwrap_or("/");
        let rows: Vec<Row<RoleRecord>> = model::scan_account(self.store.as_ref(), ROLES, account).await?;
        let items = rows
            .into_iter()
            .filter(|r| r.value.path.starts_with(prefix))
            .map(|r| (r.value.name.to_lowercase(), role_json(account, &r.value, false)))
            .collect();
        let (page, next) = paginate(items, &call.input);
        let mut out = Map::new();
        out.insert("Roles".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn update_role(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_role(self, account, req_str(&call.input, "RoleName")?).await?;
        let mut role = row.value.clone();
        if let Some(description) = opt_str(&call.input, "Description") {
            role.description = Some(description.to_string());
        }
        if let Some(max) = opt_i64(&call.input, "MaxSessionDuration") {
            check_max_session(max)?;
            role.max_session_duration = max;
        }
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &row, &role);
        let output = if call.op.name == "UpdateRoleDescription" {
            json!({"Role": role_json(account, &role, true)})
        } else {
            json!({})
        };
        Ok(Effect::write(output, batch))
    }

    pub(crate) async fn update_assume_role_policy(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_role(self, account, req_str(&call.input, "RoleName")?).await?;
        let document = req_str(&call.input, "PolicyDocument")?;
        self.check_trust_policy(account, document).await?;
        let mut role = row.value.clone();
        role.trust_policy = document.to_string();
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &row, &role);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn delete_role(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_role(self, account, req_str(&call.input, "RoleName")?).await?;
        let role = &row.value;
        if !role.instance_profiles.is_empty() {
            return Err(delete_conflict(
                "Cannot delete entity, must remove roles from instance profile first.",
            ));
        }
        if !role.inline.is_empty() {
            return Err(delete_conflict("Cannot delete entity, must delete policies first."));
        }
        if !role.attached.is_empty() {
            return Err(delete_conflict("Cannot delete entity, must detach all policies first."));
        }
        let mut batch = WriteBatch::new();
        if let Some(boundary) = &role.boundary {
            self.release_boundary(account, boundary, &mut batch).await?;
        }
        remove_role(&mut batch, account, &row);
        Ok(Effect {
            output: json!({}),
            batch,
            resources: vec![role_resource(call, account, role)],
        })
    }

    pub(crate) async fn put_role_permissions_boundary(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_role(self, account, req_str(&call.input, "RoleName")?).await?;
        let arn = req_str(&call.input, "PermissionsBoundary")?;
        let mut batch = WriteBatch::new();
        let mut role = row.value.clone();
        if role.boundary.as_deref() != Some(arn) {
            if let Some(old) = &role.boundary {
                self.release_boundary(account, old, &mut batch).await?;
            }
            role.boundary = Some(self.use_boundary(account, arn, &mut batch).await?);
        }
        model::replace(&mut batch, &row, &role);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn delete_role_permissions_boundary(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_role(self, account, req_str(&call.input, "RoleName")?).await?;
        let mut role = row.value.clone();
        let Some(old) = role.boundary.take() else {
            return Err(no_such_entity(format!(
                "The role with name {} does not have a permissions boundary.",
                role.name
            )));
        };
        let mut batch = WriteBatch::new();
        self.release_boundary(account, &old, &mut batch).await?;
        model::replace(&mut batch, &row, &role);
        Ok(Effect::write(json!({}), batch))
    }

    async fn profile_json(&self, account: &str, profile: &InstanceProfileRecord) -> Result<Value, AwsError> {
        let mut roles = Vec::new();
        for id in &profile.roles {
            if let Some(entry) = model::lookup_id(self.store.as_ref(), account, id).await?
                && let Some(role) =
                    model::get::<RoleRecord>(self.store.as_ref(), ROLES, model::name_key(account, &entry.name)).await?
            {
                roles.push(role_json(account, &role.value, false));
            }
        }
        let mut out = Map::new();
        out.insert("Path".into(), json!(profile.path));
        out.insert("InstanceProfileName".into(), json!(profile.name));
        out.insert("InstanceProfileId".into(), json!(profile.id));
        out.insert(
            "Arn".into(),
            json!(entity_arn(account, "instance-profile", &profile.path, &profile.name)),
        );
        out.insert("CreateDate".into(), json!(profile.created));
        out.insert("Roles".into(), Value::Array(roles));
        if !profile.tags.is_empty() {
            out.insert("Tags".into(), model::tags_json(&profile.tags));
        }
        Ok(Value::Object(out))
    }

    pub(crate) async fn create_instance_profile(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let name = req_str(&call.input, "InstanceProfileName")?;
        check_name(name, "instanceProfileName", 128)?;
        let path = path_input(&call.input, "Path")?;
        let tags = tags_input(&call.input, "Tags")?;
        check_tag_count(&tags)?;
        let key = model::name_key(account, name);
        if model::get::<InstanceProfileRecord>(self.store.as_ref(), INSTANCE_PROFILES, key.clone())
            .await?
            .is_some()
        {
            return Err(already_exists(format!("Instance Profile {name} already exists.")));
        }
        let profile = InstanceProfileRecord {
            name: name.to_string(),
            id: self.ids.unique_id("AIPA"),
            path,
            created: now(call),
            roles: Vec::new(),
            tags,
        };
        let mut batch = WriteBatch::new();
        model::insert(&mut batch, INSTANCE_PROFILES, &key, &profile);
        model::put_id(&mut batch, account, &profile.id, "instance-profile", &profile.name);
        let output = self.profile_json(account, &profile).await?;
        Ok(Effect::write(json!({"InstanceProfile": output}), batch))
    }

    pub(crate) async fn get_instance_profile(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_profile(self, account, req_str(&call.input, "InstanceProfileName")?).await?;
        Ok(Effect::read(
            json!({"InstanceProfile": self.profile_json(account, &row.value).await?}),
        ))
    }

    pub(crate) async fn delete_instance_profile(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_profile(self, account, req_str(&call.input, "InstanceProfileName")?).await?;
        if !row.value.roles.is_empty() {
            return Err(delete_conflict(
                "Cannot delete entity, must remove roles from instance profile first.",
            ));
        }
        let mut batch = WriteBatch::new();
        model::remove(&mut batch, &row);
        model::delete_id(&mut batch, account, &row.value.id);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn list_instance_profiles(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let prefix = opt_str(&call.input, "PathPrefix").unwrap_or("/");
        let rows: Vec<Row<InstanceProfileRecord>> =
            model::scan_account(self.store.as_ref(), INSTANCE_PROFILES, account).await?;
        let mut items = Vec::new();
        for row in rows.iter().filter(|r| r.value.path.starts_with(prefix)) {
            items.push((
                row.value.name.to_lowercase(),
                self.profile_json(account, &row.value).await?,
            ));
        }
        let (page, next) = paginate(items, &call.input);
        let mut out = Map::new();
        out.insert("InstanceProfiles".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn list_instance_profiles_for_role(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let role = load_role(self, account, req_str(&call.input, "RoleName")?).await?;
        let mut items = Vec::new();
        for id in &role.value.instance_profiles {
            if let Some(entry) = model::lookup_id(self.store.as_ref(), account, id).await?
                && let Ok(profile) = load_profile(self, account, &entry.name).await
            {
                items.push((
                    profile.value.name.to_lowercase(),
                    self.profile_json(account, &profile.value).await?,
                ));
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let (page, next) = paginate(items, &call.input);
        let mut out = Map::new();
        out.insert("InstanceProfiles".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn add_role_to_instance_profile(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let profile_row = load_profile(self, account, req_str(&call.input, "InstanceProfileName")?).await?;
        let role_row = load_role(self, account, req_str(&call.input, "RoleName")?).await?;
        let mut profile = profile_row.value.clone();
        let mut role = role_row.value.clone();
        if profile.roles.contains(&role.id) {
            return Err(limit_exceeded(
                "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1",
            ));
        }
        if !profile.roles.is_empty() {
            return Err(limit_exceeded(
                "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1",
            ));
        }
        profile.roles.push(role.id.clone());
        if !role.instance_profiles.contains(&profile.id) {
            role.instance_profiles.push(profile.id.clone());
        }
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &profile_row, &profile);
        model::replace(&mut batch, &role_row, &role);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn remove_role_from_instance_profile(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let profile_row = load_profile(self, account, req_str(&call.input, "InstanceProfileName")?).await?;
        let role_row = load_role(self, account, req_str(&call.input, "RoleName")?).await?;
        let mut profile = profile_row.value.clone();
        let mut role = role_row.value.clone();
        if !profile.roles.contains(&role.id) {
            return Err(no_such_entity(format!(
                "The role with name {} cannot be found in instance profile {}.",
                role.name, profile.name
            )));
        }
        profile.roles.retain(|id| id != &role.id);
        role.instance_profiles.retain(|id| id != &profile.id);
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &profile_row, &profile);
        model::replace(&mut batch, &role_row, &role);
        Ok(Effect::write(json!({}), batch))
    }
}
