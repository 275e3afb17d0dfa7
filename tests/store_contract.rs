//! The store contract: what every [`Store`] backend must do, written once against the
//! trait and instantiated per backend with [`contract_suite!`]: sled on a temp dir, and
//! PostgreSQL on a fresh database per test in one throwaway cluster for the binary
//! (`common::postgres`).
//!
//! Covered: each verb, typed conflicts, the all-or-nothing batch insert (`insert_users`,
//! one change for the batch), the generation rules of `UserChange`, the atomic
//! refresh rotation with reuse detection (also under concurrency), durability across a
//! reopen, and the change feed (a change for every write verb and none for a write that
//! changed nothing, order and numbering, cursor resume, load + cursor, trimming and the
//! trimmed signal, numbers never reused after a reopen), and export/import (a round trip
//! through a fresh store, refusal of a non-empty one, followers reloading after an
//! import, imported refresh tokens still rotating); and for a backend shared by replicas
//! the login counters (one lockout across handles, atomic under concurrency) and the
//! signing secret's fingerprint (first kept wins).

mod common;

use std::sync::Arc;

use common::postgres::PgCluster;
use gatehouse::store::counters::Admission;
use gatehouse::store::postgres::PostgresOptions;
use gatehouse::store::{
    load_keeps, BrowserSessionRecord, ChangeKind, Conflict, CounterOp, CounterOutcome, Feed,
    PrincipalKind, Purged, RefreshRecord, RevokedRecord, Seq, SessionRecord, Snapshot, Store,
    StoreError, Taken, UserChange, UserRecord, UserState, FEED_RETENTION,
};

/// A backend under test.
pub trait Backend {
    /// The store, opened (the first call gets an empty one).
    fn open(&self) -> impl std::future::Future<Output = Arc<dyn Store>> + Send;
    /// Another store of the same backend, empty and independent of [`Backend::open`]'s
    /// (export → import round trips; PostgreSQL: a second database).
    fn fresh(&self) -> impl std::future::Future<Output = Arc<dyn Store>> + Send;
}

/// sled in a temp dir.
pub struct Sled {
    dir: tempfile::TempDir,
    fresh: std::sync::atomic::AtomicUsize,
}

impl Sled {
    pub async fn new() -> Self {
        Sled {
            dir: tempfile::tempdir().expect("tempdir"),
            fresh: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl Backend for Sled {
    async fn open(&self) -> Arc<dyn Store> {
        let settings = gatehouse::config::StoreSettings::sled(self.dir.path().join("data"));
        gatehouse::store::open(&settings).await.expect("open sled")
    }

    async fn fresh(&self) -> Arc<dyn Store> {
        let n = self
            .fresh
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let settings =
            gatehouse::config::StoreSettings::sled(self.dir.path().join(format!("fresh-{n}")));
        gatehouse::store::open(&settings).await.expect("open sled")
    }
}

/// PostgreSQL: a fresh database on the shared cluster; each `open` is a new
/// [`gatehouse::store::PostgresStore`] on it (a reopen: migrations find nothing to do).
pub struct Postgres {
    url: String,
}

impl Postgres {
    pub async fn new() -> Self {
        let url = tokio::task::spawn_blocking(|| PgCluster::shared().create_database())
            .await
            .expect("create database");
        Postgres { url }
    }
}

impl Backend for Postgres {
    async fn open(&self) -> Arc<dyn Store> {
        let store = gatehouse::store::PostgresStore::open(&self.url, PostgresOptions::default())
            .await
            .expect("open postgres");
        Arc::new(store)
    }

    async fn fresh(&self) -> Arc<dyn Store> {
        let url = tokio::task::spawn_blocking(|| PgCluster::shared().create_database())
            .await
            .expect("create database");
        let store = gatehouse::store::PostgresStore::open(&url, PostgresOptions::default())
            .await
            .expect("open postgres");
        Arc::new(store)
    }
}

/// One `#[tokio::test]` per contract check, for the backend `$make` builds.
#[macro_export]
macro_rules! contract_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;
            contract_suite!(@tests $make;
                users_are_found_by_id_and_canonical_name,
                names_and_ids_are_unique_and_a_removed_name_is_free_again,
                many_users_are_inserted_all_or_none_with_one_change,
                user_changes_follow_the_generation_rules,
                a_session_needs_the_user_enabled_and_at_its_generation,
                rotation_spends_the_token_and_reuse_ends_the_family,
                expired_unknown_and_ended_tokens_are_invalid_and_change_nothing,
                a_token_presented_concurrently_rotates_exactly_once,
                sessions_end_once_and_go_with_their_user,
                the_first_kept_secret_wins,
                the_purge_removes_expired_records_only,
                acknowledged_writes_survive_a_reopen,
                every_write_verb_publishes_one_change_in_order,
                the_feed_resumes_from_any_cursor,
                load_returns_the_state_and_the_cursor_it_reflects,
                load_returns_only_the_sessions_a_view_needs,
                a_trimmed_log_tells_a_reader_behind_it_to_reload,
                concurrent_writes_get_distinct_numbers_in_commit_order,
                numbers_are_never_reused_after_a_reopen,
                an_export_imported_into_a_fresh_store_exports_the_same,
                import_refuses_a_store_with_any_record_and_changes_nothing,
                a_view_loaded_or_following_after_an_import_sees_every_record,
                imported_refresh_tokens_still_rotate_and_detect_reuse,
                login_counters_are_shared_by_every_handle_on_the_store,
                concurrent_admissions_never_exceed_the_limit,
                the_first_kept_secret_fingerprint_wins,
                clients_keep_their_kind_and_share_the_name_namespace_with_users,
                a_browser_session_needs_the_user_as_a_token_session_does,
                touching_moves_a_live_browser_sessions_last_use_forward_only,
                browser_sessions_end_and_go_with_their_user_like_every_session,
            );
        }
    };
    (@tests $make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let backend = $make;
                contract::$check(&backend).await;
            }
        )+
    };
}

contract_suite!(sled, Sled::new().await);
contract_suite!(postgres, Postgres::new().await);

pub mod contract {
    use super::*;

    fn user(id: &str, name: &str) -> UserRecord {
        UserRecord {
            id: id.into(),
            username: name.into(),
            canonical: name.to_lowercase(),
            password_hash: format!("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ${id}"),
            roles: vec!["reader".into()],
            enabled: true,
            created: 1,
            password_changed_at: 1,
            generation: 0,
            kind: PrincipalKind::User,
        }
    }

    fn client(id: &str, name: &str) -> UserRecord {
        UserRecord {
            password_hash: format!("$gatehouse-client-sha256${}", "ab".repeat(32)),
            roles: vec!["deploy".into()],
            kind: PrincipalKind::Client,
            ..user(id, name)
        }
    }

    fn session(user_id: &str, family: &str, expires_at: u64) -> SessionRecord {
        SessionRecord {
            family: family.into(),
            user_id: user_id.into(),
            created: 1,
            generation: 0,
            expires_at,
            ended_at: None,
            browser: None,
        }
    }

    fn browser_session(user_id: &str, family: &str, hash: u8, expires_at: u64) -> SessionRecord {
        SessionRecord {
            browser: Some(BrowserSessionRecord {
                cookie_hash: [hash; 32],
                last_seen: 1,
                remember_me: false,
            }),
            ..session(user_id, family, expires_at)
        }
    }

    fn token(hash: u8, user_id: &str, family: &str, expires_at: u64) -> RefreshRecord {
        RefreshRecord {
            token_hash: [hash; 32],
            family: family.into(),
            user_id: user_id.into(),
            expires_at,
            spent: false,
        }
    }

    async fn add(store: &dyn Store, id: &str, name: &str) -> Seq {
        store
            .insert_user(&user(id, name))
            .await
            .expect("insert user")
            .seq
            .expect("a change")
    }

