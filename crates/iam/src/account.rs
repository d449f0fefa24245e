//! Account-wide IAM: the alias, GetAccountSummary, GetAccountAuthorizationDetails, the credential
//! report, and OpenID Connect and SAML providers.

use crate::Iam;
use crate::model::{self, GroupRecord, MfaRecord, OidcRecord, PolicyRecord, RoleRecord, Row, SamlRecord, UserRecord};
use crate::model::{ACCOUNT, GROUPS, INSTANCE_PROFILES, MFA, OIDC, POLICIES, ROLES, SAML, USERS};
use crate::users::{account, boundary_json, now};
use crate::util::*;
use citadel_core::identity::{ACCESS_KEYS, AccessKeyRecord, KeyOwner};
use citadel_core::{Call, Effect};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A generated credential report.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CredentialReport {
    generated: i64,
    csv: String,
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The credential report's time format: `2024-01-02T03:04:05+00:00`.
fn report_time(epoch: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(epoch) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "N/A".into(),
    }
}

fn attached_json(arns: &[String]) -> Value {
    Value::Array(
        arns.iter()
            .filter_map(|arn| split_arn_name(arn).map(|(_, _, name)| json!({"PolicyName": name, "PolicyArn": arn})))
            .collect(),
    )
}

fn inline_json(inline: &[model::InlinePolicy]) -> Value {
    Value::Array(
        inline
            .iter()
            .map(|p| json!({"PolicyName": p.name, "PolicyDocument": p.document}))
            .collect(),
    )
}

const REPORT_HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

fn key_columns(keys: &[AccessKeyRecord]) -> Vec<String> {
    let mut out = Vec::new();
    for index in 0..2 {
        match keys.get(index) {
            Some(key) => {
                out.push((key.status == "Active").to_string());
                out.push(report_time(key.created));
                match &key.last_used {
                    Some((when, service, region)) => {
                        out.push(report_time(*when));
                        out.push(region.clone());
                        out.push(service.clone());
                    }
                    None => out.extend(["N/A".to_string(), "N/A".to_string(), "N/A".to_string()]),
                }
            }
            None => out.extend(["false", "N/A", "N/A", "N/A", "N/A"].map(String::from)),
        }
    }
    out
}

