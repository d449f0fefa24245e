//! Fetching an OpenID Connect provider's discovery document and JWKS over HTTPS.
//!
//! The server certificate is verified with rustls (aws-lc-rs) against the system's trust store
//! (`rustls-native-certs`, which follows OpenSSL's `SSL_CERT_FILE` / `SSL_CERT_DIR` when they are set)
//! plus the PEM bundle named by `CITADEL_OIDC_CA_BUNDLE`, if any. As in AWS, a provider whose chain
//! does not lead to a trusted root is still accepted when the SHA-1 thumbprint of the top certificate
//! the server presents (its last intermediate, or the leaf if it sends no other) is one of the
//! provider's registered thumbprints: the chain is then verified with that certificate as its anchor,
//! so the host name and validity dates are checked either way.
//!
//! Only `https://` URLs are fetched: IAM registers only `https://` issuers, and a discovery document
//! naming a plain-HTTP `jwks_uri` is refused.

use aws_lc_rs::digest;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Environment variable naming an extra PEM bundle of CAs trusted for identity providers.
pub const CA_BUNDLE_ENV: &str = "CITADEL_OIDC_CA_BUNDLE";
/// Largest HTTP response read from an identity provider.
const MAX_RESPONSE: usize = 1024 * 1024;
/// Time allowed for one fetch (connect, handshake, request and response).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a fetch failed (logged; the caller answers `IDPCommunicationError` either way).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an `https://` URL, or no host.
    #[error("not an https URL: {0}")]
    Url(String),
    /// TCP, TLS (including certificate verification) or I/O failure.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No answer within the time allowed.
    #[error("timed out")]
    Timeout,
    /// Not a `200` response, or a malformed or oversized one.
    #[error("bad HTTP response")]
    Response,
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// The trust anchors: the system's, plus `CITADEL_OIDC_CA_BUNDLE`'s. Loaded once per process.
fn roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::debug!(%error, "while loading the system's trust store for OIDC providers");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "system trust anchors for OIDC providers");
            if let Some(path) = std::env::var_os(CA_BUNDLE_ENV).filter(|p| !p.is_empty()) {
                match std::fs::read(&path) {
                    Ok(pem) => {
                        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
                            .filter_map(Result::ok)
                            .collect();
                        let (added, ignored) = roots.add_parsable_certificates(certs);
                        tracing::info!(?path, added, ignored, "extra trust anchors for OIDC providers");
                    }
                    Err(error) => {
                        tracing::warn!(?path, %error, "cannot read {CA_BUNDLE_ENV}");
                    }
                }
            }
            Arc::new(roots)
        })
        .clone()
}

/// Lowercase hex SHA-1 of a certificate, as IAM's `ThumbprintList` holds it.
pub fn thumbprint(cert: &[u8]) -> String {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, cert)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Verifies against the trust store, falling back to the provider's registered thumbprints.
#[derive(Debug)]
struct ProviderVerifier {
    inner: Arc<WebPkiServerVerifier>,
    thumbprints: Vec<String>,
}

impl ServerCertVerifier for ProviderVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                let top = intermediates.last().unwrap_or(end_entity);
                let print = thumbprint(top);
                if !self.thumbprints.iter().any(|t| t.eq_ignore_ascii_case(&print)) {
                    return Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
                }
                let mut anchor = RootCertStore::empty();
                anchor.add(top.clone().into_owned())?;
                WebPkiServerVerifier::builder_with_provider(Arc::new(anchor), provider())
                    .build()
                    .map_err(|e| rustls::Error::General(e.to_string()))?
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn client_config(thumbprints: &[String]) -> Result<Arc<rustls::ClientConfig>, FetchError> {
    let tls = |e: rustls::Error| FetchError::Io(std::io::Error::other(e));
    let inner = WebPkiServerVerifier::builder_with_provider(roots(), provider())
        .build()
        .map_err(|e| FetchError::Io(std::io::Error::other(e)))?;
    let verifier = ProviderVerifier {
        inner,
        thumbprints: thumbprints.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `(host, port, path)` of an `https://` URL.
fn split_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("https://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (rest.get(..i)?, rest.get(i..)?.to_string()),
        None => (rest, "/".to_string()),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    // `[v6]:port`, `[v6]`, `host:port`, `host`.
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 443,
            None => return None,
        };
        (host.to_string(), port)
    } else if let Some((host, port)) = authority.rsplit_once(':') {
        (host.to_string(), port.parse().ok()?)
    } else {
        (authority.to_string(), 443)
    };
    Some((host, port, path))
}

