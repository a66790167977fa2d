//! The CLI's error type and its exit codes: 2 for user errors (bad input, unknown topics,
//! out-of-range requests), 1 for failures of the log, the Kafka cluster or the system.

use std::fmt;
use std::io;

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// The log refused or failed; `sluice::log::Error::is_user_error` decides the exit code.
    Log(sluice::log::Error),
    /// Input the CLI itself rejects (flag combinations, values, data directory): exit 2.
    Usage(String),
    /// A terminal or file operation failed: exit 1.
    Io {
        /// What was being done, e.g. "writing to stdout".
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Any other failure: exit 1.
    Failed(String),
    /// A Kafka cluster (`--bootstrap-server`) refused or failed; `RemoteError::is_user_error`
    /// decides the exit code.
    #[cfg(feature = "kafka")]
    Remote(Box<super::remote::RemoteError>),
}

/// Result alias for commands.
pub type CliResult<T = ()> = Result<T, CliError>;

impl CliError {
    /// Wraps an I/O error with what was being done.
    pub fn io(action: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io { action, source }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Log(e) if is_user_error(e) => 2,
            Self::Usage(_) => 2,
            #[cfg(feature = "kafka")]
            Self::Remote(e) if e.is_user_error() => 2,
            #[cfg(feature = "kafka")]
            Self::Remote(_) => 1,
            Self::Log(_) | Self::Io { .. } | Self::Failed(_) => 1,
        }
    }

    /// Whether this is a write to a closed pipe (`sluice consume ... | head`), which ends the
    /// command quietly and successfully.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// A log error is a user error when it, or the cause of a failed delivery, says so.
fn is_user_error(e: &sluice::log::Error) -> bool {
    match e {
        sluice::log::Error::Delivery { source, .. } => source.is_user_error(),
        e => e.is_user_error(),
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Log(e) => write!(f, "{e}"),
            Self::Usage(msg) | Self::Failed(msg) => f.write_str(msg),
            Self::Io { action, source } => write!(f, "{action}: {source}"),
            #[cfg(feature = "kafka")]
            Self::Remote(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Log(e) => Some(e),
            Self::Io { source, .. } => Some(source),
            #[cfg(feature = "kafka")]
            Self::Remote(e) => Some(e.as_ref()),
            Self::Usage(_) | Self::Failed(_) => None,
        }
    }
}

#[cfg(feature = "kafka")]
impl From<super::remote::RemoteError> for CliError {
    fn from(e: super::remote::RemoteError) -> Self {
        Self::Remote(Box::new(e))
    }
}

impl From<sluice::log::Error> for CliError {
    fn from(e: sluice::log::Error) -> Self {
        Self::Log(e)
    }
}
