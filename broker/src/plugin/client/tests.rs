//! Unit tests of the parent module.

use super::*;

#[test]
fn each_grpc_status_takes_the_fallback_of_its_class() {
    use FailureClass::{Error, Timeout, Unavailable};
    let table = [
        (Code::DeadlineExceeded, Timeout),
        (Code::Cancelled, Timeout),
        (Code::Unavailable, Unavailable),
        (Code::Unknown, Error),
        (Code::InvalidArgument, Error),
        (Code::NotFound, Error),
        (Code::AlreadyExists, Error),
        (Code::PermissionDenied, Error),
        (Code::ResourceExhausted, Error),
        (Code::FailedPrecondition, Error),
        (Code::Aborted, Error),
        (Code::OutOfRange, Error),
        (Code::Unimplemented, Error),
        (Code::Internal, Error),
        (Code::DataLoss, Error),
        (Code::Unauthenticated, Error),
    ];
    for (code, class) in table {
        assert_eq!(FailureClass::of_status(code), class, "{code:?}");
    }
}
