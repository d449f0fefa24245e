//! Virtual MFA devices: TOTP (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), the Base32 seed and
//! the QR code PNG an authenticator app scans, and the device life cycle.
//!
//! Seeds are sealed under the master key at rest. Enabling and resynchronising need two consecutive
//! codes; the last accepted time step is stored so a code can never be accepted twice.

use crate::Iam;
use crate::model::{self, MFA, MfaRecord, Row};
use crate::users::{account, load_user, load_user_by_id, now, target_user_name};
use crate::util::*;
use citadel_core::{Call, Effect};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::{Map, Value, json};
use std::io::Write;

/// Seconds per TOTP time step.
const STEP: i64 = 30;
/// How many steps back a first code may be (clock drift of the device).
const DRIFT_BACK: u64 = 10;

/// RFC 4648 Base32 without padding, as authenticator apps expect seeds.
pub fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The 6-digit TOTP code of `seed` for time step `counter` (RFC 6238 with HMAC-SHA1).
pub fn totp(seed: &[u8], counter: u64) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, seed);
    let tag = aws_lc_rs::hmac::sign(&key, &counter.to_be_bytes());
    let digest = tag.as_ref();
    let offset = usize::from(digest.last().copied().unwrap_or(0) & 0x0f);
    let word = digest.get(offset..offset + 4).map_or(0, |b| {
        (u32::from(b[0] & 0x7f) << 24) | (u32::from(b[1]) << 16) | (u32::from(b[2]) << 8) | u32::from(b[3])
    });
    format!("{:06}", word % 1_000_000)
}

/// The time step at which `code1` and `code2` are consecutive codes, searched around `now`.
pub fn verify_pair(seed: &[u8], code1: &str, code2: &str, now: i64, after: Option<u64>) -> Option<u64> {
    let current = u64::try_from(now / STEP).ok()?;
    let first = current.saturating_sub(DRIFT_BACK);
    (first..=current + 1)
        .filter(|c| after.is_none_or(|last| *c > last))
        .find(|c| totp(seed, *c) == code1 && totp(seed, c + 1) == code2)
        .map(|c| c + 1)
}

