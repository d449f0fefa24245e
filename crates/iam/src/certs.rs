//! Server certificates: X.509 certificates with their private keys, for TLS terminators.
//!
//! Upload parses the PEM certificate and its chain with `x509-parser`, parses the private key with
//! aws-lc (PKCS#1, PKCS#8 or SEC1), and refuses a key whose public half is not the one the
//! certificate names (`KeyPairMismatch`). The private key is sealed under the master key at once,
//! bound to the certificate's unique id, and no operation ever returns it, as in AWS.

use crate::Iam;
use crate::model::{self, Row, SERVER_CERTIFICATES, ServerCertificateRecord};
use crate::users::{account, now, resource};
use crate::util::*;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use citadel_core::{Call, Effect};
use citadel_store::{MasterKey, WriteBatch};
use citadel_wire::AwsError;
use serde_json::{Map, Value, json};
use x509_parser::pem::Pem;

/// `MalformedCertificate` 400.
fn malformed_certificate(message: impl Into<String>) -> AwsError {
    AwsError::new("MalformedCertificate", 400, message)
}

/// `KeyPairMismatch` 400.
fn key_pair_mismatch() -> AwsError {
    AwsError::new(
        "KeyPairMismatch",
        400,
        "The public key certificate and the private key do not match.",
    )
}

fn certificate_missing(name: &str) -> AwsError {
    no_such_entity(format!("The Server Certificate with name {name} cannot be found."))
}

/// The PEM blocks of a text, or `MalformedCertificate` naming `what`.
fn pem_blocks(text: &str, what: &str) -> Result<Vec<Pem>, AwsError> {
    let mut blocks = Vec::new();
    for block in Pem::iter_from_buffer(text.trim().as_bytes()) {
        blocks.push(
            block.map_err(|_| malformed_certificate(format!("Unable to parse {what}. It must be PEM-encoded.")))?,
        );
    }
    if blocks.is_empty() {
        return Err(malformed_certificate(format!(
            "Unable to parse {what}. It must be PEM-encoded."
        )));
    }
    Ok(blocks)
}

/// What a parsed certificate tells: its `notBefore`, `notAfter` and subject public key bytes.
#[derive(Debug)]
pub(crate) struct ParsedCertificate {
    /// `notBefore`, epoch seconds.
    pub not_before: i64,
    /// `notAfter`, epoch seconds.
    pub not_after: i64,
    /// The subject public key (the BIT STRING's content: an RSAPublicKey, or an EC point).
    pub public_key: Vec<u8>,
}

