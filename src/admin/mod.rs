//! `gatehouse user …`: user administration, applied directly to the store when no gateway
//! is serving it, or through the running gateway's admin socket when one is.

use crate::cli::UserCommand;
use crate::config::Config;

/// Runs a `user` subcommand.
pub fn run(_config: &Config, _command: UserCommand) -> Result<(), String> {
    Err("user commands are not available in this build yet (accounts store pending)".into())
}