/// A minimal grayscale PNG of a QR code for `text`, 4 pixels per module with a 4-module quiet zone.
pub fn qr_png(text: &str) -> Option<Vec<u8>> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    let (scale, quiet) = (4usize, 4usize);
    let size = (width + 2 * quiet) * scale;
    let mut raw = Vec::with_capacity(size * (size + 1));
    for y in 0..size {
        raw.push(0u8); // filter type None
        let my = (y / scale).checked_sub(quiet).filter(|m| *m < width);
        for x in 0..size {
            let mx = (x / scale).checked_sub(quiet).filter(|m| *m < width);
            let dark = match (mx, my) {
                (Some(mx), Some(my)) => colors.get(my * width + mx) == Some(&qrcode::Color::Dark),
                _ => false,
            };
            raw.push(if dark { 0 } else { 255 });
        }
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&raw).ok()?;
    let compressed = encoder.finish().ok()?;
    let side = u32::try_from(size).ok()?;
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grayscale, deflate, no filter, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", ihdr.as_slice()),
        (b"IDAT", compressed.as_slice()),
        (b"IEND", &[][..]),
    ] {
        png.extend_from_slice(&u32::try_from(data.len()).ok()?.to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        png.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    Some(png)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn missing_device(serial: &str) -> AwsError {
    no_such_entity(format!("VirtualMFADevice with serial number {serial} doesn't exist."))
}

fn invalid_code() -> AwsError {
    AwsError::new(
        "InvalidAuthenticationCode",
        403,
        "Authentication code for device is not valid.",
    )
}

impl Iam {
    async fn load_device(&self, account: &str, serial: &str) -> Result<Row<MfaRecord>, AwsError> {
        model::get(self.store.as_ref(), MFA, model::exact_key(account, serial))
            .await?
            .ok_or_else(|| missing_device(serial))
    }

    fn seed_of(&self, device: &MfaRecord) -> Result<zeroize::Zeroizing<Vec<u8>>, AwsError> {
        use base64::Engine;
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&device.seed_sealed)
            .map_err(model::store_error)?;
        self.master
            .unseal(&sealed, device.serial.as_bytes())
            .map_err(model::store_error)
    }

    pub(crate) async fn create_virtual_mfa_device(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let name = req_str(&call.input, "VirtualMFADeviceName")?;
        check_name(name, "virtualMFADeviceName", 226)?;
        let path = path_input(&call.input, "Path")?;
        let tags = tags_input(&call.input, "Tags")?;
        check_tag_count(&tags)?;
        let serial = entity_arn(account, "mfa", &path, name);
        let key = model::exact_key(account, &serial);
        if model::get::<MfaRecord>(self.store.as_ref(), MFA, key.clone())
            .await?
            .is_some()
        {
            return Err(already_exists(
                "MFADevice entity at the same path and name already exists.",
            ));
        }
        let seed = zeroize::Zeroizing::new(self.ids.bytes::<20>().to_vec());
        let secret = base32_encode(&seed);
        let uri = format!(
            "otpauth://totp/Amazon%20Web%20Services:{name}@{account}?secret={secret}&issuer=Amazon%20Web%20Services"
        );
        let png = qr_png(&uri).ok_or_else(AwsError::internal)?;
        let device = MfaRecord {
            serial: serial.clone(),
            seed_sealed: b64(&self.master.seal(&seed, serial.as_bytes())),
            created: now(call),
            user_id: None,
            enabled: None,
            last_counter: None,
            tags: tags.clone(),
        };
        let mut batch = WriteBatch::new();
        model::insert(&mut batch, MFA, &key, &device);
        let mut out = Map::new();
        out.insert("SerialNumber".into(), json!(serial));
        out.insert("Base32StringSeed".into(), json!(b64(secret.as_bytes())));
        out.insert("QRCodePNG".into(), json!(b64(&png)));
        if !tags.is_empty() {
            out.insert("Tags".into(), model::tags_json(&tags));
        }
        Ok(Effect::write(json!({"VirtualMFADevice": out}), batch))
    }

    pub(crate) async fn enable_mfa_device(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let user_row = load_user(self, account, req_str(&call.input, "UserName")?).await?;
        let serial = req_str(&call.input, "SerialNumber")?;
        let device_row = self.load_device(account, serial).await?;
        if device_row.value.user_id.is_some() {
            return Err(already_exists("MFA Device is already in use."));
        }
        if user_row.value.mfa_devices.len() >= 8 {
            return Err(limit_exceeded("Cannot exceed quota for MFADevicesPerUser: 8"));
        }
        let seed = self.seed_of(&device_row.value)?;
        let code1 = req_str(&call.input, "AuthenticationCode1")?;
        let code2 = req_str(&call.input, "AuthenticationCode2")?;
        let counter =
            verify_pair(&seed, code1, code2, now(call), device_row.value.last_counter).ok_or_else(invalid_code)?;
        let mut device = device_row.value.clone();
        device.user_id = Some(user_row.value.id.clone());
        device.enabled = Some(now(call));
        device.last_counter = Some(counter);
        let mut user = user_row.value.clone();
        user.mfa_devices.push(serial.to_string());
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &device_row, &device);
        model::replace(&mut batch, &user_row, &user);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn resync_mfa_device(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let user_row = load_user(self, account, req_str(&call.input, "UserName")?).await?;
        let serial = req_str(&call.input, "SerialNumber")?;
        let device_row = self.load_device(account, serial).await?;
        if device_row.value.user_id.as_deref() != Some(user_row.value.id.as_str()) {
            return Err(missing_device(serial));
        }
        let seed = self.seed_of(&device_row.value)?;
        let code1 = req_str(&call.input, "AuthenticationCode1")?;
        let code2 = req_str(&call.input, "AuthenticationCode2")?;
        let counter =
            verify_pair(&seed, code1, code2, now(call), device_row.value.last_counter).ok_or_else(invalid_code)?;
        let mut device = device_row.value.clone();
        device.last_counter = Some(counter);
        let mut batch = WriteBatch::new();
        model::replace(&mut batch, &device_row, &device);
        model::keep(&mut batch, &user_row);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn deactivate_mfa_device(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let user_row = load_user(self, account, target_user_name(call)?).await?;
        let serial = req_str(&call.input, "SerialNumber")?;
        if !user_row.value.mfa_devices.iter().any(|s| s == serial) {
            return Err(no_such_entity(format!(
                "MFA Device with serial number {serial} does not exist or is not associated with user {}.",
                user_row.value.name
            )));
        }
        let mut batch = WriteBatch::new();
        if let Ok(device_row) = self.load_device(account, serial).await {
            let mut device = device_row.value.clone();
            device.user_id = None;
            device.enabled = None;
            model::replace(&mut batch, &device_row, &device);
        }
        let mut user = user_row.value.clone();
        user.mfa_devices.retain(|s| s != serial);
        model::replace(&mut batch, &user_row, &user);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn delete_virtual_mfa_device(&self, call: &Call) -> Result<Effect, AwsError> {
        let serial = req_str(&call.input, "SerialNumber")?;
        let row = self.load_device(account(call), serial).await?;
        if row.value.user_id.is_some() {
            return Err(delete_conflict("MFA device is still in use."));
        }
        let mut batch = WriteBatch::new();
        model::remove(&mut batch, &row);
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn list_mfa_devices(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let user_row = load_user(self, account, target_user_name(call)?).await?;
        let mut items = Vec::new();
        for serial in &user_row.value.mfa_devices {
            if let Ok(device) = self.load_device(account, serial).await {
                items.push((
                    serial.clone(),
                    json!({"UserName": user_row.value.name, "SerialNumber": serial, "EnableDate": device.value.enabled}),
                ));
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let (page, next) = paginate(items, &call.input);
        let mut out = Map::new();
        out.insert("MFADevices".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn list_virtual_mfa_devices(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let status = opt_str(&call.input, "AssignmentStatus").unwrap_or("Any");
        let rows: Vec<Row<MfaRecord>> = model::scan_account(self.store.as_ref(), MFA, account).await?;
        let mut items = Vec::new();
        for row in rows {
            let device = row.value;
            let assigned = device.user_id.is_some();
            if (status == "Assigned" && !assigned) || (status == "Unassigned" && assigned) {
                continue;
            }
            let mut out = Map::new();
            out.insert("SerialNumber".into(), json!(device.serial));
            if let Some(user_id) = &device.user_id
                && let Some(user) = load_user_by_id(self, account, user_id).await?
            {
                out.insert("User".into(), crate::users::user_json(account, &user.value, false));
            }
            if let Some(enabled) = device.enabled {
                out.insert("EnableDate".into(), json!(enabled));
            }
            if !device.tags.is_empty() {
                out.insert("Tags".into(), model::tags_json(&device.tags));
            }
            items.push((device.serial.clone(), Value::Object(out)));
        }
        let (page, next) = paginate(items, &call.input);
        let mut out = Map::new();
        out.insert("VirtualMFADevices".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc6238_vectors() {
        // RFC 6238 appendix B, SHA1, seed "12345678901234567890"; the RFC shows 8 digits, we keep the last 6.
        let seed = b"12345678901234567890";
        let cases: &[(i64, &str)] = &[
            (59, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ];
        for (time, code) in cases {
            assert_eq!(totp(seed, (*time / 30) as u64), *code, "t={time}");
        }
    }

    #[test]
    fn base32_matches_rfc4648() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"f", "MY"),
            (b"fo", "MZXQ"),
            (b"foo", "MZXW6"),
            (b"foob", "MZXW6YQ"),
            (b"fooba", "MZXW6YTB"),
        ];
        for (input, want) in cases {
            assert_eq!(base32_encode(input), *want);
        }
    }

    #[test]
    fn pairs_must_be_consecutive_and_fresh() {
        let seed = [7u8; 20];
        let now = 1_700_000_000;
        let step = (now / 30) as u64;
        let (c1, c2) = (totp(&seed, step - 1), totp(&seed, step));
        assert_eq!(verify_pair(&seed, &c1, &c2, now, None), Some(step));
        assert_eq!(verify_pair(&seed, &c2, &c1, now, None), None);
        assert_eq!(verify_pair(&seed, &c1, &c2, now, Some(step)), None, "replay refused");
        assert_eq!(
            verify_pair(&seed, "000000", "000000", now, None).is_some(),
            totp(&seed, step) == "000000"
        );
    }

    #[test]
    fn qr_png_is_a_png() {
        let png = qr_png("otpauth://totp/x?secret=ABC").unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(&png[12..16], b"IHDR");
        assert!(png.ends_with(&[0xAE, 0x42, 0x60, 0x82]), "IEND CRC");
    }
}
