//! Issue 10, acceptance 4: `scripts/package.sh` builds the .deb, and what it installs is
//! a working `hyperswap` with its man page and completions. Run with the database tests
//! (it builds a release binary: CI time, not a bare `cargo test`'s). The package is
//! unpacked with `dpkg -x` into a directory of its own; as root the script also installs
//! it with `dpkg -i`, runs it and removes it again.
#![cfg(db_tests)]

use std::path::Path;
use std::process::Command;

#[test]
fn the_deb_installs_a_working_tool_with_man_page_and_completions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A target directory of its own: the test run holds the usual one.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package");
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/package.sh"))
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root);
    if root_user {
        cmd.arg("--install");
    }
    let out = cmd.output().expect("run scripts/package.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "package.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if root_user {
        assert!(stdout.contains("installed, ran and removed"), "{stdout}");
    }
    let deb = std::fs::read_dir(target.join("debian"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    let unpacked = target.join("unpacked");
    let _ = std::fs::remove_dir_all(&unpacked);
    let status = Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success());
    let bin = unpacked.join("usr/bin/hyperswap");
    let version = Command::new(&bin).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("hyperswap "),
        "{version:?}"
    );
    for f in [
        "usr/share/man/man1/hyperswap.1.gz",
        "usr/share/bash-completion/completions/hyperswap",
        "usr/share/zsh/vendor-completions/_hyperswap",
        "usr/share/fish/vendor_completions.d/hyperswap.fish",
    ] {
        let meta = std::fs::metadata(unpacked.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 100, "{f} is nearly empty");
    }
}
