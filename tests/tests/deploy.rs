//! The deployment files in deploy/, checked for real where this machine
//! can: systemd's own analyzer on the units, nginx's own check and a real
//! nginx in front of the flagship, and the Kubernetes manifest against the
//! flagship's contract (there is no cluster here to apply it to).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use seaworthy_tests::certs::{Ca, Validity};
use seaworthy_tests::{Child, GENEROUS, Signal, TempDir, example_path, free_port};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// The units as installed, the binary pointed at the built flagship.
fn units(dir: &TempDir) -> (PathBuf, PathBuf) {
    let service = dir.0.join("app.service");
    let socket = dir.0.join("app.socket");
    let flagship = example_path("production");
    std::fs::write(
        &service,
        read("systemd/app.service").replace("/usr/local/bin/app", flagship.to_str().unwrap()),
    )
    .unwrap();
    std::fs::write(&socket, read("systemd/app.socket")).unwrap();
    (service, socket)
}

#[test]
fn the_systemd_units_verify_and_the_service_is_hardened_to_ok() {
    let dir = TempDir::new("deploy-systemd");
    let (service, socket) = units(&dir);
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .args([&socket, &service])
        .current_dir(&dir.0)
        .output()
        .expect("systemd-analyze runs (Debian package systemd; .ci/run installs it)");
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{said}");
    assert!(
        !said.contains("app.service"),
        "warnings about the unit: {said}"
    );

    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&service)
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let line = report
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    let exposure: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"));
    assert!(exposure <= 2.0, "{line}");
    assert!(line.contains("OK"), "{line}");

    // What the unit promises the app: notify, reload = upgrade, a stop
    // timeout above the shutdown budget, no restart loop on a bad config.
    let unit = read("systemd/app.service");
    for needed in [
        "Type=notify",
        "NotifyAccess=all",
        "ExecReload=/bin/kill -USR2 $MAINPID",
        "KillMode=mixed",
        "RestartPreventExitStatus=78",
    ] {
        assert!(unit.contains(needed), "{needed} missing");
    }
    let seconds = |prefix: &str| -> u64 {
        unit.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .and_then(|value| value.trim_end_matches('s').parse().ok())
            .unwrap_or_else(|| panic!("no {prefix}"))
    };
    assert!(seconds("TimeoutStopSec=") > seconds("Environment=SHUTDOWN_TIMEOUT="));
    assert!(read("systemd/app.socket").contains("FileDescriptorName=http"));
}

/// The nginx site with this test's ports, certificate, upstream and logs.
fn nginx_site(dir: &Path, upstream: &str, https: u16, http: u16) -> String {
    let ca = Ca::new("deploy test CA");
    let (cert, key) = ca
        .server(&["localhost", "127.0.0.1"], Validity::Current)
        .write(&ca, dir, "site");
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    read("nginx/app.conf")
        .replace("127.0.0.1:8000", upstream)
        .replace(
            "listen 443 ssl http2;",
            &format!("listen 127.0.0.1:{https} ssl http2;"),
        )
        .replace("listen [::]:443 ssl http2;", "")
        .replace("listen 80;", &format!("listen 127.0.0.1:{http};"))
        .replace("listen [::]:80;", "")
        .replace("/etc/ssl/app/fullchain.pem", cert.to_str().unwrap())
        .replace("/etc/ssl/app/privkey.pem", key.to_str().unwrap())
        .replace(
            "/var/log/nginx/app.access.log",
            dir.join("access.log").to_str().unwrap(),
        )
}

fn nginx_conf(dir: &Path, site: &str) -> PathBuf {
    std::fs::write(dir.join("app.conf"), site).unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nuser root;\npid {dir}/nginx.pid;\n\
             error_log stderr warn;\nevents {{}}\nhttp {{\n  access_log off;\n  \
             client_body_temp_path {dir};\n  proxy_temp_path {dir};\n  include {dir}/app.conf;\n}}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    conf
}

