//! The file sink: appends each entry's line and `\n` to one file, optionally rotated by size.
//!
//! Invariants:
//! - a write returns `Ok` only after its bytes are on disk (`fdatasync`), so the ack that
//!   follows never covers data a power loss could take back;
//! - a write that fails half-way is cut off again (the file is truncated to its previous
//!   length), so a retry appends whole lines only;
//! - rotation happens only between batches: before a write that would take a non-empty file
//!   past `max_size`, the file (fsynced by the write that filled it) is renamed to
//!   `<path>.1`, older ones shift up to `<path>.N` (`max_files`) and the oldest beyond that
//!   is replaced, then a new file is opened and the directory fsynced. A batch never spans
//!   two files, and a file exceeds `max_size` only when one batch alone does. A rotation
//!   that fails is logged and tried again before the next write; the data stays in the
//!   current file, nothing is lost;
//! - a file that does not end in a newline (a crash, a kill -9 or a power loss in the middle
//!   of an append) is repaired before the first write: the torn tail, never acknowledged
//!   and so delivered again, is cut off and reported, so no acknowledged line is ever
//!   appended to half a line;
//! - a file the sink creates is made durable with its directory (fsynced), as rotated ones
//!   are.

use std::path::{Path, PathBuf};

use redline_core::entry::Entry;
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;

use super::{lines, OpenError, Route, Sink, SinkError};

/// Appends line protocol to a file.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: File,
    /// Rotate before a write would take the file past this many bytes; 0 = never.
    max_size: u64,
    /// Rotated files kept: `<path>.1` … `<path>.{max_files}`.
    max_files: u32,
}

