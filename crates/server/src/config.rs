//! Command-line flags; each is also an environment variable `CITADEL_<NAME>`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Citadel: a self-hosted, AWS-compatible cloud security plane.
#[derive(Debug, Parser)]
#[command(name = "citadel", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the server.
    Serve(ServeArgs),
    /// Evaluates or validates IAM policies offline.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Tails local files and ships their lines to CloudWatch Logs, as the CloudWatch agent does.
    Agent(AgentArgs),
    /// Manages accounts in a data directory.
    #[command(subcommand)]
    Account(AccountCommand),
    /// S3 client commands: `citadel s3 cp` with client-side encryption.
    #[command(subcommand)]
    S3(crate::s3_cli::S3Command),
    /// Writes a consistent backup of a data directory, also while a server runs on it.
    Backup(BackupArgs),
    /// Restores a backup into a data directory that holds no store (the server must be stopped).
    Restore(RestoreArgs),
}

/// `citadel backup` flags.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The new directory to write the backup into.
    pub dir: PathBuf,
    /// The data directory to back up.
    #[arg(long, env = "CITADEL_DATA_DIR", default_value = "./citadel-data")]
    pub data_dir: PathBuf,
    /// Ask the server at this address to write the backup (used automatically, with the default
    /// endpoint, when a server holds the data directory). Signed with the data directory's root
    /// credentials, or with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    #[arg(long)]
    pub endpoint: Option<String>,
}

/// `citadel restore` flags.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup directory.
    pub dir: PathBuf,
    /// The data directory to restore into (key files, and the store and blobs by default); it must
    /// hold no store.
    #[arg(long, env = "CITADEL_DATA_DIR", default_value = "./citadel-data")]
    pub data_dir: PathBuf,
    /// Restore the rows into this store instead: `embedded` or an empty PostgreSQL database URL.
    #[arg(long, env = "CITADEL_STORE", default_value = "embedded")]
    pub store: String,
}

