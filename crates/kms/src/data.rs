//! Cryptographic operation handlers: Encrypt, Decrypt, ReEncrypt, data keys, random bytes,
//! Sign/Verify, GetPublicKey and GenerateMac/VerifyMac.
//!
//! Unsealed key material and plaintexts live only in `Zeroizing` buffers inside one handler call.

use crate::Kms;
use crate::authz::{Resolved, Source, decryption_source, resolve_member};
use crate::cache::MaterialBytes;
use crate::crypto::{self, KeySpec, KeyUsage, MessageType};
use crate::error;
use crate::input::{self, b64, opt_str};
use crate::model::{self, KeyHandle, KeyRecord};
use citadel_core::{Call, Effect};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// Largest plaintext Encrypt accepts.
const MAX_PLAINTEXT: usize = 4096;

pub(crate) fn map_crypto(err: crypto::CryptoError) -> AwsError {
    match err {
        crypto::CryptoError::InvalidCiphertext => error::invalid_ciphertext(),
        crypto::CryptoError::InvalidInput(message) => error::validation(message),
        crypto::CryptoError::UnsupportedAlgorithm => {
            error::invalid_key_usage("The algorithm is not valid for this KMS key.")
        }
        other => error::internal(other),
    }
}

/// Writes back lazily maintained records (due rotations) with an otherwise read-only result.
fn effect(output: Value, handles: &[&KeyHandle]) -> Result<Effect, AwsError> {
    let mut batch = WriteBatch::new();
    for handle in handles {
        handle.save_if_dirty(&mut batch)?;
    }
    Ok(Effect::write(output, batch))
}

fn require_usage(record: &KeyRecord, usage: KeyUsage, operation: &str) -> Result<(), AwsError> {
    if record.usage() != usage {
        return Err(error::invalid_key_usage(format!(
            "{} key usage is {} which is not valid for {operation}.",
            record.arn(),
            record.key_usage
        )));
    }
    Ok(())
}

pub(crate) fn require_symmetric(record: &KeyRecord, operation: &str) -> Result<(), AwsError> {
    require_usage(record, KeyUsage::EncryptDecrypt, operation)?;
    if record.spec() != KeySpec::SymmetricDefault {
        return Err(error::invalid_key_usage(format!(
            "{} key spec is {} which is not valid for {operation}.",
            record.arn(),
            record.key_spec
        )));
    }
    Ok(())
}

/// The current material of a usable key, unsealed (from the node's cache when it holds it), with
/// its version.
pub(crate) fn current<'r>(kms: &Kms, handle: &'r KeyHandle) -> Result<(MaterialBytes, &'r model::Material), AwsError> {
    let record = &handle.record;
    record.check_usable()?;
    let material = record
        .current_material()
        .ok_or_else(|| error::invalid_state(format!("{} is pending import.", record.arn())))?;
    Ok((handle.unsealed(kms.master(), material)?, material))
}

/// Encrypts under a symmetric key's current material; returns the blob and the material id.
fn seal_under(
    kms: &Kms,
    handle: &KeyHandle,
    plaintext: &[u8],
    context: &BTreeMap<String, String>,
) -> Result<(Vec<u8>, String), AwsError> {
    let record = &handle.record;
    let (material, meta) = current(kms, handle)?;
    let blob = crypto::encrypt(&material, &record.id_bytes()?, meta.version, plaintext, context).map_err(map_crypto)?;
    Ok((blob, meta.id.clone()))
}

