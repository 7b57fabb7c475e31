//! Password hashing with Argon2id (the crate's recommended parameters).

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sekisho_domain::secret::Secret;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash password: {0}")]
pub struct HashError(String);

/// Hashes a password into a PHC string (`$argon2id$v=19$...`).
pub fn hash(password: &Secret<String>) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password.expose().as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches `phc`. A malformed stored hash never matches.
pub fn verify(password: &Secret<String>, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.expose().as_bytes(), phc)
        .is_ok()
}

/// Why the hashers cannot take a password now.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HasherError {
    /// Every worker is busy and the queue is full: answer "try again" instead of queueing
    /// without bound (each Argon2 computation holds 19 MiB while it runs).
    #[error("too many password checks at once; try again in a moment")]
    Busy,
    #[error("the password hashers stopped")]
    Stopped,
    #[error("{0}")]
    Hash(String),
}

enum Job {
    Verify {
        password: Secret<String>,
        phc: Option<String>,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    Hash {
        password: Secret<String>,
        reply: tokio::sync::oneshot::Sender<Result<String, HashError>>,
    },
}

/// The bounded pool that hashes and checks passwords: a fixed set of worker threads (one per
/// core by default) and a short queue. Concurrent logins can neither take more memory than
/// the workers' Argon2 blocks nor starve the async runtime (health checks, sessions) of
/// threads; beyond the queue a caller is told [`HasherError::Busy`] at once. Cheap to clone;
/// the threads end when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Hasher {
    jobs: std::sync::mpsc::SyncSender<(Job, tokio::sync::OwnedSemaphorePermit)>,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// A hash to check unknown usernames against, so their timing matches known ones.
    dummy: std::sync::Arc<tokio::sync::OnceCell<Option<String>>>,
}

impl Hasher {
    /// `workers` threads (at least one) and at most `queue` waiting checks.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        let (jobs, rx) = std::sync::mpsc::sync_channel(workers + queue);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sekisho-hash-{i}"))
                .spawn(move || worker(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Self {
            jobs,
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(workers + queue)),
            dummy: std::sync::Arc::default(),
        }
    }

    /// One worker per core and a queue of four per worker.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Self::new(cores, 4 * cores)
    }

    fn submit(&self, job: impl FnOnce() -> Job) -> Result<(), HasherError> {
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| HasherError::Busy)?;
        self.jobs.try_send((job(), permit)).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => HasherError::Busy,
            std::sync::mpsc::TrySendError::Disconnected(_) => HasherError::Stopped,
        })
    }

    /// Whether `password` matches `phc`; `None` (an unknown user, an account without a
    /// password) is checked against a dummy hash and never matches.
    pub async fn verify(
        &self,
        password: Secret<String>,
        phc: Option<String>,
    ) -> Result<bool, HasherError> {
        let known = phc.is_some();
        let phc = match phc {
            Some(p) => Some(p),
            None => self
                .dummy
                .get_or_try_init(|| async {
                    self.hash(Secret::new("sekisho-dummy-password".into()))
                        .await
                        .map(Some)
                })
                .await?
                .clone(),
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(|| Job::Verify {
            password,
            phc,
            reply,
        })?;
        let matched = answer.await.map_err(|_| HasherError::Stopped)?;
        Ok(known && matched)
    }

    /// An Argon2id PHC string for `password`.
    pub async fn hash(&self, password: Secret<String>) -> Result<String, HasherError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(|| Job::Hash { password, reply })?;
        answer
            .await
            .map_err(|_| HasherError::Stopped)?
            .map_err(|e| HasherError::Hash(e.to_string()))
    }
}

/// How much nicer than the rest of the process a hashing thread runs: under a login flood
/// the kernel then gives the async runtime's threads (sessions being relayed, health checks,
/// the console) the cores first, and the hashes take what is left.
const HASHING_NICENESS: i32 = 10;

