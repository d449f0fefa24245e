//! The HTTP(S) listener: hyper on tokio, optional rustls, graceful shutdown.

use crate::app::App;
use crate::config::ServeArgs;
use anyhow::Context as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // The handlers are installed before anything is announced: a signal sent as soon as the
    // "listening" line appears (as supervisors and tests do) must shut down gracefully, not kill.
    let shutdown = shutdown_signal()?;
    let tls = tls_config(&args)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let app = App::open(&args).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("Citadel listening on {scheme}://{}", listener.local_addr()?);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(acceptor) => {
                            let Ok(tls_stream) = acceptor.accept(stream).await else { return };
                            let service = service_fn(move |req| {
                                let app = app.clone();
                                async move { Ok::<_, std::convert::Infallible>(app.serve(req, remote, true).await) }
                            });
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                            let _ = watcher.watch(conn.into_owned()).await;
                        }
                        None => {
                            let service = service_fn(move |req| {
                                let app = app.clone();
                                async move { Ok::<_, std::convert::Infallible>(app.serve(req, remote, false).await) }
                            });
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn.into_owned()).await;
                        }
                    }
                });
            }
            () = &mut shutdown => {
                println!("Citadel shutting down");
                break;
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish in time");
    }
    app.close().await;
    println!("Citadel stopped");
    Ok(())
}

/// Registers for SIGINT (Ctrl-C) and SIGTERM now; the returned future completes on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

fn tls_config(args: &ServeArgs) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let (cert_pem, key_pem) = match (&args.tls_cert, &args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), _) => (
            std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?,
            std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
        ),
        (_, _, true) => self_signed(&args.data_dir)?,
        _ => return Ok(None),
    };
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice()).collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())?.context("no private key in the key file")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// Makes (once) a development certificate for localhost in the data directory.
fn self_signed(data_dir: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    std::fs::create_dir_all(data_dir)?;
    let cert_path = data_dir.join("tls-cert.pem");
    let key_path = data_dir.join("tls-key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((std::fs::read(&cert_path)?, std::fs::read(&key_path)?));
    }
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
        "*.localhost".to_string(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)?;
    let cert = certified.cert.pem();
    let key = certified.signing_key.serialize_pem();
    std::fs::write(&cert_path, &cert)?;
    crate::app::write_private(&key_path, &key)?;
    Ok((cert.into_bytes(), key.into_bytes()))
}
