//! Password hashing: argon2id (RFC 9106) with the `[passwords]` parameters, PHC strings.
//!
//! Threat model: a flood of login attempts must not stall proxied traffic, and the answer
//! to a login must not reveal whether the username exists.
//! - Every hash and verify runs on a small pool of dedicated threads (one per CPU), never
//!   on an async worker, behind a semaphore with one permit per CPU: at most that many
//!   argon2 computations run at once, the rest queue (SPEC §7). The pool's threads are
//!   SCHED_IDLE: when cores are scarce the scheduler gives them to proxied traffic first
//!   and logins take the time left over. Measured on one core under a saturating GET load
//!   with a 50-way login flood (benches/RESULTS.md): proxied p99 rose 10.5× at normal
//!   priority, ~2–3.5× at nice 19 (SCHED_BATCH), 1.19× as SCHED_IDLE, while logins still
//!   completed at ~14/s. The price: a core kept 100% busy by proxying leaves logins slow.
//! - A permit travels into the blocking closure, so a client that disconnects mid-login
//!   cannot free its permit while its hash still burns a core.
//! - Unknown users are verified against a dummy hash made with the same parameters
//!   ([`PasswordHasher::verify_unknown`]), so time and outcome match a wrong password.
//! - A hash made under older parameters verifies, and is reported as needing a rehash.
//! - Length policy in characters, `min_length..=max_length`, no composition rules
//!   (NIST SP 800-63B §5.1.1.2).

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::config::PasswordSettings;

/// A password held only as long as needed and wiped from memory when dropped.
pub type Password = Zeroizing<String>;

/// Why hashing could not be done (a fault, never a wrong password).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("the hashing task failed: {0}")]
    Task(String),
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password is right.
    pub matches: bool,
    /// The stored hash was made with other parameters than the configured ones (or is not
    /// argon2id v19): rehash on this successful login.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords off the async workers, with bounded concurrency.
pub struct PasswordHasher {
    params: Params,
    settings: PasswordSettings,
    permits: Arc<Semaphore>,
    pool: Arc<HashPool>,
    dummy: Arc<OnceLock<String>>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(params: &Params, password: &[u8]) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2(params.clone())
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| HashError::Argon2(err.to_string()))
}

fn verify_now(params: &Params, password: &[u8], phc: &str) -> Verification {
    let Ok(hash) = PasswordHash::new(phc) else {
        return Verification {
            matches: false,
            needs_rehash: false,
        };
    };
    // The verifier takes m/t/p from the PHC string itself, so old hashes still verify.
    let matches = argon2(params.clone())
        .verify_password(password, &hash)
        .is_ok();
    let current = hash.algorithm.as_str() == "argon2id"
        && hash.version == Some(Version::V0x13.into())
        && Params::try_from(&hash).is_ok_and(|old| {
            old.m_cost() == params.m_cost()
                && old.t_cost() == params.t_cost()
                && old.p_cost() == params.p_cost()
                && old.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
                    == params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
        });
    Verification {
        matches,
        needs_rehash: matches && !current,
    }
}

impl PasswordHasher {
    /// Builds a hasher for the configured parameters. Permits default to the number of
    /// CPUs: more concurrent argon2 runs than cores only add latency.
    pub fn new(settings: PasswordSettings) -> Result<Self, String> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|err| format!("passwords: invalid argon2 parameters: {err}"))?;
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Ok(PasswordHasher {
            params,
            settings,
            permits: Arc::new(Semaphore::new(cpus)),
            pool: Arc::new(HashPool::start(cpus)?),
            dummy: Arc::new(OnceLock::new()),
        })
    }

    /// The length policy (SPEC §4): `min_length..=max_length` characters, nothing else.
    /// The message says what to fix and never contains the password.
    pub fn check_policy(&self, password: &str) -> Result<(), String> {
        let length = password.chars().count();
        if length < self.settings.min_length {
            return Err(format!(
                "the password must be at least {} characters long",
                self.settings.min_length
            ));
        }
        if length > self.settings.max_length {
            return Err(format!(
                "the password must be at most {} characters long",
                self.settings.max_length
            ));
        }
        Ok(())
    }

    /// Makes the dummy hash now (at start) so the first unknown-user login is not faster
    /// or slower than the rest.
    pub async fn prepare(&self) -> Result<(), HashError> {
        let params = self.params.clone();
        let dummy = self.dummy.clone();
        self.run(move || {
            dummy.get_or_init(|| make_dummy(&params));
        })
        .await
    }

    /// Hashes a new password with the configured parameters and a fresh salt.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let params = self.params.clone();
        self.run(move || hash_now(&params, password.as_bytes()))
            .await?
    }

    /// Checks a password against a stored PHC string.
    pub async fn verify(&self, password: Password, phc: String) -> Result<Verification, HashError> {
        let params = self.params.clone();
        self.run(move || verify_now(&params, password.as_bytes(), &phc))
            .await
    }

    /// Spends the same work as [`verify`](Self::verify) on a user that does not exist, so
    /// a login for an unknown name takes as long and fails the same way. Always `false`.
    pub async fn verify_unknown(&self, password: Password) -> Result<bool, HashError> {
        let params = self.params.clone();
        let dummy = self.dummy.clone();
        self.run(move || {
            let phc = dummy.get_or_init(|| make_dummy(&params));
            let _ = verify_now(&params, password.as_bytes(), phc);
            false
        })
        .await
    }

    /// Runs `work` on the hashing pool once a permit is free; the permit is released when
    /// the work ends, even if the caller has gone.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|err| HashError::Task(err.to_string()))?;
        let (done, result) = tokio::sync::oneshot::channel();
        self.pool.submit(Box::new(move || {
            let outcome = work();
            drop(permit);
            let _ = done.send(outcome);
        }))?;
        result
            .await
            .map_err(|_| HashError::Task("the hashing thread ended".into()))
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads that do nothing but argon2, at the lowest CPU priority. They end when the
/// hasher (the sending side) is dropped.
struct HashPool {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashPool")
    }
}

