//! Tag*, Untag* and List*Tags for every taggable IAM entity, written once over a small trait.

use crate::Iam;
use crate::model::{
    self, InstanceProfileRecord, MfaRecord, OidcRecord, PolicyRecord, RoleRecord, Row, SamlRecord,
    ServerCertificateRecord, Tag,
};
use crate::model::{INSTANCE_PROFILES, MFA, OIDC, ROLES, SAML, USERS, UserRecord};
use crate::users::account;
use crate::util::*;
use citadel_core::{Call, Effect};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// A record with tags.
pub(crate) trait Tagged: Serialize + DeserializeOwned + Clone {
    /// The tags.
    fn tags_mut(&mut self) -> &mut Vec<Tag>;
}

macro_rules! tagged {
    ($($t:ty),*) => {$(
        impl Tagged for $t {
            fn tags_mut(&mut self) -> &mut Vec<Tag> {
                &mut self.tags
            }
        }
    )*};
}
tagged!(
    UserRecord,
    RoleRecord,
    PolicyRecord,
    InstanceProfileRecord,
    MfaRecord,
    OidcRecord,
    SamlRecord,
    ServerCertificateRecord
);

async fn load<T: Tagged>(iam: &Iam, table: &'static str, key: Vec<u8>, missing: AwsError) -> Result<Row<T>, AwsError> {
    model::get(iam.store.as_ref(), table, key).await?.ok_or(missing)
}

impl Iam {
    pub(crate) async fn tags(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let input = &call.input;
        let op = call.op.name;
        let kind = op
            .trim_start_matches("Untag")
            .trim_start_matches("Tag")
            .trim_start_matches("List");
        let kind = kind.strip_suffix("Tags").unwrap_or(kind);
        match kind {
            "User" => {
                let name = req_str(input, "UserName")?;
                let row: Row<UserRecord> =
                    load(self, USERS, model::name_key(account, name), not_found("user", name)).await?;
                self.tag_op(call, row)
            }
            "Role" => {
                let name = req_str(input, "RoleName")?;
                let row: Row<RoleRecord> =
                    load(self, ROLES, model::name_key(account, name), not_found("role", name)).await?;
                self.tag_op(call, row)
            }
            "Policy" => {
                let arn = req_str(input, "PolicyArn")?;
                let row = crate::policies::load_customer_policy(self, account, arn)
                    .await?
                    .ok_or_else(|| no_such_entity(format!("Policy {arn} was not found.")))?;
                self.tag_op(call, row)
            }
            "InstanceProfile" => {
                let name = req_str(input, "InstanceProfileName")?;
                let row: Row<InstanceProfileRecord> = load(
                    self,
                    INSTANCE_PROFILES,
                    model::name_key(account, name),
                    not_found("instance profile", name),
                )
                .await?;
                self.tag_op(call, row)
            }
            "MFADevice" => {
                let serial = req_str(input, "SerialNumber")?;
                let missing = no_such_entity(format!("VirtualMFADevice with serial number {serial} doesn't exist."));
                let row: Row<MfaRecord> = load(self, MFA, model::exact_key(account, serial), missing).await?;
                self.tag_op(call, row)
            }
            "OpenIDConnectProvider" => {
                let arn = req_str(input, "OpenIDConnectProviderArn")?;
                let missing = no_such_entity(format!("OpenIDConnect Provider not found for arn {arn}"));
                let row: Row<OidcRecord> = load(self, OIDC, model::exact_key(account, arn), missing).await?;
                self.tag_op(call, row)
            }
            "SAMLProvider" => {
                let arn = req_str(input, "SAMLProviderArn")?;
                let missing = no_such_entity(format!("Manifest not found for arn {arn}"));
                let row: Row<SamlRecord> = load(self, SAML, model::exact_key(account, arn), missing).await?;
                self.tag_op(call, row)
            }
            "ServerCertificate" => {
                let name = req_str(input, "ServerCertificateName")?;
                let row = crate::certs::load_certificate(self, account, name).await?;
                self.tag_op(call, row)
            }
            _ => Err(AwsError::new(
                "InvalidAction",
                400,
                format!("Citadel does not implement the operation {op} yet."),
            )),
        }
    }

    fn tag_op<T: Tagged>(&self, call: &Call, row: Row<T>) -> Result<Effect, AwsError> {
        let op = call.op.name;
        let mut value = row.value.clone();
        if op.starts_with("List") {
            let tags = value.tags_mut().clone();
            let items: Vec<(String, Value)> = tags
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("{i:04}"), json!({"Key": t.key, "Value": t.value})))
                .collect();
            let (page, next) = paginate(items, &call.input);
            let mut out = Map::new();
            out.insert("Tags".into(), Value::Array(page));
            return Ok(Effect::read(page_output(out, next)));
        }
        if op.starts_with("Untag") {
            let keys = str_list(&call.input, "TagKeys");
            value
                .tags_mut()
                .retain(|t| !keys.iter().any(|k| k.eq_ignore_ascii_case(&t.key)));
        } else {
            let new = tags_input(&call.input, "Tags")?;
            model::merge_tags(value.tags_mut(), new);
            check_tag_count(value.tags_mut())?;
        }
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &row, &value);
        Ok(Effect::write(json!({}), batch))
    }
}
