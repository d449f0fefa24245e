//! Access keys of IAM users (and of the root user when a root caller omits `UserName`).
//!
//! Keys live in core's `access_keys` table as [`AccessKeyRecord`]s, so authenticating a request is one
//! lookup; the owning user's record lists its key ids, which makes the two-keys quota and the
//! delete-conflict check exact under concurrency (both rows are written with preconditions).

use crate::Iam;
use crate::model::{self, Row, UserRecord};
use crate::users::{account, load_user, now, target_user_name};
use crate::util::*;
use citadel_core::identity::{ACCESS_KEYS, AccessKeyRecord, KeyOwner};
use citadel_core::{Call, Effect};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::{Map, Value, json};

/// Whose keys a call is about.
enum Owner {
    /// An IAM user.
    User(Box<Row<UserRecord>>),
    /// The account's root user.
    Root,
}

fn key_missing(id: &str) -> AwsError {
    no_such_entity(format!("The Access Key with id {id} cannot be found."))
}

/// Reads one access key row.
pub(crate) async fn load_key(iam: &Iam, id: &str) -> Result<Option<Row<AccessKeyRecord>>, AwsError> {
    model::get(iam.store.as_ref(), ACCESS_KEYS, id.as_bytes().to_vec()).await
}

impl Iam {
    async fn key_owner(&self, call: &Call) -> Result<Owner, AwsError> {
        if opt_str(&call.input, "UserName").is_none() && call.ctx.principal.is_root() {
            return Ok(Owner::Root);
        }
        let name = target_user_name(call)?;
        Ok(Owner::User(Box::new(load_user(self, account(call), name).await?)))
    }

