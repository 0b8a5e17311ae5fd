//! Latency histograms for plugin calls; the Prometheus endpoint comes next.

mod histogram;

pub use histogram::{BUCKET_BOUNDS_US, BUCKETS, HistogramSnapshot, LatencyHistogram};
