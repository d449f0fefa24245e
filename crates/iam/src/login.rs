//! Console passwords: login profiles, ChangePassword and the account password policy.
//!
//! Passwords are never stored: only a PBKDF2-HMAC-SHA256 hash with a random salt, so that a copy of
//! the database does not reveal them. The account password policy (or AWS's default policy when none
//! is set) is enforced on every password that is set.

use crate::Iam;
use crate::model::{self, ACCOUNT, LoginProfile};
use crate::users::{account, load_user, now, target_user_name};
use crate::util::*;
use citadel_core::{Call, Effect, PrincipalKind};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::num::NonZeroU32;

/// PBKDF2 iterations for password hashes.
const ITERATIONS: u32 = 100_000;
/// The symbols AWS counts as symbols in passwords.
const SYMBOLS: &str = "!@#$%^&*()_+-=[]{}|'";

/// The account password policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordPolicy {
    /// Minimum length (6..=128).
    pub minimum_length: i64,
    /// At least one symbol.
    pub require_symbols: bool,
    /// At least one digit.
    pub require_numbers: bool,
    /// At least one upper-case letter.
    pub require_uppercase: bool,
    /// At least one lower-case letter.
    pub require_lowercase: bool,
    /// Users may change their own password.
    pub allow_users_to_change: bool,
    /// Days before a password expires.
    pub max_age: Option<i64>,
    /// How many previous passwords cannot be reused.
    pub reuse_prevention: Option<i64>,
    /// Expired passwords need an administrator reset.
    pub hard_expiry: bool,
}

fn policy_key(account: &str) -> Vec<u8> {
    model::exact_key(account, "password_policy")
}

/// Hashes a password with a fresh salt: `pbkdf2-sha256$ITERATIONS$SALT$HASH` (base64).
pub fn hash_password(password: &str, salt: &[u8; 16]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut out = [0u8; 32];
    let iterations = NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN);
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password.as_bytes(),
        &mut out,
    );
    format!("pbkdf2-sha256${ITERATIONS}${}${}", b64.encode(salt), b64.encode(out))
}

/// Checks a password against a stored hash, in constant time.
pub fn verify_password(password: &str, stored: &str) -> bool {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(iterations), Some(salt), Some(hash)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Some(iterations), Ok(salt), Ok(hash)) = (
        iterations.parse::<u32>().ok().and_then(NonZeroU32::new),
        b64.decode(salt),
        b64.decode(hash),
    ) else {
        return false;
    };
    aws_lc_rs::pbkdf2::verify(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok()
}

/// Whether `password` satisfies the policy (AWS's default policy when `None`).
pub fn password_conforms(password: &str, policy: Option<&PasswordPolicy>, account: &str) -> bool {
    let length = password.chars().count();
    let upper = password.chars().any(|c| c.is_ascii_uppercase());
    let lower = password.chars().any(|c| c.is_ascii_lowercase());
    let digit = password.chars().any(|c| c.is_ascii_digit());
    let symbol = password.chars().any(|c| SYMBOLS.contains(c));
    if length > 128 {
        return false;
    }
    match policy {
        Some(p) => {
            length as i64 >= p.minimum_length
                && (!p.require_uppercase || upper)
                && (!p.require_lowercase || lower)
                && (!p.require_numbers || digit)
                && (!p.require_symbols || symbol)
        }
        // AWS's default: at least 8 characters, three of the four character types, not the account name.
        None => length >= 8 && [upper, lower, digit, symbol].iter().filter(|b| **b).count() >= 3 && password != account,
    }
}

fn violation() -> AwsError {
    AwsError::new(
        "PasswordPolicyViolation",
        400,
        "Password does not conform to the account password policy.",
    )
}

fn profile_json(user: &str, profile: &LoginProfile) -> Value {
    json!({"UserName": user, "CreateDate": profile.created, "PasswordResetRequired": profile.reset_required})
}

impl Iam {
    async fn password_policy(&self, account: &str) -> Result<Option<model::Row<PasswordPolicy>>, AwsError> {
        model::get(self.store.as_ref(), ACCOUNT, policy_key(account)).await
    }

