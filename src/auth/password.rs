//! Password hashing: argon2id (RFC 9106) with the `[passwords]` parameters, PHC strings;
//! and verification of the foreign hashes `gatehouse user import` brings (SPEC §1).
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
//!
//! Foreign hashes ([`HashScheme`]), recognised by [`PasswordHasher::check_stored`]: argon2
//! PHC strings of any variant (`$argon2id$`, `$argon2i$`, `$argon2d$`), bcrypt (`$2a$`,
//! `$2b$`, `$2y$`; the `bcrypt` crate) and Django's `pbkdf2_sha256$<iterations>$<salt>$<hash>`
//! (PBKDF2-HMAC-SHA256 by aws-lc-rs, compared in constant time). Every one verifies on the
//! same pool and reports [`Verification::needs_rehash`], so the login stores an argon2id hash
//! in its place. Their cost is bounded ([`BCRYPT_MAX_COST`], [`PBKDF2_MAX_ITERATIONS`],
//! [`ARGON2_MAX_MEMORY_KIB`], [`ARGON2_MAX_WORK`]): an import past the bounds is refused, and a
//! stored hash past them (a crafted store import) never matches rather than stalling a
//! hashing thread for minutes.
//!
//! Timing: until an imported user's first login, a login for that name costs what the
//! imported hash costs (as it did in the system it came from), not what the dummy hash of
//! an unknown name costs, so the time of a login can tell such a name from an unknown one.
//! The upgrade at the first login ends it; hashes made under older argon2 parameters have
//! always had the same property.
//!
//! bcrypt reads at most 72 bytes of a password. The systems these hashes come from (Python
//! `bcrypt` before 5.0, passlib, OpenBSD, PHP) silently ignored the bytes after the 72nd, so
//! a user who chose a longer password typed all of it and was let in: an imported bcrypt
//! hash verifies the same way (the first 72 bytes decide), or that user could never log in
//! again. The upgrade at that login hashes the *whole* password with argon2id, and from
//! then on every byte counts.

use std::num::NonZeroU32;
use std::str::FromStr as _;
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

/// Highest bcrypt cost accepted: 2^14 rounds, about a second of one core.
pub const BCRYPT_MAX_COST: u32 = 14;
/// Most PBKDF2-HMAC-SHA256 iterations accepted (about a second of one core); Django 6.0
/// makes 1,200,000.
pub const PBKDF2_MAX_ITERATIONS: u32 = 3_000_000;
/// Most argon2 memory accepted in an imported hash, KiB (256 MiB), unless the configured
/// `passwords.memory_kib` is higher.
pub const ARGON2_MAX_MEMORY_KIB: u32 = 256 * 1024;
/// Most argon2 work accepted in an imported hash: memory (KiB) × passes (1 GiB-pass,
/// about a second of one core), unless the configured parameters need more.
pub const ARGON2_MAX_WORK: u64 = 1024 * 1024;

/// The formats of a stored password hash gatehouse verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashScheme {
    /// A PHC string `$argon2id$`, `$argon2i$` or `$argon2d$` (what gatehouse makes:
    /// argon2id v19 with the configured parameters).
    Argon2,
    /// `$2a$`, `$2b$` or `$2y$` (OpenBSD bcrypt, 60 characters).
    Bcrypt,
    /// Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`.
    DjangoPbkdf2Sha256,
}

/// The parts of a Django `pbkdf2_sha256` hash.
struct Pbkdf2<'a> {
    iterations: NonZeroU32,
    salt: &'a str,
    hash: Vec<u8>,
}