fn curl(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-", "--cacert"])
        .arg(dir.join("ca.pem"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn header_count(response: &str, name: &str) -> usize {
    response
        .lines()
        .filter(|line| {
            line.split_once(':')
                .is_some_and(|(key, _)| key.trim().eq_ignore_ascii_case(name))
        })
        .count()
}

#[test]
fn nginx_in_front_passes_the_client_and_https_and_doubles_no_header() {
    let dir = TempDir::new("deploy-nginx");
    let (mut app, addr) = Child::production(&[
        ("SHUTDOWN_DRAIN_DELAY", "0s"),
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
    ]);
    let (https, http) = (free_port(), free_port());
    let conf = nginx_conf(&dir.0, &nginx_site(&dir.0, &addr.to_string(), https, http));
    let test = Command::new("nginx")
        .args(["-t", "-c"])
        .arg(&conf)
        .output()
        .expect("nginx runs (Debian package nginx; .ci/run installs it)");
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );

    let mut command = Command::new("nginx");
    command.arg("-c").arg(&conf);
    let mut nginx = Child::spawn(command);
    // Until nginx answers.
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", https)).is_err() {
        assert!(started.elapsed() < GENEROUS, "nginx never listened");
        std::thread::sleep(Duration::from_millis(20));
    }

    let base = format!("https://localhost:{https}");
    let response = curl(
        &dir.0,
        &[
            "--resolve",
            &format!("localhost:{https}:127.0.0.1"),
            &format!("{base}/"),
        ],
    );
    assert!(response.contains("hello from seaworthy"), "{response}");
    for name in [
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "strict-transport-security",
        "x-request-id",
    ] {
        assert_eq!(header_count(&response, name), 1, "{name}:\n{response}");
    }
    // nginx names itself, without its version (server_tokens off); the
    // app's own is never there to be doubled.
    assert_eq!(header_count(&response, "server"), 1, "{response}");
    assert!(response.contains("server: nginx\r\n"), "{response}");
    // nginx's request id reached the app (trusted) and came back.
    let id = response
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .unwrap()
        .trim()
        .to_owned();
    let logged = app.wait_for_line(&format!("request_id=\"{id}\""), GENEROUS);
    assert!(logged.contains("client=127.0.0.1"), "{logged}");
    // The probes answer through nginx and are not in its log.
    let probe = curl(
        &dir.0,
        &[
            "--resolve",
            &format!("localhost:{https}:127.0.0.1"),
            &format!("{base}/health/ready"),
        ],
    );
    assert!(probe.starts_with("HTTP/2 200"), "{probe}");
    // Plain HTTP: a 308 to https.
    let plain = curl(&dir.0, &[&format!("http://127.0.0.1:{http}/echo?x=1")]);
    assert!(plain.starts_with("HTTP/1.1 308"), "{plain}");
    assert!(plain.contains("/echo?x=1"), "{plain}");

    nginx.signal(Signal::SIGQUIT);
    nginx.wait_exit(GENEROUS);
    let log = std::fs::read_to_string(dir.0.join("access.log")).unwrap();
    assert!(log.contains(&format!("id={id}")), "{log}");
    assert!(log.contains("\"GET / HTTP/2.0\" 200"), "{log}");
    assert!(!log.contains("/health"), "{log}");
    app.signal(Signal::SIGTERM);
    let (status, _) = app.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "{}", app.output());
}

/// deploy/kubernetes.yaml as JSON documents (python3's yaml).
fn kubernetes() -> Vec<serde_json::Value> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(deploy("kubernetes.yaml"))
        .output()
        .expect("python3 runs (with python3-yaml; .ci/run installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn seconds(text: &str) -> u64 {
    text.trim_end_matches('s').parse().unwrap()
}

#[test]
fn the_kubernetes_probes_and_grace_period_match_the_flagships_contract() {
    let documents = kubernetes();
    let kinds: Vec<&str> = documents
        .iter()
        .filter_map(|doc| doc["kind"].as_str())
        .collect();
    for kind in ["Deployment", "PodDisruptionBudget", "Service", "Secret"] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    let deployment = documents
        .iter()
        .find(|doc| doc["kind"] == "Deployment")
        .unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env = |name: &str| -> String {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|var| var["name"] == name)
            .and_then(|var| var["value"].as_str())
            .unwrap_or_else(|| panic!("{name} not set"))
            .to_owned()
    };
    // The port the probes name is the port the app listens on.
    let port: u64 = env("PORT").parse().unwrap();
    assert_eq!(container["ports"][0]["containerPort"], port);
    assert_eq!(container["ports"][0]["name"], "http");

    // Each probe on the flagship's route for it, and that route answers so.
    let (mut app, addr) = Child::production(&[("SHUTDOWN_DRAIN_DELAY", "0s")]);
    for (probe, path) in [
        ("livenessProbe", "/health"),
        ("readinessProbe", "/health/ready"),
        ("startupProbe", "/health/startup"),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(get["port"], "http", "{probe}");
        let mut conn = seaworthy_tests::http1::Conn::connect(addr).unwrap();
        assert_eq!(conn.get(path).unwrap().status, 200, "{path}");
    }
    app.signal(Signal::SIGTERM);
    app.wait_exit(GENEROUS);

    // The grace period covers the whole budget; no preStop is needed.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > seconds(&env("SHUTDOWN_TIMEOUT")), "{grace}");
    assert!(container["lifecycle"]["preStop"].is_null());
    // Secrets as files, read through a _FILE variable.
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert!(env("REDIS_URL_FILE").starts_with(mount));
    assert!(container["resources"]["requests"].is_object());
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
}