    /// The root user's keys of an account (the table is keyed by key id, so this scans it).
    async fn root_keys(&self, account: &str) -> Result<Vec<Row<AccessKeyRecord>>, AwsError> {
        let rows = self
            .store
            .scan(ACCESS_KEYS, b"", None, usize::MAX, false)
            .await
            .map_err(model::store_error)?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, raw)| {
                let value: AccessKeyRecord = serde_json::from_slice(&raw).ok()?;
                (value.account_id == account && value.owner == KeyOwner::Root).then_some(Row {
                    table: ACCESS_KEYS,
                    key,
                    raw,
                    value,
                })
            })
            .collect())
    }

    /// Loads a key that must belong to `owner`.
    async fn owned_key(&self, call: &Call, owner: &Owner, id: &str) -> Result<Row<AccessKeyRecord>, AwsError> {
        let row = load_key(self, id).await?.ok_or_else(|| key_missing(id))?;
        let ok = row.value.account_id == account(call)
            && match (owner, &row.value.owner) {
                (Owner::User(user), KeyOwner::User { user_id, .. }) => &user.value.id == user_id,
                (Owner::Root, KeyOwner::Root) => true,
                _ => false,
            };
        if !ok {
            return Err(key_missing(id));
        }
        Ok(row)
    }

    pub(crate) async fn create_access_key(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let owner = self.key_owner(call).await?;
        let id = self.ids.aws_id("AKIA");
        let secret = self.ids.secret_access_key();
        let created = now(call);
        let mut batch = WriteBatch::new();
        let (record_owner, user_name) = match &owner {
            Owner::User(row) => {
                if row.value.access_keys.len() >= 2 {
                    return Err(limit_exceeded("Cannot exceed quota for AccessKeysPerUser: 2"));
                }
                let mut user = row.value.clone();
                user.access_keys.push(id.clone());
                model::replace(&mut batch, row, &user);
                (
                    KeyOwner::User {
                        user_id: user.id.clone(),
                        user_name: user.name.clone(),
                    },
                    Some(user.name),
                )
            }
            Owner::Root => {
                let existing = self.root_keys(account).await?;
                if existing.len() >= 2 {
                    return Err(limit_exceeded("Cannot exceed quota for AccessKeysPerUser: 2"));
                }
                for row in &existing {
                    model::keep(&mut batch, row);
                }
                (KeyOwner::Root, None)
            }
        };
        let record = AccessKeyRecord {
            access_key_id: id.clone(),
            account_id: account.to_string(),
            owner: record_owner,
            secret_sealed: AccessKeyRecord::seal_secret(&self.master, &id, &secret),
            status: "Active".into(),
            created,
            last_used: None,
        };
        model::insert(&mut batch, ACCESS_KEYS, id.as_bytes(), &record);
        let mut key = Map::new();
        if let Some(name) = user_name {
            key.insert("UserName".into(), json!(name));
        }
        key.insert("AccessKeyId".into(), json!(id));
        key.insert("Status".into(), json!("Active"));
        key.insert("SecretAccessKey".into(), json!(secret));
        key.insert("CreateDate".into(), json!(created));
        Ok(Effect::write(json!({"AccessKey": key}), batch))
    }

    pub(crate) async fn list_access_keys(&self, call: &Call) -> Result<Effect, AwsError> {
        let owner = self.key_owner(call).await?;
        let (rows, user_name) = match &owner {
            Owner::User(user) => {
                let mut rows = Vec::new();
                for id in &user.value.access_keys {
                    if let Some(row) = load_key(self, id).await? {
                        rows.push(row);
                    }
                }
                (rows, Some(user.value.name.clone()))
            }
            Owner::Root => (self.root_keys(account(call)).await?, None),
        };
        let items = rows
            .iter()
            .map(|row| {
                let mut meta = Map::new();
                if let Some(name) = &user_name {
                    meta.insert("UserName".into(), json!(name));
                }
                meta.insert("AccessKeyId".into(), json!(row.value.access_key_id));
                meta.insert("Status".into(), json!(row.value.status));
                meta.insert("CreateDate".into(), json!(row.value.created));
                (row.value.access_key_id.clone(), Value::Object(meta))
            })
            .collect();
        let (page, next) = paginate(items, &call.input);
        let mut out = Map::new();
        out.insert("AccessKeyMetadata".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn update_access_key(&self, call: &Call) -> Result<Effect, AwsError> {
        let owner = self.key_owner(call).await?;
        let id = req_str(&call.input, "AccessKeyId")?;
        let status = req_str(&call.input, "Status")?;
        if status != "Active" && status != "Inactive" {
            return Err(validation(format!(
                "1 validation error detected: Value '{status}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"
            )));
        }
        let row = self.owned_key(call, &owner, id).await?;
        let mut record = row.value.clone();
        record.status = status.to_string();
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &row, &record);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn delete_access_key(&self, call: &Call) -> Result<Effect, AwsError> {
        let owner = self.key_owner(call).await?;
        let id = req_str(&call.input, "AccessKeyId")?;
        let row = self.owned_key(call, &owner, id).await?;
        let mut batch = WriteBatch::new();
        model::remove(&mut batch, &row);
        if let Owner::User(user_row) = &owner {
            let mut user = user_row.value.clone();
            user.access_keys.retain(|k| k != id);
            model::replace(&mut batch, user_row, &user);
        }
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn get_access_key_last_used(&self, call: &Call) -> Result<Effect, AwsError> {
        let id = req_str(&call.input, "AccessKeyId")?;
        let row = load_key(self, id)
            .await?
            .filter(|r| r.value.account_id == account(call))
            .ok_or_else(|| key_missing(id))?;
        let mut last = Map::new();
        match &row.value.last_used {
            Some((when, service, region)) => {
                last.insert("LastUsedDate".into(), json!(when));
                last.insert("ServiceName".into(), json!(service));
                last.insert("Region".into(), json!(region));
            }
            None => {
                last.insert("ServiceName".into(), json!("N/A"));
                last.insert("Region".into(), json!("N/A"));
            }
        }
        let mut out = Map::new();
        if let KeyOwner::User { user_id, user_name } = &row.value.owner {
            let name = match crate::users::load_user_by_id(self, account(call), user_id).await? {
                Some(user) => user.value.name,
                None => user_name.clone(),
            };
            out.insert("UserName".into(), json!(name));
        }
        out.insert("AccessKeyLastUsed".into(), Value::Object(last));
        Ok(Effect::read(Value::Object(out)))
    }
}
