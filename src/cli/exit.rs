//! The exit codes, stable and documented (README, `credvault --help`): scripts branch on them.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// A server or transport error (UNAVAILABLE, INTERNAL, a refused connection, ...).
    Failure = 1,
    /// A usage error (clap's own) or a configuration error: nothing was started or sent.
    Usage = 2,
    NotFound = 3,
    /// ALREADY_EXISTS or ABORTED: the label is taken, or a concurrent write won.
    Conflict = 4,
    InvalidArgument = 5,
    /// UNAUTHENTICATED or PERMISSION_DENIED.
    Denied = 6,
    FailedPrecondition = 7,
    /// `validate`: Twilio rejected the credential (the RPC itself succeeded).
    CredentialInvalid = 8,
}

impl Exit {
    pub fn of(code: tonic::Code) -> Self {
        use tonic::Code;
        match code {
            Code::Ok => Exit::Ok,
            Code::NotFound => Exit::NotFound,
            Code::AlreadyExists | Code::Aborted => Exit::Conflict,
            Code::InvalidArgument => Exit::InvalidArgument,
            Code::Unauthenticated | Code::PermissionDenied => Exit::Denied,
            Code::FailedPrecondition => Exit::FailedPrecondition,
            _ => Exit::Failure,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    /// The table the README documents; tests/cli_client.rs sees each code the server can give
    /// today come out of the binary.
    #[test]
    fn codes_are_the_documented_ones() {
        let table = [
            (Code::Ok, 0),
            (Code::Unavailable, 1),
            (Code::Internal, 1),
            (Code::DeadlineExceeded, 1),
            (Code::NotFound, 3),
            (Code::AlreadyExists, 4),
            (Code::Aborted, 4),
            (Code::InvalidArgument, 5),
            (Code::Unauthenticated, 6),
            (Code::PermissionDenied, 6),
            (Code::FailedPrecondition, 7),
        ];
        for (code, exit) in table {
            assert_eq!(Exit::of(code) as u8, exit, "{code:?}");
        }
        assert_eq!(Exit::Usage as u8, 2);
        assert_eq!(Exit::CredentialInvalid as u8, 8);
    }
}
