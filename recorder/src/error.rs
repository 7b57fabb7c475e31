//! Why a recording operation failed.

/// Why a recording operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("recording {0} not found")]
    NotFound(String),
    #[error("{path}: {message}")]
    Format {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("the recording could not be written: {0}; the session must end")]
    Failed(String),
    #[error(
        "the recording queue stayed full for {0} seconds (disk too slow); the session must end"
    )]
    Stalled(u64),
    #[error("signing key: {0}")]
    Key(String),
}

pub type Result<T, E = RecordingError> = std::result::Result<T, E>;

/// Maps an IO error on `path` during `action`.
pub(crate) fn io_err(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> RecordingError + use<> {
    let path = path.to_owned();
    move |source| RecordingError::Io {
        action,
        path,
        source,
    }
}
