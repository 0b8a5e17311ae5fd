//! End-to-end latency at a fixed rate: one publisher, one subscriber, every message timestamped
//! when written and when read, every sequence number checked.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::BytesMut;
use midge::codec::QoS;
use midge::codec::v4::Packet;
use tokio::io::AsyncWriteExt as _;
use tokio::net::tcp::OwnedWriteHalf;

use crate::mqtt::{self, Conn, ConnectOptions, ReadHalf};
use crate::payload::{self, Stamp};
use crate::record::{Common, Record, percentile};

/// Latency options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// QoS of the publication and the subscription: 0 or 1.
    #[arg(long, default_value_t = 0)]
    pub(crate) qos: u8,
    /// Messages per second.
    #[arg(long, default_value_t = 1000)]
    pub(crate) rate: u32,
    /// Seconds sent before recording.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// Seconds recorded.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) duration: f64,
}

const TOPIC: &str = "bench/latency";

/// Runs the scenario and emits its record; an error means the run failed.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let mut record = Record::new(&args.common, "latency", Some(args.qos));
    let result = measure(&args, &mut record).await;
    if let Err(err) = &result {
        record.fail(err);
    }
    record.emit(&args.common)?;
    result
}

async fn measure(args: &Args, record: &mut Record) -> anyhow::Result<()> {
    let qos = mqtt::qos(args.qos)?;
    ensure!(args.rate > 0, "rate must be > 0");
    let addr = args.common.addr;
    let warmup = (args.warmup * f64::from(args.rate)).round() as u64;
    let total = warmup + (args.duration * f64::from(args.rate)).round() as u64;
    record.detail("rate", args.rate);
    record.detail("messages", total);
    record.detail("recorded", total - warmup);
    record.detail("payload_bytes", payload::LEN);

    let mut sub = Conn::connect(addr, "bench-lat-sub", &ConnectOptions::default()).await?;
    sub.subscribe(TOPIC, qos).await?;
    let publisher = Conn::connect(addr, "bench-lat-pub", &ConnectOptions::default()).await?;
    let (sub_read, sub_write) = sub.split();
    let (pub_read, pub_write) = publisher.split();

    let subscriber = tokio::spawn(subscribe(sub_read, sub_write, total, warmup));
    let acks = (qos != QoS::AtMostOnce).then(|| tokio::spawn(read_pubacks(pub_read, total)));
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut pub_write = publish(pub_write, qos, total, period).await?;

    // Everything sent must arrive (10 s after the last send at most).
    let (mut latencies, mut sub_write) = tokio::time::timeout(Duration::from_secs(10), subscriber)
        .await
        .context("lost messages: not all arrived within 10 s of the last send")???;
    if let Some(acks) = acks {
        tokio::time::timeout(Duration::from_secs(10), acks)
            .await
            .context("PUBACKs missing 10 s after the last send")???;
    }
    for write in [&mut pub_write, &mut sub_write] {
        let mut buf = BytesMut::new();
        midge::codec::v4::encode(&Packet::Disconnect, &mut buf)?;
        let _ = write.write_all(&buf).await;
        let _ = write.shutdown().await;
    }

    latencies.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    record.metric("p50_us", us(percentile(&latencies, 50.0)));
    record.metric("p99_us", us(percentile(&latencies, 99.0)));
    record.metric("max_us", us(latencies.last().copied().unwrap_or(0)));
    record.detail("p999_us", us(percentile(&latencies, 99.9)));
    Ok(())
}

/// Sends `total` messages, one every `period` (catching up after a late timer, so the rate holds).
async fn publish(
    mut write: OwnedWriteHalf,
    qos: QoS,
    total: u64,
    period: Duration,
) -> anyhow::Result<OwnedWriteHalf> {
    let start = tokio::time::Instant::now();
    let mut buf = BytesMut::with_capacity(256);
    for seq in 0..total {
        tokio::time::sleep_until(start + period.mul_f64(seq as f64)).await;
        let body = payload::encode(Stamp {
            publisher: 0,
            seq,
            sent_ns: payload::now_ns(),
        });
        mqtt::put_publish(&mut buf, TOPIC.as_bytes(), qos, seq, &body);
        write
            .write_all(&buf)
            .await
            .context("publisher: write failed")?;
        buf.clear();
    }
    Ok(write)
}

/// Receives `total` messages in order; returns the latencies (ns) of those after `warmup`.
async fn subscribe(
    mut read: ReadHalf,
    mut write: OwnedWriteHalf,
    total: u64,
    warmup: u64,
) -> anyhow::Result<(Vec<u64>, OwnedWriteHalf)> {
    let mut latencies = Vec::with_capacity(usize::try_from(total - warmup)?);
    let mut next = 0_u64;
    let mut acks = BytesMut::new();
    while next < total {
        ensure!(
            read.fill().await?,
            "subscriber: connection closed by the broker"
        );
        let now = payload::now_ns();
        while let Some(packet) = read.decode()? {
            let Packet::Publish(publish) = packet else {
                bail!("subscriber: unexpected {}", packet.name());
            };
            let stamp = payload::decode(&publish.payload)?;
            if stamp.seq > next {
                bail!("loss: expected message {next}, got {}", stamp.seq);
            } else if stamp.seq < next {
                bail!(
                    "duplicate or out of order: message {} after {}",
                    stamp.seq,
                    next - 1
                );
            }
            if stamp.seq >= warmup {
                latencies.push(now.saturating_sub(stamp.sent_ns));
            }
            next += 1;
            if let Some(id) = publish.packet_id {
                mqtt::put_puback(&mut acks, id)?;
            }
        }
        if !acks.is_empty() {
            write.write_all(&acks).await?;
            acks.clear();
        }
    }
    // Anything more within 200 ms is a duplicate.
    let extra = tokio::time::timeout(Duration::from_millis(200), async {
        loop {
            if let Some(packet) = read.decode()? {
                return anyhow::Ok(packet);
            }
            ensure!(read.fill().await?, "closed");
        }
    });
    let waited = Instant::now();
    if let Ok(Ok(packet)) = extra.await {
        bail!(
            "duplicate: {} after the last message ({:?} later)",
            packet.name(),
            waited.elapsed()
        );
    }
    Ok((latencies, write))
}

/// Counts `total` PUBACKs.
async fn read_pubacks(mut read: ReadHalf, total: u64) -> anyhow::Result<()> {
    let mut acked = 0_u64;
    while acked < total {
        ensure!(
            read.fill().await?,
            "publisher: connection closed by the broker"
        );
        while let Some(packet) = read.decode()? {
            match packet {
                Packet::PubAck(_) => acked += 1,
                other => bail!("publisher: unexpected {}", other.name()),
            }
        }
    }
    Ok(())
}
