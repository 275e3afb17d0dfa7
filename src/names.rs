//! Names validated once and used everywhere (SPEC §4): [`Username`] in its canonical
//! form, and [`Role`]. Policy types at the bottom: accounts, config and the admin channel
//! import them; they import nothing from gatehouse.

use std::fmt;

/// Longest username (SPEC §4).
pub const MAX_USERNAME_LEN: usize = 64;

/// The rule a username follows, for error messages.
pub const USERNAME_RULE: &str = "a username is 1-64 characters of A-Z a-z 0-9 . _ @ -";

/// The rule a role name follows, for error messages.
pub const ROLE_RULE: &str = "use 1-64 of A-Z a-z 0-9 . _ : -";

/// A username in its canonical (lower-case) form: 1–64 characters of
/// `A-Z a-z 0-9 . _ @ -` (SPEC §4). Names compare by this form everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    /// The canonical form of `name`, or `None` when it is not a username.
    pub fn parse(name: &str) -> Option<Username> {
        let valid = (1..=MAX_USERNAME_LEN).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
        valid.then(|| Username(name.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The canonical (lower-case) form of a username, or `None` when it is not 1–64
/// characters of `A-Z a-z 0-9 . _ @ -` (SPEC §4): [`Username::parse`] as a string.
pub fn canonical_username(name: &str) -> Option<String> {
    Username::parse(name).map(Username::into_string)
}

/// A role name: 1–64 of `A-Z a-z 0-9 . _ : -` (safe in a comma-separated header).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role(String);

impl Role {
    /// `role` as a role name, or `None` when it is not one.
    pub fn parse(role: &str) -> Option<Role> {
        Role::is_valid(role).then(|| Role(role.to_string()))
    }

    /// Whether `role` is a role name (without building one).
    pub fn is_valid(role: &str) -> bool {
        (1..=64).contains(&role.len())
            && role
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_spec_alphabet_and_fold_case() {
        assert_eq!(
            canonical_username("Alice.B_c@d-1").as_deref(),
            Some("alice.b_c@d-1")
        );
        assert!(canonical_username("").is_none());
        assert!(canonical_username("has space").is_none());
        assert!(canonical_username("ünïcode").is_none());
        assert!(canonical_username(&"a".repeat(64)).is_some());
        assert!(canonical_username(&"a".repeat(65)).is_none());
    }

    #[test]
    fn roles_are_validated() {
        assert!(Role::is_valid("admin"));
        assert!(Role::is_valid("team:billing-ro"));
        assert!(!Role::is_valid(""));
        assert!(!Role::is_valid("a,b"));
        assert!(!Role::is_valid("a b"));
        assert_eq!(
            Role::parse("admin").map(|r| r.to_string()).as_deref(),
            Some("admin")
        );
    }
}
