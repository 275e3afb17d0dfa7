//! The real binary's generated help (issue 16): `gatehouse completions SHELL` prints a
//! completion script and `gatehouse man` a roff man page, both built from the clap
//! definitions, so they name the subcommands that really exist. Neither needs a config
//! file.

mod common;

use common::binary::{run, Output};

/// `gatehouse ARGS…` run in an empty directory (no gateway.toml anywhere near).
fn gatehouse(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    run(args, "", |command| {
        command.current_dir(dir.path());
    })
}

#[test]
fn bash_completions_name_the_subcommands_and_are_valid_bash() {
    let output = gatehouse(&["completions", "bash"]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    for word in [
        "check-config",
        "user",
        "unlock",
        "--password-stdin",
        "healthcheck",
    ] {
        assert!(
            output.stdout.contains(word),
            "no `{word}` in:\n{}",
            output.stdout
        );
    }
    // The script must at least parse as bash (when bash is installed, as on CI).
    if let Ok(check) = std::process::Command::new("bash")
        .args(["-n", "-c", &output.stdout])
        .output()
    {
        assert!(
            check.status.success(),
            "bash -n refused the script: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

#[test]
fn zsh_and_fish_completions_are_printed_too() {
    for (shell, marker) in [
        ("zsh", "#compdef gatehouse"),
        ("fish", "complete -c gatehouse"),
    ] {
        let output = gatehouse(&["completions", shell]);
        assert_eq!(output.code, 0, "{shell}: {}", output.stderr);
        assert!(
            output.stdout.contains(marker),
            "{shell}:\n{}",
            output.stdout
        );
        assert!(
            output.stdout.contains("check-config"),
            "{shell}:\n{}",
            output.stdout
        );
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let output = gatehouse(&["completions", "cmd.exe"]);
    assert_eq!(output.code, 2, "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
}

#[test]
fn the_man_page_is_roff_about_gatehouse() {
    let output = gatehouse(&["man"]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    // The page opens with its title line; clap_mangen puts only the two-line `.ie`/`.el`
    // preamble (the portable apostrophe string) before it.
    let title = output
        .stdout
        .lines()
        .find(|line| !line.starts_with(".ie ") && !line.starts_with(".el "))
        .unwrap_or_default();
    assert!(title.starts_with(".TH gatehouse 1"), "{}", output.stdout);
    assert!(output.stdout.contains("gatehouse"), "{}", output.stdout);
    // roff escapes the hyphen: the subcommand list is there.
    assert!(
        output.stdout.contains("check\\-config"),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("GATEHOUSE_CONFIG"),
        "{}",
        output.stdout
    );
}
