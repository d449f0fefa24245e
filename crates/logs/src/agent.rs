//! The log shipping agent behind `citadel agent --config FILE`.
//!
//! The agent tails local files and ships their complete lines to CloudWatch Logs with signed
//! `PutLogEvents` calls over HTTP, like the CloudWatch agent does against AWS.
//!
//! Delivery guarantee: the offset of each file is persisted in a state file only after a put
//! succeeds, and always written atomically (temporary file, fsync, rename). A crash between a
//! successful put and the offset write can resend that one batch; a crash anywhere else loses
//! nothing and sends nothing twice. Lines are shipped only once their newline is written, so a
//! line being appended is never cut in two.
//!
//! Configuration: a JSON list `[{"file": ..., "log_group": ..., "log_stream": ...}]`, or an object
//! `{"files": [...], "state_file": ...}`. The state file defaults to the configuration path with
//! `.state` appended.

use crate::events::{EVENT_OVERHEAD, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The credentials and region the agent signs with.
#[derive(Debug, Clone)]
pub struct AgentCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
    /// The region of the signing scope.
    pub region: String,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration file is missing or malformed.
    #[error("agent configuration: {0}")]
    Config(String),
    /// A local file could not be read or the state could not be saved.
    #[error("agent I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The endpoint could not be reached.
    #[error("agent HTTP: {0}")]
    Http(String),
    /// The service answered with an error.
    #[error("{code}: {message}")]
    Api {
        /// The AWS error code.
        code: String,
        /// The message.
        message: String,
    },
}

/// One file to ship.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AgentFile {
    /// The local path.
    pub file: PathBuf,
    /// The destination log group.
    pub log_group: String,
    /// The destination log stream.
    pub log_stream: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ConfigFile {
    List(Vec<AgentFile>),
    Object {
        files: Vec<AgentFile>,
        state_file: Option<PathBuf>,
    },
}

/// A parsed agent configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The files to ship.
    pub files: Vec<AgentFile>,
    /// Where offsets are kept.
    pub state_file: PathBuf,
}

impl AgentConfig {
    /// Reads a configuration file.
    ///
    /// # Errors
    /// [`AgentError::Config`] when the file cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))?;
        let parsed: ConfigFile =
            serde_json::from_str(&text).map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))?;
        let default_state = PathBuf::from(format!("{}.state", path.display()));
        Ok(match parsed {
            ConfigFile::List(files) => Self {
                files,
                state_file: default_state,
            },
            ConfigFile::Object { files, state_file } => Self {
                files,
                state_file: state_file.unwrap_or(default_state),
            },
        })
    }
}

/// Persisted offsets: file path -> bytes already shipped.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct State {
    offsets: BTreeMap<String, u64>,
}

fn load_state(path: &Path) -> Result<State, AgentError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AgentError::Config(format!("state file: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(e.into()),
    }
}

fn save_state(path: &Path, state: &State) -> Result<(), AgentError> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(state).map_err(|e| AgentError::Config(e.to_string()))?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The largest message AWS accepts (256 KiB minus the per-event overhead).
const MAX_MESSAGE_BYTES: usize = 262_144 - EVENT_OVERHEAD;

/// A signed JSON client for the Logs API, used by the agent (and by tests of the agent).
#[derive(Debug, Clone)]
pub struct LogsClient {
    authority: String,
    credentials: AgentCredentials,
}

impl LogsClient {
    /// A client for `endpoint` (`http://host:port`).
    ///
    /// # Errors
    /// [`AgentError::Config`] for an endpoint that is not plain `http://`.
    pub fn new(endpoint: &str, credentials: AgentCredentials) -> Result<Self, AgentError> {
        let authority = endpoint
            .strip_prefix("http://")
            .ok_or_else(|| AgentError::Config("the agent supports http:// endpoints only".into()))?
            .trim_end_matches('/')
            .to_owned();
        Ok(Self { authority, credentials })
    }

