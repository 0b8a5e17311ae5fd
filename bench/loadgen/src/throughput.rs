//! Fan-in (many publishers, one subscriber) and fan-out (one publisher, many subscribers):
//! closed-loop throughput with every message's sequence number checked.
//!
//! Flow control: publisher `p` may have at most `window` messages that some subscriber has not
//! received yet (and, at QoS 1, that the broker has not acknowledged). Subscribers run in the
//! same process and publish their progress through shared counters, so the broker is never
//! asked to queue more than `publishers × window` messages per subscriber, and the measured rate
//! is one the broker sustains.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use bytes::BytesMut;
use midge::codec::QoS;
use midge::codec::v4::Packet;
use tokio::io::AsyncWriteExt as _;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::mqtt::{self, Conn, ConnectOptions, ReadHalf};
use crate::payload::{self, Stamp};
use crate::record::{Common, Record};

/// Topic prefix; publisher `p` publishes on `bench/t/<p>`.
const TOPIC_PREFIX: &str = "bench/t";

/// Fan-in / fan-out options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// QoS of publications and subscriptions: 0 or 1.
    #[arg(long, default_value_t = 0)]
    pub(crate) qos: u8,
    /// Publishing connections (fan-in default 100, fan-out default 1).
    #[arg(long)]
    pub(crate) publishers: Option<usize>,
    /// Subscribing connections (fan-in default 1, fan-out default 100).
    #[arg(long)]
    pub(crate) subscribers: Option<usize>,
    /// Per publisher: messages sent but not yet received by every subscriber (nor, at QoS 1,
    /// acknowledged). Default: 32 for fan-in, 64 for fan-out.
    #[arg(long)]
    pub(crate) window: Option<u64>,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) duration: f64,
    /// Fail when nothing is delivered for this many seconds (lost messages stall the loop).
    #[arg(long, default_value_t = 5.0)]
    pub(crate) stall_timeout: f64,
    /// A file where a plugin writes how many events or calls it handled (`plugin --count-file`);
    /// reported as `plugin_handled`.
    #[arg(long)]
    pub(crate) plugin_count_file: Option<PathBuf>,
}

/// Which shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Many publishers → one subscriber (topic per publisher, wildcard subscription).
    FanIn,
    /// One publisher → many subscribers (one topic).
    FanOut,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::FanIn => "fan-in",
            Shape::FanOut => "fan-out",
        }
    }
}

/// One publisher's flow-control state, shared with every subscriber.
#[derive(Debug)]
struct Flow {
    /// Messages written so far.
    sent: AtomicU64,
    /// PUBACKs received so far (QoS 1).
    acked: AtomicU64,
    /// Per subscriber: messages of this publisher it received so far.
    received: Box<[AtomicU64]>,
    /// Woken when `acked` or a `received` moves.
    notify: Notify,
}

impl Flow {
    fn new(subscribers: usize) -> Flow {
        Flow {
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            received: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
            notify: Notify::new(),
        }
    }

    /// Messages no longer in flight: received by every subscriber and, at QoS 1, acknowledged.
    fn settled(&self, qos: QoS) -> u64 {
        let received = self
            .received
            .iter()
            .map(|r| r.load(Relaxed))
            .min()
            .unwrap_or(0);
        if qos == QoS::AtMostOnce {
            received
        } else {
            received.min(self.acked.load(Relaxed))
        }
    }
}

/// Runs the scenario and emits its record; an error means the run failed.
pub(crate) async fn run(shape: Shape, args: Args) -> anyhow::Result<()> {
    let mut record = Record::new(&args.common, shape.name(), Some(args.qos));
    let result = measure(shape, &args, &mut record).await;
    if let Err(err) = &result {
        record.fail(err);
    }
    record.emit(&args.common)?;
    result
}

