//! Service-linked roles: roles that an AWS service owns on the account's behalf.
//!
//! A service-linked role is an ordinary [`RoleRecord`] with `service_linked` set: its path is
//! `/aws-service-role/<service>/`, its name is the service's `AWSServiceRoleFor<Name>` (plus
//! `_<suffix>` when the caller gives one), and its trust policy lets only that service assume it.
//! IAM refuses every direct change to its permissions, its trust policy and its existence
//! ([`Iam::guard_service_linked`]); it goes away through DeleteServiceLinkedRole.
//!
//! AWS deletes such a role asynchronously, after asking the service whether resources still use
//! it. Citadel has no such resources, so the deletion happens in the same batch that records the
//! deletion task, and GetServiceLinkedRoleDeletionStatus reads the task's final state.

use crate::Iam;
use crate::model::{self, JOBS, JobRecord, ROLES, RoleRecord};
use crate::roles::{load_role, remove_role, role_created, role_resource};
use crate::users::{account, now};
use crate::util::*;
use citadel_core::{Call, Effect};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::{Value, json};

/// The job kind of a service-linked role deletion task.
const DELETION_KIND: &str = "service-linked-role-deletion";

/// Services whose role name is not simply their first label capitalised, and whether they take a
/// custom suffix (services that keep one role per account do not).
const KNOWN_SERVICES: &[(&str, &str, bool)] = &[
    ("autoscaling.amazonaws.com", "AutoScaling", true),
    ("elasticbeanstalk.amazonaws.com", "ElasticBeanstalk", true),
    ("elasticloadbalancing.amazonaws.com", "ElasticLoadBalancing", false),
    ("ecs.amazonaws.com", "ECS", false),
    ("eks.amazonaws.com", "AmazonEKS", false),
    ("rds.amazonaws.com", "RDS", false),
    ("spot.amazonaws.com", "EC2Spot", false),
    ("support.amazonaws.com", "Support", false),
    ("trustedadvisor.amazonaws.com", "TrustedAdvisor", false),
    ("organizations.amazonaws.com", "Organizations", false),
    ("guardduty.amazonaws.com", "AmazonGuardDuty", false),
    ("config.amazonaws.com", "Config", false),
    ("cloudtrail.amazonaws.com", "CloudTrail", false),
    ("ssm.amazonaws.com", "AmazonSSM", false),
    ("lex.amazonaws.com", "LexBots", true),
];

/// The role name stem of a service (`AutoScaling`) and whether it takes a custom suffix.
pub(crate) fn service_role_stem(service: &str) -> Option<(String, bool)> {
    if let Some((_, stem, suffix)) = KNOWN_SERVICES.iter().find(|(name, _, _)| *name == service) {
        return Some(((*stem).to_string(), *suffix));
    }
    let label = service.strip_suffix(".amazonaws.com")?;
    if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        return None;
    }
    // Unknown services: each dot- or dash-separated word capitalised (`foo-bar.baz` -> `FooBarBaz`).
    let stem: String = label
        .split(['.', '-'])
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect();
    Some((stem, true))
}

/// The trust policy AWS gives a service-linked role.
pub(crate) fn trust_policy(service: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": [service]}, "Action": ["sts:AssumeRole"]}],
    })
    .to_string()
}

/// The error IAM gives for a direct change to a service-linked role.
pub(crate) fn unmodifiable(role_name: &str) -> AwsError {
    AwsError::new(
        "UnmodifiableEntity",
        400,
        format!(
            "Cannot perform the operation on the protected role '{role_name}' - this role is only modifiable by AWS"
        ),
    )
}

/// The operations that change a role's permissions, trust or existence, which a service-linked role
/// refuses.
const PROTECTED_OPERATIONS: &[&str] = &[
    "DeleteRole",
    "UpdateAssumeRolePolicy",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "AddRoleToInstanceProfile",
];

impl Iam {
    /// Refuses a protected operation on a service-linked role with `UnmodifiableEntity`.
    pub(crate) async fn guard_service_linked(&self, call: &Call) -> Result<(), AwsError> {
        if !PROTECTED_OPERATIONS.contains(&call.op.name) {
            return Ok(());
        }
        let Some(name) = opt_str(&call.input, "RoleName") else {
            return Ok(());
        };
        let row: Option<model::Row<RoleRecord>> =
            model::get(self.store.as_ref(), ROLES, model::name_key(account(call), name)).await?;
        match row {
            Some(row) if row.value.service_linked.is_some() => Err(unmodifiable(&row.value.name)),
            _ => Ok(()),
        }
    }

