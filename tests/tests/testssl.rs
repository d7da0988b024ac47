//! testssl.sh (Debian's `testssl.sh`, installed by `.ci/run`) against the
//! HTTPS flagship: every finding OK, INFO or LOW; what SSL Labs' A+ asks
//! (TLS 1.2 and 1.3 only, forward secrecy and AEAD only, HSTS of at least
//! six months) checked finding by finding, since Debian's testssl 3.0.8
//! prints no grade.

use std::process::{Command, Stdio};

use seaworthy_tests::certs::{Ca, Validity};
use seaworthy_tests::{Child, GENEROUS, Signal, TempDir};

/// The findings of testssl's flat JSON: (id, severity, finding).
fn findings(json: &str) -> Vec<(String, String, String)> {
    // Each finding is one object of string fields; a field's value holds
    // no unescaped quote.
    let field = |object: &str, name: &str| {
        let key = format!("\"{name}\"");
        let start = object.find(&key)? + key.len();
        let rest = object[start..].trim_start().strip_prefix(':')?.trim_start();
        let rest = rest.strip_prefix('"')?;
        let mut value = String::new();
        let mut escaped = false;
        for c in rest.chars() {
            match (escaped, c) {
                (true, c) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => return Some(value),
                (false, c) => value.push(c),
            }
        }
        None
    };
    json.split('{')
        .filter_map(|object| {
            Some((
                field(object, "id")?,
                field(object, "severity")?,
                field(object, "finding")?,
            ))
        })
        .collect()
}

#[test]
fn testssl_finds_nothing_of_medium_severity_or_worse() {
    let dir = TempDir::new("testssl");
    let ca = Ca::new("seaworthy test CA");
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let (cert, key) = ca
        .server(&["localhost", "127.0.0.1"], Validity::Current)
        .write(&ca, &dir.0, "tls");
    let (mut child, addr) = Child::production(&[
        ("TLS_CERT", cert.to_str().unwrap()),
        ("TLS_KEY", key.to_str().unwrap()),
        ("SHUTDOWN_DRAIN_DELAY", "0s"),
        ("RUST_LOG", "warn"),
    ]);
    let json = dir.0.join("testssl.json");
    let output = Command::new("testssl")
        .args(["--quiet", "--color", "0", "--warnings", "off", "--add-ca"])
        .arg(&ca_file)
        .arg("--jsonfile")
        .arg(&json)
        .arg(format!("https://localhost:{}/", addr.port()))
        .stdin(Stdio::null())
        .output()
        .expect("testssl runs (Debian package testssl.sh; .ci/run installs it)");
    let report = String::from_utf8_lossy(&output.stdout);
    let json = std::fs::read_to_string(&json).expect("testssl wrote its findings");
    let findings = findings(&json);
    assert!(findings.len() > 100, "{report}");
    let bad: Vec<_> = findings
        .iter()
        .filter(|(_, severity, _)| matches!(severity.as_str(), "MEDIUM" | "HIGH" | "CRITICAL"))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}\n{report}");
    let find = |id: &str| {
        findings
            .iter()
            .find(|(found, _, _)| found == id)
            .map(|(_, _, finding)| finding.as_str())
            .unwrap_or_else(|| panic!("no finding {id}:\n{report}"))
    };
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert!(find(old).starts_with("not offered"), "{old}: {}", find(old));
    }
    assert!(find("TLS1_2").starts_with("offered"));
    assert!(find("TLS1_3").starts_with("offered"));
    assert!(find("ALPN_HTTP2").contains("h2"));
    assert!(find("PFS").starts_with("offered"), "{}", find("PFS"));
    for weak in ["NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE"] {
        let finding = find(&format!("cipherlist_{weak}"));
        assert!(finding.starts_with("not offered"), "{weak}: {finding}");
    }
    assert!(find("cipherlist_STRONG").starts_with("offered"));
    // HSTS of two years (A+ asks for six months at least).
    assert!(
        find("HSTS_time").contains("63072000"),
        "{}",
        find("HSTS_time")
    );
    assert!(
        find("cert_chain_of_trust").starts_with("passed"),
        "{}",
        find("cert_chain_of_trust")
    );
    eprintln!("testssl: {} findings, none MEDIUM or worse", findings.len());

    child.signal(Signal::SIGTERM);
    let (status, _) = child.wait_exit(GENEROUS);
    assert!(status.success(), "{}", child.output());
}