/// Encrypts with a resolved key: AES-GCM blob for symmetric keys, RSA-OAEP for RSA keys.
fn encrypt_with(
    kms: &Kms,
    resolved: &Resolved,
    plaintext: &[u8],
    context: &BTreeMap<String, String>,
    algorithm: &str,
) -> Result<Vec<u8>, AwsError> {
    let record = &resolved.handle.record;
    require_usage(record, KeyUsage::EncryptDecrypt, "Encrypt")?;
    record.check_usable()?;
    if record.spec() == KeySpec::SymmetricDefault {
        if algorithm != "SYMMETRIC_DEFAULT" {
            return Err(error::invalid_key_usage(format!(
                "{algorithm} is not valid for {}.",
                record.arn()
            )));
        }
        return Ok(seal_under(kms, &resolved.handle, plaintext, context)?.0);
    }
    if algorithm == "SYMMETRIC_DEFAULT" || !record.spec().encryption_algorithms(record.usage()).contains(&algorithm) {
        return Err(error::invalid_key_usage(format!(
            "{algorithm} is not valid for {}.",
            record.arn()
        )));
    }
    if !context.is_empty() {
        return Err(error::validation(
            "EncryptionContext is not supported with asymmetric KMS keys.",
        ));
    }
    let public = record
        .current_material()
        .and_then(|m| m.public_key.as_deref())
        .and_then(input::unb64)
        .ok_or_else(|| error::internal("key pair without public key"))?;
    crypto::rsa_encrypt(&public, algorithm, plaintext).map_err(map_crypto)
}

/// Decrypts with the source key; returns the plaintext and the material id used.
fn decrypt_with(
    kms: &Kms,
    source: &Source,
    blob: &[u8],
    context: &BTreeMap<String, String>,
    algorithm: &str,
) -> Result<(Zeroizing<Vec<u8>>, String), AwsError> {
    match source {
        Source::Symmetric(resolved, header) => {
            let record = &resolved.handle.record;
            require_symmetric(record, "Decrypt")?;
            record.check_usable()?;
            if algorithm != "SYMMETRIC_DEFAULT" {
                return Err(error::invalid_key_usage(format!(
                    "{algorithm} is not valid for {}.",
                    record.arn()
                )));
            }
            let meta = record
                .material(header.material_version)
                .ok_or_else(error::invalid_ciphertext)?;
            let material = resolved.handle.unsealed(kms.master(), meta)?;
            let plaintext = crypto::decrypt(&material, blob, context).map_err(map_crypto)?;
            Ok((plaintext, meta.id.clone()))
        }
        Source::Rsa(resolved) => {
            let record = &resolved.handle.record;
            require_usage(record, KeyUsage::EncryptDecrypt, "Decrypt")?;
            if !record.spec().encryption_algorithms(record.usage()).contains(&algorithm) {
                return Err(error::invalid_key_usage(format!(
                    "{algorithm} is not valid for {}.",
                    record.arn()
                )));
            }
            let (material, meta) = current(kms, &resolved.handle)?;
            let plaintext = crypto::rsa_decrypt(&material, algorithm, blob).map_err(map_crypto)?;
            Ok((plaintext, meta.id.clone()))
        }
    }
}

/// Encrypt.
pub async fn encrypt(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let input = &call.input;
    let plaintext = input::req_blob(input, "Plaintext", 1, MAX_PLAINTEXT)?;
    let context = input::context(input, "EncryptionContext")?;
    let algorithm = opt_str(input, "EncryptionAlgorithm").unwrap_or("SYMMETRIC_DEFAULT");
    let resolved = resolve_member(kms, call, "KeyId").await?;
    let blob = encrypt_with(kms, &resolved, &plaintext, &context, algorithm)?;
    let output = json!({
        "CiphertextBlob": b64(&blob),
        "KeyId": resolved.handle.record.arn(),
        "EncryptionAlgorithm": algorithm,
    });
    effect(output, &[&resolved.handle])
}

/// Decrypt: the key comes from the blob (or from `KeyId` for RSA keys).
pub async fn decrypt(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let input = &call.input;
    let blob = input::req_blob(input, "CiphertextBlob", 1, 6144)?;
    let context = input::context(input, "EncryptionContext")?;
    let algorithm = opt_str(input, "EncryptionAlgorithm").unwrap_or("SYMMETRIC_DEFAULT");
    let source = decryption_source(kms, call, &blob, "KeyId").await?;
    let (plaintext, material_id) = decrypt_with(kms, &source, &blob, &context, algorithm)?;
    let handle = &source.resolved().handle;
    let mut output = json!({
        "KeyId": handle.record.arn(),
        "Plaintext": b64(&plaintext),
        "EncryptionAlgorithm": algorithm,
    });
    if matches!(source, Source::Symmetric(..))
        && let Some(map) = output.as_object_mut()
    {
        map.insert("KeyMaterialId".into(), json!(material_id));
    }
    effect(output, &[handle])
}

