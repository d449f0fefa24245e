//! A stand-alone S3 endpoint for trying the crate with boto3 or the aws CLI before the server
//! routes S3: `cargo run -p citadel-s3 --example serve -- 127.0.0.1:9000 /tmp/s3-data`.
//! It creates account 000000000000 with the well-known example root key.

use citadel_core::authz::Authorizer;
use citadel_core::clock::SystemClock;
use citadel_core::identity::CredentialResolver;
use citadel_core::random::OsRandom;
use citadel_core::{Clock, IdGen};
use citadel_s3::{S3Config, S3Frontend};
use citadel_store::{FsBlobStore, MasterKey, RedbStore, Store};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Accepts `ADDR DIR`, or the server's `serve --listen ADDR --data-dir DIR` so that the Python
    // suite can run against it with CITADEL_BIN.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (listen, dir) = if args.first().is_some_and(|a| a == "serve") {
        (
            flag("--listen").unwrap_or_else(|| "127.0.0.1:0".into()),
            flag("--data-dir").unwrap_or_else(|| "/tmp/citadel-s3-example".into()),
        )
    } else {
        (
            args.first().cloned().unwrap_or_else(|| "127.0.0.1:9000".into()),
            args.get(1).cloned().unwrap_or_else(|| "/tmp/citadel-s3-example".into()),
        )
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.join("meta.redb"))?);
    let blobs = Arc::new(FsBlobStore::new(&dir.join("blobs"))?);
    let master = Arc::new(MasterKey::generate());
    let ids = IdGen::new(Arc::new(OsRandom));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let _ = citadel_core::account::create_account(
        store.as_ref(),
        &master,
        &ids,
        "000000000000",
        "example",
        Some((
            "AKIAIOSFODNN7EXAMPLE".into(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        )),
        clock.now(),
    )
    .await;
    let frontend = Arc::new(S3Frontend::new(S3Config {
        store: store.clone(),
        blobs,
        master: master.clone(),
        credentials: Arc::new(CredentialResolver::new(store.clone(), master.clone())),
        authorizer: Arc::new(Authorizer::default()),
        clock,
        ids,
        region: "us-east-1".into(),
        account_id: "000000000000".into(),
        base_domain: None,
    }));
    // Pretend to be TLS (for trying SSE-C, which AWS refuses over plain HTTP).
    let secure = std::env::var("CITADEL_S3_EXAMPLE_SECURE").is_ok_and(|v| v == "1");
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("Citadel listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, remote) = listener.accept().await?;
        let frontend = frontend.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let frontend = frontend.clone();
                async move {
                    let req = req.map(s3s::Body::from);
                    let resp = frontend.handle(req, remote, secure).await;
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
