//! What a red-team pass found, as an attacker and as an operator with a bad
//! day, each against the flagship: every test here failed before its fix.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;

use seaworthy_tests::{Child, GENEROUS};

/// A private directory for one test, removed at its end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("seaworthy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn an_upgrade_socket_path_that_is_not_our_socket_is_refused_and_left_untouched() {
    let dir = TempDir::new("upgrade-socket-path");
    let file = dir.0.join("precious.conf");
    std::fs::write(&file, "do not delete\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.0.join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let missing_dir = dir.0.join("no-such-dir").join("handoff.sock");

    for (path, says) in [
        (&file, "a file that is not a socket"),
        (&link, "a symbolic link"),
        (&dir.0, "a directory"),
        (&missing_dir, "a directory that does not exist"),
    ] {
        let path = path.to_str().unwrap();
        let mut child = Child::example("production", &[("PORT", "0"), ("UPGRADE_SOCKET", path)]);
        let (status, _) = child.wait_exit(GENEROUS);
        let output = child.output();
        assert_eq!(status.code(), Some(78), "{path}: {output}");
        assert!(output.contains("UPGRADE_SOCKET"), "{output}");
        assert!(output.contains(says), "{path}: {output}");
        assert_eq!(child.count("listening on"), 0, "{output}");
    }
    // Nothing was unlinked, replaced or changed.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "do not delete\n");
    let meta = std::fs::symlink_metadata(&file).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(dir.0.is_dir());

    // The socket it creates itself is removed at exit, and nothing else.
    let socket = dir.0.join("handoff.sock");
    let (mut child, _) = Child::production(&[
        ("UPGRADE_SOCKET", socket.to_str().unwrap()),
        ("SHUTDOWN_DRAIN_DELAY", "0s"),
    ]);
    child.wait_for_line("serving hand-overs", GENEROUS);
    assert!(
        std::fs::symlink_metadata(&socket)
            .unwrap()
            .file_type()
            .is_socket()
    );
    child.signal(nix::sys::signal::Signal::SIGTERM);
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "{}", child.output());
    assert!(!socket.exists(), "its own socket is removed at exit");
    assert!(file.exists() && link.exists());
}

#[test]
fn values_that_parse_but_are_traps_stop_the_start_all_named_at_once() {
    let mut child = Child::example(
        "production",
        &[
            ("PORT", "0"),
            ("HEADER_READ_TIMEOUT", "0s"),
            ("REQUEST_TIMEOUT", "0s"),
            ("MAX_CONNECTIONS", "0"),
        ],
    );
    let (status, _) = child.wait_exit(GENEROUS);
    let output = child.output();
    assert_eq!(status.code(), Some(78), "{output}");
    assert!(
        output.contains("invalid configuration: 3 problems"),
        "{output}"
    );
    for variable in ["HEADER_READ_TIMEOUT", "REQUEST_TIMEOUT", "MAX_CONNECTIONS"] {
        assert!(
            output.contains(&format!("  {variable}: ")),
            "{variable}: {output}"
        );
    }

    // Past tokio's semaphore it once panicked the serve loop while the port
    // stayed open: now a configuration error.
    let mut child = Child::example(
        "production",
        &[("PORT", "0"), ("MAX_CONNECTIONS", "2305843009213693952")],
    );
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(78), "{}", child.output());
    assert!(
        child.output().contains("MAX_CONNECTIONS: between 1 and"),
        "{}",
        child.output()
    );
}

#[test]
fn trusting_the_whole_internet_is_warned_about_loudly() {
    let (mut child, _) = Child::production(&[("TRUSTED_PROXIES", "10.0.0.0/8,0.0.0.0/0")]);
    let warning = child.wait_for_line("TRUSTED_PROXIES contains a /0 block", GENEROUS);
    assert!(warning.contains("WARN"), "{warning}");
}
