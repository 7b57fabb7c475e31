//! `manifest.json`: what a recording is, each file's size and SHA-256, and the gateway's
//! Ed25519 signature over all of it.

use std::io::Read;
use std::path::Path;

use aws_lc_rs::digest::{Context, SHA256, digest};
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{RecordingError, Result, io_err};

pub const MANIFEST: &str = "manifest.json";
pub const FORMAT: &str = "sekisho-recording/1";

/// Who and what a recording is about; written into the manifest.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionMeta {
    pub session: String,
    pub request: String,
    pub request_number: i64,
    pub vendor: String,
    pub vendor_user: String,
    pub target: String,
    pub level: String,
    pub source_addr: String,
}

/// Where a recording is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Being written.
    Open,
    /// Closed normally.
    Closed,
    /// Sealed after the gateway stopped or crashed while it was open.
    Aborted,
}

impl RecordingState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Open => "open",
            RecordingState::Closed => "closed",
            RecordingState::Aborted => "aborted",
        }
    }
}

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Asciicast,
    Stream,
    Index,
    /// `files.jsonl`: the files that crossed, one JSON line each.
    Files,
    /// Snapshots of a remote desktop stream's screen.
    Screens,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub kind: FileKind,
    pub channel: Option<u32>,
    pub size: u64,
    pub sha256: String,
}

/// The manifest. Field order is the signed encoding's order: do not reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// Who and what (flattened: the JSON keeps these as top-level keys).
    #[serde(flatten)]
    pub meta: SessionMeta,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub state: RecordingState,
    pub end_reason: Option<String>,
    pub files: Vec<FileEntry>,
    /// Which key signed it (first 8 bytes of the public key's SHA-256, hex).
    pub key_id: Option<String>,
    /// Base64 Ed25519 signature over [`Manifest::signed_bytes`].
    pub signature: Option<String>,
}

impl Manifest {
    /// The bytes the signature covers: the manifest as JSON without its signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }

    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(io_err("read", &path))?;
        serde_json::from_str(&text).map_err(|e| RecordingError::Format {
            path,
            message: e.to_string(),
        })
    }

    /// Writes atomically (temporary file, fsync, rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        let tmp = dir.join("manifest.json.tmp");
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| RecordingError::Failed(e.to_string()))?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
            f.write_all(&json).map_err(io_err("write", &tmp))?;
            f.sync_all().map_err(io_err("sync", &tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io_err("rename", &path))
    }
}

/// Size and SHA-256 (hex) of a file, read in blocks.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(io_err("open", path))?;
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        ctx.update(&buf[..n]);
    }
    Ok((size, hex::encode(ctx.finish().as_ref())))
}

/// The gateway's recording-signing key (Ed25519).
pub struct RecordingKey {
    pair: Ed25519KeyPair,
    id: String,
}

impl std::fmt::Debug for RecordingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The id of a public key: first 8 bytes of its SHA-256, hex.
pub fn key_id(public: &[u8]) -> String {
    hex::encode(&digest(&SHA256, public).as_ref()[..8])
}

impl RecordingKey {
    /// A fresh key as PKCS#8 bytes (to be stored 0600 by the caller).
    pub fn generate_pkcs8() -> Result<Vec<u8>> {
        Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| RecordingError::Key(e.to_string()))
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        let pair =
            Ed25519KeyPair::from_pkcs8(der).map_err(|e| RecordingError::Key(e.to_string()))?;
        let id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, id })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The raw 32-byte public key, base64 (what bundles carry for offline checking).
    pub fn public_key_b64(&self) -> String {
        STANDARD.encode(self.pair.public_key().as_ref())
    }

    /// An Ed25519 signature of `bytes`, base64.
    pub fn sign_bytes(&self, bytes: &[u8]) -> String {
        STANDARD.encode(self.pair.sign(bytes).as_ref())
    }

    pub fn sign(&self, m: &mut Manifest) {
        m.key_id = Some(self.id.clone());
        m.signature = None;
        let sig = self.pair.sign(&m.signed_bytes());
        m.signature = Some(STANDARD.encode(sig.as_ref()));
    }
}

/// Why a manifest's signature does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("public key is not base64")]
    PublicKeyNotBase64,
    #[error("manifest is not signed")]
    NotSigned,
    #[error("signature is not base64")]
    SignatureNotBase64,
    #[error("signed by key {signed_by} but checked against key {checked_with}")]
    OtherKey {
        signed_by: String,
        checked_with: String,
    },
    #[error("signature does not match the manifest (manifest altered)")]
    Altered,
}

/// Checks a manifest's signature against a raw public key (base64).
pub fn verify_signature(
    m: &Manifest,
    public_key_b64: &str,
) -> std::result::Result<(), SignatureError> {
    verify_signed(
        public_key_b64,
        m.key_id.as_deref(),
        m.signature.as_deref(),
        &m.signed_bytes(),
    )
}

/// Checks an Ed25519 `signature` (base64) of `bytes`, made by key `key_id`, against a raw
/// public key (base64): what manifests and audit checkpoints carry.
pub fn verify_signed(
    public_key_b64: &str,
    key_id: Option<&str>,
    signature: Option<&str>,
    bytes: &[u8],
) -> std::result::Result<(), SignatureError> {
    let public = STANDARD
        .decode(public_key_b64.trim())
        .map_err(|_| SignatureError::PublicKeyNotBase64)?;
    let sig = signature.ok_or(SignatureError::NotSigned)?;
    let sig = STANDARD
        .decode(sig)
        .map_err(|_| SignatureError::SignatureNotBase64)?;
    let checked_with = self::key_id(&public);
    if key_id != Some(checked_with.as_str()) {
        return Err(SignatureError::OtherKey {
            signed_by: key_id.unwrap_or("?").to_owned(),
            checked_with,
        });
    }
    UnparsedPublicKey::new(&ED25519, &public)
        .verify(bytes, &sig)
        .map_err(|_| SignatureError::Altered)
}

/// The files that crossed in a session, one JSON line each (`sekisho_domain::files::FileRecord`).
pub const FILES: &str = "files.jsonl";

/// The recording files of a session folder (not the manifest or index), sorted.
pub fn recording_files(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io_err("list", dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n == FILES
                || (n.starts_with("term-") && n.ends_with(".cast"))
                || (n.starts_with("stream-") && n.ends_with(".skr"))
        })
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signatures cover this exact encoding: the session fields stay top-level, in this order.
    #[test]
    fn the_signed_encoding_keeps_its_field_order() {
        let m = Manifest {
            format: FORMAT.into(),
            meta: SessionMeta {
                session: "s".into(),
                request: "r".into(),
                request_number: 1,
                vendor: "v".into(),
                vendor_user: "u".into(),
                target: "t".into(),
                level: "reference".into(),
                source_addr: "127.0.0.1".into(),
            },
            started_at: Timestamp::UNIX_EPOCH,
            ended_at: None,
            state: RecordingState::Closed,
            end_reason: None,
            files: vec![],
            key_id: None,
            signature: Some("x".into()),
        };
        let text = String::from_utf8(m.signed_bytes()).unwrap();
        assert_eq!(
            text,
            r#"{"format":"sekisho-recording/1","session":"s","request":"r","request_number":1,"vendor":"v","vendor_user":"u","target":"t","level":"reference","source_addr":"127.0.0.1","started_at":"1970-01-01T00:00:00Z","ended_at":null,"state":"closed","end_reason":null,"files":[],"key_id":null,"signature":null}"#
        );
        let back: Manifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