impl Iam {
    pub(crate) async fn create_account_alias(&self, call: &Call) -> Result<Effect, AwsError> {
        let alias = req_str(&call.input, "AccountAlias")?;
        let valid = (3..=63).contains(&alias.len())
            && alias
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !alias.starts_with('-')
            && !alias.ends_with('-');
        if !valid {
            return Err(validation(format!(
                "1 validation error detected: Value '{alias}' at 'accountAlias' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-z0-9]([a-z0-9]|-(?!-)){{1,61}}[a-z0-9]$"
            )));
        }
        let key = model::exact_key(account(call), "alias");
        let mut batch = WriteBatch::new();
        match model::get::<String>(self.store.as_ref(), ACCOUNT, key.clone()).await? {
            Some(row) => model::replace(&mut batch, &row, &alias.to_string()),
            None => model::insert(&mut batch, ACCOUNT, &key, &alias.to_string()),
        }
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn delete_account_alias(&self, call: &Call) -> Result<Effect, AwsError> {
        let alias = req_str(&call.input, "AccountAlias")?;
        let key = model::exact_key(account(call), "alias");
        let row = model::get::<String>(self.store.as_ref(), ACCOUNT, key)
            .await?
            .filter(|r| r.value == alias)
            .ok_or_else(|| no_such_entity(format!("The account alias {alias} cannot be found.")))?;
        let mut batch = WriteBatch::new();
        model::remove(&mut batch, &row);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn list_account_aliases(&self, call: &Call) -> Result<Effect, AwsError> {
        let key = model::exact_key(account(call), "alias");
        let aliases: Vec<Value> = model::get::<String>(self.store.as_ref(), ACCOUNT, key)
            .await?
            .map(|r| json!(r.value))
            .into_iter()
            .collect();
        Ok(Effect::read(json!({"AccountAliases": aliases, "IsTruncated": false})))
    }

    async fn root_access_keys(&self, account: &str) -> Result<Vec<AccessKeyRecord>, AwsError> {
        let rows = self
            .store
            .scan(ACCESS_KEYS, b"", None, usize::MAX, false)
            .await
            .map_err(model::store_error)?;
        Ok(rows
            .into_iter()
            .filter_map(|(_, raw)| serde_json::from_slice::<AccessKeyRecord>(&raw).ok())
            .filter(|k| k.account_id == account && k.owner == KeyOwner::Root)
            .collect())
    }

    pub(crate) async fn get_account_summary(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let store = self.store.as_ref();
        let users: Vec<Row<UserRecord>> = model::scan_account(store, USERS, account).await?;
        let groups: Vec<Row<GroupRecord>> = model::scan_account(store, GROUPS, account).await?;
        let roles: Vec<Row<RoleRecord>> = model::scan_account(store, ROLES, account).await?;
        let policies: Vec<Row<PolicyRecord>> = model::scan_account(store, POLICIES, account).await?;
        let profiles: Vec<Row<model::InstanceProfileRecord>> =
            model::scan_account(store, INSTANCE_PROFILES, account).await?;
        let devices: Vec<Row<MfaRecord>> = model::scan_account(store, MFA, account).await?;
        let oidc: Vec<Row<OidcRecord>> = model::scan_account(store, OIDC, account).await?;
        let saml: Vec<Row<SamlRecord>> = model::scan_account(store, SAML, account).await?;
        let certificates: Vec<Row<model::ServerCertificateRecord>> =
            model::scan_account(store, model::SERVER_CERTIFICATES, account).await?;
        let root_keys = self.root_access_keys(account).await?;
        let in_use = devices.iter().filter(|d| d.value.user_id.is_some()).count();
        let versions: usize = policies.iter().map(|p| p.value.versions.len()).sum();
        let summary = json!({
            "Users": users.len(), "UsersQuota": 5000,
            "Groups": groups.len(), "GroupsQuota": 300,
            "Roles": roles.len(), "RolesQuota": 1000,
            "Policies": policies.len(), "PoliciesQuota": 1500,
            "PolicyVersionsInUse": versions, "PolicyVersionsInUseQuota": 10000,
            "VersionsPerPolicyQuota": 5, "PolicySizeQuota": 6144,
            "UserPolicySizeQuota": 2048, "GroupPolicySizeQuota": 5120, "RolePolicySizeQuota": 10240,
            "AssumeRolePolicySizeQuota": 2048, "GroupsPerUserQuota": 10,
            "AttachedPoliciesPerUserQuota": 10, "AttachedPoliciesPerGroupQuota": 10, "AttachedPoliciesPerRoleQuota": 10,
            "AccessKeysPerUserQuota": 2, "SigningCertificatesPerUserQuota": 2,
            "ServerCertificates": certificates.len(), "ServerCertificatesQuota": 20,
            "InstanceProfiles": profiles.len(), "InstanceProfilesQuota": 1000,
            "MFADevices": devices.len(), "MFADevicesInUse": in_use,
            "AccountMFAEnabled": 0,
            "AccountAccessKeysPresent": i32::from(!root_keys.is_empty()),
            "AccountSigningCertificatesPresent": 0,
            "Providers": oidc.len() + saml.len(),
            "GlobalEndpointTokenVersion": 1,
        });
        Ok(Effect::read(json!({"SummaryMap": summary})))
    }

    pub(crate) async fn get_account_authorization_details(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let store = self.store.as_ref();
        let filters = str_list(&call.input, "Filter");
        let wants = |kind: &str| filters.is_empty() || filters.iter().any(|f| f == kind);
        let mut items: Vec<(String, (u8, Value))> = Vec::new();
        let mut aws_in_use: Vec<String> = Vec::new();
        if wants("User") || wants("AWSManagedPolicy") {
            let users: Vec<Row<UserRecord>> = model::scan_account(store, USERS, account).await?;
            for user in users.iter().map(|r| &r.value) {
                aws_in_use.extend(user.attached.iter().cloned());
                if !wants("User") {
                    continue;
                }
                let mut groups = Vec::new();
                for id in &user.groups {
                    if let Some(group) = crate::users::load_group_by_id(self, account, id).await? {
                        groups.push(json!(group.value.name));
                    }
                }
                let mut out = Map::new();
                out.insert("Path".into(), json!(user.path));
                out.insert("UserName".into(), json!(user.name));
                out.insert("UserId".into(), json!(user.id));
                out.insert("Arn".into(), json!(entity_arn(account, "user", &user.path, &user.name)));
                out.insert("CreateDate".into(), json!(user.created));
                out.insert("UserPolicyList".into(), inline_json(&user.inline));
                out.insert("GroupList".into(), Value::Array(groups));
                out.insert("AttachedManagedPolicies".into(), attached_json(&user.attached));
                if let Some(boundary) = &user.boundary {
                    out.insert("PermissionsBoundary".into(), boundary_json(boundary));
                }
                out.insert("Tags".into(), model::tags_json(&user.tags));
                items.push((format!("1{}", user.name.to_lowercase()), (1, Value::Object(out))));
            }
        }
        if wants("Group") || wants("AWSManagedPolicy") {
            let groups: Vec<Row<GroupRecord>> = model::scan_account(store, GROUPS, account).await?;
            for group in groups.iter().map(|r| &r.value) {
                aws_in_use.extend(group.attached.iter().cloned());
                if !wants("Group") {
                    continue;
                }
                let out = json!({
                    "Path": group.path, "GroupName": group.name, "GroupId": group.id,
                    "Arn": entity_arn(account, "group", &group.path, &group.name), "CreateDate": group.created,
                    "GroupPolicyList": inline_json(&group.inline),
                    "AttachedManagedPolicies": attached_json(&group.attached),
                });
                items.push((format!("2{}", group.name.to_lowercase()), (2, out)));
            }
        }
        if wants("Role") || wants("AWSManagedPolicy") {
            let roles: Vec<Row<RoleRecord>> = model::scan_account(store, ROLES, account).await?;
            for role in roles.iter().map(|r| &r.value) {
                aws_in_use.extend(role.attached.iter().cloned());
                if !wants("Role") {
                    continue;
                }
                let mut out = Map::new();
                out.insert("Path".into(), json!(role.path));
                out.insert("RoleName".into(), json!(role.name));
                out.insert("RoleId".into(), json!(role.id));
                out.insert("Arn".into(), json!(entity_arn(account, "role", &role.path, &role.name)));
                out.insert("CreateDate".into(), json!(role.created));
                out.insert("AssumeRolePolicyDocument".into(), json!(role.trust_policy));
                out.insert("InstanceProfileList".into(), json!([]));
                out.insert("RolePolicyList".into(), inline_json(&role.inline));
                out.insert("AttachedManagedPolicies".into(), attached_json(&role.attached));
                if let Some(boundary) = &role.boundary {
                    out.insert("PermissionsBoundary".into(), boundary_json(boundary));
                }
                out.insert("Tags".into(), model::tags_json(&role.tags));
                out.insert("RoleLastUsed".into(), json!({}));
                items.push((format!("3{}", role.name.to_lowercase()), (3, Value::Object(out))));
            }
        }
        if wants("LocalManagedPolicy") {
            let policies: Vec<Row<PolicyRecord>> = model::scan_account(store, POLICIES, account).await?;
            for p in policies.iter().map(|r| &r.value) {
                let mut out = crate::policies::policy_json(account, p, false);
                let versions: Vec<Value> = p
                    .versions
                    .iter()
                    .map(|v| {
                        json!({"Document": v.document, "VersionId": v.id,
                               "IsDefaultVersion": v.id == p.default_version, "CreateDate": v.created})
                    })
                    .collect();
                if let Some(map) = out.as_object_mut() {
                    map.insert("PolicyVersionList".into(), Value::Array(versions));
                }
                items.push((format!("4{}", p.name.to_lowercase()), (4, out)));
            }
        }
        if wants("AWSManagedPolicy") {
            aws_in_use.sort();
            aws_in_use.dedup();
            for arn in aws_in_use.iter().filter(|a| crate::managed::is_aws_arn(a)) {
                if let Some(p) = crate::managed::by_arn(arn) {
                    let mut out = crate::policies::aws_policy_json(p, 1, 0);
                    if let Some(map) = out.as_object_mut() {
                        map.insert(
                            "PolicyVersionList".into(),
                            json!([{"Document": p.document, "VersionId": p.version_id, "IsDefaultVersion": true,
                                    "CreateDate": p.update_date}]),
                        );
                    }
                    items.push((format!("5{}", p.name.to_lowercase()), (4, out)));
                }
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let (page, next) = paginate(items, &call.input);
        let mut lists: [Vec<Value>; 4] = Default::default();
        for (kind, value) in page {
            if let Some(list) = lists.get_mut(usize::from(kind.saturating_sub(1))) {
                list.push(value);
            }
        }
        let [users, groups, roles, policies] = lists;
        let mut out = Map::new();
        out.insert("UserDetailList".into(), Value::Array(users));
        out.insert("GroupDetailList".into(), Value::Array(groups));
        out.insert("RoleDetailList".into(), Value::Array(roles));
        out.insert("Policies".into(), Value::Array(policies));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn generate_credential_report(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let store = self.store.as_ref();
        let mut csv = String::from(REPORT_HEADER);
        csv.push('\n');
        let created = citadel_core::account::load_account(store, account)
            .await
            .ok()
            .flatten()
            .map_or_else(|| "N/A".to_string(), |a| report_time(a.created));
        let mut root = vec![
            "<root_account>".to_string(),
            format!("arn:aws:iam::{account}:root"),
            created,
            "not_supported".into(),
            "N/A".into(),
            "not_supported".into(),
            "not_supported".into(),
            "false".into(),
        ];
        root.extend(key_columns(&self.root_access_keys(account).await?));
        root.extend(["false", "N/A", "false", "N/A"].map(String::from));
        csv.push_str(&root.join(","));
        csv.push('\n');
        let users: Vec<Row<UserRecord>> = model::scan_account(store, USERS, account).await?;
        for user in users.iter().map(|r| &r.value) {
            let mut keys = Vec::new();
            for id in &user.access_keys {
                if let Some(row) = crate::keys::load_key(self, id).await? {
                    keys.push(row.value);
                }
            }
            let profile = user.login_profile.as_ref();
            let mut row = vec![
                user.name.clone(),
                entity_arn(account, "user", &user.path, &user.name),
                report_time(user.created),
                profile.is_some().to_string(),
                match (profile, user.password_last_used) {
                    (None, _) => "N/A".into(),
                    (Some(_), Some(used)) => report_time(used),
                    (Some(_), None) => "no_information".into(),
                },
                profile.map_or_else(|| "N/A".into(), |p| report_time(p.changed.max(p.created))),
                "N/A".into(),
                (!user.mfa_devices.is_empty()).to_string(),
            ];
            row.extend(key_columns(&keys));
            row.extend(["false", "N/A", "false", "N/A"].map(String::from));
            csv.push_str(&row.join(","));
            csv.push('\n');
        }
        let report = CredentialReport {
            generated: now(call),
            csv,
        };
        let key = model::exact_key(account, "credential_report");
        let mut batch = WriteBatch::new();
        batch.put(ACCOUNT, &key, &serde_json::to_vec(&report).unwrap_or_default());
        Ok(Effect::write(
            json!({"State": "COMPLETE", "Description": "No report exists. Starting a new report generation task"}),
            batch,
        ))
    }

    pub(crate) async fn get_credential_report(&self, call: &Call) -> Result<Effect, AwsError> {
        let key = model::exact_key(account(call), "credential_report");
        let Some(row) = model::get::<CredentialReport>(self.store.as_ref(), ACCOUNT, key).await? else {
            return Err(AwsError::new(
                "ReportNotPresent",
                410,
                "Credential report not present. Use GenerateCredentialReport to generate a report.",
            ));
        };
        Ok(Effect::read(json!({
            "Content": b64(row.value.csv.as_bytes()), "ReportFormat": "text/csv", "GeneratedTime": row.value.generated,
        })))
    }

    pub(crate) async fn create_oidc_provider(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let url = req_str(&call.input, "Url")?;
        let Some(host) = url.strip_prefix("https://") else {
            return Err(validation("Invalid Open ID Connect Provider URL"));
        };
        let host = host.trim_end_matches('/');
        if host.is_empty() {
            return Err(validation("Invalid Open ID Connect Provider URL"));
        }
        let arn = format!("arn:aws:iam::{account}:oidc-provider/{host}");
        let key = model::exact_key(account, &arn);
        if model::get::<OidcRecord>(self.store.as_ref(), OIDC, key.clone())
            .await?
            .is_some()
        {
            return Err(already_exists(format!("Provider with url {url} already exists.")));
        }
        let tags = tags_input(&call.input, "Tags")?;
        check_tag_count(&tags)?;
        let record = OidcRecord {
            arn: arn.clone(),
            url: host.to_string(),
            client_ids: str_list(&call.input, "ClientIDList"),
            thumbprints: str_list(&call.input, "ThumbprintList"),
            created: now(call),
            tags: tags.clone(),
        };
        let mut batch = WriteBatch::new();
        model::insert(&mut batch, OIDC, &key, &record);
        Ok(Effect::write(
            json!({"OpenIDConnectProviderArn": arn, "Tags": model::tags_json(&tags)}),
            batch,
        ))
    }

    async fn load_oidc(&self, call: &Call) -> Result<Row<OidcRecord>, AwsError> {
        let arn = req_str(&call.input, "OpenIDConnectProviderArn")?;
        model::get(self.store.as_ref(), OIDC, model::exact_key(account(call), arn))
            .await?
            .ok_or_else(|| no_such_entity(format!("OpenIDConnect Provider not found for arn {arn}")))
    }

    pub(crate) async fn get_oidc_provider(&self, call: &Call) -> Result<Effect, AwsError> {
        let p = self.load_oidc(call).await?.value;
        Ok(Effect::read(json!({
            "Url": p.url, "ClientIDList": p.client_ids, "ThumbprintList": p.thumbprints,
            "CreateDate": p.created, "Tags": model::tags_json(&p.tags),
        })))
    }

    pub(crate) async fn delete_oidc_provider(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = self.load_oidc(call).await?;
        let mut batch = WriteBatch::new();
        model::remove(&mut batch, &row);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn list_oidc_providers(&self, call: &Call) -> Result<Effect, AwsError> {
        let rows: Vec<Row<OidcRecord>> = model::scan_account(self.store.as_ref(), OIDC, account(call)).await?;
        let list: Vec<Value> = rows.iter().map(|r| json!({"Arn": r.value.arn})).collect();
        Ok(Effect::read(json!({"OpenIDConnectProviderList": list})))
    }

    pub(crate) async fn update_oidc_provider(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = self.load_oidc(call).await?;
        let mut p = row.value.clone();
        match call.op.name {
            "AddClientIDToOpenIDConnectProvider" => {
                let id = req_str(&call.input, "ClientID")?.to_string();
                if !p.client_ids.contains(&id) {
                    p.client_ids.push(id);
                }
            }
            "RemoveClientIDFromOpenIDConnectProvider" => {
                let id = req_str(&call.input, "ClientID")?;
                p.client_ids.retain(|c| c != id);
            }
            _ => p.thumbprints = str_list(&call.input, "ThumbprintList"),
        }
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &row, &p);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn create_saml_provider(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let name = req_str(&call.input, "Name")?;
        check_name(name, "name", 128)?;
        let metadata = req_str(&call.input, "SAMLMetadataDocument")?;
        if metadata.len() < 1000 && !metadata.contains("EntityDescriptor") {
            return Err(invalid_input("Could not parse metadata"));
        }
        let arn = format!("arn:aws:iam::{account}:saml-provider/{name}");
        let key = model::exact_key(account, &arn);
        if model::get::<SamlRecord>(self.store.as_ref(), SAML, key.clone())
            .await?
            .is_some()
        {
            return Err(already_exists(format!("SAMLProvider {name} already exists")));
        }
        let tags = tags_input(&call.input, "Tags")?;
        check_tag_count(&tags)?;
        let record = SamlRecord {
            arn: arn.clone(),
            name: name.to_string(),
            metadata: metadata.to_string(),
            created: now(call),
            tags: tags.clone(),
        };
        let mut batch = WriteBatch::new();
        model::insert(&mut batch, SAML, &key, &record);
        Ok(Effect::write(
            json!({"SAMLProviderArn": arn, "Tags": model::tags_json(&tags)}),
            batch,
        ))
    }

    async fn load_saml(&self, call: &Call) -> Result<Row<SamlRecord>, AwsError> {
        let arn = req_str(&call.input, "SAMLProviderArn")?;
        model::get(self.store.as_ref(), SAML, model::exact_key(account(call), arn))
            .await?
            .ok_or_else(|| no_such_entity(format!("Manifest not found for arn {arn}")))
    }

    pub(crate) async fn get_saml_provider(&self, call: &Call) -> Result<Effect, AwsError> {
        let p = self.load_saml(call).await?.value;
        Ok(Effect::read(json!({
            "SAMLMetadataDocument": p.metadata, "CreateDate": p.created,
            "ValidUntil": p.created + 100 * 365 * 86400, "Tags": model::tags_json(&p.tags),
        })))
    }

    pub(crate) async fn update_saml_provider(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = self.load_saml(call).await?;
        let mut p = row.value.clone();
        if let Some(metadata) = opt_str(&call.input, "SAMLMetadataDocument") {
            p.metadata = metadata.to_string();
        }
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &row, &p);
        Ok(Effect::write(json!({"SAMLProviderArn": p.arn}), batch))
    }

    pub(crate) async fn delete_saml_provider(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = self.load_saml(call).await?;
        let mut batch = WriteBatch::new();
        model::remove(&mut batch, &row);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn list_saml_providers(&self, call: &Call) -> Result<Effect, AwsError> {
        let rows: Vec<Row<SamlRecord>> = model::scan_account(self.store.as_ref(), SAML, account(call)).await?;
        let list: Vec<Value> = rows
            .iter()
            .map(|r| json!({"Arn": r.value.arn, "CreateDate": r.value.created, "ValidUntil": r.value.created + 100 * 365 * 86400}))
            .collect();
        Ok(Effect::read(json!({"SAMLProviderList": list})))
    }
}
