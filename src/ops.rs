//! The ops commands (`status`, `pending`, `claim`, `consumers`, `dlq`, `trim`): connect,
//! call `redline-streams`, print a table ([`render`]) or JSON. Runtime errors come back as
//! one line. Under Sentinel, `status` and `pending` also say which master they read.

mod render;

use std::{
    io::{IsTerminal, Write},
    time::Duration,
};

use anyhow::{bail, Result};
use redline_core::units;
use serde::Serialize;

use self::render::Render;
use crate::{
    cli::{Command, DlqAction},
    config::{usage, Common},
};

fn flag_duration(flag: &str, value: Option<&str>) -> Result<Option<Duration>> {
    value
        .map(|v| units::parse_duration(v).map_err(|e| usage(format!("{flag}: {e}"))))
        .transpose()
}

/// Shortest `status --watch` interval: a refresh loop that spins helps no one.
const MIN_WATCH: Duration = Duration::from_millis(100);

/// A usage error for what the command line asked of an ops command.
fn ops_usage(error: redline_streams::Error) -> anyhow::Error {
    if error.is_usage() {
        usage(error)
    } else {
        error.into()
    }
}

fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Checks the command line before Redis is reached: a usage error is one whether Redis is
/// up or not.
fn check(command: &Command) -> Result<()> {
    match command {
        Command::Status {
            watch: Some(watch), ..
        } if flag_duration("--watch", Some(watch))?.is_some_and(|every| every < MIN_WATCH) => {
            return Err(usage(format!(
                "--watch: {watch} is too short; refresh at most every {}",
                units::format_duration(MIN_WATCH)
            )));
        }
        Command::Pending { min_idle, .. } | Command::Claim { min_idle, .. } => {
            flag_duration("--min-idle", min_idle.as_deref())?;
        }
        Command::Consumers { prune_idle, .. } => {
            flag_duration("--prune-idle", prune_idle.as_deref())?;
        }
        _ => {}
    }
    Ok(())
}

/// Runs one ops command against the Redis of `common`.
pub(crate) async fn run(command: Command, common: &Common) -> Result<()> {
    let keys = common.keys();
    check(&command)?;
    let mut conn = redline_streams::connect(&common.redis).await?;
    match command {
        Command::Status { json, watch, .. } => {
            let interval = flag_duration("--watch", watch.as_deref())?;
            loop {
                let mut report = redline_streams::status(&mut conn, &keys)
                    .await
                    .map_err(ops_usage)?;
                report.sentinel = redline_streams::sentinel_status(&common.redis, &conn).await?;
                match interval {
                    None if json => return print_json(&report),
                    None => {
                        print!("{}", report.render_human());
                        return Ok(());
                    }
                    Some(every) => {
                        if json {
                            // One compact object per line, for `jq` or a log: no escapes.
                            println!("{}", serde_json::to_string(&report)?);
                        } else {
                            let now =
                                humantime::format_rfc3339_seconds(std::time::SystemTime::now());
                            // Home the cursor and clear: the table refreshes in place.
                            print!(
                                "\x1b[H\x1b[2J{now}  (every {}, Ctrl-C to stop)\n\n",
                                units::format_duration(every)
                            );
                            print!("{}", report.render_human());
                        }
                        std::io::stdout().flush()?;
                        tokio::select! {
                            () = tokio::time::sleep(every) => {}
                            _ = tokio::signal::ctrl_c() => return Ok(()),
                        }
                    }
                }
            }
        }
        Command::Pending {
            group,
            consumer,
            min_idle,
            count,
            show,
            json,
            ..
        } => {
            let filter = redline_streams::PendingFilter {
                group,
                consumer,
                min_idle: flag_duration("--min-idle", min_idle.as_deref())?,
                count: usize::try_from(count).unwrap_or(usize::MAX),
                show,
            };
            let report = redline_streams::pending(&mut conn, &keys, &filter)
                .await
                .map_err(ops_usage)?;
            if json {
                if report.more {
                    eprintln!("redline: more pending entries match than --count {count} lists; raise --count to list them");
                }
                print_json(&report.entries)
            } else {
                if let Some(master) = conn.master() {
                    print!("{}", render::master_line(&common.redis, master));
                }
                print!("{}", report.render_human());
                Ok(())
            }
        }
        Command::Claim {
            group,
            to,
            min_idle,
            ids,
            partition,
            json,
            ..
        } => {
            let min_idle = flag_duration("--min-idle", min_idle.as_deref())?.unwrap_or_default();
            let report =
                redline_streams::claim(&mut conn, &keys, &group, &to, min_idle, &ids, partition)
                    .await
                    .map_err(ops_usage)?;
            if json {
                print_json(&report)?;
            } else {
                print!("{}", report.render_human());
            }
            if !report.not_claimed.is_empty() {
                bail!(
                    "{} of the ids asked for were not moved: {}",
                    report.not_claimed.len(),
                    report.not_claimed.join(" ")
                );
            }
            Ok(())
        }
        Command::Consumers {
            group,
            prune_idle,
            json,
            ..
        } => {
            let prune = flag_duration("--prune-idle", prune_idle.as_deref())?;
            let report = redline_streams::consumers(&mut conn, &keys, group.as_deref(), prune)
                .await
                .map_err(ops_usage)?;
            if json {
                print_json(&report)
            } else {
                print!("{}", report.render_human());
                Ok(())
            }
        }
        Command::Trim { dry_run, json, .. } => {
            let report = redline_streams::trim(&mut conn, &keys, dry_run)
                .await
                .map_err(ops_usage)?;
            if json {
                print_json(&report)
            } else {
                print!("{}", report.render_human());
                Ok(())
            }
        }
        Command::Dlq { action, .. } => dlq(action, &mut conn, &keys).await,
        Command::Producer { .. }
        | Command::Consumer { .. }
        | Command::Run { .. }
        | Command::Send { .. }
        | Command::Config { .. } => {
            unreachable!("main dispatches the long-running commands itself")
        }
    }
}

