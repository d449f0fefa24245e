//! The application: builds the store, the pipeline and the services, and answers HTTP requests.

use crate::config::{AuthArg, ServeArgs};
use anyhow::Context as _;
use bytes::Bytes;
use citadel_core::account::{self, RootCredentials};
use citadel_core::authz::Authorizer;
use citadel_core::clock::{Clock, SystemClock};
use citadel_core::identity::CredentialResolver;
use citadel_core::random::{IdGen, OsRandom};
use citadel_core::{AuthMode, IncomingRequest, Pipeline, PipelineConfig};
use citadel_store::{MasterKey, RedbStore, Store};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Everything a request needs.
pub struct App {
    pub pipeline: Pipeline,
    pub store: Arc<dyn Store>,
    s3: Arc<citadel_s3::S3Frontend>,
    delivery: tokio::task::JoinHandle<()>,
    delivery_lease: citadel_core::lease::Lease,
    master: Arc<MasterKey>,
    root: RootCredentials,
    test_api: bool,
    started: Instant,
    max_body_bytes: usize,
    data_dir: std::path::PathBuf,
    /// The local blob store, kept concretely for backups (deletions are held while one runs).
    fs_blobs: Option<citadel_store::FsBlobStore>,
}

/// The file holding the default account's root credentials.
pub const ROOT_CREDENTIALS_FILE: &str = "root-credentials";

