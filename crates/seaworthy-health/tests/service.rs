//! The health service over real HTTP: a thousand concurrent probes, no
//! secret in any body, the IETF shape (checked against a JSON Schema by a
//! real validator), the self-probe.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use seaworthy_health::{
    Authorizer, Check, CheckResult, HealthRegistry, HealthService, Kind, Probe,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn serve(service: HealthService) -> SocketAddr {
    let app = Router::new()
        .route_service("/health", service.clone())
        .route_service("/health/ready", service.clone())
        .route_service("/health/startup", service.clone())
        .route_service("/other", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One request on a fresh connection; returns the status code, the head and
/// the body.
async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_probes_run_each_check_once_per_ttl() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let registry = HealthRegistry::builder()
        .check(
            Check::new("db", move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, std::io::Error>(CheckResult::pass())
                }
            })
            .cached(Duration::from_secs(60)),
        )
        .build()
        .unwrap();
    let addr = serve(HealthService::new(registry)).await;
    let probes: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(async move { get(addr, "/health/ready", None).await.0 }))
        .collect();
    for probe in probes {
        assert_eq!(probe.await.unwrap(), 200);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn no_secret_reaches_a_public_body_and_error_text_reaches_none() {
    let registry = HealthRegistry::builder()
        .check(Check::new("db", || async {
            Err::<CheckResult, _>(std::io::Error::other(
                "connect postgres://app:CANARY-ERROR@db.internal:5432 refused",
            ))
        }))
        .check(
            Check::new("queue", || async {
                Ok::<_, std::io::Error>(
                    CheckResult::warn().with_output("lag on CANARY-MESSAGE host"),
                )
            })
            .critical(false),
        )
        .build()
        .unwrap();
    let service = HealthService::new(registry).authorizer(Authorizer::bearer("s3cret"));
    let addr = serve(service).await;

    let (status, head, public) = get(addr, "/health/ready", None).await;
    assert_eq!(status, 503);
    assert!(
        head.contains("content-type: application/health+json"),
        "{head}"
    );
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert_eq!(
        public,
        r#"{"checks":{"db":[{"status":"fail"}],"queue":[{"status":"warn"}]},"status":"fail"}"#
    );

    for token in [None, Some("wrong"), Some("s3cret")] {
        let (_, _, body) = get(addr, "/health/ready", token).await;
        assert!(!body.contains("CANARY-ERROR"), "{body}");
        assert!(!body.contains("db.internal"), "{body}");
        assert_eq!(
            body.contains("CANARY-MESSAGE"),
            token == Some("s3cret"),
            "{token:?}: {body}"
        );
    }
}

#[tokio::test]
async fn bodies_match_the_ietf_draft_schema() {
    let registry = HealthRegistry::builder()
        .check(
            Check::new("disk", || async {
                Ok::<_, std::io::Error>(
                    CheckResult::pass()
                        .with_observed(42.5, "percent")
                        .with_output("ok"),
                )
            })
            .kind(Kind::Process)
            .probes([Probe::Liveness, Probe::Readiness])
            .measurement("utilization")
            .component_type("system"),
        )
        .check(Check::new("db", || async {
            Err::<CheckResult, _>(std::io::Error::other("down"))
        }))
        .build()
        .unwrap();
    registry.set_maintenance("reindex", Duration::from_secs(60));
    let addr = serve(HealthService::new(registry).authorizer(Authorizer::bearer("t"))).await;
    let mut bodies = Vec::new();
    for path in ["/health", "/health/ready", "/health/startup"] {
        for token in [None, Some("t")] {
            bodies.push(get(addr, path, token).await.2);
        }
    }
    let detailed = &bodies[3];
    assert!(
        detailed.contains(r#""output":"maintenance: reindex""#),
        "{detailed}"
    );
    for part in [
        r#""disk:utilization":[{"componentType":"system""#,
        r#""observedUnit":"percent","observedValue":42.5,"output":"ok","status":"pass","time":"20"#,
    ] {
        assert!(bodies[1].contains(part), "{part} not in {}", bodies[1]);
    }
    assert_eq!(
        bodies[0],
        r#"{"checks":{"disk:utilization":[{"status":"pass"}]},"status":"pass"}"#
    );
    validate(&bodies);
}

/// Validates each body against docs/health-response.schema.json with the
/// `jsonschema` Python package (Debian's python3-jsonschema; .ci/run
/// installs it).
fn validate(bodies: &[String]) {
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/health-response.schema.json"
    );
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
failed = 0
for line in sys.stdin:
    for error in validator.iter_errors(json.loads(line)):
        print("invalid:", error.message, "in", line.strip())
        failed += 1
# A body the schema must refuse, so that a validator that accepts anything fails here.
if not list(validator.iter_errors({"status": "ok"})):
    print("the validator accepted an invalid status")
    failed += 1
sys.exit(1 if failed else 0)
"#;
    let mut child = std::process::Command::new(python)
        .args(["-c", script, schema])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    for body in bodies {
        writeln!(stdin, "{body}").unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "schema validation failed (is python3-jsonschema installed?):\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_are_not_found_and_the_self_probe_reads_status_codes() {
    let registry = HealthRegistry::builder()
        .check(Check::new("db", || async {
            Err::<CheckResult, _>(std::io::Error::other("down"))
        }))
        .build()
        .unwrap();
    let addr = serve(HealthService::new(registry)).await;
    assert_eq!(get(addr, "/other", None).await.0, 404);
    let (live, ready) = tokio::task::spawn_blocking(move || {
        (
            seaworthy_health::probe(&format!("http://{addr}/health")),
            seaworthy_health::probe(&format!("http://{addr}/health/ready")),
        )
    })
    .await
    .unwrap();
    assert_eq!((live, ready), (0, 1));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert_eq!(
        seaworthy_health::probe(&format!("http://{closed}/health")),
        1
    );
    assert_eq!(seaworthy_health::probe("https://example.invalid/"), 1);
}

#[cfg(feature = "http-check")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_checks_connect_and_get_for_real() {
    use seaworthy_health::{Status, checks};
    let target = serve(HealthService::new(
        HealthRegistry::builder().build().unwrap(),
    ))
    .await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let registry = HealthRegistry::builder()
        .check(checks::tcp("up", target.to_string()))
        .check(checks::tcp("down", closed.to_string()))
        .check(checks::http_get(
            "live",
            format!("http://{target}/health").parse().unwrap(),
            http::StatusCode::OK,
        ))
        .check(checks::http_get(
            "missing",
            format!("http://{target}/nope").parse().unwrap(),
            http::StatusCode::OK,
        ))
        .build()
        .unwrap();
    let report = registry.check(Probe::Readiness).await;
    let status = |key: &str| report.get(key).unwrap().status();
    assert_eq!(status("up:responseTime"), Status::Pass);
    assert_eq!(status("down:responseTime"), Status::Fail);
    assert_eq!(status("live:responseTime"), Status::Pass);
    assert_eq!(status("missing:responseTime"), Status::Fail);
    let missing = report.get("missing:responseTime").unwrap().result();
    assert_eq!(missing.output(), Some("status 404"));
    assert_eq!(missing.observed().unwrap().unit, "ms");
    assert_eq!(report.status(), Status::Fail);
}
