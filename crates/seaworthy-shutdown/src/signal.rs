//! Listening for the signals that trigger, force and abort a shutdown.

use std::sync::{Arc, Weak};

use crate::shutdown::Inner;
use crate::{BuildError, Signal};

/// Starts one task per signal that forwards each arrival to the coordinator.
///
/// The tasks hold only a weak reference, so they never keep a dropped
/// coordinator alive.
pub(crate) fn listen(inner: &Arc<Inner>, signals: &[Signal]) -> Result<(), BuildError> {
    for &signal in signals {
        let mut stream = imp::stream(signal).map_err(|err| BuildError::signal(signal, err))?;
        let weak: Weak<Inner> = Arc::downgrade(inner);
        tokio::spawn(async move {
            while imp::recv(&mut stream).await {
                let Some(inner) = weak.upgrade() else { break };
                inner.on_signal(signal);
            }
        });
    }
    Ok(())
}

#[cfg(unix)]
mod imp {
    use std::io;

    use tokio::signal::unix::{self, SignalKind};

    use crate::Signal;

    pub(super) type Stream = unix::Signal;

    pub(super) fn stream(signal: Signal) -> io::Result<Stream> {
        let kind = match signal {
            Signal::Term => SignalKind::terminate(),
            Signal::Int => SignalKind::interrupt(),
            Signal::Quit => SignalKind::quit(),
            Signal::Hup => SignalKind::hangup(),
        };
        unix::signal(kind)
    }

    pub(super) async fn recv(stream: &mut Stream) -> bool {
        stream.recv().await.is_some()
    }
}

#[cfg(not(unix))]
mod imp {
    use std::io;

    use crate::Signal;

    /// Only Ctrl-C exists here; it stands for `SIGINT`.
    #[derive(Debug)]
    pub(super) struct Stream(tokio::signal::windows::CtrlC);

    pub(super) fn stream(signal: Signal) -> io::Result<Stream> {
        match signal {
            Signal::Int => tokio::signal::windows::ctrl_c().map(Stream),
            other => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{other} does not exist on this platform"),
            )),
        }
    }

    pub(super) async fn recv(stream: &mut Stream) -> bool {
        stream.0.recv().await.is_some()
    }
}
