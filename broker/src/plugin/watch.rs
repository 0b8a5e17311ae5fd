//! Live event watchers, beside the plugin pipelines: what the admin API's `WatchEvents` reads.
//!
//! One `tokio::sync::broadcast` channel fans every emitted event out to the watchers. The hot
//! path pays one relaxed atomic load ([`EventWatch::is_watched`]) while nobody watches; only
//! then are events built for watchers at all. Best effort, unlike plugin pipelines: no acks, no
//! replay. A watcher that reads too slowly loses the oldest events it has not read yet (the
//! channel keeps the last [`WATCH_BUFFER`]) and is told how many it missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use midge_proto::plugin::v1 as pb;
use tokio::sync::broadcast;

/// Events buffered for the slowest watcher before it starts losing the oldest ones.
pub(crate) const WATCH_BUFFER: usize = 1024;

/// The fan-out to live watchers.
#[derive(Debug)]
pub(crate) struct EventWatch {
    watchers: Arc<AtomicUsize>,
    sender: broadcast::Sender<Arc<pb::Event>>,
}

impl Default for EventWatch {
    fn default() -> Self {
        Self {
            watchers: Arc::default(),
            sender: broadcast::channel(WATCH_BUFFER).0,
        }
    }
}

impl EventWatch {
    /// Whether anyone watches (one relaxed load): emitters build events for watchers only then.
    pub(crate) fn is_watched(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// Hands `event` to every watcher. Never waits.
    pub(crate) fn send(&self, event: pb::Event) {
        // An error only means the last watcher left meanwhile.
        let _ = self.sender.send(Arc::new(event));
    }

    /// A new watcher, which gets the events sent from now on.
    pub(crate) fn watch(&self) -> Watcher {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watcher {
            receiver: self.sender.subscribe(),
            watchers: self.watchers.clone(),
        }
    }

    /// Watchers now.
    pub(crate) fn watchers(&self) -> usize {
        self.watchers.load(Ordering::Relaxed)
    }
}

/// One watcher; counted until dropped.
#[derive(Debug)]
pub(crate) struct Watcher {
    receiver: broadcast::Receiver<Arc<pb::Event>>,
    watchers: Arc<AtomicUsize>,
}

impl Watcher {
    /// The next event; `Err(Lagged(n))` when `n` events were lost because this watcher read too
    /// slowly (the next call goes on with the oldest one still buffered).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub(crate) async fn recv(&mut self) -> Result<Arc<pb::Event>, broadcast::error::RecvError> {
        self.receiver.recv().await
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> pb::Event {
        pb::Event {
            sequence: n,
            ..pb::Event::default()
        }
    }

    #[tokio::test]
    async fn watchers_are_counted_and_lagging_ones_skip_the_oldest() {
        let watch = EventWatch::default();
        assert!(!watch.is_watched());
        let mut watcher = watch.watch();
        assert!(watch.is_watched());
        for n in 0..(WATCH_BUFFER as u64 + 3) {
            watch.send(event(n));
        }
        assert!(matches!(
            watcher.recv().await,
            Err(broadcast::error::RecvError::Lagged(3))
        ));
        assert_eq!(watcher.recv().await.expect("event").sequence, 3);
        drop(watcher);
        assert!(!watch.is_watched());
        watch.send(event(0)); // nobody listens: no error, no panic
    }
}