    /// Calls a Logs operation with a JSON body; returns the JSON answer.
    ///
    /// # Errors
    /// [`AgentError::Api`] with the AWS code for an error answer, [`AgentError::Http`] when the
    /// endpoint cannot be reached.
    pub async fn call(&self, operation: &str, body: &Value) -> Result<Value, AgentError> {
        let body = body.to_string().into_bytes();
        let mut headers = http::HeaderMap::new();
        let header = |v: &str| http::HeaderValue::from_str(v).map_err(|e| AgentError::Http(e.to_string()));
        headers.insert(http::header::HOST, header(&self.authority)?);
        headers.insert(http::header::CONTENT_TYPE, header("application/x-amz-json-1.1")?);
        headers.insert("x-amz-target", header(&format!("Logs_20140328.{operation}"))?);
        let params = citadel_sigv4::SigningParams {
            access_key_id: &self.credentials.access_key_id,
            secret_access_key: &self.credentials.secret_access_key,
            security_token: self.credentials.session_token.as_deref(),
            region: &self.credentials.region,
            service: "logs",
            time: time::OffsetDateTime::now_utc(),
        };
        citadel_sigv4::sign_request(
            &params,
            "POST",
            "/",
            "",
            &mut headers,
            &citadel_sigv4::sha256_hex(&body),
        )
        .map_err(|e| AgentError::Http(e.to_string()))?;
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| AgentError::Http(format!("connect {}: {e}", self.authority)))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| AgentError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = http::Request::post("/")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| AgentError::Http(e.to_string()))?;
        *request.headers_mut() = headers;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| AgentError::Http(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| AgentError::Http(e.to_string()))?
            .to_bytes();
        let value: Value = if bytes.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&bytes).map_err(|e| AgentError::Http(format!("bad response: {e}")))?
        };
        if status.is_success() {
            return Ok(value);
        }
        let code = value
            .get("__type")
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
            .unwrap_or_else(|| status.as_str().to_owned());
        let message = value
            .get("message")
            .or_else(|| value.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        Err(AgentError::Api { code, message })
    }

    async fn ensure(&self, operation: &str, body: Value) -> Result<(), AgentError> {
        match self.call(operation, &body).await {
            Ok(_) => Ok(()),
            Err(AgentError::Api { code, .. }) if code == "ResourceAlreadyExistsException" => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Complete lines from `buf`, with the byte length each consumes (newline included).
fn complete_lines(buf: &[u8]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut rest = buf;
    while let Some(at) = memchr::memchr(b'\n', rest) {
        let line = rest.get(..at).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut text = String::from_utf8_lossy(line).into_owned();
        if text.len() > MAX_MESSAGE_BYTES {
            let mut cut = MAX_MESSAGE_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        out.push((text, at + 1));
        rest = rest.get(at + 1..).unwrap_or_default();
    }
    out
}

/// Ships everything complete in every configured file once, then returns.
///
/// # Errors
/// The first error that stops shipping; offsets of batches already delivered are saved.
pub async fn ship_once(config: &AgentConfig, client: &LogsClient) -> Result<usize, AgentError> {
    let mut state = load_state(&config.state_file)?;
    let mut shipped = 0;
    for entry in &config.files {
        let key = entry.file.display().to_string();
        let Ok(mut file) = std::fs::File::open(&entry.file) else {
            continue;
        };
        let len = file.metadata()?.len();
        let mut offset = state.offsets.get(&key).copied().unwrap_or(0);
        if len < offset {
            // The file was truncated or replaced: start again from its beginning.
            offset = 0;
        }
        if len == offset {
            continue;
        }
        client
            .ensure("CreateLogGroup", json!({ "logGroupName": entry.log_group }))
            .await?;
        client
            .ensure(
                "CreateLogStream",
                json!({ "logGroupName": entry.log_group, "logStreamName": entry.log_stream }),
            )
            .await?;
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        file.take(len - offset).read_to_end(&mut buf)?;
        let lines = complete_lines(&buf);
        let mut index = 0;
        while index < lines.len() {
            let mut events = Vec::new();
            let mut bytes = 0;
            let mut consumed = 0u64;
            while let Some((line, used)) = lines.get(index) {
                let size = line.len() + EVENT_OVERHEAD;
                if events.len() == MAX_BATCH_EVENTS || bytes + size > MAX_BATCH_BYTES {
                    break;
                }
                bytes += size;
                consumed += *used as u64;
                index += 1;
                // Empty lines are consumed but not sent: Logs rejects empty messages.
                if !line.is_empty() {
                    events.push(line.clone());
                }
            }
            if !events.is_empty() {
                let now =
                    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                let log_events: Vec<Value> = events
                    .iter()
                    .map(|m| json!({ "timestamp": now, "message": m }))
                    .collect();
                client
                    .call(
                        "PutLogEvents",
                        &json!({
                            "logGroupName": entry.log_group,
                            "logStreamName": entry.log_stream,
                            "logEvents": log_events,
                        }),
                    )
                    .await?;
                shipped += events.len();
            }
            offset += consumed;
            state.offsets.insert(key.clone(), offset);
            save_state(&config.state_file, &state)?;
        }
    }
    Ok(shipped)
}

/// Runs the agent: ships the files listed in `config_path` to `endpoint` every second, forever,
/// resuming from the saved offsets after a restart.
///
/// # Errors
/// A configuration error at once; a failed delivery is retried on the next round, so only
/// configuration and state-file errors end the loop.
pub async fn run_agent(config_path: &Path, endpoint: &str, credentials: AgentCredentials) -> Result<(), AgentError> {
    let config = AgentConfig::load(config_path)?;
    let client = LogsClient::new(endpoint, credentials)?;
    loop {
        match ship_once(&config, &client).await {
            Ok(_) => {}
            Err(e @ (AgentError::Config(_) | AgentError::Io(_))) => return Err(e),
            Err(e) => tracing::warn!(error = %e, "log delivery failed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_lines_are_taken() {
        let got = complete_lines(b"a\r\nbb\n\npartial");
        assert_eq!(got, vec![("a".to_owned(), 3), ("bb".to_owned(), 3), (String::new(), 1)]);
    }

    #[test]
    fn configuration_forms() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.json");
        std::fs::write(&list, r#"[{"file":"/var/log/a","log_group":"g","log_stream":"s"}]"#).unwrap();
        let config = AgentConfig::load(&list).unwrap();
        assert_eq!(config.files.len(), 1);
        assert_eq!(config.state_file, PathBuf::from(format!("{}.state", list.display())));
        let object = dir.path().join("obj.json");
        std::fs::write(&object, r#"{"files":[],"state_file":"/tmp/x.state"}"#).unwrap();
        assert_eq!(
            AgentConfig::load(&object).unwrap().state_file,
            PathBuf::from("/tmp/x.state")
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{").unwrap();
        assert!(matches!(AgentConfig::load(&bad), Err(AgentError::Config(_))));
        let state = State {
            offsets: [("a".to_owned(), 5)].into(),
        };
        let path = dir.path().join("s");
        save_state(&path, &state).unwrap();
        assert_eq!(load_state(&path).unwrap(), state);
    }
}
