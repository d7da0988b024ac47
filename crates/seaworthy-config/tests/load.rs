//! Loading: precedence, `_FILE`, nesting, case, lists, values, secrets,
//! unknown names, explain, the example file, reload.

use std::path::PathBuf;
use std::time::Duration;

use seaworthy_config::{Loader, ProblemKind, Secret, Source};

#[derive(serde::Deserialize, serde::Serialize, Debug, Default)]
#[serde(default)]
struct Db {
    url: Option<Secret<String>>,
    pool_size: u32,
    #[serde(with = "seaworthy_config::duration")]
    connect_timeout: Duration,
}

#[derive(serde::Deserialize, serde::Serialize, Debug)]
struct Settings {
    port: u16,
    #[serde(default)]
    debug: bool,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default, with = "seaworthy_config::bytes")]
    max_body: u64,
    #[serde(default)]
    db: Db,
    #[serde(default)]
    note: Option<String>,
}

/// A scratch directory for files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("seaworthy-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn nesting_case_lists_durations_sizes_bools() {
    let settings: Settings = Loader::new("APP_")
        .from_iter([
            ("app_port", "8080"),
            ("APP_Debug", "on"),
            ("APP_HOSTS", "a.example, b.example ,c"),
            ("APP_MAX_BODY", "10MiB"),
            ("APP_DB__POOL_SIZE", "16"),
            ("APP_DB__CONNECT_TIMEOUT", "250ms"),
            ("OTHER_PORT", "1"),
        ])
        .load()
        .unwrap();
    assert_eq!(settings.port, 8080);
    assert!(settings.debug);
    assert_eq!(settings.hosts, ["a.example", "b.example", "c"]);
    assert_eq!(settings.max_body, 10 << 20);
    assert_eq!(settings.db.pool_size, 16);
    assert_eq!(settings.db.connect_timeout, Duration::from_millis(250));
    assert!(settings.db.url.is_none());
}

#[test]
fn empty_values_are_empty_lists_and_no_option() {
    let settings: Settings = Loader::new("APP_")
        .from_iter([("APP_PORT", "1"), ("APP_HOSTS", ""), ("APP_NOTE", "")])
        .load()
        .unwrap();
    assert!(settings.hosts.is_empty());
    assert!(settings.note.is_none());
}

#[test]
fn every_problem_at_once_by_variable_and_source() {
    let err = Loader::new("APP_")
        .from_iter([
            ("APP_DEBUG", "maybe"),
            ("APP_DB__POOL_SIZE", "-1"),
            ("APP_DB__CONNECT_TIMEOUT", "soon"),
            ("APP_MAX_BODY", "lots"),
        ])
        .load::<Settings>()
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.problems().len(), 5, "{text}");
    for line in [
        "invalid configuration: 5 problems",
        "APP_DB__CONNECT_TIMEOUT (environment): invalid, expected a duration like 30s, 250ms or 5m",
        "APP_DB__POOL_SIZE (environment): invalid, expected an integer from 0 to 4294967295",
        "APP_DEBUG (environment): invalid, expected a boolean (true, false, 1, 0, yes, no, on, off)",
        "APP_MAX_BODY (environment): invalid, expected a size like 10MiB, 512KB or 4096",
        "APP_PORT: missing, and required",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
}

#[test]
fn unknown_variables_in_the_prefix_get_a_did_you_mean() {
    let err = Loader::new("APP_")
        .from_iter([
            ("APP_PORT", "1"),
            ("APP_DB__POOLSIZE", "4"),
            ("APP_ZZZZZZ", "x"),
        ])
        .load::<Settings>()
        .unwrap_err();
    let problems = err.problems();
    assert_eq!(problems.len(), 2, "{err}");
    assert_eq!(problems[0].variable(), "APP_DB__POOLSIZE");
    assert_eq!(
        problems[0].kind(),
        &ProblemKind::Unknown {
            did_you_mean: Some("APP_DB__POOL_SIZE".to_owned())
        }
    );
    assert_eq!(
        problems[1].kind(),
        &ProblemKind::Unknown { did_you_mean: None }
    );
}

