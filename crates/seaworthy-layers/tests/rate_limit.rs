//! The rate limit as a service: 429 with Retry-After and the RateLimit
//! fields, keys, skips, shadow mode.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use seaworthy_connection::{Addr, ConnectionInfo};
use seaworthy_layers::store::{Clock, ManualClock, MemoryStore};
use seaworthy_layers::{KeyBy, Policy, Quota, RateLimitLayer};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn request(peer: &str, path: &str) -> Request<String> {
    let mut request = Request::builder().uri(path).body(String::new()).unwrap();
    request.extensions_mut().insert(ConnectionInfo::new(
        Addr::Tcp(SocketAddr::new(peer.parse().unwrap(), 1000)),
        None,
        false,
    ));
    request
}

fn ok()
-> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send {
    service_fn(|_: Request<String>| async { Ok::<_, Infallible>(Response::new("ok".to_owned())) })
}

#[tokio::test]
async fn the_burst_passes_then_429_with_retry_after_and_ratelimit_fields() {
    let clock = ManualClock::new(Duration::from_secs(10));
    let store = MemoryStore::with_clock(1000, Arc::new(clock.clone()));
    let layer = RateLimitLayer::with_store(
        Policy::new(
            "per-ip",
            Quota::per_second(10).burst(5),
            KeyBy::ClientIp { ipv6_prefix: 64 },
        ),
        store,
    );
    let mut service = ServiceBuilder::new().layer(layer).service(ok());
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..8 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request("203.0.113.1", "/"))
            .await
            .unwrap();
        statuses.push(response.status());
        last = Some(response);
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|status| **status == StatusCode::OK)
            .count(),
        6
    );
    let last = last.unwrap();
    assert_eq!(last.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(last.headers()["retry-after"], "1");
    assert_eq!(last.headers()["ratelimit-policy"], "\"per-ip\";q=6;w=1");
    assert_eq!(last.headers()["ratelimit"], "\"per-ip\";r=0;t=1");
    // Another client has its own bucket.
    let other = service
        .ready()
        .await
        .unwrap()
        .call(request("203.0.113.2", "/"))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    // After one interval, one more passes.
    clock.advance(Duration::from_millis(100));
    let again = service
        .ready()
        .await
        .unwrap()
        .call(request("203.0.113.1", "/"))
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn retry_after_is_whole_seconds_and_never_zero() {
    let clock = ManualClock::new(Duration::from_secs(10));
    let store = MemoryStore::with_clock(1000, Arc::new(clock.clone()));
    let layer = RateLimitLayer::with_store(
        Policy::new("slow", Quota::per_minute(1), KeyBy::Global),
        store,
    );
    let mut service = ServiceBuilder::new().layer(layer).service(ok());
    assert_eq!(
        service
            .ready()
            .await
            .unwrap()
            .call(request("192.0.2.1", "/"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let rejected = service
        .ready()
        .await
        .unwrap()
        .call(request("192.0.2.1", "/"))
        .await
        .unwrap();
    assert_eq!(rejected.headers()["retry-after"], "60");
    clock.advance(Duration::from_millis(59_999));
    let rejected = service
        .ready()
        .await
        .unwrap()
        .call(request("192.0.2.2", "/"))
        .await
        .unwrap();
    assert_eq!(rejected.headers()["retry-after"], "1");
}

#[tokio::test]
async fn probes_and_preflights_are_skipped_and_shadow_mode_lets_everything_through() {
    let layer = RateLimitLayer::new(Quota::per_minute(1)).skip_paths(["/health"]);
    let mut service = ServiceBuilder::new().layer(layer).service(ok());
    for _ in 0..5 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request("192.0.2.1", "/health"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut preflight = request("192.0.2.1", "/");
        *preflight.method_mut() = Method::OPTIONS;
        assert_eq!(
            service
                .ready()
                .await
                .unwrap()
                .call(preflight)
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    let shadow = RateLimitLayer::new(Quota::per_minute(1))
        .shadow(true)
        .headers_on_success(true);
    let mut service = ServiceBuilder::new().layer(shadow).service(ok());
    for _ in 0..5 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request("192.0.2.1", "/"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("ratelimit"));
    }
}

#[tokio::test]
async fn keys_by_header_and_a_global_policy_beside_the_per_client_one() {
    let store = MemoryStore::new(1000);
    let layer = RateLimitLayer::with_store(
        Policy::new(
            "per-key",
            Quota::per_minute(2).burst(1),
            KeyBy::Header("x-api-key".parse().unwrap()),
        ),
        store,
    )
    .policy(Policy::new(
        "global",
        Quota::per_minute(3).burst(2),
        KeyBy::Global,
    ));
    let mut service = ServiceBuilder::new().layer(layer).service(ok());
    async fn call<S>(service: &mut S, key: &'static str) -> StatusCode
    where
        S: Service<Request<String>, Response = Response<String>, Error = Infallible>,
    {
        let mut request = request("192.0.2.1", "/");
        request
            .headers_mut()
            .insert("x-api-key", key.parse().unwrap());
        service
            .ready()
            .await
            .unwrap()
            .call(request)
            .await
            .unwrap()
            .status()
    }
    assert_eq!(call(&mut service, "a").await, StatusCode::OK);
    assert_eq!(call(&mut service, "a").await, StatusCode::OK);
    // Refused per key: the global bucket is not used up by it.
    assert_eq!(call(&mut service, "a").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(call(&mut service, "b").await, StatusCode::OK);
    // The global bucket (capacity 3) is now empty.
    assert_eq!(call(&mut service, "c").await, StatusCode::TOO_MANY_REQUESTS);
}

/// tokio's clock, paused in the tests that use it: the store's time and
/// the delays the layer sleeps agree (the default clock is the machine's,
/// which goes on while tokio's stands still, a coarse tick of up to 4 ms
/// at a time).
#[derive(Debug)]
struct TokioClock(tokio::time::Instant);

impl Clock for TokioClock {
    fn now(&self) -> u64 {
        // From 10 s: a store's time is never zero.
        u64::try_from((self.0.elapsed() + Duration::from_secs(10)).as_nanos()).unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn delay_mode_spaces_a_burst_at_the_rate_instead_of_passing_it_at_once() {
    let store = MemoryStore::with_clock(1000, Arc::new(TokioClock(tokio::time::Instant::now())));
    let layer = RateLimitLayer::with_store(
        Policy::new(
            "per-ip",
            Quota::per_second(10).burst(3),
            KeyBy::ClientIp { ipv6_prefix: 64 },
        ),
        store,
    )
    .delay(true);
    let service = ServiceBuilder::new().layer(layer).service(ok());
    let started = tokio::time::Instant::now();
    let mut handles = Vec::new();
    for _ in 0..5 {
        let service = service.clone();
        handles.push(tokio::spawn(async move {
            let response = service.oneshot(request("192.0.2.1", "/")).await.unwrap();
            (response.status(), started.elapsed())
        }));
        tokio::task::yield_now().await;
    }
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results.sort_by_key(|(_, at)| *at);
    let passed: Vec<_> = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, at)| *at)
        .collect();
    // Burst 3: four pass, held 0, 100, 200, 300 ms; the fifth is refused.
    assert_eq!(passed.len(), 4, "{results:?}");
    for (i, at) in passed.iter().enumerate() {
        let expected = Duration::from_millis(100 * i as u64);
        assert!(
            *at >= expected && *at < expected + Duration::from_millis(5),
            "{results:?}"
        );
    }
    assert_eq!(
        results
            .iter()
            .filter(|(status, _)| *status == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        1
    );
}

/// A store that answers after a pause, as a shared store would, and can be
/// made to fail.
struct SlowStore {
    memory: MemoryStore,
    down: bool,
}

impl seaworthy_layers::store::Store for SlowStore {
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<
                        seaworthy_layers::Decision,
                        seaworthy_layers::store::StoreError,
                    >,
                > + Send,
        >,
    >;

    fn check(&self, key: seaworthy_layers::store::Key, quota: &Quota, cost: u32) -> Self::Future {
        let answer = self.memory.check_now(key, quota, cost);
        let down = self.down;
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if down {
                Err(seaworthy_layers::store::StoreError::new(
                    "connection refused",
                ))
            } else {
                Ok(answer)
            }
        })
    }
}

#[tokio::test]
async fn a_store_that_answers_later_decides_the_same_and_one_that_is_down_fails_open() {
    let store = SlowStore {
        memory: MemoryStore::new(1000),
        down: false,
    };
    let layer = RateLimitLayer::with_store(
        Policy::new(
            "shared",
            Quota::per_minute(10).burst(2),
            KeyBy::ClientIp { ipv6_prefix: 64 },
        ),
        store,
    );
    let mut service = ServiceBuilder::new().layer(layer).service(ok());
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            service
                .ready()
                .await
                .unwrap()
                .call(request("192.0.2.7", "/"))
                .await
                .unwrap()
                .status(),
        );
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );

    let down = SlowStore {
        memory: MemoryStore::new(1000),
        down: true,
    };
    let layer = RateLimitLayer::with_store(
        Policy::new("shared", Quota::per_hour(1), KeyBy::Global),
        down,
    );
    let mut service = ServiceBuilder::new().layer(layer).service(ok());
    for _ in 0..3 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request("192.0.2.7", "/"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn configuring_a_clone_changes_that_clone_only_and_the_counts_stay_shared() {
    async fn call<S>(service: &mut S, path: &str) -> StatusCode
    where
        S: Service<Request<String>, Response = Response<String>, Error = Infallible>,
    {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request("192.0.2.9", path));
        response.await.unwrap().status()
    }
    // Setters on a clone of a layer that is already in use: no panic, and
    // the original keeps its own settings.
    let enforcing = RateLimitLayer::new(Quota::per_minute(1));
    let mut first = ServiceBuilder::new().layer(enforcing.clone()).service(ok());
    let shadow = enforcing.clone().shadow(true).skip_paths(["/free"]);
    let mut second = ServiceBuilder::new().layer(shadow).service(ok());
    assert_eq!(call(&mut first, "/").await, StatusCode::OK);
    // The same store: the clone counted that request, but lets the next
    // through (shadow mode); the original refuses, and does not skip /free.
    assert_eq!(call(&mut second, "/").await, StatusCode::OK);
    assert_eq!(call(&mut first, "/").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        call(&mut first, "/free").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(call(&mut second, "/free").await, StatusCode::OK);
}

#[test]
fn two_per_client_policies_keep_their_own_state() {
    use seaworthy_layers::rate_limit::{Checked, Verdict};
    use seaworthy_layers::{ClientIp, KeyBy, Policy, Quota, RateLimiter};
    // 100/s with a burst of 10, and 1000/h with a burst of 10: eleven pass
    // at once (both bursts), then the per-second policy refuses.
    let limiter = RateLimiter::new(Quota::per_second(100).burst(10)).policy(Policy::new(
        "hour",
        Quota::per_hour(1000).burst(10),
        KeyBy::ClientIp { ipv6_prefix: 64 },
    ));
    let mut request = http::Request::new(());
    request.extensions_mut().insert(ClientIp {
        ip: "192.0.2.9".parse().unwrap(),
        https: false,
        forwarded: false,
    });
    let passed = (0..30)
        .filter(|_| matches!(limiter.check(&request), Checked::Ready(Verdict::Pass(_))))
        .count();
    assert_eq!(passed, 11);
}