/// GETs `url` over HTTPS (HTTP/1.1), verifying the server as described in the module docs.
pub async fn fetch(url: &str, thumbprints: &[String]) -> Result<Vec<u8>, FetchError> {
    let (host, port, path) = split_url(url).ok_or_else(|| FetchError::Url(url.to_string()))?;
    let name = ServerName::try_from(host.clone()).map_err(|_| FetchError::Url(url.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(client_config(thumbprints)?);
    let host_header = if port == 443 {
        host.clone()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let mut stream = connector.connect(name, tcp).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: application/json\r\nConnection: close\r\nUser-Agent: citadel-sts\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await?;
        let mut raw = Vec::new();
        let mut limited = (&mut stream).take(MAX_RESPONSE as u64 + 1);
        // A server that closes the TCP connection without TLS close_notify (common for small
        // servers) ends the read with UnexpectedEof; the response is then accepted only if it is
        // complete by its Content-Length or chunked framing, which `parse_response` requires.
        match limited.read_to_end(&mut raw).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(FetchError::Io(e)),
        }
        if raw.len() > MAX_RESPONSE {
            return Err(FetchError::Response);
        }
        Ok(raw)
    };
    let raw = tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| FetchError::Timeout)??;
    parse_response(&raw).ok_or(FetchError::Response)
}

/// The body of a complete `200` HTTP/1.x response: chunked (up to the last chunk), or with a
/// `Content-Length` (the body must be that long), or else everything after the head.
pub fn parse_response(raw: &[u8]) -> Option<Vec<u8>> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..split)?).ok()?;
    let body = raw.get(split + 4..)?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?;
    if status != "200" {
        return None;
    }
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if name == "content-length" {
            length = Some(value.parse::<usize>().ok()?);
        }
    }
    if !chunked {
        return match length {
            Some(n) => body.get(..n).map(<[u8]>::to_vec),
            None => Some(body.to_vec()),
        };
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(rest.get(..line_end)?).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = rest.get(line_end + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_responses_parse_plain_chunked_and_sized() {
        let plain = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
        assert_eq!(parse_response(plain).unwrap(), b"{\"a\":1}");
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        assert_eq!(parse_response(sized).unwrap(), b"{\"a\":1}");
        let truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 70\r\n\r\n{\"a\":1}";
        assert_eq!(parse_response(truncated), None);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), b"{\"a\":1}");
        let cut_chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n";
        assert_eq!(parse_response(cut_chunked), None);
        assert_eq!(parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n"), None);
        assert_eq!(parse_response(b"garbage"), None);
    }

    #[test]
    fn only_https_urls_split() {
        assert_eq!(
            split_url("https://issuer.example.com/.well-known/openid-configuration"),
            Some((
                "issuer.example.com".into(),
                443,
                "/.well-known/openid-configuration".into()
            ))
        );
        assert_eq!(
            split_url("https://127.0.0.1:8443/jwks"),
            Some(("127.0.0.1".into(), 8443, "/jwks".into()))
        );
        assert_eq!(
            split_url("https://[::1]:9/k?x=1"),
            Some(("::1".into(), 9, "/k?x=1".into()))
        );
        assert_eq!(
            split_url("https://h.example?x"),
            Some(("h.example".into(), 443, "/?x".into()))
        );
        assert_eq!(split_url("http://issuer.example.com/jwks"), None);
        assert_eq!(split_url("https://user@h.example/"), None);
        assert_eq!(split_url("https:///x"), None);
    }

    #[test]
    fn thumbprints_are_lowercase_sha1_hex() {
        assert_eq!(thumbprint(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    /// A TLS server on loopback with a self-signed certificate for `names`, answering every
    /// request with `body`; returns its port and the certificate's DER.
    async fn tls_server(names: &[&str], body: &'static str) -> (u16, Vec<u8>) {
        let certified =
            rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let der = certified.cert.der().to_vec();
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(der.clone())], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (port, der)
    }

    #[tokio::test]
    async fn untrusted_certificates_are_accepted_only_by_registered_thumbprint() {
        let (port, der) = tls_server(&["127.0.0.1", "localhost"], r#"{"keys":[]}"#).await;
        let url = format!("https://127.0.0.1:{port}/jwks");
        // Not in the trust store and no thumbprint: the handshake fails.
        assert!(matches!(fetch(&url, &[]).await, Err(FetchError::Io(_))));
        assert!(matches!(fetch(&url, &["0".repeat(40)]).await, Err(FetchError::Io(_))));
        // The registered thumbprint of the presented certificate (any case) makes it trusted.
        let print = thumbprint(&der);
        assert_eq!(
            fetch(&url, std::slice::from_ref(&print)).await.unwrap(),
            br#"{"keys":[]}"#
        );
        let upper = print.to_ascii_uppercase();
        assert_eq!(
            fetch(&format!("https://localhost:{port}/jwks"), &[upper])
                .await
                .unwrap(),
            br#"{"keys":[]}"#
        );

        // The thumbprint does not waive the host name check.
        let (other_port, other_der) = tls_server(&["issuer.example.com"], "{}").await;
        let other = format!("https://127.0.0.1:{other_port}/jwks");
        assert!(matches!(
            fetch(&other, &[thumbprint(&other_der)]).await,
            Err(FetchError::Io(_))
        ));
    }

    #[tokio::test]
    async fn plain_http_and_unreachable_hosts_fail() {
        assert!(matches!(
            fetch("http://127.0.0.1:1/x", &[]).await,
            Err(FetchError::Url(_))
        ));
        assert!(matches!(
            fetch("https://127.0.0.1:1/x", &[]).await,
            Err(FetchError::Io(_))
        ));
    }
}
