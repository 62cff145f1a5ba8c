//! The command line without a database: `--help`, completions, the man page. These run
//! on any machine; the other test files need the test cluster (see build.rs).

mod common;

use common::run_binary;

/// `--help` lists every exit code a script may meet.
#[test]
fn help_lists_the_exit_codes() {
    let run = run_binary("postgres://unused@127.0.0.1:1/x", &["--help"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for code in ["0 ", "1 ", "2 ", "3 ", "4 ", "130 "] {
        assert!(
            run.stdout.contains(&format!("\n  {code}")),
            "exit code {code}missing:\n{}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains("PGPASSWORD"), "{}", run.stdout);
}

/// Completions and the man page come from the command line's own definition.
#[test]
fn completions_and_man_page_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let run = run_binary("postgres://unused@127.0.0.1:1/x", &["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(run.stdout.contains("finalize"), "{shell}: {}", run.stdout);
    }
    let run = run_binary("postgres://unused@127.0.0.1:1/x", &["man"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with(".ie") || run.stdout.contains(".TH hyperswap"),
        "{}",
        &run.stdout[..200.min(run.stdout.len())]
    );
}
