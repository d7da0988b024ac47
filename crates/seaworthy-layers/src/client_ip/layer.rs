//! The tower skin of [`ClientIpResolver`].

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use super::{ClientIpResolver, ForwardedHeader, TrustedProxies};

/// Resolves each request's client into a [`ClientIp`](super::ClientIp)
/// extension with a [`ClientIpResolver`]; see the [module docs](super).
///
/// It never answers a request itself, so it can sit outermost: every layer
/// inside it, the security headers' HSTS decision included, reads the
/// resolved client.
///
/// # Examples
///
/// ```
/// use seaworthy_layers::client_ip::{ClientIpLayer, ForwardedHeader, TrustedProxies};
///
/// // Behind a load balancer in the VPC that appends X-Forwarded-For:
/// let layer = ClientIpLayer::new(TrustedProxies::private())
///     .header(ForwardedHeader::XForwardedFor);
/// // Configuring a clone is fine: it changes the clone only.
/// let strict = layer.clone().strip_untrusted(true);
/// # let _ = (layer, strict);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ClientIpLayer {
    resolver: Arc<ClientIpResolver>,
}

impl ClientIpLayer {
    /// Believes forwarding headers from `trusted` only; reads
    /// `X-Forwarded-For` by default.
    pub fn new(trusted: TrustedProxies) -> Self {
        ClientIpLayer::with_resolver(ClientIpResolver::new(trusted))
    }

    /// A layer over a configured resolver.
    pub fn with_resolver(resolver: ClientIpResolver) -> Self {
        ClientIpLayer {
            resolver: Arc::new(resolver),
        }
    }

    fn with(mut self, change: impl FnOnce(ClientIpResolver) -> ClientIpResolver) -> Self {
        // Copy-on-write: a clone of the layer keeps its own settings.
        let resolver = Arc::make_mut(&mut self.resolver);
        *resolver = change(std::mem::take(resolver));
        self
    }

    /// Which header the trusted proxies write; see [`ClientIpResolver::header`].
    pub fn header(self, header: ForwardedHeader) -> Self {
        self.with(|resolver| resolver.header(header))
    }

    /// A fixed hop count; see [`ClientIpResolver::hops`].
    pub fn hops(self, hops: usize) -> Self {
        self.with(|resolver| resolver.hops(hops))
    }

    /// Removes forged forwarding headers; see
    /// [`ClientIpResolver::strip_untrusted`].
    pub fn strip_untrusted(self, strip: bool) -> Self {
        self.with(|resolver| resolver.strip_untrusted(strip))
    }

    /// The resolver this layer applies.
    pub fn resolver(&self) -> &ClientIpResolver {
        &self.resolver
    }
}

impl<S> Layer<S> for ClientIpLayer {
    type Service = ClientIpService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientIpService {
            inner,
            resolver: Arc::clone(&self.resolver),
        }
    }
}

/// The service of [`ClientIpLayer`]. Its response future is the inner
/// service's.
#[derive(Clone, Debug)]
pub struct ClientIpService<S> {
    inner: S,
    resolver: Arc<ClientIpResolver>,
}

impl<S, B> Service<Request<B>> for ClientIpService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        self.resolver.resolve_request(&mut request);
        self.inner.call(request)
    }
}