/// Lowers the calling thread's scheduling priority by [`HASHING_NICENESS`] (Linux: a
/// thread's own nice value). A refusal is logged, not fatal: hashing still works, only less
/// politely.
fn lower_this_threads_priority() {
    let current = rustix::process::getpriority_process(None).unwrap_or(0);
    let nicer = (current + HASHING_NICENESS).min(19);
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nicer) {
        tracing::warn!(error = %e, "cannot lower a password hashing thread's priority");
    }
}

fn worker(
    rx: &std::sync::Mutex<std::sync::mpsc::Receiver<(Job, tokio::sync::OwnedSemaphorePermit)>>,
) {
    lower_this_threads_priority();
    loop {
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((job, _permit)) = next else {
            return; // every Hasher dropped
        };
        match job {
            Job::Verify {
                password,
                phc,
                reply,
            } => {
                let _ = reply.send(phc.is_some_and(|h| verify(&password, &h)));
            }
            Job::Hash { password, reply } => {
                let _ = reply.send(hash(&password));
            }
        }
    }
}

/// A random password for generated accounts (the initial admin): 24 characters, ~143 bits.
pub fn generate() -> Result<Secret<String>, HashError> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| HashError("random number generator failed".into()))?;
    // 256 % 57 != 0 leaves a tiny bias; 24 characters keep well over 128 bits regardless.
    let s = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    Ok(Secret::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of this process's thread called `name`, from `/proc`.
    fn nice_of_thread(name: &str) -> Option<i32> {
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
            let (comm, rest) = stat.split_once(") ")?;
            if comm.rsplit_once('(').map(|(_, c)| c) == Some(name) {
                // Fields after the name start at field 3; nice is field 19.
                return rest.split(' ').nth(19 - 3)?.parse().ok();
            }
        }
        None
    }

    #[tokio::test]
    async fn hashing_threads_run_nicer_than_the_runtime() {
        let base = rustix::process::getpriority_process(None).unwrap();
        let hasher = Hasher::new(1, 1);
        // The worker lowers its priority as it starts; one hash proves it has started.
        hasher.hash(Secret::new("x".into())).await.unwrap();
        let nice = nice_of_thread("sekisho-hash-0").expect("the hashing thread is listed");
        assert_eq!(nice, (base + HASHING_NICENESS).min(19));
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), base);
    }

    #[test]
    fn hash_then_verify() {
        let pw = Secret::new("correct horse battery".to_owned());
        let h = hash(&pw).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&pw, &h));
        assert!(!verify(&Secret::new("wrong".into()), &h));
        assert!(!verify(&pw, "not a hash"));
    }

    #[tokio::test]
    async fn the_pool_checks_passwords_and_refuses_beyond_its_queue() {
        let hasher = Hasher::new(1, 1);
        let pw = Secret::new("correct horse battery".to_owned());
        let h = hasher.hash(pw.clone()).await.unwrap();
        assert!(hasher.verify(pw.clone(), Some(h.clone())).await.unwrap());
        assert!(
            !hasher
                .verify(Secret::new("wrong".into()), Some(h.clone()))
                .await
                .unwrap()
        );
        // Unknown users never match, even with the dummy's own password.
        assert!(
            !hasher
                .verify(Secret::new("sekisho-dummy-password".into()), None)
                .await
                .unwrap()
        );
        // One running and one queued: a third at the same time is told to come back.
        let busy: Vec<_> = (0..3)
            .map(|_| {
                let hasher = hasher.clone();
                let (pw, h) = (pw.clone(), h.clone());
                tokio::spawn(async move { hasher.verify(pw, Some(h)).await })
            })
            .collect();
        let mut results = vec![];
        for b in busy {
            results.push(b.await.unwrap());
        }
        assert!(results.contains(&Err(HasherError::Busy)), "{results:?}");
        assert!(results.contains(&Ok(true)), "{results:?}");
    }

    #[test]
    fn generated_passwords_differ_and_are_long() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.expose().len(), 24);
        assert_ne!(a.expose(), b.expose());
    }
}
