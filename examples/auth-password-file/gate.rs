//! How password checks share the machine: at most one per core runs at once, on tokio's
//! blocking pool. A check that finds every core busy waits its turn (first come, first served),
//! up to [`Gate::max_waiting`] waiting checks, and gives up as soon as the broker's deadline can
//! no longer cover it: the queue ahead plus one check, as long as the last check took. Giving up
//! early frees the client at once and spends no CPU on an answer the broker would throw away.
//!
//! Without the bound, a burst of N logins runs N argon2 checks at once: each takes N / cores
//! times as long and holds its memory (64 MiB at aMQTT's parameters) all that time, so every
//! one of them misses the deadline together.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;

/// Why [`Gate::run`] did not run a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// [`Gate::max_waiting`] checks were already waiting.
    Full,
    /// The deadline came too close: what was left of it could no longer cover one check
    /// (`cost`, the last check's duration) after the checks queued ahead.
    Late {
        /// The duration of the last check.
        cost: Duration,
    },
    /// The check panicked.
    Failed(String),
}

/// The gate: a semaphore of one permit per core, a bounded count of waiting checks, and the
/// duration of the last check.
#[derive(Debug)]
pub(crate) struct Gate {
    permits: Arc<Semaphore>,
    parallel: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// The last check's duration in microseconds; 0 before the first.
    cost_us: Arc<AtomicU64>,
}

