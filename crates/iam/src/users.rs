//! Users, groups and group membership.

use crate::Iam;
use crate::model::{self, GROUPS, GroupRecord, Row, USERS, UserRecord};
use crate::policies::{self, Attachable};
use crate::util::*;
use citadel_core::{AuditResource, Call, Effect, PrincipalKind};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::{Map, Value, json};

/// The account and time of a call.
pub(crate) fn account(call: &Call) -> &str {
    call.ctx.account_id()
}

/// The call's time in epoch seconds.
pub(crate) fn now(call: &Call) -> i64 {
    call.ctx.time.unix_timestamp()
}

/// An audit resource entry.
pub(crate) fn resource(call: &Call, arn: &str, kind: &'static str) -> AuditResource {
    AuditResource {
        arn: arn.to_string(),
        account_id: account(call).to_string(),
        resource_type: kind,
    }
}

/// The `User` output shape; `full` adds tags and the boundary as GetUser shows them.
pub(crate) fn user_json(account: &str, user: &UserRecord, full: bool) -> Value {
    let mut out = Map::new();
    out.insert("Path".into(), json!(user.path));
    out.insert("UserName".into(), json!(user.name));
    out.insert("UserId".into(), json!(user.id));
    out.insert("Arn".into(), json!(entity_arn(account, "user", &user.path, &user.name)));
    out.insert("CreateDate".into(), json!(user.created));
    if let Some(used) = user.password_last_used {
        out.insert("PasswordLastUsed".into(), json!(used));
    }
    if full {
        if let Some(boundary) = &user.boundary {
            out.insert("PermissionsBoundary".into(), boundary_json(boundary));
        }
        if !user.tags.is_empty() {
            out.insert("Tags".into(), model::tags_json(&user.tags));
        }
    }
    Value::Object(out)
}

/// The `AttachedPermissionsBoundary` output shape.
pub(crate) fn boundary_json(arn: &str) -> Value {
    json!({"PermissionsBoundaryType": "PermissionsBoundaryPolicy", "PermissionsBoundaryArn": arn})
}

/// The `Group` output shape.
pub(crate) fn group_json(account: &str, group: &GroupRecord) -> Value {
    json!({
        "Path": group.path, "GroupName": group.name, "GroupId": group.id,
        "Arn": entity_arn(account, "group", &group.path, &group.name), "CreateDate": group.created,
    })
}

/// Loads a user by name, or `NoSuchEntity`.
pub(crate) async fn load_user(iam: &Iam, account: &str, name: &str) -> Result<Row<UserRecord>, AwsError> {
    model::get(iam.store.as_ref(), USERS, model::name_key(account, name))
        .await?
        .ok_or_else(|| not_found("user", name))
}

/// Loads a group by name, or `NoSuchEntity`.
pub(crate) async fn load_group(iam: &Iam, account: &str, name: &str) -> Result<Row<GroupRecord>, AwsError> {
    model::get(iam.store.as_ref(), GROUPS, model::name_key(account, name))
        .await?
        .ok_or_else(|| not_found("group", name))
}

/// Loads a user by unique id (`None` when it no longer exists).
pub(crate) async fn load_user_by_id(iam: &Iam, account: &str, id: &str) -> Result<Option<Row<UserRecord>>, AwsError> {
    let Some(entry) = model::lookup_id(iam.store.as_ref(), account, id).await? else {
        return Ok(None);
    };
    let row: Option<Row<UserRecord>> =
        model::get(iam.store.as_ref(), USERS, model::name_key(account, &entry.name)).await?;
    Ok(row.filter(|r| r.value.id == id))
}

/// Loads a group by unique id.
pub(crate) async fn load_group_by_id(iam: &Iam, account: &str, id: &str) -> Result<Option<Row<GroupRecord>>, AwsError> {
    let Some(entry) = model::lookup_id(iam.store.as_ref(), account, id).await? else {
        return Ok(None);
    };
    let row: Option<Row<GroupRecord>> =
        model::get(iam.store.as_ref(), GROUPS, model::name_key(account, &entry.name)).await?;
    Ok(row.filter(|r| r.value.id == id))
}

/// The user an operation is about: `UserName`, or the calling IAM user when it is omitted.
pub(crate) fn target_user_name(call: &Call) -> Result<&str, AwsError> {
    if let Some(name) = opt_str(&call.input, "UserName") {
        return Ok(name);
    }
    match &call.ctx.principal.kind {
        PrincipalKind::User { name, .. } => Ok(name),
        _ => Err(validation(
            "Must specify userName when calling with non-User credentials",
        )),
    }
}

