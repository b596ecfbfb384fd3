//! Password hashing and verification with argon2id, off the async runtime, with a bounded
//! number in flight so a login flood cannot starve other endpoints.

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use latchkey_core::settings::Argon2Settings;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// argon2 working memory, one per verification in flight, reused: allocating (and freeing)
/// `memory_kib` per login leaves the allocator holding hundreds of MiB under a login flood.
type Memory = Vec<Block>;

/// argon2 runs on these threads, at a lower CPU priority (nice 10) than the async runtime, so
/// a burst of sign-ins takes the cores only when nothing else wants them: the token endpoint's
/// latency hardly moves while logins run (the `mixed` benchmark).
struct Workers {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

/// How much lower than the runtime's threads argon2 runs (nice +10: a CFS weight of 110
/// against 1024), relative to the process's own nice value.
const ARGON2_NICE: i32 = 10;

impl Workers {
    fn start(n: usize) -> Result<Self, HashError> {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..n {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("latchkey-argon2-{i}"))
                .spawn(move || {
                    // Linux: nice is per thread, and `None` (who = 0) is the calling thread.
                    let base = rustix::process::getpriority_process(None).unwrap_or(0);
                    if let Err(e) = rustix::process::setpriority_process(None, (base + ARGON2_NICE).min(19)) {
                        tracing::debug!(error = %e, "cannot lower the argon2 threads' priority");
                    }
                    loop {
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        match job {
                            // A panicking job loses its answer (the caller sees an error), not
                            // the thread.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            // Every `Passwords` is gone.
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| HashError(format!("cannot start an argon2 thread: {e}")))?;
        }
        Ok(Self { jobs })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| HashError("the argon2 threads have stopped".into()))?;
        rx.await.map_err(|_| HashError("an argon2 job was dropped".into()))
    }
}

#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    workers: Arc<Workers>,
    /// Verified against when the username is unknown, so both cases cost the same.
    dummy: Arc<String>,
    /// At most one per permit.
    memory: Arc<Mutex<Vec<Memory>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

impl Passwords {
    pub fn new(s: &Argon2Settings) -> Result<Self, HashError> {
        let params =
            Params::new(s.memory_kib, s.iterations, s.parallelism, None).map_err(|e| HashError(e.to_string()))?;
        let n = if s.max_concurrent == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
        } else {
            s.max_concurrent
        };
        let dummy = hash_with(&params, "latchkey dummy password for unknown users")?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(n)),
            workers: Arc::new(Workers::start(n)?),
            dummy: Arc::new(dummy),
            memory: Arc::new(Mutex::new(Vec::with_capacity(n))),
        })
    }

    /// Hash synchronously (CLI use).
    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        hash_with(&self.params, password)
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let _permit = self.permits.acquire().await.map_err(|e| HashError(e.to_string()))?;
        let params = self.params.clone();
        let pw = zeroize::Zeroizing::new(password);
        self.workers.run(move || hash_with(&params, &pw)).await?
    }

    /// Verify `password` against `phc`, or against a dummy hash when there is no user, so an
    /// unknown username costs the same as a wrong password. Any malformed hash is a mismatch.
    pub async fn verify(&self, phc: Option<&str>, password: String) -> bool {
        matches!(self.verify_gated(phc, password, async { Ok::<(), ()>(()) }).await, Ok(true))
    }

    /// Like [`Passwords::verify`], but `gate` runs first, once a verification slot is held, and
    /// may refuse: checks that must see the outcome of the attempts before (abuse limits) then
    /// run a few at a time however many attempts arrive at once.
    pub async fn verify_gated<E>(
        &self,
        phc: Option<&str>,
        password: String,
        gate: impl std::future::Future<Output = Result<(), E>>,
    ) -> Result<bool, E> {
        let Ok(_permit) = self.permits.acquire().await else { return Ok(false) };
        gate.await?;
        Ok(self.verify_held(phc, password).await)
    }

    async fn verify_held(&self, phc: Option<&str>, password: String) -> bool {
        let known = phc.is_some();
        let phc = phc.map(str::to_owned).unwrap_or_else(|| self.dummy.as_str().to_owned());
        let pw = zeroize::Zeroizing::new(password);
        let pool = self.memory.clone();
        let ok = self
            .workers
            .run(move || {
                let mut memory = pool.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default();
                let ok = verify_with(&phc, &pw, &mut memory);
                pool.lock().unwrap_or_else(|p| p.into_inner()).push(memory);
                ok
            })
            .await
            .unwrap_or(false);
        ok && known
    }
}