impl HashPool {
    fn start(threads: usize) -> Result<Self, String> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for _ in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name("gatehouse-argon2".into())
                .spawn(move || {
                    lower_priority();
                    loop {
                        let next = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match next {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|err| format!("passwords: cannot start a hashing thread: {err}"))?;
        }
        Ok(HashPool {
            jobs: std::sync::Mutex::new(jobs),
        })
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        self.jobs
            .lock()
            .map_err(|_| HashError::Task("the hashing pool is poisoned".into()))?
            .send(job)
            .map_err(|_| HashError::Task("the hashing pool has stopped".into()))
    }
}

/// SCHED_IDLE for the calling thread: it runs only when no normal thread wants the core.
/// Best effort: where the OS refuses, the thread keeps normal priority and hashing still
/// works (only the isolation is weaker).
fn lower_priority() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(err) =
        set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, policy)
    {
        tracing::warn!(error = ?err, "cannot lower the priority of a hashing thread");
    }
}

/// A hash of a random password nobody knows, with the configured parameters.
fn make_dummy(params: &Params) -> String {
    let secret = Zeroizing::new(crate::auth::random_id(24));
    // With valid parameters hashing cannot fail; if it did, a hash that never matches and
    // parses keeps unknown-user logins failing (only their timing would differ).
    hash_now(params, secret.as_bytes()).unwrap_or_else(|_| {
        "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(memory_kib: u32) -> PasswordSettings {
        PasswordSettings {
            memory_kib,
            iterations: 1,
            parallelism: 1,
            min_length: 8,
            max_length: 12,
        }
    }

    fn pw(text: &str) -> Password {
        Zeroizing::new(text.to_string())
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = PasswordHasher::new(settings(64)).expect("hasher");
        let phc = hasher.hash(pw("correct horse")).await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        let right = hasher
            .verify(pw("correct horse"), phc.clone())
            .await
            .expect("v");
        assert_eq!(
            right,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(!hasher.verify(pw("wrong"), phc).await.expect("v").matches);
        assert!(!hasher.verify_unknown(pw("anything")).await.expect("v"));
    }

    #[tokio::test]
    async fn hashes_under_old_parameters_need_a_rehash() {
        let old = PasswordHasher::new(settings(64)).expect("hasher");
        let phc = old.hash(pw("correct horse")).await.expect("hash");
        let new = PasswordHasher::new(settings(128)).expect("hasher");
        let result = new.verify(pw("correct horse"), phc).await.expect("v");
        assert!(result.matches && result.needs_rehash);
    }

    #[test]
    fn length_policy_counts_characters_not_bytes() {
        let hasher = PasswordHasher::new(settings(64)).expect("hasher");
        assert!(hasher.check_policy("ééééééé").is_err()); // 7 characters, 14 bytes
        assert!(hasher.check_policy("éééééééé").is_ok());
        assert!(hasher.check_policy("aaaaaaaaaaaaa").is_err());
        let message = hasher.check_policy("secret").unwrap_err();
        assert!(!message.contains("secret"));
    }

    #[test]
    fn garbage_hashes_never_match() {
        let params = Params::new(64, 1, 1, None).expect("params");
        assert!(!verify_now(&params, b"x", "not a phc string").matches);
    }
}
