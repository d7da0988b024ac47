use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;

/// Where a variable's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The process environment (or the map given to
    /// [`Loader::from_iter`](crate::Loader::from_iter)).
    Environment,
    /// A `.env` file, at a line.
    DotEnv {
        /// The file.
        path: PathBuf,
        /// The line, counting from 1.
        line: usize,
    },
    /// A `NAME_FILE` variable: the value was read from this file.
    File(PathBuf),
    /// No variable: the field's default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Environment => f.write_str("environment"),
            Source::DotEnv { path, line } => write!(f, "{} line {line}", path.display()),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// One thing wrong with the configuration: a variable, where it came
/// from, and what was expected. Never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub(crate) variable: String,
    pub(crate) source: Option<Source>,
    pub(crate) kind: ProblemKind,
}

/// What kind of problem.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The variable is required and not set.
    Missing,
    /// The value does not parse; says what was expected.
    Invalid(String),
    /// A variable inside the prefix that no setting reads, with the closest
    /// known name.
    Unknown {
        /// The known variable closest in spelling, if one is close.
        did_you_mean: Option<String>,
    },
    /// Both `NAME` and `NAME_FILE` are set.
    Conflict(String),
    /// A source could not be read (a `_FILE` path, a `.env` file).
    Unreadable(String),
}

impl Problem {
    /// The variable's full name, as the operator must set it
    /// (`APP_DB__POOL_SIZE`).
    pub fn variable(&self) -> &str {
        &self.variable
    }

    /// Where its value came from (`None` when missing).
    pub fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }

    /// What is wrong.
    pub fn kind(&self) -> &ProblemKind {
        &self.kind
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.variable)?;
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        match &self.kind {
            ProblemKind::Missing => f.write_str(": missing, and required"),
            ProblemKind::Invalid(expected) => write!(f, ": invalid, expected {expected}"),
            ProblemKind::Unknown {
                did_you_mean: Some(name),
            } => {
                write!(f, ": unknown variable; did you mean {name}?")
            }
            ProblemKind::Unknown { did_you_mean: None } => f.write_str(": unknown variable"),
            ProblemKind::Conflict(message) => write!(f, ": {message}"),
            ProblemKind::Unreadable(message) => write!(f, ": cannot be read: {message}"),
        }
    }
}

/// Everything wrong with the configuration, found in one load. Its message
/// names every variable (by its full name) and never a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub(crate) problems: Vec<Problem>,
}

impl ConfigError {
    /// Each problem, in the order of the variables' names.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "invalid configuration: {count} problem{}",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl StdError for ConfigError {}