impl App {
    /// Opens the data directory and builds the pipeline.
    pub async fn open(args: &ServeArgs) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
        // A first start creates the master key, the store file and the root credentials file,
        // each made durable with fsyncs; the independent ones run side by side (see `open_fresh`).
        let store_file = args.data_dir.join(STORE_FILE);
        let fresh = args.store == "embedded" && !store_file.exists();
        let (master, store) = if fresh {
            open_fresh(args, &store_file)?
        } else {
            let master = Arc::new(args.load_master_key().context("loading the master key")?);
            (master, open_store(&args.store, &args.data_dir).await?)
        };
        let check_row = check_master_key(store.as_ref(), &master).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::with_offset(time::Duration::seconds(
            args.clock_offset_seconds,
        )));
        let ids = IdGen::new(Arc::new(OsRandom));
        let root = bootstrap_account(
            store.as_ref(),
            &master,
            &ids,
            &args.account_id,
            &args.data_dir,
            clock.now(),
            fresh,
        )
        .await?;
        // Queued only now, so that the account's commit does not wait behind it (see
        // `check_master_key`).
        if let Some(batch) = check_row {
            store.submit(batch);
        }
        let credentials = Arc::new(CredentialResolver::new(store.clone(), master.clone()));
        let authorizer = Arc::new(Authorizer::default());
        let config = PipelineConfig {
            region: args.region.clone(),
            account_id: args.account_id.clone(),
            auth_mode: match args.auth {
                AuthArg::Enforce => AuthMode::Enforce,
                AuthArg::Permissive => AuthMode::Permissive,
            },
            max_body_bytes: args.max_body_bytes,
        };
        let iam = Arc::new(citadel_iam::Iam::new(store.clone(), master.clone(), ids.clone()));
        citadel_iam::install(&iam, &credentials, &authorizer);
        let mut pipeline = Pipeline::new(config, credentials, authorizer, store.clone(), clock, ids.clone());
        pipeline.register(iam);
        pipeline.register(Arc::new(citadel_logs::Logs::new(store.clone())));
        pipeline.register(Arc::new(citadel_logs::CloudWatch::new(store.clone())));
        let directory = Arc::new(citadel_sts::directory::IamDirectory::new(store.clone(), master.clone()));
        let sts = Arc::new(citadel_sts::Sts::new(
            store.clone(),
            &master,
            pipeline.ids().clone(),
            directory,
        ));
        citadel_sts::install(&sts, pipeline.credentials());
        if let (Some(address), Some(role)) = (args.imds_listen, &args.imds_role) {
            let imds = citadel_sts::imds::Imds::new(sts.clone(), role, &args.account_id, pipeline.clock().clone());
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("binding {address}"))?;
            println!("Citadel instance metadata on http://{}", listener.local_addr()?);
            tokio::spawn(Arc::new(imds).serve(listener));
        }
        pipeline.register(sts);
        pipeline.register(Arc::new(citadel_kms::Kms::new(
            store.clone(),
            master.clone(),
            ids.clone(),
        )));
        let (blobs, fs_blobs) = blobs_dir(args.blobs.as_deref(), &args.data_dir)?;
        let sse_kms = Arc::new(citadel_kms::KmsDataKeys::new(
            store.clone(),
            master.clone(),
            ids.clone(),
            pipeline.clock().clone(),
        ));
        let s3 = Arc::new(citadel_s3::S3Frontend::new(citadel_s3::S3Config {
            store: store.clone(),
            blobs,
            master: master.clone(),
            credentials: pipeline.credentials().clone(),
            authorizer: pipeline.authorizer().clone(),
            clock: pipeline.clock().clone(),
            ids,
            region: args.region.clone(),
            account_id: args.account_id.clone(),
            base_domain: None,
        }));
        s3.set_kms_provider(sse_kms.clone());
        s3.set_data_event_gate(Arc::new(crate::trail_sink::TrailDataEventGate(
            citadel_cloudtrail::data_events::DataEventTrails::new(store.clone()),
        )));
        s3.set_access_log_interval(args.access_log_interval);
        s3.spawn_access_log_delivery();
        let sink = Arc::new(crate::trail_sink::S3TrailSink {
            s3: s3.clone(),
            store: store.clone(),
            kms: sse_kms,
            authorizer: pipeline.authorizer().clone(),
            clock: pipeline.clock().clone(),
        });
        let log_sink = Arc::new(crate::trail_logs_sink::LogsTrailSink {
            logs: Arc::new(citadel_logs::Logs::new(store.clone())),
            authorizer: pipeline.authorizer().clone(),
            roles: Arc::new(citadel_sts::directory::IamDirectory::new(store.clone(), master.clone())),
            clock: pipeline.clock().clone(),
        });
        pipeline.register(Arc::new(
            citadel_cloudtrail::CloudTrail::new(store.clone(), master.clone(), pipeline.ids().clone(), sink.clone())
                .with_log_sink(log_sink.clone()),
        ));
        // Renewed every delivery pass; a dead holder's lease lapses after three missed passes.
        let delivery_lease = citadel_core::lease::Lease::new(
            store.clone(),
            pipeline.clock().clone(),
            "cloudtrail-delivery",
            &node_id(&args.data_dir)?,
            (args.trail_delivery_interval * 3).max(std::time::Duration::from_secs(10)),
        );
        let delivery = citadel_cloudtrail::spawn_delivery(
            store.clone(),
            master.clone(),
            pipeline.clock().clone(),
            pipeline.ids().clone(),
            sink,
            log_sink,
            args.trail_delivery_interval,
            args.digest_interval,
            std::time::Duration::from_secs(1),
            delivery_lease.clone(),
        );
        Ok(Arc::new(Self {
            pipeline,
            store,
            s3,
            delivery,
            delivery_lease,
            master,
            root,
            test_api: args.test_api,
            started: Instant::now(),
            max_body_bytes: args.max_body_bytes,
            data_dir: args.data_dir.clone(),
            fs_blobs,
        }))
    }

    /// Answers one HTTP request.
    pub async fn serve(
        self: Arc<Self>,
        req: http::Request<hyper::body::Incoming>,
        remote: SocketAddr,
        secure: bool,
    ) -> http::Response<citadel_s3::Body> {
        let (mut parts, body) = req.into_parts();
        // HTTP/2 carries the host in `:authority`; signatures cover it as the `host` header.
        if !parts.headers.contains_key(http::header::HOST)
            && let Some(authority) = parts
                .uri
                .authority()
                .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(http::header::HOST, authority);
        }
        let path = parts.uri.path();
        if path == "/_citadel/accounts" && parts.method == http::Method::POST {
            return self
                .create_account_api(parts, body, remote, secure)
                .await
                .map(citadel_s3::Body::from);
        }
        if path == "/_citadel/backup" && parts.method == http::Method::POST {
            return self
                .backup_api(parts, body, remote, secure)
                .await
                .map(citadel_s3::Body::from);
        }
        if path.starts_with("/_citadel/") || path.starts_with("/moto-api/") {
            return self.admin(&parts, path).await.map(citadel_s3::Body::from);
        }
        if citadel_s3::is_s3_request(&parts.method, &parts.uri, &parts.headers) {
            let req = http::Request::from_parts(parts, citadel_s3::Body::from(body));
            return self.s3.handle(req, remote, secure).await;
        }
        if let Some(len) = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            && len > self.max_body_bytes
        {
            return too_large();
        }
        let limited = http_body_util::Limited::new(body, self.max_body_bytes);
        let body = match limited.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return too_large(),
        };
        let incoming = IncomingRequest {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
            remote,
            secure,
        };
        self.pipeline.handle(incoming).await.map(citadel_s3::Body::from)
    }

    async fn admin(&self, parts: &http::request::Parts, path: &str) -> http::Response<Bytes> {
        match (parts.method.as_str(), path) {
            ("GET", "/_citadel/health") => {
                let mut services: Vec<&str> = self.pipeline.services().map(|s| s.spec().signing_name).collect();
                services.push("s3");
                services.sort_unstable();
                let body = serde_json::json!({
                    "status": "ok",
                    "version": env!("CARGO_PKG_VERSION"),
                    "uptime_seconds": self.started.elapsed().as_secs_f64(),
                    "services": services,
                });
                json_response(200, &body)
            }
            ("POST", "/_citadel/reset" | "/moto-api/reset") if self.test_api => match self.reset().await {
                Ok(()) => json_response(200, &serde_json::json!({"status": "reset"})),
                Err(err) => {
                    tracing::error!(error = %err, "reset failed");
                    json_response(500, &serde_json::json!({"error": err.to_string()}))
                }
            },
            _ => json_response(404, &serde_json::json!({"error": "not found"})),
        }
    }

    /// Reads an admin request's body and checks that it is SigV4-signed by the default account's
    /// root user; otherwise answers the error to send back.
    async fn authenticate_root(
        &self,
        parts: http::request::Parts,
        body: hyper::body::Incoming,
        remote: SocketAddr,
        secure: bool,
        what: &str,
    ) -> Result<IncomingRequest, http::Response<Bytes>> {
        let body = match http_body_util::Limited::new(body, 64 * 1024).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(json_response(413, &serde_json::json!({"error": "body too large"}))),
        };
        let req = IncomingRequest {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
            remote,
            secure,
        };
        let query = citadel_core::wire_auth::query_params(&req);
        let family = citadel_core::wire_auth::Family::Json;
        let Some(route) = citadel_core::wire_auth::route(&req, &query) else {
            return Err(json_response(
                403,
                &serde_json::json!({"error": "MissingAuthenticationToken"}),
            ));
        };
        let now = self.pipeline.clock().now();
        let principal = match self.pipeline.authenticate(&req, &route, now).await {
            Ok(principal) => principal,
            Err(failure) => {
                let err = failure.to_aws(family);
                return Err(json_response(
                    err.status,
                    &serde_json::json!({"error": err.code, "message": err.message}),
                ));
            }
        };
        if !principal.is_root() || principal.account_id != self.root.account_id {
            return Err(json_response(
                403,
                &serde_json::json!({"error": "AccessDenied",
                "message": format!("Only the default account's root user may {what}.")}),
            ));
        }
        Ok(req)
    }

    /// `POST /_citadel/backup` with `{"Directory": "/absolute/path"}`: writes a consistent backup
    /// while serving (see `backup.rs`). Root of the default account only.
    async fn backup_api(
        &self,
        parts: http::request::Parts,
        body: hyper::body::Incoming,
        remote: SocketAddr,
        secure: bool,
    ) -> http::Response<Bytes> {
        let req = match self
            .authenticate_root(parts, body, remote, secure, "take backups")
            .await
        {
            Ok(req) => req,
            Err(response) => return response,
        };
        let input: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let Some(dir) = input
            .get("Directory")
            .and_then(|v| v.as_str())
            .map(std::path::PathBuf::from)
        else {
            return json_response(
                400,
                &serde_json::json!({"error": "ValidationError", "message": "Directory is required"}),
            );
        };
        if !dir.is_absolute() {
            return json_response(
                400,
                &serde_json::json!({"error": "ValidationError", "message": "Directory must be an absolute path"}),
            );
        }
        match crate::backup::write_backup(self.store.as_ref(), self.fs_blobs.as_ref(), &self.data_dir, &dir).await {
            Ok(manifest) => json_response(200, &serde_json::to_value(manifest).unwrap_or_default()),
            Err(err) => json_response(
                500,
                &serde_json::json!({"error": "BackupFailed", "message": format!("{err:#}")}),
            ),
        }
    }

    /// `POST /_citadel/accounts` with `{"Name": ..., "AccountId": optional}`: creates an account with its
    /// own root credentials. The request must be SigV4-signed by the default account's root user.
    async fn create_account_api(
        &self,
        parts: http::request::Parts,
        body: hyper::body::Incoming,
        remote: SocketAddr,
        secure: bool,
    ) -> http::Response<Bytes> {
        let req = match self
            .authenticate_root(parts, body, remote, secure, "create accounts")
            .await
        {
            Ok(req) => req,
            Err(response) => return response,
        };
        let now = self.pipeline.clock().now();
        let input: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let name = input
            .get("Name")
            .and_then(|v| v.as_str())
            .unwrap_or("account")
            .to_string();
        let account_id = match input.get("AccountId").and_then(|v| v.as_str()) {
            Some(id) => id.to_string(),
            None => match account::fresh_account_id(self.store.as_ref(), self.pipeline.ids()).await {
                Ok(id) => id,
                Err(err) => return json_response(500, &serde_json::json!({"error": err.to_string()})),
            },
        };
        match account::create_account(
            self.store.as_ref(),
            &self.master,
            self.pipeline.ids(),
            &account_id,
            &name,
            None,
            now,
        )
        .await
        {
            Ok(root) => json_response(
                200,
                &serde_json::json!({
                    "AccountId": root.account_id, "Name": name,
                    "AccessKeyId": root.access_key_id, "SecretAccessKey": root.secret_access_key,
                }),
            ),
            Err(account::AccountError::Exists(id)) => json_response(
                409,
                &serde_json::json!({"error": "EntityAlreadyExists", "message": format!("account {id} exists")}),
            ),
            Err(account::AccountError::Invalid(message)) => json_response(
                400,
                &serde_json::json!({"error": "ValidationError", "message": message}),
            ),
            Err(err) => json_response(500, &serde_json::json!({"error": err.to_string()})),
        }
    }

    /// Wipes every table and recreates the default account with the same root credentials.
    async fn reset(&self) -> anyhow::Result<()> {
        self.store.clear().await?;
        let now = self.pipeline.clock().now();
        account::create_account(
            self.store.as_ref(),
            &self.master,
            self.pipeline.ids(),
            &self.root.account_id,
            "default",
            Some((self.root.access_key_id.clone(), self.root.secret_access_key.clone())),
            now,
        )
        .await?;
        Ok(())
    }

    /// Closes the store cleanly.
    pub async fn close(&self) {
        self.s3.flush_access_logs().await;
        self.delivery.abort();
        if let Err(err) = self.delivery_lease.release().await {
            tracing::warn!(error = %err, "could not release the delivery lease");
        }
        if let Err(err) = self.store.close().await {
            tracing::error!(error = %err, "closing the store failed");
        }
    }
}

