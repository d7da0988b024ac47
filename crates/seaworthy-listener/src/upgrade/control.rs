//! The hand-over protocol between the old and the new process.
//!
//! By exec: the old process sets `SEAWORTHY_UPGRADE_FDS`
//! (`fd:name:exclusive,...`), `SEAWORTHY_UPGRADE_CONTROL` (the new
//! process's end of a socket pair) and `SEAWORTHY_UPGRADE_PARENT` (its own
//! pid, so that a grandchild that inherited the variables by mistake
//! ignores them). Through the hand-off socket: the old process sends
//! `fds name:exclusive,...` with the descriptors attached (`SCM_RIGHTS`),
//! or `busy <why>`.
//!
//! Then, on the control channel, the new process writes `ready <pid>`, and
//! the old one answers `go` (it drains now) or `abort <why>` (the new
//! process must exit). End of file instead of an answer means the old
//! process is gone: the new one serves.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use seaworthy_shutdown::{Phase, ShutdownReason, ShutdownToken};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::{Passed, UpgradeError, Upgrader, notify};
use crate::Error;

pub(crate) const ENV_FDS: &str = "SEAWORTHY_UPGRADE_FDS";
pub(crate) const ENV_CONTROL: &str = "SEAWORTHY_UPGRADE_CONTROL";
pub(crate) const ENV_PARENT: &str = "SEAWORTHY_UPGRADE_PARENT";

/// The most descriptors one hand-over carries.
const MAX_FDS: usize = 64;

/// Received descriptors are close-on-exec from the start where the system
/// can (`MSG_CMSG_CLOEXEC`); elsewhere (macOS) adoption sets the flag a
/// moment later, before the listener is used.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
))]
const RECV_FLAGS: MsgFlags = MsgFlags::MSG_CMSG_CLOEXEC;
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
const RECV_FLAGS: MsgFlags = MsgFlags::empty();

/// What a new process receives: the sockets and the control channel.
pub(crate) type Handed = (Vec<Passed>, Option<StdUnixStream>);