async fn measure(shape: Shape, args: &Args, record: &mut Record) -> anyhow::Result<()> {
    let qos = mqtt::qos(args.qos)?;
    let (default_pubs, default_subs, default_window) = match shape {
        Shape::FanIn => (100, 1, 32),
        Shape::FanOut => (1, 100, 64),
    };
    let publishers = args.publishers.unwrap_or(default_pubs);
    let subscribers = args.subscribers.unwrap_or(default_subs);
    let window = args.window.unwrap_or(default_window);
    ensure!(
        publishers > 0 && subscribers > 0,
        "need publishers and subscribers"
    );
    ensure!((1..65_535).contains(&window), "window must be in 1..65535");
    record.detail("publishers", publishers);
    record.detail("subscribers", subscribers);
    record.detail("window", window);
    record.detail("payload_bytes", payload::LEN);

    let addr = args.common.addr;
    let filter = if publishers == 1 {
        format!("{TOPIC_PREFIX}/0")
    } else {
        format!("{TOPIC_PREFIX}/+")
    };
    let flows: Arc<[Flow]> = (0..publishers).map(|_| Flow::new(subscribers)).collect();
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new(); // publishers stop sending
    let done = CancellationToken::new(); // readers stop reading
    let mut tasks = Tasks::default();

    // Subscribers first, each waiting for its SUBACK.
    let mut connecting = JoinSet::new();
    for j in 0..subscribers {
        let filter = filter.clone();
        connecting.spawn(async move {
            let mut conn =
                Conn::connect(addr, &format!("bench-sub-{j}"), &ConnectOptions::default()).await?;
            conn.subscribe(&filter, qos).await?;
            anyhow::Ok((j, conn))
        });
    }
    let mut subs = Vec::with_capacity(subscribers);
    while let Some(joined) = connecting.join_next().await {
        subs.push(joined??);
    }
    let mut connecting = JoinSet::new();
    for p in 0..publishers {
        connecting.spawn(async move {
            let conn =
                Conn::connect(addr, &format!("bench-pub-{p}"), &ConnectOptions::default()).await?;
            anyhow::Ok((p, conn))
        });
    }
    let mut pubs = Vec::with_capacity(publishers);
    while let Some(joined) = connecting.join_next().await {
        pubs.push(joined??);
    }

    for (j, conn) in subs {
        let (read, write) = conn.split();
        let sub = Subscriber {
            index: j,
            qos,
            flows: Arc::clone(&flows),
            delivered: Arc::clone(&delivered),
        };
        tasks.set.spawn(sub.run(read, write, done.clone()));
    }
    for (p, conn) in pubs {
        let (read, write) = conn.split();
        let flows = Arc::clone(&flows);
        if qos != QoS::AtMostOnce {
            tasks
                .set
                .spawn(read_pubacks(p, read, Arc::clone(&flows), done.clone()));
        }
        let publisher = Publisher {
            index: p,
            qos,
            window,
            flows,
        };
        tasks.set.spawn(publisher.run(write, stop.clone()));
    }

    // Warm up, then measure, watching for failures and stalls.
    let stall = Duration::from_secs_f64(args.stall_timeout);
    watch(
        &mut tasks,
        &delivered,
        (&flows, qos),
        Duration::from_secs_f64(args.warmup),
        stall,
    )
    .await?;
    let (d0, t0) = (delivered.load(Relaxed), Instant::now());
    watch(
        &mut tasks,
        &delivered,
        (&flows, qos),
        Duration::from_secs_f64(args.duration),
        stall,
    )
    .await?;
    let (d1, elapsed) = (delivered.load(Relaxed), t0.elapsed());
    let rate = (d1 - d0) as f64 / elapsed.as_secs_f64();
    record.metric("delivered_per_s", rate);
    record.detail("measured_s", elapsed.as_secs_f64());
    record.detail("measured_deliveries", d1 - d0);

    // Stop publishing; every message sent must then arrive, exactly once.
    stop.cancel();
    for flow in flows.iter() {
        flow.notify.notify_one();
    }
    drain(&mut tasks, &flows, qos, stall.max(Duration::from_secs(10))).await?;
    // A little longer, so that a late duplicate would still be seen.
    watch(
        &mut tasks,
        &delivered,
        (&flows, qos),
        Duration::from_millis(200),
        stall,
    )
    .await?;
    done.cancel();
    let puback_disorder = tasks.finish().await?;
    let published: u64 = flows.iter().map(|f| f.sent.load(Relaxed)).sum();
    record.detail("published", published);
    record.detail("delivered", delivered.load(Relaxed));
    if qos != QoS::AtMostOnce {
        record.detail("puback_out_of_order", puback_disorder);
    }
    if let Some(path) = &args.plugin_count_file {
        record.detail("plugin_handled", plugin_count(path, published).await);
    }
    Ok(())
}

