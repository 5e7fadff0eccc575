//! `redline`: parse the command line, layer the configuration, set up logging, run the
//! command, and turn the outcome into an exit code (0 success, 1 runtime failure with a
//! one-line message on stderr, 2 usage error from clap).

mod cli;
mod config;
mod ops;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use redline_core::Shutdown;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("redline: error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause its parent already quotes
/// (many library errors include their source in their own message).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

fn run(cli: Cli) -> Result<()> {
    let file = config::File::load(cli.config.as_deref())?;
    let global = file.layer(&config::GlobalArgs {
        log_format: cli.log_format,
        log_level: cli.log_level.clone(),
    })?;
    init_logging(
        global.log_format.unwrap_or_default(),
        global.log_level.as_deref(),
    )?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        redline_core::telemetry::install();
        let shutdown = Shutdown::new();
        if matches!(
            cli.command,
            Command::Producer { .. } | Command::Consumer { .. } | Command::Run { .. }
        ) {
            shutdown.trigger_on_signals();
        }
        match cli.command {
            Command::Producer { common, producer } => {
                let common = config::Common::new(&file.layer(&common)?)?;
                let producer = config::producer(&common, &file.layer(&producer)?)?;
                redline_producer::run(producer, shutdown).await?;
            }
            Command::Consumer { common, consumer } => {
                let common = config::Common::new(&file.layer(&common)?)?;
                let consumer = config::consumer(&common, &file.layer(&consumer)?)?;
                redline_consumer::run(consumer, shutdown).await?;
            }
            Command::Run {
                common,
                producer,
                consumer,
            } => {
                let common = config::Common::new(&file.layer(&common)?)?;
                let producer = config::producer(&common, &file.layer(&producer)?)?;
                let consumer = config::consumer(&common, &file.layer(&consumer)?)?;
                // Either half failing stops the other: one process, one fate.
                let (p, c) = tokio::join!(
                    stop_all_on_error(redline_producer::run(producer, shutdown.clone()), &shutdown),
                    stop_all_on_error(redline_consumer::run(consumer, shutdown.clone()), &shutdown),
                );
                p.context("producer")?;
                c.context("consumer")?;
            }
            command @ (Command::Status { .. }
            | Command::Pending { .. }
            | Command::Claim { .. }
            | Command::Consumers { .. }
            | Command::Dlq { .. }
            | Command::Trim { .. }) => {
                let common = config::Common::new(&file.layer(command.common())?)?;
                return ops::run(command, &common).await;
            }
        }
        tracing::info!("Stopped cleanly.");
        Ok(())
    })
}

async fn stop_all_on_error<E>(
    task: impl std::future::Future<Output = std::result::Result<(), E>>,
    shutdown: &Shutdown,
) -> std::result::Result<(), E> {
    let result = task.await;
    if result.is_err() {
        shutdown.trigger();
    }
    result
}

fn init_logging(format: LogFormat, level: Option<&str>) -> Result<()> {
    let filter = match level {
        Some(level) => {
            EnvFilter::try_new(level).with_context(|| format!("invalid --log-level '{level}'"))?
        }
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}
