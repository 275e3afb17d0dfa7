//! The accounts layer without HTTP, on a real sled store in a temp dir: rehash on login,
//! the login/password-change race, crash recovery of a half-done password change, the
//! in-memory view following the store's change feed, and the brute-force seam.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use gatehouse::accounts::{AccountError, Accounts, LoginThrottle};
use gatehouse::store::{Store, UserChange, FEED_RETENTION};

const PASSWORD: &str = "correct horse battery";
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn config(dir: &std::path::Path, memory_kib: u32) -> gatehouse::Config {
    let text = format!(
        "[store]\npath = \"{}\"\n[passwords]\nmemory_kib = {memory_kib}\niterations = 1\n[upstreams.default]\nurl = \"http://127.0.0.1:9\"\n",
        dir.join("data").display()
    );
    gatehouse::config::parse(&text).expect("valid config")
}

fn pw(text: &str) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(text.to_string())
}

async fn open(dir: &std::path::Path, memory_kib: u32) -> (Arc<dyn Store>, Accounts) {
    let config = config(dir, memory_kib);
    let store = gatehouse::store::open(&config.store).await.expect("store");
    let accounts = Accounts::open(store.clone(), &config)
        .await
        .expect("accounts");
    (store, accounts)
}

#[tokio::test]
async fn a_login_rehashes_a_password_hashed_under_older_parameters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, accounts) = open(dir.path(), 64).await;
    accounts
        .directory()
        .add("alice", vec![], pw(PASSWORD))
        .await
        .expect("add");
    drop(accounts);
    let config = config(dir.path(), 128);
    let accounts = Accounts::open(store.clone(), &config)
        .await
        .expect("accounts");
    let before = store
        .find_user_by_name("alice")
        .await
        .expect("find")
        .expect("user");
    assert!(
        before.password_hash.contains("m=64,"),
        "{}",
        before.password_hash
    );
    accounts
        .login("alice", pw(PASSWORD), CLIENT)
        .await
        .expect("login");
    let after = store
        .find_user_by_name("alice")
        .await
        .expect("find")
        .expect("user");
    assert!(
        after.password_hash.contains("m=128,"),
        "{}",
        after.password_hash
    );
    // A rehash is not a password change: nothing was revoked.
    assert_eq!(after.generation, before.generation);
    assert_eq!(after.password_changed_at, before.password_changed_at);
    accounts
        .login("alice", pw(PASSWORD), CLIENT)
        .await
        .expect("login again");
}

#[tokio::test]
async fn a_login_racing_a_password_change_gets_no_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, accounts) = open(dir.path(), 64).await;
    accounts
        .directory()
        .add("bob", vec![], pw(PASSWORD))
        .await
        .expect("add");
    // The login read the user (and verified the old password) just before the change.
    let read_before_change = store
        .find_user_by_name("bob")
        .await
        .expect("find")
        .expect("user");
    accounts
        .directory()
        .set_password("bob", pw("a new password"))
        .await
        .expect("passwd");
    let session = accounts.start_session(&read_before_change).await;
    assert_eq!(session.err(), Some(AccountError::InvalidCredentials));
}

#[tokio::test]
async fn sessions_left_behind_by_an_interrupted_password_change_are_ended_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, accounts) = open(dir.path(), 64).await;
    accounts
        .directory()
        .add("carol", vec![], pw(PASSWORD))
        .await
        .expect("add");
    let tokens = accounts
        .login("carol", pw(PASSWORD), CLIENT)
        .await
        .expect("login");
    let user = store
        .find_user_by_name("carol")
        .await
        .expect("find")
        .expect("user");
    // A crash after the user record was updated but before its sessions were ended: the
    // generation moved on, nothing else changed.
    let bump = UserChange::SetPassword {
        hash: user.password_hash.clone(),
        changed_at: user.password_changed_at,
    };
    let updated = store
        .update_user(&user.id, bump)
        .await
        .expect("update")
        .value
        .expect("user");
    assert_eq!(updated.generation, user.generation + 1);
    drop(accounts);
    let (_, accounts) = open_again(store.clone(), dir.path()).await;
    assert_eq!(
        accounts.refresh(&tokens.refresh_token).await.err(),
        Some(AccountError::InvalidGrant)
    );
    assert!(accounts.authenticate(&tokens.access_token).is_err());
}

