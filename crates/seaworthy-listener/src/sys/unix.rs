//! Unix system calls that the safe wrappers (std, tokio, socket2) do not
//! cover: taking ownership of an inherited descriptor, and removing the
//! socket-activation variables from the environment.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Calls a libc function, mapping `-1` to the last OS error.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: the caller states why the call is sound at each use.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Takes ownership of an inherited descriptor after checking that it is open.
///
/// The caller must own `fd` (it was passed to this process, by systemd's
/// `LISTEN_FDS` or seaworthy's handoff, and nothing else in the process has
/// taken it) and call this once per descriptor: the returned `OwnedFd`
/// closes it when dropped.
pub(crate) fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "negative file descriptor",
        ));
    }
    // SAFETY: F_GETFD only reads the descriptor's flags; on a closed or
    // invalid descriptor it fails with EBADF and has no other effect.
    syscall!(fcntl(fd, libc::F_GETFD))?;
    // SAFETY: `fd` is open (checked just above) and owned by this process by
    // the socket-passing protocol; the callers (the systemd and handoff
    // registries) hand each descriptor out once, so no other `OwnedFd` or
    // user of the raw number exists.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Removes `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES` from the process
/// environment, so that child processes do not see sockets meant for this
/// one (systemd's `sd_listen_fds(1)` does the same).
pub(crate) fn remove_listen_env() {
    remove_env(&["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]);
}

/// Removes variables that described descriptors passed to this process (the
/// socket-activation ones, the upgrade hand-over's), so that processes it
/// starts do not see them.
pub(crate) fn remove_env(names: &[&str]) {
    for &name in names {
        // SAFETY: `remove_var` is unsafe because another thread may read the
        // environment at the same time through libc (`getenv`), outside
        // std's environment lock. This runs once, when the first inherited
        // socket is taken, which the crate documents as a start-up step to
        // do before spawning threads that read the environment through
        // libc; std's own readers take the lock and are safe.
        unsafe { std::env::remove_var(name) };
    }
}

/// Lets `fds` survive the `exec` of `command`: in the child, between fork
/// and exec, close-on-exec is cleared on exactly these descriptors. Every
/// other descriptor of the process keeps its close-on-exec flag (std and
/// tokio open all of theirs with it), so the new program inherits nothing
/// else.
pub(crate) fn keep_across_exec(command: &mut tokio::process::Command, fds: Vec<RawFd>) {
    let clear = move || {
        for &fd in &fds {
            // SAFETY: fcntl(F_SETFD) changes only the descriptor's flags; it
            // is async-signal-safe, so it may run between fork and exec.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe work is allowed: it calls fcntl(2) alone, reads a
    // vector built before the fork, and neither allocates nor locks
    // (`last_os_error` reads errno).
    unsafe {
        command.pre_exec(clear);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adopting_a_closed_descriptor_fails_without_side_effects() {
        // Far above anything this test process opens.
        let err = adopt_fd(100_000).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        assert!(adopt_fd(-1).is_err());
    }
}
