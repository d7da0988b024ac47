use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{Phase, ShutdownReason, TaskFailure};

/// The process exits cleanly: every task and hook finished in time.
pub const EXIT_CLEAN: i32 = 0;
/// Something failed: a critical task triggered the shutdown by failing, or a
/// task or cleanup hook panicked.
pub const EXIT_FAILED: i32 = 1;
/// The budget ran out: a task was abandoned, a cleanup hook timed out, or
/// connections were still open when the drain was cut short.
pub const EXIT_TIMED_OUT: i32 = 124;
/// A third signal arrived and the process exited at once, without a report
/// (`128 + SIGINT`, the shell's code for an interrupted program).
pub const EXIT_IMMEDIATE: i32 = 130;
/// The configuration is wrong: the process did not start (`EX_CONFIG` from
/// sysexits.h; systemd's `RestartPreventExitStatus=78` keeps it from
/// restarting in a loop on a setting that will not fix itself).
pub const EXIT_CONFIG: i32 = 78;
/// A resource the process needs is not available: the address cannot be
/// bound, or an upgrade's hand-over was refused (`EX_UNAVAILABLE` from
/// sysexits.h).
pub const EXIT_UNAVAILABLE: i32 = 69;

/// What a shutdown did: why it started, how long each phase took, and what
/// was still running when a deadline passed.
///
/// Returned by [`Shutdown::wait`](crate::Shutdown::wait), which also logs it
/// as one tracing event. Turn it into the process's exit status with
/// [`exit_code`](Self::exit_code).
#[derive(Clone, Debug)]
pub struct ShutdownReport {
    pub(crate) reason: ShutdownReason,
    pub(crate) forced: bool,
    pub(crate) total: Duration,
    pub(crate) phases: Vec<PhaseTiming>,
    pub(crate) stragglers: Vec<Straggler>,
    pub(crate) connections_cut: usize,
    pub(crate) hook_failures: Vec<HookFailure>,
    pub(crate) task_failures: Vec<TaskFailure>,
}

impl ShutdownReport {
    /// Why the shutdown started.
    pub fn reason(&self) -> &ShutdownReason {
        &self.reason
    }

    /// Whether a second signal forced the shutdown, skipping what was left
    /// of the drain.
    pub fn is_forced(&self) -> bool {
        self.forced
    }

    /// The time from the trigger to the end of the cleanup phase.
    pub fn total(&self) -> Duration {
        self.total
    }

    /// Each phase the shutdown went through, in order, with its duration.
    pub fn phases(&self) -> &[PhaseTiming] {
        &self.phases
    }

    /// How long `phase` took, if the shutdown went through it.
    pub fn phase_duration(&self, phase: Phase) -> Option<Duration> {
        self.phases
            .iter()
            .find(|timing| timing.phase == phase)
            .map(|timing| timing.duration)
    }

    /// Tracked tasks still running when their deadline passed, abandoned.
    pub fn stragglers(&self) -> &[Straggler] {
        &self.stragglers
    }

    /// How many [`DrainGuard`](crate::DrainGuard)s (open connections) were
    /// still held when the connection drain ended by its deadline or by force.
    pub fn connections_cut(&self) -> usize {
        self.connections_cut
    }

    /// Cleanup hooks that timed out or panicked.
    pub fn hook_failures(&self) -> &[HookFailure] {
        &self.hook_failures
    }

    /// Tracked tasks that returned an error or panicked, before or during
    /// the shutdown.
    pub fn task_failures(&self) -> &[TaskFailure] {
        &self.task_failures
    }

    /// Whether every task, connection and hook finished in time and nothing
    /// failed: [`exit_code`](Self::exit_code) is 0.
    pub fn is_clean(&self) -> bool {
        self.exit_code() == EXIT_CLEAN
    }

