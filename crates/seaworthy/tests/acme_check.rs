//! The CA unreachable: the certificate in force keeps serving, renewal
//! retries with a growing delay, and the `tls` check warns and says why
//! (a real refused connection to a loopback port nothing listens on).
#![cfg(all(feature = "acme", feature = "health"))]

use std::time::{Duration, Instant};

use seaworthy::health::{HealthRegistry, Probe, Status};
use seaworthy::listener::tls::acme::{Acme, AcmeConfig};
use seaworthy::shutdown::{Shutdown, ShutdownReason};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_ca_leaves_the_pair_serving_and_readiness_waits_for_a_certificate() {
    let dir = std::env::temp_dir().join(format!("seaworthy-acme-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = AcmeConfig::new(
        format!("https://127.0.0.1:{closed}/dir"),
        ["acme.test"],
        &dir,
    );
    let tls = config.tls(|tls| tls).unwrap();
    let acme = Acme::new(config, tls.clone());
    let shutdown = Shutdown::builder().signals([]).build().unwrap();
    shutdown.spawn("acme", acme.clone().run(shutdown.token()));

    let started = Instant::now();
    while acme.status().failures == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            acme.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = acme.status();
    assert!(status.last_error.is_some(), "{status:?}");
    // The next try is later, not at once.
    let next = status.next_order.unwrap();
    assert!(
        next > std::time::SystemTime::now() + Duration::from_secs(5),
        "{status:?}"
    );
    // The pair in force (here the temporary one) still serves.
    assert_eq!(tls.status().certificates.len(), 1);

    let registry = HealthRegistry::builder()
        .check(seaworthy::acme_check(
            &acme,
            Duration::from_secs(30 * 86_400),
        ))
        .build()
        .unwrap();
    // No certificate yet (the temporary pair): readiness fails, and says
    // why.
    let report = registry.check(Probe::Readiness).await;
    assert_eq!(report.status(), Status::Fail);
    let json = report.to_json(true);
    assert!(json.contains("waiting for the first certificate"), "{json}");
    assert!(json.contains("last try"), "{json}");
    assert!(json.contains("next order in"), "{json}");

    shutdown.trigger(ShutdownReason::requested("test"));
    assert!(shutdown.wait().await.is_clean());
    let _ = std::fs::remove_dir_all(&dir);
}
