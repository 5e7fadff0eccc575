//! [`Tmpfs`]: a real, small filesystem of its own, to fill up in tests of a full disk.
//!
//! Mounting needs root (CI runs as root); elsewhere [`Tmpfs::mount`] says why it cannot,
//! and the test skips with that message. Dropping it unmounts (lazily, so a server still
//! holding files in it does not keep it mounted) and removes the mount point.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

/// The name of the file [`Tmpfs::fill`] takes the free space with.
const FILLER: &str = "filler";

/// A tmpfs mounted on a temporary directory.
#[derive(Debug)]
pub struct Tmpfs {
    /// The mount point; removed after the unmount.
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `16m`) on a new temporary
    /// directory.
    ///
    /// # Errors
    /// Why it cannot: not root, or `mount` failed (e.g. in a container without the
    /// capability), so the caller can skip with the reason.
    pub fn mount(size: &str) -> Result<Self, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| format!("id -u: {e}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("mounting a tmpfs needs root".to_string());
        }
        let dir = tempfile::Builder::new()
            .prefix("redline-tmpfs-")
            .tempdir()
            .map_err(|e| format!("cannot create a mount point: {e}"))?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size}"))
            .arg("tmpfs")
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Takes every free byte with a file of zeros, so the next write anyone makes in this
    /// filesystem fails with `ENOSPC` (no space left on device).
    ///
    /// # Panics
    /// If writing fails for another reason than a full disk.
    pub fn fill(&self) {
        let path = self.filler();
        let mut file = File::create(&path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
        let chunk = vec![0_u8; 64 * 1024];
        let mut size = chunk.len();
        // Halve the chunk at each ENOSPC until single bytes no longer fit.
        loop {
            match file.write_all(&chunk[..size]) {
                Ok(()) => {}
                Err(error) if error.raw_os_error() == Some(28) => {
                    if size == 1 {
                        break;
                    }
                    size /= 2;
                }
                Err(error) => panic!("filling {}: {error}", path.display()),
            }
        }
        // A partial write can leave bytes buffered nowhere: nothing to flush with File.
    }

    /// Frees the space [`Tmpfs::fill`] took.
    ///
    /// # Panics
    /// If the filler cannot be removed.
    pub fn free(&self) {
        let path = self.filler();
        fs::remove_file(&path)
            .unwrap_or_else(|error| panic!("cannot remove {}: {error}", path.display()));
    }

    fn filler(&self) -> PathBuf {
        self.dir.path().join(FILLER)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // `dir` drops next and removes the (now empty) mount point.
    }
}
