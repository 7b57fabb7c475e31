//! Why notifications cannot start.

/// Why notifications cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot read {what} {path}: {source}")]
    File {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}