/// `fd:name:exclusive,...` for the descriptors still held.
pub(crate) fn describe(passing: &[Passed]) -> String {
    passing
        .iter()
        .filter_map(|passed| {
            let fd = passed.fd.as_ref()?.as_raw_fd();
            Some(format!(
                "{fd}:{}:{}",
                passed.name,
                u8::from(passed.exclusive)
            ))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses `fd:name:exclusive,...` (or, with `with_fd` false,
/// `name:exclusive,...`).
pub(crate) fn parse(list: &str, with_fd: bool) -> Result<Vec<(RawFd, String, bool)>, String> {
    if list.trim().is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .enumerate()
        .map(|(index, entry)| {
            let mut parts = entry.trim().split(':');
            let fd = if with_fd {
                parts
                    .next()
                    .and_then(|fd| fd.parse::<RawFd>().ok())
                    .filter(|fd| *fd >= 0)
                    .ok_or_else(|| format!("entry {entry:?} has no descriptor number"))?
            } else {
                RawFd::try_from(index).unwrap_or(RawFd::MAX)
            };
            let name = parts
                .next()
                .filter(|name| !name.is_empty())
                .ok_or_else(|| format!("entry {entry:?} has no name"))?;
            let exclusive = match parts.next() {
                Some("1") => true,
                Some("0") => false,
                _ => return Err(format!("entry {entry:?} has no 0/1 flag")),
            };
            if parts.next().is_some() {
                return Err(format!("entry {entry:?} has too many fields"));
            }
            Ok((fd, name.to_owned(), exclusive))
        })
        .collect()
}

/// The sockets and channel an old process passed by exec, if this process
/// was started by an upgrade.
pub(crate) fn from_exec_env() -> Result<Option<Handed>, Error> {
    let var = |name| std::env::var(name).ok();
    let (fds, control, parent) = (var(ENV_FDS), var(ENV_CONTROL), var(ENV_PARENT));
    if fds.is_none() && control.is_none() && parent.is_none() {
        return Ok(None);
    }
    // Never passed on to this process's own children.
    crate::sys::remove_env(&[ENV_FDS, ENV_CONTROL, ENV_PARENT]);
    let invalid = |why: String| Error::environment(format!("invalid upgrade variables: {why}"));
    let parent: u32 = parent
        .as_deref()
        .and_then(|pid| pid.trim().parse().ok())
        .ok_or_else(|| invalid(format!("{ENV_PARENT} is not a process id")))?;
    if parent != std::os::unix::process::parent_id() {
        tracing::warn!(
            parent,
            "upgrade variables name a process that is not this one's parent; ignoring them"
        );
        return Ok(None);
    }
    let control: RawFd = control
        .as_deref()
        .and_then(|fd| fd.trim().parse().ok())
        .ok_or_else(|| invalid(format!("{ENV_CONTROL} is not a descriptor")))?;
    let entries = parse(fds.as_deref().unwrap_or_default(), true).map_err(invalid)?;
    // Every descriptor (the control one too) is owned before any error
    // returns: those already owned then close with it, and none named
    // after a bad one is left open and unowned.
    let adopted: Vec<_> = entries
        .into_iter()
        .map(|(fd, name, exclusive)| (fd, crate::sys::adopt_fd(fd), name, exclusive))
        .collect();
    let control = crate::sys::adopt_fd(control);
    let mut passed = Vec::with_capacity(adopted.len());
    for (raw, fd, name, exclusive) in adopted {
        let fd = fd.map_err(|err| {
            Error::inherit(
                format!("handed-over descriptor {raw} ({name:?}) is not open"),
                Some(err),
            )
        })?;
        // Not to leak into processes this one starts before taking it.
        let _ = socket2::SockRef::from(&fd).set_cloexec(true);
        passed.push(Passed {
            name,
            fd: Some(fd),
            exclusive,
        });
    }
    let control = control.map_err(|err| {
        Error::inherit(
            "the upgrade control descriptor is not open".to_owned(),
            Some(err),
        )
    })?;
    let _ = socket2::SockRef::from(&control).set_cloexec(true);
    Ok(Some((passed, Some(StdUnixStream::from(control)))))
}

/// Asks the process serving the hand-off socket at `path` for its sockets.
/// `Ok(None)` when nothing serves there (a first start).
pub(crate) fn request_handoff(path: &Path, timeout: Duration) -> Result<Option<Handed>, Error> {
    let stream = match StdUnixStream::connect(path) {
        Ok(stream) => stream,
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            tracing::debug!(path = %path.display(), "no process serves hand-overs; starting afresh");
            return Ok(None);
        }
        Err(err) => {
            return Err(Error::environment(format!(
                "cannot reach the hand-off socket {}: {err}",
                path.display()
            )));
        }
    };
    let failed = |why: String| {
        Error::environment(format!("hand-over from {} failed: {why}", path.display()))
    };
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|err| failed(err.to_string()))?;
    let mut buf = [0_u8; 4096];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (len, raw) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let message = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut space), RECV_FLAGS)
            .map_err(|err| failed(format!("no answer: {err}")))?;
        let mut raw = Vec::new();
        for cmsg in message.cmsgs().map_err(|err| failed(err.to_string()))? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                raw.extend(fds);
            }
        }
        (message.bytes, raw)
    };
    // Own every descriptor before any error returns, so that an error
    // closes them all (not only those before it).
    let adopted: Vec<_> = raw.into_iter().map(crate::sys::adopt_fd).collect();
    let fds = adopted
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| failed(err.to_string()))?;
    let text = String::from_utf8_lossy(&buf[..len]);
    let line = text.trim_end();
    if let Some(why) = line.strip_prefix("busy") {
        return Err(failed(format!("the old process refused:{why}")));
    }
    let list = line
        .strip_prefix("fds")
        .ok_or_else(|| failed(format!("unexpected answer {line:?}")))?;
    let entries = parse(list.trim(), false).map_err(failed)?;
    if entries.len() != fds.len() {
        return Err(failed(format!(
            "{} names for {} descriptors",
            entries.len(),
            fds.len()
        )));
    }
    let passed = entries
        .into_iter()
        .zip(fds)
        .map(|((_, name, exclusive), fd)| Passed {
            name,
            fd: Some(fd),
            exclusive,
        })
        .collect();
    let _ = stream.set_read_timeout(None);
    tracing::info!(path = %path.display(), "received sockets through the hand-off socket");
    Ok(Some((passed, Some(stream))))
}

/// The new process's side: says ready and waits for the answer.
pub(crate) async fn report_ready(control: StdUnixStream) -> Result<(), Error> {
    let io = |err: io::Error| Error::environment(format!("upgrade control channel: {err}"));
    control.set_nonblocking(true).map_err(io)?;
    let mut channel = Channel::new(UnixStream::from_std(control).map_err(io)?);
    if let Err(err) = channel.send(&format!("ready {}", std::process::id())).await {
        tracing::warn!(error = %err, "the previous process is gone; serving");
        return Ok(());
    }
    match channel.line().await {
        Some(line) if line == "go" => {
            tracing::info!("the previous process handed over; accepting");
            Ok(())
        }
        Some(line) => Err(Error::environment(format!(
            "the previous process refused the hand-over: {}",
            line.strip_prefix("abort ").unwrap_or(&line)
        ))),
        None => {
            tracing::warn!("the previous process went away before answering; serving");
            Ok(())
        }
    }
}

