//! `sekisho backup DIR` and `sekisho restore DIR` (issue #19).
//!
//! A backup is a folder: the SQLite database copied consistently while Sekisho serves
//! (`VACUUM INTO`), the keys, this node's id, the recordings (or with `--without-recordings`
//! only their signed manifests and the audit checkpoints, when the recordings share is backed
//! up on its own), `SHA256SUMS` over every file (`sha256sum -c SHA256SUMS` checks it with
//! stock tools) and, written last, `backup.json`: a backup without it did not finish. A
//! PostgreSQL database is not copied: `pg_dump` covers it, and the backup says so.
//!
//! `restore` checks all of that before it writes anything, and writes only into an empty data
//! directory: a partial, altered or newer backup is refused with the reason.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_lc_rs::digest::{Context as Digest, SHA256};
use sekisho_config::Config;
use serde::{Deserialize, Serialize};

const FORMAT: &str = "sekisho-backup-1";
const SUMS: &str = "SHA256SUMS";
const INDEX: &str = "backup.json";
const DB_FILE: &str = "sekisho.db";

/// `backup.json`.
#[derive(Debug, Serialize, Deserialize)]
struct BackupIndex {
    format: String,
    sekisho: String,
    created_at: String,
    /// `sqlite` (in the backup) or `postgresql` (not in it: pg_dump).
    database: String,
    /// The newest migration of the database backed up.
    schema: i64,
    /// `full` or `manifests`.
    recordings: String,
    files: u64,
    bytes: u64,
}

/// Copies files, hashing what it copies, and shows progress every few seconds.
struct Copier {
    sums: Vec<(String, String)>,
    bytes: u64,
    last: Instant,
}

impl Copier {
    fn new() -> Self {
        Self {
            sums: vec![],
            bytes: 0,
            last: Instant::now(),
        }
    }