fn parse_pbkdf2(stored: &str) -> Result<Pbkdf2<'_>, String> {
    use base64::Engine as _;
    let mut parts = stored.split('$');
    let (Some("pbkdf2_sha256"), Some(iterations), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err("a Django hash is pbkdf2_sha256$<iterations>$<salt>$<base64 hash>".into());
    };
    let iterations = iterations
        .parse::<u32>()
        .ok()
        .filter(|_| iterations.bytes().all(|b| b.is_ascii_digit()))
        .and_then(NonZeroU32::new)
        .ok_or("the pbkdf2_sha256 iteration count is not a positive number")?;
    if iterations.get() > PBKDF2_MAX_ITERATIONS {
        return Err(format!(
            "pbkdf2_sha256 with {iterations} iterations is over the limit of {PBKDF2_MAX_ITERATIONS} (every login would stall a hashing thread)"
        ));
    }
    if salt.is_empty() || !salt.is_ascii() {
        return Err("the pbkdf2_sha256 salt is empty or not ASCII".into());
    }
    let hash = base64::engine::general_purpose::STANDARD
        .decode(hash)
        .map_err(|_| "the pbkdf2_sha256 hash is not base64")?;
    if hash.len() != 32 {
        return Err("the pbkdf2_sha256 hash is not 32 bytes (SHA-256)".into());
    }
    Ok(Pbkdf2 {
        iterations,
        salt,
        hash,
    })
}

