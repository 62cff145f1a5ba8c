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

/// Issue 9: a server that accepts the connection and never answers made the tool wait
/// forever. Now the handshake is bounded (`connect_timeout`, 30 s by default) and the
/// failure is a connection failure: exit 4, naming the place and the limit.
#[test]
fn a_server_that_never_answers_is_given_up_on() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, then holds every connection without a word.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let started = std::time::Instant::now();
    let run = run_binary(
        &format!("postgres://nobody@127.0.0.1:{port}/x?connect_timeout=2&sslmode=disable"),
        &["status"],
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("no answer within 2s (connect_timeout)")
            && run.stderr.contains("no host answered"),
        "{}",
        run.stderr
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "gave up only after {:?}",
        started.elapsed()
    );
}