/// A new process started by the old one's exec leads a process group of its
/// own (so that a failed one can be killed with its children); once it has
/// taken over, it rejoins the group of the process that started it, so that
/// a terminal's Ctrl-C and a supervisor's group signals reach it as before.
pub(crate) fn rejoin_parent_group() {
    use nix::unistd::{Pid, getpgid, getppid, setpgid};
    let rejoined = getpgid(Some(getppid())).and_then(|group| setpgid(Pid::from_raw(0), group));
    if let Err(err) = rejoined {
        tracing::debug!(error = %err, "cannot rejoin the previous process's group");
    }
}

/// One side of the control channel, by lines.
pub(crate) struct Channel {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Channel {
    fn new(stream: UnixStream) -> Self {
        let (reader, writer) = stream.into_split();
        Channel {
            reader: BufReader::new(reader),
            writer,
        }
    }

    async fn send(&mut self, line: &str) -> io::Result<()> {
        self.writer.write_all(format!("{line}\n").as_bytes()).await
    }

    /// The next line; `None` at end of file or on error.
    async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end().to_owned()),
        }
    }

    /// Tells the new process to take over.
    pub(crate) async fn go(&mut self) -> io::Result<()> {
        self.send("go").await
    }

    /// Waits for `ready`, the new process's exit, the timeout, or this
    /// process's own shutdown.
    async fn await_ready(
        &mut self,
        child: Option<&mut tokio::process::Child>,
        timeout: Duration,
        token: &ShutdownToken,
    ) -> Result<(), UpgradeError> {
        let exited = async {
            match child {
                Some(child) => child.wait().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            line = self.line() => match line {
                Some(line) if line.starts_with("ready") => Ok(()),
                _ => Err(UpgradeError::Closed),
            },
            status = exited => Err(match status {
                Ok(status) => UpgradeError::Exited(status),
                Err(err) => UpgradeError::Io(err),
            }),
            () = tokio::time::sleep(timeout) => Err(UpgradeError::TimedOut(timeout)),
            () = token.reached(Phase::Draining) => Err(UpgradeError::Aborted),
        }
    }
}

/// The old process's side, by exec: waits for the child to report ready.
pub(crate) async fn await_ready(
    ours: StdUnixStream,
    child: &mut tokio::process::Child,
    timeout: Duration,
    token: &ShutdownToken,
) -> Result<Channel, UpgradeError> {
    ours.set_nonblocking(true).map_err(UpgradeError::Io)?;
    let mut channel = Channel::new(UnixStream::from_std(ours).map_err(UpgradeError::Io)?);
    channel.await_ready(Some(child), timeout, token).await?;
    Ok(channel)
}

/// Checks that the hand-off socket path may be (re)bound: nothing is
/// there, or a socket this user owns (this process's predecessor's, or one
/// left by a process that died). Anything else (a regular file, a
/// directory, a symlink, another user's socket) is never touched.
pub(crate) fn check_handoff_path(path: &Path) -> Result<(), Error> {
    let refuse = |why: String, err: Option<io::Error>| {
        Err(Error::config(
            format!(
                "the upgrade hand-off socket path {} {why}; it is left as it is",
                path.display()
            ),
            err,
        ))
    };
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let parent = path
                .parent()
                .filter(|parent| !parent.as_os_str().is_empty());
            if parent.is_some_and(|parent| !parent.is_dir()) {
                return refuse("is in a directory that does not exist".to_owned(), None);
            }
            return Ok(());
        }
        Err(err) => return refuse("cannot be inspected".to_owned(), Some(err)),
    };
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    if !kind.is_socket() {
        let what = if kind.is_symlink() {
            "a symbolic link"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "a file that is not a socket"
        };
        return refuse(format!("is {what}"), None);
    }
    let ours = nix::unistd::geteuid().as_raw();
    if metadata.uid() != ours {
        return refuse(
            format!("is a socket of another user (uid {})", metadata.uid()),
            None,
        );
    }
    Ok(())
}

/// Serves hand-overs at `path` until this process drains. The socket is
/// bound before this returns, so a process started once this one said it
/// was ready finds it.
pub(crate) fn serve_handoff(upgrader: Upgrader, path: PathBuf) {
    let off = |what: &str, err: &dyn std::fmt::Display| {
        tracing::warn!(path = %path.display(), error = %err, "{what}; hand-overs off");
    };
    // Checked at build too; again here, since the path may have changed
    // since. Only a socket of this user's is ever replaced.
    if let Err(err) = check_handoff_path(&path) {
        return off("will not replace the hand-off socket path", &err);
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return off("cannot replace the hand-off socket", &err),
    }
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(err) => return off("cannot bind the hand-off socket", &err),
    };
    if let Err(err) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        return off("cannot restrict the hand-off socket", &err);
    }
    // What this process created, to remove that and nothing else at exit.
    let created = std::fs::symlink_metadata(&path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()));
    tokio::spawn(async move {
        let owner = std::fs::metadata(&path).map(|meta| meta.uid()).ok();
        tracing::info!(path = %path.display(), "serving hand-overs");
        let token = upgrader.token().clone();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = token.reached(Phase::Draining) => break,
            };
            let Ok((stream, _)) = accepted else { continue };
            let upgrader = upgrader.clone();
            tokio::spawn(async move { hand_over(&upgrader, stream, owner).await });
        }
        let still_ours = std::fs::symlink_metadata(&path)
            .ok()
            .map(|meta| (meta.dev(), meta.ino()))
            .is_some_and(|now| Some(now) == created);
        if token.reason() != Some(ShutdownReason::Upgrade) && still_ours {
            let _ = std::fs::remove_file(&path);
        }
    });
}

