//! Reloading when the certificate files change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher;
use seaworthy_shutdown::{Phase, ShutdownToken};
use tokio::sync::Notify;

use super::{Refusal, Tls, certs, lock};

/// How long the files must stay quiet before a reload: a certificate and
/// key written one after the other are read together.
const DEBOUNCE: Duration = Duration::from_millis(250);
/// The longest a stream of changes delays a reload.
const DEBOUNCE_MAX: Duration = Duration::from_secs(2);

impl Tls {
    /// Reloads whenever the certificate or key files change, until the
    /// shutdown behind `token` reaches [`Closing`](Phase::Closing). Spawn
    /// it: `shutdown.spawn("tls-watch", tls.clone().watch(shutdown.token()))`.
    ///
    /// Watches the files' parent directories (inotify on Linux), so that a
    /// file replaced by a rename, or a Kubernetes secret whose `..data`
    /// link is swapped, is seen; reloads once changes have been quiet for
    /// 250 ms; and looks at the files every
    /// [`poll_interval`](super::TlsConfig::poll_interval) as well. A change
    /// whose bytes equal the pair in force (a `touch`) reloads nothing; a
    /// pair refused by the gate is logged once, not on every look, and
    /// retried when the files change again.
    pub async fn watch(self, token: ShutdownToken) {
        let changed = Arc::new(Notify::new());
        let _watcher = self.watch_directories(&changed);
        let mut poll = tokio::time::interval(self.inner.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        let mut closing = std::pin::pin!(token.reached(Phase::Closing));
        loop {
            tokio::select! {
                () = &mut closing => return,
                () = changed.notified() => {
                    let started = tokio::time::Instant::now();
                    loop {
                        tokio::select! {
                            () = &mut closing => return,
                            () = changed.notified() => {
                                if started.elapsed() >= DEBOUNCE_MAX {
                                    break;
                                }
                            }
                            () = tokio::time::sleep(DEBOUNCE) => break,
                        }
                    }
                    self.reload_if_changed();
                }
                _ = poll.tick() => self.reload_if_changed(),
            }
        }
    }

    /// A watch of every directory holding a file, notifying `changed`; `None`
    /// (logged) when the platform's watch cannot start: polling goes on.
    fn watch_directories(&self, changed: &Arc<Notify>) -> Option<notify::RecommendedWatcher> {
        let files = self.files();
        let directories: BTreeSet<PathBuf> = files.iter().map(|file| parent(file)).collect();
        // Only changes to our files' names wake the reload (a log file in
        // the same directory must not), and to names starting with `..`:
        // Kubernetes' `..data` link and its versions.
        let names: BTreeSet<std::ffi::OsString> = files
            .iter()
            .filter_map(|file| file.file_name())
            .map(ToOwned::to_owned)
            .collect();
        let notify = Arc::clone(changed);
        let mut watcher = match notify::recommended_watcher(move |event: notify::Result<_>| {
            let event: notify::Event = match event {
                Ok(event) => event,
                Err(_) => return,
            };
            let ours = event
                .paths
                .iter()
                .filter_map(|path| path.file_name())
                .any(|name| names.contains(name) || name.as_encoded_bytes().starts_with(b".."));
            if ours {
                notify.notify_one();
            }
        }) {
            Ok(watcher) => watcher,
            Err(err) => {
                tracing::warn!(
                    error = %err,
                    every = ?self.inner.poll_interval,
                    "cannot watch the TLS files' directories; looking at them periodically instead"
                );
                return None;
            }
        };
        for directory in &directories {
            if let Err(err) = watcher.watch(directory, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(
                    directory = %directory.display(),
                    error = %err,
                    every = ?self.inner.poll_interval,
                    "cannot watch a TLS directory; looking at it periodically instead"
                );
            }
        }
        tracing::debug!(?directories, "watching the TLS files");
        Some(watcher)
    }

    /// Reloads if the files' bytes differ from the pair in force and from
    /// the pair last refused.
    fn reload_if_changed(&self) {
        let Ok(contents) = self.read_contents() else {
            // A file missing for a moment (mid-swap) or unreadable: the gate
            // says why, once, if it stays so.
            let _ = self.attempt(None, Refusal::QuietIfRepeated);
            return;
        };
        if contents == self.inner.contents_in_force()
            || lock(&self.inner.refused_contents).as_deref() == Some(contents.as_slice())
        {
            return;
        }
        let _ = self.attempt(Some(contents), Refusal::QuietIfRepeated);
    }

    /// Every file's bytes: the pairs in order, then the ticket keys.
    pub(super) fn read_contents(&self) -> Result<Vec<u8>, super::Error> {
        let mut contents = Vec::new();
        for (cert, key) in &self.inner.pairs {
            contents.extend(certs::read_capped(cert, "certificate")?);
            contents.extend(certs::read_capped(key, "key")?);
        }
        if let Some((path, _)) = &self.inner.shared_tickets {
            contents.extend(certs::read_capped(path, "ticket key file")?);
        }
        Ok(contents)
    }

    /// Every file a reload reads.
    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .inner
            .pairs
            .iter()
            .flat_map(|(cert, key)| [cert.clone(), key.clone()])
            .collect();
        files.extend(
            self.inner
                .shared_tickets
                .iter()
                .map(|(path, _)| path.clone()),
        );
        files
    }
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}
