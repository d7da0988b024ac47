use std::error::Error as StdError;
use std::fmt;
use std::io;

/// Why a listener could not be bound or inherited.
///
/// The message names what was being done (`cannot bind 0.0.0.0:80`); the
/// operating system's reason is the [`source`](StdError::source).
pub struct Error {
    kind: Kind,
    message: String,
    source: Option<io::Error>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bind,
    Inherit,
    NotFound,
    Environment,
    Config,
}

impl Error {
    pub(crate) fn bind(message: String, source: io::Error) -> Self {
        Error {
            kind: Kind::Bind,
            message,
            source: Some(source),
        }
    }

    // Used by systemd inheritance and the upgrade, both Unix-only.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn inherit(message: String, source: Option<io::Error>) -> Self {
        Error {
            kind: Kind::Inherit,
            message,
            source,
        }
    }

    // Used by systemd inheritance and the upgrade, both Unix-only.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn not_found(message: String) -> Self {
        Error {
            kind: Kind::NotFound,
            message,
            source: None,
        }
    }

    // Used by systemd inheritance and the upgrade, both Unix-only.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn environment(message: String) -> Self {
        Error {
            kind: Kind::Environment,
            message,
            source: None,
        }
    }

    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn config(message: String, source: Option<io::Error>) -> Self {
        Error {
            kind: Kind::Config,
            message,
            source,
        }
    }

    /// Binding a new socket failed (address in use, permission denied, …).
    pub fn is_bind(&self) -> bool {
        self.kind == Kind::Bind
    }

    /// An inherited descriptor was not a listening stream socket, or could
    /// not be prepared (non-blocking, close-on-exec).
    pub fn is_inherit(&self) -> bool {
        self.kind == Kind::Inherit
    }

    /// No inherited socket has the requested name or index.
    pub fn is_not_found(&self) -> bool {
        self.kind == Kind::NotFound
    }

    /// The socket-activation variables (`LISTEN_FDS`, `LISTEN_PID`,
    /// `LISTEN_FDNAMES`) are malformed.
    pub fn is_environment(&self) -> bool {
        self.kind == Kind::Environment
    }

    /// A setting names something this process must not use: a socket path
    /// where a file that is not a socket of this user's already stands.
    /// Nothing was changed; a configuration error (exit 78).
    pub fn is_config(&self) -> bool {
        self.kind == Kind::Config
    }

    /// The operating system's error, if there was one.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.source.as_ref()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_ref().map(|err| err as _)
    }
}