/// What a task hands back when it ends normally.
#[derive(Debug)]
enum Finished {
    /// A connection's write half, to be closed with DISCONNECT.
    Writer(OwnedWriteHalf),
    /// A publisher's PUBACK reader ended; PUBACKs that came out of order.
    PubAcks(u64),
}

/// The scenario's tasks, and what those that ended handed back.
#[derive(Debug, Default)]
struct Tasks {
    set: JoinSet<anyhow::Result<Finished>>,
    writers: Vec<OwnedWriteHalf>,
    puback_disorder: u64,
}

impl Tasks {
    /// Waits up to `timeout` for a task to end; fails if it failed.
    async fn poll(&mut self, timeout: Duration) -> anyhow::Result<()> {
        tokio::select! {
            Some(joined) = self.set.join_next() => match joined?? {
                Finished::Writer(w) => self.writers.push(w),
                Finished::PubAcks(disorder) => self.puback_disorder += disorder,
            },
            () = tokio::time::sleep(timeout) => {}
        }
        Ok(())
    }

    /// Waits for every task to end, then closes every connection with DISCONNECT.
    async fn finish(mut self) -> anyhow::Result<u64> {
        while !self.set.is_empty() {
            self.poll(Duration::from_secs(1)).await?;
        }
        let mut disconnect = BytesMut::new();
        midge::codec::v4::encode(&Packet::Disconnect, &mut disconnect)?;
        for mut write in self.writers {
            let _ = write.write_all(&disconnect).await;
            let _ = write.shutdown().await;
        }
        Ok(self.puback_disorder)
    }
}

/// Waits `period`, failing early if a task fails or if no message is delivered for `stall`.
async fn watch(
    tasks: &mut Tasks,
    delivered: &AtomicU64,
    (flows, qos): (&[Flow], QoS),
    period: Duration,
    stall: Duration,
) -> anyhow::Result<()> {
    let end = Instant::now() + period;
    let mut last = (delivered.load(Relaxed), Instant::now());
    while Instant::now() < end {
        tasks.poll(Duration::from_millis(100)).await?;
        let now = delivered.load(Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > stall {
            let missing = Outstanding::of(flows, qos);
            bail!(
                "loss: no message delivered for {stall:?}, {} (the loop stalled: the broker \
                 lost messages or stopped)",
                missing.describe()
            );
        }
    }
    Ok(())
}

/// Messages sent and not yet delivered or acknowledged, summed over the publishers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outstanding {
    /// Deliveries not made yet: messages sent, times subscribers, minus what they received.
    deliveries: u64,
    /// QoS 1: PUBLISHes without a PUBACK yet.
    unacked: u64,
    /// QoS 1: deliveries missing of messages the broker already acknowledged.
    acked_undelivered: u64,
}

impl Outstanding {
    fn of(flows: &[Flow], qos: QoS) -> Outstanding {
        let mut out = Outstanding {
            deliveries: 0,
            unacked: 0,
            acked_undelivered: 0,
        };
        for f in flows {
            // `acked` first: `sent`, read after it, is then never behind it.
            let acked = f.acked.load(Relaxed);
            let sent = f.sent.load(Relaxed);
            for r in f.received.iter() {
                let received = r.load(Relaxed);
                out.deliveries += sent.saturating_sub(received);
                if qos != QoS::AtMostOnce {
                    out.acked_undelivered += acked.saturating_sub(received);
                }
            }
            if qos != QoS::AtMostOnce {
                out.unacked += sent.saturating_sub(acked);
            }
        }
        out
    }

    fn is_empty(self) -> bool {
        self.deliveries == 0 && self.unacked == 0
    }

    fn describe(self) -> String {
        let mut text = format!("{} deliveries", self.deliveries);
        if self.unacked > 0 || self.acked_undelivered > 0 {
            let _ = write!(
                text,
                " and {} PUBACKs missing; {} of the missing deliveries are of messages the \
                 broker acknowledged",
                self.unacked, self.acked_undelivered
            );
        } else {
            text.push_str(" missing");
        }
        text
    }
}

