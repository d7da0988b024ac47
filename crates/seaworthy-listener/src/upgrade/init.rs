//! A PID 1 for in-place upgrades in a container: [`init`].
//!
//! An upgrade starts the new server as a child of the old one, and the old
//! one exits at the end of its drain. As PID 1 of a container, that exit
//! would end the container, the new server with it; and the usual tiny
//! inits (tini, dumb-init, `docker run --init`) exit as soon as their
//! direct child does, which is the same thing one level up. [`init`]
//! stays: it starts the server, forwards the signals a supervisor sends
//! (SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2) to whichever
//! server is its child now, reaps every process that ends (the old server
//! of each upgrade, and any orphan), and exits when no child is left, with
//! the last one's exit code. Outside PID 1 it makes itself a child
//! subreaper (Linux), so that it works the same under any supervisor.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

/// The signals forwarded to the server.
const FORWARDED: [(SignalKind, Signal); 6] = [
    (SignalKind::terminate(), Signal::SIGTERM),
    (SignalKind::interrupt(), Signal::SIGINT),
    (SignalKind::quit(), Signal::SIGQUIT),
    (SignalKind::hangup(), Signal::SIGHUP),
    (SignalKind::user_defined1(), Signal::SIGUSR1),
    (SignalKind::user_defined2(), Signal::SIGUSR2),
];

/// Runs `program` with `args` as the server and supervises it: a PID 1
/// for in-place upgrades in a container. An upgrade starts the new server
/// as a child of the old one, and the old one exits at the end of its
/// drain; as PID 1 that exit would end the container, and tini or
/// dumb-init (`docker run --init`) exit as soon as their direct child
/// does. This stays: it forwards SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1
/// and SIGUSR2 to whichever server is its child now, reaps every process
/// that ends (each upgrade's old server, any orphan), and returns when no
/// child is left, with the code to exit with (the last server's code, or
/// 128 + the signal that ended it). Outside PID 1 it makes itself a child
/// subreaper (Linux), so that it works the same under any supervisor.
///
/// `seaworthy::App` runs it for the `init` command: a container's
/// entrypoint `app init` starts `app` under it.
///
/// # Errors
///
/// When the signal handlers cannot be installed or the server cannot be
/// started.
pub async fn init(program: impl AsRef<OsStr>, args: &[std::ffi::OsString]) -> io::Result<i32> {
    #[cfg(target_os = "linux")]
    if std::process::id() != 1
        && let Err(err) = nix::sys::prctl::set_child_subreaper(true)
    {
        tracing::warn!(error = %err, "init: cannot become a child subreaper; an upgraded server would be orphaned to PID 1");
    }
    // Installed before the server starts: nothing it does is missed.
    let mut children = signal(SignalKind::child())?;
    let mut forwarded = Vec::new();
    for (kind, signal_name) in FORWARDED {
        forwarded.push((signal(kind)?, signal_name));
    }
    let server = std::process::Command::new(program.as_ref())
        .args(args)
        .spawn()?;
    let first = Pid::from_raw(i32::try_from(server.id()).unwrap_or(i32::MAX));
    // Reaped below with waitpid, for this child and every later one.
    drop(server);
    tracing::info!(pid = first.as_raw(), "init: server started");
    let mut last_code = 0;
    loop {
        let mut received = None;
        tokio::select! {
            _ = children.recv() => {}
            // A poll as well: SIGCHLDs that arrive together are one.
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            signal = next_forwarded(&mut forwarded) => received = Some(signal),
        }
        if let Some(signal) = received {
            for child in own_children() {
                tracing::info!(%signal, pid = child.as_raw(), "init: forwarding");
                let _ = kill(child, signal);
            }
        }
        match reap(&mut last_code) {
            Reaped::Running => {}
            Reaped::NoneLeft => {
                tracing::info!(exit_code = last_code, "init: no server left; exiting");
                return Ok(last_code);
            }
        }
    }
}

/// The next signal to forward.
async fn next_forwarded(streams: &mut [(tokio::signal::unix::Signal, Signal)]) -> Signal {
    let polls = streams.iter_mut().map(|(stream, signal)| {
        let signal = *signal;
        Box::pin(async move {
            stream.recv().await;
            signal
        })
    });
    futures_select_all(polls).await
}

/// The first of `futures` to finish.
async fn futures_select_all<F: std::future::Future<Output = Signal> + Unpin>(
    futures: impl Iterator<Item = F>,
) -> Signal {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(move |cx| {
        for future in &mut futures {
            if let std::task::Poll::Ready(signal) = std::pin::Pin::new(future).poll(cx) {
                return std::task::Poll::Ready(signal);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

enum Reaped {
    Running,
    NoneLeft,
}

/// Reaps every child that has ended; whether any is left.
fn reap(last_code: &mut i32) -> Reaped {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                tracing::info!(pid = pid.as_raw(), code, "init: a process ended");
                *last_code = code;
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) => {
                tracing::info!(pid = pid.as_raw(), %signal, "init: a process was killed");
                *last_code = 128 + signal as i32;
            }
            Ok(WaitStatus::StillAlive) => return Reaped::Running,
            Ok(_) => {}
            Err(Errno::ECHILD) => return Reaped::NoneLeft,
            Err(Errno::EINTR) => {}
            Err(err) => {
                tracing::warn!(error = %err, "init: waitpid failed");
                return Reaped::Running;
            }
        }
    }
}

/// This process's children now: the server, or during an upgrade the old
/// server (the new one is its child until the old one ends).
fn own_children() -> Vec<Pid> {
    let me = std::process::id().to_string();
    let mut found = HashSet::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|name| name.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …: the command may hold spaces and
            // parentheses, so read after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if ppid == Some(me.as_str()) {
                found.insert(Pid::from_raw(pid));
            }
        }
    }
    found.into_iter().collect()
}
