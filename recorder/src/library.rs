//! The recordings directory as a whole: listing, sealing recordings left open by a crash,
//! verification and search.

use std::path::{Path, PathBuf};

use crate::error::{RecordingError, Result, io_err};
use crate::index::{self, INDEX};
use crate::manifest::{
    self, FileEntry, FileKind, MANIFEST, Manifest, RecordingKey, RecordingState, hash_file,
    recording_files,
};

/// A recording file's kind and channel, from its name.
pub(crate) fn kind_of(name: &str) -> (FileKind, Option<u32>) {
    let channel = |prefix: &str, suffix: &str| {
        name.strip_prefix(prefix)?
            .strip_suffix(suffix)?
            .parse()
            .ok()
    };
    if name == INDEX {
        (FileKind::Index, None)
    } else if name == manifest::FILES {
        (FileKind::Files, None)
    } else if name.ends_with(".screens") {
        (FileKind::Screens, channel("stream-", ".screens"))
    } else if name.ends_with(".cast") {
        (FileKind::Asciicast, channel("term-", ".cast"))
    } else {
        (FileKind::Stream, channel("stream-", ".skr"))
    }
}

/// Indexes, hashes every file, signs and writes the manifest (sealing after a crash).
pub fn finish(dir: &Path, manifest: &mut Manifest, key: &RecordingKey) -> Result<()> {
    finish_with(dir, manifest, key, &std::collections::BTreeMap::new())
}

/// Like [`finish`], using hashes the writer computed while writing (`name → (size, sha256)`)
/// instead of reading those files again.
pub fn finish_with(
    dir: &Path,
    manifest: &mut Manifest,
    key: &RecordingKey,
    known: &std::collections::BTreeMap<String, (u64, String)>,
) -> Result<()> {
    index::build(dir)?;
    let mut names = recording_files(dir)?;
    names.extend(crate::desktop::build_all_screens(dir));
    names.push(INDEX.to_owned());
    manifest.files = names
        .into_iter()
        .map(|name| {
            let (size, sha256) = match known.get(&name) {
                Some(k) => k.clone(),
                None => hash_file(&dir.join(&name))?,
            };
            let (kind, channel) = kind_of(&name);
            Ok(FileEntry {
                name,
                kind,
                channel,
                size,
                sha256,
            })
        })
        .collect::<Result<_>>()?;
    key.sign(manifest);
    manifest.write(dir)
}

/// What verification found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Verification {
    pub session: String,
    pub state: RecordingState,
    /// Empty when the recording is intact.
    pub problems: Vec<String>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks a recording folder against its manifest and the manifest against the public key.
pub fn verify_dir(dir: &Path, public_key_b64: &str) -> Result<Verification> {
    let m = Manifest::read(dir)?;
    let mut problems = vec![];
    if let Err(e) = manifest::verify_signature(&m, public_key_b64) {
        problems.push(format!("{MANIFEST}: {e}"));
    }
    if m.state == RecordingState::Open {
        problems.push("recording is still open (not sealed)".to_owned());
    }
    for f in &m.files {
        let path = dir.join(&f.name);
        match hash_file(&path) {
            Err(_) => problems.push(format!("{}: missing", f.name)),
            Ok((size, _)) if size != f.size => problems.push(format!(
                "{}: size is {size} bytes, manifest says {} (file altered)",
                f.name, f.size
            )),
            Ok((_, sha)) if sha != f.sha256 => problems.push(format!(
                "{}: SHA-256 does not match the manifest (file altered)",
                f.name
            )),
            Ok(_) => {}
        }
    }
    for name in recording_files(dir)? {
        if !m.files.iter().any(|f| f.name == name) {
            problems.push(format!("{name}: not in the manifest (added after sealing)"));
        }
    }
    Ok(Verification {
        session: m.meta.session,
        state: m.state,
        problems,
    })
}

/// Why a recording has no single TCP stream to export.
#[derive(Debug, thiserror::Error)]
pub enum TcpStreamError {
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error("recording {session} has no TCP stream{}", on_channel(*.channel))]
    None {
        session: String,
        channel: Option<u32>,
    },
    #[error("recording {session} has {count} TCP streams: choose one with --channel")]
    Several { session: String, count: usize },
}

fn on_channel(channel: Option<u32>) -> String {
    channel
        .map(|c| format!(" on channel {c}"))
        .unwrap_or_default()
}

/// The TCP stream recording of `dir` to export as pcap: the one on `channel`, or the only
/// one. The error is for a person ("has 2 TCP streams: choose one with --channel").
pub fn tcp_stream(
    dir: &Path,
    channel: Option<u32>,
) -> std::result::Result<crate::stream::StreamFile, TcpStreamError> {
    let m = Manifest::read(dir)?;
    let streams: Vec<_> = m
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Stream && channel.is_none_or(|c| f.channel == Some(c)))
        .filter_map(|f| {
            let s = crate::stream::parse(&std::fs::read(dir.join(&f.name)).ok()?).ok()?;
            (s.header.kind == crate::stream::StreamKind::Tcp).then_some(s)
        })
        .collect();
    let count = streams.len();
    match <[_; 1]>::try_from(streams) {
        Ok([one]) => Ok(one),
        Err(_) if count == 0 => Err(TcpStreamError::None {
            session: m.meta.session,
            channel,
        }),
        Err(_) => Err(TcpStreamError::Several {
            session: m.meta.session,
            count,
        }),
    }
}