/// Waits until every subscriber received everything sent (and, at QoS 1, every PUBACK came).
async fn drain(
    tasks: &mut Tasks,
    flows: &[Flow],
    qos: QoS,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        // `sent` is final once `stop` is cancelled: a publisher sets it before each write.
        let missing = Outstanding::of(flows, qos);
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "loss: {timeout:?} after the publishers stopped, {}",
                missing.describe()
            );
        }
        tasks.poll(Duration::from_millis(10)).await?;
    }
}

/// A publishing connection's write side.
#[derive(Debug)]
struct Publisher {
    index: usize,
    qos: QoS,
    window: u64,
    flows: Arc<[Flow]>,
}

impl Publisher {
    async fn run(
        self,
        mut write: OwnedWriteHalf,
        stop: CancellationToken,
    ) -> anyhow::Result<Finished> {
        let flow = &self.flows[self.index];
        let topic = format!("{TOPIC_PREFIX}/{}", self.index).into_bytes();
        let publisher = u32::try_from(self.index)?;
        // Write in batches of at least a quarter window: fewer, larger writes.
        let batch_min = (self.window / 4).max(1);
        let mut buf = BytesMut::with_capacity(128 * self.window as usize);
        let mut seq = 0_u64;
        while !stop.is_cancelled() {
            let room = self.window - (seq - flow.settled(self.qos));
            if room < batch_min {
                tokio::select! {
                    () = flow.notify.notified() => continue,
                    () = stop.cancelled() => break,
                }
            }
            let sent_ns = payload::now_ns();
            for _ in 0..room {
                let body = payload::encode(Stamp {
                    publisher,
                    seq,
                    sent_ns,
                });
                mqtt::put_publish(&mut buf, &topic, self.qos, seq, &body);
                seq += 1;
            }
            flow.sent.store(seq, Relaxed);
            write
                .write_all(&buf)
                .await
                .with_context(|| format!("publisher {}: write failed", self.index))?;
            buf.clear();
        }
        Ok(Finished::Writer(write))
    }
}

/// Reads a QoS 1 publisher's PUBACKs, counting them into its flow.
async fn read_pubacks(
    index: usize,
    mut read: ReadHalf,
    flows: Arc<[Flow]>,
    done: CancellationToken,
) -> anyhow::Result<Finished> {
    let flow = &flows[index];
    let mut acked = 0_u64;
    let mut disorder = 0_u64;
    loop {
        tokio::select! {
            filled = read.fill() => ensure!(filled?, "publisher {index}: connection closed by the broker"),
            () = done.cancelled() => return Ok(Finished::PubAcks(disorder)),
        }
        let before = acked;
        while let Some(packet) = read.decode()? {
            match packet {
                Packet::PubAck(id) => {
                    if id != mqtt::packet_id(acked) {
                        disorder += 1;
                    }
                    acked += 1;
                }
                other => bail!("publisher {index}: unexpected {}", other.name()),
            }
        }
        if acked != before {
            ensure!(
                acked <= flow.sent.load(Relaxed),
                "publisher {index}: more PUBACKs than PUBLISHes"
            );
            flow.acked.store(acked, Relaxed);
            flow.notify.notify_one();
        }
    }
}

/// A subscribing connection: checks every message's sequence and acknowledges QoS 1.
#[derive(Debug)]
struct Subscriber {
    index: usize,
    qos: QoS,
    flows: Arc<[Flow]>,
    delivered: Arc<AtomicU64>,
}

