//! Starts the real `citadel` binary on a free port with a temporary data directory.

// Each test module uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The root credentials every test server starts with.
pub const ROOT_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
/// The root secret.
pub const ROOT_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// The default account id.
pub const ACCOUNT_ID: &str = "000000000000";

/// A running server.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    pub endpoint: String,
    /// The data directory (kept alive by `_dir` when temporary).
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    /// Lines the server printed to stdout.
    pub stdout: mpsc::Receiver<String>,
}

/// Options for a test server.
#[derive(Default, Clone)]
pub struct Options {
    /// Extra command-line flags.
    pub args: Vec<String>,
    /// Do not pass root credentials through the environment.
    pub generated_credentials: bool,
    /// Reuse this data directory.
    pub data_dir: Option<PathBuf>,
}

impl Server {
    /// Starts a server with default options.
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    /// Starts a server.
    pub fn start_with(options: Options) -> Self {
        let (dir, data_dir) = match options.data_dir.clone() {
            Some(path) => (None, path),
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("data");
                (Some(dir), path)
            }
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_citadel"));
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&options.args)
            .env_remove("CITADEL_ROOT_ACCESS_KEY_ID")
            .env_remove("CITADEL_ROOT_SECRET_ACCESS_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if !options.generated_credentials {
            command
                .env("CITADEL_ROOT_ACCESS_KEY_ID", ROOT_ACCESS_KEY_ID)
                .env("CITADEL_ROOT_SECRET_ACCESS_KEY", ROOT_SECRET_ACCESS_KEY);
        }
        let mut child = command.spawn().expect("spawn citadel");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut endpoint = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while endpoint.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx.recv_timeout(left).expect("server did not start in time");
            if let Some(rest) = line.strip_prefix("Citadel listening on ") {
                endpoint = Some(rest.trim().to_string());
            }
        }
        let mut endpoint = endpoint.unwrap_or_default();
        if endpoint.starts_with("https://127.0.0.1") {
            endpoint = endpoint.replacen("https://127.0.0.1", "https://localhost", 1);
        }
        Self {
            child: Some(child),
            endpoint,
            data_dir,
            _dir: dir,
            stdout: rx,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends a signal and waits for the process to exit; returns its exit status.
    pub fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        child.wait().expect("wait")
    }

    /// Kills the server with SIGKILL, keeping the data directory.
    pub fn kill9(&mut self) {
        let _ = self.signal_and_wait("KILL");
    }

    /// Takes ownership of the temporary directory so it outlives this server (for restarts).
    pub fn keep_dir(&mut self) -> Option<tempfile::TempDir> {
        self._dir.take()
    }

    /// Plain HTTP GET of a path, returning status and body.
    pub fn http(&self, method: &str, path: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
        http_request(&self.endpoint, method, path, body, headers)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A tiny blocking HTTP/1.1 client for endpoints the SDKs do not cover (health, reset, raw bodies).
pub fn http_request(endpoint: &str, method: &str, path: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    use std::io::{Read, Write};
    let authority = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    stream.write_all(body).expect("write body");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// An SDK config for the server with the given credentials.
pub async fn sdk_config(
    endpoint: &str,
    access_key_id: &str,
    secret: &str,
    token: Option<&str>,
) -> aws_config::SdkConfig {
    let credentials =
        aws_credential_types::Credentials::new(access_key_id, secret, token.map(str::to_string), None, "test");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .http_client(http_client(None))
        .load()
        .await
}

/// An SDK config that trusts `ca_pem` for HTTPS.
pub async fn sdk_config_tls(endpoint: &str, ca_pem: &[u8]) -> aws_config::SdkConfig {
    let credentials =
        aws_credential_types::Credentials::new(ROOT_ACCESS_KEY_ID, ROOT_SECRET_ACCESS_KEY, None, None, "test");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .http_client(http_client(Some(ca_pem)))
        .load()
        .await
}

fn http_client(ca_pem: Option<&[u8]>) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let mut trust = tls::TrustStore::empty();
    if let Some(pem) = ca_pem {
        trust = trust.with_pem_certificate(pem);
    }
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("tls context");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

/// The root SDK config.
pub async fn root_config(server: &Server) -> aws_config::SdkConfig {
    sdk_config(&server.endpoint, ROOT_ACCESS_KEY_ID, ROOT_SECRET_ACCESS_KEY, None).await
}

/// Reads a file's permission bits.
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}