fn json_response(status: u16, body: &serde_json::Value) -> http::Response<Bytes> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Bytes::from(serde_json::to_vec(body).unwrap_or_default()))
        .unwrap_or_else(|_| http::Response::new(Bytes::new()))
}

fn too_large() -> http::Response<citadel_s3::Body> {
    http::Response::builder()
        .status(413)
        .header("content-type", "text/plain")
        .body(citadel_s3::Body::from(Bytes::from_static(b"Request entity too large")))
        .unwrap_or_else(|_| http::Response::new(citadel_s3::Body::from(Bytes::new())))
}

/// Creates the default account on first start; otherwise reads its root credentials back.
async fn bootstrap_account(
    store: &dyn Store,
    master: &MasterKey,
    ids: &IdGen,
    account_id: &str,
    data_dir: &Path,
    now: time::OffsetDateTime,
    fresh: bool,
) -> anyhow::Result<RootCredentials> {
    let file = data_dir.join(ROOT_CREDENTIALS_FILE);
    if fresh {
        return bootstrap_fresh(store, master, ids, account_id, data_dir, now).await;
    }
    if let Some(record) = account::load_account(store, account_id).await? {
        // The store is authoritative: the root key is there, sealed under the master key every
        // node shares. The file is this node's copy; it may be missing (another node on a shared
        // store created the account) or cut short by a crash, and is rewritten then.
        let from_file = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| parse_root_credentials(account_id, &text));
        let root = match stored_root_credentials(store, master, &record).await {
            Ok(root) => root,
            Err(err) => return from_file.ok_or(err),
        };
        if from_file.as_ref() != Some(&root) {
            write_private(&file, &root_credentials_text(&root))?;
        }
        return Ok(root);
    }
    let from_env = root_from_env();
    let generated = from_env.is_none();
    let root = match account::create_account(store, master, ids, account_id, "default", from_env, now).await {
        Ok(root) => root,
        // Another node sharing the store created it a moment ago.
        Err(account::AccountError::Exists(_)) => {
            return Box::pin(bootstrap_account(store, master, ids, account_id, data_dir, now, false)).await;
        }
        Err(err) => return Err(err.into()),
    };
    write_private(&file, &root_credentials_text(&root))?;
    announce_root(&root, &file, generated);
    Ok(root)
}

