//! Bench-only (benches/load/scale.sh): writes a `gatehouse store export` file into an
//! EMPTY sled store in batches, in the layout `src/store/sled_store.rs` documents (one
//! version byte + JSON per record; sessions keyed `<user id>/<session id>`).
//!
//! Why not `gatehouse store import`: on sled it writes everything in ONE transaction, which
//! sled holds in memory until it commits — for 100,000 users and 1,000,000 sessions with
//! their refresh tokens that passed 11 GB of RSS before it was stopped (issue #17). Here
//! each tree is written with `apply_batch` every `BATCH` records: not all-or-nothing and
//! no change-log entry, which is fine for a throwaway bench store and not for a product
//! verb. The file is read and checked by the product's own reader first.
//!
//! Usage: `cargo run --example scale_fill_sled -- FILE STORE_DIR`

use std::fs::File;
use std::io::BufReader;

use serde::Serialize;

const BATCH: usize = 20_000;

fn encode(value: &impl Serialize) -> Vec<u8> {
    let mut out = vec![1u8];
    serde_json::to_writer(&mut out, value).expect("encode");
    out
}

fn write<T>(tree: &sled::Tree, records: &[T], entry: impl Fn(&T) -> (Vec<u8>, Vec<u8>)) {
    for chunk in records.chunks(BATCH) {
        let mut batch = sled::Batch::default();
        for record in chunk {
            let (key, value) = entry(record);
            batch.insert(key, value);
        }
        tree.apply_batch(batch).expect("apply batch");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, dir] = args.as_slice() else {
        eprintln!("usage: scale_fill_sled FILE STORE_DIR");
        std::process::exit(2);
    };
    let input = BufReader::new(File::open(file).expect("open the export file"));
    let (_, snapshot) = gatehouse::store::snapshot::read(input).expect("a valid export file");
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(64 * 1024 * 1024)
        .open()
        .expect("open sled");
    for name in ["users", "sessions", "refresh_tokens", "revoked"] {
        let tree = db.open_tree(name).expect("tree");
        assert!(tree.is_empty(), "the store is not empty: {name}");
    }
    let users = db.open_tree("users").expect("tree");
    write(&users, &snapshot.users, |user| {
        (user.id.clone().into_bytes(), encode(user))
    });
    let usernames = db.open_tree("usernames").expect("tree");
    write(&usernames, &snapshot.users, |user| {
        (
            user.canonical.clone().into_bytes(),
            user.id.clone().into_bytes(),
        )
    });
    let sessions = db.open_tree("sessions").expect("tree");
    write(&sessions, &snapshot.sessions, |session| {
        (
            format!("{}/{}", session.user_id, session.family).into_bytes(),
            encode(session),
        )
    });
    let refresh = db.open_tree("refresh_tokens").expect("tree");
    write(&refresh, &snapshot.refresh_tokens, |token| {
        (token.token_hash.to_vec(), encode(token))
    });
    let revoked = db.open_tree("revoked").expect("tree");
    write(&revoked, &snapshot.revoked, |record| {
        (record.jti.clone().into_bytes(), encode(record))
    });
    db.flush().expect("flush");
    println!(
        "{} users, {} sessions, {} refresh tokens, {} revoked ids",
        snapshot.users.len(),
        snapshot.sessions.len(),
        snapshot.refresh_tokens.len(),
        snapshot.revoked.len()
    );
}
