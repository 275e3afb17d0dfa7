//! A whole store as one value ([`Snapshot`], what [`super::Store::export`] reads and
//! [`super::Store::import`] writes) and its file format: JSON Lines, versioned, the same
//! for every backend, so a snapshot taken from sled loads into PostgreSQL and back
//! (`gatehouse store export` / `store import`, SPEC §1 and §8 "Moving").
//!
//! ```text
//! {"gatehouse_export":1,"created":"2026-12-03T10:00:00Z","source_backend":"sled"}
//! {"type":"user","id":"…","username":"Alice","canonical":"alice","password_hash":"$argon2id$…","roles":["admin"],"enabled":true,"created":…,"password_changed_at":…,"generation":0}
//! {"type":"client","id":"…","username":"ci-bot","canonical":"ci-bot","password_hash":"$gatehouse-client-sha256$…","roles":["deploy"],"enabled":true,"created":…,"password_changed_at":…,"generation":1}
//! {"type":"session","family":"…","user_id":"…","created":…,"generation":0,"expires_at":…,"ended_at":null}
//! {"type":"refresh_token","token_hash":"<64 hex digits: SHA-256 of the token>","family":"…","user_id":"…","expires_at":…,"spent":false}
//! {"type":"revoked","jti":"…","expires_at":…}
//! {"type":"secret","secret":"<base64>"}
//! {"type":"end","records":6}
//! ```
//!
//! - The header comes first; its `gatehouse_export` is the format version. A reader
//!   refuses a version it does not know (a later format adds a version and a migration
//!   here). `created` and `source_backend` are informative.
//! - Then one record a line, tagged by `"type"`; order does not matter, except that
//!   `end` is last. `end` counts the records before it, so a truncated file (disk full,
//!   a copy cut short) is refused rather than restored in part.
//! - `{"type":"client",…}` is a service client (SPEC §4 client credentials): the fields of
//!   a user line, its `password_hash` being the SHA-256 of its secret
//!   (`$gatehouse-client-sha256$<hex>`, see `auth::client_secret`). In memory clients are
//!   [`UserRecord`]s of kind [`PrincipalKind::Client`] (they live in the users table);
//!   the line's type carries the kind, so neither line repeats it. Files written before
//!   clients existed have none and read as before.
//! - `secret` is the generated signing secret, when the store keeps one: the file must be
//!   guarded like the secret (and it holds password hashes anyway).
//!
//! Reading is all or nothing: the first bad line is reported with its number (1-based)
//! and nothing is returned. References are checked too (a session's user, a refresh
//! token's session, no duplicate ids or names), so an import never builds a store whose
//! records point nowhere.

use std::collections::HashSet;
use std::io::{BufRead, Write};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::names::{canonical_username, Role, ROLE_RULE};

use super::{
    PrincipalKind, RefreshRecord, RevokedRecord, SessionRecord, UserRecord,
    CLIENT_SECRET_HASH_PREFIX,
};

/// The format version this build writes and reads.
pub const FORMAT: u64 = 1;

