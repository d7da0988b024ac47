//! Zero-downtime upgrade: hand the listening sockets to the new binary, let
//! it report ready, and only then drain this process.
//!
//! Restarting a server the naive way refuses connections (nothing listens
//! for a moment) or resets them (closing a listening socket resets every
//! connection waiting in its accept queue, and two processes on
//! `SO_REUSEPORT` each have their own queue). An [`Upgrader`] passes the
//! very same listening socket, queue and all, to the new process:
//!
//! 1. On `SIGUSR2` (or [`Upgrader::upgrade`]) the running process starts the
//!    new binary (its own executable path as it was at start, the same
//!    arguments and environment) with the listening sockets: only those
//!    descriptors and one control socket survive the exec, named in
//!    `SEAWORTHY_UPGRADE_FDS`.
//! 2. The new process takes them with [`Upgrader::listener`] (no bind, no
//!    gap), starts, and calls [`Upgrader::ready`] once its health says
//!    ready. It accepts nothing before the old process answers.
//! 3. The old process answers "go", stops accepting at once (the queue is
//!    the new process's now) and drains with [`ShutdownReason::Upgrade`]:
//!    each open connection gets its next answer with `Connection: close`
//!    (HTTP/1) or a GOAWAY (HTTP/2), so clients move over without a lost
//!    request.
//! 4. A new process that exits, crashes or is not ready within the timeout
//!    is killed and reaped; the old one never stopped serving, logs why,
//!    and takes the next upgrade. One upgrade runs at a time.
//!
//! The same hand-over works with a process the old one did not start
//! ([`UpgraderBuilder::handoff_socket`]): the old process serves its
//! listening descriptors over a Unix socket (`SCM_RIGHTS`) to a new process
//! that asks, with the same ready gate and rollback. When `NOTIFY_SOCKET` is
//! set, systemd hears `READY=1`, `RELOADING=1`, `MAINPID=` and `STOPPING=1`.
//!
//! In a container, run the server under [`init`] (`app init` with
//! `seaworthy::App`): it stays PID 1 across upgrades. See `docs/upgrade.md`
//! for the systemd units, the container story and the numbers.

mod control;
mod init;
mod notify;

pub use init::init;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use seaworthy_shutdown::{Phase, ShutdownHandle, ShutdownReason, ShutdownToken};
use tokio::signal::unix::SignalKind;
use tokio_util::sync::CancellationToken;

use crate::{Bind, Error, Listener, Source};

pub(crate) use control::{ENV_CONTROL, ENV_FDS, ENV_PARENT};

/// Options for an [`Upgrader`].
///
/// | option | default |
/// |---|---|
/// | [`signal`](Self::signal) | `SIGUSR2` |
/// | [`ready_timeout`](Self::ready_timeout) | 30 s |
/// | [`program`](Self::program), [`args`](Self::args) | this process's executable path and arguments, as at start |
/// | [`handoff_socket`](Self::handoff_socket) | none |
#[derive(Debug)]
#[must_use = "an upgrader builder does nothing until `build` is called"]
pub struct UpgraderBuilder {
    signal: Option<SignalKind>,
    ready_timeout: Duration,
    program: Option<PathBuf>,
    args: Option<Vec<OsString>>,
    handoff_socket: Option<PathBuf>,
}

impl Default for UpgraderBuilder {
    fn default() -> Self {
        UpgraderBuilder {
            signal: Some(SignalKind::user_defined2()),
            ready_timeout: Duration::from_secs(30),
            program: None,
            args: None,
            handoff_socket: None,
        }
    }
}

impl UpgraderBuilder {
    /// The signal that starts an upgrade (`None`: only
    /// [`Upgrader::upgrade`] does). Default `SIGUSR2`, as gunicorn and
    /// nginx.
    pub fn signal(mut self, signal: Option<SignalKind>) -> Self {
        self.signal = signal;
        self
    }

    /// How long the new process has to report ready before it is killed
    /// and the upgrade rolled back. Default 30 s.
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// The program to start (default: this process's executable path as
    /// it was at start, so a deploy that replaced the file starts the new
    /// version).
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// Its arguments (default: this process's).
    pub fn args(mut self, args: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// A Unix socket path for hand-overs to a process this one did not
    /// start (a supervisor or a container runtime starts it): at build, a
    /// process finds the old one listening there and asks it for its
    /// sockets; once ready (and once it has taken over), it listens there
    /// itself for the next one. The socket is created with mode 0600 and
    /// only a peer of the same user is served.
    ///
    /// The path is never clobbered: [`build`](Self::build) fails with
    /// [`Error::is_config`] when something other than this user's socket
    /// stands there (a regular file, a symbolic link, a directory, another
    /// user's socket), and at exit only the socket this process created is
    /// removed.
    pub fn handoff_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.handoff_socket = Some(path.into());
        self
    }