/// `citadel serve` flags.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CITADEL_LISTEN", default_value = "127.0.0.1:4566")]
    pub listen: SocketAddr,
    /// Directory for the embedded store, blobs and keys.
    #[arg(long, env = "CITADEL_DATA_DIR", default_value = "./citadel-data")]
    pub data_dir: PathBuf,
    /// Where state lives: `embedded` (a redb file in the data directory) or a PostgreSQL URL
    /// (`postgres://USER@HOST:PORT/DB`) that several nodes share.
    #[arg(long, env = "CITADEL_STORE", default_value = "embedded")]
    pub store: String,
    /// Where blobs (object data, log files) live: a `file:///path` directory, which nodes sharing a
    /// PostgreSQL store must all see, or an S3-compatible bucket
    /// `s3://BUCKET[/PREFIX]?endpoint=URL&region=R` (credentials from CITADEL_BLOBS_ACCESS_KEY_ID /
    /// CITADEL_BLOBS_SECRET_ACCESS_KEY, else AWS_*). Default: `<data-dir>/blobs`.
    #[arg(long, env = "CITADEL_BLOBS")]
    pub blobs: Option<String>,
    /// Default region.
    #[arg(long, env = "CITADEL_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Account id of the default account.
    #[arg(long, env = "CITADEL_ACCOUNT_ID", default_value = "000000000000")]
    pub account_id: String,
    /// `enforce`: every request must be signed with a known key; `permissive`: unknown keys act as root.
    #[arg(long, env = "CITADEL_AUTH", value_enum, default_value = "enforce")]
    pub auth: AuthArg,
    /// PEM certificate chain for HTTPS.
    #[arg(long, env = "CITADEL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long, env = "CITADEL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a development certificate made in the data directory.
    #[arg(long, env = "CITADEL_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// Enables `POST /_citadel/reset` (and `/moto-api/reset`), which wipes all state.
    #[arg(long, env = "CITADEL_TEST_API")]
    pub test_api: bool,
    /// Largest request body for non-S3 services, in bytes.
    #[arg(long, env = "CITADEL_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// How often CloudTrail delivers log files to trail buckets (`2s`, `5m`, `1h`).
    #[arg(long, env = "CITADEL_TRAIL_DELIVERY_INTERVAL", default_value = "5m", value_parser = parse_interval)]
    pub trail_delivery_interval: std::time::Duration,
    /// How often CloudTrail writes signed digest files for trails with log file validation.
    #[arg(long, env = "CITADEL_DIGEST_INTERVAL", default_value = "1h", value_parser = parse_interval)]
    pub digest_interval: std::time::Duration,
    /// How often S3 server access logs are delivered to their target buckets (`2s`, `5m`).
    #[arg(long, env = "CITADEL_ACCESS_LOG_INTERVAL", default_value = "5m", value_parser = parse_interval)]
    pub access_log_interval: std::time::Duration,
    /// Shifts the server's clock by this many seconds (tests use it to simulate skew).
    #[arg(long, env = "CITADEL_CLOCK_OFFSET_SECONDS", default_value_t = 0, hide = true)]
    pub clock_offset_seconds: i64,
    /// Also serve EC2-style instance metadata (IMDSv2 credentials) on this address.
    #[arg(long, env = "CITADEL_IMDS_LISTEN", requires = "imds_role")]
    pub imds_listen: Option<SocketAddr>,
    /// The role (ARN, or name in the default account) whose credentials instance metadata serves.
    #[arg(long, env = "CITADEL_IMDS_ROLE", requires = "imds_listen")]
    pub imds_role: Option<String>,
    /// Keep the master key wrapped by a key inside a PKCS#11 HSM, never in the clear on disk: the
    /// module to load (e.g. /usr/lib/softhsm/libsofthsm2.so). The user PIN is read only from
    /// CITADEL_PKCS11_PIN (a flag would show in `ps`). A plaintext master.key must not exist.
    #[arg(long, env = "CITADEL_PKCS11_MODULE", requires = "pkcs11_token")]
    pub pkcs11_module: Option<PathBuf>,
    /// The label of the PKCS#11 token that holds the wrapping key.
    #[arg(long, env = "CITADEL_PKCS11_TOKEN", requires = "pkcs11_module")]
    pub pkcs11_token: Option<String>,
    /// The label of the AES-256 wrapping key inside the token (generated there on first use).
    #[arg(long, env = "CITADEL_PKCS11_KEY_LABEL", default_value = citadel_store::seal_pkcs11::DEFAULT_KEY_LABEL)]
    pub pkcs11_key_label: String,
}

/// The environment variable holding the PKCS#11 user PIN (there is deliberately no flag for it).
pub const PKCS11_PIN_ENV: &str = "CITADEL_PKCS11_PIN";

impl ServeArgs {
    /// The master key, where the flags say it lives: unwrapped by the PKCS#11 HSM when
    /// `--pkcs11-module` is given, otherwise from `CITADEL_MASTER_KEY` or `<data-dir>/master.key`.
    ///
    /// # Errors
    /// A missing `CITADEL_PKCS11_PIN` with the HSM option, or any [`citadel_store::MasterKeyError`].
    pub fn load_master_key(&self) -> anyhow::Result<citadel_store::MasterKey> {
        let (Some(module), Some(token)) = (&self.pkcs11_module, &self.pkcs11_token) else {
            return Ok(citadel_store::MasterKey::load_or_create(&self.data_dir)?);
        };
        let pin = std::env::var(PKCS11_PIN_ENV).map_err(|_| {
            anyhow::anyhow!("--pkcs11-module is set, so {PKCS11_PIN_ENV} must hold the token's user PIN")
        })?;
        let config =
            citadel_store::Pkcs11Config::new(module.clone(), token.clone(), pin, self.pkcs11_key_label.clone());
        Ok(citadel_store::MasterKey::load_or_create_pkcs11(
            &self.data_dir,
            &config,
        )?)
    }
}

