//! Session recordings: what passed through the gateway, stored so that IT can check the
//! work afterwards (case 6: 作業内容のチェック) and an auditor can replay and verify it years later.
//!
//! One folder per session under `[recordings] dir`:
//!
//! | file | format |
//! | --- | --- |
//! | `manifest.json` | who, what, when; each file's size and SHA-256; Ed25519 signature ([`manifest`]) |
//! | `term-N.cast` | a terminal (PTY) channel, asciicast v2 ([`cast`]) |
//! | `stream-N.skr` | an exec, sftp, TCP or remote desktop channel, the framed stream format ([`stream`]) |
//! | `stream-N.screens` | snapshots of a remote desktop stream's screen ([`desktop`]), built at close |
//! | `index.jsonl` | what was typed and shown on screen, when ([`index`]), built at close |
//!
//! Writes go through a bounded queue to one writer task per session ([`session`]): a slow disk
//! slows the session, a failed or stalled one ends it, and nothing is dropped silently.

pub mod activity;
pub mod bundle;
pub mod cast;
pub mod checkpoint;
pub mod desktop;
pub mod error;
pub mod index;
pub mod library;
pub mod manifest;
pub mod pcap;
pub mod session;
pub mod stream;

pub use error::{RecordingError, Result};
pub use library::Library;
pub use manifest::{Manifest, RecordingKey, SessionMeta};
pub use session::{Recorder, SessionRecording};
