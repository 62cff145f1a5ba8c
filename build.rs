//! The database tests (every file under tests/ but cli.rs) need the throwaway cluster
//! that `bash scripts/test.sh` starts and names in HYPERSWAP_TEST_URL. Without it they
//! are not compiled, and this says so: `cargo test` then runs the unit tests and the
//! command-line tests only, and reports the database tests as not run (never as passed).
//! Under CI a missing URL is an error, so CI can never skip them.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(db_tests)");
    println!("cargo::rerun-if-env-changed=HYPERSWAP_TEST_URL");
    println!("cargo::rerun-if-env-changed=CI");
    if std::env::var_os("HYPERSWAP_TEST_URL").is_some() {
        println!("cargo::rustc-cfg=db_tests");
    } else if std::env::var_os("CI").is_some() {
        panic!("CI is set but HYPERSWAP_TEST_URL is not: run the tests with `bash scripts/test.sh`, which starts the test cluster");
    } else {
        println!("cargo::warning=database tests skipped (not compiled): HYPERSWAP_TEST_URL is not set; `bash scripts/test.sh` starts the test cluster and runs them all");
    }
}