/// `citadel agent` flags.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// The agent configuration: `[{"file", "log_group", "log_stream"}]`.
    #[arg(long)]
    pub config: PathBuf,
    /// The Citadel endpoint.
    #[arg(long, env = "AWS_ENDPOINT_URL", default_value = "http://127.0.0.1:4566")]
    pub endpoint: String,
    /// The region to sign for.
    #[arg(long, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
    pub region: String,
}

/// Authentication modes.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum AuthArg {
    /// Every request must be signed with a known key.
    Enforce,
    /// Unknown keys act as the default account's root.
    Permissive,
}

/// `citadel policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Evaluates a request against policies: prints allowed, explicitDeny or implicitDeny.
    Eval(PolicyEvalArgs),
    /// Validates a policy document as IAM Access Analyzer would.
    Validate(PolicyValidateArgs),
}

/// `citadel policy eval` flags.
#[derive(Debug, Args)]
pub struct PolicyEvalArgs {
    /// Identity-based policy files (repeatable).
    #[arg(long = "policy")]
    pub policies: Vec<PathBuf>,
    /// Permissions boundary file.
    #[arg(long)]
    pub boundary: Option<PathBuf>,
    /// Session policy file (repeatable).
    #[arg(long = "session-policy")]
    pub session_policies: Vec<PathBuf>,
    /// Resource-based policy file.
    #[arg(long)]
    pub resource_policy: Option<PathBuf>,
    /// The account that owns the resource.
    #[arg(long)]
    pub resource_account: Option<String>,
    /// The calling principal's ARN.
    #[arg(long)]
    pub principal: String,
    /// The action, e.g. s3:GetObject.
    #[arg(long)]
    pub action: String,
    /// The resource ARN.
    #[arg(long, default_value = "*")]
    pub resource: String,
    /// Context entries KEY=VALUE (repeat a key for a multi-valued key).
    #[arg(long = "context")]
    pub context: Vec<String>,
}

/// `citadel policy validate` flags.
#[derive(Debug, Args)]
pub struct PolicyValidateArgs {
    /// The policy file.
    pub file: PathBuf,
    /// The kind of policy: identity, resource or trust.
    #[arg(long, default_value = "identity")]
    pub kind: String,
}

/// `citadel account ...`.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Creates an account with its own root credentials.
    Create {
        /// A display name.
        name: String,
        /// Data directory (the server must not be running on it).
        #[arg(long, env = "CITADEL_DATA_DIR", default_value = "./citadel-data")]
        data_dir: PathBuf,
        /// The account id; random when omitted.
        #[arg(long)]
        account_id: Option<String>,
    },
    /// Lists accounts.
    List {
        /// Data directory.
        #[arg(long, env = "CITADEL_DATA_DIR", default_value = "./citadel-data")]
        data_dir: PathBuf,
    },
}

/// Parses `500ms`, `2s`, `5m`, `1h` or a bare number of seconds.
pub fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("not an interval: {text}"))?;
    let seconds = match unit {
        "ms" => return Ok(std::time::Duration::from_millis(number)),
        "" | "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => return Err(format!("unknown unit in {text}: use ms, s, m or h")),
    };
    if seconds == 0 {
        return Err("an interval must be positive".into());
    }
    Ok(std::time::Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_units() {
        assert_eq!(parse_interval("2s"), Ok(std::time::Duration::from_secs(2)));
        assert_eq!(parse_interval("5m"), Ok(std::time::Duration::from_secs(300)));
        assert_eq!(parse_interval("1h"), Ok(std::time::Duration::from_secs(3600)));
        assert_eq!(parse_interval("250ms"), Ok(std::time::Duration::from_millis(250)));
        assert_eq!(parse_interval("7"), Ok(std::time::Duration::from_secs(7)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("3d").is_err());
        assert!(parse_interval("soon").is_err());
    }
}
