//! Encoded authorization messages (`DecodeAuthorizationMessage`).
//!
//! When a service wants to tell a caller why a request was denied without revealing the details to
//! everyone who sees the error, it returns an encoded message; only principals allowed
//! `sts:DecodeAuthorizationMessage` in the same account can read it. Citadel's encoding is the JSON
//! document sealed with AES-GCM under the `sts-authorization-message` subkey of the master key, bound
//! to the account, in URL-safe base64.

use base64::Engine;
use citadel_store::MasterKey;
use citadel_wire::AwsError;

const KEY_LABEL: &str = "sts-authorization-message";
const AAD_PREFIX: &[u8] = b"citadel-sts-authz-v1\0";

/// The sealing key for authorization messages.
pub fn message_key(master: &MasterKey) -> MasterKey {
    MasterKey::from_bytes(*master.derive(KEY_LABEL))
}

fn aad(account: &str) -> Vec<u8> {
    let mut aad = AAD_PREFIX.to_vec();
    aad.extend_from_slice(account.as_bytes());
    aad
}

/// Encodes `decoded` (the JSON AWS returns as `DecodedMessage`) for callers in `account`.
pub fn encode_authorization_message(master: &MasterKey, account: &str, decoded: &serde_json::Value) -> String {
    let key = message_key(master);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.seal(decoded.to_string().as_bytes(), &aad(account)))
}

/// Decodes a message for a caller in `account`.
///
/// # Errors
/// `InvalidAuthorizationMessageException` when the message is garbled or belongs to another account.
pub fn decode(key: &MasterKey, account: &str, encoded: &str) -> Result<String, AwsError> {
    let invalid = || {
        AwsError::new(
            "InvalidAuthorizationMessageException",
            400,
            "The encoded authorization message is invalid.",
        )
    };
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim().trim_end_matches('='))
        .map_err(|_| invalid())?;
    let plain = key.unseal(&sealed, &aad(account)).map_err(|_| invalid())?;
    String::from_utf8(plain.to_vec()).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_only_in_their_account() {
        let master = MasterKey::from_bytes([3; 32]);
        let doc = serde_json::json!({"allowed": false, "explicitDeny": true});
        let encoded = encode_authorization_message(&master, "123456789012", &doc);
        let key = message_key(&master);
        let decoded = decode(&key, "123456789012", &encoded).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&decoded).unwrap(), doc);
        for (account, text) in [
            ("210987654321", encoded.clone()),
            ("123456789012", format!("{encoded}x")),
            ("123456789012", "not base64!".to_string()),
        ] {
            assert_eq!(
                decode(&key, account, &text).unwrap_err().code,
                "InvalidAuthorizationMessageException"
            );
        }
        let other = message_key(&MasterKey::from_bytes([4; 32]));
        assert!(decode(&other, "123456789012", &encoded).is_err());
    }
}
