//! Bounded, typed reads of files a user or a cache folder supplies.
//!
//! Every file advpipe reads goes through here: it must be a regular file (a FIFO, a device
//! such as `/dev/zero` or a folder is refused before it is opened, so nothing hangs), and no
//! more than a size limit that fits its kind is ever read, even if the file grows while it
//! is read. Gzip members are inflated under a limit of their own, so a small bomb cannot
//! take the machine's memory.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// What a file is for, which fixes how large it may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A pipeline file or one it imports.
    Pipeline,
    /// `advpipe.toml`.
    Config,
    /// A checkpoint (`load(...)`), safetensors.
    Checkpoint,
    /// An IDX data file, plain or the compressed bytes of a `.gz` one.
    Idx,
    /// A `.npz` or `.safetensors` file of dataset arrays (`tensors(...)`).
    Tensors,
    /// A downloaded data archive.
    Archive,
    /// A file inside a cache entry.
    CacheFile,
}

impl FileKind {
    /// The largest file of this kind advpipe reads, in bytes.
    pub const fn limit(self) -> u64 {
        const MIB: u64 = 1 << 20;
        match self {
            FileKind::Pipeline => 16 * MIB,
            FileKind::Config => MIB,
            FileKind::Checkpoint => 8 * 1024 * MIB,
            FileKind::Idx => 2 * 1024 * MIB,
            FileKind::Tensors => 8 * 1024 * MIB,
            FileKind::Archive => 1024 * MIB,
            FileKind::CacheFile => 8 * 1024 * MIB,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            FileKind::Pipeline => "a pipeline file",
            FileKind::Config => "a settings file",
            FileKind::Checkpoint => "a checkpoint",
            FileKind::Idx => "an IDX data file",
            FileKind::Tensors => "a file of dataset arrays",
            FileKind::Archive => "a data archive",
            FileKind::CacheFile => "a cache file",
        }
    }
}

/// Shows a size the way people read it (`16 MiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Checks that `path` is a regular file (following symlinks) no larger than `kind` allows,
/// without opening it.
pub fn check_regular(path: &Path, kind: FileKind) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let file_type = meta.file_type();
    if !file_type.is_file() {
        let what = if file_type.is_dir() {
            "a folder"
        } else if is_fifo(&file_type) {
            "a named pipe (FIFO)"
        } else {
            "not a regular file (a device, socket or pipe)"
        };
        return Err(Error::msg(format!(
            "{}: expected {}, but it is {what}",
            path.display(),
            kind.noun()
        )));
    }
    too_large(path, kind, meta.len())?;
    Ok(meta.len())
}

#[cfg(unix)]
fn is_fifo(file_type: &std::fs::FileType) -> bool {
    std::os::unix::fs::FileTypeExt::is_fifo(file_type)
}

#[cfg(not(unix))]
fn is_fifo(_: &std::fs::FileType) -> bool {
    false
}

fn too_large(path: &Path, kind: FileKind, len: u64) -> Result<()> {
    if len > kind.limit() {
        return Err(Error::msg(format!(
            "{}: {} bytes is larger than advpipe reads as {} ({} at most)",
            path.display(),
            len,
            kind.noun(),
            human_bytes(kind.limit())
        )));
    }
    Ok(())
}

/// Reads a regular file of at most `kind.limit()` bytes.
pub fn read(path: &Path, kind: FileKind) -> Result<Vec<u8>> {
    let len = check_regular(path, kind)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len as usize)
        .map_err(|_| Error::msg(format!("{}: not enough memory to read {}", path.display(), human_bytes(len))))?;
    // One byte past the limit tells a file that grew after the check from one that did not.
    file.take(kind.limit() + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    too_large(path, kind, bytes.len() as u64)?;
    Ok(bytes)
}

/// Opens a regular file of at most `kind.limit()` bytes for a reader that takes only part
/// of it (a header). Whoever reads the rest bounds it by the sizes the header gives.
pub fn open(path: &Path, kind: FileKind) -> Result<std::fs::File> {
    check_regular(path, kind)?;
    std::fs::File::open(path).map_err(|e| Error::io(path, e))
}

/// Reads a regular UTF-8 text file of at most `kind.limit()` bytes. Invalid UTF-8 is
/// reported with the line and column of the first bad byte.
pub fn read_text(path: &Path, kind: FileKind) -> Result<String> {
    let bytes = read(path, kind)?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let (line, col) = crate::diagnostics::line_col(&String::from_utf8_lossy(&e.as_bytes()[..valid]), valid);
        Error::msg(format!(
            "{}:{line}:{col}: the file is not valid UTF-8 (byte {valid} starts an invalid sequence)",
            path.display()
        ))
    })
}

/// Inflates a gzip stream, refusing output beyond `limit` bytes.
pub fn gunzip(path: &Path, compressed: &[u8], limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(compressed)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::msg(format!("{}: not a valid gzip file: {e}", path.display())))?;
    if out.len() as u64 > limit {
        return Err(Error::msg(format!(
            "{}: inflates to more than {}, more than advpipe accepts from one compressed file",
            path.display(),
            human_bytes(limit)
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_folders_and_fifos_are_refused_before_opening() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(Path::new("/dev/zero"), FileKind::Pipeline).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = read(dir.path(), FileKind::Checkpoint).unwrap_err().to_string();
        assert!(e.contains("a folder"), "{e}");
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let e = read(&fifo, FileKind::Idx).unwrap_err().to_string();
            assert!(e.contains("FIFO"), "{e}");
        }
        #[cfg(unix)]
        {
            let link = dir.path().join("zero");
            std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
            assert!(read(&link, FileKind::CacheFile).is_err());
        }
    }

    #[test]
    fn size_limits_hold() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; (FileKind::Config.limit() + 1) as usize]).unwrap();
        let e = read(&big, FileKind::Config).unwrap_err().to_string();
        assert!(e.contains("1 MiB at most"), "{e}");
        std::fs::write(&big, b"a = 1\n").unwrap();
        assert_eq!(read(&big, FileKind::Config).unwrap(), b"a = 1\n");
    }

    #[test]
    fn gzip_bombs_stop_at_the_limit() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut enc, &vec![0u8; 1 << 20]).unwrap();
        let gz = enc.finish().unwrap();
        let e = gunzip(Path::new("x.gz"), &gz, 1000).unwrap_err().to_string();
        assert!(e.contains("more than 1000 bytes"), "{e}");
        assert_eq!(gunzip(Path::new("x.gz"), &gz, 1 << 20).unwrap().len(), 1 << 20);
    }

    #[test]
    fn invalid_utf8_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.adv");
        std::fs::write(&path, b"seed 1\nnet x\xff = 1\n").unwrap();
        let e = read_text(&path, FileKind::Pipeline).unwrap_err().to_string();
        assert!(e.contains("bad.adv:2:6: the file is not valid UTF-8"), "{e}");
    }
}