impl Iam {
    pub(crate) async fn create_user(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let name = req_str(&call.input, "UserName")?;
        check_name(name, "userName", 64)?;
        let path = path_input(&call.input, "Path")?;
        let tags = tags_input(&call.input, "Tags")?;
        check_tag_count(&tags)?;
        let key = model::name_key(account, name);
        if model::get::<UserRecord>(self.store.as_ref(), USERS, key.clone())
            .await?
            .is_some()
        {
            return Err(already_exists(format!("User with name {name} already exists.")));
        }
        let mut batch = WriteBatch::new();
        let boundary = match opt_str(&call.input, "PermissionsBoundary") {
            Some(arn) => Some(self.use_boundary(account, arn, &mut batch).await?),
            None => None,
        };
        let user = UserRecord {
            name: name.to_string(),
            id: self.ids.unique_id("AIDA"),
            path,
            created: now(call),
            tags,
            boundary,
            inline: Vec::new(),
            attached: Vec::new(),
            groups: Vec::new(),
            access_keys: Vec::new(),
            mfa_devices: Vec::new(),
            login_profile: None,
            password_last_used: None,
        };
        model::insert(&mut batch, USERS, &key, &user);
        model::put_id(&mut batch, account, &user.id, "user", &user.name);
        let arn = entity_arn(account, "user", &user.path, &user.name);
        Ok(Effect {
            output: json!({"User": user_json(account, &user, true)}),
            batch,
            resources: vec![resource(call, &arn, "AWS::IAM::User")],
        })
    }

    /// Validates a permissions boundary ARN and counts the new use; returns the ARN to store.
    pub(crate) async fn use_boundary(
        &self,
        account: &str,
        arn: &str,
        batch: &mut WriteBatch,
    ) -> Result<String, AwsError> {
        match policies::resolve_attachable(self, account, arn).await? {
            Attachable::Aws(policy) => Ok(policy.arn.clone()),
            Attachable::Customer(row) => {
                let mut policy = row.value.clone();
                policy.boundary_count += 1;
                model::replace(batch, &row, &policy);
                Ok(arn.to_string())
            }
        }
    }

    /// Counts one use fewer of a permissions boundary.
    pub(crate) async fn release_boundary(
        &self,
        account: &str,
        arn: &str,
        batch: &mut WriteBatch,
    ) -> Result<(), AwsError> {
        if let Ok(Attachable::Customer(row)) = policies::resolve_attachable(self, account, arn).await {
            let mut policy = row.value.clone();
            policy.boundary_count = (policy.boundary_count - 1).max(0);
            model::replace(batch, &row, &policy);
        }
        Ok(())
    }

    pub(crate) async fn get_user(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        if opt_str(&call.input, "UserName").is_none() && call.ctx.principal.is_root() {
            {
                // The root user has no IAM user record; AWS describes it with the account id.
                let principal = &call.ctx.principal;
                return Ok(Effect::read(json!({"User": {
                    "UserId": principal.account_id, "Arn": principal.arn, "Path": "/", "UserName": "",
                    "CreateDate": 0,
                }})));
            }
        }
        let name = target_user_name(call)?;
        let row = load_user(self, account, name).await?;
        Ok(Effect::read(json!({"User": user_json(account, &row.value, true)})))
    }

