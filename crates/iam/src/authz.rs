//! What each IAM call needs to be allowed: the action on the entity's real ARN (with its path), the
//! entity's tags as `aws:ResourceTag`, and the request keys IAM defines (`aws:RequestTag/*`,
//! `aws:TagKeys`, `iam:PermissionsBoundary`, `iam:PolicyARN`).

use crate::Iam;
use crate::model::{self, GroupRecord, InstanceProfileRecord, RoleRecord, Row, Tag, UserRecord};
use crate::model::{GROUPS, INSTANCE_PROFILES, ROLES, USERS};
use crate::util::{entity_arn, opt_str, str_list};
use citadel_core::{Authorization, Call, Check};
use citadel_wire::AwsError;
use serde_json::Value;

/// Which resource an operation acts on.
enum Target {
    /// An existing user named by `UserName` (or the caller when it is omitted).
    User,
    /// A user being created (`Path` + `UserName`).
    NewUser,
    /// A group named by `GroupName`.
    Group,
    /// A role named by `RoleName`.
    Role,
    /// A role being created.
    NewRole,
    /// A policy named by `PolicyArn`.
    PolicyArn,
    /// A policy being created.
    NewPolicy,
    /// An instance profile named by `InstanceProfileName`.
    InstanceProfile,
    /// An instance profile being created.
    NewInstanceProfile,
    /// An ARN given directly in an input member.
    Member(&'static str),
    /// An OIDC provider being created from its URL.
    NewOidc,
    /// A SAML provider being created.
    NewSaml,
    /// A virtual MFA device being created.
    NewMfa,
    /// A service-linked role being created for `AWSServiceName`.
    NewServiceLinkedRole,
    /// A server certificate named by `ServerCertificateName`.
    ServerCertificate,
    /// A server certificate being uploaded (`Path` + `ServerCertificateName`).
    NewServerCertificate,
    /// The user owning `AccessKeyId`.
    KeyOwner,
    /// The calling user itself.
    Caller,
    /// A listing of one entity kind under `PathPrefix` (IAM names `arn:aws:iam::ACCT:user/`).
    Listing(&'static str),
    /// No resource.
    Star,
}

fn target(op: &str) -> Target {
    match op {
        "CreateUser" => Target::NewUser,
        "CreateGroup" => Target::Group,
        "CreateRole" => Target::NewRole,
        "CreatePolicy" => Target::NewPolicy,
        "CreateInstanceProfile" => Target::NewInstanceProfile,
        "CreateOpenIDConnectProvider" => Target::NewOidc,
        "CreateSAMLProvider" => Target::NewSaml,
        "CreateVirtualMFADevice" => Target::NewMfa,
        "GetAccessKeyLastUsed" => Target::KeyOwner,
        "CreateServiceLinkedRole" => Target::NewServiceLinkedRole,
        "UploadServerCertificate" => Target::NewServerCertificate,
        "ListServerCertificates" => Target::Listing("server-certificate"),
        op if op.contains("ServerCertificate") => Target::ServerCertificate,
        "GenerateServiceLastAccessedDetails" => Target::Member("Arn"),
        "ChangePassword" => Target::Caller,
        "ListUsers" => Target::Listing("user"),
        "ListGroups" => Target::Listing("group"),
        "ListRoles" => Target::Listing("role"),
        "ListInstanceProfiles" => Target::Listing("instance-profile"),
        "ListPolicies"
        | "ListVirtualMFADevices"
        | "ListOpenIDConnectProviders"
        | "ListSAMLProviders"
        | "GetAccountPasswordPolicy"
        | "UpdateAccountPasswordPolicy"
        | "DeleteAccountPasswordPolicy"
        | "CreateAccountAlias"
        | "DeleteAccountAlias"
        | "ListAccountAliases"
        | "GetAccountSummary"
        | "GetAccountAuthorizationDetails"
        | "GenerateCredentialReport"
        | "GetCredentialReport"
        | "SimulateCustomPolicy"
        | "GetContextKeysForCustomPolicy"
        | "GetServiceLinkedRoleDeletionStatus"
        | "GetServiceLastAccessedDetails"
        | "GetServiceLastAccessedDetailsWithEntities" => Target::Star,
        "SimulatePrincipalPolicy" | "GetContextKeysForPrincipalPolicy" => Target::Member("PolicySourceArn"),
        "DeleteVirtualMFADevice" | "TagMFADevice" | "UntagMFADevice" | "ListMFADeviceTags" => {
            Target::Member("SerialNumber")
        }
        op if op.contains("OpenIDConnectProvider") => Target::Member("OpenIDConnectProviderArn"),
        op if op.contains("SAMLProvider") => Target::Member("SAMLProviderArn"),
        "ListInstanceProfilesForRole" => Target::Role,
        op if op.contains("InstanceProfile") => Target::InstanceProfile,
        op if op.contains("Policy") && !op.contains("User") && !op.contains("Group") && !op.contains("Role") => {
            Target::PolicyArn
        }
        "ListGroupsForUser" => Target::User,
        op if op.contains("Group") => Target::Group,
        op if op.contains("Role") => Target::Role,
        _ => Target::User,
    }
}

fn tag_pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect()
}

impl Iam {
    async fn user_resource(&self, account: &str, name: &str) -> Result<(String, Vec<(String, String)>), AwsError> {
        let row: Option<Row<UserRecord>> =
            model::get(self.store.as_ref(), USERS, model::name_key(account, name)).await?;
        Ok(match row {
            Some(row) => (
                entity_arn(account, "user", &row.value.path, &row.value.name),
                tag_pairs(&row.value.tags),
            ),
            None => (entity_arn(account, "user", "/", name), Vec::new()),
        })
    }

