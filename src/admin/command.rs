//! The admin command types (SPEC §1 `gatehouse user …`, `gatehouse client …`,
//! `gatehouse store …`): owned
//! here, so the command line depends on admin and not the reverse. clap derives their
//! parsing; [`super::run`] turns user commands into protocol requests,
//! [`super::run_store`] runs store commands.

use clap::Subcommand;

/// `gatehouse user …` (SPEC §1).
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; asks twice for the password, or reads one line from stdin
    Add {
        name: String,
        /// A role to grant (repeatable)
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from the first line of stdin
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password; every token issued before stops working
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: its tokens stop working on the next request
    Disable { name: String },
    /// Enable a disabled user
    Enable { name: String },
    /// Replace a user's roles (none given: no roles)
    Roles { name: String, roles: Vec<String> },
    /// Delete a user; its tokens stop working
    Remove { name: String },
    /// Clear a username's login failures and end its lockout early
    Unlock { name: String },
    /// List users
    List {
        /// A JSON array of {"username","roles","enabled","created"}
        #[arg(long)]
        json: bool,
    },
}

/// `gatehouse client …` (SPEC §1, §4 "Service clients"): machine callers of the OAuth 2.0
/// client-credentials grant.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a service client; prints its generated secret once on stdout
    Add {
        name: String,
        /// A role to grant (repeatable)
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// List service clients (name, id, roles, created; never a secret)
    List {
        /// A JSON array of {"name","id","roles","created"}
        #[arg(long)]
        json: bool,
    },
    /// Delete a service client; its secret and every token issued to it stop working
    Remove { name: String },
    /// Give a service client a new secret (printed once on stdout); the old secret and
    /// every token issued before stop working
    Rotate { name: String },
}

/// `gatehouse store …` (SPEC §1, §8 "Moving").
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Write a consistent snapshot of the store (users with password hashes, sessions,
    /// refresh-token hashes, revocations, the generated secret) as JSON Lines to stdout,
    /// whether or not a gateway is running; guard it like the secret
    Export,
    /// Load an export into an empty store of either backend (backup restore, sled →
    /// PostgreSQL); refuses a store that holds anything; nothing is imported on any error
    Import {
        /// The export file (`-`: stdin)
        file: std::path::PathBuf,
    },
}