    /// Checks a new password against the policy and the reuse rule; returns its hash.
    async fn new_password_hash(
        &self,
        account: &str,
        password: &str,
        previous: Option<&LoginProfile>,
        batch: &mut WriteBatch,
    ) -> Result<String, AwsError> {
        let policy = self.password_policy(account).await?;
        match &policy {
            Some(row) => model::keep(batch, row),
            None => {
                batch.expect(ACCOUNT, &policy_key(account), None);
            }
        }
        let policy = policy.map(|r| r.value);
        if !password_conforms(password, policy.as_ref(), account) {
            return Err(violation());
        }
        if let (Some(reuse), Some(previous)) = (policy.as_ref().and_then(|p| p.reuse_prevention), previous) {
            let recent = std::iter::once(&previous.password_hash).chain(previous.previous_hashes.iter());
            if recent
                .take(usize::try_from(reuse).unwrap_or(0))
                .any(|h| verify_password(password, h))
            {
                return Err(violation());
            }
        }
        Ok(hash_password(password, &self.ids.bytes::<16>()))
    }

    pub(crate) async fn create_login_profile(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_user(self, account, target_user_name(call)?).await?;
        if row.value.login_profile.is_some() {
            return Err(already_exists(format!(
                "Login Profile for user {} already exists.",
                row.value.name
            )));
        }
        let password = req_str(&call.input, "Password")?;
        let mut batch = WriteBatch::new();
        let hash = self.new_password_hash(account, password, None, &mut batch).await?;
        let created = now(call);
        let profile = LoginProfile {
            password_hash: hash,
            created,
            reset_required: opt_bool(&call.input, "PasswordResetRequired").unwrap_or(false),
            changed: created,
            previous_hashes: Vec::new(),
        };
        let mut user = row.value.clone();
        user.login_profile = Some(profile.clone());
        model::replace(&mut batch, &row, &user);
        Ok(Effect::write(
            json!({"LoginProfile": profile_json(&user.name, &profile)}),
            batch,
        ))
    }

    pub(crate) async fn get_login_profile(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = load_user(self, account(call), target_user_name(call)?).await?;
        let profile = row
            .value
            .login_profile
            .as_ref()
            .ok_or_else(|| no_such_entity(format!("Login Profile for User {} cannot be found.", row.value.name)))?;
        Ok(Effect::read(
            json!({"LoginProfile": profile_json(&row.value.name, profile)}),
        ))
    }

