//! [`LatencyHistogram`]: call latencies in fixed buckets, recorded with a few relaxed atomic adds
//! and read both as a Prometheus histogram and as percentiles for the admin API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (the last, implicit bucket is `+Inf`). From
/// 100 µs (a loopback call) to 5 s, 1-2.5-5 steps: plugin deadlines default to 250 ms.
pub(crate) const BUCKET_BOUNDS_US: [u64; 15] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

/// Number of buckets, the `+Inf` one included.
pub(crate) const BUCKETS: usize = BUCKET_BOUNDS_US.len() + 1;

/// A latency histogram with the fixed buckets of [`BUCKET_BOUNDS_US`].
///
/// Recording is three relaxed atomic adds (bucket, count, sum), no lock; a reader may see a
/// count and a sum from slightly different moments, which is fine for reporting.
#[derive(Debug, Default)]
pub(crate) struct LatencyHistogram {
    /// Observations per bucket (not cumulative).
    buckets: [AtomicU64; BUCKETS],
    /// Sum of all observations in microseconds.
    sum_us: AtomicU64,
    /// Number of observations.
    count: AtomicU64,
}

/// A copy of a histogram's counts, for encoding and percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistogramSnapshot {
    /// Observations per bucket (not cumulative), the `+Inf` bucket last.
    pub(crate) buckets: [u64; BUCKETS],
    /// Sum of all observations in microseconds.
    pub(crate) sum_us: u64,
    /// Number of observations.
    pub(crate) count: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        Self {
            buckets: [0; BUCKETS],
            sum_us: 0,
            count: 0,
        }
    }
}

impl LatencyHistogram {
    /// Records one observation.
    pub(crate) fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = BUCKET_BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// What was recorded after `earlier` (a snapshot of the same histogram taken before).
    pub(crate) fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(earlier.buckets[i])),
            sum_us: self.sum_us.saturating_sub(earlier.sum_us),
            count: self.count.saturating_sub(earlier.count),
        }
    }

    /// The cumulative buckets as Prometheus wants them: (upper bound in seconds, observations
    /// at or below it), `+Inf` last.
    pub(crate) fn cumulative_seconds(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, n)| {
                total += n;
                let bound = BUCKET_BOUNDS_US
                    .get(i)
                    .map_or(f64::INFINITY, |&us| us as f64 / 1e6);
                (bound, total)
            })
            .collect()
    }

    /// The `q` quantile (0 < q ≤ 1) in milliseconds, interpolated linearly inside its bucket as
    /// Prometheus' `histogram_quantile` does; observations in the `+Inf` bucket count as the
    /// last bound. `0.0` when there are no observations.
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let lower = if i == 0 { 0 } else { BUCKET_BOUNDS_US[i - 1] };
                let Some(&upper) = BUCKET_BOUNDS_US.get(i) else {
                    return lower as f64 / 1e3;
                };
                let fraction = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return (lower as f64 + (upper - lower) as f64 * fraction) / 1e3;
            }
            below += n;
        }
        BUCKET_BOUNDS_US[BUCKET_BOUNDS_US.len() - 1] as f64 / 1e3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_into_the_first_bucket_whose_bound_is_not_below() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(100)); // bucket 0 (<= 100 µs)
        h.record(Duration::from_micros(101)); // bucket 1
        h.record(Duration::from_secs(60)); // +Inf
        let s = h.snapshot();
        assert_eq!(
            (s.buckets[0], s.buckets[1], s.buckets[BUCKETS - 1]),
            (1, 1, 1)
        );
        assert_eq!(s.count, 3);
        assert_eq!(s.sum_us, 100 + 101 + 60_000_000);
        let cumulative = s.cumulative_seconds();
        assert_eq!(cumulative[0], (0.0001, 1));
        assert_eq!(cumulative[1], (0.00025, 2));
        assert_eq!(cumulative.last(), Some(&(f64::INFINITY, 3)));
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let h = LatencyHistogram::default();
        assert_eq!(h.snapshot().quantile_ms(0.5), 0.0, "no calls: 0");
        // 100 calls between 1 ms and 2.5 ms: bucket (1 ms, 2.5 ms].
        for _ in 0..100 {
            h.record(Duration::from_micros(2_000));
        }
        let s = h.snapshot();
        assert!(
            (s.quantile_ms(0.5) - 1.75).abs() < 1e-9,
            "{}",
            s.quantile_ms(0.5)
        );
        assert!((s.quantile_ms(0.99) - 2.485).abs() < 1e-9);
        // One slow call moves p99 only a little, p100 to its bucket's bound.
        h.record(Duration::from_millis(400));
        let s = h.snapshot();
        assert!(s.quantile_ms(0.99) < 2.5);
        assert!((s.quantile_ms(1.0) - 500.0).abs() < 1e-9);
    }

    #[test]
    fn since_subtracts_an_earlier_snapshot() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_millis(1));
        let before = h.snapshot();
        h.record(Duration::from_millis(30));
        let window = h.snapshot().since(&before);
        assert_eq!(window.count, 1);
        assert!((window.quantile_ms(0.5) - 37.5).abs() < 1e-9);
    }
}