/// Every record of a store. Order of the lists is not significant; [`Snapshot::sort`]
/// gives the canonical order (what the file is written in, and what makes two snapshots
/// comparable).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Users and service clients ([`UserRecord::kind`]).
    pub users: Vec<UserRecord>,
    pub sessions: Vec<SessionRecord>,
    pub refresh_tokens: Vec<RefreshRecord>,
    pub revoked: Vec<RevokedRecord>,
    /// The generated signing secret, when the store keeps one.
    pub secret: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("users", &self.users)
            .field("sessions", &self.sessions)
            .field("refresh_tokens", &self.refresh_tokens)
            .field("revoked", &self.revoked)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Snapshot {
    /// Puts every list in its canonical order (users by id, sessions by user and id,
    /// refresh tokens by hash, revoked ids by id).
    pub fn sort(&mut self) {
        self.users.sort_by(|a, b| a.id.cmp(&b.id));
        self.sessions
            .sort_by(|a, b| (&a.user_id, &a.family).cmp(&(&b.user_id, &b.family)));
        self.refresh_tokens.sort_by_key(|token| token.token_hash);
        self.revoked.sort_by(|a, b| a.jti.cmp(&b.jti));
    }

    /// How many records it holds (the secret counts as one).
    pub fn records(&self) -> usize {
        self.users.len()
            + self.sessions.len()
            + self.refresh_tokens.len()
            + self.revoked.len()
            + usize::from(self.secret.is_some())
    }

    /// True when it holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.records() == 0
    }

    /// A one-line count for the operator, e.g. "2 users, 1 session, …".
    pub fn summary(&self) -> String {
        let count =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let clients = self
            .users
            .iter()
            .filter(|u| u.kind == PrincipalKind::Client)
            .count();
        format!(
            "{}, {}, {}, {}, {}, {}",
            count(self.users.len() - clients, "user", "users"),
            count(clients, "service client", "service clients"),
            count(self.sessions.len(), "session", "sessions"),
            count(self.refresh_tokens.len(), "refresh token", "refresh tokens"),
            count(self.revoked.len(), "revoked token id", "revoked token ids"),
            if self.secret.is_some() {
                "the generated signing secret"
            } else {
                "no generated signing secret"
            }
        )
    }

    /// Drops records that point nowhere (a session whose user is gone, a refresh token
    /// whose session is gone): a store may briefly hold them (a user's sessions are
    /// removed after the user; the purge removes tokens after their session), they are
    /// dead, and [`read`] refuses them.
    pub fn without_orphans(mut self) -> Self {
        let users: HashSet<&str> = self.users.iter().map(|u| u.id.as_str()).collect();
        self.sessions.retain(|s| users.contains(s.user_id.as_str()));
        let sessions: HashSet<(&str, &str)> = self
            .sessions
            .iter()
            .map(|s| (s.user_id.as_str(), s.family.as_str()))
            .collect();
        self.refresh_tokens
            .retain(|t| sessions.contains(&(t.user_id.as_str(), t.family.as_str())));
        self
    }
}

/// The first line of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The format version ([`FORMAT`]).
    pub gatehouse_export: u64,
    /// RFC 3339, when the snapshot was taken.
    pub created: String,
    /// `sled` or `postgres`.
    pub source_backend: String,
}

impl Header {
    /// A header for a snapshot taken now from `source_backend`.
    pub fn now(source_backend: &str) -> Self {
        Header {
            gatehouse_export: FORMAT,
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            source_backend: source_backend.to_string(),
        }
    }
}

/// A refresh token as the file holds it: the hash in hex.
#[derive(Serialize, Deserialize)]
struct RefreshLine {
    token_hash: String,
    family: String,
    user_id: String,
    expires_at: u64,
    spent: bool,
}

/// One record line.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    User(UserRecord),
    Session(SessionRecord),
    RefreshToken(RefreshLine),
    Revoked(RevokedRecord),
    Secret {
        secret: Zeroizing<String>,
    },
    /// A service client: a [`UserRecord`] of kind client, written without its `kind`
    /// (the line's type says it).
    Client(UserRecord),
    End {
        records: u64,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Writes `snapshot` (sorted) under `header` as JSON Lines.
pub fn write(out: &mut impl Write, header: &Header, snapshot: &Snapshot) -> std::io::Result<()> {
    let mut sorted = snapshot.clone();
    sorted.sort();
    write_line(out, header)?;
    for user in &sorted.users {
        let line = match user.kind {
            PrincipalKind::User => Line::User(user.clone()),
            PrincipalKind::Client => Line::Client(UserRecord {
                kind: PrincipalKind::User,
                ..user.clone()
            }),
        };
        write_line(out, &line)?;
    }
    for session in &sorted.sessions {
        write_line(out, &Line::Session(session.clone()))?;
    }
    for token in &sorted.refresh_tokens {
        write_line(
            out,
            &Line::RefreshToken(RefreshLine {
                token_hash: hex(&token.token_hash),
                family: token.family.clone(),
                user_id: token.user_id.clone(),
                expires_at: token.expires_at,
                spent: token.spent,
            }),
        )?;
    }
    for revoked in &sorted.revoked {
        write_line(out, &Line::Revoked(revoked.clone()))?;
    }
    if let Some(secret) = &sorted.secret {
        write_line(
            out,
            &Line::Secret {
                secret: Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(secret)),
            },
        )?;
    }
    write_line(
        out,
        &Line::End {
            records: sorted.records() as u64,
        },
    )?;
    out.flush()
}