#[test]
fn precedence_is_environment_then_env_files_then_defaults() {
    let scratch = Scratch::new("precedence");
    let first = scratch.file(
        ".env",
        "APP_PORT=1\nAPP_DB__POOL_SIZE=2\n# c\nAPP_DEBUG=true\n",
    );
    let second = scratch.file(".env.local", "APP_DB__POOL_SIZE=3\n");
    let loader = Loader::new("APP_")
        .env_file(&first)
        .env_file(&second)
        .env_file(scratch.0.join("missing.env"))
        .from_iter([("APP_PORT", "9")]);
    let settings: Settings = loader.load().unwrap();
    assert_eq!(settings.port, 9); // environment
    assert_eq!(settings.db.pool_size, 3); // the later file
    assert!(settings.debug); // the first file
    assert_eq!(settings.max_body, 0); // default

    let explained: Vec<_> = loader
        .explain(&settings)
        .entries()
        .map(|(name, value, source)| (name.to_owned(), value.map(str::to_owned), source.clone()))
        .collect();
    let find = |name: &str| {
        explained
            .iter()
            .find(|entry| entry.0 == name)
            .unwrap()
            .clone()
    };
    assert_eq!(find("APP_PORT").2, Source::Environment);
    assert_eq!(
        find("APP_DEBUG").2,
        Source::DotEnv {
            path: first,
            line: 4
        }
    );
    assert_eq!(
        find("APP_DB__POOL_SIZE").2,
        Source::DotEnv {
            path: second,
            line: 1
        }
    );
    assert_eq!(
        find("APP_MAX_BODY"),
        (
            "APP_MAX_BODY".to_owned(),
            Some("0".to_owned()),
            Source::Default
        )
    );
    assert_eq!(find("APP_NOTE").1, None);
    // The process environment was never written.
    assert!(std::env::var("APP_DB__POOL_SIZE").is_err());
}

#[test]
fn errors_in_env_files_name_their_line() {
    let scratch = Scratch::new("lines");
    let file = scratch.file(".env", "APP_PORT=1\n\nAPP_DEBUG=perhaps\n");
    let err = Loader::new("APP_")
        .env_file(&file)
        .from_iter(Vec::<(String, String)>::new())
        .load::<Settings>()
        .unwrap_err();
    assert_eq!(
        err.problems()[0].to_string(),
        format!(
            "APP_DEBUG ({} line 3): invalid, expected a boolean (true, false, 1, 0, yes, no, on, off)",
            file.display()
        )
    );
}

#[test]
fn name_file_reads_secrets_from_files() {
    let scratch = Scratch::new("file");
    let secret = scratch.file("db_url", "postgres://app:pw@db/app\n");
    let settings: Settings = Loader::new("APP_")
        .from_iter([
            ("APP_PORT", "1".to_owned()),
            ("APP_DB__URL_FILE", secret.display().to_string()),
        ])
        .load()
        .unwrap();
    // One trailing newline trimmed.
    assert_eq!(
        settings.db.url.unwrap().expose(),
        "postgres://app:pw@db/app"
    );

    let err = Loader::new("APP_")
        .from_iter([
            ("APP_PORT", "1".to_owned()),
            ("APP_DB__URL", "x".to_owned()),
            ("APP_DB__URL_FILE", secret.display().to_string()),
        ])
        .load::<Settings>()
        .unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    assert!(
        err.to_string()
            .contains("both APP_DB__URL and APP_DB__URL_FILE are set"),
        "{err}"
    );

    let err = Loader::new("APP_")
        .from_iter([
            ("APP_PORT", "1"),
            ("APP_DB__URL_FILE", "/nonexistent/secret"),
        ])
        .load::<Settings>()
        .unwrap_err();
    assert!(
        matches!(err.problems()[0].kind(), ProblemKind::Unreadable(_)),
        "{err}"
    );
}

#[test]
fn a_secret_file_that_is_a_device_or_too_large_is_refused_without_reading_it() {
    let scratch = Scratch::new("file-cap");
    let large = scratch.file("large", &"x".repeat(65 * 1024));
    let started = std::time::Instant::now();
    for (path, says) in [
        ("/dev/zero".to_owned(), "not a regular file"),
        (scratch.0.display().to_string(), "not a regular file"),
        (large.display().to_string(), "larger than 64 KiB"),
    ] {
        let err = Loader::new("APP_")
            .from_iter([
                ("APP_PORT", "1".to_owned()),
                ("APP_DB__URL_FILE", path.clone()),
            ])
            .load::<Settings>()
            .unwrap_err();
        assert_eq!(err.problems().len(), 1, "{err}");
        assert!(
            matches!(err.problems()[0].kind(), ProblemKind::Unreadable(_)),
            "{err}"
        );
        assert!(err.to_string().contains(says), "{path}: {err}");
        assert!(err.to_string().contains("APP_DB__URL_FILE"), "{err}");
    }
    // /dev/zero was never read: it is refused by its type, at once.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Exactly at the cap is fine.
    let full = scratch.file("full", &"y".repeat(64 * 1024));
    let settings: Settings = Loader::new("APP_")
        .from_iter([
            ("APP_PORT", "1".to_owned()),
            ("APP_DB__URL_FILE", full.display().to_string()),
        ])
        .load()
        .unwrap();
    assert_eq!(settings.db.url.unwrap().expose().len(), 64 * 1024);
}

