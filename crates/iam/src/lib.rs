//! citadel-iam: the IAM service, for real.
//!
//! Users, groups, roles, customer and AWS managed policies with versions, inline policies, access
//! keys, login profiles and the password policy, virtual MFA with TOTP, instance profiles, OIDC and
//! SAML providers, service-linked roles, server certificates, account settings, credential reports,
//! service last-accessed reports and the policy simulator, spoken over the query protocol through
//! core's pipeline.
//!
//! IAM is also where every other service's authorization comes from: [`Iam`] implements core's
//! [`PrincipalDirectory`](citadel_core::identity::PrincipalDirectory) (access key owner -> principal)
//! and [`PolicySource`](citadel_core::authz::PolicySource) (principal -> compiled policies);
//! [`install`] wires both into the pipeline's resolver and authorizer.
//!
//! Handlers never commit: each returns an [`Effect`] whose batch carries preconditions on every row it
//! read and rewrites, and the pipeline commits it with the CloudTrail record, re-running the handler
//! when a concurrent call changed one of those rows.

mod account;
mod authz;
mod certs;
mod directory;
mod keys;
mod last_accessed;
mod login;
pub mod managed;
mod mfa;
pub mod model;
mod policies;
mod roles;
mod service_linked;
mod simulate;
pub mod spec;
mod tags;
mod users;
mod util;

#[cfg(test)]
mod tests;

pub use mfa::{base32_encode, totp};
pub use spec::SPEC;

use citadel_core::authz::Authorizer;
use citadel_core::identity::CredentialResolver;
use citadel_core::{Authorization, Authorized, Call, Effect, IdGen, Service, ServiceSpec};
use citadel_store::{MasterKey, Store};
use citadel_wire::AwsError;
use model::{GroupRecord, RoleRecord, UserRecord};
use parking_lot::RwLock;
use std::sync::Arc;

/// The IAM service.
pub struct Iam {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    ids: IdGen,
    cache: RwLock<directory::PolicyCache>,
}

impl Iam {
    /// IAM over `store`; secrets (access keys, MFA seeds) are sealed with `master`.
    pub fn new(store: Arc<dyn Store>, master: Arc<MasterKey>, ids: IdGen) -> Self {
        Self {
            store,
            master,
            ids,
            cache: RwLock::new(directory::PolicyCache::default()),
        }
    }
}

/// Makes IAM the source of user principals and of principals' policies for the whole pipeline.
pub fn install(iam: &Arc<Iam>, resolver: &CredentialResolver, authorizer: &Authorizer) {
    resolver.set_directory(iam.clone());
    authorizer.set_source(iam.clone());
}

#[async_trait::async_trait]
impl Service for Iam {
    fn spec(&self) -> &'static ServiceSpec {
        &SPEC
    }

    async fn authorize(&self, call: &Call) -> Result<Authorization, AwsError> {
        self.authorization(call).await
    }

    async fn execute(&self, call: &Call, _proof: &Authorized) -> Result<Effect, AwsError> {
        self.dispatch(call).await
    }
}