    /// Lists users one page at a time: rows are keyed by (account, lower-cased name), which is the
    /// order IAM lists them in, so a page reads from the marker on and stops after `MaxItems` matches
    /// instead of decoding every user of the account.
    pub(crate) async fn list_users(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let prefix = opt_str(&call.input, "PathPrefix").unwrap_or("/");
        let max = page_size(&call.input);
        let account_prefix = citadel_store::keys::Key::new().str(account).finish();
        let (_, end) = citadel_store::keys::prefix_range(&account_prefix);
        let mut start = match opt_str(&call.input, "Marker").and_then(decode_marker) {
            Some(name) => model::name_key(account, &name),
            None => account_prefix.clone(),
        };
        let mut page = Vec::new();
        let mut next = None;
        'scan: loop {
            let rows = self
                .store
                .scan(USERS, &start, end.as_deref(), 256, false)
                .await
                .map_err(model::store_error)?;
            let exhausted = rows.len() < 256;
            for (_, raw) in &rows {
                let Ok(user) = serde_json::from_slice::<UserRecord>(raw) else {
                    continue;
                };
                if !user.path.starts_with(prefix) {
                    continue;
                }
                if page.len() == max {
                    next = Some(encode_marker(&user.name.to_lowercase()));
                    break 'scan;
                }
                page.push(user_json(account, &user, false));
            }
            match rows.last() {
                Some((last, _)) if !exhausted => {
                    start = last.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
        let mut out = Map::new();
        out.insert("Users".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn update_user(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let name = req_str(&call.input, "UserName")?;
        let row = load_user(self, account, name).await?;
        let mut user = row.value.clone();
        if opt_str(&call.input, "NewPath").is_some() {
            user.path = path_input(&call.input, "NewPath")?;
        }
        let mut batch = WriteBatch::new();
        match opt_str(&call.input, "NewUserName") {
            Some(new_name) if new_name != user.name => {
                check_name(new_name, "newUserName", 64)?;
                user.name = new_name.to_string();
                let new_key = model::name_key(account, new_name);
                if new_key == row.key {
                    model::replace(&mut batch, &row, &user);
                } else {
                    if model::get::<UserRecord>(self.store.as_ref(), USERS, new_key.clone())
                        .await?
                        .is_some()
                    {
                        return Err(already_exists(format!("User with name {new_name} already exists.")));
                    }
                    model::remove(&mut batch, &row);
                    model::insert(&mut batch, USERS, &new_key, &user);
                }
                model::put_id(&mut batch, account, &user.id, "user", &user.name);
            }
            _ => model::replace(&mut batch, &row, &user),
        }
        let arn = entity_arn(account, "user", &user.path, &user.name);
        Ok(Effect {
            output: json!({}),
            batch,
            resources: vec![resource(call, &arn, "AWS::IAM::User")],
        })
    }

    pub(crate) async fn delete_user(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let name = req_str(&call.input, "UserName")?;
        let row = load_user(self, account, name).await?;
        let user = &row.value;
        let conflict = if user.login_profile.is_some() {
            Some("must delete login profile first")
        } else if !user.access_keys.is_empty() {
            Some("must delete access keys first")
        } else if !user.mfa_devices.is_empty() {
            Some("must delete MFA device first")
        } else if !user.inline.is_empty() {
            Some("must delete policies first")
        } else if !user.attached.is_empty() {
            Some("must detach all policies first")
        } else if !user.groups.is_empty() {
            Some("must remove user from all groups first")
        } else {
            None
        };
        if let Some(what) = conflict {
            return Err(delete_conflict(format!("Cannot delete entity, {what}.")));
        }
        let mut batch = WriteBatch::new();
        if let Some(boundary) = &user.boundary {
            self.release_boundary(account, boundary, &mut batch).await?;
        }
        model::remove(&mut batch, &row);
        model::delete_id(&mut batch, account, &user.id);
        let arn = entity_arn(account, "user", &user.path, &user.name);
        Ok(Effect {
            output: json!({}),
            batch,
            resources: vec![resource(call, &arn, "AWS::IAM::User")],
        })
    }

    pub(crate) async fn put_user_permissions_boundary(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_user(self, account, req_str(&call.input, "UserName")?).await?;
        let arn = req_str(&call.input, "PermissionsBoundary")?;
        let mut batch = WriteBatch::new();
        let mut user = row.value.clone();
        if user.boundary.as_deref() != Some(arn) {
            if let Some(old) = &user.boundary {
                self.release_boundary(account, old, &mut batch).await?;
            }
            user.boundary = Some(self.use_boundary(account, arn, &mut batch).await?);
        }
        model::replace(&mut batch, &row, &user);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn delete_user_permissions_boundary(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_user(self, account, req_str(&call.input, "UserName")?).await?;
        let mut user = row.value.clone();
        let Some(old) = user.boundary.take() else {
            return Err(no_such_entity(format!(
                "The user with name {} does not have a permissions boundary.",
                user.name
            )));
        };
        let mut batch = WriteBatch::new();
        self.release_boundary(account, &old, &mut batch).await?;
        model::replace(&mut batch, &row, &user);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn create_group(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let name = req_str(&call.input, "GroupName")?;
        check_name(name, "groupName", 128)?;
        let path = path_input(&call.input, "Path")?;
        let key = model::name_key(account, name);
        if model::get::<GroupRecord>(self.store.as_ref(), GROUPS, key.clone())
            .await?
            .is_some()
        {
            return Err(already_exists(format!("Group with name {name} already exists.")));
        }
        let group = GroupRecord {
            name: name.to_string(),
            id: self.ids.unique_id("AGPA"),
            path,
            created: now(call),
            inline: Vec::new(),
            attached: Vec::new(),
            members: Vec::new(),
        };
        let mut batch = WriteBatch::new();
        model::insert(&mut batch, GROUPS, &key, &group);
        model::put_id(&mut batch, account, &group.id, "group", &group.name);
        let arn = entity_arn(account, "group", &group.path, &group.name);
        Ok(Effect {
            output: json!({"Group": group_json(account, &group)}),
            batch,
            resources: vec![resource(call, &arn, "AWS::IAM::Group")],
        })
    }

    pub(crate) async fn get_group(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_group(self, account, req_str(&call.input, "GroupName")?).await?;
        let mut users = Vec::new();
        for id in &row.value.members {
            if let Some(user) = load_user_by_id(self, account, id).await? {
                users.push((user.value.name.to_lowercase(), user_json(account, &user.value, false)));
            }
        }
        users.sort_by(|a, b| a.0.cmp(&b.0));
        let (page, next) = paginate(users, &call.input);
        let mut out = Map::new();
        out.insert("Group".into(), group_json(account, &row.value));
        out.insert("Users".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn list_groups(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let prefix = opt_str(&call.input, "PathPrefix").unwrap_or("/");
        let rows: Vec<Row<GroupRecord>> = model::scan_account(self.store.as_ref(), GROUPS, account).await?;
        let items = rows
            .into_iter()
            .filter(|r| r.value.path.starts_with(prefix))
            .map(|r| (r.value.name.to_lowercase(), group_json(account, &r.value)))
            .collect();
        let (page, next) = paginate(items, &call.input);
        let mut out = Map::new();
        out.insert("Groups".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn list_groups_for_user(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let user = load_user(self, account, req_str(&call.input, "UserName")?).await?;
        let mut groups = Vec::new();
        for id in &user.value.groups {
            if let Some(group) = load_group_by_id(self, account, id).await? {
                groups.push((group.value.name.to_lowercase(), group_json(account, &group.value)));
            }
        }
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        let (page, next) = paginate(groups, &call.input);
        let mut out = Map::new();
        out.insert("Groups".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn update_group(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_group(self, account, req_str(&call.input, "GroupName")?).await?;
        let mut group = row.value.clone();
        if opt_str(&call.input, "NewPath").is_some() {
            group.path = path_input(&call.input, "NewPath")?;
        }
        let mut batch = WriteBatch::new();
        match opt_str(&call.input, "NewGroupName") {
            Some(new_name) if new_name != group.name => {
                check_name(new_name, "newGroupName", 128)?;
                group.name = new_name.to_string();
                let new_key = model::name_key(account, new_name);
                if new_key == row.key {
                    model::replace(&mut batch, &row, &group);
                } else {
                    if model::get::<GroupRecord>(self.store.as_ref(), GROUPS, new_key.clone())
                        .await?
                        .is_some()
                    {
                        return Err(already_exists(format!("Group with name {new_name} already exists.")));
                    }
                    model::remove(&mut batch, &row);
                    model::insert(&mut batch, GROUPS, &new_key, &group);
                }
                model::put_id(&mut batch, account, &group.id, "group", &group.name);
            }
            _ => model::replace(&mut batch, &row, &group),
        }
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn delete_group(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_group(self, account, req_str(&call.input, "GroupName")?).await?;
        let group = &row.value;
        if !group.members.is_empty() {
            return Err(delete_conflict(
                "Cannot delete entity, must remove users from group first.",
            ));
        }
        if !group.inline.is_empty() {
            return Err(delete_conflict("Cannot delete entity, must delete policies first."));
        }
        if !group.attached.is_empty() {
            return Err(delete_conflict("Cannot delete entity, must detach all policies first."));
        }
        let mut batch = WriteBatch::new();
        model::remove(&mut batch, &row);
        model::delete_id(&mut batch, account, &group.id);
        let arn = entity_arn(account, "group", &group.path, &group.name);
        Ok(Effect {
            output: json!({}),
            batch,
            resources: vec![resource(call, &arn, "AWS::IAM::Group")],
        })
    }

    pub(crate) async fn add_user_to_group(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let group_row = load_group(self, account, req_str(&call.input, "GroupName")?).await?;
        let user_row = load_user(self, account, req_str(&call.input, "UserName")?).await?;
        let mut group = group_row.value.clone();
        let mut user = user_row.value.clone();
        let mut batch = WriteBatch::new();
        if !user.groups.contains(&group.id) {
            if user.groups.len() >= 10 {
                return Err(limit_exceeded("Cannot exceed quota for GroupsPerUser: 10"));
            }
            user.groups.push(group.id.clone());
        }
        if !group.members.contains(&user.id) {
            group.members.push(user.id.clone());
        }
        model::replace(&mut batch, &group_row, &group);
        model::replace(&mut batch, &user_row, &user);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn remove_user_from_group(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let group_row = load_group(self, account, req_str(&call.input, "GroupName")?).await?;
        let user_row = load_user(self, account, req_str(&call.input, "UserName")?).await?;
        let mut group = group_row.value.clone();
        let mut user = user_row.value.clone();
        if !group.members.contains(&user.id) && !user.groups.contains(&group.id) {
            return Err(no_such_entity(format!(
                "The user with name {} cannot be found in group {}.",
                user.name, group.name
            )));
        }
        group.members.retain(|id| id != &user.id);
        user.groups.retain(|id| id != &group.id);
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &group_row, &group);
        model::replace(&mut batch, &user_row, &user);
        Ok(Effect::write(json!({}), batch))
    }
}
