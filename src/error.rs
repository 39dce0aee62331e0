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
    /// A node failed while computing; the innermost node is the one named.
    #[error("node `{node}` ({kind}) failed: {message}")]
    Node {
        /// The node's name.
        node: String,
        /// Its kind.
        kind: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// An error with a message.
    pub fn msg(m: impl Into<String>) -> Self {
        Error::Msg(m.into())
    }
    /// This error as a failure of node `node`, unless it already names the node that failed
    /// (an input computed on demand).
    pub fn in_node(self, node: &str, kind: &'static str) -> Self {
        match self {
            Error::Node { .. } => self,
            other => Error::Node {
                node: node.to_string(),
                kind,
                message: other.to_string(),
            },
        }
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
