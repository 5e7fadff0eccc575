//! The stdout sink: prints each entry's line, for pipes and debugging.
//!
//! A write is accepted once the bytes were handed to the standard output and flushed;
//! nothing more durable can be promised about a pipe.

use redline_core::entry::Entry;
use tokio::io::AsyncWriteExt;

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
        let mut out = tokio::io::stdout();
        let bytes = lines(batch);
        let result = async {
            out.write_all(&bytes).await?;
            out.flush().await
        }
        .await;
        result.map_err(|e| SinkError::Unavailable(format!("cannot write to stdout: {e}")))
    }
}
