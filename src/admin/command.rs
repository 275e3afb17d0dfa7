//! The admin command types (SPEC §1 `gatehouse user …`): owned here, so the command line
//! depends on admin and not the reverse. clap derives their parsing; [`super::run`]
//! turns them into protocol requests.

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
