//! Connection scenarios: a CONNECT storm (rate and CONNACK latency) and the broker's memory per
//! idle connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use tokio::task::JoinSet;

use crate::mqtt::{Conn, ConnectOptions};
use crate::record::{Common, Record, percentile};

/// Connection storm options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StormArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// CONNECT / CONNACK exchanges in total.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) connections: usize,
    /// Exchanges in flight at once.
    #[arg(long, default_value_t = 100)]
    pub(crate) parallel: usize,
    /// Scenario name written in the result: `connect-storm`, or `connect-latency` for the
    /// one-at-a-time run that measures what one CONNECT costs (`--parallel 1`).
    #[arg(long, default_value = "connect-storm")]
    pub(crate) name: String,
    /// Send this user name (password `bench`); none by default.
    #[arg(long)]
    pub(crate) username: Option<String>,
    /// A file where a plugin writes how many calls it answered (`plugin auth --count-file`);
    /// reported as `plugin_handled`.
    #[arg(long)]
    pub(crate) plugin_count_file: Option<PathBuf>,
}

/// Runs the storm and emits its record; an error means the run failed.
pub(crate) async fn storm(args: StormArgs) -> anyhow::Result<()> {
    let mut record = Record::new(&args.common, &args.name, None);
    let result = measure_storm(&args, &mut record).await;
    if let Err(err) = &result {
        record.fail(err);
    }
    record.emit(&args.common)?;
    result
}

async fn measure_storm(args: &StormArgs, record: &mut Record) -> anyhow::Result<()> {
    ensure!(
        args.connections > 0 && args.parallel > 0,
        "need connections"
    );
    record.detail("connections", args.connections);
    record.detail("parallel", args.parallel);
    let next = Arc::new(AtomicUsize::new(0));
    let options = ConnectOptions {
        username: args.username.clone(),
    };
    let start = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..args.parallel.min(args.connections) {
        let (next, options, addr, total) = (
            Arc::clone(&next),
            options.clone(),
            args.common.addr,
            args.connections,
        );
        workers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= total {
                    return anyhow::Ok(latencies);
                }
                let t0 = Instant::now();
                let conn = Conn::connect(addr, &format!("bench-storm-{i}"), &options).await?;
                latencies.push(u64::try_from(t0.elapsed().as_nanos())?);
                conn.disconnect().await;
            }
        });
    }
    let mut latencies = Vec::with_capacity(args.connections);
    while let Some(joined) = workers.join_next().await {
        latencies.extend(joined??);
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let ms = |ns: u64| ns as f64 / 1e6;
    record.metric(
        "conn_per_s",
        args.connections as f64 / elapsed.as_secs_f64(),
    );
    record.metric("connack_p50_ms", ms(percentile(&latencies, 50.0)));
    record.metric("connack_p99_ms", ms(percentile(&latencies, 99.0)));
    record.detail("connack_max_ms", ms(latencies.last().copied().unwrap_or(0)));
    record.detail("elapsed_s", elapsed.as_secs_f64());
    if let Some(path) = &args.plugin_count_file {
        // The plugin writes its count every 100 ms.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let calls = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        record.detail("plugin_handled", calls);
    }
    Ok(())
}

/// Readiness check options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WaitArgs {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub(crate) addr: std::net::SocketAddr,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 20.0)]
    pub(crate) timeout: f64,
}

/// Waits until the broker answers a CONNECT with an accepting CONNACK (a plain TCP accept is not
/// enough: a broker may accept sockets before it accepts clients, e.g. while a mandatory plugin
/// has not answered yet).
pub(crate) async fn wait(args: WaitArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            Conn::connect(args.addr, "bench-ready", &ConnectOptions::default()),
        )
        .await;
        match attempt {
            Ok(Ok(conn)) => {
                conn.disconnect().await;
                return Ok(());
            }
            Ok(Err(err)) if Instant::now() > deadline => {
                return Err(err.context(format!("{} not ready", args.addr)));
            }
            Err(_) if Instant::now() > deadline => bail!("{} not ready: no CONNACK", args.addr),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Memory options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct MemoryArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// The broker's process id, whose VmRSS is read from /proc.
    #[arg(long)]
    pub(crate) pid: u32,
    /// Idle connections to open.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) connections: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 100)]
    pub(crate) parallel: usize,
    /// Seconds to wait before reading RSS, for the broker to settle.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) settle: f64,
}

/// Runs the memory scenario and emits its record; an error means the run failed.
pub(crate) async fn memory(args: MemoryArgs) -> anyhow::Result<()> {
    let mut record = Record::new(&args.common, "memory", None);
    let result = measure_memory(&args, &mut record).await;
    if let Err(err) = &result {
        record.fail(err);
    }
    record.emit(&args.common)?;
    result
}

async fn measure_memory(args: &MemoryArgs, record: &mut Record) -> anyhow::Result<()> {
    ensure!(args.connections > 0, "need connections");
    let settle = Duration::from_secs_f64(args.settle);
    record.detail("connections", args.connections);
    // Warm-up: the first connections pay for lazily built state (runtime, allocator arenas)
    // that is not a per-connection cost.
    let warm = open(args, args.parallel, "bench-warm").await?;
    close(warm).await;
    tokio::time::sleep(settle).await;
    let before = rss_bytes(args.pid)?;
    let conns = open(args, args.connections, "bench-idle").await?;
    tokio::time::sleep(settle).await;
    let after = rss_bytes(args.pid)?;
    close(conns).await;
    let growth = after.saturating_sub(before) as f64;
    let per_conn = growth / args.connections as f64;
    record.metric("bytes_per_conn", per_conn);
    record.metric(
        "rss_growth_mib_per_10k",
        per_conn * 10_000.0 / (1024.0 * 1024.0),
    );
    record.detail("rss_before_kib", before / 1024);
    record.detail("rss_after_kib", after / 1024);
    Ok(())
}

/// Opens `count` connections, `args.parallel` at a time, each with a CONNACK.
async fn open(args: &MemoryArgs, count: usize, prefix: &str) -> anyhow::Result<Vec<Conn>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..args.parallel.min(count).max(1) {
        let (next, addr, prefix) = (Arc::clone(&next), args.common.addr, prefix.to_owned());
        workers.spawn(async move {
            let mut conns = Vec::new();
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= count {
                    return anyhow::Ok(conns);
                }
                let id = format!("{prefix}-{i}");
                conns.push(Conn::connect(addr, &id, &ConnectOptions::default()).await?);
            }
        });
    }
    let mut conns = Vec::with_capacity(count);
    while let Some(joined) = workers.join_next().await {
        conns.extend(joined.context("connect task")??);
    }
    Ok(conns)
}

/// Closes connections with DISCONNECT, 100 at a time.
async fn close(conns: Vec<Conn>) {
    let mut closing = JoinSet::new();
    for conn in conns {
        if closing.len() >= 100 {
            closing.join_next().await;
        }
        closing.spawn(conn.disconnect());
    }
    while closing.join_next().await.is_some() {}
}

/// VmRSS of `pid`, in bytes.
pub(crate) fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS in {path}"))
}

fn parse_vm_rss(status: &str) -> anyhow::Result<u64> {
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse()?;
            return Ok(kib * 1024);
        }
    }
    bail!("VmRSS missing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tmidge\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t2\n";
        assert_eq!(parse_vm_rss(status).unwrap(), 1234 * 1024);
        assert!(parse_vm_rss("Name:\tx\n").is_err());
    }
}