    /// Copies `from` to `root/rel`, mode `mode`; returns its SHA-256.
    fn copy(&mut self, from: &Path, root: &Path, rel: &str, mode: u32) -> anyhow::Result<String> {
        use std::os::unix::fs::OpenOptionsExt;
        let to = root.join(rel);
        if let Some(dir) = to.parent() {
            create_private_dir(dir)?;
        }
        let mut src =
            std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
        let mut dst = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(mode)
            .open(&to)
            .with_context(|| format!("cannot create {}", to.display()))?;
        let mut hash = Digest::new(&SHA256);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = src
                .read(&mut buf)
                .with_context(|| format!("cannot read {}", from.display()))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            dst.write_all(&buf[..n])
                .with_context(|| format!("cannot write {}", to.display()))?;
            self.bytes += n as u64;
            if self.last.elapsed() > Duration::from_secs(2) {
                eprintln!("  … {} files, {} copied", self.sums.len(), size(self.bytes));
                self.last = Instant::now();
            }
        }
        dst.sync_all()
            .with_context(|| format!("cannot write {}", to.display()))?;
        let hex = hex::encode(hash.finish().as_ref());
        self.sums.push((hex.clone(), rel.to_owned()));
        Ok(hex)
    }
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
    } else {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Every file under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = vec![];
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        let entries = match std::fs::read_dir(&here) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && rel.as_os_str().is_empty() => {
                return Ok(out);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", here.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", here.display()))?;
            let kind = entry.file_type()?;
            let name = rel.join(entry.file_name());
            if kind.is_dir() {
                stack.push(name);
            } else if kind.is_file() {
                out.push(name);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn is_empty_or_missing(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

fn rel_str(p: &Path) -> anyhow::Result<String> {
    p.to_str()
        .map(ToOwned::to_owned)
        .with_context(|| format!("{} is not a UTF-8 name", p.display()))
}

/// `sekisho backup DIR [--without-recordings]`.
pub async fn backup(
    config_path: Option<&Path>,
    dir: &Path,
    recordings: bool,
) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path)?;
    if !is_empty_or_missing(dir) {
        bail!("{} is not empty: back up into a new folder", dir.display());
    }
    create_private_dir(dir)?;
    let url = config.database_url();
    let store = sekisho_store::Store::open(&url, 2)
        .await
        .with_context(|| format!("cannot open the database {}", super::redact(&url)))?;
    let schema = store.schema_version().await;
    let mut copier = Copier::new();
    let database = match store.kind() {
        sekisho_store::DbKind::Sqlite => {
            let to = dir.join(DB_FILE);
            store
                .backup_sqlite(&to)
                .await
                .context("cannot copy the database")?;
            let (bytes, hex) = hash_file(&to)?;
            copier.bytes += bytes;
            copier.sums.push((hex, DB_FILE.to_owned()));
            println!("database: copied (SQLite, schema {schema})");
            "sqlite"
        }
        sekisho_store::DbKind::Postgres => {
            println!(
                "database: PostgreSQL is NOT in this backup. Back it up with its own tools at the same time, e.g.\n  \
                 pg_dump --format=custom --file=sekisho.dump '{}'\n  \
                 (every table of the database: the audit chain, requests, sessions, users, sealed credentials;\n  \
                 restore it with pg_restore into an empty database before `sekisho restore`)",
                super::redact(&url)
            );
            "postgresql"
        }
    };
    store.pool().close().await;
    copy_data(&config, dir, recordings, &mut copier)?;
    let files = copier.sums.len() as u64;
    let mut sums = String::new();
    for (hex, rel) in &copier.sums {
        sums.push_str(&format!("{hex}  {rel}\n"));
    }
    write_new(&dir.join(SUMS), sums.as_bytes())?;
    let index = BackupIndex {
        format: FORMAT.into(),
        sekisho: env!("CARGO_PKG_VERSION").into(),
        created_at: jiff::Timestamp::now().to_string(),
        database: database.into(),
        schema,
        recordings: if recordings { "full" } else { "manifests" }.into(),
        files,
        bytes: copier.bytes,
    };
    write_new(&dir.join(INDEX), &serde_json::to_vec_pretty(&index)?)?;
    println!(
        "backup complete: {} files, {} in {} (check with `sha256sum -c {SUMS}` there)",
        files,
        size(copier.bytes),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Keys, node id and recordings (all, or manifests and checkpoints only).
fn copy_data(
    config: &Config,
    dir: &Path,
    recordings: bool,
    copier: &mut Copier,
) -> anyhow::Result<()> {
    let keys = config.data_dir.join("keys");
    for rel in files_under(&keys)? {
        let rel = rel_str(&rel)?;
        copier.copy(&keys.join(&rel), dir, &format!("keys/{rel}"), 0o600)?;
    }
    let node_id = config.data_dir.join("node-id");
    if node_id.exists() {
        copier.copy(&node_id, dir, "node-id", 0o600)?;
    }
    let rec = config.recordings_dir();
    for rel in files_under(&rec)? {
        let rel = rel_str(&rel)?;
        let wanted =
            recordings || rel.ends_with("manifest.json") || rel.starts_with("checkpoints/");
        if wanted {
            copier.copy(&rec.join(&rel), dir, &format!("recordings/{rel}"), 0o600)?;
        }
    }
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// The SHA-256 of a file (hex), as the recordings' manifests compute it.
fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    Ok(sekisho_recorder::manifest::hash_file(path)?)
}

/// Reads and checks a backup: complete, of a schema this version knows, every file as
/// listed and nothing else. Returns its index and files.
fn check(dir: &Path) -> anyhow::Result<(BackupIndex, Vec<String>)> {
    let index_path = dir.join(INDEX);
    let text = match std::fs::read(&index_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} is not a complete backup: it has no {INDEX} (a backup stopped before it finished, or not a Sekisho backup)",
            dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", index_path.display())),
    };
    let index: BackupIndex = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a Sekisho backup index", index_path.display()))?;
    if index.format != FORMAT {
        bail!(
            "{} has format {:?}; this version reads {FORMAT:?}",
            index_path.display(),
            index.format
        );
    }
    let known = sekisho_store::schema_known();
    if index.schema > known {
        bail!(
            "this backup was made by a newer Sekisho ({}, database schema {}; this version knows up to {known}): restore it with that version or a newer one",
            index.sekisho,
            index.schema
        );
    }
    let sums = std::fs::read_to_string(dir.join(SUMS))
        .with_context(|| format!("{} has no readable {SUMS}: it is incomplete", dir.display()))?;
    let mut listed = vec![];
    for (n, line) in sums.lines().enumerate() {
        let Some((hex, rel)) = line.split_once("  ") else {
            bail!("{SUMS} line {} is not `HASH  FILE`", n + 1);
        };
        if rel.split('/').any(|c| c == ".." || c.is_empty()) || rel.starts_with('/') {
            bail!(
                "{SUMS} line {} names a path outside the backup: {rel}",
                n + 1
            );
        }
        let path = dir.join(rel);
        if !path.is_file() {
            bail!("the backup is incomplete: {rel} is listed in {SUMS} but missing");
        }
        if hash_file(&path)?.1 != hex {
            bail!("the backup is damaged or altered: {rel} does not match its SHA-256 in {SUMS}");
        }
        listed.push(rel.to_owned());
    }
    for rel in files_under(dir)? {
        let rel = rel_str(&rel)?;
        if rel != SUMS && rel != INDEX && !listed.contains(&rel) {
            bail!("the backup holds {rel}, which {SUMS} does not list: it was added afterwards");
        }
    }
    if listed.len() as u64 != index.files {
        bail!(
            "the backup is incomplete: {INDEX} counts {} files, {SUMS} lists {}",
            index.files,
            listed.len()
        );
    }
    Ok((index, listed))
}

/// `sekisho restore DIR`: into the configured data directory, which must be empty.
pub fn restore(config_path: Option<&Path>, dir: &Path) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path)?;
    let (index, files) = check(dir)?;
    println!(
        "backup of {} by Sekisho {}: {} files, {}, checked",
        index.created_at,
        index.sekisho,
        index.files,
        size(index.bytes)
    );
    let data = &config.data_dir;
    if !is_empty_or_missing(data) {
        bail!(
            "the data directory {} is not empty: restore only into a new one (move the old one away first)",
            data.display()
        );
    }
    let url = config.database_url();
    let sqlite_target = sekisho_store::sqlite_file(&url);
    match (index.database.as_str(), &sqlite_target) {
        ("sqlite", None) => bail!(
            "the backup holds a SQLite database but [database] url is {}: restore with the default database, then move the data to PostgreSQL",
            super::redact(&url)
        ),
        ("postgresql", Some(_)) => bail!(
            "the backup's database is PostgreSQL and not in the backup: set [database] url to the database restored with pg_restore"
        ),
        _ => {}
    }
    if let Some(db) = &sqlite_target
        && db.exists()
    {
        bail!("{} exists: restore only into a new database", db.display());
    }
    create_private_dir(data)?;
    let mut copier = Copier::new();
    for rel in &files {
        let from = dir.join(rel);
        let (root, rest): (PathBuf, &str) = if rel == DB_FILE {
            let Some(db) = &sqlite_target else { continue };
            let parent = db
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            let name = db.file_name().and_then(|n| n.to_str()).unwrap_or(DB_FILE);
            copier.copy(&from, &parent, name, 0o600)?;
            continue;
        } else if let Some(r) = rel.strip_prefix("recordings/") {
            (config.recordings_dir(), r)
        } else {
            (data.clone(), rel.as_str())
        };
        copier.copy(&from, &root, rest, 0o600)?;
    }
    println!(
        "restored {} files ({}) into {}",
        copier.sums.len(),
        size(copier.bytes),
        data.display()
    );
    if index.recordings == "manifests" {
        println!(
            "the recordings themselves were not in this backup: restore the recordings share too"
        );
    }
    println!("next: `sekisho audit verify`, then `sekisho serve`");
    Ok(ExitCode::SUCCESS)
}