/// Parses one PEM certificate.
pub(crate) fn parse_certificate(pem: &Pem) -> Result<ParsedCertificate, AwsError> {
    if pem.label != "CERTIFICATE" {
        return Err(malformed_certificate(format!(
            "Unable to parse certificate. Expected a CERTIFICATE block, found {}.",
            pem.label
        )));
    }
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).map_err(|_| {
        malformed_certificate("Unable to parse certificate. Please ensure the certificate is in PEM format.")
    })?;
    let validity = cert.validity();
    Ok(ParsedCertificate {
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// The public key of a PEM private key, in the form a certificate's subject public key has.
pub(crate) fn private_key_public_bytes(pem: &Pem) -> Result<Vec<u8>, AwsError> {
    let der = pem.contents.as_slice();
    let ec_algorithms: [&'static signature::EcdsaSigningAlgorithm; 3] = [
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
    ];
    let ec = |der: &[u8]| {
        ec_algorithms
            .iter()
            .find_map(|alg| EcdsaKeyPair::from_private_key_der(alg, der).ok())
            .map(|pair| pair.public_key().as_ref().to_vec())
    };
    let public = match pem.label.as_str() {
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(der)
            .ok()
            .map(|pair| pair.public_key().as_ref().to_vec()),
        "EC PRIVATE KEY" => ec(der),
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(der)
            .ok()
            .map(|pair| pair.public_key().as_ref().to_vec())
            .or_else(|| ec(der)),
        "ENCRYPTED PRIVATE KEY" => {
            return Err(malformed_certificate(
                "Unable to parse private key. Encrypted private keys are not supported.",
            ));
        }
        _ => None,
    };
    public.ok_or_else(|| {
        malformed_certificate("Unable to parse private key. It must be an unencrypted RSA or EC key in PEM format.")
    })
}

/// Checks an upload: the body is one certificate, valid now, whose key is the private key's; the
/// chain is certificates. Returns the body's `notAfter`.
pub(crate) fn check_upload(body: &str, private_key: &str, chain: Option<&str>, now: i64) -> Result<i64, AwsError> {
    let blocks = pem_blocks(body, "certificate")?;
    let [block] = blocks.as_slice() else {
        return Err(malformed_certificate(
            "Unable to parse certificate. The certificate body must hold exactly one certificate.",
        ));
    };
    let certificate = parse_certificate(block)?;
    if certificate.not_after < now {
        return Err(malformed_certificate("Certificate is expired."));
    }
    if certificate.not_before > now {
        return Err(malformed_certificate("Certificate is not yet valid."));
    }
    let keys = pem_blocks(private_key, "private key")?;
    let [key] = keys.as_slice() else {
        return Err(malformed_certificate(
            "Unable to parse private key. It must hold exactly one key.",
        ));
    };
    if private_key_public_bytes(key)? != certificate.public_key {
        return Err(key_pair_mismatch());
    }
    if let Some(chain) = chain {
        for block in pem_blocks(chain, "certificate chain")? {
            parse_certificate(&block)?;
        }
    }
    Ok(certificate.not_after)
}

fn seal_key(master: &MasterKey, id: &str, private_key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(master.seal(private_key.as_bytes(), id.as_bytes()))
}

/// The `ServerCertificateMetadata` output shape.
fn metadata_json(account: &str, cert: &ServerCertificateRecord) -> Value {
    json!({
        "Path": cert.path,
        "ServerCertificateName": cert.name,
        "ServerCertificateId": cert.id,
        "Arn": entity_arn(account, "server-certificate", &cert.path, &cert.name),
        "UploadDate": cert.uploaded,
        "Expiration": cert.expiration,
    })
}

/// Loads a server certificate by name, or `NoSuchEntity`.
pub(crate) async fn load_certificate(
    iam: &Iam,
    account: &str,
    name: &str,
) -> Result<Row<ServerCertificateRecord>, AwsError> {
    model::get(iam.store.as_ref(), SERVER_CERTIFICATES, model::name_key(account, name))
        .await?
        .ok_or_else(|| certificate_missing(name))
}

impl Iam {
    pub(crate) async fn upload_server_certificate(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let input = &call.input;
        let name = req_str(input, "ServerCertificateName")?;
        check_name(name, "serverCertificateName", 128)?;
        let path = path_input(input, "Path")?;
        let body = req_str(input, "CertificateBody")?.trim();
        let private_key = req_str(input, "PrivateKey")?.trim();
        let chain = opt_str(input, "CertificateChain")
            .map(str::trim)
            .filter(|c| !c.is_empty());
        let tags = tags_input(input, "Tags")?;
        check_tag_count(&tags)?;
        let key = model::name_key(account, name);
        if model::get::<ServerCertificateRecord>(self.store.as_ref(), SERVER_CERTIFICATES, key.clone())
            .await?
            .is_some()
        {
            return Err(already_exists(format!(
                "The Server Certificate with name {name} already exists."
            )));
        }
        let expiration = check_upload(body, private_key, chain, now(call))?;
        let id = self.ids.unique_id("ASCA");
        let record = ServerCertificateRecord {
            name: name.to_string(),
            private_key_sealed: seal_key(&self.master, &id, private_key),
            id,
            path,
            uploaded: now(call),
            expiration,
            body: body.to_string(),
            chain: chain.map(str::to_string),
            tags,
        };
        let mut batch = WriteBatch::new();
        model::insert(&mut batch, SERVER_CERTIFICATES, &key, &record);
        model::put_id(&mut batch, account, &record.id, "server-certificate", &record.name);
        let arn = entity_arn(account, "server-certificate", &record.path, &record.name);
        let mut output = Map::new();
        output.insert("ServerCertificateMetadata".into(), metadata_json(account, &record));
        if !record.tags.is_empty() {
            output.insert("Tags".into(), model::tags_json(&record.tags));
        }
        Ok(Effect {
            output: Value::Object(output),
            batch,
            resources: vec![resource(call, &arn, "AWS::IAM::ServerCertificate")],
        })
    }

    pub(crate) async fn get_server_certificate(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_certificate(self, account, req_str(&call.input, "ServerCertificateName")?).await?;
        let cert = &row.value;
        let mut out = Map::new();
        out.insert("ServerCertificateMetadata".into(), metadata_json(account, cert));
        out.insert("CertificateBody".into(), json!(cert.body));
        if let Some(chain) = &cert.chain {
            out.insert("CertificateChain".into(), json!(chain));
        }
        if !cert.tags.is_empty() {
            out.insert("Tags".into(), model::tags_json(&cert.tags));
        }
        Ok(Effect::read(json!({"ServerCertificate": out})))
    }

    pub(crate) async fn list_server_certificates(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let prefix = opt_str(&call.input, "PathPrefix").unwrap_or("/");
        let rows: Vec<Row<ServerCertificateRecord>> =
            model::scan_account(self.store.as_ref(), SERVER_CERTIFICATES, account).await?;
        let items = rows
            .into_iter()
            .filter(|r| r.value.path.starts_with(prefix))
            .map(|r| (r.value.name.to_lowercase(), metadata_json(account, &r.value)))
            .collect();
        let (page, next) = paginate(items, &call.input);
        let mut out = Map::new();
        out.insert("ServerCertificateMetadataList".into(), Value::Array(page));
        Ok(Effect::read(page_output(out, next)))
    }

    pub(crate) async fn update_server_certificate(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_certificate(self, account, req_str(&call.input, "ServerCertificateName")?).await?;
        let mut cert = row.value.clone();
        if opt_str(&call.input, "NewPath").is_some() {
            cert.path = path_input(&call.input, "NewPath")?;
        }
        let mut batch = WriteBatch::new();
        match opt_str(&call.input, "NewServerCertificateName") {
            Some(new_name) if new_name.to_lowercase() != cert.name.to_lowercase() => {
                check_name(new_name, "newServerCertificateName", 128)?;
                let new_key = model::name_key(account, new_name);
                if model::get::<ServerCertificateRecord>(self.store.as_ref(), SERVER_CERTIFICATES, new_key.clone())
                    .await?
                    .is_some()
                {
                    return Err(already_exists(format!(
                        "The Server Certificate with name {new_name} already exists."
                    )));
                }
                cert.name = new_name.to_string();
                model::remove(&mut batch, &row);
                model::insert(&mut batch, SERVER_CERTIFICATES, &new_key, &cert);
                model::put_id(&mut batch, account, &cert.id, "server-certificate", &cert.name);
            }
            Some(new_name) => {
                // Only the case changes: same row, new spelling.
                cert.name = new_name.to_string();
                model::replace(&mut batch, &row, &cert);
                model::put_id(&mut batch, account, &cert.id, "server-certificate", &cert.name);
            }
            None => model::replace(&mut batch, &row, &cert),
        }
        Ok(Effect::write(json!({}), batch))
    }

    pub(crate) async fn delete_server_certificate(&self, call: &Call) -> Result<Effect, AwsError> {
        let account = account(call);
        let row = load_certificate(self, account, req_str(&call.input, "ServerCertificateName")?).await?;
        let mut batch = WriteBatch::new();
        model::remove(&mut batch, &row);
        model::delete_id(&mut batch, account, &row.value.id);
        let arn = entity_arn(account, "server-certificate", &row.value.path, &row.value.name);
        Ok(Effect {
            output: json!({}),
            batch,
            resources: vec![resource(call, &arn, "AWS::IAM::ServerCertificate")],
        })
    }
}

/// Unseals a stored private key (for tests and for a future TLS terminator inside Citadel).
#[cfg(test)]
pub(crate) fn unseal_key(master: &MasterKey, cert: &ServerCertificateRecord) -> Option<String> {
    use base64::Engine;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(&cert.private_key_sealed)
        .ok()?;
    let plain = master.unseal(&sealed, cert.id.as_bytes()).ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["example.test".to_string()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(30);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn matching_key_is_accepted_and_other_key_is_a_mismatch() {
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let expiration = check_upload(&cert, &key, None, now).unwrap();
        assert!(expiration > now);
        let err = check_upload(&cert, &other_key, None, now).unwrap_err();
        assert_eq!((err.code.as_ref(), err.status), ("KeyPairMismatch", 400));
    }

    #[test]
    fn rsa_keys_match_their_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["rsa.test".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(check_upload(&cert.pem(), &key.serialize_pem(), None, now).is_ok());
    }

    #[test]
    fn garbage_and_expired_certificates_are_malformed() {
        let (cert, key) = self_signed();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for body in [
            "not a certificate",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        ] {
            let err = check_upload(body, &key, None, now).unwrap_err();
            assert_eq!(err.code, "MalformedCertificate", "{body}");
        }
        let err = check_upload(&cert, "junk", None, now).unwrap_err();
        assert_eq!(err.code, "MalformedCertificate");
        let far_future = now + 365 * 86_400;
        let err = check_upload(&cert, &key, None, far_future).unwrap_err();
        assert_eq!(err.code, "MalformedCertificate");
        let err = check_upload(&cert, &key, Some("junk"), now).unwrap_err();
        assert_eq!(err.code, "MalformedCertificate");
        assert!(check_upload(&cert, &key, Some(&cert), now).is_ok());
    }
}