impl Iam {
    async fn dispatch(&self, call: &Call) -> Result<Effect, AwsError> {
        self.guard_service_linked(call).await?;
        match call.op.name {
            "CreateUser" => self.create_user(call).await,
            "GetUser" => self.get_user(call).await,
            "ListUsers" => self.list_users(call).await,
            "UpdateUser" => self.update_user(call).await,
            "DeleteUser" => self.delete_user(call).await,
            "PutUserPermissionsBoundary" => self.put_user_permissions_boundary(call).await,
            "DeleteUserPermissionsBoundary" => self.delete_user_permissions_boundary(call).await,
            "CreateGroup" => self.create_group(call).await,
            "GetGroup" => self.get_group(call).await,
            "ListGroups" => self.list_groups(call).await,
            "UpdateGroup" => self.update_group(call).await,
            "DeleteGroup" => self.delete_group(call).await,
            "AddUserToGroup" => self.add_user_to_group(call).await,
            "RemoveUserFromGroup" => self.remove_user_from_group(call).await,
            "ListGroupsForUser" => self.list_groups_for_user(call).await,
            "CreateRole" => self.create_role(call).await,
            "GetRole" => self.get_role(call).await,
            "ListRoles" => self.list_roles(call).await,
            "UpdateRole" | "UpdateRoleDescription" => self.update_role(call).await,
            "UpdateAssumeRolePolicy" => self.update_assume_role_policy(call).await,
            "DeleteRole" => self.delete_role(call).await,
            "PutRolePermissionsBoundary" => self.put_role_permissions_boundary(call).await,
            "DeleteRolePermissionsBoundary" => self.delete_role_permissions_boundary(call).await,
            "CreatePolicy" => self.create_policy(call).await,
            "GetPolicy" => self.get_policy(call).await,
            "ListPolicies" => self.list_policies(call).await,
            "DeletePolicy" => self.delete_policy(call).await,
            "CreatePolicyVersion" => self.create_policy_version(call).await,
            "GetPolicyVersion" => self.get_policy_version(call).await,
            "ListPolicyVersions" => self.list_policy_versions(call).await,
            "DeletePolicyVersion" => self.delete_policy_version(call).await,
            "SetDefaultPolicyVersion" => self.set_default_policy_version(call).await,
            "ListEntitiesForPolicy" => self.list_entities_for_policy(call).await,
            "PutUserPolicy" => self.put_inline::<UserRecord>(call).await,
            "GetUserPolicy" => self.get_inline::<UserRecord>(call).await,
            "ListUserPolicies" => self.list_inline::<UserRecord>(call).await,
            "DeleteUserPolicy" => self.delete_inline::<UserRecord>(call).await,
            "PutGroupPolicy" => self.put_inline::<GroupRecord>(call).await,
            "GetGroupPolicy" => self.get_inline::<GroupRecord>(call).await,
            "ListGroupPolicies" => self.list_inline::<GroupRecord>(call).await,
            "DeleteGroupPolicy" => self.delete_inline::<GroupRecord>(call).await,
            "PutRolePolicy" => self.put_inline::<RoleRecord>(call).await,
            "GetRolePolicy" => self.get_inline::<RoleRecord>(call).await,
            "ListRolePolicies" => self.list_inline::<RoleRecord>(call).await,
            "DeleteRolePolicy" => self.delete_inline::<RoleRecord>(call).await,
            "AttachUserPolicy" => self.attach::<UserRecord>(call).await,
            "DetachUserPolicy" => self.detach::<UserRecord>(call).await,
            "ListAttachedUserPolicies" => self.list_attached::<UserRecord>(call).await,
            "AttachGroupPolicy" => self.attach::<GroupRecord>(call).await,
            "DetachGroupPolicy" => self.detach::<GroupRecord>(call).await,
            "ListAttachedGroupPolicies" => self.list_attached::<GroupRecord>(call).await,
            "AttachRolePolicy" => self.attach::<RoleRecord>(call).await,
            "DetachRolePolicy" => self.detach::<RoleRecord>(call).await,
            "ListAttachedRolePolicies" => self.list_attached::<RoleRecord>(call).await,
            "CreateAccessKey" => self.create_access_key(call).await,
            "ListAccessKeys" => self.list_access_keys(call).await,
            "UpdateAccessKey" => self.update_access_key(call).await,
            "DeleteAccessKey" => self.delete_access_key(call).await,
            "GetAccessKeyLastUsed" => self.get_access_key_last_used(call).await,
            "CreateLoginProfile" => self.create_login_profile(call).await,
            "GetLoginProfile" => self.get_login_profile(call).await,
            "UpdateLoginProfile" => self.update_login_profile(call).await,
            "DeleteLoginProfile" => self.delete_login_profile(call).await,
            "ChangePassword" => self.change_password(call).await,
            "GetAccountPasswordPolicy" => self.get_password_policy(call).await,
            "UpdateAccountPasswordPolicy" => self.update_password_policy(call).await,
            "DeleteAccountPasswordPolicy" => self.delete_password_policy(call).await,
            "CreateVirtualMFADevice" => self.create_virtual_mfa_device(call).await,
            "EnableMFADevice" => self.enable_mfa_device(call).await,
            "ResyncMFADevice" => self.resync_mfa_device(call).await,
            "DeactivateMFADevice" => self.deactivate_mfa_device(call).await,
            "DeleteVirtualMFADevice" => self.delete_virtual_mfa_device(call).await,
            "ListMFADevices" => self.list_mfa_devices(call).await,
            "ListVirtualMFADevices" => self.list_virtual_mfa_devices(call).await,
            "CreateInstanceProfile" => self.create_instance_profile(call).await,
            "GetInstanceProfile" => self.get_instance_profile(call).await,
            "DeleteInstanceProfile" => self.delete_instance_profile(call).await,
            "ListInstanceProfiles" => self.list_instance_profiles(call).await,
            "ListInstanceProfilesForRole" => self.list_instance_profiles_for_role(call).await,
            "AddRoleToInstanceProfile" => self.add_role_to_instance_profile(call).await,
            "RemoveRoleFromInstanceProfile" => self.remove_role_from_instance_profile(call).await,
            "CreateOpenIDConnectProvider" => self.create_oidc_provider(call).await,
            "GetOpenIDConnectProvider" => self.get_oidc_provider(call).await,
            "DeleteOpenIDConnectProvider" => self.delete_oidc_provider(call).await,
            "ListOpenIDConnectProviders" => self.list_oidc_providers(call).await,
            "AddClientIDToOpenIDConnectProvider"
            | "RemoveClientIDFromOpenIDConnectProvider"
            | "UpdateOpenIDConnectProviderThumbprint" => self.update_oidc_provider(call).await,
            "CreateSAMLProvider" => self.create_saml_provider(call).await,
            "GetSAMLProvider" => self.get_saml_provider(call).await,
            "UpdateSAMLProvider" => self.update_saml_provider(call).await,
            "DeleteSAMLProvider" => self.delete_saml_provider(call).await,
            "ListSAMLProviders" => self.list_saml_providers(call).await,
            "CreateAccountAlias" => self.create_account_alias(call).await,
            "DeleteAccountAlias" => self.delete_account_alias(call).await,
            "ListAccountAliases" => self.list_account_aliases(call).await,
            "GetAccountSummary" => self.get_account_summary(call).await,
            "GetAccountAuthorizationDetails" => self.get_account_authorization_details(call).await,
            "GenerateCredentialReport" => self.generate_credential_report(call).await,
            "GetCredentialReport" => self.get_credential_report(call).await,
            "CreateServiceLinkedRole" => self.create_service_linked_role(call).await,
            "DeleteServiceLinkedRole" => self.delete_service_linked_role(call).await,
            "GetServiceLinkedRoleDeletionStatus" => self.get_service_linked_role_deletion_status(call).await,
            "UploadServerCertificate" => self.upload_server_certificate(call).await,
            "GetServerCertificate" => self.get_server_certificate(call).await,
            "ListServerCertificates" => self.list_server_certificates(call).await,
            "UpdateServerCertificate" => self.update_server_certificate(call).await,
            "DeleteServerCertificate" => self.delete_server_certificate(call).await,
            "GenerateServiceLastAccessedDetails" => self.generate_service_last_accessed_details(call).await,
            "GetServiceLastAccessedDetails" => self.get_service_last_accessed_details(call).await,
            "GetServiceLastAccessedDetailsWithEntities" => {
                self.get_service_last_accessed_details_with_entities(call).await
            }
            "SimulatePrincipalPolicy" | "SimulateCustomPolicy" => self.simulate(call).await,
            "GetContextKeysForCustomPolicy" | "GetContextKeysForPrincipalPolicy" => self.context_keys(call).await,
            op if op.starts_with("Tag") || op.starts_with("Untag") || op.ends_with("Tags") => self.tags(call).await,
            op => Err(AwsError::new(
                "InvalidAction",
                400,
                format!("Citadel does not implement the operation {op} yet."),
            )),
        }
    }
}
