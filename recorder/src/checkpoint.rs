//! Signed checkpoints of the audit chain (issue #18), kept outside the database.
//!
//! The hash chain proves that the log was not changed *unless* whoever changes it rewrites
//! everything from the change on, chain head included. So each node writes, every
//! `[audit] checkpoint_minutes` and when it stops, the head it sees (`seq` and `hash`),
//! signed with the group's recording key (Ed25519), as one JSON line appended to
//! `RECORDINGS/checkpoints/NODE.jsonl`: on the recordings share, out of the database's
//! reach. `sekisho audit verify` checks every signature and that the row each checkpoint
//! names still has that hash: a rewritten tail no longer matches the checkpoints written
//! before it.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{RecordingError, Result, io_err};
use crate::manifest::{RecordingKey, SignatureError, verify_signed};

/// The folder of the checkpoint files, in the recordings directory.
pub const DIR: &str = "checkpoints";

/// One signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The chain head: the last row's sequence number and hash.
    pub seq: i64,
    pub hash: String,
    /// When it was taken (RFC 3339, UTC).
    pub at: String,
    /// The node that took it.
    pub node: String,
    pub key_id: String,
    /// Ed25519 over [`Checkpoint::signed_bytes`], base64.
    pub signature: String,
}

impl Checkpoint {
    /// What the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "sekisho audit checkpoint\nseq {}\nhash {}\nat {}\nnode {}\n",
            self.seq, self.hash, self.at, self.node
        )
        .into_bytes()
    }

    /// Checks the signature against a raw public key (base64).
    pub fn verify(&self, public_key_b64: &str) -> std::result::Result<(), SignatureError> {
        verify_signed(
            public_key_b64,
            Some(&self.key_id),
            Some(&self.signature),
            &self.signed_bytes(),
        )
    }
}

impl RecordingKey {
    /// A checkpoint of the head (`seq`, `hash`) taken by `node` at `at`, signed.
    pub fn checkpoint(&self, seq: i64, hash: &str, at: &str, node: &str) -> Checkpoint {
        let mut c = Checkpoint {
            seq,
            hash: hash.to_owned(),
            at: at.to_owned(),
            node: node.to_owned(),
            key_id: self.id().to_owned(),
            signature: String::new(),
        };
        c.signature = self.sign_bytes(&c.signed_bytes());
        c
    }
}

/// The file `node` appends its checkpoints to.
pub fn file(recordings: &Path, node: &str) -> PathBuf {
    let safe: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    recordings.join(DIR).join(format!("{safe}.jsonl"))
}

/// Appends `c` to its node's file (created 0600 in a 0700 folder) and syncs it.
pub fn append(recordings: &Path, c: &Checkpoint) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = recordings.join(DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io_err("create", &dir))?;
    let path = file(recordings, &c.node);
    let mut line = serde_json::to_vec(c).map_err(|e| RecordingError::Key(e.to_string()))?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err("open", &path))?;
    f.write_all(&line).map_err(io_err("write", &path))?;
    f.sync_all().map_err(io_err("sync", &path))
}

/// Every checkpoint of every node, with the file and line it came from; a line that is not
/// a checkpoint is reported as such (someone edited the file).
pub fn read_all(
    recordings: &Path,
) -> Result<Vec<(String, std::result::Result<Checkpoint, String>)>> {
    let dir = recordings.join(DIR);
    if !dir.exists() {
        return Ok(vec![]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io_err("list", &dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = vec![];
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(io_err("read", &path))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let place = format!("{}:{}", path.display(), i + 1);
            out.push((place, serde_json::from_str(line).map_err(|e| e.to_string())));
        }
    }
    Ok(out)
}