    /// The checks and request context of an IAM call.
    pub(crate) async fn authorization(&self, call: &Call) -> Result<Authorization, AwsError> {
        let account = call.ctx.account_id();
        let input = &call.input;
        let name = |member: &str| opt_str(input, member).unwrap_or("").to_string();
        let (resource, resource_tags) = match target(call.op.name) {
            Target::User => match opt_str(input, "UserName") {
                Some(user) => self.user_resource(account, user).await?,
                None => (call.ctx.principal.arn.clone(), call.ctx.principal.tags.clone()),
            },
            Target::Caller => (call.ctx.principal.arn.clone(), call.ctx.principal.tags.clone()),
            Target::NewUser => (
                entity_arn(
                    account,
                    "user",
                    opt_str(input, "Path").unwrap_or("/"),
                    &name("UserName"),
                ),
                Vec::new(),
            ),
            Target::Group => {
                let group_name = name("GroupName");
                let row: Option<Row<GroupRecord>> =
                    model::get(self.store.as_ref(), GROUPS, model::name_key(account, &group_name)).await?;
                let path = row.as_ref().map_or_else(
                    || opt_str(input, "Path").unwrap_or("/").to_string(),
                    |r| r.value.path.clone(),
                );
                let group_name = row.map_or(group_name, |r| r.value.name);
                (entity_arn(account, "group", &path, &group_name), Vec::new())
            }
            Target::Role => {
                let role_name = name("RoleName");
                let row: Option<Row<RoleRecord>> =
                    model::get(self.store.as_ref(), ROLES, model::name_key(account, &role_name)).await?;
                match row {
                    Some(r) => (
                        entity_arn(account, "role", &r.value.path, &r.value.name),
                        tag_pairs(&r.value.tags),
                    ),
                    None => (entity_arn(account, "role", "/", &role_name), Vec::new()),
                }
            }
            Target::NewRole => (
                entity_arn(
                    account,
                    "role",
                    opt_str(input, "Path").unwrap_or("/"),
                    &name("RoleName"),
                ),
                Vec::new(),
            ),
            Target::PolicyArn => {
                let arn = name("PolicyArn");
                let tags = match crate::policies::load_customer_policy(self, account, &arn).await? {
                    Some(row) => tag_pairs(&row.value.tags),
                    None => Vec::new(),
                };
                (arn, tags)
            }
            Target::NewPolicy => (
                entity_arn(
                    account,
                    "policy",
                    opt_str(input, "Path").unwrap_or("/"),
                    &name("PolicyName"),
                ),
                Vec::new(),
            ),
            Target::InstanceProfile => {
                let profile_name = name("InstanceProfileName");
                let row: Option<Row<InstanceProfileRecord>> = model::get(
                    self.store.as_ref(),
                    INSTANCE_PROFILES,
                    model::name_key(account, &profile_name),
                )
                .await?;
                match row {
                    Some(r) => (
                        entity_arn(account, "instance-profile", &r.value.path, &r.value.name),
                        tag_pairs(&r.value.tags),
                    ),
                    None => (entity_arn(account, "instance-profile", "/", &profile_name), Vec::new()),
                }
            }
            Target::NewInstanceProfile => (
                entity_arn(
                    account,
                    "instance-profile",
                    opt_str(input, "Path").unwrap_or("/"),
                    &name("InstanceProfileName"),
                ),
                Vec::new(),
            ),
            Target::Member(member) => match opt_str(input, member) {
                Some(arn) => (arn.to_string(), Vec::new()),
                None => ("*".to_string(), Vec::new()),
            },
            Target::NewOidc => {
                let url = name("Url");
                let host = url.trim_start_matches("https://").trim_start_matches("http://");
                (format!("arn:aws:iam::{account}:oidc-provider/{host}"), Vec::new())
            }
            Target::NewSaml => (
                format!("arn:aws:iam::{account}:saml-provider/{}", name("Name")),
                Vec::new(),
            ),
            Target::NewMfa => (
                entity_arn(
                    account,
                    "mfa",
                    opt_str(input, "Path").unwrap_or("/"),
                    &name("VirtualMFADeviceName"),
                ),
                Vec::new(),
            ),
            Target::NewServiceLinkedRole => {
                let service = name("AWSServiceName");
                let role_name = crate::service_linked::service_role_stem(&service)
                    .map_or_else(|| "*".to_string(), |(stem, _)| format!("AWSServiceRoleFor{stem}*"));
                (
                    entity_arn(account, "role", &format!("/aws-service-role/{service}/"), &role_name),
                    Vec::new(),
                )
            }
            Target::ServerCertificate => {
                let cert_name = name("ServerCertificateName");
                let row: Option<Row<model::ServerCertificateRecord>> = model::get(
                    self.store.as_ref(),
                    model::SERVER_CERTIFICATES,
                    model::name_key(account, &cert_name),
                )
                .await?;
                match row {
                    Some(r) => (
                        entity_arn(account, "server-certificate", &r.value.path, &r.value.name),
                        tag_pairs(&r.value.tags),
                    ),
                    None => (entity_arn(account, "server-certificate", "/", &cert_name), Vec::new()),
                }
            }
            Target::NewServerCertificate => (
                entity_arn(
                    account,
                    "server-certificate",
                    opt_str(input, "Path").unwrap_or("/"),
                    &name("ServerCertificateName"),
                ),
                Vec::new(),
            ),
            Target::KeyOwner => {
                let id = name("AccessKeyId");
                match crate::keys::load_key(self, &id).await? {
                    Some(row) => match &row.value.owner {
                        citadel_core::identity::KeyOwner::User { user_id, .. } => {
                            match crate::users::load_user_by_id(self, account, user_id).await? {
                                Some(user) => self.user_resource(account, &user.value.name).await?,
                                None => ("*".to_string(), Vec::new()),
                            }
                        }
                        citadel_core::identity::KeyOwner::Root => (format!("arn:aws:iam::{account}:root"), Vec::new()),
                    },
                    None => ("*".to_string(), Vec::new()),
                }
            }
            Target::Listing(kind) => (
                format!(
                    "arn:aws:iam::{account}:{kind}{}",
                    opt_str(input, "PathPrefix").unwrap_or("/")
                ),
                Vec::new(),
            ),
            Target::Star => ("*".to_string(), Vec::new()),
        };
        let mut context: Vec<(String, Vec<String>)> = Vec::new();
        if let Some(tags) = input.get("Tags").and_then(Value::as_array) {
            let mut keys = Vec::new();
            for tag in tags {
                let key = opt_str(tag, "Key").unwrap_or("").to_string();
                context.push((
                    format!("aws:RequestTag/{key}"),
                    vec![opt_str(tag, "Value").unwrap_or("").to_string()],
                ));
                keys.push(key);
            }
            context.push(("aws:TagKeys".to_string(), keys));
        }
        if call.op.name.starts_with("Untag") {
            context.push(("aws:TagKeys".to_string(), str_list(input, "TagKeys")));
        }
        if let Some(service) = opt_str(input, "AWSServiceName") {
            context.push(("iam:AWSServiceName".to_string(), vec![service.to_string()]));
        }
        if let Some(boundary) = opt_str(input, "PermissionsBoundary") {
            context.push(("iam:PermissionsBoundary".to_string(), vec![boundary.to_string()]));
        }
        if (call.op.name.starts_with("Attach") || call.op.name.starts_with("Detach"))
            && let Some(arn) = opt_str(input, "PolicyArn")
        {
            context.push(("iam:PolicyARN".to_string(), vec![arn.to_string()]));
        }
        let mut check = Check::new(call.op.action, resource);
        check.resource_tags = resource_tags;
        Ok(Authorization {
            checks: vec![check],
            context,
            always_allowed: false,
        })
    }
}