/// The environment's root credentials (`CITADEL_ROOT_ACCESS_KEY_ID`, `CITADEL_ROOT_SECRET_ACCESS_KEY`).
fn root_from_env() -> Option<(String, String)> {
    match (
        std::env::var("CITADEL_ROOT_ACCESS_KEY_ID"),
        std::env::var("CITADEL_ROOT_SECRET_ACCESS_KEY"),
    ) {
        (Ok(id), Ok(secret)) if !id.is_empty() && !secret.is_empty() => Some((id, secret)),
        _ => None,
    }
}

fn root_credentials_text(root: &RootCredentials) -> String {
    format!(
        "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n# account {}\n",
        root.access_key_id, root.secret_access_key, root.account_id
    )
}

/// The first start on an embedded store this process has just created: no account can exist
/// (redb locks its file), so the root credentials are chosen first and their file is written and
/// fsync'd while the store commits the account, instead of after it. The master key is already
/// durable (`open_fresh`), so the sealed root key never outlives the key it is sealed under.
/// A crash between the two leaves either a credentials file for an account that was never
/// committed (the next start creates the account again and rewrites the file) or an account
/// without its file (the next start rewrites the file from the store).
async fn bootstrap_fresh(
    store: &dyn Store,
    master: &MasterKey,
    ids: &IdGen,
    account_id: &str,
    data_dir: &Path,
    now: time::OffsetDateTime,
) -> anyhow::Result<RootCredentials> {
    let file = data_dir.join(ROOT_CREDENTIALS_FILE);
    let from_env = root_from_env();
    let generated = from_env.is_none();
    let (access_key_id, secret_access_key) = from_env.unwrap_or_else(|| (ids.aws_id("AKIA"), ids.secret_access_key()));
    let text = root_credentials_text(&RootCredentials {
        account_id: account_id.to_string(),
        access_key_id: access_key_id.clone(),
        secret_access_key: secret_access_key.clone(),
    });
    let writer = {
        let file = file.clone();
        let dir = data_dir.to_path_buf();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            write_private(&file, &text)?;
            // One directory fsync for the entries a first start creates: the credentials file
            // and the store file.
            sync_dir(&dir)
        })
    };
    let created = account::create_account(
        store,
        master,
        ids,
        account_id,
        "default",
        Some((access_key_id, secret_access_key)),
        now,
    )
    .await;
    let written = writer.await.context("writing the root credentials file")?;
    let root = match created {
        Ok(root) => root,
        Err(account::AccountError::Exists(_)) => {
            // Not expected on a store this process created, but never leave a file that names
            // credentials other than the stored ones.
            let _ = std::fs::remove_file(&file);
            return Box::pin(bootstrap_account(store, master, ids, account_id, data_dir, now, false)).await;
        }
        Err(err) => return Err(err.into()),
    };
    written?;
    announce_root(&root, &file, generated);
    Ok(root)
}