    /// Builds the upgrader: takes the sockets an old process handed over
    /// (by exec or through the hand-off socket), and listens for the
    /// upgrade signal.
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] when the hand-off socket path holds something
    /// that is not this user's socket (nothing is changed);
    /// [`Error::is_environment`] when the hand-over variables are malformed
    /// or the old process refused the hand-over; [`Error::is_inherit`]
    /// when a passed descriptor is not open.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// It takes a [`ShutdownHandle`] (from `Shutdown::handle`), not a token:
    /// an upgrade that succeeds triggers this process's shutdown.
    pub fn build(self, shutdown: &ShutdownHandle) -> Result<Upgrader, Error> {
        let token = &shutdown.token();
        if let Some(path) = &self.handoff_socket {
            control::check_handoff_path(path)?;
        }
        let program = match self.program {
            Some(program) => program,
            None => std::env::current_exe().map_err(|err| {
                Error::environment(format!(
                    "cannot find this process's executable for upgrades: {err}"
                ))
            })?,
        };
        let args = self
            .args
            .unwrap_or_else(|| std::env::args_os().skip(1).collect());
        let exec_env = control::from_exec_env()?;
        // Started by the old process's exec: in a process group of its own
        // until it takes over (see `exec_child`).
        let started_by_exec = exec_env.is_some();
        let (inherited, control) = match exec_env {
            Some(handed) => handed,
            None => match &self.handoff_socket {
                Some(path) => {
                    control::request_handoff(path, self.ready_timeout)?.unwrap_or_default()
                }
                None => Default::default(),
            },
        };
        let took_over = control.is_some();
        if took_over {
            let names: Vec<&str> = inherited
                .iter()
                .map(|passed| passed.name.as_str())
                .collect();
            tracing::info!(?names, "taking over from the previous process");
        }
        let inner = Arc::new(Inner {
            token: token.clone(),
            shutdown: shutdown.clone(),
            ready_timeout: self.ready_timeout,
            program,
            args,
            handoff_socket: self.handoff_socket,
            inherited: Mutex::new(inherited),
            control: Mutex::new(control),
            passing: Mutex::new(Vec::new()),
            gate: CancellationToken::new(),
            busy: AtomicBool::new(false),
            took_over,
            started_by_exec,
        });
        let upgrader = Upgrader { inner };
        // Once draining, no upgrade can start: the copies kept for one are
        // closed, so that the server's own close really closes the socket.
        let weak = Arc::downgrade(&upgrader.inner);
        let draining = token.clone();
        tokio::spawn(async move {
            draining.reached(Phase::Draining).await;
            if let Some(inner) = weak.upgrade() {
                lock(&inner.passing).clear();
            }
        });
        if let Some(kind) = self.signal {
            let mut signals = tokio::signal::unix::signal(kind).map_err(|err| {
                Error::environment(format!("cannot listen for the upgrade signal: {err}"))
            })?;
            let weak = Arc::downgrade(&upgrader.inner);
            tokio::spawn(async move {
                while signals.recv().await.is_some() {
                    let Some(inner) = weak.upgrade() else { break };
                    tracing::info!("upgrade signal received");
                    let upgrader = Upgrader { inner };
                    tokio::spawn(async move {
                        // The outcome is logged by `upgrade`.
                        let _ = upgrader.upgrade().await;
                    });
                }
            });
        }
        Ok(upgrader)
    }
}

/// Hands this process's listening sockets to its successor; see the
/// [module documentation](self).
///
/// # Examples
///
/// ```no_run
/// use seaworthy_listener::upgrade::Upgrader;
/// use seaworthy_listener::{Bind, Server};
/// use seaworthy_shutdown::Shutdown;
///
/// # async fn run(router: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
/// let shutdown = Shutdown::builder().build()?;
/// // Takes over the sockets of the process that started this one, if any.
/// let upgrader = Upgrader::builder().build(&shutdown.handle())?;
/// let listener = upgrader.listener("http", Bind::tcp("127.0.0.1:8000".parse()?))?;
/// shutdown.spawn("http", Server::new().serve(listener, router, shutdown.token()));
/// // ... once the health checks pass:
/// upgrader.ready().await?;
/// // SIGUSR2 now starts the new binary and hands over.
/// std::process::exit(shutdown.wait().await.exit_code());
/// # }
/// ```
#[derive(Clone)]
pub struct Upgrader {
    inner: Arc<Inner>,
}