/// One place a search text was found.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    pub session: String,
    pub target: String,
    pub vendor_user: String,
    pub file: String,
    /// Seconds since the recording started.
    pub t: f64,
    pub source: index::Source,
    pub text: String,
}

/// The recordings under one directory.
#[derive(Clone, Debug)]
pub struct Library {
    dir: PathBuf,
}

impl Library {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn folders(&self) -> Result<Vec<PathBuf>> {
        if !self.dir.exists() {
            return Ok(vec![]);
        }
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(io_err("list", &self.dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join(MANIFEST).exists())
            .collect();
        v.sort();
        Ok(v)
    }

    /// Every recording's manifest, newest first. Unreadable manifests are skipped with a warning.
    pub fn list(&self) -> Result<Vec<Manifest>> {
        let mut out = vec![];
        for dir in self.folders()? {
            match Manifest::read(&dir) {
                Ok(m) => out.push(m),
                Err(e) => tracing::warn!(error = %e, "unreadable recording manifest"),
            }
        }
        out.sort_by_key(|m| std::cmp::Reverse(m.started_at));
        Ok(out)
    }

    /// The folder of a recording, by session id or a unique prefix of it.
    pub fn find(&self, id: &str) -> Result<PathBuf> {
        let exact = self.dir.join(id);
        if !id.is_empty() && !id.contains('/') && exact.join(MANIFEST).exists() {
            return Ok(exact);
        }
        let matches: Vec<PathBuf> = self
            .folders()?
            .into_iter()
            .filter(|p| {
                !id.is_empty()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(id))
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(RecordingError::NotFound(id.to_owned())),
            _ => Err(RecordingError::NotFound(format!(
                "{id} (ambiguous: {} recordings start with it)",
                matches.len()
            ))),
        }
    }

    /// Seals recordings left `open` by a crash: indexes what is there, hashes it, marks the
    /// manifest `aborted` and signs it. Returns the sealed manifests.
    ///
    /// `ours` says which sessions' recordings this caller may seal: in a recordings directory
    /// shared by several gateway nodes, a recording another live node is writing is left alone.
    pub fn seal_abandoned(
        &self,
        key: &RecordingKey,
        ours: impl Fn(&str) -> bool,
        reason: &str,
    ) -> Result<Vec<Manifest>> {
        let mut sealed = vec![];
        for dir in self.folders()? {
            let Ok(mut m) = Manifest::read(&dir) else {
                continue;
            };
            if m.state != RecordingState::Open || !ours(&m.meta.session) {
                continue;
            }
            m.state = RecordingState::Aborted;
            m.end_reason = Some(reason.to_owned());
            m.ended_at = Some(jiff::Timestamp::now());
            finish(&dir, &mut m, key)?;
            for f in &m.files {
                tracing::warn!(session = %m.meta.session, file = %f.name, size = f.size, sha256 = %f.sha256, "sealed abandoned recording");
            }
            sealed.push(m);
        }
        Ok(sealed)
    }

    /// Sealed recordings that ended before `cutoff`, oldest first.
    pub fn sealed_before(&self, cutoff: jiff::Timestamp) -> Result<Vec<(PathBuf, Manifest)>> {
        let mut out = vec![];
        for dir in self.folders()? {
            let Ok(m) = Manifest::read(&dir) else {
                continue;
            };
            if m.state != RecordingState::Open && m.ended_at.unwrap_or(m.started_at) < cutoff {
                out.push((dir, m));
            }
        }
        out.sort_by_key(|(_, m)| m.started_at);
        Ok(out)
    }

    /// Deletes a recording folder (retention). The caller decides and audits.
    pub fn delete(&self, dir: &Path) -> Result<()> {
        if dir.parent() != Some(self.dir.as_path()) {
            return Err(RecordingError::NotFound(dir.display().to_string()));
        }
        std::fs::remove_dir_all(dir).map_err(io_err("delete", dir))
    }

    pub fn verify(&self, id: &str, public_key_b64: &str) -> Result<Verification> {
        verify_dir(&self.find(id)?, public_key_b64)
    }

    /// Finds `text` (case-insensitive) in what was typed or shown, across all recordings.
    pub fn search(&self, text: &str) -> Result<Vec<Hit>> {
        let needle = text.to_lowercase();
        let mut hits = vec![];
        for dir in self.folders()? {
            let Ok(m) = Manifest::read(&dir) else {
                continue;
            };
            let Ok(entries) = index::read(&dir) else {
                continue;
            };
            for e in entries {
                if e.text.to_lowercase().contains(&needle) {
                    hits.push(Hit {
                        session: m.meta.session.clone(),
                        target: m.meta.target.clone(),
                        vendor_user: m.meta.vendor_user.clone(),
                        file: e.file,
                        t: e.t,
                        source: e.source,
                        text: e.text,
                    });
                }
            }
        }
        Ok(hits)
    }
}
