//! The process's file descriptor limit: every connection holds one descriptor, so it bounds
//! the connections.

use std::fmt;

use rustix::process::{Resource, Rlimit, getrlimit};

/// One side of an `RLIMIT_NOFILE`: a count of descriptors, or unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdLimit(Option<u64>);

impl FdLimit {
    /// The limit as a number, `u64::MAX` when unlimited.
    #[cfg(test)]
    fn get(self) -> u64 {
        self.0.unwrap_or(u64::MAX)
    }
}

impl fmt::Display for FdLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("unlimited"),
        }
    }
}

/// The soft (effective) and hard `RLIMIT_NOFILE` of this process.
pub(crate) fn fd_limits() -> (FdLimit, FdLimit) {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    (FdLimit(current), FdLimit(maximum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_display_as_numbers_or_unlimited() {
        assert_eq!(FdLimit(Some(1024)).to_string(), "1024");
        assert_eq!(FdLimit(None).to_string(), "unlimited");
        let (soft, hard) = fd_limits();
        assert!(soft.get() <= hard.get());
    }
}
