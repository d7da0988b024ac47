//! Two settings types from one environment (`load_both`): a library's and
//! a program's, one error for both, and `--print-config` over both.

use std::time::Duration;

use seaworthy_config::{Loader, Secret};

#[derive(serde::Deserialize, serde::Serialize, Debug)]
#[serde(default)]
struct Library {
    port: u16,
    #[serde(with = "seaworthy_config::duration")]
    shutdown_timeout: Duration,
    hosts: Vec<String>,
}

impl Default for Library {
    fn default() -> Self {
        Library {
            port: 8000,
            shutdown_timeout: Duration::from_secs(30),
            hosts: Vec::new(),
        }
    }
}

#[derive(serde::Deserialize, serde::Serialize, Debug, Default)]
struct Program {
    database_url: Secret<String>,
    #[serde(default)]
    workers: u8,
}

#[test]
fn both_types_read_the_same_variables_without_a_prefix() {
    let loader = Loader::new("").from_iter([
        ("PORT", "9000"),
        ("HOSTS", "a, b"),
        ("DATABASE_URL", "postgres://u:CANARY@db/app"),
        ("WORKERS", "4"),
        ("PATH", "/usr/bin"),
    ]);
    let (library, program): (Library, Program) = loader.load_both().unwrap();
    assert_eq!(library.port, 9000);
    assert_eq!(library.hosts, ["a", "b"]);
    assert_eq!(library.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(program.workers, 4);
    assert!(program.database_url.expose().contains("CANARY"));

    let explained = loader.explain(&(library, program)).to_string();
    for line in [
        "PORT=9000  # environment",
        "SHUTDOWN_TIMEOUT=30s  # default",
        "DATABASE_URL=[redacted]  # environment",
        "WORKERS=4  # environment",
    ] {
        assert!(explained.contains(line), "{line:?} not in:\n{explained}");
    }
    assert!(!explained.contains("CANARY"), "{explained}");
    assert!(!explained.contains("PATH"), "{explained}");
}

#[test]
fn every_problem_of_both_at_once_and_unknown_against_both() {
    let err = Loader::new("APP_")
        .from_iter([
            ("APP_PORT", "eighty"),
            ("APP_SHUTDOWN_TIMEOUT", "soon"),
            ("APP_WORKERS", "-1"),
            ("APP_DATABASE_URL", "x"),
            ("APP_WORKER", "2"),
        ])
        .load_both::<Library, Program>()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid configuration: 4 problems"),
        "{err}"
    );
    for line in [
        "APP_PORT (environment): invalid",
        "APP_SHUTDOWN_TIMEOUT (environment): invalid",
        "APP_WORKERS (environment): invalid",
        "APP_WORKER (environment): unknown variable; did you mean APP_WORKERS?",
    ] {
        assert!(err.contains(line), "{line:?} not in:\n{err}");
    }
    // A secret's value never shows, even beside bad ones.
    assert!(!err.contains("eighty") && !err.contains("soon"), "{err}");
}