fn write_line(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

/// Why a file could not be read: the line (1-based; 0 when the file as a whole is at
/// fault, e.g. it ends early) and what is wrong with it. Never quotes the line, which
/// may hold a password hash or the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub line: usize,
    pub problem: String,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "line {}: {}", self.line, self.problem)
        }
    }
}

/// Reads a whole file: its header and snapshot, or the first problem (nothing is
/// returned then). Blank lines are not allowed (they are not JSON Lines).
pub fn read(input: impl BufRead) -> Result<(Header, Snapshot), ReadError> {
    let fail = |line: usize, problem: String| ReadError { line, problem };
    let mut header = None;
    let mut snapshot = Snapshot::default();
    let mut ended = None;
    let mut user_ids = HashSet::new();
    let mut names = HashSet::new();
    let mut sessions = HashSet::new();
    let mut hashes = HashSet::new();
    let mut jtis = HashSet::new();
    let mut last = 0;
    for (index, text) in input.lines().enumerate() {
        let number = index + 1;
        last = number;
        let text =
            Zeroizing::new(text.map_err(|err| fail(number, format!("cannot be read: {err}")))?);
        if let Some(end) = ended {
            return Err(fail(
                number,
                format!("follows the end record on line {end}; the file must end there"),
            ));
        }
        if header.is_none() {
            let found: Header = serde_json::from_str(&text).map_err(|_| {
                fail(
                    number,
                    "is not a gatehouse export header ({\"gatehouse_export\":1,…}); is this a `gatehouse store export` file?".into(),
                )
            })?;
            if found.gatehouse_export != FORMAT {
                return Err(fail(
                    number,
                    format!(
                        "export format {} is not one this build reads (it reads format {FORMAT}); use the gatehouse version that wrote it, or a newer one",
                        found.gatehouse_export
                    ),
                ));
            }
            header = Some(found);
            continue;
        }
        let record: Line = serde_json::from_str(&text).map_err(|err| {
            // serde_json's message names the field or type at fault, never the value.
            fail(number, format!("not a valid record: {}", describe(&err)))
        })?;
        match record {
            Line::User(user) if user.kind == PrincipalKind::Client => {
                return Err(fail(
                    number,
                    format!(
                        "user {}: a service client is written as a \"client\" line",
                        user.id
                    ),
                ));
            }
            Line::User(user) => {
                add_principal(&mut snapshot, user, number, &mut user_ids, &mut names)?
            }
            Line::Client(client) => {
                let client = UserRecord {
                    kind: PrincipalKind::Client,
                    ..client
                };
                add_principal(&mut snapshot, client, number, &mut user_ids, &mut names)?;
            }
            Line::Session(session) => {
                if !sessions.insert((session.user_id.clone(), session.family.clone())) {
                    return Err(fail(number, format!("a second session {}", session.family)));
                }
                snapshot.sessions.push(session);
            }
            Line::RefreshToken(token) => {
                let Some(token_hash) = unhex32(&token.token_hash) else {
                    return Err(fail(number, "token_hash is not 64 hex digits".into()));
                };
                if !hashes.insert(token_hash) {
                    return Err(fail(number, "a second refresh token with this hash".into()));
                }
                snapshot.refresh_tokens.push(RefreshRecord {
                    token_hash,
                    family: token.family,
                    user_id: token.user_id,
                    expires_at: token.expires_at,
                    spent: token.spent,
                });
            }
            Line::Revoked(revoked) => {
                if !jtis.insert(revoked.jti.clone()) {
                    return Err(fail(
                        number,
                        format!("token id {} revoked twice", revoked.jti),
                    ));
                }
                snapshot.revoked.push(revoked);
            }
            Line::Secret { secret } => {
                if snapshot.secret.is_some() {
                    return Err(fail(number, "a second secret".into()));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(secret.as_bytes())
                    .map_err(|_| fail(number, "secret is not base64".into()))?;
                snapshot.secret = Some(Zeroizing::new(bytes));
            }
            Line::End { records } => {
                if records != snapshot.records() as u64 {
                    return Err(fail(
                        number,
                        format!(
                            "the end record counts {records} records but {} precede it",
                            snapshot.records()
                        ),
                    ));
                }
                ended = Some(number);
            }
        }
    }
    let Some(header) = header else {
        return Err(fail(0, "the file is empty (no export header)".into()));
    };
    if ended.is_none() {
        return Err(fail(
            0,
            format!("the file ends at line {last} without its end record: it is truncated (nothing was imported)"),
        ));
    }
    check_references(&snapshot)?;
    Ok((header, snapshot))
}

/// Checks one user or client line and adds it: a valid name whose canonical form is
/// given, valid roles, an id and a name no other user or client has, and a secret hash
/// of the right form for the kind (a client's is never a password hash, a user's never a
/// client's).
fn add_principal(
    snapshot: &mut Snapshot,
    user: UserRecord,
    number: usize,
    user_ids: &mut HashSet<String>,
    names: &mut HashSet<String>,
) -> Result<(), ReadError> {
    let fail = |problem: String| ReadError {
        line: number,
        problem,
    };
    let what = match user.kind {
        PrincipalKind::User => "user",
        PrincipalKind::Client => "client",
    };
    if canonical_username(&user.username).as_deref() != Some(user.canonical.as_str()) {
        return Err(fail(format!(
            "{what} {}: not a valid name, or canonical is not its lower-case form",
            user.id
        )));
    }
    if let Some(role) = user.roles.iter().find(|role| !Role::is_valid(role)) {
        return Err(fail(format!(
            "{what} {}: `{role}` is not a role name ({ROLE_RULE})",
            user.id
        )));
    }
    let client_hash = user.password_hash.starts_with(CLIENT_SECRET_HASH_PREFIX);
    if client_hash != (user.kind == PrincipalKind::Client) {
        return Err(fail(format!(
            "{what} {}: password_hash is not a {what}'s (clients have `{CLIENT_SECRET_HASH_PREFIX}…`, users never)",
            user.id
        )));
    }
    if !user_ids.insert(user.id.clone()) {
        return Err(fail(format!("a second user or client with id {}", user.id)));
    }
    if !names.insert(user.canonical.clone()) {
        return Err(fail(format!(
            "a second user or client named {}",
            user.canonical
        )));
    }
    snapshot.users.push(user);
    Ok(())
}

/// Every session names a user in the file, every refresh token a session in it.
fn check_references(snapshot: &Snapshot) -> Result<(), ReadError> {
    let users: HashSet<&str> = snapshot.users.iter().map(|u| u.id.as_str()).collect();
    if let Some(session) = snapshot
        .sessions
        .iter()
        .find(|s| !users.contains(s.user_id.as_str()))
    {
        return Err(ReadError {
            line: 0,
            problem: format!(
                "session {} belongs to user {}, who is not in the file",
                session.family, session.user_id
            ),
        });
    }
    let sessions: HashSet<(&str, &str)> = snapshot
        .sessions
        .iter()
        .map(|s| (s.user_id.as_str(), s.family.as_str()))
        .collect();
    if let Some(token) = snapshot
        .refresh_tokens
        .iter()
        .find(|t| !sessions.contains(&(t.user_id.as_str(), t.family.as_str())))
    {
        return Err(ReadError {
            line: 0,
            problem: format!(
                "a refresh token of session {} (user {}), which is not in the file",
                token.family, token.user_id
            ),
        });
    }
    Ok(())
}

/// serde_json's error without its position suffix (the line number is ours) and with
/// every quoted value blanked: it names the field or type at fault, but a value put in
/// the wrong field could be a password hash or the secret.
fn describe(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let text = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' if quoted => {
                quoted = false;
                out.push_str("…\"");
            }
            '"' => {
                quoted = true;
                out.push('"');
            }
            _ if quoted => {}
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            users: vec![UserRecord {
                id: "u1".into(),
                username: "Alice".into(),
                canonical: "alice".into(),
                password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
                roles: vec!["admin".into()],
                enabled: true,
                created: 1,
                password_changed_at: 2,
                generation: 3,
                kind: PrincipalKind::User,
            }],
            sessions: vec![SessionRecord {
                family: "f1".into(),
                user_id: "u1".into(),
                created: 4,
                generation: 3,
                expires_at: 100,
                ended_at: None,
                browser: None,
            }],
            refresh_tokens: vec![RefreshRecord {
                token_hash: [0xab; 32],
                family: "f1".into(),
                user_id: "u1".into(),
                expires_at: 100,
                spent: false,
            }],
            revoked: vec![RevokedRecord {
                jti: "j1".into(),
                expires_at: 50,
            }],
            secret: Some(Zeroizing::new(b"0123456789abcdef0123456789abcdef".to_vec())),
        }
    }

    fn text(snapshot: &Snapshot) -> String {
        let mut out = Vec::new();
        write(&mut out, &Header::now("sled"), snapshot).expect("write");
        String::from_utf8(out).expect("utf-8")
    }

    fn read_text(text: &str) -> Result<Snapshot, ReadError> {
        read(text.as_bytes()).map(|(_, snapshot)| snapshot)
    }

    #[test]
    fn a_written_file_reads_back_the_same() {
        let written = text(&sample());
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), 7, "header, five records, end");
        assert!(lines[0].starts_with(r#"{"gatehouse_export":1,"created":""#));
        assert!(lines[3].contains(&format!(r#""token_hash":"{}""#, "ab".repeat(32))));
        assert_eq!(lines[6], r#"{"type":"end","records":5}"#);
        let (header, back) = read(written.as_bytes()).expect("read");
        assert_eq!(header.source_backend, "sled");
        assert_eq!(back, sample());
    }

    #[test]
    fn a_browser_session_reads_back_with_its_cookie_hash_in_hex() {
        let mut snapshot = sample();
        snapshot.sessions.push(SessionRecord {
            family: "b1".into(),
            browser: Some(crate::store::BrowserSessionRecord {
                cookie_hash: [0xcd; 32],
                last_seen: 60,
                remember_me: true,
            }),
            ..snapshot.sessions[0].clone()
        });
        let written = text(&snapshot);
        let line = written
            .lines()
            .find(|line| line.contains(r#""family":"b1""#))
            .expect("session line");
        assert!(
            line.contains(&format!(
                r#""browser":{{"cookie_hash":"{}","last_seen":60,"remember_me":true}}"#,
                "cd".repeat(32)
            )),
            "{line}"
        );
        let token_session = written
            .lines()
            .find(|line| line.contains(r#""family":"f1","#) && line.contains("session"))
            .expect("token session line");
        assert!(!token_session.contains("browser"), "{token_session}");
        let mut back = read_text(&written).expect("read");
        back.sort();
        snapshot.sort();
        assert_eq!(back, snapshot);
        let bad = written.replace(&"cd".repeat(32), "zz");
        assert!(read_text(&bad).is_err());
    }

    #[test]
    fn a_bad_line_is_named_by_its_number_without_its_content() {
        let written = text(&sample());
        let mut lines: Vec<String> = written.lines().map(String::from).collect();
        // A password hash where a list of roles belongs must not be echoed.
        lines[1] = lines[1].replace(r#""roles":["admin"]"#, r#""roles":"$argon2id$secret-ish""#);
        let err = read_text(&lines.join("\n")).expect_err("bad");
        assert_eq!(err.line, 2, "{err}");
        assert!(!err.to_string().contains("secret-ish"), "{err}");
        assert!(err.to_string().starts_with("line 2: "), "{err}");

        let mut lines: Vec<String> = written.lines().map(String::from).collect();
        lines[4] = "{not json".into();
        assert_eq!(read_text(&lines.join("\n")).expect_err("bad").line, 5);
    }

    #[test]
    fn truncated_files_and_newer_formats_are_refused() {
        let written = text(&sample());
        let cut: Vec<&str> = written.lines().take(5).collect();
        let err = read_text(&cut.join("\n")).expect_err("truncated");
        assert!(err.to_string().contains("truncated"), "{err}");

        let newer = written.replacen(r#""gatehouse_export":1"#, r#""gatehouse_export":2"#, 1);
        let err = read_text(&newer).expect_err("newer");
        assert_eq!(err.line, 1);
        assert!(err.problem.contains("format 2"), "{err}");

        assert!(read_text("").is_err());
        assert_eq!(
            read_text("{\"type\":\"user\"}")
                .expect_err("no header")
                .line,
            1
        );
    }

    #[test]
    fn duplicates_and_dangling_references_are_refused() {
        let mut twice = sample();
        twice.users.push(UserRecord {
            id: "u2".into(),
            ..twice.users[0].clone()
        });
        let err = read_text(&text(&twice)).expect_err("same name");
        assert_eq!(err.line, 3);

        let mut dangling = sample();
        dangling.users.clear();
        let err = read_text(&text(&dangling)).expect_err("no user");
        assert!(err.problem.contains("not in the file"), "{err}");
    }

    #[test]
    fn orphans_are_dropped_and_the_secret_is_never_debug_printed() {
        let mut snapshot = sample();
        snapshot.users.clear();
        let cleaned = snapshot.without_orphans();
        assert!(cleaned.sessions.is_empty() && cleaned.refresh_tokens.is_empty());
        assert_eq!(cleaned.revoked.len(), 1);
        let debug = format!("{:?}", sample());
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
        assert!(!debug.contains("argon2id"), "{debug}");
    }

    fn client(id: &str, name: &str) -> UserRecord {
        UserRecord {
            id: id.into(),
            username: name.into(),
            canonical: name.to_lowercase(),
            password_hash: format!("{CLIENT_SECRET_HASH_PREFIX}{}", "cd".repeat(32)),
            roles: vec!["deploy".into()],
            enabled: true,
            created: 5,
            password_changed_at: 6,
            generation: 1,
            kind: PrincipalKind::Client,
        }
    }

    #[test]
    fn clients_are_written_as_client_lines_and_read_back_as_clients() {
        let mut snapshot = sample();
        snapshot.users.push(client("c1", "CI-Bot"));
        let written = text(&snapshot);
        let line = written
            .lines()
            .find(|line| line.starts_with(r#"{"type":"client""#))
            .expect("a client line");
        assert!(line.contains(r#""username":"CI-Bot""#), "{line}");
        assert!(
            !line.contains("\"principal\""),
            "the line's type carries the kind: {line}"
        );
        assert!(
            !written.contains("\"principal\""),
            "user lines are written as before clients existed"
        );
        assert!(
            written.ends_with("{\"type\":\"end\",\"records\":6}\n"),
            "{written}"
        );
        let mut back = read_text(&written).expect("read");
        back.sort();
        snapshot.sort();
        assert_eq!(back, snapshot);
        assert!(
            snapshot.summary().contains("1 user, 1 service client"),
            "{}",
            snapshot.summary()
        );
    }

    #[test]
    fn client_lines_are_checked_like_user_lines_and_by_their_hash() {
        let with = |extra: UserRecord| {
            let mut snapshot = sample();
            snapshot.users.push(extra);
            text(&snapshot)
        };
        // A client may not take a user's name (one namespace).
        let err = read_text(&with(client("c1", "ALICE"))).expect_err("same name");
        assert!(
            err.problem.contains("a second user or client named alice"),
            "{err}"
        );
        // A client whose hash is a password hash, a user whose hash is a client's.
        let mut argon = client("c1", "ci");
        argon.password_hash = sample().users[0].password_hash.clone();
        let err = read_text(&with(argon)).expect_err("client with a password hash");
        assert!(err.problem.contains("password_hash"), "{err}");
        assert!(!err.to_string().contains("argon2id$"), "{err}");
        let mut user = client("u9", "bob");
        user.kind = PrincipalKind::User;
        let err = read_text(&with(user)).expect_err("user with a client hash");
        assert!(err.problem.contains("password_hash"), "{err}");
        // A user line that claims to be a client.
        let written = text(&sample()).replacen(
            r#""generation":3"#,
            r#""generation":3,"principal":"client""#,
            1,
        );
        let err = read_text(&written).expect_err("kind in a user line");
        assert_eq!(err.line, 2, "{err}");
    }
}