fn hash_with(params: &Params, password: &str) -> Result<String, HashError> {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|e| HashError(e.to_string()))?;
    argon(params).hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| HashError(e.to_string()))
}

/// Largest argon2 memory a stored hash may ask for (the settings' own maximum).
const MAX_BLOCKS: usize = 4 * 1024 * 1024;

/// Verify against a PHC string with `memory` as argon2's working memory. The parameters stored
/// in the PHC string win, so raising the settings does not lock out existing users. Anything
/// malformed is a mismatch.
fn verify_with(phc: &str, password: &str, memory: &mut Memory) -> bool {
    let Ok(h) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(h.algorithm) else { return false };
    let version = match h.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&h) else { return false };
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return false;
    }
    let mut salt_buf = [0u8; argon2::password_hash::Salt::MAX_LENGTH];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    let mut out = zeroize::Zeroizing::new(vec![0u8; expected.len()]);
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let Some(work) = memory.get_mut(..blocks) else { return false };
    let argon = Argon2::new(algorithm, version, params);
    if argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, work).is_err() {
        return false;
    }
    // Output's equality is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Passwords {
        Passwords::new(&Argon2Settings { memory_kib: 64, iterations: 1, parallelism: 1, max_concurrent: 2 }).unwrap()
    }

    /// argon2 yields the cores to everything else: its threads run at nice 10 (the runtime's
    /// threads keep their priority).
    #[tokio::test]
    async fn argon2_runs_on_its_own_lower_priority_threads() {
        let base = rustix::process::getpriority_process(None).unwrap();
        let p = cheap();
        let (name, nice) = p
            .workers
            .run(|| (std::thread::current().name().map(str::to_owned), rustix::process::getpriority_process(None)))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("latchkey-argon2-"));
        assert_eq!(nice.unwrap(), (base + ARGON2_NICE).min(19));
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), base, "the caller's thread is untouched");
        // A job that panics costs its answer, not the thread.
        assert!(p.workers.run(|| -> u8 { panic!("job bug") }).await.is_err());
        let again = p.workers.run(|| 7).await;
        assert_eq!(again.unwrap(), 7);
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let p = cheap();
        let h = p.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(p.verify(Some(&h), "correct horse".into()).await);
        assert!(!p.verify(Some(&h), "wrong".into()).await);
        assert!(!p.verify(None, "correct horse".into()).await);
        assert!(!p.verify(Some("garbage"), "x".into()).await);
    }

    #[tokio::test]
    async fn hashes_made_elsewhere_verify_whatever_the_current_settings() {
        let p = cheap();
        // Made with other parameters (and by the argon2 crate's own hasher).
        let other = Params::new(128, 2, 1, None).unwrap();
        let h = hash_with(&other, "pw").unwrap();
        assert!(p.verify(Some(&h), "pw".into()).await);
        assert!(!p.verify(Some(&h), "pX".into()).await);
        // A longer stored hash than the memory held before: the buffer grows.
        let big = hash_with(&Params::new(512, 1, 1, None).unwrap(), "pw").unwrap();
        assert!(p.verify(Some(&big), "pw".into()).await);
        // Argon2i/argon2d strings verify with their own algorithm; a tampered hash does not.
        let i = Argon2::new(Algorithm::Argon2i, Version::V0x13, other.clone())
            .hash_password(b"pw", &SaltString::encode_b64(b"0123456789abcdef").unwrap())
            .unwrap()
            .to_string();
        assert!(p.verify(Some(&i), "pw".into()).await);
        assert!(!p.verify(Some(&i.replace("argon2i$", "argon2id$")), "pw".into()).await);
    }
}
