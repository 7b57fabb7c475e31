//! Session recordings: what passed through the gateway, stored so that IT can check the
//! work afterwards (case 6: 作業内容のチェック) and an auditor can replay and verify it years later.
//!
//! One folder per session under `[recordings] dir`:
//!
//! | file | format |
//! | --- | --- |
//! | `manifest.json` | who, what, when; each file's size and SHA-256; Ed25519 signature ([`manifest`]) |
//! | `term-N.cast` | a terminal (PTY) channel, asciicast v2 ([`cast`]) |
//! | `stream-N.skr` | an exec, sftp or TCP channel, the framed stream format ([`stream`]) |
//! | `index.jsonl` | what was typed and shown on screen, when ([`index`]), built at close |
//!
//! Writes go through a bounded queue to one writer task per session ([`session`]): a slow disk
//! slows the session, a failed or stalled one ends it, and nothing is dropped silently.

pub mod bundle;
pub mod cast;
pub mod index;
pub mod library;
pub mod manifest;
pub mod pcap;
pub mod session;
pub mod stream;

pub use library::Library;
pub use manifest::{Manifest, RecordingKey};
pub use session::{Recorder, SessionMeta, SessionRecording};

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
