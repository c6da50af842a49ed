//! The service's own failures. Bad records are never errors: they become
//! [`crate::transform::FailedRecord`]s and land in the error prefix.

use std::path::PathBuf;

/// Everything that can stop lakehose, with the context an operator needs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config {path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("schema {path}: {message}")]
    Schema { path: PathBuf, message: String },

    #[error("unknown table {table:?} (known: {known})")]
    UnknownTable { table: String, known: String },

    #[error("masking key: {0}")]
    MaskKey(String),

    #[error("input {path}: {source}")]
    Input {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("object store {location}: {message}")]
    Sink { location: String, message: String },

    #[error("catalog {location}: {message}")]
    Catalog { location: String, message: String },

    #[error("checkpoint store {location}: {message}")]
    Checkpoint { location: String, message: String },

    #[error("AWS: {0}")]
    Aws(String),

    #[error("kinesis stream {stream}: {message}")]
    Kinesis { stream: String, message: String },

    #[error("encoding {what}: {message}")]
    Encode { what: String, message: String },

    /// A bug: a stage panicked. The run stops with this rather than going
    /// on without the stage's records.
    #[error("internal error in the {stage} stage (a bug, please report it): {message}")]
    Internal {
        stage: &'static str,
        message: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn sink(location: impl std::fmt::Display, message: impl std::fmt::Display) -> Self {
        Error::Sink {
            location: location.to_string(),
            message: message.to_string(),
        }
    }
    pub(crate) fn catalog(
        location: impl std::fmt::Display,
        message: impl std::fmt::Display,
    ) -> Self {
        Error::Catalog {
            location: location.to_string(),
            message: message.to_string(),
        }
    }
    pub(crate) fn checkpoint(
        location: impl std::fmt::Display,
        message: impl std::fmt::Display,
    ) -> Self {
        Error::Checkpoint {
            location: location.to_string(),
            message: message.to_string(),
        }
    }
    pub(crate) fn encode(what: impl std::fmt::Display, message: impl std::fmt::Display) -> Self {
        Error::Encode {
            what: what.to_string(),
            message: message.to_string(),
        }
    }
}
