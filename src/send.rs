//! `redline send [FILE|-]`: line protocol from a file or standard input into the stream,
//! through the producer's [`Writer`], so validation, timestamp stamping and partitioning
//! are exactly those of `POST /write`.
//!
//! A reader thread cuts the input into batches of `--batch-size` lines (bounded channel:
//! it stays at most two batches ahead); each batch is parsed and stored as one pipeline.
//! A Redis error is retried a few times with backoff, then `send` fails saying how many
//! metrics were stored. Every bad line is counted, the first [`SHOWN`] printed with their
//! number and reason, and the exit status is 1 unless every line was stored.
//!
//! A batch that failed half-way may have been stored in part; its retry stores those
//! metrics again. Their timestamps are fixed at parse time, so InfluxDB keeps one point.

use std::{
    io::{BufRead, BufReader, IsTerminal, Read},
    path::Path,
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};
use redline_core::backoff::Backoff;
use redline_core::line::{Limits, LineError, Parsed, Precision};
use redline_producer::{
    ingest,
    writer::{Target, Writer},
};
use tokio::sync::mpsc;

use crate::{cli::SendArgs, config::Common};

/// Bad lines printed one by one; the rest are counted.
const SHOWN: usize = 20;
/// Attempts to store one batch before giving up, and the first pause between them
/// (doubling: 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s ≈ 6 s of Redis being away in all).
const ATTEMPTS: u32 = 6;
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// A batch of whole lines, each ending in `\n`.
struct Batch {
    /// Number of its first line in the input (1-based).
    first_line: usize,
    /// Lines in it.
    lines: usize,
    bytes: Vec<u8>,
}

