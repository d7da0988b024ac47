//! The probes' details by the resolved client: loopback, a block, and a
//! request without a resolved client (the TCP peer is never read).
#![cfg(all(feature = "health", feature = "layers"))]

use http::Request;
use http_body_util::BodyExt;
use seaworthy::authorize;
use seaworthy::health::{Check, CheckResult, HealthRegistry, HealthService};
use seaworthy::layers::ClientIp;
use tower::ServiceExt;

async fn body(service: HealthService, client: Option<&str>) -> String {
    let mut request = Request::get("/health/ready").body(()).unwrap();
    if let Some(ip) = client {
        request.extensions_mut().insert(ClientIp {
            ip: ip.parse().unwrap(),
            https: false,
            forwarded: true,
        });
    }
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn details_follow_the_resolved_client_only() {
    let registry = HealthRegistry::builder()
        .check(Check::new("db", || async {
            Ok::<_, std::io::Error>(CheckResult::pass().with_output("secret detail"))
        }))
        .build()
        .unwrap();
    let local = HealthService::new(registry.clone()).authorizer(authorize::loopback());
    for (client, shown) in [
        (Some("127.0.0.1"), true),
        (Some("::1"), true),
        (Some("::ffff:127.0.0.1"), true),
        (Some("203.0.113.9"), false),
        (None, false),
    ] {
        let text = body(local.clone(), client).await;
        assert_eq!(text.contains("secret detail"), shown, "{client:?}: {text}");
    }
    let ops = HealthService::new(registry)
        .authorizer(authorize::clients_in(["10.20.0.0/16".parse().unwrap()]));
    assert!(
        body(ops.clone(), Some("10.20.3.4"))
            .await
            .contains("secret detail")
    );
    assert!(
        !body(ops.clone(), Some("10.21.0.1"))
            .await
            .contains("secret detail")
    );
    assert!(!body(ops, Some("127.0.0.1")).await.contains("secret detail"));
}
