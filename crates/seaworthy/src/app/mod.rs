//! [`App`]: the whole production wiring around an axum `Router` in one
//! builder (feature `app`, Unix).
//!
//! ```no_run
//! use axum::Router;
//! use axum::routing::get;
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let router = Router::new().route("/", get(|| async { "hello\n" }));
//!     seaworthy::App::from_env().serve(router).await
//! }
//! ```
//!
//! With settings of the program's own, read with seaworthy's in one go, a
//! health check and a worker (the README's example):
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use seaworthy::App;
//! use seaworthy::health::checks;
//!
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct Mine {
//!     database_url: seaworthy::config::Secret<String>, // DATABASE_URL, never printed
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     // PORT, RATE_LIMIT, TLS_CERT, … and DATABASE_URL: one error (exit 78) for all.
//!     let (app, mine) = App::with_settings::<Mine>();
//!     # let _ = mine.database_url.expose();
//!     let router = Router::new().route("/", get(|| async { "hello\n" }));
//!     app.check(checks::tcp("database", "db:5432"))
//!         .worker("consumer", |token| async move { token.cancelled().await })
//!         .serve(router) // listeners, TLS, probes, layers, signals, upgrade, exit code
//!         .await
//! }
//! ```
//!
//! What [`serve`](App::serve) does, in order:
//!
//! 1. `healthcheck`, `--print-config` or `init` as the first argument: asks
//!    the running server's liveness (exit 0 or 1, for Docker's
//!    `HEALTHCHECK`), prints the settings with their sources (secrets
//!    redacted), or runs this program under seaworthy's PID 1 for in-place
//!    upgrades in a container (`ENTRYPOINT ["app", "init"]`).
//! 2. Checks the [`Settings`]: every problem at once by variable, exit 78
//!    ([`EXIT_CONFIG`]); the TLS files go
//!    through their gate before anything binds.
//! 3. The shutdown: SIGTERM, SIGINT and SIGQUIT drain (a second forces, a
//!    third exits 130); SIGHUP reloads the certificates and re-reads and
//!    checks the settings (never stops the server); SIGUSR1 and SIGALRM
//!    are logged and ignored; SIGUSR2 upgrades in place.
//! 4. The listeners: inherited from systemd (a socket named `http`,
//!    `health`, `redirect`), handed over by an upgrade, or bound: `PORT`,
//!    `HEALTH_PORT`, `HTTP_REDIRECT_PORT`. A bind that fails exits 69
//!    ([`EXIT_UNAVAILABLE`]).
//! 5. The probes (`/health`, `/health/ready`, `/health/startup`) with the
//!    checks given, `redis` when `REDIS_URL` is set, `tls` with TLS;
//!    details for loopback clients only (change with
//!    [`probe_details`](App::probe_details)).
//! 6. The layers, outermost first: client IP, request id, access log,
//!    security headers (the `api()` preset), catch-panic (500), path guard
//!    (400); then on the routes but not the probes: rate limit (429, in
//!    memory or in Redis), body limit (413), timeout (504).
//! 7. The workers ([`worker`](App::worker)), each with the shutdown token.
//! 8. Ready: once readiness passes, an upgrade's old process is told to
//!    hand over, systemd hears READY, and one line is printed:
//!    `listening on http://HOST:PORT (pid N)` (https with TLS).
//! 9. The exit code: the shutdown report's (0, 1, 124, 130).
//!
//! Every piece can be left out or changed: [`access_log`](App::access_log),
//! [`request_id`](App::request_id),
//! [`security_headers`](App::security_headers),
//! [`rate_limit`](App::rate_limit), [`path_guard`](App::path_guard),
//! [`catch_panic`](App::catch_panic), [`commands`](App::commands),
//! [`probe_details`](App::probe_details); the settings themselves come
//! from the environment or [`App::new`].
//!
//! Compared with wiring it by hand (the README's first example was ~95
//! lines of wiring and a 35-line settings struct): the same pieces, in the
//! documented order, with the traps closed (the readiness gate that
//! returns when a signal comes during a slow start, probes outside the
//! rate limit, details by resolved client and not by proxy).

mod probe;
mod signals;
mod stack;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use seaworthy_config::{ConfigError, Loader};
use seaworthy_health::{Authorizer, Check, HealthRegistry, HealthService};
use seaworthy_layers::HeaderPolicy;
use seaworthy_listener::upgrade::Upgrader;
use seaworthy_listener::{Bind, Listener, Server};
use seaworthy_shutdown::{
    EXIT_CONFIG, EXIT_UNAVAILABLE, Shutdown, ShutdownToken, Signal as ShutdownSignal,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Settings;

/// Warn this long before a certificate expires.
#[cfg(feature = "tls")]
const TLS_WARN_BEFORE: Duration = Duration::from_secs(14 * 86_400);

/// Connections the `HEALTH_PORT` listener takes at once: probes are few.
const HEALTH_CONNECTIONS: usize = 64;

type WorkerFn = Box<dyn FnOnce(ShutdownToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Re-reads and checks the settings (SIGHUP): the problems, if any.
type Reread = Box<dyn Fn() -> Vec<String> + Send + Sync>;

/// The production wiring around an axum `Router`; see the
/// [module documentation](crate::app).
#[must_use = "an App does nothing until `serve` is awaited"]
pub struct App {
    settings: Settings,
    explained: String,
    reread: Reread,
    checks: Vec<Check>,
    /// In a mutex only so that `App` is `Sync` (and `serve`'s future
    /// `Send`): a worker's start need not be `Sync`.
    workers: std::sync::Mutex<Vec<(String, WorkerFn)>>,
    access_log: bool,
    request_id: bool,
    security_headers: Option<HeaderPolicy>,
    rate_limit: bool,
    path_guard: bool,
    catch_panic: bool,
    commands: bool,
    probe_details: Option<Authorizer>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("settings", &self.settings)
            .field("checks", &self.checks.len())
            .field("workers", &self.worker_names())
            .finish_non_exhaustive()
    }
}

/// Where settings are read: the environment, then `.env`.
fn settings_loader() -> Loader {
    Loader::new("").env_file(".env")
}

/// Prints a configuration error and exits 78.
fn exit_config(err: &ConfigError) -> ! {
    eprintln!("{err}");
    std::process::exit(EXIT_CONFIG)
}

impl App {
    /// Reads the [`Settings`] from the environment (and `.env`). A bad
    /// environment prints every problem and exits 78: nothing has started.
    pub fn from_env() -> App {
        App::try_from_env().unwrap_or_else(|err| exit_config(&err))
    }

    /// As [`from_env`](Self::from_env), returning the error.
    ///
    /// # Errors
    ///
    /// Every missing or invalid variable, by name.
    pub fn try_from_env() -> Result<App, ConfigError> {
        let loader = settings_loader();
        let settings: Settings = loader.load()?;
        let explained = loader.explain(&settings).to_string();
        let reread: Reread = Box::new(|| match settings_loader().load::<Settings>() {
            Ok(settings) => settings.validate(),
            Err(err) => vec![err.to_string()],
        });
        Ok(App::assemble(settings, explained, reread))
    }

    /// Reads the [`Settings`] and the program's own `T` from the same
    /// environment, one error for both (exit 78 with every problem): the
    /// program's settings come back beside the app.
    ///
    /// ```no_run
    /// #[derive(serde::Deserialize, serde::Serialize)]
    /// struct Mine {
    ///     database_url: seaworthy::config::Secret<String>,
    /// }
    ///
    /// # async fn run() {
    /// let (app, mine) = seaworthy::App::with_settings::<Mine>();
    /// # let _ = (app, mine);
    /// # }
    /// ```
    pub fn with_settings<T>() -> (App, T)
    where
        T: DeserializeOwned + Serialize + 'static,
    {
        let loader = settings_loader();
        let (settings, mine): (Settings, T) =
            loader.load_both().unwrap_or_else(|err| exit_config(&err));
        let explained = loader.explain(&(&settings, &mine)).to_string();
        let reread: Reread = Box::new(|| match settings_loader().load_both::<Settings, T>() {
            Ok((settings, _)) => settings.validate(),
            Err(err) => vec![err.to_string()],
        });
        (App::assemble(settings, explained, reread), mine)
    }

    /// With these settings (a test, or settings read another way).
    pub fn new(settings: Settings) -> App {
        let explained = settings_loader().explain(&settings).to_string();
        App::assemble(settings, explained, Box::new(Vec::new))
    }

    fn assemble(settings: Settings, explained: String, reread: Reread) -> App {
        App {
            settings,
            explained,
            reread,
            checks: Vec::new(),
            workers: std::sync::Mutex::default(),
            access_log: true,
            request_id: true,
            security_headers: Some(HeaderPolicy::api()),
            rate_limit: true,
            path_guard: true,
            catch_panic: true,
            commands: true,
            probe_details: None,
        }
    }

    fn workers_mut(&mut self) -> &mut Vec<(String, WorkerFn)> {
        self.workers
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn worker_names(&self) -> Vec<String> {
        self.workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A health check for the probes (a database, a queue).
    pub fn check(mut self, check: Check) -> App {
        self.checks.push(check);
        self
    }

    /// A background worker: `start(token)` runs as a tracked task from the
    /// start; it should stop when `token.cancelled()` resolves (after the
    /// drain), and the shutdown waits for it until its budget.
    pub fn worker<F, Fut>(mut self, name: impl Into<String>, start: F) -> App
    where
        F: FnOnce(ShutdownToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.workers_mut()
            .push((name.into(), Box::new(move |token| Box::pin(start(token)))));
        self
    }

    /// The access log (default on): one event per request, target
    /// `seaworthy::access`, the probes left out.
    pub fn access_log(mut self, on: bool) -> App {
        self.access_log = on;
        self
    }

    /// Request ids (default on): `X-Request-Id` from trusted proxies kept,
    /// else generated, echoed.
    pub fn request_id(mut self, on: bool) -> App {
        self.request_id = on;
        self
    }

    /// The security headers' policy (default [`HeaderPolicy::api`]);
    /// `None` leaves them out.
    pub fn security_headers(mut self, policy: Option<HeaderPolicy>) -> App {
        self.security_headers = policy;
        self
    }

    /// The rate limit (default on: `RATE_LIMIT` per client IP).
    pub fn rate_limit(mut self, on: bool) -> App {
        self.rate_limit = on;
        self
    }

    /// The path guard (default on): 400 for a path that leaves its
    /// directory in any encoding.
    pub fn path_guard(mut self, on: bool) -> App {
        self.path_guard = on;
        self
    }

    /// Catch-panic (default on): a handler's panic is a 500 and the
    /// connection and process serve on.
    pub fn catch_panic(mut self, on: bool) -> App {
        self.catch_panic = on;
        self
    }

    /// Whether `healthcheck`, `--print-config` and `init` as the first
    /// argument are answered (default on).
    pub fn commands(mut self, on: bool) -> App {
        self.commands = on;
        self
    }

    /// Who sees the probes' check details (default: loopback clients,
    /// [`authorize::loopback`](crate::authorize::loopback)).
    pub fn probe_details(mut self, authorizer: Authorizer) -> App {
        self.probe_details = Some(authorizer);
        self
    }

    /// Serves `router` until the shutdown ends; the process's exit code.
    /// See the [module documentation](crate::app) for what it does.
    pub async fn serve(self, router: Router) -> ExitCode {
        let code = match self.run(router).await {
            Ok(code) | Err(code) => code,
        };
        ExitCode::from(u8::try_from(code).unwrap_or(1))
    }

    /// The steps of [`serve`](Self::serve); `Err` is an exit code before
    /// anything was served.
    async fn run(mut self, router: Router) -> Result<i32, i32> {
        if let Some(code) = self.command().await {
            return Ok(code);
        }
        let (tls, acme) = self.checked_settings()?;
        let shutdown = self.shutdown()?;
        let reread = std::mem::replace(&mut self.reread, Box::new(Vec::new));
        signals::spawn(tls.clone(), reread).map_err(|err| {
            eprintln!("cannot listen for signals: {err}");
            EXIT_UNAVAILABLE
        })?;
        let (upgrader, listeners) = self.listeners(&shutdown)?;
        let listening = listeners.http.local_addr().map_err(|err| {
            eprintln!("cannot read the listening address: {err}");
            EXIT_UNAVAILABLE
        })?;
        let store = self.redis_store()?;
        let acme = shared_lock(acme, store.as_ref());
        let health = self.health(&shutdown, &store, &tls, acme.as_ref())?;
        let details = self
            .probe_details
            .take()
            .unwrap_or_else(crate::authorize::loopback);
        let probes = HealthService::new(health.clone()).authorizer(details);
        self.serve_all(
            &shutdown,
            listeners,
            &listening,
            probes,
            router,
            store,
            (&tls, acme.as_ref()),
        );
        #[cfg(feature = "acme")]
        if let Some(acme) = acme {
            // The listener serves (it answers the validations): order the
            // first certificate if there is none, then renew.
            shutdown.spawn("acme", acme.run(shutdown.token()));
        }
        for (name, start) in std::mem::take(self.workers_mut()) {
            shutdown.spawn(name, start(shutdown.token()));
        }
        // Ready means readiness passes, not merely bound: only then does an
        // upgrade's old process stop accepting.
        if health.until_ready().await {
            if let Err(err) = upgrader.ready().await {
                eprintln!("{err}");
                return Err(EXIT_UNAVAILABLE);
            }
            let scheme = if tls.is_some() { "https" } else { "http" };
            println!(
                "listening on {scheme}://{listening} (pid {})",
                std::process::id()
            );
        }
        Ok(shutdown.wait().await.exit_code())
    }

    /// `healthcheck` or `--print-config`: its exit code.
    async fn command(&self) -> Option<i32> {
        if !self.commands {
            return None;
        }
        let first = std::env::args().nth(1);
        match first.as_deref() {
            Some("healthcheck") => Some(probe::healthcheck(&self.settings).await),
            Some("init") => Some(init().await),
            Some("--print-config") => {
                print!("{}", self.explained);
                Some(0)
            }
            _ => None,
        }
    }

    /// The settings' traps and the TLS gate, before anything binds.
    fn checked_settings(&self) -> Result<(Option<Tls>, Option<Acme>), i32> {
        let problems = self.settings.validate();
        if !problems.is_empty() {
            let count = problems.len();
            let plural = if count == 1 { "" } else { "s" };
            eprintln!("invalid configuration: {count} problem{plural}");
            for problem in problems {
                eprintln!("  {problem}");
            }
            return Err(EXIT_CONFIG);
        }
        // Certificates are checked before anything binds: a bad pair stops
        // the start (and an upgrade's new process never becomes ready).
        let certificates = tls(&self.settings).map_err(|problem| {
            eprintln!("invalid configuration: 1 problem\n  {problem}");
            EXIT_CONFIG
        })?;
        if self.settings.trusted_proxies.trusts_everyone() {
            tracing::warn!(
                "TRUSTED_PROXIES contains a /0 block: every address on the internet is a trusted \
                 proxy, so any client can choose its own address (and rate-limit bucket) with \
                 X-Forwarded-For; list only your proxies' addresses"
            );
        }
        Ok(match certificates {
            Some((tls, acme)) => (Some(tls), acme),
            None => (None, None),
        })
    }

    fn shutdown(&self) -> Result<Shutdown, i32> {
        Shutdown::builder()
            .timeout(self.settings.shutdown_timeout)
            .drain_delay(self.settings.shutdown_drain_delay)
            // SIGQUIT drains like SIGTERM, as nginx's QUIT does.
            .signals([
                ShutdownSignal::Term,
                ShutdownSignal::Int,
                ShutdownSignal::Quit,
            ])
            .build()
            .map_err(|err| {
                eprintln!("invalid configuration: {err}");
                EXIT_CONFIG
            })
    }

    /// The upgrade hand-over and the listeners: inherited, handed over or
    /// bound.
    fn listeners(&self, shutdown: &Shutdown) -> Result<(Upgrader, Listeners), i32> {
        let settings = &self.settings;
        let mut upgrader = Upgrader::builder().ready_timeout(settings.upgrade_timeout);
        if let Some(path) = &settings.upgrade_socket {
            upgrader = upgrader.handoff_socket(path);
        }
        let upgrader = match upgrader.build(&shutdown.handle()) {
            Ok(upgrader) => upgrader,
            Err(err) if err.is_config() => {
                eprintln!("invalid configuration: 1 problem\n  UPGRADE_SOCKET: {err}");
                return Err(EXIT_CONFIG);
            }
            Err(err) => {
                eprintln!("{err}");
                return Err(EXIT_UNAVAILABLE);
            }
        };
        let bind = |name: &str, variable: &str, port: u16| {
            upgrader
                .listener(name, Bind::tcp(SocketAddr::new(settings.host, port)))
                .map_err(|err| {
                    let cause = err
                        .io_error()
                        .map(|io| format!(": {io}"))
                        .unwrap_or_default();
                    eprintln!("{variable}{err}{cause}");
                    EXIT_UNAVAILABLE
                })
        };
        let http = bind("http", "", settings.port)?;
        let health = match settings.health_port {
            Some(port) => Some(bind("health", "HEALTH_PORT: ", port)?),
            None => None,
        };
        let redirect = match settings.http_redirect_port {
            Some(port) => Some(bind("redirect", "HTTP_REDIRECT_PORT: ", port)?),
            None => None,
        };
        Ok((
            upgrader,
            Listeners {
                http,
                health,
                redirect,
            },
        ))
    }

    /// The shared store when `REDIS_URL` is set.
    #[cfg(feature = "redis")]
    fn redis_store(&self) -> Result<Option<RedisStore>, i32> {
        let Some(url) = &self.settings.redis_url else {
            return Ok(None);
        };
        RedisStore::builder(url.expose())
            .fallback(self.settings.redis_fallback())
            .build()
            .map(Some)
            .map_err(|err| {
                eprintln!("invalid configuration: 1 problem\n  REDIS_URL: {err}");
                EXIT_CONFIG
            })
    }

    #[cfg(not(feature = "redis"))]
    fn redis_store(&self) -> Result<Option<RedisStore>, i32> {
        if self.settings.redis_url.is_some() {
            eprintln!(
                "invalid configuration: 1 problem\n  REDIS_URL: this build has no Redis \
                 support (seaworthy's feature `redis`)"
            );
            return Err(EXIT_CONFIG);
        }
        Ok(None)
    }

    /// The registry: the user's checks, `redis`, `tls`.
    fn health(
        &mut self,
        shutdown: &Shutdown,
        store: &Option<RedisStore>,
        tls: &Option<Tls>,
        acme: Option<&Acme>,
    ) -> Result<HealthRegistry, i32> {
        let mut health = HealthRegistry::builder().shutdown(shutdown.token());
        for check in std::mem::take(&mut self.checks) {
            health = health.check(check);
        }
        #[cfg(feature = "redis")]
        if let Some(store) = store {
            health = health.check(crate::redis_check(store.clone()));
        }
        #[cfg(not(feature = "redis"))]
        let _ = store;
        #[cfg(feature = "acme")]
        if let Some(acme) = acme {
            // Fails until the first certificate: not ready on the
            // temporary pair.
            health = health.check(crate::acme_check(acme, TLS_WARN_BEFORE));
        }
        #[cfg(not(feature = "acme"))]
        let _ = acme;
        #[cfg(feature = "tls")]
        if let (Some(tls), None) = (tls, acme) {
            health = health.check(crate::tls_check(tls, TLS_WARN_BEFORE));
        }
        #[cfg(not(feature = "tls"))]
        let _ = tls;
        health.build().map_err(|err| {
            eprintln!("invalid health checks: {err}");
            EXIT_CONFIG
        })
    }

    /// Spawns the servers: the probes' port, the redirect, the main one.
    #[allow(clippy::too_many_arguments)]
    fn serve_all(
        &self,
        shutdown: &Shutdown,
        listeners: Listeners,
        listening: &seaworthy_listener::Addr,
        probes: HealthService,
        router: Router,
        store: Option<RedisStore>,
        (tls, acme): (&Option<Tls>, Option<&Acme>),
    ) {
        if let Some(listener) = listeners.health {
            self.serve_probes(shutdown, listener, probes.clone());
        }
        match listeners.redirect {
            Some(listener) => self.serve_redirect(shutdown, listener, listening, acme),
            None => {
                let _ = acme;
            }
        }
        let settings = &self.settings;
        let mut server = Server::new()
            .header_read_timeout(settings.header_read_timeout)
            .write_timeout(settings.write_timeout)
            .max_connections(settings.max_connections);
        if settings.max_connections_per_ip > 0 {
            // The proxies in front bring many clients each: not limited.
            let trusted = settings.trusted_proxies.clone();
            server = server
                .max_connections_per_ip(settings.max_connections_per_ip)
                .per_ip_exempt(move |ip| trusted.contains(ip));
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = tls {
            server = server.tls(tls.clone());
            // Reloads when the files change (a renewal, a Kubernetes secret).
            shutdown.spawn("tls-watch", tls.clone().watch(shutdown.token()));
        }
        #[cfg(not(feature = "tls"))]
        let _ = tls;
        let service = stack::app(router, probes, settings, store, &self.stack_options());
        spawn_serving(
            shutdown,
            "http",
            server.serve(listeners.http, service, shutdown.token()),
        );
    }

    /// The probes on a port of their own, with a pool of their own: no
    /// flood of the main port can starve them.
    fn serve_probes(&self, shutdown: &Shutdown, listener: Listener, probes: HealthService) {
        let addr = listener
            .local_addr()
            .map(|addr| addr.to_string())
            .unwrap_or_default();
        let server = Server::new()
            .max_connections(HEALTH_CONNECTIONS)
            .max_connections_per_ip(HEALTH_CONNECTIONS / 2)
            .header_read_timeout(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(30));
        let service = stack::probes_only(probes, &self.settings, self.security_headers.clone());
        spawn_serving(
            shutdown,
            "health-http",
            server.serve(listener, service, shutdown.token()),
        );
        tracing::info!(%addr, "health probes on their own port");
    }

    /// Plain HTTP answered with a redirect to HTTPS, but ACME's HTTP-01
    /// validations.
    #[cfg(feature = "tls")]
    fn serve_redirect(
        &self,
        shutdown: &Shutdown,
        listener: Listener,
        listening: &seaworthy_listener::Addr,
        acme: Option<&Acme>,
    ) {
        let settings = &self.settings;
        let addr = listener
            .local_addr()
            .map(|addr| addr.to_string())
            .unwrap_or_default();
        let https_port = listening.as_tcp().map_or(443, |addr| addr.port());
        let mut redirect = Server::new()
            .header_read_timeout(settings.header_read_timeout)
            .max_connections(settings.max_connections);
        if settings.max_connections_per_ip > 0 {
            redirect = redirect.max_connections_per_ip(settings.max_connections_per_ip);
        }
        #[allow(unused_mut)]
        let mut service = seaworthy_listener::tls::HttpsRedirect::new().https_port(https_port);
        #[cfg(feature = "acme")]
        if let Some(acme) = acme {
            service = service.acme_challenges(acme.config().http01_answers());
        }
        #[cfg(not(feature = "acme"))]
        let _ = acme;
        spawn_serving(
            shutdown,
            "http-redirect",
            redirect.serve(listener, service, shutdown.token()),
        );
        tracing::info!(%addr, https_port, "redirecting plain HTTP to HTTPS");
    }

    /// Without TLS there is no redirect listener (the settings refuse one).
    #[cfg(not(feature = "tls"))]
    fn serve_redirect(
        &self,
        _: &Shutdown,
        _: Listener,
        _: &seaworthy_listener::Addr,
        _: Option<&Acme>,
    ) {
    }

    fn stack_options(&self) -> stack::Options {
        stack::Options {
            access_log: self.access_log,
            request_id: self.request_id,
            security_headers: self.security_headers.clone(),
            rate_limit: self.rate_limit,
            path_guard: self.path_guard,
            catch_panic: self.catch_panic,
        }
    }
}

/// `init`: this program, without the word, under seaworthy's PID 1 for
/// upgrades in containers ([`upgrade::init`](seaworthy_listener::upgrade::init)).
async fn init() -> i32 {
    let program = match std::env::current_exe() {
        Ok(program) => program,
        Err(err) => {
            eprintln!("init: cannot find this program: {err}");
            return EXIT_UNAVAILABLE;
        }
    };
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
    match seaworthy_listener::upgrade::init(program, &args).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("init: {err}");
            EXIT_UNAVAILABLE
        }
    }
}

/// The listeners `serve` runs.
struct Listeners {
    http: Listener,
    health: Option<Listener>,
    redirect: Option<Listener>,
}

/// A serve loop as a critical task: if it ever ends by a panic, the process
/// shuts down and exits 1 instead of keeping the port with nobody accepting.
fn spawn_serving(
    shutdown: &Shutdown,
    name: &'static str,
    serving: impl Future<Output = ()> + Send + 'static,
) {
    shutdown.spawn_critical(name, async move {
        serving.await;
        Ok::<_, std::convert::Infallible>(())
    });
}

#[cfg(feature = "tls")]
use seaworthy_listener::tls::Tls;

/// Without TLS support, there is never a `Tls`.
#[cfg(not(feature = "tls"))]
#[derive(Clone, Debug)]
enum Tls {}

#[cfg(feature = "redis")]
use seaworthy_layers::redis_store::RedisStore;

/// Without Redis support, there is never a store.
#[cfg(not(feature = "redis"))]
#[derive(Clone, Debug)]
enum RedisStore {}

/// The TLS settings, built and checked: `Err` names the variable at fault.
/// With `ACME_DOMAINS`, the certificates come from the cache directory (a
/// temporary pair until the first) and an [`Acme`] keeps them.
#[cfg(feature = "tls")]
fn tls(settings: &Settings) -> Result<Option<(Tls, Option<Acme>)>, String> {
    use seaworthy_listener::tls::TlsConfig;
    // One knob for a new connection's first words: its TLS handshake, like
    // its first request head, must arrive within HEADER_READ_TIMEOUT.
    let customize = |mut config: TlsConfig| {
        config = config.handshake_timeout(settings.header_read_timeout);
        if let Some(bundle) = &settings.tls_client_ca {
            config = config.client_ca(bundle);
        }
        if let Some(keys) = &settings.tls_ticket_keys {
            config = config.ticket_keys(keys);
        }
        config
    };
    let variable_of = |err: &seaworthy_listener::tls::Error,
                       cert: &std::path::Path,
                       key: &std::path::Path| match err.path() {
        Some(path) if path == key => "TLS_KEY",
        Some(path) if Some(path) == settings.tls_client_ca.as_deref() => "TLS_CLIENT_CA",
        Some(path) if Some(path) == settings.tls_ticket_keys.as_deref() => "TLS_TICKET_KEYS",
        Some(path) if path == cert => "TLS_CERT",
        _ => "TLS_CERT",
    };
    if !settings.acme_domains.is_empty() {
        return acme(settings, customize).map(Some);
    }
    let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) else {
        return Ok(None);
    };
    customize(TlsConfig::new(cert, key))
        .build()
        .map(|tls| Some((tls, None)))
        .map_err(|err| format!("{}: {err}", variable_of(&err, cert, key)))
}

/// `ACME_DOMAINS`: the certificates from an ACME CA.
#[cfg(feature = "acme")]
fn acme(
    settings: &Settings,
    customize: impl FnOnce(seaworthy_listener::tls::TlsConfig) -> seaworthy_listener::tls::TlsConfig,
) -> Result<(Tls, Option<Acme>), String> {
    use seaworthy_listener::tls::acme::AcmeConfig;
    let directory = settings
        .acme_directory_url()
        .ok_or_else(|| "ACME_DIRECTORY: invalid".to_owned())?;
    let mut config = AcmeConfig::new(
        directory,
        settings.acme_domains.clone(),
        &settings.acme_cache_dir,
    );
    if settings.acme_challenge.trim() == "http-01" {
        config = config.challenge(seaworthy_listener::tls::acme::Challenge::Http01);
    }
    if settings.acme_until_issued.trim() == "refuse" {
        config = config.until_issued(seaworthy_listener::tls::acme::UntilIssued::Refuse);
    }
    if let Some(email) = &settings.acme_email {
        config = config.contact(email);
    }
    if let Some(bundle) = &settings.acme_ca_bundle {
        if !bundle.is_file() {
            return Err(format!(
                "ACME_CA_BUNDLE: {} is not a readable file",
                bundle.display()
            ));
        }
        config = config.root_ca(bundle);
    }
    let tls = config
        .tls(customize)
        .map_err(|err| format!("ACME_CACHE_DIR: {err}"))?;
    let acme = Acme::new(config, tls.clone());
    Ok((tls, Some(acme)))
}

/// With `REDIS_URL`, replicas take turns to order through a lease in
/// Redis (the lock file in the cache directory while Redis is away).
#[cfg(all(feature = "acme", feature = "redis"))]
fn shared_lock(acme: Option<Acme>, store: Option<&RedisStore>) -> Option<Acme> {
    let (acme, store) = match (acme, store) {
        (Some(acme), Some(store)) => (acme, store),
        (acme, _) => return acme,
    };
    let config = acme.config().clone();
    let lock = crate::RedisOrderLock::new(store.clone(), config.domains(), config.cache_dir());
    Some(Acme::new(config.order_lock(lock), acme.tls().clone()))
}

#[cfg(not(all(feature = "acme", feature = "redis")))]
fn shared_lock(acme: Option<Acme>, _: Option<&RedisStore>) -> Option<Acme> {
    acme
}

#[cfg(all(feature = "tls", not(feature = "acme")))]
fn acme(
    _: &Settings,
    _: impl FnOnce(seaworthy_listener::tls::TlsConfig) -> seaworthy_listener::tls::TlsConfig,
) -> Result<(Tls, Option<Acme>), String> {
    Err("ACME_DOMAINS: this build has no ACME support (seaworthy's feature `acme`)".into())
}

#[cfg(feature = "acme")]
use seaworthy_listener::tls::acme::Acme;

/// Without ACME support, there is never an `Acme`.
#[cfg(not(feature = "acme"))]
#[derive(Clone, Debug)]
enum Acme {}

#[cfg(not(feature = "tls"))]
fn tls(settings: &Settings) -> Result<Option<(Tls, Option<Acme>)>, String> {
    if settings.tls() {
        return Err("TLS_CERT: this build has no TLS support (seaworthy's feature `tls`)".into());
    }
    Ok(None)
}
