//! IAM as the pipeline sees it: who a user is ([`PrincipalDirectory`]) and which policies apply to a
//! principal ([`PolicySource`]).
//!
//! Both answers are cached. A cached answer is stamped with the sum of the store generations of the
//! tables it was computed from, read *before* the computation; the store bumps a generation only
//! after a commit is visible, so a stale answer can never carry a current stamp and any IAM change
//! (a detached policy, a new group membership, a deleted user) takes effect on the next request.

use crate::Iam;
use crate::model::{self, GROUPS, GroupRecord, IDS, InlinePolicy, POLICIES, ROLES, RoleRecord, Row, USERS, UserRecord};
use crate::policies::managed_document;
use crate::users::load_user_by_id;
use crate::util::split_arn_name;
use citadel_core::authz::{PolicySource, PrincipalPolicies};
use citadel_core::identity::PrincipalDirectory;
use citadel_core::{Principal, PrincipalKind};
use citadel_policy::{Policy, PolicyKind};
use citadel_wire::AwsError;
use std::collections::HashMap;
use std::sync::Arc;

/// Tables whose changes can change a principal's policies.
const POLICY_TABLES: &[&str] = &[USERS, GROUPS, ROLES, POLICIES];
/// Tables whose changes can change a user's principal.
const DIRECTORY_TABLES: &[&str] = &[USERS, IDS];

/// Cached compiled policies.
#[derive(Default)]
pub(crate) struct PolicyCache {
    stamp: u64,
    principals: HashMap<String, Arc<PrincipalPolicies>>,
    compiled: HashMap<String, Arc<Policy>>,
}

impl Iam {
    fn policy_stamp(&self) -> u64 {
        POLICY_TABLES
            .iter()
            .fold(0u64, |acc, t| acc.wrapping_add(self.store.generation(t)))
    }

    /// Compiles a stored document, reusing earlier compilations of the same text.
    fn compile(&self, text: &str) -> Option<Arc<Policy>> {
        if let Some(hit) = self.cache.read().compiled.get(text) {
            return Some(hit.clone());
        }
        match Policy::parse(text, PolicyKind::Identity) {
            Ok(policy) => {
                let policy = Arc::new(policy);
                let mut cache = self.cache.write();
                if cache.compiled.len() > 10_000 {
                    cache.compiled.clear();
                }
                cache.compiled.insert(text.to_string(), policy.clone());
                Some(policy)
            }
            Err(err) => {
                tracing::warn!(error = %err, "stored policy no longer parses; ignoring it");
                None
            }
        }
    }

    async fn add_managed(
        &self,
        account: &str,
        arns: &[String],
        out: &mut Vec<(String, Arc<Policy>)>,
    ) -> Result<(), AwsError> {
        for arn in arns {
            if let Some(document) = managed_document(self, account, arn).await?
                && let Some(policy) = self.compile(&document)
            {
                out.push((arn.clone(), policy));
            }
        }
        Ok(())
    }

    fn add_inline(&self, kind: &str, owner: &str, inline: &[InlinePolicy], out: &mut Vec<(String, Arc<Policy>)>) {
        for policy in inline {
            if let Some(compiled) = self.compile(&policy.document) {
                out.push((format!("{kind}/{owner}/inline/{}", policy.name), compiled));
            }
        }
    }

    async fn boundary(&self, account: &str, arn: Option<&String>) -> Result<Option<(String, Arc<Policy>)>, AwsError> {
        let Some(arn) = arn else { return Ok(None) };
        let Some(document) = managed_document(self, account, arn).await? else {
            // A boundary whose policy vanished allows nothing, rather than lifting the cap.
            let deny_all = Policy::parse(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#,
                PolicyKind::Identity,
            )
            .ok()
            .map(Arc::new);
            return Ok(deny_all.map(|p| (arn.clone(), p)));
        };
        Ok(self.compile(&document).map(|p| (arn.clone(), p)))
    }

    /// The policies of an IAM user: inline, attached, and every group's inline and attached.
    pub(crate) async fn user_policies(&self, account: &str, user: &UserRecord) -> Result<PrincipalPolicies, AwsError> {
        let mut identity = Vec::new();
        self.add_inline("user", &user.name, &user.inline, &mut identity);
        self.add_managed(account, &user.attached, &mut identity).await?;
        for group_id in &user.groups {
            if let Some(group) = crate::users::load_group_by_id(self, account, group_id).await? {
                let group: GroupRecord = group.value;
                self.add_inline("group", &group.name, &group.inline, &mut identity);
                self.add_managed(account, &group.attached, &mut identity).await?;
            }
        }
        let boundary = self.boundary(account, user.boundary.as_ref()).await?;
        Ok(PrincipalPolicies::new(identity, boundary))
    }