async fn open_again(store: Arc<dyn Store>, dir: &std::path::Path) -> (Arc<dyn Store>, Accounts) {
    let config = config(dir, 64);
    let accounts = Accounts::open(store.clone(), &config)
        .await
        .expect("accounts");
    (store, accounts)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn a_change_written_by_another_process_reaches_the_view_through_the_feed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, accounts) = open(dir.path(), 64).await;
    let accounts = Arc::new(accounts);
    accounts
        .directory()
        .add("erin", vec![], pw(PASSWORD))
        .await
        .expect("add");
    let tokens = accounts
        .login("erin", pw(PASSWORD), CLIENT)
        .await
        .expect("login");
    let user = store
        .find_user_by_name("erin")
        .await
        .expect("find")
        .expect("user");
    // Another process sharing the store (a replica) disables erin: this process's view
    // learns it only from the feed, not from the write.
    store
        .update_user(&user.id, UserChange::SetEnabled(false))
        .await
        .expect("disable");
    assert!(
        accounts.authenticate(&tokens.access_token).is_ok(),
        "nothing applied the feed yet"
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(gatehouse::accounts::maintain(accounts.clone(), stopped));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while accounts.authenticate(&tokens.access_token).is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the background follower did not apply the change within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).expect("stop");
    follower.await.expect("join");
}

#[tokio::test]
async fn a_view_behind_a_trimmed_change_log_reloads_in_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, accounts) = open(dir.path(), 64).await;
    accounts
        .directory()
        .add("frank", vec!["reader".into()], pw(PASSWORD))
        .await
        .expect("add");
    let user = store
        .find_user_by_name("frank")
        .await
        .expect("find")
        .expect("user");
    let cursor = accounts.directory().follower().cursor().await;
    // Written elsewhere, then trimmed from the log before this view read it.
    store
        .update_user(&user.id, UserChange::SetRoles(vec!["admin".into()]))
        .await
        .expect("roles");
    let purged = store
        .remove_expired(unix_now() + FEED_RETENTION + 10, 0)
        .await
        .expect("trim");
    assert!(purged.changes > 0);
    assert_eq!(
        store.changes_since(cursor, 10).await.expect("feed"),
        gatehouse::store::Feed::Trimmed
    );
    accounts.directory().follow().await;
    let view = accounts.directory().view().user(&user.id).expect("user");
    assert_eq!(view.roles, ["admin"]);
    assert!(accounts.directory().follower().cursor().await > cursor);
}

/// Records what the login use case told it; refuses once `limit` failures are seen.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    limit: usize,
}

impl Recorder {
    fn check_now(&self, username: Option<&str>) -> Result<(), AccountError> {
        let events = self.events.lock().expect("lock");
        let failures = events.iter().filter(|e| e.starts_with("failure")).count();
        drop(events);
        self.events
            .lock()
            .expect("lock")
            .push(format!("check {}", username.unwrap_or("-")));
        if failures >= self.limit {
            Err(AccountError::TooManyAttempts {
                retry_after_secs: 42,
            })
        } else {
            Ok(())
        }
    }

    fn push(&self, event: String) {
        self.events.lock().expect("lock").push(event);
    }
}

// Async like a store-backed throttle; it answers at once after a yield, so the login use
// case really awaits it.
impl LoginThrottle for Recorder {
    fn check<'a>(
        &'a self,
        username: Option<&'a str>,
        _client: IpAddr,
    ) -> BoxFuture<'a, Result<(), AccountError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            self.check_now(username)
        })
    }
    fn record_failure<'a>(
        &'a self,
        username: Option<&'a str>,
        _client: IpAddr,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            self.push(format!("failure {}", username.unwrap_or("-")));
        })
    }
    fn record_success<'a>(
        &'a self,
        username: Option<&'a str>,
        _client: IpAddr,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            self.push(format!("success {}", username.unwrap_or("-")));
        })
    }
    fn unlock<'a>(&'a self, username: &'a str) -> BoxFuture<'a, Result<bool, AccountError>> {
        Box::pin(async move {
            self.push(format!("unlock {username}"));
            Ok(true)
        })
    }
    fn check_registration(&self, _client: IpAddr) -> BoxFuture<'_, Result<(), AccountError>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn the_throttle_is_asked_first_and_told_every_outcome_by_canonical_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, accounts) = open(dir.path(), 64).await;
    let recorder = Arc::new(Recorder {
        limit: 2,
        ..Recorder::default()
    });
    let accounts = accounts.with_throttle(recorder.clone());
    accounts
        .directory()
        .add("Dave", vec![], pw(PASSWORD))
        .await
        .expect("add");
    accounts
        .login("DAVE", pw(PASSWORD), CLIENT)
        .await
        .expect("login");
    let wrong = accounts.login("dave", pw("wrong"), CLIENT).await;
    assert_eq!(wrong.err(), Some(AccountError::InvalidCredentials));
    let bad_name = accounts.login("not a name", pw("wrong"), CLIENT).await;
    assert_eq!(bad_name.err(), Some(AccountError::InvalidCredentials));
    let refused = accounts.login("dave", pw(PASSWORD), CLIENT).await;
    assert_eq!(
        refused.err(),
        Some(AccountError::TooManyAttempts {
            retry_after_secs: 42
        })
    );
    let events = recorder.events.lock().expect("lock").clone();
    assert_eq!(
        events,
        [
            "check dave",
            "success dave",
            "check dave",
            "failure dave",
            "check -",
            "failure -",
            "check dave",
        ]
    );
}