#[test]
fn a_canary_secret_appears_nowhere() {
    const CANARY: &str = "CANARY-7f3a9c";
    let loader = Loader::new("APP_").from_iter([
        ("APP_PORT", "1".to_owned()),
        ("APP_DB__URL", format!("postgres://app:{CANARY}@db/app")),
    ]);
    let settings: Settings = loader.load().unwrap();
    assert_eq!(
        settings.db.url.as_ref().unwrap().expose(),
        &format!("postgres://app:{CANARY}@db/app")
    );
    let serialized = serde_json::to_string(&settings).unwrap();
    let explained = loader.explain(&settings).to_string();
    for shown in [format!("{settings:?}"), serialized, explained] {
        assert!(!shown.contains(CANARY), "{shown}");
    }
    // A secret in a field that fails to parse, next to other errors.
    let err = Loader::new("APP_")
        .from_iter([
            ("APP_PORT", CANARY.to_owned()),
            ("APP_DB__POOL_SIZE", CANARY.to_owned()),
            ("APP_DB__CONNECT_TIMEOUT", CANARY.to_owned()),
            ("APP_DB__URL", CANARY.to_owned()),
        ])
        .load::<Settings>()
        .unwrap_err();
    assert_eq!(err.problems().len(), 3, "{err}");
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(CANARY), "{shown}");
    }
}

#[test]
fn the_example_file_lists_every_variable_with_its_default() {
    #[derive(serde::Serialize, Default)]
    struct Example {
        port: u16,
        db: Db,
        token: Secret<String>,
    }
    let example = Loader::new("APP_").env_example::<Example>();
    assert_eq!(
        example,
        "# Every variable, with its default.\nAPP_DB__CONNECT_TIMEOUT=0s\nAPP_DB__POOL_SIZE=0\n# APP_DB__URL=\nAPP_PORT=0\nAPP_TOKEN=\n"
    );
}

#[test]
fn a_reload_that_fails_keeps_the_old_settings() {
    let scratch = Scratch::new("reload");
    let file = scratch.file(".env", "APP_PORT=1\n");
    let loader = Loader::new("APP_")
        .env_file(&file)
        .from_iter(Vec::<(String, String)>::new());
    let settings = loader.reloadable::<Settings>().unwrap();
    assert_eq!(settings.load().port, 1);

    scratch.file(".env", "APP_PORT=2\n");
    settings.reload().unwrap();
    assert_eq!(settings.load().port, 2);

    scratch.file(".env", "APP_PORT=two\nAPP_DEBUG=perhaps\n");
    let err = settings.reload().unwrap_err();
    assert_eq!(err.problems().len(), 2, "{err}");
    assert_eq!(settings.load().port, 2);
}

#[test]
fn from_map_never_reads_the_process_environment() {
    let mut map = std::collections::HashMap::new();
    map.insert("APP_PORT".to_owned(), "7".to_owned());
    let settings: Settings = Loader::new("APP_").from_map(&map).load().unwrap();
    assert_eq!(settings.port, 7);
    // PATH exists in the real environment; with no prefix, nothing of it is read.
    #[derive(serde::Deserialize)]
    struct Path {
        path: Option<String>,
    }
    let path: Path = Loader::new("").from_map(&map).load().unwrap();
    assert!(path.path.is_none());
}

#[test]
fn messages_say_what_was_expected_and_a_value_inside_one_is_not_redacted() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Net {
        host: std::net::IpAddr,
        #[serde(with = "seaworthy_config::from_str")]
        port_range: Range,
    }
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Range;
    impl std::str::FromStr for Range {
        type Err = &'static str;
        fn from_str(_: &str) -> Result<Self, Self::Err> {
            Err("a range like 10/s, 100/min or 5000/h")
        }
    }
    let err = Loader::new("APP_")
        .from_iter([("APP_HOST", "nonsense"), ("APP_PORT_RANGE", "0/s")])
        .load::<Net>()
        .unwrap_err();
    let text = err.to_string();
    // std's "invalid IP address syntax" is what went wrong, not what was
    // expected.
    assert!(
        text.contains(
            "APP_HOST (environment): invalid, expected an IP address (invalid IP address syntax)"
        ),
        "{text}"
    );
    // The value "0/s" stands inside "10/s": the expectation stays whole.
    assert!(
        text.contains("expected a range like 10/s, 100/min or 5000/h"),
        "{text}"
    );
    assert!(!text.contains("[redacted]"), "{text}");
}

#[test]
fn a_missing_nested_struct_is_named_by_its_fields_only() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        url: String,
        pool: u16,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Outer {
        port: u16,
        db: Inner,
    }
    let err = Loader::new("APP_")
        .from_iter([("APP_PORT", "1")])
        .load::<Outer>()
        .unwrap_err();
    let named: Vec<&str> = err
        .problems()
        .iter()
        .map(|problem| problem.variable())
        .collect();
    // Nobody can set APP_DB: its fields are the variables.
    assert_eq!(named, ["APP_DB__POOL", "APP_DB__URL"], "{err}");
}