/// One hand-over to a process that asked through the hand-off socket.
async fn hand_over(upgrader: &Upgrader, stream: UnixStream, owner: Option<u32>) {
    let peer = stream.peer_cred().ok();
    let pid = peer.and_then(|cred| cred.pid()).unwrap_or_default();
    let pid = u32::try_from(pid).unwrap_or_default();
    let mut channel = Channel::new(stream);
    if peer.map(|cred| cred.uid()) != owner {
        tracing::warn!(
            pid,
            "hand-over refused: the asking process runs as another user"
        );
        let _ = channel.send("busy another user").await;
        return;
    }
    let claim = match upgrader.claim() {
        Ok(claim) => claim,
        Err(err) => {
            tracing::warn!(pid, error = %err, "hand-over refused");
            let _ = channel.send(&format!("busy {err}")).await;
            return;
        }
    };
    tracing::info!(pid, "hand-over: a new process asks for the sockets");
    notify::send(&[notify::State::Reloading, notify::State::MonotonicNow]);
    let result = async {
        channel.send_fds(upgrader).await.map_err(UpgradeError::Io)?;
        channel
            .await_ready(None, upgrader.ready_timeout(), upgrader.token())
            .await?;
        notify::send(&[notify::State::MainPid(pid)]);
        channel.go().await.map_err(UpgradeError::Io)
    }
    .await;
    match result {
        Ok(()) => {
            claim.step_down();
            upgrader.shutdown().trigger(ShutdownReason::Upgrade);
            tracing::info!(pid, "hand-over: the new process took over; draining");
        }
        Err(err) => {
            // The new process prints it: the whole chain, in one line.
            let reason = match std::error::Error::source(&err) {
                Some(source) => format!("{err}: {source}"),
                None => err.to_string(),
            };
            let _ = channel.send(&format!("abort {reason}")).await;
            notify::send(&[notify::State::Ready]);
            tracing::warn!(
                pid,
                error = &err as &(dyn std::error::Error + 'static),
                "hand-over failed; still serving"
            );
        }
    }
}

impl Channel {
    /// Sends the names and, attached, the descriptors.
    async fn send_fds(&mut self, upgrader: &Upgrader) -> io::Result<()> {
        // Copies, owned here: the originals may be closed meanwhile.
        let (line, owned) = {
            let passing = upgrader.passing();
            let mut names = Vec::new();
            let mut owned = Vec::new();
            for passed in passing.iter() {
                if let Some(fd) = &passed.fd {
                    owned.push(fd.try_clone()?);
                    names.push(format!("{}:{}", passed.name, u8::from(passed.exclusive)));
                }
            }
            (format!("fds {}\n", names.join(",")), owned)
        };
        let fds: Vec<RawFd> = owned.iter().map(AsRawFd::as_raw_fd).collect();
        let socket = self.writer.as_ref();
        loop {
            socket.writable().await?;
            let sent = socket.try_io(Interest::WRITABLE, || {
                sendmsg::<()>(
                    socket.as_raw_fd(),
                    &[io::IoSlice::new(line.as_bytes())],
                    &[ControlMessage::ScmRights(&fds)],
                    MsgFlags::empty(),
                    None,
                )
                .map_err(io::Error::from)
            });
            match sent {
                Ok(n) if n == line.len() => return Ok(()),
                Ok(_) => return Err(io::Error::other("short write of the descriptor message")),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_lists_round_trip_and_reject_garbage() {
        assert_eq!(
            parse("3:http:1,4:admin:0", true),
            Ok(vec![(3, "http".into(), true), (4, "admin".into(), false)])
        );
        assert_eq!(
            parse("http:1,admin:0", false),
            Ok(vec![(0, "http".into(), true), (1, "admin".into(), false)])
        );
        assert_eq!(parse("", true), Ok(vec![]));
        assert!(parse("x:http:1", true).is_err());
        assert!(parse("3::1", true).is_err());
        assert!(parse("3:http:yes", true).is_err());
        assert!(parse("3:http:1:extra", true).is_err());
    }
}
