//! The `gatehouse` binary: exit code and message from `cli::run()`, nothing else.

fn main() {
    std::process::exit(gatehouse::cli::run());
}