struct Inner {
    token: ShutdownToken,
    /// Triggers the shutdown once the new process has taken over.
    shutdown: ShutdownHandle,
    ready_timeout: Duration,
    program: PathBuf,
    args: Vec<OsString>,
    handoff_socket: Option<PathBuf>,
    /// Sockets the previous process passed, until taken.
    inherited: Mutex<Vec<Passed>>,
    /// The channel to the previous process, until ready.
    control: Mutex<Option<StdUnixStream>>,
    /// This process's listening sockets (duplicates), to pass on.
    passing: Mutex<Vec<Passed>>,
    /// Fires when this process is ready and accepting may start: on a
    /// first start at `ready()`, when taking over once the old process
    /// has answered.
    gate: CancellationToken,
    /// An upgrade is under way (or done: this process steps down).
    busy: AtomicBool,
    took_over: bool,
    started_by_exec: bool,
}

/// A listening socket passed between processes.
#[derive(Debug)]
pub(crate) struct Passed {
    pub(crate) name: String,
    pub(crate) fd: Option<OwnedFd>,
    /// The receiving process will be its only user (it was bound, not
    /// passed by systemd): it may filter it when it shuts down for good.
    pub(crate) exclusive: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Upgrader {
    /// Options; see [`UpgraderBuilder`].
    pub fn builder() -> UpgraderBuilder {
        UpgraderBuilder::default()
    }

    /// The listening socket `name`: the one the previous process handed
    /// over under that name; else, as [`Listener::inherit_or_bind`], the
    /// systemd socket of that name or a new one bound with `bind`. Either
    /// way it is passed on at the next upgrade.
    ///
    /// A socket taken over accepts nothing until [`ready`](Self::ready)
    /// has been answered by the previous process.
    ///
    /// # Errors
    ///
    /// [`Error::is_environment`] when `name` is empty or holds `:`, `,` or
    /// whitespace; otherwise as [`Listener::inherit_or_bind`].
    pub fn listener(&self, name: &str, bind: Bind) -> Result<Listener, Error> {
        if name.is_empty() || name.contains([':', ',']) || name.contains(char::is_whitespace) {
            return Err(Error::environment(format!(
                "invalid socket name {name:?}: use letters, digits, '-' or '_'"
            )));
        }
        let taken = lock(&self.inner.inherited)
            .iter_mut()
            .find(|passed| passed.name == name && passed.fd.is_some())
            .map(|passed| (passed.fd.take().expect("checked above"), passed.exclusive));
        let listener = match taken {
            Some((fd, exclusive)) => {
                let mut listener = Listener::from_inherited_fd(
                    fd,
                    Source::Handoff {
                        name: name.to_owned(),
                    },
                )?;
                listener.set_handoff(self.inner.gate.clone(), exclusive);
                listener
            }
            None => Listener::inherit_or_bind(name, bind)?,
        };
        let fd = listener.as_fd().try_clone_to_owned().map_err(|err| {
            Error::inherit(
                format!("cannot keep socket {name:?} for upgrades"),
                Some(err),
            )
        })?;
        lock(&self.inner.passing).push(Passed {
            name: name.to_owned(),
            fd: Some(fd),
            exclusive: listener.is_exclusive(),
        });
        Ok(listener)
    }

    /// Whether this process took its sockets over from a previous one.
    pub fn took_over(&self) -> bool {
        self.inner.took_over
    }

    /// Reports this process ready: call it once the health checks pass.
    ///
    /// Taking over, it tells the previous process and waits for its
    /// answer; then accepting starts. It tells systemd `READY=1` (and
    /// `MAINPID=` when taking over), starts serving the hand-off socket
    /// when one is set, and from now on takes upgrade requests. Calling it
    /// again does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::is_environment`] when the previous process refused the
    /// hand-over (it timed out waiting, or began to shut down): this
    /// process must exit without serving. If the previous process is gone
    /// instead, this one serves (someone has to).
    pub async fn ready(&self) -> Result<(), Error> {
        if self.inner.gate.is_cancelled() {
            return Ok(());
        }
        let control = lock(&self.inner.control).take();
        if let Some(control) = control {
            control::report_ready(control).await?;
            if self.inner.started_by_exec {
                control::rejoin_parent_group();
            }
        }
        let unused: Vec<String> = lock(&self.inner.inherited)
            .drain(..)
            .filter(|passed| passed.fd.is_some())
            .map(|passed| passed.name)
            .collect();
        if !unused.is_empty() {
            tracing::warn!(names = ?unused, "closing handed-over sockets this version does not use");
        }
        self.inner.gate.cancel();
        let pid = std::process::id();
        if self.inner.took_over {
            notify::send(&[notify::State::MainPid(pid), notify::State::Ready]);
        } else {
            notify::send(&[notify::State::Ready]);
        }
        let token = self.inner.token.clone();
        tokio::spawn(async move {
            token.reached(Phase::Draining).await;
            if token.reason() != Some(ShutdownReason::Upgrade) {
                notify::send(&[notify::State::Stopping]);
            }
        });
        if let Some(path) = self.inner.handoff_socket.clone() {
            control::serve_handoff(self.clone(), path);
        }
        Ok(())
    }

    /// Starts the new binary, hands it the listening sockets, waits for it
    /// to report ready, then drains this process with
    /// [`ShutdownReason::Upgrade`]. Returns the new process's id.
    ///
    /// # Errors
    ///
    /// See [`UpgradeError`]; on every error this process keeps serving as
    /// before, and the next upgrade may be tried.
    pub async fn upgrade(&self) -> Result<u32, UpgradeError> {
        let result = self.try_upgrade().await;
        match &result {
            Ok(pid) => tracing::info!(pid, "upgrade: the new process took over; draining"),
            // As an error: subscribers print its source (the I/O error).
            Err(err) => tracing::warn!(
                error = err as &(dyn std::error::Error + 'static),
                "upgrade failed; still serving"
            ),
        }
        result
    }

    async fn try_upgrade(&self) -> Result<u32, UpgradeError> {
        let claim = self.claim()?;
        notify::send(&[notify::State::Reloading, notify::State::MonotonicNow]);
        match self.exec_child().await {
            Ok(pid) => {
                claim.step_down();
                Ok(pid)
            }
            Err(err) => {
                notify::send(&[notify::State::Ready]);
                Err(err)
            }
        }
    }

    /// Takes the one upgrade slot, or says why not.
    fn claim(&self) -> Result<Claim<'_>, UpgradeError> {
        if !self.inner.gate.is_cancelled() {
            return Err(UpgradeError::NotReady);
        }
        if self.inner.token.is_shutting_down() {
            return Err(UpgradeError::ShuttingDown);
        }
        if self.inner.busy.swap(true, Ordering::AcqRel) {
            return Err(UpgradeError::InProgress);
        }
        Ok(Claim(Some(&self.inner.busy)))
    }

    async fn exec_child(&self) -> Result<u32, UpgradeError> {
        let (ours, theirs) = StdUnixStream::pair().map_err(UpgradeError::Spawn)?;
        let mut command = tokio::process::Command::new(&self.inner.program);
        command.args(&self.inner.args);
        let mut child = {
            // Held until the fork is done: the descriptors named stay open.
            let passing = lock(&self.inner.passing);
            let mut keep: Vec<RawFd> = passing
                .iter()
                .filter_map(|p| p.fd.as_ref().map(AsRawFd::as_raw_fd))
                .collect();
            keep.push(theirs.as_raw_fd());
            command
                .env(ENV_FDS, control::describe(&passing))
                .env(ENV_CONTROL, theirs.as_raw_fd().to_string())
                .env(ENV_PARENT, std::process::id().to_string());
            crate::sys::keep_across_exec(&mut command, keep);
            // A process group of its own: if it fails, everything it
            // started goes with it (a script's children would otherwise keep
            // the listening sockets, and clients would hang on them after
            // this process exits). It rejoins this process's group once it
            // takes over.
            command.process_group(0);
            command.spawn().map_err(UpgradeError::Spawn)?
        };
        drop(theirs);
        let pid = child.id().unwrap_or_default();
        tracing::info!(pid, program = %self.inner.program.display(), "upgrade: started the new process");
        let outcome = control::await_ready(
            ours,
            &mut child,
            self.inner.ready_timeout,
            &self.inner.token,
        )
        .await;
        match outcome {
            Ok(mut channel) => {
                notify::send(&[notify::State::MainPid(pid)]);
                if let Err(err) = channel.go().await {
                    return Err(rollback(child, UpgradeError::Io(err)).await);
                }
                self.inner.shutdown.trigger(ShutdownReason::Upgrade);
                // The child outlives this process; tokio reaps it if it
                // exits first.
                drop(child);
                Ok(pid)
            }
            Err(err) => Err(rollback(child, err).await),
        }
    }

    /// The descriptors to hand over, with their names (for the hand-off
    /// socket).
    pub(crate) fn passing(&self) -> MutexGuard<'_, Vec<Passed>> {
        lock(&self.inner.passing)
    }

