//! `redline`: parse the command line, layer the configuration, set up logging, run the
//! command, and turn the outcome into an exit code (0 success, 1 runtime failure with a
//! one-line message on stderr, 2 usage error: from clap, or a value of a flag, variable or
//! config key that `config` refuses).

mod cli;
mod config;
mod ops;
mod send;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches};
use redline_core::Shutdown;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    unset_empty_variables();
    let matches = command()
        .try_get_matches()
        .unwrap_or_else(|error| exit_parse_error(&error));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| exit_parse_error(&error));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("redline: error: {}", one_line(&error));
            // A value redline cannot use is a usage error, like clap's own: exit 2.
            if error.chain().any(|cause| cause.is::<config::Usage>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Removes every `REDLINE_*` variable set to the empty string, before anything reads the
/// environment: an empty variable means unset, for every option alike (as an empty line in
/// an env file or a Kubernetes `value: ""` intends), never "the empty value".
fn unset_empty_variables() {
    let empty: Vec<std::ffi::OsString> = std::env::vars_os()
        .filter(|(name, value)| {
            value.is_empty() && name.to_str().is_some_and(|n| n.starts_with("REDLINE_"))
        })
        .map(|(name, _)| name)
        .collect();
    for name in empty {
        // Single-threaded still: no other thread reads the environment yet.
        std::env::remove_var(name);
    }
}

/// Exits with the argument parser's `error`: help and version as clap prints them; a usage
/// error as one line on stderr, naming the `REDLINE_*` variable when one set the value, and
/// exit code 2.
fn exit_parse_error(error: &clap::Error) -> ! {
    if !error.use_stderr()
        || error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    {
        error.exit();
    }
    let text = error.render().to_string();
    let mut line = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !(l.is_empty() || l.starts_with("Usage:") || l.starts_with("For more information"))
        })
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(clap::error::ContextValue::String(arg)) =
        error.get(clap::error::ContextKind::InvalidArg)
    {
        if let Some(variable) = variable_behind(arg) {
            line.push_str(&format!(" (set by {variable})"));
        }
    }
    eprintln!("redline: {line}");
    std::process::exit(2);
}

/// The `REDLINE_*` variable that gave `arg` (`--batch-size <BATCH_SIZE>`) its value: one is
/// set and the command line does not name the flag.
fn variable_behind(arg: &str) -> Option<String> {
    let flag = arg.split_whitespace().next()?;
    let long = flag.strip_prefix("--")?;
    let on_command_line = std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if on_command_line {
        return None;
    }
    fn find(command: &clap::Command, long: &str) -> Option<String> {
        command
            .get_arguments()
            .filter(|a| a.get_long() == Some(long))
            .filter_map(|a| a.get_env().and_then(|e| e.to_str()).map(str::to_string))
            .find(|name| std::env::var_os(name).is_some())
            .or_else(|| command.get_subcommands().find_map(|sub| find(sub, long)))
    }
    find(&Cli::command(), long)
}

/// The command line, with the values of `REDLINE_*` variables kept out of `--help`: they
/// may hold passwords (`REDLINE_REDIS_URL=redis://:secret@…`) and tokens.
fn command() -> clap::Command {
    fn hide(command: clap::Command) -> clap::Command {
        command
            .mut_args(|arg| arg.hide_env_values(true))
            .mut_subcommands(hide)
    }
    config::with_defaults(hide(Cli::command()))
}

/// The error and its causes on one line (`{:#}`: "what failed: why: why"). Errors name their
/// cause either in their message or as their source, never both, so nothing repeats.
fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}").replace('\n', " ")
}

/// Most runtime threads `--threads` takes.
const MAX_THREADS: usize = 1024;

