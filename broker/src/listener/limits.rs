//! The process's file descriptor limit and how the listeners' `max-connections` fit in it,
//! logged at start: every connection holds one descriptor, so the fd limit bounds the
//! connections whatever `max-connections` says.

use std::fmt;

use rustix::process::{Resource, Rlimit, getrlimit};
use tracing::{info, warn};

use crate::config::ListenerConfig;

/// One side of an `RLIMIT_NOFILE`: a count of descriptors, or unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdLimit(Option<u64>);

impl FdLimit {
    /// The limit as a number, `u64::MAX` when unlimited.
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

/// Logs each listener's `max-connections` against the fd limit, and warns when they add up to
/// more than it: accepts would then fail for lack of descriptors before the listeners are full.
pub(crate) fn log_connection_limits(configs: &[ListenerConfig]) {
    let (soft, _) = fd_limits();
    for cfg in configs {
        match cfg.max_connections {
            0 => info!(listener = %cfg.name, max_connections = "unlimited", fd_limit = %soft,
                "connection limit: bounded by the file descriptor limit"),
            n => info!(listener = %cfg.name, max_connections = n, "connection limit"),
        }
    }
    if let Some(total) = over_fd_limit(configs, soft) {
        warn!(
            max_connections_total = total,
            fd_limit = %soft,
            "the listeners' max-connections add up to more than the file descriptor limit: \
             accepts will fail (out of file descriptors) before the listeners are full; raise \
             the limit (ulimit -n, systemd LimitNOFILE) or lower max-connections"
        );
    }
}

/// The sum of the listeners' `max-connections` when it is above `fd_limit`; `None` when some
/// listener is unlimited (0: bounded by the fd limit by definition) or the sum fits.
fn over_fd_limit(configs: &[ListenerConfig], fd_limit: FdLimit) -> Option<u64> {
    let mut total: u64 = 0;
    for cfg in configs {
        if cfg.max_connections == 0 {
            return None;
        }
        total = total.saturating_add(u64::try_from(cfg.max_connections).unwrap_or(u64::MAX));
    }
    (total > fd_limit.get()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ListenerKind;
    use crate::listener::testutil::listener_config;

    fn listeners(limits: &[usize]) -> Vec<ListenerConfig> {
        limits
            .iter()
            .map(|&n| listener_config(ListenerKind::Tcp, n))
            .collect()
    }

    #[test]
    fn max_connections_above_the_fd_limit_are_found() {
        let limit = FdLimit(Some(20_000));
        assert_eq!(
            over_fd_limit(&listeners(&[10_000, 10_001]), limit),
            Some(20_001)
        );
        assert_eq!(over_fd_limit(&listeners(&[10_000, 10_000]), limit), None);
        assert_eq!(
            over_fd_limit(&listeners(&[30_000, 0]), limit),
            None,
            "0 = unlimited"
        );
        assert_eq!(
            over_fd_limit(&listeners(&[usize::MAX]), FdLimit(None)),
            None
        );
        assert_eq!(over_fd_limit(&[], limit), None);
    }

    #[test]
    fn limits_display_as_numbers_or_unlimited() {
        assert_eq!(FdLimit(Some(1024)).to_string(), "1024");
        assert_eq!(FdLimit(None).to_string(), "unlimited");
        let (soft, hard) = fd_limits();
        assert!(soft.get() <= hard.get());
    }
}
