//! One-file export of a recording for auditors without an account: a `.tar.gz` with the
//! recording, its manifest, the public key, the exact signed bytes and signature (so stock
//! `openssl` can check them), and a README saying how.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::error::{RecordingError, Result, io_err};
use crate::library::{Verification, verify_dir};
use crate::manifest::{MANIFEST, Manifest, key_id};

const README: &str = "\
Sekisho session recording
=========================

This archive holds one recorded remote-maintenance session, exactly as the gateway sealed it.

  manifest.json           who, what, when, and each file's size and SHA-256
  term-N.cast             terminal channels (asciicast v2: `asciinema play term-0.cast`)
  stream-N.skr            byte streams (Sekisho stream format v1)
  index.jsonl             what was typed and shown, with times
  public-key.pem          the gateway's recording-signing public key (Ed25519)
  manifest.unsigned.json  the exact bytes the signature covers
  manifest.sig            the raw Ed25519 signature

To check it with Sekisho:   sekisho recording verify --bundle THIS_FILE
To check it with stock tools:
  1. sha256sum the files and compare with manifest.json's \"files\".
  2. openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin \\
         -in manifest.unsigned.json -sigfile manifest.sig
  3. Compare the key id in manifest.json with the one the hospital publishes
     (`sekisho recording key` on the gateway): a bundle re-signed with another key
     verifies against its own key, so the key itself must be the hospital's.
";

fn spki_pem(raw: &[u8]) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(raw);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

/// Writes the bundle of the recording in `dir` to `out`.
pub fn export(dir: &Path, public_key_b64: &str, out: &Path) -> Result<()> {
    let mut file = std::fs::File::create(out).map_err(io_err("create", out))?;
    export_to(dir, public_key_b64, &mut file)?;
    file.sync_all().map_err(io_err("sync", out))
}

/// [`export`] into any writer (the API streams it from a temporary file).
pub fn export_to(dir: &Path, public_key_b64: &str, file: impl Write) -> Result<()> {
    let out = Path::new("the bundle");
    let manifest = Manifest::read(dir)?;
    let raw = STANDARD
        .decode(public_key_b64.trim())
        .map_err(|e| RecordingError::Key(e.to_string()))?;
    let sig = manifest
        .signature
        .as_deref()
        .and_then(|s| STANDARD.decode(s).ok())
        .ok_or_else(|| {
            RecordingError::Failed("the recording is not signed (still open?)".into())
        })?;
    let mut tar = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    let prefix = format!("sekisho-recording-{}", manifest.meta.session);
    let mut add = |name: &str, bytes: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(manifest.started_at.as_second().max(0) as u64);
        h.set_cksum();
        tar.append_data(&mut h, format!("{prefix}/{name}"), bytes)
            .map_err(io_err("write", out))
    };
    add(
        MANIFEST,
        &std::fs::read(dir.join(MANIFEST)).map_err(io_err("read", dir))?,
    )?;
    for f in &manifest.files {
        let p = dir.join(&f.name);
        add(&f.name, &std::fs::read(&p).map_err(io_err("read", &p))?)?;
    }
    add("public-key.pem", spki_pem(&raw).as_bytes())?;
    add(
        "public-key.b64",
        format!("{}\n", public_key_b64.trim()).as_bytes(),
    )?;
    add("manifest.unsigned.json", &manifest.signed_bytes())?;
    add("manifest.sig", &sig)?;
    add("README.txt", README.as_bytes())?;
    let gz = tar.into_inner().map_err(io_err("write", out))?;
    let mut file = gz.finish().map_err(io_err("write", out))?;
    file.flush().map_err(io_err("write", out))
}

/// What checking a bundle found: the recording's verification and the key it was checked with.
#[derive(Debug)]
pub struct BundleCheck {
    pub verification: Verification,
    pub key_id: String,
    /// Whether the key was given by the caller (trusted) or taken from the bundle itself.
    pub key_from_bundle: bool,
}

/// Unpacks a bundle into a temporary directory and verifies it, against `trusted_key_b64`
/// when given, otherwise against the key inside the bundle.
pub fn verify(bundle: &Path, trusted_key_b64: Option<&str>, scratch: &Path) -> Result<BundleCheck> {
    let file = std::fs::File::open(bundle).map_err(io_err("open", bundle))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    archive.unpack(scratch).map_err(io_err("unpack", bundle))?;
    let dir = std::fs::read_dir(scratch)
        .map_err(io_err("list", scratch))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join(MANIFEST).exists())
        .ok_or_else(|| RecordingError::Format {
            path: bundle.to_owned(),
            message: "no manifest.json in the bundle".into(),
        })?;
    let (key, from_bundle) = match trusted_key_b64 {
        Some(k) => (k.trim().to_owned(), false),
        None => {
            let p = dir.join("public-key.b64");
            (
                std::fs::read_to_string(&p)
                    .map_err(io_err("read", &p))?
                    .trim()
                    .to_owned(),
                true,
            )
        }
    };
    let raw = STANDARD
        .decode(&key)
        .map_err(|e| RecordingError::Key(e.to_string()))?;
    // The bundle's own extra files are not recording files; hide them from the check.
    for extra in [
        "public-key.pem",
        "public-key.b64",
        "manifest.unsigned.json",
        "manifest.sig",
        "README.txt",
    ] {
        let _ = std::fs::remove_file(dir.join(extra));
    }
    Ok(BundleCheck {
        verification: verify_dir(&dir, &key)?,
        key_id: key_id(&raw),
        key_from_bundle: from_bundle,
    })
}
