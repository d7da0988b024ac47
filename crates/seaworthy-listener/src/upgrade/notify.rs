//! systemd's notification protocol (`sd_notify`), through the `sd-notify`
//! crate: sent only when `NOTIFY_SOCKET` is set, and never unset (the new
//! process of an upgrade needs it too).

/// What to tell systemd.
#[derive(Clone, Copy, Debug)]
pub(crate) enum State {
    /// `READY=1`: started, or an upgrade is over (taken over or rolled back).
    Ready,
    /// `RELOADING=1`: an upgrade begins.
    Reloading,
    /// `MONOTONIC_USEC=`: now, which systemd 253 and later require with
    /// `RELOADING=1`.
    MonotonicNow,
    /// `STOPPING=1`: draining for good (not for an upgrade).
    Stopping,
    /// `MAINPID=`: the process systemd should watch from now on.
    MainPid(u32),
}

/// Sends `states` in one datagram; a failure is logged, never fatal.
pub(crate) fn send(states: &[State]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let mut message = Vec::with_capacity(states.len());
    for state in states {
        message.push(match *state {
            State::Ready => sd_notify::NotifyState::Ready,
            State::Reloading => sd_notify::NotifyState::Reloading,
            State::Stopping => sd_notify::NotifyState::Stopping,
            State::MainPid(pid) => sd_notify::NotifyState::MainPid(pid),
            State::MonotonicNow => match sd_notify::NotifyState::monotonic_usec_now() {
                Ok(now) => now,
                Err(err) => {
                    tracing::debug!(error = %err, "cannot read the monotonic clock for systemd");
                    continue;
                }
            },
        });
    }
    match sd_notify::notify(&message) {
        Ok(()) => tracing::debug!(?states, "notified systemd"),
        Err(err) => tracing::warn!(error = %err, ?states, "cannot notify systemd"),
    }
}