    pub(crate) fn token(&self) -> &ShutdownToken {
        &self.inner.token
    }

    pub(crate) fn shutdown(&self) -> &ShutdownHandle {
        &self.inner.shutdown
    }

    pub(crate) fn ready_timeout(&self) -> Duration {
        self.inner.ready_timeout
    }
}

/// Kills and reaps a new process that did not take over, and every
/// process in its group (what it started); says why.
async fn rollback(mut child: tokio::process::Child, err: UpgradeError) -> UpgradeError {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        // The group is the child's own (`process_group(0)`), and exists
        // until the child is reaped below.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.start_kill();
    match child.wait().await {
        Ok(status) => match err {
            // The status says more than "the channel closed".
            UpgradeError::Closed => UpgradeError::Exited(status),
            err => {
                tracing::debug!(%status, "upgrade: the new process was killed");
                err
            }
        },
        Err(wait) => {
            tracing::warn!(error = %wait, "upgrade: cannot reap the new process");
            err
        }
    }
}

/// The upgrade slot, released when dropped.
/// The one upgrade slot, taken: given back when dropped (the upgrade
/// failed, this process serves on), or kept for good with
/// [`step_down`](Self::step_down).
struct Claim<'a>(Option<&'a AtomicBool>);

impl Claim<'_> {
    /// The new process took over: this one steps down, and the slot stays
    /// taken for the rest of its life, so no second upgrade (or hand-over)
    /// starts from a process that is draining.
    fn step_down(mut self) {
        self.0 = None;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(busy) = self.0 {
            busy.store(false, Ordering::Release);
        }
    }
}