fn announce_root(root: &RootCredentials, file: &Path, generated: bool) {
    if generated {
        println!(
            "Created account {} with root credentials (shown once; also in {}):\n  AWS_ACCESS_KEY_ID={}\n  AWS_SECRET_ACCESS_KEY={}",
            root.account_id,
            file.display(),
            root.access_key_id,
            root.secret_access_key
        );
    } else {
        println!(
            "Created account {} with the root credentials from the environment.",
            root.account_id
        );
    }
}

/// Makes the entries of `dir` durable.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// The embedded store's file in the data directory.
const STORE_FILE: &str = "citadel.redb";

/// Loads (creating) the master key and creates the embedded store at the same time: on a first
/// start both are new files whose creation waits on fsyncs, and neither depends on the other.
/// Nothing is sealed or committed until both are durable.
fn open_fresh(args: &ServeArgs, store_file: &Path) -> anyhow::Result<(Arc<MasterKey>, Arc<dyn Store>)> {
    let (master, store) = std::thread::scope(|scope| {
        let master = scope.spawn(|| args.load_master_key().context("loading the master key"));
        let store = RedbStore::open(store_file).context("opening the store");
        let master = master
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("loading the master key panicked")));
        (master, store)
    });
    let store: Arc<dyn Store> = Arc::new(store?);
    Ok((Arc::new(master?), store))
}