fn check_bcrypt(stored: &str) -> Result<(), String> {
    // 60 ASCII characters: $2b$ + 2-digit cost + $ + 53 characters of bcrypt's base64.
    let bytes = stored.as_bytes();
    let shape = bytes.len() == 60
        && bytes[6] == b'$'
        && bytes[4..6].iter().all(u8::is_ascii_digit)
        && bytes[7..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/'));
    if !shape {
        return Err("a bcrypt hash is $2b$<cost>$ and 53 characters of salt and hash".into());
    }
    let cost = u32::from(bytes[4] - b'0') * 10 + u32::from(bytes[5] - b'0');
    if !(4..=BCRYPT_MAX_COST).contains(&cost) {
        return Err(format!(
            "bcrypt cost {cost} is outside 4..={BCRYPT_MAX_COST} (every login would stall a hashing thread)"
        ));
    }
    bcrypt::HashParts::from_str(stored)
        .map(|_| ())
        .map_err(|_| "the bcrypt hash does not parse".to_string())
}

/// Recognises `stored` and checks its cost against the bounds (argon2: against the
/// configured parameters when they are higher). The message says what is wrong and never
/// contains the hash.
fn check_stored(params: &Params, stored: &str) -> Result<HashScheme, String> {
    if stored.starts_with("$argon2") {
        let hash = PasswordHash::new(stored)
            .map_err(|err| format!("an argon2 PHC string that does not parse: {err}"))?;
        if !matches!(hash.algorithm.as_str(), "argon2id" | "argon2i" | "argon2d") {
            return Err("an argon2 hash is $argon2id$, $argon2i$ or $argon2d$".into());
        }
        let old = Params::try_from(&hash)
            .map_err(|err| format!("argon2 parameters out of range: {err}"))?;
        if hash.salt.is_none() || hash.hash.is_none() {
            return Err("the argon2 PHC string lacks its salt or hash".into());
        }
        let max_memory = ARGON2_MAX_MEMORY_KIB.max(params.m_cost());
        let max_work = ARGON2_MAX_WORK.max(u64::from(params.m_cost()) * u64::from(params.t_cost()));
        let work = u64::from(old.m_cost()) * u64::from(old.t_cost());
        if old.m_cost() > max_memory || work > max_work {
            return Err(format!(
                "argon2 with m={} KiB, t={} is over the limit of {max_memory} KiB and {max_work} KiB × passes (every login would stall a hashing thread)",
                old.m_cost(),
                old.t_cost()
            ));
        }
        return Ok(HashScheme::Argon2);
    }
    if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
    {
        check_bcrypt(stored)?;
        return Ok(HashScheme::Bcrypt);
    }
    if stored.starts_with("$2") {
        return Err("a bcrypt hash starts $2a$, $2b$ or $2y$ ($2x$ is the buggy variant and is not accepted)".into());
    }
    if stored.starts_with("pbkdf2_sha256$") {
        parse_pbkdf2(stored)?;
        return Ok(HashScheme::DjangoPbkdf2Sha256);
    }
    Err("not a recognised password hash (argon2 PHC, bcrypt $2a$/$2b$/$2y$, or Django pbkdf2_sha256$)".into())
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

const NO_MATCH: Verification = Verification {
    matches: false,
    needs_rehash: false,
};

fn verify_now(params: &Params, password: &[u8], stored: &str) -> Verification {
    // Past the bounds (a store loaded from a crafted export): never a match, and no
    // minutes of hashing.
    match check_stored(params, stored) {
        Ok(HashScheme::Argon2) => verify_argon2(params, password, stored),
        Ok(HashScheme::Bcrypt) => foreign(bcrypt::verify(password, stored).unwrap_or(false)),
        Ok(HashScheme::DjangoPbkdf2Sha256) => foreign(parse_pbkdf2(stored).is_ok_and(|django| {
            aws_lc_rs::pbkdf2::verify(
                aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
                django.iterations,
                django.salt.as_bytes(),
                password,
                &django.hash,
            )
            .is_ok()
        })),
        Err(_) => NO_MATCH,
    }
}

/// A foreign hash: when it matches, it is replaced by argon2id.
fn foreign(matches: bool) -> Verification {
    Verification {
        matches,
        needs_rehash: matches,
    }
}

fn verify_argon2(params: &Params, password: &[u8], phc: &str) -> Verification {
    let Ok(hash) = PasswordHash::new(phc) else {
        return NO_MATCH;
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

    /// Whether `stored` is a password hash this hasher verifies, and within the cost
    /// bounds (`gatehouse user import`): its format, or what is wrong (never the hash).
    pub fn check_stored(&self, stored: &str) -> Result<HashScheme, String> {
        check_stored(&self.params, stored)
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

    /// Checks a password against a stored hash: an argon2 PHC string, or a foreign hash
    /// ([`HashScheme`]; a match always needs a rehash).
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

    fn foreign_check(stored: &str, password: &str) -> Verification {
        let params = Params::new(64, 1, 1, None).expect("params");
        verify_now(&params, password.as_bytes(), stored)
    }

    const MATCH_REHASH: Verification = Verification {
        matches: true,
        needs_rehash: true,
    };

    #[test]
    fn bcrypt_vectors_verify_and_need_a_rehash() {
        // OpenBSD / Openwall crypt_blowfish vectors.
        let openwall = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        assert_eq!(foreign_check(openwall, "U*U"), MATCH_REHASH);
        assert_eq!(foreign_check(openwall, "U*U*"), NO_MATCH);
        let openwall2 = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK";
        assert_eq!(foreign_check(openwall2, "U*U*"), MATCH_REHASH);
        // The bcrypt crate's vectors: made by Python (2b) and PHP (2y).
        let python = "$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie";
        assert_eq!(
            foreign_check(python, "correctbatteryhorsestapler"),
            MATCH_REHASH
        );
        assert_eq!(foreign_check(python, "correctbatteryhorsestaple"), NO_MATCH);
        let php = "$2y$12$L6Bc/AlTQHyd9liGgGEZyOFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u";
        assert_eq!(
            check_stored(&Params::default(), php),
            Ok(HashScheme::Bcrypt)
        );
    }

    #[test]
    fn bcrypt_reads_the_first_72_bytes_as_the_original_systems_did() {
        // python -c 'import bcrypt; bcrypt.hashpw(b"x"*100, b"$2a$05$" + b"."*22)'
        let long = "$2a$05$......................YgIDy4hFBdVlc/6LHnD9mX488r9cLd2";
        assert_eq!(foreign_check(long, &"x".repeat(100)), MATCH_REHASH);
        assert_eq!(foreign_check(long, &"x".repeat(72)), MATCH_REHASH);
        assert_eq!(foreign_check(long, &"x".repeat(71)), NO_MATCH);
    }

    #[test]
    fn django_pbkdf2_sha256_vectors() {
        // RFC 7914 §11 (PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1), first 32 bytes.
        let rfc = "pbkdf2_sha256$1$salt$VawEblbjCJ/sFpHCJUS2BflBhSFt3gRl5oudV8INrLw=";
        assert_eq!(foreign_check(rfc, "passwd"), MATCH_REHASH);
        assert_eq!(foreign_check(rfc, "passwe"), NO_MATCH);
        // Django's own test vector (tests/auth_tests/test_hashers.py, Django 1.4–3.x).
        let django = "pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=";
        assert_eq!(foreign_check(django, "lètmein"), MATCH_REHASH);
        assert_eq!(foreign_check(django, "letmein"), NO_MATCH);
    }

    #[test]
    fn argon2i_and_d_verify_and_need_a_rehash() {
        // The argon2 reference implementation's README example.
        let reference =
            "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert_eq!(foreign_check(reference, "password"), MATCH_REHASH);
        assert_eq!(foreign_check(reference, "passwort"), NO_MATCH);
        // argon2-cffi: hash_secret(b"password", b"somesalt", t=2, m=256, p=1, id).
        let id =
            "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4";
        assert_eq!(foreign_check(id, "password"), MATCH_REHASH);
        let params = Params::new(64, 1, 1, None).expect("params");
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let argon2d = Argon2::new(Algorithm::Argon2d, Version::V0x13, params.clone())
            .hash_password(b"pw", &salt)
            .expect("hash")
            .to_string();
        assert!(argon2d.starts_with("$argon2d$"));
        assert_eq!(verify_now(&params, b"pw", &argon2d), MATCH_REHASH);
    }

    #[test]
    fn imports_past_the_cost_bounds_are_refused_and_never_verified() {
        let params = Params::new(19_456, 2, 1, None).expect("params");
        let refused = |stored: &str| {
            let err = check_stored(&params, stored).expect_err(stored);
            assert!(!err.contains(stored), "{err}");
            err
        };
        let costly = "$2b$15$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie";
        assert!(refused(costly).contains("cost 15"));
        assert!(!verify_now(&params, b"x", costly).matches);
        assert!(
            refused("pbkdf2_sha256$3000001$salt$VawEblbjCJ/sFpHCJUS2BflBhSFt3gRl5oudV8INrLw=")
                .contains("3000001")
        );
        assert!(
            refused("pbkdf2_sha256$0$salt$VawEblbjCJ/sFpHCJUS2BflBhSFt3gRl5oudV8INrLw=")
                .contains("iteration")
        );
        assert!(refused(
            "$argon2id$v=19$m=524288,t=1,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
        )
        .contains("m=524288"));
        assert!(refused(
            "$argon2id$v=19$m=262144,t=5,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
        )
        .contains("t=5"));
        // The configured parameters raise the argon2 bounds.
        let big = Params::new(1024 * 1024, 2, 1, None).expect("params");
        assert_eq!(
            check_stored(
                &big,
                "$argon2id$v=19$m=1048576,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
            ),
            Ok(HashScheme::Argon2)
        );
    }

    #[test]
    fn unknown_or_malformed_hashes_are_refused() {
        let params = Params::default();
        for bad in [
            "",
            "hunter2",
            "$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOé",
            "$2a$5$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeWW",
            "pbkdf2_sha256$10000$seasalt",
            "pbkdf2_sha256$10000$$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=",
            "pbkdf2_sha256$+10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=",
            "pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7Hv",
            "pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=$x",
            "pbkdf2_sha1$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=",
            "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ",
            "$argon2x$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
        ] {
            assert!(check_stored(&params, bad).is_err(), "{bad}");
            assert_eq!(verify_now(&params, b"x", bad), NO_MATCH, "{bad}");
        }
    }

    #[test]
    fn garbage_hashes_never_match() {
        let params = Params::new(64, 1, 1, None).expect("params");
        assert!(!verify_now(&params, b"x", "not a phc string").matches);
    }
}
