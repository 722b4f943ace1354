//! Exit codes shared by every command: 0 clean, 1 the check found a problem, 2 usage error or
//! could not run. Errors are one line on stderr.

use std::process::ExitCode;

/// How a command that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Success; nothing to report.
    Clean,
    /// The command ran and found a problem (unhealthy, drift, violation).
    Problem,
}

/// Why a command could not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The command line or an input file is wrong.
    #[error("{0}")]
    Usage(String),
    /// Something the command needs (the cluster, a file, a peer) is unavailable.
    #[error("{0}")]
    CouldNotRun(String),
}

/// Process exit code of a command's result, after printing a failure to stderr.
pub fn finish(result: Result<Outcome, Failure>) -> ExitCode {
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Problem) => ExitCode::from(1),
        Err(failure) => {
            eprintln!("error: {}", one_line(&failure.to_string()));
            ExitCode::from(2)
        }
    }
}

/// A failed API call as one line: the API server's own message when it gave one (not the
/// whole status object), else the transport error.
pub fn api_failure(context: impl std::fmt::Display, err: kube::Error) -> Failure {
    let detail = match err {
        kube::Error::Api(status) => status.message,
        other => other.to_string(),
    };
    Failure::CouldNotRun(format!("{context}: {detail}"))
}

/// Folds a possibly multi-line message into one line so that stderr stays greppable.
pub use causely_runtime::one_line;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_errors_become_one_line() {
        assert_eq!(one_line("cannot connect:\n  refused\n"), "cannot connect: refused");
    }
}