/// The default account's root credentials as the store holds them.
async fn stored_root_credentials(
    store: &dyn Store,
    master: &MasterKey,
    record: &account::AccountRecord,
) -> anyhow::Result<RootCredentials> {
    let raw = store
        .get(
            citadel_core::identity::ACCESS_KEYS,
            record.root_access_key_id.as_bytes(),
        )
        .await?
        .context("the account's root access key is missing from the store")?;
    let key: citadel_core::identity::AccessKeyRecord =
        serde_json::from_slice(&raw).context("reading the root access key")?;
    let secret = key
        .secret(master)
        .context("the root key cannot be unsealed with this master key")?;
    Ok(RootCredentials {
        account_id: record.account_id.clone(),
        access_key_id: record.root_access_key_id.clone(),
        secret_access_key: String::from_utf8(secret.to_vec()).context("the root secret is not text")?,
    })
}

/// Opens the store `--store` names.
async fn open_store(spec: &str, data_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    if spec == "embedded" {
        return Ok(Arc::new(
            RedbStore::open(&data_dir.join(STORE_FILE)).context("opening the store")?,
        ));
    }
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        let store = citadel_store::PgStore::connect(spec)
            .await
            .context("connecting to the PostgreSQL store")?;
        return Ok(Arc::new(store));
    }
    anyhow::bail!("--store must be `embedded` or a postgres:// URL, not {spec:?}")
}

/// The blob store `--blobs` names: a directory (`file:///path`, or the data directory's), or an
/// S3-compatible store (`s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION`, with credentials from
/// `CITADEL_BLOBS_ACCESS_KEY_ID`/`CITADEL_BLOBS_SECRET_ACCESS_KEY` or the standard AWS variables).
/// A directory is also returned concretely, for backups; an object store backs up its own blobs.
fn blobs_dir(
    spec: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<(Arc<dyn citadel_store::BlobStore>, Option<citadel_store::FsBlobStore>)> {
    let dir = match spec {
        None => {
            let fs_blobs =
                citadel_store::FsBlobStore::new(&data_dir.join("blobs")).context("opening the blob store")?;
            return Ok((Arc::new(fs_blobs.clone()), Some(fs_blobs)));
        }
        Some(url) if url.starts_with("s3://") => {
            let store = citadel_store::object_blob::ObjectBlobStore::from_url(url)
                .context("configuring the S3-compatible blob store")?;
            return Ok((Arc::new(store), None));
        }
        Some(url) => match url.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => std::path::PathBuf::from(path),
            _ => anyhow::bail!("--blobs must be a file:///absolute/path or an s3://BUCKET URL, not {url:?}"),
        },
    };
    // A directory given by URL may be shared by several nodes: each keeps its own temp area.
    let fs_blobs = citadel_store::FsBlobStore::shared(&dir, &node_id(data_dir)?)
        .with_context(|| format!("opening the blob store in {}", dir.display()))?;
    Ok((Arc::new(fs_blobs.clone()), Some(fs_blobs)))
}