fn run(cli: Cli) -> Result<()> {
    if let Command::Config { action } = cli.command {
        return config_command(action);
    }
    let file = config::File::load(cli.config.as_deref())?;
    let global = file.layer(&config::GlobalArgs {
        log_format: cli.log_format,
        log_level: cli.log_level.clone(),
        threads: cli.threads,
    })?;
    init_logging(
        global.log_format.unwrap_or_default(),
        global.log_level.as_deref(),
    )?;

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = global.threads {
        if !(1..=MAX_THREADS).contains(&threads) {
            return Err(config::usage(format!(
                "{}: must be between 1 and {MAX_THREADS}",
                config::describe("threads")
            )));
        }
        runtime.worker_threads(threads);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        redline_core::telemetry::record_runtime();
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
                preflight(&common).await?;
                redline_producer::run(producer, shutdown).await?;
            }
            Command::Consumer { common, consumer } => {
                let common = config::Common::new(&file.layer(&common)?)?;
                let consumer = config::consumer(&common, &file.layer(&consumer)?)?;
                preflight(&common).await?;
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
                preflight(&common).await?;
                // Either half failing stops the other: one process, one fate.
                let (p, c) = tokio::join!(
                    stop_all_on_error(redline_producer::run(producer, shutdown.clone()), &shutdown),
                    stop_all_on_error(redline_consumer::run(consumer, shutdown.clone()), &shutdown),
                );
                p.context("producer")?;
                c.context("consumer")?;
            }
            Command::Send { common, send } => {
                let common = config::Common::new(&file.layer(&common)?)?;
                let producer = config::producer(&common, &file.layer(&config::producer_env()?)?)?;
                return send::run(send, &common, &producer).await;
            }
            Command::Config { .. } => unreachable!("handled before the runtime starts"),
            command @ (Command::Status { .. }
            | Command::Pending { .. }
            | Command::Claim { .. }
            | Command::Consumers { .. }
            | Command::Dlq { .. }
            | Command::Trim { .. }) => {
                let Some(common) = command.common() else {
                    unreachable!("ops commands have the common options");
                };
                let common = config::Common::new(&file.layer(common)?)?;
                return ops::run(command, &common).await;
            }
        }
        tracing::info!("Stopped cleanly.");
        Ok(())
    })
}

/// Refuses a Redis that may evict streams. A Redis that cannot be reached now is not an
/// error: the producer answers 503 and the consumer waits until it is back.
async fn preflight(common: &config::Common) -> Result<()> {
    use redline_core::eviction;
    let mut conn = match redline_streams::connect(&common.redis).await {
        Ok(conn) => conn,
        Err(error) => {
            tracing::warn!(%error, "Redis is not reachable yet; starting anyway, it will be retried.");
            return Ok(());
        }
    };
    match eviction::policy(&mut conn).await {
        Ok(Some(policy)) => match eviction::check(&policy) {
            Ok(()) => Ok(()),
            Err(risk) if common.allow_eviction => {
                tracing::warn!(%risk, "Starting anyway: --allow-eviction.");
                Ok(())
            }
            Err(risk) => Err(risk.into()),
        },
        Ok(None) => {
            tracing::warn!("Cannot read Redis's maxmemory-policy (CONFIG is disabled); make sure it is noeviction.");
            Ok(())
        }
        Err(error) => {
            tracing::warn!(%error, "Cannot read Redis's maxmemory-policy; starting anyway.");
            Ok(())
        }
    }
}

/// `redline config example | check FILE`.
fn config_command(action: cli::ConfigAction) -> Result<()> {
    match action {
        cli::ConfigAction::Example => print!("{}", config::example()),
        cli::ConfigAction::Check {
            path: file,
            common,
            producer,
            consumer,
        } => {
            let loaded = config::File::load(Some(&file))?;
            let common = config::Common::new(&loaded.layer(&common)?)?;
            let producer = config::producer(&common, &loaded.layer(&producer)?)?;
            let consumer = config::consumer(&common, &loaded.layer(&consumer)?)?;
            consumer.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "# {} is valid; the effective configuration:",
                file.display()
            );
            print!("{}", config::effective(&common, &producer, &consumer)?);
        }
    }
    Ok(())
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
        Some(level) => EnvFilter::try_new(level).map_err(|e| {
            config::usage(format!(
                "{}: invalid filter '{level}': {e}",
                config::describe("log_level")
            ))
        })?,
        None => EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(config::DEFAULT_LOG_LEVEL)),
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
