//! The file sink: appends each entry's line and `\n` to one file.
//!
//! Invariant: a write returns `Ok` only after its bytes are on disk (`fdatasync`), so the
//! ack that follows never covers data a power loss could take back. A write that fails
//! half-way is cut off again (the file is truncated to its previous length), so a retry
//! appends whole lines only.

use std::path::{Path, PathBuf};

use redline_core::entry::Entry;
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;

use super::{lines, OpenError, Sink, SinkError};

/// Appends line protocol to a file.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: File,
}

impl FileSink {
    /// Opens (or creates) `path` for appending.
    ///
    /// # Errors
    /// [`OpenError::File`] when it cannot be opened.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(|source| OpenError::File {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    async fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes).await?;
        self.file.flush().await?;
        self.file.sync_data().await
    }
}

impl Sink for FileSink {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn write(&mut self, batch: &[Entry]) -> Result<(), SinkError> {
        let before = self
            .file
            .metadata()
            .await
            .map_err(|e| unavailable(&self.path, &e))?
            .len();
        let bytes = lines(batch);
        match self.append(&bytes).await {
            Ok(()) => Ok(()),
            Err(error) => {
                // Cut off a partial append, so the retry does not leave half a line behind.
                if let Err(truncate) = self.file.set_len(before).await {
                    tracing::warn!(error = %truncate, path = %self.path.display(),
                        "Cannot truncate a partial append; the file may hold a partial line.");
                }
                Err(unavailable(&self.path, &error))
            }
        }
    }
}

/// Disk full, I/O errors: not the batch's fault, retried for as long as it lasts.
fn unavailable(path: &Path, error: &std::io::Error) -> SinkError {
    SinkError::Unavailable(format!("cannot append to '{}': {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(lp: &str) -> Entry {
        Entry {
            lp: lp.to_string(),
            db: None,
            rp: None,
        }
    }

    #[tokio::test]
    async fn appends_lines_across_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.lp");
        let mut sink = FileSink::open(&path).await.unwrap();
        sink.write(&[entry("a v=1 1"), entry("b v=2 2")])
            .await
            .unwrap();
        drop(sink);
        let mut sink = FileSink::open(&path).await.unwrap();
        sink.write(&[entry("c v=3 3")]).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "a v=1 1\nb v=2 2\nc v=3 3\n");
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/out.lp");
        let error = FileSink::open(&path).await.unwrap_err().to_string();
        assert!(error.contains("out.lp"), "{error}");
    }
}