/// This node's stable identity, kept in `<data-dir>/node-id`: the holder name of its leases (so a
/// restarted node takes its own lease back at once instead of waiting for it to expire) and the
/// name of its temp area in a shared blob directory.
fn node_id(data_dir: &Path) -> anyhow::Result<String> {
    let file = data_dir.join("node-id");
    if let Ok(text) = std::fs::read_to_string(&file) {
        let id = text.trim();
        if !id.is_empty() {
            return Ok(id.to_string());
        }
    }
    let id = format!("node-{}", uuid_like());
    std::fs::write(&file, format!("{id}\n")).with_context(|| format!("writing {}", file.display()))?;
    Ok(id)
}

fn uuid_like() -> String {
    let ids = IdGen::new(Arc::new(OsRandom));
    ids.uuid()
}

/// The row that proves which master key a store's secrets are sealed under.
const MASTER_KEY_CHECK: &[u8] = b"master-key-check";
const META: &str = "citadel_meta";

/// Refuses to start with a master key other than the one the store's secrets are sealed under:
/// a second node with its own fresh key would otherwise fail every signature it checks, and
/// could seal new secrets no other node can read.
///
/// On a store without the row, returns the batch that writes it, for the caller to queue.
async fn check_master_key(store: &dyn Store, master: &MasterKey) -> anyhow::Result<Option<citadel_store::WriteBatch>> {
    const PROOF: &[u8] = b"citadel master key check v1";
    match store.get(META, MASTER_KEY_CHECK).await? {
        Some(sealed) => {
            let opened = master.unseal(&sealed, MASTER_KEY_CHECK).map_err(|_| {
                anyhow::anyhow!(
                    "the store's secrets are sealed under a different master key: give every node \
                     the same key (CITADEL_MASTER_KEY, or the same master.key file)"
                )
            })?;
            anyhow::ensure!(opened.as_slice() == PROOF, "the master key check row is damaged");
            Ok(None)
        }
        None => {
            // Queued rather than committed: nothing waits for it, and a row lost to a crash is
            // simply written again on the next start. The caller queues it after the start-up
            // commits, so they never wait behind its fsync. If another node's row lands first,
            // the precondition drops ours.
            let mut batch = citadel_store::WriteBatch::new();
            batch.expect(META, MASTER_KEY_CHECK, None);
            batch.put(META, MASTER_KEY_CHECK, &master.seal(PROOF, MASTER_KEY_CHECK));
            Ok(Some(batch))
        }
    }
}