    fn conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) -> Conflict {
        match result {
            Err(StoreError::Conflict(conflict)) => conflict,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    /// Every change after `cursor`, asserting the feed is not trimmed.
    async fn changes(store: &dyn Store, cursor: Seq) -> Vec<gatehouse::store::Change> {
        match store.changes_since(cursor, 10_000).await.expect("feed") {
            Feed::Changes { changes, .. } => changes,
            Feed::Trimmed => panic!("the feed says trimmed at {cursor}"),
        }
    }

    async fn head(store: &dyn Store) -> Seq {
        store.load(0, 0).await.expect("load").cursor
    }

    pub async fn users_are_found_by_id_and_canonical_name(backend: &impl Backend) {
        let store = backend.open().await;
        add(store.as_ref(), "u1", "Alice").await;
        add(store.as_ref(), "u2", "bob").await;
        let by_id = store.find_user("u1").await.expect("find").expect("some");
        assert_eq!(by_id, user("u1", "Alice"));
        let by_name = store
            .find_user_by_name("alice")
            .await
            .expect("find")
            .expect("some");
        assert_eq!(by_name.username, "Alice");
        assert!(store.find_user("nobody").await.expect("find").is_none());
        assert!(store
            .find_user_by_name("ALICE")
            .await
            .expect("find")
            .is_none());
        let mut names: Vec<String> = store
            .list_users()
            .await
            .expect("list")
            .into_iter()
            .map(|u| u.username)
            .collect();
        names.sort();
        assert_eq!(names, ["Alice", "bob"]);
    }

    pub async fn many_users_are_inserted_all_or_none_with_one_change(backend: &impl Backend) {
        let store = backend.open().await;
        add(store.as_ref(), "u0", "Taken").await;
        let before = head(store.as_ref()).await;
        let empty = store.insert_users(&[]).await.expect("empty batch");
        assert_eq!(empty.seq, None, "an empty batch publishes nothing");
        // Refused whole: a name in the store, a name twice in the batch, an id taken.
        for (batch, expected) in [
            (
                vec![user("u1", "fresh"), user("u2", "TAKEN")],
                Conflict::UsernameTaken,
            ),
            (
                vec![user("u1", "fresh"), user("u2", "Fresh")],
                Conflict::UsernameTaken,
            ),
            (
                vec![user("u1", "fresh"), user("u0", "other")],
                Conflict::UserIdTaken,
            ),
            (
                vec![user("u1", "fresh"), user("u1", "other")],
                Conflict::UserIdTaken,
            ),
        ] {
            assert_eq!(conflict(store.insert_users(&batch).await), expected);
            assert!(store.find_user("u1").await.expect("find").is_none());
            assert!(store
                .find_user_by_name("fresh")
                .await
                .expect("find")
                .is_none());
        }
        assert_eq!(
            head(store.as_ref()).await,
            before,
            "a conflict publishes nothing"
        );
        let mut batch: Vec<UserRecord> = (1..=300)
            .map(|i| user(&format!("b{i}"), &format!("Batch{i}")))
            .collect();
        batch[0].roles = vec![];
        batch[1].roles = vec!["a".into(), "b:c".into()];
        batch[2].enabled = false;
        let written = store.insert_users(&batch).await.expect("insert batch");
        let seq = written.seq.expect("one change");
        assert_eq!(seq, before + 1, "one number for the whole batch");
        for user in &batch {
            let found = store
                .find_user_by_name(&user.canonical)
                .await
                .expect("find")
                .expect("inserted");
            assert_eq!(&found, user);
        }
        let published = changes(store.as_ref(), before).await;
        assert_eq!(published.len(), 1, "one change for one write");
        assert_eq!(
            published[0].kind,
            ChangeKind::UsersPut {
                users: batch.iter().map(UserState::from).collect()
            }
        );
        let loaded = store.load(0, 0).await.expect("load");
        assert_eq!(loaded.cursor, seq);
        assert_eq!(loaded.users.len(), 301);
        // The names are unique against later single inserts too.
        assert_eq!(
            conflict(store.insert_user(&user("u9", "batch7")).await),
            Conflict::UsernameTaken
        );
    }

    pub async fn names_and_ids_are_unique_and_a_removed_name_is_free_again(backend: &impl Backend) {
        let store = backend.open().await;
        add(store.as_ref(), "u1", "Alice").await;
        let before = head(store.as_ref()).await;
        assert_eq!(
            conflict(store.insert_user(&user("u2", "ALICE")).await),
            Conflict::UsernameTaken
        );
        assert_eq!(
            conflict(store.insert_user(&user("u1", "other")).await),
            Conflict::UserIdTaken
        );
        assert_eq!(
            head(store.as_ref()).await,
            before,
            "a conflict publishes nothing"
        );
        let removed = store.remove_user("u1").await.expect("remove");
        assert_eq!(removed.value.expect("removed").id, "u1");
        assert!(removed.seq.is_some());
        assert!(store
            .find_user_by_name("alice")
            .await
            .expect("find")
            .is_none());
        let again = store.remove_user("u1").await.expect("remove again");
        assert_eq!(again.value, None);
        assert_eq!(again.seq, None, "removing nothing publishes nothing");
        add(store.as_ref(), "u2", "alice").await;
    }

    pub async fn user_changes_follow_the_generation_rules(backend: &impl Backend) {
        let store = backend.open().await;
        add(store.as_ref(), "u1", "alice").await;
        let update = |change: UserChange| {
            let store = store.clone();
            async move { store.update_user("u1", change).await.expect("update") }
        };

        let changed = update(UserChange::SetPassword {
            hash: "h2".into(),
            changed_at: 50,
        })
        .await;
        let user = changed.value.expect("user");
        assert!(changed.seq.is_some());
        assert_eq!(
            (
                user.password_hash.as_str(),
                user.password_changed_at,
                user.generation
            ),
            ("h2", 50, 1)
        );

        // A rehash replaces only the hash it was computed from, and is no password change.
        let stale = update(UserChange::Rehash {
            from: "h1".into(),
            to: "h3".into(),
        })
        .await;
        assert_eq!(stale.value.expect("user").password_hash, "h2");
        assert_eq!(stale.seq, None);
        let rehashed = update(UserChange::Rehash {
            from: "h2".into(),
            to: "h3".into(),
        })
        .await;
        let user = rehashed.value.expect("user");
        assert_eq!(
            (
                user.password_hash.as_str(),
                user.password_changed_at,
                user.generation
            ),
            ("h3", 50, 1)
        );

        // Disabling bumps the generation; enabling and repeating do not.
        let disabled = update(UserChange::SetEnabled(false))
            .await
            .value
            .expect("user");
        assert_eq!((disabled.enabled, disabled.generation), (false, 2));
        let repeated = update(UserChange::SetEnabled(false)).await;
        assert_eq!(repeated.seq, None);
        assert_eq!(repeated.value.expect("user").generation, 2);
        let enabled = update(UserChange::SetEnabled(true))
            .await
            .value
            .expect("user");
        assert_eq!((enabled.enabled, enabled.generation), (true, 2));

        let roles = update(UserChange::SetRoles(vec!["admin".into()])).await;
        assert!(roles.seq.is_some());
        let user = roles.value.expect("user");
        assert_eq!(
            (user.roles.clone(), user.generation),
            (vec!["admin".to_string()], 2)
        );
        assert_eq!(
            store.find_user("u1").await.expect("find").expect("user"),
            user
        );

        let missing = store
            .update_user("nobody", UserChange::SetEnabled(false))
            .await
            .expect("update");
        assert_eq!((missing.value, missing.seq), (None, None));
    }

    pub async fn a_session_needs_the_user_enabled_and_at_its_generation(backend: &impl Backend) {
        let store = backend.open().await;
        assert_eq!(
            conflict(
                store
                    .insert_session(&session("u1", "f0", 100), &token(9, "u1", "f0", 100))
                    .await
            ),
            Conflict::NoSuchUser
        );
        add(store.as_ref(), "u1", "alice").await;
        store
            .update_user("u1", UserChange::SetEnabled(false))
            .await
            .expect("disable");
        let mut at_generation_1 = session("u1", "f1", 100);
        at_generation_1.generation = 1;
        assert_eq!(
            conflict(
                store
                    .insert_session(&at_generation_1, &token(1, "u1", "f1", 100))
                    .await
            ),
            Conflict::UserDisabled
        );
        store
            .update_user("u1", UserChange::SetEnabled(true))
            .await
            .expect("enable");
        assert_eq!(
            conflict(
                store
                    .insert_session(&session("u1", "f2", 100), &token(2, "u1", "f2", 100))
                    .await
            ),
            Conflict::StaleGeneration
        );
        assert!(store.sessions_of("u1").await.expect("list").is_empty());
        assert!(store.find_refresh(&[2; 32]).await.expect("find").is_none());
        let written = store
            .insert_session(&at_generation_1, &token(1, "u1", "f1", 100))
            .await
            .expect("current generation");
        assert!(written.seq.is_some());
        assert_eq!(
            store.sessions_of("u1").await.expect("list"),
            vec![at_generation_1]
        );
        let found = store
            .find_refresh(&[1; 32])
            .await
            .expect("find")
            .expect("token");
        assert_eq!((found.family.as_str(), found.spent), ("f1", false));
    }

    pub async fn rotation_spends_the_token_and_reuse_ends_the_family(backend: &impl Backend) {
        let store = backend.open().await;
        add(store.as_ref(), "u1", "alice").await;
        store
            .insert_session(&session("u1", "f1", 100), &token(1, "u1", "f1", 100))
            .await
            .expect("session");
        let rotated = store
            .take_refresh(&[1; 32], 10, &[2; 32], 200)
            .await
            .expect("take");
        assert!(matches!(rotated.value, Taken::Rotated(ref s) if s.expires_at == 200));
        assert!(rotated.seq.is_some());
        assert!(
            store
                .find_refresh(&[1; 32])
                .await
                .expect("find")
                .expect("some")
                .spent
        );
        let next = store
            .find_refresh(&[2; 32])
            .await
            .expect("find")
            .expect("some");
        assert_eq!(
            (next.family.as_str(), next.expires_at, next.spent),
            ("f1", 200, false)
        );
        // Replaying the spent token ends the family, so the successor is dead too.
        let reused = store
            .take_refresh(&[1; 32], 11, &[3; 32], 300)
            .await
            .expect("take");
        assert!(matches!(reused.value, Taken::Reused(ref s) if s.ended_at == Some(11)));
        assert!(reused.seq.is_some());
        assert_eq!(
            store
                .take_refresh(&[2; 32], 12, &[4; 32], 400)
                .await
                .expect("take")
                .value,
            Taken::Invalid
        );
        assert!(store.find_refresh(&[3; 32]).await.expect("find").is_none());
    }

    pub async fn expired_unknown_and_ended_tokens_are_invalid_and_change_nothing(
        backend: &impl Backend,
    ) {
        let store = backend.open().await;
        add(store.as_ref(), "u1", "alice").await;
        store
            .insert_session(&session("u1", "f1", 100), &token(1, "u1", "f1", 100))
            .await
            .expect("session");
        store
            .insert_session(&session("u1", "f2", 100), &token(2, "u1", "f2", 100))
            .await
            .expect("session");
        store.end_session("u1", "f2", 5).await.expect("end");
        let before = head(store.as_ref()).await;
        for (hash, now) in [(1u8, 100u64), (9, 1), (2, 6)] {
            let taken = store
                .take_refresh(&[hash; 32], now, &[7; 32], 200)
                .await
                .expect("take");
            assert_eq!((taken.value, taken.seq), (Taken::Invalid, None));
        }
        assert!(store.find_refresh(&[7; 32]).await.expect("find").is_none());
        assert_eq!(head(store.as_ref()).await, before);
    }

    pub async fn a_token_presented_concurrently_rotates_exactly_once(backend: &impl Backend) {
        let store = backend.open().await;
        add(store.as_ref(), "u1", "alice").await;
        store
            .insert_session(&session("u1", "f1", 100), &token(1, "u1", "f1", 100))
            .await
            .expect("session");
        let attempts = (0..8u8).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .take_refresh(&[1; 32], 10, &[100 + i; 32], 200)
                    .await
                    .expect("take")
                    .value
            })
        });
        let mut rotated = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            match attempt.await.expect("join") {
                Taken::Rotated(_) => rotated += 1,
                // Presented again after the rotation: reuse (or, once ended, invalid).
                Taken::Reused(_) | Taken::Invalid => {}
            }
        }
        assert_eq!(rotated, 1);
        let sessions = store.sessions_of("u1").await.expect("list");
        assert!(
            sessions[0].ended_at.is_some(),
            "the replays ended the family"
        );
    }

    pub async fn sessions_end_once_and_go_with_their_user(backend: &impl Backend) {
        let store = backend.open().await;
        add(store.as_ref(), "u1", "alice").await;
        add(store.as_ref(), "u2", "bob").await;
        for (family, hash) in [("f1", 1u8), ("f2", 2)] {
            store
                .insert_session(&session("u1", family, 100), &token(hash, "u1", family, 100))
                .await
                .expect("session");
        }
        store
            .insert_session(&session("u2", "g1", 100), &token(3, "u2", "g1", 100))
            .await
            .expect("session");
        let ended = store.end_session("u1", "f1", 7).await.expect("end");
        assert_eq!(ended.value.expect("session").ended_at, Some(7));
        assert!(ended.seq.is_some());
        let again = store.end_session("u1", "f1", 9).await.expect("end again");
        assert_eq!(
            again.value.expect("session").ended_at,
            Some(7),
            "ended once"
        );
        assert_eq!(again.seq, None);
        let missing = store.end_session("u1", "nope", 9).await.expect("end");
        assert_eq!((missing.value, missing.seq), (None, None));

        let removed = store.remove_sessions_of("u1").await.expect("remove");
        assert_eq!(removed.value, 2);
        assert!(removed.seq.is_some());
        assert!(store.sessions_of("u1").await.expect("list").is_empty());
        assert_eq!(store.sessions_of("u2").await.expect("list").len(), 1);
        let none = store.remove_sessions_of("u1").await.expect("remove");
        assert_eq!((none.value, none.seq), (0, None));
    }

    pub async fn the_first_kept_secret_wins(backend: &impl Backend) {
        let store = backend.open().await;
        assert!(store.find_secret().await.expect("find").is_none());
        let first = store.insert_secret(b"first").await.expect("insert");
        assert_eq!(first.value, b"first");
        assert!(first.seq.is_some());
        let second = store.insert_secret(b"second").await.expect("insert");
        assert_eq!((second.value.as_slice(), second.seq), (&b"first"[..], None));
        assert_eq!(
            store.find_secret().await.expect("find").as_deref(),
            Some(&b"first"[..])
        );
        let published = changes(store.as_ref(), 0).await;
        assert_eq!(published.len(), 1);
        assert_eq!(
            published[0].kind,
            ChangeKind::SecretKept,
            "never the secret"
        );
    }

    fn login_settings() -> gatehouse::config::LoginSettings {
        gatehouse::config::LoginSettings {
            max_failures: 3,
            max_failures_per_address: 50,
            window: std::time::Duration::from_secs(60),
            lockout: std::time::Duration::from_secs(120),
        }
    }

    fn admit(name: &str, last: u8) -> CounterOp {
        CounterOp::AdmitLogin {
            username: Some(name.to_string()),
            address: std::net::IpAddr::from([192, 0, 2, last]),
        }
    }

    /// Milliseconds of some wall-clock time.
    const T0: u64 = 1_800_000_000_000;

    /// Two handles on one store (replicas) count toward one lockout; unlock through one
    /// ends it for both; the purge sweeps counters whose window and lockout are over. A
    /// backend of one process (sled) shares nothing and refuses the verb.
    pub async fn login_counters_are_shared_by_every_handle_on_the_store(backend: &impl Backend) {
        let a = backend.open().await;
        let settings = login_settings();
        if !a.shares_login_counters() {
            assert!(a.counters(admit("ann", 1), settings, T0).await.is_err());
            return;
        }
        let b = backend.open().await;
        let admitted = CounterOutcome::Admission(Admission::Admitted);
        assert_eq!(
            a.counters(admit("ann", 1), settings, T0).await.expect("a"),
            admitted
        );
        assert_eq!(
            b.counters(admit("ann", 2), settings, T0).await.expect("b"),
            admitted
        );
        assert_eq!(
            a.counters(admit("ann", 3), settings, T0).await.expect("a"),
            admitted
        );
        assert_eq!(
            b.counters(admit("ann", 4), settings, T0 + 1)
                .await
                .expect("b"),
            CounterOutcome::Admission(Admission::Refused {
                wait: std::time::Duration::from_secs(120),
                address_started: false,
                username_started: true,
            })
        );
        assert!(matches!(
            a.counters(admit("ann", 5), settings, T0 + 2)
                .await
                .expect("a"),
            CounterOutcome::Admission(Admission::Refused {
                username_started: false,
                ..
            })
        ));
        let unlock = CounterOp::Unlock {
            username: "ann".into(),
        };
        assert_eq!(
            b.counters(unlock.clone(), settings, T0 + 3)
                .await
                .expect("unlock"),
            CounterOutcome::Unlocked(true)
        );
        assert_eq!(
            a.counters(unlock, settings, T0 + 3).await.expect("unlock"),
            CounterOutcome::Unlocked(false)
        );
        assert_eq!(
            a.counters(admit("ann", 5), settings, T0 + 4)
                .await
                .expect("a"),
            admitted
        );
        // Registrations: per address, shared too.
        let register = CounterOp::AdmitRegistration {
            address: std::net::IpAddr::from([198, 51, 100, 1]),
        };
        let strict = gatehouse::config::LoginSettings {
            max_failures_per_address: 1,
            ..settings
        };
        assert_eq!(
            a.counters(register.clone(), strict, T0).await.expect("a"),
            admitted
        );
        assert!(matches!(
            b.counters(register, strict, T0).await.expect("b"),
            CounterOutcome::Admission(Admission::Refused { .. })
        ));
        // Long after every window and lockout the purge sweeps the rows: a fresh start.
        b.remove_expired(T0 / 1000 + 3600, 0).await.expect("purge");
        assert_eq!(
            a.counters(
                CounterOp::Unlock {
                    username: "ann".into()
                },
                settings,
                T0 + 3_600_000
            )
            .await
            .expect("unlock"),
            CounterOutcome::Unlocked(false),
            "swept"
        );
    }

    /// Forty attempts on one username at once, over two handles: exactly the limit is
    /// admitted (each admission is one atomic read-modify-write), and exactly one of the
    /// refused ones started the lockout.
    pub async fn concurrent_admissions_never_exceed_the_limit(backend: &impl Backend) {
        let a = backend.open().await;
        if !a.shares_login_counters() {
            return;
        }
        let b = backend.open().await;
        let settings = login_settings();
        let attempts = (0..40u8).map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { store.counters(admit("bea", i), settings, T0).await })
        });
        let mut admitted = 0;
        let mut started = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            match attempt.await.expect("task").expect("counters") {
                CounterOutcome::Admission(Admission::Admitted) => admitted += 1,
                CounterOutcome::Admission(Admission::Refused {
                    username_started, ..
                }) => started += usize::from(username_started),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((admitted, started), (3, 1));
    }

    /// The first fingerprint kept stays, across a reopen and for another process on the
    /// same store (a replica; a restart); a later different one gets the kept one back;
    /// forgetting it (a deliberate rotation) lets the next one be kept. Both backends keep
    /// one (sled: so a restart with a changed or missing secret is refused).
    pub async fn the_first_kept_secret_fingerprint_wins(backend: &impl Backend) {
        let store = backend.open().await;
        assert!(store.keeps_secret_fingerprint());
        assert!(
            !store.forget_secret_fingerprint().await.expect("forget"),
            "nothing kept yet"
        );
        assert_eq!(store.find_secret_fingerprint().await.expect("find"), None);
        assert_eq!(
            store.keep_secret_fingerprint("first").await.expect("keep"),
            "first"
        );
        assert_eq!(
            store
                .find_secret_fingerprint()
                .await
                .expect("find")
                .as_deref(),
            Some("first")
        );
        assert_eq!(
            store.keep_secret_fingerprint("second").await.expect("keep"),
            "first"
        );
        // sled lets one process open the store: close it before the other opens it.
        drop(store);
        let other = backend.open().await;
        assert_eq!(
            other.keep_secret_fingerprint("second").await.expect("keep"),
            "first",
            "the fingerprint outlives the process that kept it"
        );
        assert!(other.forget_secret_fingerprint().await.expect("forget"));
        assert!(!other.forget_secret_fingerprint().await.expect("forget"));
        assert_eq!(other.find_secret_fingerprint().await.expect("find"), None);
        assert_eq!(
            other.keep_secret_fingerprint("second").await.expect("keep"),
            "second"
        );
        assert!(
            changes(other.as_ref(), 0).await.is_empty(),
            "a fingerprint publishes no change"
        );
    }

    pub async fn the_purge_removes_expired_records_only(backend: &impl Backend) {
        let store = backend.open().await;
        add(store.as_ref(), "u1", "alice").await;
        store
            .insert_session(&session("u1", "old", 10), &token(1, "u1", "old", 10))
            .await
            .expect("session");
        store
            .insert_session(&session("u1", "new", 1000), &token(2, "u1", "new", 1000))
            .await
            .expect("session");
        store
            .insert_revoked(&RevokedRecord {
                jti: "j".into(),
                expires_at: 10,
            })
            .await
            .expect("revoke");
        let before = head(store.as_ref()).await;
        let purged = store.remove_expired(100, 5).await.expect("purge");
        assert_eq!(
            purged,
            Purged {
                refresh_tokens: 1,
                sessions: 1,
                revoked: 1,
                changes: 0,
            }
        );
        assert_eq!(store.sessions_of("u1").await.expect("list").len(), 1);
        assert!(store.find_refresh(&[2; 32]).await.expect("find").is_some());
        assert!(store.load(0, 0).await.expect("load").revoked.is_empty());
        assert_eq!(
            head(store.as_ref()).await,
            before,
            "a purge publishes nothing"
        );
    }

    pub async fn acknowledged_writes_survive_a_reopen(backend: &impl Backend) {
        let store = backend.open().await;
        add(store.as_ref(), "u1", "alice").await;
        store
            .update_user("u1", UserChange::SetRoles(vec!["admin".into()]))
            .await
            .expect("roles");
        store
            .insert_session(&session("u1", "f1", 100), &token(1, "u1", "f1", 100))
            .await
            .expect("session");
        store
            .take_refresh(&[1; 32], 10, &[2; 32], 200)
            .await
            .expect("take");
        store.end_session("u1", "f1", 20).await.expect("end");
        store
            .insert_revoked(&RevokedRecord {
                jti: "j1".into(),
                expires_at: 500,
            })
            .await
            .expect("revoke");
        store.insert_secret(b"kept").await.expect("secret");
        let loaded = store.load(0, 0).await.expect("load");
        drop(store);

        let store = backend.open().await;
        assert_eq!(store.load(0, 0).await.expect("load"), loaded);
        let user = store.find_user("u1").await.expect("find").expect("user");
        assert_eq!(user.roles, ["admin"]);
        assert!(
            store
                .find_refresh(&[1; 32])
                .await
                .expect("find")
                .expect("token")
                .spent
        );
        assert_eq!(
            store.find_secret().await.expect("secret").as_deref(),
            Some(&b"kept"[..])
        );
        assert_eq!(loaded.sessions[0].ended_at, Some(20));
        assert_eq!(loaded.revoked.len(), 1);
    }

    pub async fn every_write_verb_publishes_one_change_in_order(backend: &impl Backend) {
        let store = backend.open().await;
        let start = head(store.as_ref()).await;
        let mut seqs = Vec::new();
        let alice = user("u1", "alice");
        seqs.push(store.insert_user(&alice).await.expect("insert").seq);
        let renamed = store
            .update_user("u1", UserChange::SetRoles(vec!["admin".into()]))
            .await
            .expect("roles");
        seqs.push(renamed.seq);
        let live = session("u1", "f1", 100);
        seqs.push(
            store
                .insert_session(&live, &token(1, "u1", "f1", 100))
                .await
                .expect("session")
                .seq,
        );
        seqs.push(
            store
                .take_refresh(&[1; 32], 10, &[2; 32], 200)
                .await
                .expect("take")
                .seq,
        );
        seqs.push(store.end_session("u1", "f1", 20).await.expect("end").seq);
        let revoked = RevokedRecord {
            jti: "j1".into(),
            expires_at: 500,
        };
        seqs.push(store.insert_revoked(&revoked).await.expect("revoke").seq);
        seqs.push(store.insert_secret(b"s").await.expect("secret").seq);
        seqs.push(store.remove_user("u1").await.expect("remove").seq);
        seqs.push(store.remove_sessions_of("u1").await.expect("sessions").seq);

        let expected: Vec<Option<Seq>> = (1..=9).map(|n| Some(start + n)).collect();
        assert_eq!(seqs, expected, "one number per write, consecutive");
        let published = changes(store.as_ref(), start).await;
        let numbers: Vec<Seq> = published.iter().map(|c| c.seq).collect();
        assert_eq!(numbers, (start + 1..=start + 9).collect::<Vec<_>>());
        let mut with_roles = alice.clone();
        with_roles.roles = vec!["admin".into()];
        let mut rotated = live.clone();
        rotated.expires_at = 200;
        let mut ended = rotated.clone();
        ended.ended_at = Some(20);
        let kinds: Vec<ChangeKind> = published.into_iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ChangeKind::UserPut(UserState::from(&alice)),
                ChangeKind::UserPut(UserState::from(&with_roles)),
                ChangeKind::SessionPut(live),
                ChangeKind::SessionPut(rotated),
                ChangeKind::SessionPut(ended),
                ChangeKind::Revoked(revoked),
                ChangeKind::SecretKept,
                ChangeKind::UserRemoved { id: "u1".into() },
                ChangeKind::SessionsRemoved {
                    user_id: "u1".into()
                },
            ]
        );
    }

    pub async fn the_feed_resumes_from_any_cursor(backend: &impl Backend) {
        let store = backend.open().await;
        let start = head(store.as_ref()).await;
        for i in 0..7 {
            add(store.as_ref(), &format!("u{i}"), &format!("n{i}")).await;
        }
        let mut cursor = start;
        let mut seen = Vec::new();
        loop {
            let Feed::Changes { changes, next } =
                store.changes_since(cursor, 3).await.expect("feed")
            else {
                panic!("trimmed");
            };
            assert!(changes.len() <= 3);
            if changes.is_empty() {
                assert_eq!(next, cursor, "caught up: the cursor stays");
                break;
            }
            assert_eq!(next, changes.last().map(|c| c.seq).expect("last"));
            seen.extend(changes.iter().map(|c| c.seq));
            cursor = next;
        }
        assert_eq!(seen, (start + 1..=start + 7).collect::<Vec<_>>());
        let tail = changes(store.as_ref(), start + 4).await;
        assert_eq!(
            tail.iter().map(|c| c.seq).collect::<Vec<_>>(),
            vec![start + 5, start + 6, start + 7]
        );
        assert!(matches!(
            &tail[0].kind,
            ChangeKind::UserPut(user) if user.id == "u4"
        ));
    }

    pub async fn load_returns_the_state_and_the_cursor_it_reflects(backend: &impl Backend) {
        let store = backend.open().await;
        add(store.as_ref(), "u1", "alice").await;
        store
            .insert_session(&session("u1", "f1", 100), &token(1, "u1", "f1", 100))
            .await
            .expect("session");
        let seq = store
            .insert_revoked(&RevokedRecord {
                jti: "j1".into(),
                expires_at: 500,
            })
            .await
            .expect("revoke")
            .seq
            .expect("a change");
        let loaded = store.load(0, 0).await.expect("load");
        assert_eq!(loaded.cursor, seq);
        assert_eq!(loaded.users, vec![UserState::from(&user("u1", "alice"))]);
        // A live token session of its user's current generation: nothing the view needs.
        assert_eq!(loaded.sessions, vec![]);
        assert_eq!(loaded.revoked.len(), 1);
        assert!(changes(store.as_ref(), loaded.cursor).await.is_empty());
        let next = add(store.as_ref(), "u2", "bob").await;
        let after = changes(store.as_ref(), loaded.cursor).await;
        assert_eq!(after.iter().map(|c| c.seq).collect::<Vec<_>>(), [next]);
    }

    /// `Store::load` filters the sessions as `store::load_keeps` says, on every backend.
    pub async fn load_returns_only_the_sessions_a_view_needs(backend: &impl Backend) {
        let store = backend.open().await;
        for (id, name) in [
            ("u1", "alice"),
            ("u2", "bob"),
            ("u3", "carol"),
            ("u4", "dave"),
        ] {
            add(store.as_ref(), id, name).await;
        }
        let (now, grace) = (1000, 100);
        let mut hash = 0;
        let mut live = |user: &str, family: &str, expires_at: u64| {
            hash += 1;
            (
                session(user, family, expires_at),
                token(hash, user, family, expires_at),
            )
        };
        for (session, token) in [
            live("u1", "live", 5000),
            live("u1", "ended-in-grace", 5000),
            live("u1", "ended-at-grace-edge", 5000),
            live("u1", "ended-past-grace", 5000),
            live("u2", "of-a-disabled-user", 5000),
            live("u3", "of-an-older-generation", 5000),
            live("u3", "of-an-older-generation-expired", 10),
            live("u4", "of-a-removed-user", 5000),
            live("u4", "ended-of-a-removed-user", 5000),
        ] {
            store
                .insert_session(&session, &token)
                .await
                .expect("session");
        }
        for (user, family, hash, expires_at) in [
            ("u1", "browser-live", 101, 1001),
            ("u1", "browser-expired", 102, 1000),
            ("u1", "browser-ended", 103, 5000),
        ] {
            store
                .insert_browser_session(&browser_session(user, family, hash, expires_at))
                .await
                .expect("browser session");
        }
        for (user, family, at) in [
            ("u1", "ended-in-grace", 950),
            ("u1", "ended-at-grace-edge", 900),
            ("u1", "ended-past-grace", 899),
            ("u1", "browser-ended", 990),
            ("u4", "ended-of-a-removed-user", 990),
        ] {
            store.end_session(user, family, at).await.expect("end");
        }
        store
            .update_user("u2", UserChange::SetEnabled(false))
            .await
            .expect("disable");
        store
            .update_user(
                "u3",
                UserChange::SetPassword {
                    hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$new".into(),
                    changed_at: 5,
                },
            )
            .await
            .expect("passwd");
        store.remove_user("u4").await.expect("remove");

        let loaded = store.load(now, grace).await.expect("load");
        let mut kept: Vec<&str> = loaded.sessions.iter().map(|s| s.family.as_str()).collect();
        kept.sort_unstable();
        assert_eq!(
            kept,
            [
                "browser-ended",
                "browser-live",
                "ended-at-grace-edge",
                "ended-in-grace",
                "ended-of-a-removed-user",
                "of-a-disabled-user",
                "of-an-older-generation",
                "of-an-older-generation-expired",
            ]
        );
        // Whole records, as stored.
        let all = store.export().await.expect("export");
        for session in &loaded.sessions {
            let stored = store
                .sessions_of(&session.user_id)
                .await
                .expect("list")
                .into_iter()
                .find(|s| s.family == session.family);
            // The removed user's session is no longer listed under it; the export drops it too.
            if session.user_id != "u4" {
                assert_eq!(stored.as_ref(), Some(session));
            }
        }
        // The rule the backends implement, applied to every session the store holds.
        let users: std::collections::HashMap<&str, &UserState> =
            loaded.users.iter().map(|u| (u.id.as_str(), u)).collect();
        let expected: Vec<&str> = all
            .sessions
            .iter()
            .filter(|s| load_keeps(s, users.get(s.user_id.as_str()).copied(), now, grace))
            .map(|s| s.family.as_str())
            .collect();
        for family in &expected {
            assert!(kept.contains(family), "{family}");
        }
        // The load moves with the clock: a minute later the sessions ended at 950 and the
        // browser session expiring at 1001 are no longer needed.
        let later = store.load(now + 60, grace).await.expect("load");
        let mut kept: Vec<&str> = later.sessions.iter().map(|s| s.family.as_str()).collect();
        kept.sort_unstable();
        assert_eq!(
            kept,
            [
                "browser-ended",
                "ended-of-a-removed-user",
                "of-a-disabled-user",
                "of-an-older-generation",
                "of-an-older-generation-expired",
            ]
        );
    }

    pub async fn a_trimmed_log_tells_a_reader_behind_it_to_reload(backend: &impl Backend) {
        let store = backend.open().await;
        let start = head(store.as_ref()).await;
        add(store.as_ref(), "u1", "alice").await;
        let last = add(store.as_ref(), "u2", "bob").await;
        let written_at = changes(store.as_ref(), start).await[0].at;
        // Nothing is trimmed while it is younger than the retention.
        let kept = store
            .remove_expired(written_at + FEED_RETENTION - 1, 0)
            .await
            .expect("purge");
        assert_eq!(kept.changes, 0);
        assert_eq!(changes(store.as_ref(), start).await.len(), 2);
        let purged = store
            .remove_expired(written_at + FEED_RETENTION + 10, 0)
            .await
            .expect("purge");
        assert_eq!(purged.changes, 2);
        for behind in [start, last - 1] {
            assert_eq!(
                store.changes_since(behind, 10).await.expect("feed"),
                Feed::Trimmed,
                "cursor {behind}"
            );
        }
        // A reader at the head lost nothing, and a reload gives a cursor to follow from.
        assert!(changes(store.as_ref(), last).await.is_empty());
        let loaded = store.load(0, 0).await.expect("load");
        assert_eq!((loaded.cursor, loaded.users.len()), (last, 2));
        let next = add(store.as_ref(), "u3", "carol").await;
        assert_eq!(next, last + 1, "numbering goes on after a trim");
        assert_eq!(
            changes(store.as_ref(), loaded.cursor)
                .await
                .iter()
                .map(|c| c.seq)
                .collect::<Vec<_>>(),
            [next]
        );
    }

    pub async fn concurrent_writes_get_distinct_numbers_in_commit_order(backend: &impl Backend) {
        let store = backend.open().await;
        let start = head(store.as_ref()).await;
        let writers = (0..16).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let written = store
                    .insert_user(&user(&format!("u{i}"), &format!("n{i}")))
                    .await
                    .expect("insert");
                (written.seq.expect("a change"), format!("u{i}"))
            })
        });
        let mut returned = Vec::new();
        for writer in writers.collect::<Vec<_>>() {
            returned.push(writer.await.expect("join"));
        }
        returned.sort();
        let published: Vec<(Seq, String)> = changes(store.as_ref(), start)
            .await
            .into_iter()
            .map(|change| match change.kind {
                ChangeKind::UserPut(user) => (change.seq, user.id),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            published, returned,
            "each writer's number names its own change"
        );
        assert_eq!(
            published.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            (start + 1..=start + 16).collect::<Vec<_>>()
        );
    }

    pub async fn numbers_are_never_reused_after_a_reopen(backend: &impl Backend) {
        let store = backend.open().await;
        let first = add(store.as_ref(), "u1", "alice").await;
        let written_at = changes(store.as_ref(), first - 1).await[0].at;
        // Trim everything, so the head survives only as the store's own counter.
        store
            .remove_expired(written_at + FEED_RETENTION + 10, 0)
            .await
            .expect("purge");
        drop(store);
        let store = backend.open().await;
        assert_eq!(head(store.as_ref()).await, first);
        let second = add(store.as_ref(), "u2", "bob").await;
        assert_eq!(second, first + 1);
        assert_eq!(
            store.changes_since(first - 1, 10).await.expect("feed"),
            Feed::Trimmed
        );
        assert_eq!(changes(store.as_ref(), first).await.len(), 1);
    }
    /// A store with a bit of everything: two users (one disabled, after a password
    /// change), a session rotated once (a spent and a live token), an ended session, a
    /// revoked id, the generated secret, and the leftovers of a removed user whose
    /// sessions are not gone yet (which an export leaves out).
    async fn populate(store: &dyn Store) {
        add(store, "u1", "Alice").await;
        add(store, "u2", "bob").await;
        add(store, "u3", "carol").await;
        store
            .update_user(
                "u2",
                UserChange::SetPassword {
                    hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$new".into(),
                    changed_at: 5,
                },
            )
            .await
            .expect("passwd");
        store
            .update_user("u2", UserChange::SetEnabled(false))
            .await
            .expect("disable");
        store
            .insert_session(&session("u1", "f1", 100), &token(1, "u1", "f1", 100))
            .await
            .expect("session");
        store
            .take_refresh(&[1; 32], 10, &[2; 32], 200)
            .await
            .expect("rotate");
        store
            .insert_session(&session("u1", "f2", 100), &token(3, "u1", "f2", 100))
            .await
            .expect("session");
        store.end_session("u1", "f2", 20).await.expect("end");
        store
            .insert_revoked(&RevokedRecord {
                jti: "j1".into(),
                expires_at: 500,
            })
            .await
            .expect("revoke");
        store
            .insert_secret(b"generated-secret")
            .await
            .expect("secret");
        store
            .insert_session(&session("u3", "f3", 100), &token(4, "u3", "f3", 100))
            .await
            .expect("session");
        store.remove_user("u3").await.expect("remove");
        // Browser sessions (SPEC §10): one live and used, one ended.
        store
            .insert_browser_session(&browser_session("u1", "b1", 7, 300))
            .await
            .expect("browser session");
        store.touch_session("u1", "b1", 50).await.expect("touch");
        store
            .insert_browser_session(&browser_session("u1", "b2", 8, 300))
            .await
            .expect("browser session");
        store.end_session("u1", "b2", 30).await.expect("end");
    }

    async fn exported(store: &dyn Store) -> Snapshot {
        let mut snapshot = store.export().await.expect("export");
        snapshot.sort();
        snapshot
    }

    pub async fn an_export_imported_into_a_fresh_store_exports_the_same(backend: &impl Backend) {
        let source = backend.open().await;
        populate(source.as_ref()).await;
        let snapshot = exported(source.as_ref()).await;
        let ids: Vec<&str> = snapshot.users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["u1", "u2"], "the removed user is gone");
        assert_eq!(snapshot.users[1].generation, 2);
        assert_eq!(
            snapshot
                .sessions
                .iter()
                .map(|s| (s.family.as_str(), s.ended_at))
                .collect::<Vec<_>>(),
            [
                ("b1", None),
                ("b2", Some(30)),
                ("f1", None),
                ("f2", Some(20))
            ],
            "the removed user's session is left out"
        );
        assert_eq!(
            snapshot.sessions[0].browser,
            Some(BrowserSessionRecord {
                cookie_hash: [7; 32],
                last_seen: 50,
                remember_me: false,
            }),
            "a browser session travels with its hash and last use"
        );
        assert_eq!(snapshot.sessions[2].browser, None);
        assert_eq!(
            snapshot
                .refresh_tokens
                .iter()
                .map(|t| (t.token_hash[0], t.spent))
                .collect::<Vec<_>>(),
            [(1, true), (2, false), (3, false)],
            "the removed user's token is left out"
        );
        assert_eq!(snapshot.revoked.len(), 1);
        assert_eq!(
            snapshot.secret.as_deref().map(Vec::as_slice),
            Some(&b"generated-secret"[..])
        );

        let target = backend.fresh().await;
        let written = target.import(snapshot.clone()).await.expect("import");
        assert!(written.seq.is_some());
        assert_eq!(exported(target.as_ref()).await, snapshot);
        assert_eq!(
            target.find_user_by_name("alice").await.expect("find"),
            snapshot.users.first().cloned()
        );
        assert_eq!(
            target.find_secret().await.expect("secret").as_deref(),
            Some(&b"generated-secret"[..])
        );
        assert_eq!(
            exported(source.as_ref()).await,
            snapshot,
            "the source is unchanged"
        );
    }

    pub async fn import_refuses_a_store_with_any_record_and_changes_nothing(
        backend: &impl Backend,
    ) {
        let source = backend.open().await;
        populate(source.as_ref()).await;
        let snapshot = exported(source.as_ref()).await;
        // Into itself: full.
        assert_eq!(
            conflict(source.import(snapshot.clone()).await),
            Conflict::NotEmpty
        );
        assert_eq!(exported(source.as_ref()).await, snapshot);

        // A store holding only a generated secret, or only a revoked id, is not empty.
        let secret_only = backend.fresh().await;
        secret_only.insert_secret(b"other").await.expect("secret");
        assert_eq!(
            conflict(secret_only.import(snapshot.clone()).await),
            Conflict::NotEmpty
        );
        assert!(secret_only.list_users().await.expect("list").is_empty());
        assert_eq!(
            secret_only.find_secret().await.expect("secret").as_deref(),
            Some(&b"other"[..])
        );
        let revoked_only = backend.fresh().await;
        revoked_only
            .insert_revoked(&RevokedRecord {
                jti: "x".into(),
                expires_at: 9,
            })
            .await
            .expect("revoke");
        assert_eq!(
            conflict(revoked_only.import(snapshot.clone()).await),
            Conflict::NotEmpty
        );
        assert!(revoked_only.list_users().await.expect("list").is_empty());

        // Records that came and went leave only the log: that store counts as empty.
        let emptied = backend.fresh().await;
        add(emptied.as_ref(), "old", "old").await;
        emptied.remove_user("old").await.expect("remove");
        emptied.import(snapshot.clone()).await.expect("import");
        assert_eq!(exported(emptied.as_ref()).await, snapshot);
    }

    pub async fn a_view_loaded_or_following_after_an_import_sees_every_record(
        backend: &impl Backend,
    ) {
        let source = backend.open().await;
        populate(source.as_ref()).await;
        let snapshot = exported(source.as_ref()).await;

        let target = backend.fresh().await;
        // A store that saw writes before (its log has a head), now empty again.
        add(target.as_ref(), "tmp", "tmp").await;
        target.remove_user("tmp").await.expect("remove");
        let before = head(target.as_ref()).await;
        let written = target.import(snapshot.clone()).await.expect("import");
        let seq = written.seq.expect("a number");
        assert!(seq > before);
        // A follower that was following before the import must reload in full.
        assert_eq!(
            target.changes_since(before, 100).await.expect("feed"),
            Feed::Trimmed
        );
        let loaded = target.load(0, 0).await.expect("load");
        assert!(loaded.cursor >= seq);
        let mut users: Vec<UserState> = loaded.users.clone();
        users.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(
            users,
            snapshot
                .users
                .iter()
                .map(UserState::from)
                .collect::<Vec<_>>()
        );
        let mut sessions = loaded.sessions.clone();
        sessions.sort_by(|a, b| a.family.cmp(&b.family));
        // Every session the view needs (the live token sessions of current users it
        // does not), as imported.
        let states: std::collections::HashMap<&str, &UserState> =
            users.iter().map(|u| (u.id.as_str(), u)).collect();
        let needed: Vec<SessionRecord> = snapshot
            .sessions
            .iter()
            .filter(|s| load_keeps(s, states.get(s.user_id.as_str()).copied(), 0, 0))
            .cloned()
            .collect();
        assert!(!needed.is_empty() && needed.len() < snapshot.sessions.len());
        assert_eq!(sessions, needed);
        assert_eq!(loaded.revoked, snapshot.revoked);
        // And from the loaded cursor the feed goes on normally.
        assert!(changes(target.as_ref(), loaded.cursor).await.is_empty());
        let next = add(target.as_ref(), "u9", "dave").await;
        assert!(next > seq);
        assert_eq!(changes(target.as_ref(), loaded.cursor).await.len(), 1);
    }

    pub async fn imported_refresh_tokens_still_rotate_and_detect_reuse(backend: &impl Backend) {
        let source = backend.open().await;
        populate(source.as_ref()).await;
        let snapshot = exported(source.as_ref()).await;
        let target = backend.fresh().await;
        target.import(snapshot).await.expect("import");

        let rotated = target
            .take_refresh(&[2; 32], 30, &[7; 32], 300)
            .await
            .expect("take");
        assert!(
            matches!(rotated.value, Taken::Rotated(ref s) if s.family == "f1" && s.expires_at == 300)
        );
        // The token spent before the export is still spent: presenting it ends the family.
        let reused = target
            .take_refresh(&[1; 32], 31, &[8; 32], 400)
            .await
            .expect("take");
        assert!(matches!(reused.value, Taken::Reused(ref s) if s.ended_at == Some(31)));
        // The ended session's token stays dead.
        assert_eq!(
            target
                .take_refresh(&[3; 32], 32, &[9; 32], 400)
                .await
                .expect("take")
                .value,
            Taken::Invalid
        );
        // The disabled user stays disabled at its generation; the other logs in anew.
        assert_eq!(
            conflict(
                target
                    .insert_session(&session("u2", "g1", 100), &token(10, "u2", "g1", 100))
                    .await
            ),
            Conflict::UserDisabled
        );
        target
            .insert_session(&session("u1", "g2", 100), &token(11, "u1", "g2", 100))
            .await
            .expect("new session");
    }

    /// Service clients are principals of kind `Client` in the users table (issue #14):
    /// the kind survives every read path (find, list, load, the feed, update, export →
    /// import), and users and clients share one case-insensitive name namespace.
    pub async fn clients_keep_their_kind_and_share_the_name_namespace_with_users(
        backend: &impl Backend,
    ) {
        let store = backend.open().await;
        add(store.as_ref(), "u1", "alice").await;
        let before = head(store.as_ref()).await;
        let written = store
            .insert_user(&client("c1", "ci-bot"))
            .await
            .expect("insert client");
        assert!(written.seq.is_some());
        let published = changes(store.as_ref(), before).await;
        assert!(
            matches!(&published[..], [change] if matches!(&change.kind,
                ChangeKind::UserPut(state) if state.kind == PrincipalKind::Client && state.id == "c1")),
            "{published:?}"
        );
        assert_eq!(
            store.find_user("c1").await.expect("find"),
            Some(client("c1", "ci-bot"))
        );
        assert_eq!(
            store
                .find_user_by_name("ci-bot")
                .await
                .expect("find")
                .map(|c| c.kind),
            Some(PrincipalKind::Client)
        );
        let mut kinds: Vec<(String, PrincipalKind)> = store
            .list_users()
            .await
            .expect("list")
            .into_iter()
            .map(|u| (u.id, u.kind))
            .collect();
        kinds.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            kinds,
            [
                ("c1".to_string(), PrincipalKind::Client),
                ("u1".to_string(), PrincipalKind::User)
            ]
        );
        let loaded = store.load(0, 0).await.expect("load");
        let state = loaded.users.iter().find(|u| u.id == "c1").expect("loaded");
        assert_eq!(state.kind, PrincipalKind::Client);

        // One namespace: a user cannot take a client's name, nor a client a user's.
        let head_before = head(store.as_ref()).await;
        assert_eq!(
            conflict(store.insert_user(&user("u2", "CI-Bot")).await),
            Conflict::UsernameTaken
        );
        assert_eq!(
            conflict(store.insert_user(&client("c2", "Alice")).await),
            Conflict::UsernameTaken
        );
        assert_eq!(head(store.as_ref()).await, head_before);

        // Rotation (a new secret hash) keeps the kind and bumps the generation.
        let rotated = store
            .update_user(
                "c1",
                UserChange::SetPassword {
                    hash: format!("$gatehouse-client-sha256${}", "cd".repeat(32)),
                    changed_at: 9,
                },
            )
            .await
            .expect("rotate")
            .value
            .expect("client");
        assert_eq!(
            (rotated.kind, rotated.generation),
            (PrincipalKind::Client, 1)
        );

        let snapshot = exported(store.as_ref()).await;
        let target = backend.fresh().await;
        target.import(snapshot.clone()).await.expect("import");
        assert_eq!(exported(target.as_ref()).await, snapshot);
        assert_eq!(
            target
                .find_user("c1")
                .await
                .expect("find")
                .map(|c| (c.kind, c.generation)),
            Some((PrincipalKind::Client, 1))
        );

        // Its name is free again once it is removed, for a user too.
        store.remove_user("c1").await.expect("remove");
        add(store.as_ref(), "u3", "CI-bot").await;
    }

    pub async fn a_browser_session_needs_the_user_as_a_token_session_does(backend: &impl Backend) {
        let store = backend.open().await;
        assert_eq!(
            conflict(
                store
                    .insert_browser_session(&browser_session("u1", "b0", 1, 100))
                    .await
            ),
            Conflict::NoSuchUser
        );
        add(store.as_ref(), "u1", "alice").await;
        store
            .update_user("u1", UserChange::SetEnabled(false))
            .await
            .expect("disable");
        let mut at_generation_1 = browser_session("u1", "b1", 1, 100);
        at_generation_1.generation = 1;
        assert_eq!(
            conflict(store.insert_browser_session(&at_generation_1).await),
            Conflict::UserDisabled
        );
        store
            .update_user("u1", UserChange::SetEnabled(true))
            .await
            .expect("enable");
        assert_eq!(
            conflict(
                store
                    .insert_browser_session(&browser_session("u1", "b2", 2, 100))
                    .await
            ),
            Conflict::StaleGeneration
        );
        assert!(store.sessions_of("u1").await.expect("list").is_empty());
        // Not a browser session: refused, nothing written.
        assert!(store
            .insert_browser_session(&session("u1", "t1", 100))
            .await
            .is_err());
        let before = head(store.as_ref()).await;
        let written = store
            .insert_browser_session(&at_generation_1)
            .await
            .expect("insert");
        assert_eq!(written.seq, Some(before + 1));
        assert_eq!(
            store.sessions_of("u1").await.expect("list"),
            [at_generation_1.clone()]
        );
        assert_eq!(
            changes(store.as_ref(), before).await[0].kind,
            ChangeKind::SessionPut(at_generation_1.clone())
        );
        // No refresh token came with it.
        assert!(store
            .export()
            .await
            .expect("export")
            .refresh_tokens
            .is_empty());
        let loaded = store.load(0, 0).await.expect("load");
        assert_eq!(loaded.sessions, [at_generation_1]);
    }

    pub async fn touching_moves_a_live_browser_sessions_last_use_forward_only(
        backend: &impl Backend,
    ) {
        let store = backend.open().await;
        add(store.as_ref(), "u1", "alice").await;
        store
            .insert_browser_session(&browser_session("u1", "b1", 1, 100))
            .await
            .expect("insert");
        store
            .insert_session(&session("u1", "t1", 100), &token(9, "u1", "t1", 100))
            .await
            .expect("token session");
        let before = head(store.as_ref()).await;
        let touched = store.touch_session("u1", "b1", 40).await.expect("touch");
        assert_eq!((touched.value, touched.seq), (true, Some(before + 1)));
        let mut expected = browser_session("u1", "b1", 1, 100);
        if let Some(browser) = &mut expected.browser {
            browser.last_seen = 40;
        }
        assert_eq!(
            changes(store.as_ref(), before).await[0].kind,
            ChangeKind::SessionPut(expected.clone())
        );
        // Not forward, unknown, a token session, ended: nothing changes or is published.
        let after = head(store.as_ref()).await;
        for (user, family, at) in [
            ("u1", "b1", 40),
            ("u1", "b1", 39),
            ("u1", "nope", 50),
            ("u2", "b1", 50),
            ("u1", "t1", 50),
        ] {
            let touched = store.touch_session(user, family, at).await.expect("touch");
            assert_eq!(
                (touched.value, touched.seq),
                (false, None),
                "{user}/{family}@{at}"
            );
        }
        assert_eq!(head(store.as_ref()).await, after);
        store.end_session("u1", "b1", 60).await.expect("end");
        let ended_head = head(store.as_ref()).await;
        let touched = store.touch_session("u1", "b1", 70).await.expect("touch");
        assert_eq!((touched.value, touched.seq), (false, None), "ended");
        assert_eq!(head(store.as_ref()).await, ended_head);
        let sessions = store.sessions_of("u1").await.expect("list");
        let b1 = sessions.iter().find(|s| s.family == "b1").expect("b1");
        assert_eq!(b1.browser.as_ref().map(|b| b.last_seen), Some(40));
        assert_eq!(b1.ended_at, Some(60));
        // Durable across a reopen.
        drop(store);
        let store = backend.open().await;
        let sessions = store.sessions_of("u1").await.expect("list");
        assert!(sessions
            .iter()
            .any(|s| s.family == "b1" && s.browser.as_ref().map(|b| b.last_seen) == Some(40)));
    }

    pub async fn browser_sessions_end_and_go_with_their_user_like_every_session(
        backend: &impl Backend,
    ) {
        let store = backend.open().await;
        add(store.as_ref(), "u1", "alice").await;
        store
            .insert_browser_session(&browser_session("u1", "b1", 1, 100))
            .await
            .expect("insert");
        let ended = store.end_session("u1", "b1", 10).await.expect("end");
        let session = ended.value.expect("ended");
        assert_eq!(session.ended_at, Some(10));
        assert!(
            session.browser.is_some(),
            "the ended session keeps its kind"
        );
        assert!(ended.seq.is_some());
        store
            .insert_browser_session(&browser_session("u1", "b2", 2, 100))
            .await
            .expect("insert");
        let removed = store.remove_sessions_of("u1").await.expect("remove");
        assert_eq!(removed.value, 2);
        assert!(store.sessions_of("u1").await.expect("list").is_empty());
        // Expired browser sessions are purged like every other.
        store
            .insert_browser_session(&browser_session("u1", "b3", 3, 100))
            .await
            .expect("insert");
        let purged = store.remove_expired(101, 0).await.expect("purge");
        assert_eq!(purged.sessions, 1);
    }
}