/// ReEncrypt: decrypt under the source key and context, encrypt under the destination.
pub async fn re_encrypt(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let input = &call.input;
    let blob = input::req_blob(input, "CiphertextBlob", 1, 6144)?;
    let source_context = input::context(input, "SourceEncryptionContext")?;
    let destination_context = input::context(input, "DestinationEncryptionContext")?;
    let source_algorithm = opt_str(input, "SourceEncryptionAlgorithm").unwrap_or("SYMMETRIC_DEFAULT");
    let destination_algorithm = opt_str(input, "DestinationEncryptionAlgorithm").unwrap_or("SYMMETRIC_DEFAULT");
    let source = decryption_source(kms, call, &blob, "SourceKeyId").await?;
    let destination = resolve_member(kms, call, "DestinationKeyId").await?;
    let (plaintext, _) = decrypt_with(kms, &source, &blob, &source_context, source_algorithm)?;
    let new_blob = encrypt_with(
        kms,
        &destination,
        &plaintext,
        &destination_context,
        destination_algorithm,
    )?;
    let output = json!({
        "CiphertextBlob": b64(&new_blob),
        "SourceKeyId": source.resolved().handle.record.arn(),
        "KeyId": destination.handle.record.arn(),
        "SourceEncryptionAlgorithm": source_algorithm,
        "DestinationEncryptionAlgorithm": destination_algorithm,
    });
    let same = source.resolved().handle.record.key_id == destination.handle.record.key_id;
    if same {
        effect(output, &[&destination.handle])
    } else {
        effect(output, &[&source.resolved().handle, &destination.handle])
    }
}

/// GenerateDataKey and GenerateDataKeyWithoutPlaintext.
pub async fn generate_data_key(kms: &Kms, call: &Call, with_plaintext: bool) -> Result<Effect, AwsError> {
    let input = &call.input;
    let length = match (opt_str(input, "KeySpec"), input::opt_i64(input, "NumberOfBytes")) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(error::validation("Please specify either number of bytes or key spec."));
        }
        (Some("AES_256"), None) => 32,
        (Some("AES_128"), None) => 16,
        (Some(other), None) => {
            return Err(error::validation(format!(
                "1 validation error detected: Value '{other}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"
            )));
        }
        (None, Some(n)) if (1..=1024).contains(&n) => usize::try_from(n).unwrap_or(32),
        (None, Some(n)) => {
            return Err(error::validation(format!(
                "1 validation error detected: Value '{n}' at 'numberOfBytes' failed to satisfy constraint: Member must have value {}",
                if n < 1 {
                    "greater than or equal to 1"
                } else {
                    "less than or equal to 1024"
                }
            )));
        }
    };
    let context = input::context(input, "EncryptionContext")?;
    let resolved = resolve_member(kms, call, "KeyId").await?;
    let record = &resolved.handle.record;
    require_symmetric(record, call.op.name)?;
    let data_key = crypto::random_bytes(length).map_err(error::internal)?;
    let (blob, material_id) = seal_under(kms, &resolved.handle, &data_key, &context)?;
    let mut output = json!({
        "CiphertextBlob": b64(&blob),
        "KeyId": record.arn(),
        "KeyMaterialId": material_id,
    });
    if with_plaintext && let Some(map) = output.as_object_mut() {
        map.insert("Plaintext".into(), json!(b64(&data_key)));
    }
    effect(output, &[&resolved.handle])
}

/// GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext: a fresh key pair whose private
/// key (PKCS#8) is returned encrypted under the symmetric KMS key.
pub async fn generate_data_key_pair(kms: &Kms, call: &Call, with_plaintext: bool) -> Result<Effect, AwsError> {
    let input = &call.input;
    let pair_spec_name = input::req_str(input, "KeyPairSpec")?;
    let pair_spec = KeySpec::parse(pair_spec_name)
        .filter(|spec| spec.is_asymmetric())
        .ok_or_else(|| error::unsupported(format!("KeyPairSpec {pair_spec_name} is not supported by Citadel.")))?;
    let context = input::context(input, "EncryptionContext")?;
    let resolved = resolve_member(kms, call, "KeyId").await?;
    let record = &resolved.handle.record;
    require_symmetric(record, call.op.name)?;
    record.check_usable()?;
    let private = crypto::generate_material(pair_spec).map_err(error::internal)?;
    let public = crypto::public_key_der(pair_spec, &private).map_err(error::internal)?;
    let (blob, material_id) = seal_under(kms, &resolved.handle, &private, &context)?;
    let mut output = json!({
        "PrivateKeyCiphertextBlob": b64(&blob),
        "PublicKey": b64(&public),
        "KeyId": record.arn(),
        "KeyPairSpec": pair_spec.as_str(),
        "KeyMaterialId": material_id,
    });
    if with_plaintext && let Some(map) = output.as_object_mut() {
        map.insert("PrivateKeyPlaintext".into(), json!(b64(&private)));
    }
    effect(output, &[&resolved.handle])
}

/// GenerateRandom (1 to 1024 bytes).
pub fn generate_random(call: &Call) -> Result<Effect, AwsError> {
    if opt_str(&call.input, "CustomKeyStoreId").is_some() {
        return Err(error::custom_key_store_not_found());
    }
    let n =
        input::opt_i64(&call.input, "NumberOfBytes").ok_or_else(|| error::validation("NumberOfBytes is required."))?;
    if !(1..=1024).contains(&n) {
        return Err(error::validation(format!(
            "1 validation error detected: Value '{n}' at 'numberOfBytes' failed to satisfy constraint: Member must have value {}",
            if n < 1 {
                "greater than or equal to 1"
            } else {
                "less than or equal to 1024"
            }
        )));
    }
    let bytes = crypto::random_bytes(usize::try_from(n).unwrap_or(0)).map_err(error::internal)?;
    Ok(Effect::read(json!({ "Plaintext": b64(&bytes) })))
}

fn message_type(input: &Value) -> Result<MessageType, AwsError> {
    match opt_str(input, "MessageType").unwrap_or("RAW") {
        "RAW" => Ok(MessageType::Raw),
        "DIGEST" => Ok(MessageType::Digest),
        other => Err(error::unsupported(format!(
            "MessageType {other} is not supported by Citadel."
        ))),
    }
}

/// The key-pair key of a Sign/Verify call with its checked algorithm.
async fn signing_key(kms: &Kms, call: &Call) -> Result<(Resolved, String), AwsError> {
    let algorithm = input::req_str(&call.input, "SigningAlgorithm")?.to_string();
    let resolved = resolve_member(kms, call, "KeyId").await?;
    let record = &resolved.handle.record;
    require_usage(record, KeyUsage::SignVerify, call.op.name)?;
    if !record
        .spec()
        .signing_algorithms(record.usage())
        .contains(&algorithm.as_str())
    {
        return Err(error::invalid_key_usage(format!(
            "{algorithm} is not a valid signing algorithm for {}.",
            record.arn()
        )));
    }
    Ok((resolved, algorithm))
}

/// Sign.
pub async fn sign(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let message = input::req_blob(&call.input, "Message", 1, MAX_PLAINTEXT)?;
    let message_type = message_type(&call.input)?;
    let (resolved, algorithm) = signing_key(kms, call).await?;
    let record = &resolved.handle.record;
    let (material, _) = current(kms, &resolved.handle)?;
    let signature = crypto::sign(record.spec(), &material, &algorithm, &message, message_type).map_err(map_crypto)?;
    let output = json!({ "KeyId": record.arn(), "Signature": b64(&signature), "SigningAlgorithm": algorithm });
    effect(output, &[&resolved.handle])
}