impl Subscriber {
    async fn run(
        self,
        mut read: ReadHalf,
        mut write: OwnedWriteHalf,
        done: CancellationToken,
    ) -> anyhow::Result<Finished> {
        let j = self.index;
        let mut next = vec![0_u64; self.flows.len()];
        let mut touched = vec![false; self.flows.len()];
        let mut touched_list = Vec::with_capacity(self.flows.len());
        let mut acks = BytesMut::with_capacity(4096);
        loop {
            tokio::select! {
                filled = read.fill() => ensure!(filled?, "subscriber {j}: connection closed by the broker"),
                () = done.cancelled() => return Ok(Finished::Writer(write)),
            }
            let mut count = 0;
            while let Some(packet) = read.decode()? {
                let Packet::Publish(publish) = packet else {
                    bail!("subscriber {j}: unexpected {}", packet.name());
                };
                ensure!(
                    publish.qos == self.qos,
                    "subscriber {j}: got QoS {:?}, subscribed at {:?}",
                    publish.qos,
                    self.qos
                );
                let stamp =
                    payload::decode(&publish.payload).with_context(|| format!("subscriber {j}"))?;
                let p = usize::try_from(stamp.publisher)?;
                let expected = *next
                    .get(p)
                    .ok_or_else(|| anyhow!("subscriber {j}: unknown publisher {p}"))?;
                if let Err(err) = check_sequence(j, p, expected, stamp.seq) {
                    // Say whether the broker had acknowledged what it did not deliver.
                    let acked = self.flows[p].acked.load(Relaxed);
                    if self.qos != QoS::AtMostOnce && acked > expected {
                        bail!(
                            "{err}; the broker had acknowledged {} of them (publisher {p} had \
                             {acked} PUBACKs)",
                            acked.min(stamp.seq) - expected
                        );
                    }
                    return Err(err);
                }
                next[p] = expected + 1;
                if let Some(id) = publish.packet_id {
                    mqtt::put_puback(&mut acks, id)?;
                }
                if !touched[p] {
                    touched[p] = true;
                    touched_list.push(p);
                }
                count += 1;
            }
            if !acks.is_empty() {
                write.write_all(&acks).await?;
                acks.clear();
            }
            for p in touched_list.drain(..) {
                touched[p] = false;
                self.flows[p].received[j].store(next[p], Relaxed);
                self.flows[p].notify.notify_one();
            }
            self.delivered.fetch_add(count, Relaxed);
        }
    }
}

/// Loss or duplication (or reordering, which MQTT forbids per publisher and topic) fails the run.
fn check_sequence(
    subscriber: usize,
    publisher: usize,
    expected: u64,
    got: u64,
) -> anyhow::Result<()> {
    if got == expected {
        Ok(())
    } else if got > expected {
        bail!(
            "loss: subscriber {subscriber} expected message {expected} of publisher {publisher}, \
             got {got} ({} missing)",
            got - expected
        )
    } else {
        bail!(
            "duplicate or out of order: subscriber {subscriber} got message {got} of publisher \
             {publisher} after {}",
            expected - 1
        )
    }
}

/// The event count a plugin wrote, once it reaches `want` or stops moving (up to 10 s).
async fn plugin_count(path: &PathBuf, want: u64) -> u64 {
    let read = || {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (read(), Instant::now());
    while last.0 < want && Instant::now() < deadline && last.1.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = read();
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    last.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_check_names_loss_and_duplicates() {
        assert!(check_sequence(0, 1, 5, 5).is_ok());
        let loss = check_sequence(0, 1, 5, 8).unwrap_err().to_string();
        assert!(loss.starts_with("loss"), "{loss}");
        assert!(loss.contains("3 missing"), "{loss}");
        let dup = check_sequence(0, 1, 5, 4).unwrap_err().to_string();
        assert!(dup.starts_with("duplicate"), "{dup}");
    }

    #[test]
    fn outstanding_counts_acknowledged_messages_not_delivered() {
        let flow = Flow::new(2);
        flow.sent.store(10, Relaxed);
        flow.acked.store(8, Relaxed);
        flow.received[0].store(10, Relaxed);
        flow.received[1].store(5, Relaxed);
        let flows = std::slice::from_ref(&flow);
        let out = Outstanding::of(flows, QoS::AtLeastOnce);
        let want = Outstanding {
            deliveries: 5,
            unacked: 2,
            acked_undelivered: 3,
        };
        assert_eq!(out, want);
        assert_eq!(
            out.describe(),
            "5 deliveries and 2 PUBACKs missing; 3 of the missing deliveries are of messages \
             the broker acknowledged"
        );
        let out = Outstanding::of(flows, QoS::AtMostOnce);
        assert_eq!(out.describe(), "5 deliveries missing");
        assert!(!out.is_empty());
    }

    #[test]
    fn settled_is_the_slowest_subscriber_and_the_acks() {
        let flow = Flow::new(2);
        flow.received[0].store(10, Relaxed);
        flow.received[1].store(7, Relaxed);
        flow.acked.store(5, Relaxed);
        assert_eq!(flow.settled(QoS::AtMostOnce), 7);
        assert_eq!(flow.settled(QoS::AtLeastOnce), 5);
    }
}
