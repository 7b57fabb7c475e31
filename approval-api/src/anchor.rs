//! The audit chain against its signed checkpoints (issue #18): every checkpoint on the
//! recordings share must carry the group's signature, and the row it names must still have
//! the hash it recorded. Shared by `GET /api/v1/audit/verify` and `sekisho audit verify`.

use std::path::{Path, PathBuf};

use sekisho_recorder::checkpoint;
use sekisho_store::Store;

/// What the checkpoints said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Anchored {
    /// Where they were read.
    pub dir: PathBuf,
    /// Checkpoints whose signature verifies and whose row still has their hash.
    pub matched: usize,
    /// Every checkpoint that does not, in words (a file that cannot be read is one too).
    pub problems: Vec<String>,
}

/// Checks the checkpoints in `recordings` against `store` with the recording public key
/// (base64); without the key, checkpoints that exist are problems (they cannot be checked).
pub async fn check(
    store: &Store,
    recordings: &Path,
    public_key_b64: Option<&str>,
) -> Result<Anchored, sekisho_store::StoreError> {
    let mut out = Anchored {
        dir: recordings.join(checkpoint::DIR),
        ..Anchored::default()
    };
    let dir = recordings.to_owned();
    let all = match tokio::task::spawn_blocking(move || checkpoint::read_all(&dir)).await {
        Ok(Ok(all)) => all,
        Ok(Err(e)) => {
            out.problems
                .push(format!("the checkpoints cannot be read: {e}"));
            return Ok(out);
        }
        Err(e) => {
            out.problems
                .push(format!("the checkpoints cannot be read: {e}"));
            return Ok(out);
        }
    };
    for (place, c) in all {
        let c = match c {
            Ok(c) => c,
            Err(e) => {
                out.problems
                    .push(format!("{place} is not a checkpoint ({e})"));
                continue;
            }
        };
        let Some(public) = public_key_b64 else {
            out.problems.push(format!(
                "{place} cannot be checked: the recording public key is missing"
            ));
            continue;
        };
        if let Err(e) = c.verify(public) {
            out.problems.push(format!(
                "{place}: the checkpoint's signature does not verify ({e})"
            ));
            continue;
        }
        match store.audit_hash_at(c.seq).await? {
            Some(h) if h == c.hash => out.matched += 1,
            Some(_) => out.problems.push(format!(
                "row {} differs from the checkpoint node {} signed at {} ({place}): the log was rewritten from there on",
                c.seq, c.node, c.at
            )),
            None => out.problems.push(format!(
                "row {}, checkpointed by node {} at {} ({place}), is gone: rows were removed",
                c.seq, c.node, c.at
            )),
        }
    }
    Ok(out)
}