    pub(crate) async fn update_login_profile(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_user(self, account, target_user_name(call)?).await?;
        let mut user = row.value.clone();
        let Some(mut profile) = user.login_profile.clone() else {
            return Err(no_such_entity(format!(
                "Login Profile for User {} cannot be found.",
                user.name
            )));
        };
        let mut batch = WriteBatch::new();
        if let Some(password) = opt_str(&call.input, "Password") {
            let hash = self
                .new_password_hash(account, password, Some(&profile), &mut batch)
                .await?;
            profile
                .previous_hashes
                .insert(0, std::mem::replace(&mut profile.password_hash, hash));
            profile.previous_hashes.truncate(24);
            profile.changed = now(call);
        }
        if let Some(reset) = opt_bool(&call.input, "PasswordResetRequired") {
            profile.reset_required = reset;
        }
        user.login_profile = Some(profile);
        model::replace(&mut batch, &row, &user);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn delete_login_profile(&self, call: &Call) -> Result<Effect, AwsError> {
        let row = load_user(self, account(call), target_user_name(call)?).await?;
        let mut user = row.value.clone();
        if user.login_profile.take().is_none() {
            return Err(no_such_entity(format!(
                "Login Profile for User {} cannot be found.",
                user.name
            )));
        }
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &row, &user);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn change_password(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let PrincipalKind::User { name, .. } = &call.ctx.principal.kind else {
            return Err(AwsError::new(
                "InvalidUserType",
                400,
                "Only IAM users can change their own password.",
            ));
        };
        let row = load_user(self, account, name).await?;
        let mut user = row.value.clone();
        let Some(mut profile) = user.login_profile.clone() else {
            return Err(no_such_entity(format!(
                "Login Profile for User {} cannot be found.",
                user.name
            )));
        };
        if !verify_password(req_str(&call.input, "OldPassword")?, &profile.password_hash) {
            return Err(AwsError::new("InvalidUserType", 400, "The old password is incorrect."));
        }
        let mut batch = WriteBatch::new();
        let hash = self
            .new_password_hash(
                account,
                req_str(&call.input, "NewPassword")?,
                Some(&profile),
                &mut batch,
            )
            .await?;
        profile
            .previous_hashes
            .insert(0, std::mem::replace(&mut profile.password_hash, hash));
        profile.previous_hashes.truncate(24);
        profile.changed = now(call);
        profile.reset_required = false;
        user.login_profile = Some(profile);
        model::replace(&mut batch, &row, &user);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn get_password_policy(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let Some(row) = self.password_policy(account).await? else {
            return Err(no_such_entity(format!(
                "The Password Policy with domain name {account} cannot be found."
            )));
        };
        let p = row.value;
        let mut out = Map::new();
        out.insert("MinimumPasswordLength".into(), json!(p.minimum_length));
        out.insert("RequireSymbols".into(), json!(p.require_symbols));
        out.insert("RequireNumbers".into(), json!(p.require_numbers));
        out.insert("RequireUppercaseCharacters".into(), json!(p.require_uppercase));
        out.insert("RequireLowercaseCharacters".into(), json!(p.require_lowercase));
        out.insert("AllowUsersToChangePassword".into(), json!(p.allow_users_to_change));
        out.insert("ExpirePasswords".into(), json!(p.max_age.is_some()));
        if let Some(age) = p.max_age {
            out.insert("MaxPasswordAge".into(), json!(age));
        }
        if let Some(reuse) = p.reuse_prevention {
            out.insert("PasswordReusePrevention".into(), json!(reuse));
        }
        out.insert("HardExpiry".into(), json!(p.hard_expiry));
        Ok(Effect::read(json!({"PasswordPolicy": out})))
    }

    pub(crate) async fn update_password_policy(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let input = &call.input;
        let minimum_length = opt_i64(input, "MinimumPasswordLength").unwrap_or(6);
        if !(6..=128).contains(&minimum_length) {
            return Err(validation(format!(
                "1 validation error detected: Value '{minimum_length}' at 'minimumPasswordLength' failed to satisfy constraint: Member must have value {}",
                if minimum_length < 6 {
                    "greater than or equal to 6"
                } else {
                    "less than or equal to 128"
                }
            )));
        }
        let policy = PasswordPolicy {
            minimum_length,
            require_symbols: opt_bool(input, "RequireSymbols").unwrap_or(false),
            require_numbers: opt_bool(input, "RequireNumbers").unwrap_or(false),
            require_uppercase: opt_bool(input, "RequireUppercaseCharacters").unwrap_or(false),
            require_lowercase: opt_bool(input, "RequireLowercaseCharacters").unwrap_or(false),
            allow_users_to_change: opt_bool(input, "AllowUsersToChangePassword").unwrap_or(false),
            max_age: opt_i64(input, "MaxPasswordAge").filter(|n| *n > 0),
            reuse_prevention: opt_i64(input, "PasswordReusePrevention").filter(|n| *n > 0),
            hard_expiry: opt_bool(input, "HardExpiry").unwrap_or(false),
        };
        let mut batch = WriteBatch::new();
        match self.password_policy(account).await? {
            Some(row) => model::replace(&mut batch, &row, &policy),
            None => model::insert(&mut batch, ACCOUNT, &policy_key(account), &policy),
        }
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn delete_password_policy(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let Some(row) = self.password_policy(account).await? else {
            return Err(no_such_entity(
                "The account policy with name PasswordPolicy cannot be found.",
            ));
        };
        let mut batch = WriteBatch::new();
        model::remove(&mut batch, &row);
        Ok(Effect::write(json!({}), batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash_password("Secret-123", &[1; 16]);
        let b = hash_password("Secret-123", &[2; 16]);
        assert_ne!(a, b);
        assert!(!a.contains("Secret-123"));
        assert!(verify_password("Secret-123", &a));
        assert!(verify_password("Secret-123", &b));
        assert!(!verify_password("Secret-124", &a));
        assert!(!verify_password("Secret-123", "garbage"));
    }

    #[test]
    fn password_rules() {
        let strict = PasswordPolicy {
            minimum_length: 10,
            require_symbols: true,
            require_numbers: true,
            require_uppercase: true,
            require_lowercase: true,
            allow_users_to_change: true,
            max_age: None,
            reuse_prevention: None,
            hard_expiry: false,
        };
        let cases: &[(&str, Option<&PasswordPolicy>, bool)] = &[
            ("Abcdef1!", None, true),
            ("abcdefgh", None, false),
            ("abcdef12", None, false),
            ("abcDEF12", None, true),
            ("Ab1!", None, false),
            ("Abcdefgh1!", Some(&strict), true),
            ("Abcdefgh1", Some(&strict), false),
            ("abcdefgh1!", Some(&strict), false),
            ("Abcdef1!", Some(&strict), false),
        ];
        for (password, policy, ok) in cases {
            assert_eq!(password_conforms(password, *policy, "123456789012"), *ok, "{password}");
        }
    }
}
