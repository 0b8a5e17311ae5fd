//! One scenario run's result: a JSON line on stdout, appended to `--out` too.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Options every scenario takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Common {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub(crate) addr: SocketAddr,
    /// Broker name written in the result (midge, mosquitto, rumqttd, ...).
    #[arg(long, default_value = "unknown")]
    pub(crate) broker: String,
    /// Variant written in the result, e.g. the plugin setup; empty for the plain broker.
    #[arg(long, default_value = "")]
    pub(crate) variant: String,
    /// Repetition number written in the result.
    #[arg(long, default_value_t = 1)]
    pub(crate) rep: u32,
    /// Broker configuration profile written in the result: `defaults` or `tuned` (see
    /// bench/README.md); the report makes one table per profile.
    #[arg(long, default_value = "")]
    pub(crate) profile: String,
    /// Also append the result line to this file.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

/// The result of one scenario run against one broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    /// `fan-in`, `fan-out`, `latency`, `connect-storm`, `memory` or `connections`.
    pub(crate) scenario: String,
    /// QoS of the messages, for message scenarios.
    pub(crate) qos: Option<u8>,
    /// Which broker.
    pub(crate) broker: String,
    /// Plugin setup (Midge only) or empty.
    pub(crate) variant: String,
    /// Repetition number.
    pub(crate) rep: u32,
    /// Broker configuration profile (`defaults`, `tuned`), or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) profile: String,
    /// False when the run failed (lost or duplicated messages, refused connections, ...).
    pub(crate) ok: bool,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// The measured numbers, by name (see bench/README.md).
    pub(crate) metrics: BTreeMap<String, f64>,
    /// Counts and parameters that explain the numbers.
    #[serde(default)]
    pub(crate) details: BTreeMap<String, serde_json::Value>,
}

impl Record {
    /// An empty successful record for `scenario`.
    pub(crate) fn new(common: &Common, scenario: &str, qos: Option<u8>) -> Record {
        Record {
            scenario: scenario.to_owned(),
            qos,
            broker: common.broker.clone(),
            variant: common.variant.clone(),
            rep: common.rep,
            profile: common.profile.clone(),
            ok: true,
            error: None,
            metrics: BTreeMap::new(),
            details: BTreeMap::new(),
        }
    }

    /// Sets a metric.
    pub(crate) fn metric(&mut self, name: &str, value: f64) {
        self.metrics.insert(name.to_owned(), value);
    }

    /// Sets a detail.
    pub(crate) fn detail(&mut self, name: &str, value: impl Into<serde_json::Value>) {
        self.details.insert(name.to_owned(), value.into());
    }

    /// Marks the run failed.
    pub(crate) fn fail(&mut self, error: &anyhow::Error) {
        self.ok = false;
        self.error = Some(format!("{error:#}"));
    }

    /// Prints the record as one JSON line and appends it to `common.out`.
    pub(crate) fn emit(&self, common: &Common) -> anyhow::Result<()> {
        let line = serde_json::to_string(self)?;
        println!("{line}");
        if let Some(path) = &common.out {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            writeln!(file, "{line}")?;
        }
        Ok(())
    }
}

/// Percentile `p` (0..=100) of sorted values, nearest rank; 0 for none.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
