//! Temporary access key ids that carry their account.
//!
//! AWS encodes the owning account inside every access key id, which is how `GetAccessKeyInfo`
//! answers without a lookup. Citadel does the same for the `ASIA...` ids it issues: the sixteen
//! base32 characters after the prefix hold 80 bits, the first 40 the account id (masked, so ids
//! of one account do not visibly share a prefix pattern with the account number) and the last 40
//! random bits.

/// Upper-case RFC 4648 base32, the alphabet of AWS key ids.
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Mask applied to the account number (40 bits).
const ACCOUNT_MASK: u64 = 0x5A_3C96_E1F0;
/// 40 bits.
const LOW40: u64 = (1 << 40) - 1;

/// A temporary access key id (`ASIA` + 16) for `account` with 40 random bits from `random`.
/// Returns `None` when `account` is not a 12-digit number.
pub fn temporary_key_id(account: &str, random: [u8; 5]) -> Option<String> {
    let number = parse_account(account)?;
    let mut low = 0u64;
    for byte in random {
        low = (low << 8) | u64::from(byte);
    }
    let value = (u128::from((number ^ ACCOUNT_MASK) & LOW40) << 40) | u128::from(low & LOW40);
    let mut id = String::from("ASIA");
    for i in (0..16).rev() {
        let index = ((value >> (i * 5)) & 31) as usize;
        id.push(char::from(*ALPHABET.get(index)?));
    }
    Some(id)
}

/// The account encoded in a temporary key id made by [`temporary_key_id`].
pub fn account_of_temporary_key(id: &str) -> Option<String> {
    let body = id.strip_prefix("ASIA")?;
    if body.len() != 16 {
        return None;
    }
    let mut value = 0u128;
    for c in body.bytes() {
        let index = ALPHABET.iter().position(|a| *a == c)?;
        value = (value << 5) | index as u128;
    }
    let number = (u64::try_from(value >> 40).ok()? & LOW40) ^ ACCOUNT_MASK;
    (number < 1_000_000_000_000).then(|| format!("{number:012}"))
}

fn parse_account(account: &str) -> Option<u64> {
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    account.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_round_trip_their_account() {
        for (account, random) in [
            ("123456789012", [0u8, 0, 0, 0, 0]),
            ("000000000000", [255u8; 5]),
            ("999999999999", [1, 2, 3, 4, 5]),
        ] {
            let id = temporary_key_id(account, random).unwrap();
            assert_eq!(id.len(), 20);
            assert!(id.starts_with("ASIA"));
            assert!(id.bytes().all(|b| ALPHABET.contains(&b)));
            assert_eq!(account_of_temporary_key(&id).as_deref(), Some(account));
        }
        assert_ne!(
            temporary_key_id("123456789012", [1; 5]),
            temporary_key_id("123456789012", [2; 5])
        );
    }

    #[test]
    fn malformed_ids_and_accounts_are_refused() {
        assert_eq!(temporary_key_id("12345", [0; 5]), None);
        assert_eq!(temporary_key_id("12345678901a", [0; 5]), None);
        assert_eq!(account_of_temporary_key("AKIAAAAAAAAAAAAAAAAA"), None);
        assert_eq!(account_of_temporary_key("ASIA1"), None);
        assert_eq!(account_of_temporary_key("ASIAaaaaaaaaaaaaaaaa"), None);
    }
}
