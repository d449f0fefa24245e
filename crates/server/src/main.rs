//! The `citadel` binary: CLI, server start-up and offline tools.

mod admin_client;
mod app;
mod backup;
mod config;
mod policy_cli;
mod s3_cli;
mod server;
mod trail_logs_sink;
mod trail_sink;

use clap::Parser;
use config::{Cli, Command};
use std::process::ExitCode;

/// mimalloc instead of glibc's allocator: the store's committer thread frees what request threads
/// allocated (audit batches, redb's evicted pages), and glibc's cross-arena frees and consolidation
/// cost about an eighth of the server's CPU under load. Measured side by side: 10-25 % more
/// requests per second, idle anonymous memory 1.5 -> 2.1 MiB (BENCHMARKS.md, session 6).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CITADEL_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(args) => runtime().and_then(|rt| rt.block_on(server::run(args))),
        Command::Policy(command) => policy_cli::run(command),
        Command::Agent(args) => runtime().and_then(|rt| rt.block_on(agent(args))),
        Command::Account(command) => runtime().and_then(|rt| rt.block_on(app::account_command(command))),
        Command::S3(command) => runtime().and_then(|rt| rt.block_on(s3_cli::run(command))),
        Command::Backup(args) => runtime().and_then(|rt| rt.block_on(app::backup_command(args))),
        Command::Restore(args) => runtime().and_then(|rt| rt.block_on(app::restore_command(args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("citadel: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// `citadel agent`: credentials come from the usual AWS environment variables.
async fn agent(args: config::AgentArgs) -> anyhow::Result<()> {
    let access_key_id =
        std::env::var("AWS_ACCESS_KEY_ID").map_err(|_| anyhow::anyhow!("AWS_ACCESS_KEY_ID is not set"))?;
    let secret_access_key =
        std::env::var("AWS_SECRET_ACCESS_KEY").map_err(|_| anyhow::anyhow!("AWS_SECRET_ACCESS_KEY is not set"))?;
    let credentials = citadel_logs::AgentCredentials {
        access_key_id,
        secret_access_key,
        session_token: std::env::var("AWS_SESSION_TOKEN").ok(),
        region: args.region,
    };
    citadel_logs::run_agent(&args.config, &args.endpoint, credentials)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}