async fn dlq(
    action: DlqAction,
    conn: &mut redline_core::redis::Connection,
    keys: &redline_core::keys::StreamKeys,
) -> Result<()> {
    match action {
        DlqAction::List { count, json } => {
            let list =
                redline_streams::dlq_list(conn, keys, usize::try_from(count).unwrap_or(usize::MAX))
                    .await
                    .map_err(ops_usage)?;
            if json {
                if list.length > list.letters.len() as u64 {
                    eprintln!(
                        "redline: {} dead letters in all, --count {count} listed; raise --count to list more",
                        list.length
                    );
                }
                print_json(&list.letters)
            } else {
                print!("{}", list.render_human());
                Ok(())
            }
        }
        DlqAction::Show { id, json } => {
            let letter = redline_streams::dlq_show(conn, keys, &id)
                .await
                .map_err(ops_usage)?;
            if json {
                print_json(&letter)
            } else {
                print!("{}", letter.render_human());
                Ok(())
            }
        }
        DlqAction::Replay { ids, all, json } => {
            let ids = (!all).then_some(ids.as_slice());
            let bar = indicatif::ProgressBar::hidden();
            if std::io::stderr().is_terminal() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "replaying {bar:40} {pos}/{len} ({per_sec}, eta {eta})",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
            }
            let report = redline_streams::dlq_replay(conn, keys, ids, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .await?;
            bar.finish_and_clear();
            if json {
                print_json(&report)?;
            } else {
                print!("{}", report.render_human());
            }
            if report.failed.is_empty() {
                Ok(())
            } else {
                bail!("{} dead letters could not be replayed", report.failed.len())
            }
        }
        DlqAction::Purge { ids, all, yes } => {
            let what = if all {
                format!("every dead letter in {}", keys.dlq())
            } else {
                format!("{} dead letters from {}", ids.len(), keys.dlq())
            };
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!(
                        "refusing to purge {what} without --yes (standard input is not a terminal)"
                    );
                }
                eprint!("Purge {what}? This cannot be undone. [y/N] ");
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    bail!("purge cancelled");
                }
            }
            let ids = (!all).then_some(ids.as_slice());
            let report = redline_streams::dlq_purge(conn, keys, ids)
                .await
                .map_err(ops_usage)?;
            print!("{}", report.render_human());
            Ok(())
        }
    }
}