impl FileSink {
    /// Opens (or creates) `path` for appending, never rotating it.
    ///
    /// # Errors
    /// [`OpenError::File`] when it cannot be opened.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        Self::open_rotating(path, 0, 0).await
    }

    /// Opens (or creates) `path` for appending, rotating it before a write would take it
    /// past `max_size` bytes (0 = never) and keeping `max_files` rotated files (at least 1).
    ///
    /// # Errors
    /// [`OpenError::File`] when it cannot be opened.
    pub async fn open_rotating(
        path: &Path,
        max_size: u64,
        max_files: u32,
    ) -> Result<Self, OpenError> {
        let fail = |reason| OpenError::File {
            path: path.to_path_buf(),
            reason,
        };
        let file = open_append(path).await.map_err(fail)?;
        repair(path, &file).await.map_err(fail)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            max_size,
            max_files: max_files.max(1),
        })
    }

    /// `<path>.n`.
    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Shifts `<path>.1…` up by one (dropping what falls past `max_files`), renames the
    /// current file to `<path>.1`, opens a new one and fsyncs the directory, so the renames
    /// survive a crash. Called only between batches, when the current file is fsynced.
    async fn rotate(&mut self) -> std::io::Result<()> {
        for n in (1..self.max_files).rev() {
            match tokio::fs::rename(self.rotated(n), self.rotated(n + 1)).await {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        match tokio::fs::rename(&self.path, self.rotated(1)).await {
            // Moved already by an earlier rotation that failed to open the new file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
        // The old file is complete and fsynced; if opening the new one fails, the next write
        // fails with `unavailable` and is retried, and the next rotation finds no file.
        self.file = open_append(&self.path).await?;
        sync_dir(&self.path).await;
        tracing::info!(path = %self.path.display(), max_files = self.max_files, "Rotated the output file.");
        Ok(())
    }

    /// Rotates when appending `incoming` bytes would take a non-empty file past `max_size`.
    async fn rotate_if_full(&mut self, size: u64, incoming: usize) -> u64 {
        if self.max_size == 0 || size == 0 || size + incoming as u64 <= self.max_size {
            return size;
        }
        match self.rotate().await {
            Ok(()) => 0,
            Err(error) => {
                tracing::warn!(%error, path = %self.path.display(),
                    "Cannot rotate the output file; appending to it and trying again next batch.");
                // The rename may have happened before the failure: measure again.
                self.file.metadata().await.map_or(size, |m| m.len())
            }
        }
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

    async fn write(&mut self, _: Route<'_>, batch: &[&Entry]) -> Result<(), SinkError> {
        let size = self
            .file
            .metadata()
            .await
            .map_err(|e| unavailable(&self.path, &e))?
            .len();
        let bytes = lines(batch);
        let before = self.rotate_if_full(size, bytes.len()).await;
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

/// Opens `path` for appending, creating it (and then fsyncing its directory, so the new
/// file survives a crash as the lines fsynced into it do) when missing.
async fn open_append(path: &Path) -> std::io::Result<File> {
    let created = match OpenOptions::new().append(true).open(path).await {
        Ok(file) => return Ok(file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await?
        }
        Err(e) => return Err(e),
    };
    sync_dir(path).await;
    Ok(created)
}

/// Cuts off a torn last line: the bytes after the file's last newline, left by a crash in
/// the middle of an append. They were never acknowledged (the ack follows the fsync of a
/// whole batch), so their entries are delivered again; appending after them would glue
/// the next line onto half a line.
async fn repair(path: &Path, file: &File) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    const CHUNK: u64 = 64 * 1024;
    let len = file.metadata().await?.len();
    if len == 0 {
        return Ok(());
    }
    let mut reader = File::open(path).await?;
    // Scan backwards, a chunk at a time, for the last newline.
    let mut end = len;
    let keep = loop {
        let start = end.saturating_sub(CHUNK);
        let mut chunk = vec![0_u8; usize::try_from(end - start).unwrap_or(0)];
        reader.seek(std::io::SeekFrom::Start(start)).await?;
        reader.read_exact(&mut chunk).await?;
        if end == len && chunk.last() == Some(&b'\n') {
            return Ok(());
        }
        if let Some(at) = chunk.iter().rposition(|b| *b == b'\n') {
            break start + at as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        end = start;
    };
    let mut torn = vec![0_u8; usize::try_from((len - keep).min(200)).unwrap_or(0)];
    reader.seek(std::io::SeekFrom::Start(keep)).await?;
    reader.read_exact(&mut torn).await?;
    file.set_len(keep).await?;
    file.sync_data().await?;
    tracing::warn!(path = %path.display(), bytes = len - keep, torn = %String::from_utf8_lossy(&torn),
        "The output file ended in a partial line (a crash in the middle of a write); cut it off. \
        It was never acknowledged: its metrics are delivered again.");
    Ok(())
}

/// Fsyncs the directory holding `path`, so renames and creations in it are durable.
/// Best effort: some filesystems refuse to fsync a directory, and the data itself is safe.
async fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let result = async { File::open(dir).await?.sync_all().await }.await;
    if let Err(error) = result {
        tracing::debug!(%error, dir = %dir.display(), "Cannot fsync the directory.");
    }
}

/// Disk full, I/O errors: not the batch's fault, retried for as long as it lasts.
fn unavailable(path: &Path, error: &std::io::Error) -> SinkError {
    SinkError::Unavailable(format!("cannot append to '{}': {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::tests::entry;

    #[tokio::test]
    async fn appends_lines_across_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.lp");
        let mut sink = FileSink::open(&path).await.unwrap();
        sink.write(Route::default(), &[&entry("a v=1 1"), &entry("b v=2 2")])
            .await
            .unwrap();
        drop(sink);
        let mut sink = FileSink::open(&path).await.unwrap();
        sink.write(Route::default(), &[&entry("c v=3 3")])
            .await
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "a v=1 1\nb v=2 2\nc v=3 3\n");
    }

    #[tokio::test]
    async fn rotates_between_batches_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.lp");
        // Every line is 8 bytes ("l v=N 0\n" with one digit); a batch of 3 is 24 bytes.
        let mut sink = FileSink::open_rotating(&path, 50, 2).await.unwrap();
        for b in 0..5 {
            let batch: Vec<Entry> = (0..3).map(|i| entry(&format!("l v={i} {b}"))).collect();
            sink.write(Route::default(), &batch.iter().collect::<Vec<_>>())
                .await
                .unwrap();
        }
        drop(sink);
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let rotated = |n: u32| {
            let mut name = path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        // 5 batches of 24 bytes, 2 per file: [4] in m.lp, [2,3] in .1, [0,1] in .2 — and no .3.
        assert_eq!(read(path.clone()).lines().count(), 3);
        assert!(read(path.clone()).ends_with(" 4\n"));
        assert_eq!(read(rotated(1)).lines().count(), 6);
        assert!(read(rotated(1)).starts_with("l v=0 2\n"));
        assert_eq!(read(rotated(2)).lines().count(), 6);
        assert!(!rotated(3).exists());
    }

    #[tokio::test]
    async fn a_batch_larger_than_max_size_goes_whole_into_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.lp");
        let mut sink = FileSink::open_rotating(&path, 10, 1).await.unwrap();
        let batch: Vec<Entry> = (0..4).map(|i| entry(&format!("l v={i} 0"))).collect();
        sink.write(Route::default(), &batch.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        sink.write(Route::default(), &batch.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        let mut one = path.clone().into_os_string();
        one.push(".1");
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);
        assert_eq!(std::fs::read_to_string(one).unwrap().lines().count(), 4);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_cut_off_before_the_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.lp");
        // What a crash in the middle of an append leaves: whole lines, then half of one.
        std::fs::write(&path, "a v=1 1\nb v=2 2\nc v=3").unwrap();
        let mut sink = FileSink::open(&path).await.unwrap();
        sink.write(Route::default(), &[&entry("c v=3 3"), &entry("d v=4 4")])
            .await
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "a v=1 1\nb v=2 2\nc v=3 3\nd v=4 4\n");

        // A file that is one torn line, longer than the scan's chunk.
        let long = "x".repeat(200_000);
        std::fs::write(&path, &long).unwrap();
        let mut sink = FileSink::open(&path).await.unwrap();
        sink.write(Route::default(), &[&entry("e v=5 5")])
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "e v=5 5\n");

        // A newline 100 KB before the end: everything after it goes.
        std::fs::write(&path, format!("f v=6 6\n{long}")).unwrap();
        let mut sink = FileSink::open(&path).await.unwrap();
        sink.write(Route::default(), &[&entry("g v=7 7")])
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "f v=6 6\ng v=7 7\n"
        );
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/out.lp");
        let error = FileSink::open(&path).await.unwrap_err().to_string();
        assert!(error.contains("out.lp"), "{error}");
    }
}