impl fmt::Debug for Upgrader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrader")
            .field("program", &self.inner.program)
            .field("ready_timeout", &self.inner.ready_timeout)
            .field("handoff_socket", &self.inner.handoff_socket)
            .field("took_over", &self.inner.took_over)
            .field("ready", &self.inner.gate.is_cancelled())
            .field("busy", &self.inner.busy.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Why an upgrade did not happen. This process keeps serving after each.
#[derive(Debug)]
#[non_exhaustive]
pub enum UpgradeError {
    /// Another upgrade is under way (or done: this process steps down).
    InProgress,
    /// This process has not reported ready yet.
    NotReady,
    /// This process is shutting down.
    ShuttingDown,
    /// The new program could not be started.
    Spawn(io::Error),
    /// The new process exited before it was ready.
    Exited(ExitStatus),
    /// The new process closed the hand-over channel before it was ready.
    Closed,
    /// The new process was not ready in time.
    TimedOut(Duration),
    /// The shutdown began while the new process was starting.
    Aborted,
    /// The hand-over channel failed.
    Io(io::Error),
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpgradeError::InProgress => f.write_str("an upgrade is already under way"),
            UpgradeError::NotReady => f.write_str("this process is not ready yet"),
            UpgradeError::ShuttingDown => f.write_str("this process is shutting down"),
            // The I/O error is the source, not repeated here.
            UpgradeError::Spawn(_) => f.write_str("cannot start the new program"),
            UpgradeError::Exited(status) => {
                write!(f, "the new process exited before it was ready ({status})")
            }
            UpgradeError::Closed => {
                f.write_str("the new process closed the hand-over channel before it was ready")
            }
            UpgradeError::TimedOut(after) => {
                write!(
                    f,
                    "the new process was not ready after {after:?}; killed it"
                )
            }
            UpgradeError::Aborted => {
                f.write_str("the shutdown began while the new process was starting; killed it")
            }
            UpgradeError::Io(_) => f.write_str("the hand-over channel failed"),
        }
    }
}

impl std::error::Error for UpgradeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpgradeError::Spawn(err) | UpgradeError::Io(err) => Some(err),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_with_a_source_says_it_once() {
        let err = UpgradeError::Spawn(std::io::Error::from(std::io::ErrorKind::NotFound));
        let text = err.to_string();
        let source = std::error::Error::source(&err)
            .expect("the I/O error")
            .to_string();
        assert_eq!(text, "cannot start the new program");
        assert!(!text.contains(&source), "{text} / {source}");
        assert!(std::error::Error::source(&UpgradeError::NotReady).is_none());
    }

    #[test]
    fn a_claim_is_given_back_unless_the_process_steps_down() {
        let busy = AtomicBool::new(true);
        drop(Claim(Some(&busy)));
        assert!(!busy.load(Ordering::Acquire));
        busy.store(true, Ordering::Release);
        Claim(Some(&busy)).step_down();
        assert!(busy.load(Ordering::Acquire));
    }
}