    pub(crate) async fn create_service_linked_role(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let service = req_str(&call.input, "AWSServiceName")?;
        let (stem, takes_suffix) =
            service_role_stem(service).ok_or_else(|| invalid_input(format!("Unrecognized service name: {service}")))?;
        let mut name = format!("AWSServiceRoleFor{stem}");
        if let Some(suffix) = opt_str(&call.input, "CustomSuffix") {
            if !takes_suffix {
                return Err(invalid_input(format!("Custom suffix is not allowed for {service}")));
            }
            name = format!("{name}_{suffix}");
        }
        check_name(&name, "roleName", 64)?;
        if self.role_exists(account, &name).await? {
            return Err(invalid_input(format!(
                "Service role name {name} has been taken in this account, please try a different suffix."
            )));
        }
        let role = RoleRecord {
            service_linked: Some(service.to_string()),
            ..self.new_role(
                call,
                &name,
                format!("/aws-service-role/{service}/"),
                trust_policy(service),
                3600,
            )
        };
        Ok(role_created(call, account, &role, WriteBatch::new()))
    }

    pub(crate) async fn delete_service_linked_role(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_role(self, account, req_str(&call.input, "RoleName")?).await?;
        let role = &row.value;
        let Some(service) = &role.service_linked else {
            return Err(invalid_input(format!(
                "Role {} is not a service-linked role. Use DeleteRole to delete it.",
                role.name
            )));
        };
        let task_id = format!("task/aws-service-role/{service}/{}/{}", role.name, self.ids.uuid());
        let mut batch = WriteBatch::new();
        // The role's instance profiles still name it; AWS refuses the deletion in that case, and the
        // task reports why.
        let (status, reason) = if role.instance_profiles.is_empty() {
            remove_role(&mut batch, account, &row);
            ("SUCCEEDED", Value::Null)
        } else {
            model::keep(&mut batch, &row);
            (
                "FAILED",
                json!({"Reason": "The role is still in an instance profile; remove it from the instance profile first."}),
            )
        };
        let task = JobRecord {
            kind: DELETION_KIND.to_string(),
            created: now(call),
            completed: now(call),
            status: status.to_string(),
            result: reason,
        };
        model::insert(&mut batch, JOBS, &model::exact_key(account, &task_id), &task);
        Ok(Effect {
            output: json!({"DeletionTaskId": task_id}),
            batch,
            resources: vec![role_resource(call, account, role)],
        })
    }

    pub(crate) async fn get_service_linked_role_deletion_status(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let task_id = req_str(&call.input, "DeletionTaskId")?;
        let task: JobRecord = model::get(self.store.as_ref(), JOBS, model::exact_key(account, task_id))
            .await?
            .map(|row| row.value)
            .filter(|task: &JobRecord| task.kind == DELETION_KIND)
            .ok_or_else(|| no_such_entity(format!("Deletion task {task_id} cannot be found.")))?;
        let mut output = json!({"Status": task.status});
        if !task.result.is_null() {
            output["Reason"] = task.result;
        }
        Ok(Effect::read(output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_follow_the_service() {
        assert_eq!(
            service_role_stem("autoscaling.amazonaws.com"),
            Some(("AutoScaling".to_string(), true))
        );
        assert_eq!(
            service_role_stem("elasticbeanstalk.amazonaws.com"),
            Some(("ElasticBeanstalk".to_string(), true))
        );
        assert_eq!(
            service_role_stem("my-svc.amazonaws.com"),
            Some(("MySvc".to_string(), true))
        );
        assert_eq!(service_role_stem("example.com"), None);
        assert_eq!(service_role_stem(".amazonaws.com"), None);
    }

    #[test]
    fn trust_policy_names_only_the_service() {
        let policy: Value = serde_json::from_str(&trust_policy("autoscaling.amazonaws.com")).unwrap();
        assert_eq!(
            policy["Statement"][0]["Principal"]["Service"][0],
            "autoscaling.amazonaws.com"
        );
        assert_eq!(policy["Statement"][0]["Action"][0], "sts:AssumeRole");
    }
}
