//! The health probes as actix routes.

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use http_body_util::BodyExt;
use seaworthy_health::HealthService;
use seaworthy_layers::ClientIp;
use tower_service::Service;

use crate::convert;

/// The three probes (`/health`, `/health/ready`, `/health/startup`) as
/// actix routes, answered by seaworthy-health's [`HealthService`]: the
/// same IETF health+json bodies, status codes, `HEAD` and `405` as under
/// axum, details for whom its authorizer admits (it sees the
/// [`ClientIp`] that [`ResolveClientIp`](crate::ResolveClientIp)
/// resolved).
///
/// ```no_run
/// use actix_web::App;
/// use seaworthy_health::{HealthRegistry, HealthService};
///
/// # fn app(registry: seaworthy_health::HealthRegistry) {
/// let probes = HealthService::new(registry);
/// let app = App::new().configure(seaworthy_actix::probes(probes));
/// # }
/// ```
pub fn probes(service: HealthService) -> impl Fn(&mut ServiceConfig) + Clone {
    move |config: &mut ServiceConfig| {
        for path in ["/health", "/health/ready", "/health/startup"] {
            let service = service.clone();
            config.route(
                path,
                web::route().to(move |request: HttpRequest| {
                    let service = service.clone();
                    async move { answer(service, &request).await }
                }),
            );
        }
    }
}

/// One probe: the request's head to the health service, its answer back.
async fn answer(mut service: HealthService, request: &HttpRequest) -> HttpResponse {
    let mut head = http::Request::new(http_body_util::Empty::<bytes::Bytes>::new());
    *head.method_mut() =
        http::Method::from_bytes(request.method().as_str().as_bytes()).unwrap_or(http::Method::GET);
    *head.uri_mut() = request
        .uri()
        .to_string()
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("/health"));
    *head.headers_mut() = convert::to_http(request.headers());
    if let Some(client) = request.extensions().get::<ClientIp>() {
        head.extensions_mut().insert(*client);
    }
    let Ok(response) = service.call(head).await;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let status = actix_web::http::StatusCode::from_u16(parts.status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut reply = HttpResponse::build(status).body(body);
    convert::insert_http(&parts.headers, reply.headers_mut());
    reply
}
