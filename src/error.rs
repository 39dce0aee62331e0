//! The runtime error type: everything that can go wrong after a pipeline has checked.
//!
//! Pipeline-file mistakes are [`crate::diagnostics::Diagnostic`]s; this covers the rest
//! (missing data, I/O, a diverging fit), each with a message that names what failed.

use std::path::{Path, PathBuf};

/// A runtime failure, with a message a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something described in words.
    #[error("{0}")]
    Msg(String),
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The pipeline file did not check (the diagnostics are already rendered).
    #[error("{0}")]
    Pipeline(String),
}

impl Error {
    /// An error with a message.
    pub fn msg(m: impl Into<String>) -> Self {
        Error::Msg(m.into())
    }
    /// An I/O error about `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