    /// The policies of a role.
    pub(crate) async fn role_policies(&self, account: &str, role: &RoleRecord) -> Result<PrincipalPolicies, AwsError> {
        let mut identity = Vec::new();
        self.add_inline("role", &role.name, &role.inline, &mut identity);
        self.add_managed(account, &role.attached, &mut identity).await?;
        let boundary = self.boundary(account, role.boundary.as_ref()).await?;
        Ok(PrincipalPolicies::new(identity, boundary))
    }

    async fn compute_policies(&self, principal: &Principal) -> Result<PrincipalPolicies, AwsError> {
        let account = principal.account_id.as_str();
        match &principal.kind {
            PrincipalKind::User { name, .. } => {
                let row: Option<Row<UserRecord>> =
                    model::get(self.store.as_ref(), USERS, model::name_key(account, name)).await?;
                match row.filter(|r| r.value.id == principal.principal_id) {
                    Some(row) => self.user_policies(account, &row.value).await,
                    None => Ok(PrincipalPolicies::default()),
                }
            }
            PrincipalKind::AssumedRole { role_name, role_id, .. } => {
                let row: Option<Row<RoleRecord>> =
                    model::get(self.store.as_ref(), ROLES, model::name_key(account, role_name)).await?;
                match row.filter(|r| &r.value.id == role_id) {
                    Some(row) => self.role_policies(account, &row.value).await,
                    None => Ok(PrincipalPolicies::default()),
                }
            }
            PrincipalKind::FederatedUser { issuer_arn, .. } => {
                // A federated user's permissions are those of the IAM user that asked for the token,
                // capped by the session policies the authorizer applies.
                let Some((_, _, name)) = split_arn_name(issuer_arn) else {
                    return Ok(PrincipalPolicies::default());
                };
                if !issuer_arn.contains(":user/") {
                    return Ok(PrincipalPolicies::default());
                }
                let row: Option<Row<UserRecord>> =
                    model::get(self.store.as_ref(), USERS, model::name_key(account, name)).await?;
                match row {
                    Some(row) => self.user_policies(account, &row.value).await,
                    None => Ok(PrincipalPolicies::default()),
                }
            }
            _ => Ok(PrincipalPolicies::default()),
        }
    }
}

#[async_trait::async_trait]
impl PolicySource for Iam {
    async fn principal_policies(&self, principal: &Principal) -> Result<Arc<PrincipalPolicies>, AwsError> {
        let stamp = self.policy_stamp();
        let cache_key = format!("{}\u{1}{}", principal.arn, principal.principal_id);
        {
            let cache = self.cache.read();
            if cache.stamp == stamp
                && let Some(hit) = cache.principals.get(&cache_key)
            {
                return Ok(hit.clone());
            }
        }
        let computed = Arc::new(self.compute_policies(principal).await?);
        let mut cache = self.cache.write();
        if cache.stamp != stamp {
            cache.principals.clear();
            cache.stamp = stamp;
        }
        if cache.principals.len() > 100_000 {
            cache.principals.clear();
        }
        cache.principals.insert(cache_key, computed.clone());
        Ok(computed)
    }
}

/// The principal of an IAM user.
pub(crate) fn user_principal(account: &str, user: &UserRecord, access_key_id: Option<&str>) -> Principal {
    Principal {
        account_id: account.to_string(),
        arn: crate::util::entity_arn(account, "user", &user.path, &user.name),
        principal_id: user.id.clone(),
        kind: PrincipalKind::User {
            name: user.name.clone(),
            path: user.path.clone(),
        },
        access_key_id: access_key_id.map(str::to_string),
        tags: user.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect(),
        session: None,
    }
}

#[async_trait::async_trait]
impl PrincipalDirectory for Iam {
    async fn user_principal(
        &self,
        account_id: &str,
        user_id: &str,
        access_key_id: &str,
    ) -> Result<Option<Principal>, AwsError> {
        let Some(user) = load_user_by_id(self, account_id, user_id).await? else {
            return Ok(None);
        };
        Ok(Some(user_principal(account_id, &user.value, Some(access_key_id))))
    }

    fn tables(&self) -> &'static [&'static str] {
        DIRECTORY_TABLES
    }
}
