//! Tracked tasks: names, start times, failures, panics.

use std::any::Any;
use std::collections::HashMap;
use std::error::Error;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::time::Instant;

/// A task still running, by id.
#[derive(Debug, Default)]
pub(crate) struct Running {
    next_id: u64,
    tasks: HashMap<u64, (Arc<str>, Instant)>,
}

impl Running {
    pub(crate) fn insert(&mut self, name: Arc<str>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.tasks.insert(id, (name, Instant::now()));
        id
    }

    pub(crate) fn remove(&mut self, id: u64) {
        self.tasks.remove(&id);
    }

    /// The tasks still running, oldest first, with how long each has run.
    pub(crate) fn snapshot(&self, now: Instant) -> Vec<(Arc<str>, std::time::Duration)> {
        let mut tasks: Vec<_> = self.tasks.values().collect();
        tasks.sort_by_key(|(_, started)| *started);
        tasks
            .into_iter()
            .map(|(name, started)| (Arc::clone(name), now.saturating_duration_since(*started)))
            .collect()
    }
}

/// Polls `future`, turning a panic into `Err` with the panic message.
pub(crate) async fn catch_panic<F: Future>(future: F) -> Result<F::Output, String> {
    let mut future = pin!(future);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        },
    )
    .await
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// An error and its sources, joined by `": "`.
pub(crate) fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[tokio::test]
    async fn catch_panic_passes_output_through() {
        assert_eq!(catch_panic(async { 7 }).await, Ok(7));
    }

    #[tokio::test]
    async fn catch_panic_returns_the_message() {
        let result = catch_panic(async {
            tokio::task::yield_now().await;
            panic!("boom {}", 42);
        })
        .await;
        assert_eq!(result, Err::<(), _>("boom 42".to_owned()));
    }

    #[test]
    fn error_chain_joins_sources() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("cannot reach the queue")
            }
        }
        impl Error for Outer {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Outer(std::io::Error::other("connection refused"));
        assert_eq!(
            error_chain(&error),
            "cannot reach the queue: connection refused"
        );
    }
}