    /// The exit status the process should end with.
    ///
    /// | code | meaning |
    /// |---|---|
    /// | 0 ([`EXIT_CLEAN`]) | every task, connection and hook finished within the budget |
    /// | 1 ([`EXIT_FAILED`]) | a critical task failed and triggered the shutdown, or a task or hook panicked |
    /// | 124 ([`EXIT_TIMED_OUT`]) | the budget ran out: a task was abandoned, a hook timed out, or connections were cut |
    /// | 130 ([`EXIT_IMMEDIATE`]) | a third signal: the process exited at once (never returned here) |
    ///
    /// A failure (1) wins over a timeout (124): it names the cause. A forced
    /// shutdown (second signal) that still finished everything is clean.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), seaworthy_shutdown::BuildError> {
    /// let shutdown = seaworthy_shutdown::Shutdown::builder().build()?;
    /// let report = shutdown.wait().await;
    /// std::process::exit(report.exit_code());
    /// # }
    /// ```
    pub fn exit_code(&self) -> i32 {
        let failed = matches!(self.reason, ShutdownReason::TaskFailed(_))
            || self.task_failures.iter().any(TaskFailure::is_panic)
            || self
                .hook_failures
                .iter()
                .any(|failure| matches!(failure.kind, HookFailureKind::Panicked { .. }));
        let timed_out = !self.stragglers.is_empty()
            || self.connections_cut > 0
            || self
                .hook_failures
                .iter()
                .any(|failure| matches!(failure.kind, HookFailureKind::TimedOut { .. }));
        if failed {
            EXIT_FAILED
        } else if timed_out {
            EXIT_TIMED_OUT
        } else {
            EXIT_CLEAN
        }
    }
}

impl fmt::Display for ShutdownReport {
    /// One line for logs: reason, exit code, total time, phases, and anything
    /// that was cut off or failed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reason: {}; exit code {}; took {:?}",
            self.reason,
            self.exit_code(),
            self.total
        )?;
        if self.forced {
            f.write_str("; forced")?;
        }
        f.write_str("; phases:")?;
        for timing in &self.phases {
            write!(f, " {} {:?}", timing.phase, timing.duration)?;
        }
        if !self.stragglers.is_empty() {
            f.write_str("; abandoned:")?;
            for straggler in &self.stragglers {
                write!(f, " {straggler}")?;
            }
        }
        if self.connections_cut > 0 {
            write!(f, "; connections cut: {}", self.connections_cut)?;
        }
        for failure in &self.hook_failures {
            write!(f, "; {failure}")?;
        }
        for failure in &self.task_failures {
            write!(f, "; {failure}")?;
        }
        Ok(())
    }
}

/// How long one phase of a shutdown took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseTiming {
    /// The phase.
    pub phase: Phase,
    /// From entering the phase to entering the next one.
    pub duration: Duration,
}

/// A tracked task still running when its deadline passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Straggler {
    pub(crate) name: Arc<str>,
    pub(crate) running_for: Duration,
}

impl Straggler {
    /// The name the task was spawned with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long the task had run when it was abandoned.
    pub fn running_for(&self) -> Duration {
        self.running_for
    }
}

impl fmt::Display for Straggler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} (ran {:?})", &*self.name, self.running_for)
    }
}

/// A cleanup hook that did not finish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookFailure {
    pub(crate) name: Arc<str>,
    pub(crate) kind: HookFailureKind,
}

impl HookFailure {
    /// The name the hook was registered with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What went wrong.
    pub fn kind(&self) -> &HookFailureKind {
        &self.kind
    }
}

impl fmt::Display for HookFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            HookFailureKind::TimedOut { after } => {
                write!(f, "hook {:?} timed out after {after:?}", &*self.name)
            }
            HookFailureKind::Panicked { message } => {
                write!(f, "hook {:?} panicked: {message}", &*self.name)
            }
        }
    }
}

/// How a cleanup hook failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HookFailureKind {
    /// The hook ran out of time: its own timeout, or what was left of the
    /// budget (zero when the budget was gone before the hook could start).
    TimedOut {
        /// How long the hook was given.
        after: Duration,
    },
    /// The hook panicked.
    Panicked {
        /// The panic message.
        message: String,
    },
}
