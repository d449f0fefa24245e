//! The `citadel` binary: CLI, server start-up and offline tools.

mod app;
mod config;
mod policy_cli;
mod server;

use clap::Parser;
use config::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CITADEL_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(args) => runtime().and_then(|rt| rt.block_on(server::run(args))),
        Command::Policy(command) => policy_cli::run(command),
        Command::Account(command) => runtime().and_then(|rt| rt.block_on(app::account_command(command))),
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