fn parse_root_credentials(account_id: &str, text: &str) -> Option<RootCredentials> {
    let value = |name: &str| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    Some(RootCredentials {
        account_id: account_id.to_string(),
        access_key_id: value("aws_access_key_id")?,
        secret_access_key: value("aws_secret_access_key")?,
    })
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// `citadel account create|list` against a data directory the server is not using.
pub async fn account_command(command: crate::config::AccountCommand) -> anyhow::Result<()> {
    use crate::config::AccountCommand;
    let data_dir = match &command {
        AccountCommand::Create { data_dir, .. } | AccountCommand::List { data_dir } => data_dir.clone(),
    };
    std::fs::create_dir_all(&data_dir)?;
    let master = MasterKey::load_or_create(&data_dir)?;
    let store = RedbStore::open(&data_dir.join("citadel.redb"))
        .context("opening the store (is a server running on this data directory?)")?;
    let ids = IdGen::new(Arc::new(OsRandom));
    match command {
        AccountCommand::Create { name, account_id, .. } => {
            let account_id = match account_id {
                Some(id) => id,
                None => account::fresh_account_id(&store, &ids).await?,
            };
            let root = account::create_account(
                &store,
                &master,
                &ids,
                &account_id,
                &name,
                None,
                SystemClock::default().now(),
            )
            .await?;
            println!(
                "{}",
                serde_json::json!({
                    "AccountId": root.account_id,
                    "Name": name,
                    "AccessKeyId": root.access_key_id,
                    "SecretAccessKey": root.secret_access_key,
                })
            );
        }
        AccountCommand::List { .. } => {
            for record in account::list_accounts(&store).await? {
                println!("{}\t{}", record.account_id, record.name);
            }
        }
    }
    store.close().await?;
    Ok(())
}

/// `citadel backup DIR`: directly when no server holds the data directory, otherwise through the
/// running server's backup API so that the snapshot is taken while it serves.
pub async fn backup_command(args: crate::config::BackupArgs) -> anyhow::Result<()> {
    let dest = crate::backup::absolute(&args.dir)?;
    let local = match &args.endpoint {
        Some(_) => None,
        None => match RedbStore::open(&args.data_dir.join("citadel.redb")) {
            Ok(store) => Some(store),
            // redb locks its file: a running server holds it, so ask that server.
            Err(err) if err.to_string().contains("already open") => None,
            Err(err) => return Err(err).context("opening the store"),
        },
    };
    let manifest = match local {
        Some(store) => {
            let blobs_dir = args.data_dir.join("blobs");
            let blobs = if blobs_dir.exists() {
                Some(citadel_store::FsBlobStore::new(&blobs_dir)?)
            } else {
                None
            };
            let result = crate::backup::write_backup(&store, blobs.as_ref(), &args.data_dir, &dest).await;
            store.close().await?;
            result?
        }
        None => {
            let endpoint = args.endpoint.as_deref().unwrap_or("http://127.0.0.1:4566");
            let credentials = admin_credentials(&args.data_dir)?;
            let answer = crate::admin_client::post_signed_json(
                endpoint,
                "/_citadel/backup",
                &serde_json::json!({"Directory": dest.to_string_lossy()}),
                &credentials,
            )
            .await?;
            serde_json::from_value(answer).context("reading the server's answer")?
        }
    };
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}

/// The credentials the backup command signs with: the environment's, else the data directory's root.
fn admin_credentials(data_dir: &Path) -> anyhow::Result<crate::admin_client::Credentials> {
    if let (Ok(id), Ok(secret)) = (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(crate::admin_client::Credentials {
            access_key_id: id,
            secret_access_key: secret,
        });
    }
    let file = data_dir.join(ROOT_CREDENTIALS_FILE);
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let root = parse_root_credentials("", &text).context("parsing the root credentials file")?;
    Ok(crate::admin_client::Credentials {
        access_key_id: root.access_key_id,
        secret_access_key: root.secret_access_key,
    })
}

/// `citadel restore DIR`: into a data directory with no store yet, or an empty PostgreSQL store.
pub async fn restore_command(args: crate::config::RestoreArgs) -> anyhow::Result<()> {
    let store_file = args.data_dir.join("citadel.redb");
    if args.store == "embedded" && store_file.exists() {
        anyhow::bail!(
            "{} already holds a store; restore into a new data directory (then point the server at it)",
            args.data_dir.display()
        );
    }
    crate::backup::read_manifest(&args.dir)?;
    std::fs::create_dir_all(&args.data_dir)?;
    let store = open_store(&args.store, &args.data_dir).await?;
    let existing = store.snapshot().await?.tables().await?;
    if !existing.is_empty() {
        store.close().await?;
        anyhow::bail!(
            "the target store is not empty (tables: {}); restore into an empty one",
            existing.join(", ")
        );
    }
    let result = crate::backup::restore_backup(&args.dir, store.as_ref(), &args.data_dir).await;
    store.close().await?;
    match result {
        Ok(manifest) => {
            println!("{}", serde_json::to_string_pretty(&manifest)?);
            Ok(())
        }
        Err(err) => {
            // Leave no half-restored embedded store behind to be mistaken for a good one.
            if args.store == "embedded" {
                let _ = std::fs::remove_file(&store_file);
            }
            Err(err)
        }
    }
}