/// Decrements a counter when dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// At most `parallel` (≥ 1) checks at once and `max_waiting` waiting.
    pub(crate) fn new(parallel: usize, max_waiting: usize) -> Self {
        let parallel = parallel.max(1);
        Gate {
            permits: Arc::new(Semaphore::new(parallel)),
            parallel,
            waiting: AtomicUsize::new(0),
            max_waiting,
            cost_us: Arc::new(AtomicU64::new(0)),
        }
    }

    /// One check per available core (`std::thread::available_parallelism`), and up to 32 per
    /// core waiting.
    pub(crate) fn per_core() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Gate::new(cores, 32 * cores)
    }

    /// How many checks run at once.
    pub(crate) fn parallel(&self) -> usize {
        self.parallel
    }

    /// How many checks may wait.
    pub(crate) fn max_waiting(&self) -> usize {
        self.max_waiting
    }

    /// How long the last check took; `None` before the first.
    pub(crate) fn cost(&self) -> Option<Duration> {
        match self.cost_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Runs `check` on the blocking pool once a core is free, unless refused (see [`Refused`]).
    /// With a `deadline`, a waiting check gives up once less than one check's duration is left.
    /// If the caller stops waiting, a check that already started still finishes (and keeps its
    /// core until then); a waiting one leaves the queue.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        deadline: Option<Instant>,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        let permit = self.permit(deadline).await?;
        let cost_us = Arc::clone(&self.cost_us);
        tokio::task::spawn_blocking(move || {
            let _permit: OwnedSemaphorePermit = permit;
            let started = std::time::Instant::now();
            let out = check();
            let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            cost_us.store(us.max(1), Ordering::Relaxed);
            out
        })
        .await
        .map_err(|e| Refused::Failed(e.to_string()))
    }

    /// A free core, now or after waiting in line.
    fn permit(
        &self,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<OwnedSemaphorePermit, Refused>> + '_ {
        let now = Arc::clone(&self.permits).try_acquire_owned();
        async move {
            match now {
                Ok(permit) => return Ok(permit),
                Err(TryAcquireError::Closed) => {
                    return Err(Refused::Failed("the gate is closed".to_owned()));
                }
                Err(TryAcquireError::NoPermits) => {}
            }
            if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                return Err(Refused::Full);
            }
            let _waiting = Waiting(&self.waiting);
            let acquire = Arc::clone(&self.permits).acquire_owned();
            let acquired = match deadline {
                None => acquire.await,
                Some(deadline) => {
                    let cost = self.cost().unwrap_or_default();
                    let give_up = deadline.checked_sub(cost).unwrap_or_else(Instant::now);
                    tokio::time::timeout_at(give_up, acquire)
                        .await
                        .map_err(|_| Refused::Late { cost })?
                }
            };
            acquired.map_err(|_| Refused::Failed("the gate is closed".to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A check that blocks until the test releases it, and says when it started.
    fn blocked(
        started: &tokio::sync::mpsc::UnboundedSender<u32>,
        n: u32,
    ) -> (mpsc::Sender<()>, impl FnOnce() -> u32 + Send + 'static) {
        let (release, wait) = mpsc::channel::<()>();
        let started = started.clone();
        (release, move || {
            let _ = started.send(n);
            let _ = wait.recv();
            n
        })
    }

    #[tokio::test]
    async fn at_most_parallel_checks_run_and_the_rest_wait_in_order() {
        let gate = Arc::new(Gate::new(2, 10));
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let mut releases = Vec::new();
        let mut tasks = Vec::new();
        for n in 0..5 {
            let (release, check) = blocked(&started_tx, n);
            releases.push(release);
            let gate = Arc::clone(&gate);
            tasks.push(tokio::spawn(async move { gate.run(None, check).await }));
            // Queue them in order.
            tokio::task::yield_now().await;
        }
        // The first two run on two blocking threads at once: either may report first.
        let mut first = [started.recv().await, started.recv().await];
        first.sort();
        assert_eq!(first, [Some(0), Some(1)]);
        // Nothing else starts while both cores are held: the permits are all taken and the
        // three others are counted as waiting.
        assert_eq!(gate.permits.available_permits(), 0);
        while gate.waiting.load(Ordering::Acquire) != 3 {
            tokio::task::yield_now().await;
        }
        assert!(started.try_recv().is_err());
        // Each release lets exactly the next one in, first come first served.
        for (done, next) in [(0, 2), (1, 3), (2, 4)] {
            releases[done].send(()).expect("release");
            assert_eq!(started.recv().await, Some(next));
            assert!(started.try_recv().is_err());
        }
        for release in &releases[3..] {
            release.send(()).expect("release");
        }
        for (n, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.expect("join"), Ok(n as u32));
        }
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0);
        assert!(gate.cost().is_some());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let gate = Arc::new(Gate::new(1, 1));
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let (release0, check0) = blocked(&started_tx, 0);
        let (release1, check1) = blocked(&started_tx, 1);
        let running = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.run(None, check0).await }
        });
        assert_eq!(started.recv().await, Some(0));
        let waiting = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.run(None, check1).await }
        });
        while gate.waiting.load(Ordering::Acquire) != 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.run(None, || 2).await, Err(Refused::Full));
        release0.send(()).expect("release");
        release1.send(()).expect("release");
        assert_eq!(running.await.expect("join"), Ok(0));
        assert_eq!(waiting.await.expect("join"), Ok(1));
        // Room again.
        assert_eq!(gate.run(None, || 3).await, Ok(3));
    }

    /// A waiting check whose deadline cannot cover the last check's duration gives up before
    /// the deadline, with the cost it assumed; a free core runs a check whatever the deadline.
    #[tokio::test(start_paused = true)]
    async fn a_waiting_check_gives_up_when_the_deadline_cannot_cover_it() {
        let gate = Arc::new(Gate::new(1, 10));
        gate.cost_us.store(200_000, Ordering::Relaxed); // the last check took 200 ms
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let (release, check) = blocked(&started_tx, 0);
        let running = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.run(None, check).await }
        });
        assert_eq!(started.recv().await, Some(0));
        // 150 ms left: less than one check. Refused without waiting for the deadline.
        let deadline = Instant::now() + Duration::from_millis(150);
        let refused = gate.run(Some(deadline), || 1).await;
        assert_eq!(
            refused,
            Err(Refused::Late {
                cost: Duration::from_millis(200)
            })
        );
        assert!(
            Instant::now() < deadline,
            "refused early, not at the deadline"
        );
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0);
        release.send(()).expect("release");
        assert_eq!(running.await.expect("join"), Ok(0));
        // A free core: run, even with a deadline shorter than the last check.
        let soon = Instant::now() + Duration::from_millis(1);
        assert_eq!(gate.run(Some(soon), || 2).await, Ok(2));
    }

    #[tokio::test]
    async fn a_panicking_check_is_an_error_and_frees_its_core() {
        let gate = Gate::new(1, 1);
        let failed = gate.run(None, || -> u32 { panic!("boom") }).await;
        assert!(matches!(failed, Err(Refused::Failed(_))), "{failed:?}");
        assert_eq!(gate.run(None, || 1).await, Ok(1));
    }
}