/// Runs `redline send`.
///
/// # Errors
/// The input cannot be read, a line was rejected, or Redis failed beyond the retries.
///
/// `producer` is the producer's configuration from the environment and the config file:
/// `send` refuses what the producer would (line length, fields) and stays within its
/// buffer limit.
pub(crate) async fn run(
    args: SendArgs,
    common: &Common,
    producer: &redline_producer::Config,
) -> Result<()> {
    let precision = Precision::parse(&args.precision)?;
    let target = Target {
        db: args.db.clone().filter(|db| !db.is_empty()),
        rp: args.rp.clone().filter(|rp| !rp.is_empty()),
    };
    let config = redline_producer::Config {
        redis: common.redis.clone(),
        stream: common.stream.clone(),
        partitions: common.partitions,
        ..producer.clone()
    };
    let limits = Limits {
        max_line_length: config.max_line_length,
        max_fields: config.max_fields,
        allow_unsigned: false,
    };
    let writer = Writer::new(&config)?;
    let (name, input, size) = open(&args.file)?;
    // A batch is one request to the buffer: never more lines than its limit lets in.
    let batch_lines = usize::try_from(args.batch_size)
        .unwrap_or(usize::MAX)
        .min(writer.largest_request().unwrap_or(usize::MAX))
        .max(1);
    let (batches, mut received) = mpsc::channel(2);
    // A plain thread, not `spawn_blocking`: the runtime waits for those when it is dropped,
    // and a read from a pipe can block until its writer writes again. On success it ends
    // with the input and is joined; on an error it ends at its next send, or with the process.
    let reader = std::thread::Builder::new()
        .name("send-reader".into())
        .spawn(move || read(input, batch_lines, &batches))
        .context("cannot start the input reader")?;
    let bar = progress(size);

    let mut stored = 0_usize;
    let mut rejected = 0_usize;
    let mut shown: Vec<LineError> = Vec::new();
    while let Some(batch) = received.recv().await {
        let batch = batch.with_context(|| format!("cannot read {name}"))?;
        let now_ns = now_ns();
        let parsed = ingest::parse_with(&batch.bytes, precision, now_ns, &limits);
        if parsed.rejected > 0 {
            rejected += parsed.rejected;
            if shown.len() < SHOWN {
                let errors = ingest::rejected_lines(
                    &batch.bytes,
                    precision,
                    now_ns,
                    &limits,
                    batch.first_line,
                );
                shown.extend(errors.into_iter().take(SHOWN - shown.len()));
            }
        }
        let count = parsed.len();
        if let Err(error) = store(&writer, &parsed, &target).await {
            bar.finish_and_clear();
            report_rejected(&shown, rejected);
            bail!(
                "{error:#}; stored {stored} metrics from {name}; line {} and after were not stored",
                batch.first_line
            );
        }
        stored += count;
        bar.inc(batch.bytes.len() as u64);
        bar.set_message(format!("{stored} stored"));
    }
    bar.finish_and_clear();
    // The loop ended because the reader is done; it has reported any error through the
    // channel. A panic there is a bug, not the input's fault.
    reader
        .join()
        .map_err(|_| anyhow!("the input reader panicked"))?;
    report_rejected(&shown, rejected);
    println!(
        "stored {stored} metrics from {name}; {rejected} line{} rejected",
        if rejected == 1 { "" } else { "s" }
    );
    if rejected > 0 {
        bail!(
            "{rejected} line{} of {name} rejected (not stored); the other {stored} metrics were stored",
            if rejected == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// The input's name for messages, a reader over it, and its size when known.
fn open(path: &Path) -> Result<(String, Box<dyn Read + Send>, Option<u64>)> {
    if path.as_os_str() == "-" {
        return Ok(("stdin".to_string(), Box::new(std::io::stdin()), None));
    }
    let name = path.display().to_string();
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {name}"))?;
    let size = file.metadata().ok().map(|m| m.len());
    Ok((name, Box::new(file), size))
}

/// Cuts `input` into batches of `batch_lines` lines and sends them; stops at the end of
/// the input, at the first read error (sent on), or when nobody receives any more. A batch
/// ends only where a line ends by InfluxDB's rules: a newline inside a quoted string value
/// does not, so such a batch takes the next physical lines too.
fn read(
    input: Box<dyn Read + Send>,
    batch_lines: usize,
    batches: &mpsc::Sender<std::io::Result<Batch>>,
) {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let mut next_line = 1;
    loop {
        let mut batch = Batch {
            first_line: next_line,
            lines: 0,
            bytes: Vec::with_capacity(batch_lines.min(100_000) * 128),
        };
        while batch.lines < batch_lines
            || redline_core::line::whole_lines(&batch.bytes) < batch.bytes.len()
        {
            match input.read_until(b'\n', &mut batch.bytes) {
                Ok(0) => break,
                Ok(_) => {
                    if batch.bytes.last() != Some(&b'\n') {
                        batch.bytes.push(b'\n'); // the last line may lack it
                    }
                    batch.lines += 1;
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    let _ = batches.blocking_send(Err(error));
                    return;
                }
            }
        }
        if batch.lines == 0 {
            return;
        }
        next_line += batch.lines;
        let full = batch.lines >= batch_lines;
        if batches.blocking_send(Ok(batch)).is_err() || !full {
            return;
        }
    }
}

/// Stores one batch, retrying Redis errors with backoff.
async fn store(writer: &Writer, parsed: &Parsed<'_>, target: &Target) -> Result<()> {
    let mut backoff = Backoff::new(FIRST_PAUSE, FIRST_PAUSE * 16);
    for attempt in 1..=ATTEMPTS {
        match writer.store(parsed.metrics(), target).await {
            Ok(_) => return Ok(()),
            Err(error) if attempt == ATTEMPTS => {
                return Err(anyhow!(error).context(format!(
                    "Redis did not take the metrics after {ATTEMPTS} attempts"
                )));
            }
            Err(error) => {
                let pause = backoff.next_ceiling();
                tracing::warn!(%error, attempt, retry_in = ?pause, "Cannot store a batch; retrying.");
                tokio::time::sleep(pause).await;
            }
        }
    }
    unreachable!("the last attempt returns");
}

/// Prints the first bad lines and how many more there were, on stderr.
fn report_rejected(shown: &[LineError], rejected: usize) {
    for error in shown {
        eprintln!("line {}: {} ('{}')", error.line, error.reason, error.text);
    }
    if rejected > shown.len() {
        eprintln!("… and {} more rejected lines", rejected - shown.len());
    }
}

/// A progress bar on stderr when it is a terminal (bytes of a file, or a spinner for
/// stdin); hidden otherwise, so pipes and logs stay clean.
fn progress(size: Option<u64>) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let (bar, template) = match size {
        Some(size) => (
            indicatif::ProgressBar::new(size),
            "sending {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "sending {spinner} {bytes} ({bytes_per_sec}) {msg}",
        ),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn now_ns() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(input: &'static [u8], lines: usize) -> Vec<(usize, usize, Vec<u8>)> {
        let (tx, mut rx) = mpsc::channel(100);
        read(Box::new(input), lines, &tx);
        drop(tx);
        let mut out = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            let batch = batch.unwrap();
            out.push((batch.first_line, batch.lines, batch.bytes));
        }
        out
    }

    #[test]
    fn input_is_cut_into_numbered_batches_of_whole_lines() {
        let out = batches(b"a 1\nb 2\n\nc 3\nd 4", 2);
        assert_eq!(
            out,
            [
                (1, 2, b"a 1\nb 2\n".to_vec()),
                (3, 2, b"\nc 3\n".to_vec()),
                (5, 1, b"d 4\n".to_vec()),
            ]
        );
        assert!(batches(b"", 2).is_empty());
        assert_eq!(batches(b"a\nb\n", 2).len(), 1);
    }

    #[test]
    fn a_quoted_newline_never_ends_a_batch() {
        let out = batches(b"a v=1i 1\nb s=\"x\ny\" 2\nc v=3i 3\n", 2);
        assert_eq!(
            out,
            [
                (1, 3, b"a v=1i 1\nb s=\"x\ny\" 2\n".to_vec()),
                (4, 1, b"c v=3i 3\n".to_vec()),
            ]
        );
    }
}