/// Verify: a signature that does not match is `KMSInvalidSignatureException`, as in AWS.
pub async fn verify(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let message = input::req_blob(&call.input, "Message", 1, MAX_PLAINTEXT)?;
    let signature = input::req_blob(&call.input, "Signature", 1, 6144)?;
    let message_type = message_type(&call.input)?;
    let (resolved, algorithm) = signing_key(kms, call).await?;
    let record = &resolved.handle.record;
    let (material, _) = current(kms, &resolved.handle)?;
    let valid =
        crypto::verify(record.spec(), &material, &algorithm, &message, message_type, &signature).map_err(map_crypto)?;
    if !valid {
        return Err(error::invalid_signature());
    }
    let output = json!({ "KeyId": record.arn(), "SignatureValid": true, "SigningAlgorithm": algorithm });
    effect(output, &[&resolved.handle])
}

/// GetPublicKey: the DER `SubjectPublicKeyInfo` of a key pair.
pub async fn get_public_key(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let resolved = resolve_member(kms, call, "KeyId").await?;
    let record = &resolved.handle.record;
    let spec = record.spec();
    if !spec.is_asymmetric() {
        return Err(error::unsupported(format!(
            "{} is not an asymmetric KMS key.",
            record.arn()
        )));
    }
    record.check_usable()?;
    let public = record
        .current_material()
        .and_then(|m| m.public_key.clone())
        .ok_or_else(|| error::internal("key pair without public key"))?;
    let usage = record.usage();
    let mut output = json!({
        "KeyId": record.arn(),
        "PublicKey": public,
        "CustomerMasterKeySpec": record.key_spec,
        "KeySpec": record.key_spec,
        "KeyUsage": record.key_usage,
    });
    if let Some(map) = output.as_object_mut() {
        let encryption = spec.encryption_algorithms(usage);
        if !encryption.is_empty() {
            map.insert("EncryptionAlgorithms".into(), json!(encryption));
        }
        let signing = spec.signing_algorithms(usage);
        if !signing.is_empty() {
            map.insert("SigningAlgorithms".into(), json!(signing));
        }
    }
    effect(output, &[&resolved.handle])
}

async fn mac_key(kms: &Kms, call: &Call) -> Result<(Resolved, String), AwsError> {
    let algorithm = input::req_str(&call.input, "MacAlgorithm")?.to_string();
    let resolved = resolve_member(kms, call, "KeyId").await?;
    let record = &resolved.handle.record;
    require_usage(record, KeyUsage::GenerateVerifyMac, call.op.name)?;
    if !record.spec().mac_algorithms().contains(&algorithm.as_str()) {
        return Err(error::invalid_key_usage(format!(
            "{algorithm} is not a valid MAC algorithm for {}.",
            record.arn()
        )));
    }
    Ok((resolved, algorithm))
}

/// GenerateMac.
pub async fn generate_mac(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let message = input::req_blob(&call.input, "Message", 1, MAX_PLAINTEXT)?;
    let (resolved, algorithm) = mac_key(kms, call).await?;
    let record = &resolved.handle.record;
    let (material, _) = current(kms, &resolved.handle)?;
    let tag = crypto::mac(record.spec(), &material, &algorithm, &message).map_err(map_crypto)?;
    effect(
        json!({ "Mac": b64(&tag), "MacAlgorithm": algorithm, "KeyId": record.arn() }),
        &[&resolved.handle],
    )
}

/// VerifyMac: a tag that does not match is `KMSInvalidMacException`, as in AWS.
pub async fn verify_mac(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let message = input::req_blob(&call.input, "Message", 1, MAX_PLAINTEXT)?;
    let tag = input::req_blob(&call.input, "Mac", 1, 6144)?;
    let (resolved, algorithm) = mac_key(kms, call).await?;
    let record = &resolved.handle.record;
    let (material, _) = current(kms, &resolved.handle)?;
    if !crypto::verify_mac(record.spec(), &material, &algorithm, &message, &tag).map_err(map_crypto)? {
        return Err(error::invalid_mac());
    }
    effect(
        json!({ "KeyId": record.arn(), "MacValid": true, "MacAlgorithm": algorithm }),
        &[&resolved.handle],
    )
}
