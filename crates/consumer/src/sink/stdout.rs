//! The stdout sink: prints each entry's line, for pipes and debugging.
//!
//! A write is accepted once the bytes were handed to the standard output and flushed;
//! nothing more durable can be promised about a pipe.

use redline_core::entry::Entry;

use super::{lines, Route, Sink, SinkError};

/// Prints line protocol on standard output.
#[derive(Debug, Default)]
pub struct StdoutSink {
    _private: (),
}

impl StdoutSink {
    /// A sink printing to this process's standard output.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    async fn write(&mut self, _: Route<'_>, batch: &[&Entry]) -> Result<(), SinkError> {
        let bytes = lines(batch);
        // One blocking write of the whole batch under stdout's lock: the batch moves to the
        // blocking thread (tokio's `Stdout` copied it into a buffer of its own first), and
        // the lock keeps the batch's lines together.
        let result = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        result.map_err(|e| SinkError::Unavailable(format!("cannot write to stdout: {e}")))
    }
}
