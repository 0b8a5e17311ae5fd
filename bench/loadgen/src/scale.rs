//! The `connections` scenario: as many idle connections as the machine allows, held with
//! keep-alives, then one message fanned out to all of them.
//!
//! Phases: a warm-up (100 connections, closed) and the broker's `VmRSS`; `--connections`
//! connections opened `--parallel` at a time, each from one of `--sources` loopback addresses
//! (bind before connect: each source address has its own ephemeral ports), CONNACK latency
//! recorded; `VmRSS` after `--settle`; the connections held for `--hold` seconds, each sending
//! PINGREQ every half keep-alive (first ones spread over that half) and expecting its PINGRESP
//! within 10 s (or before the next is due, if sooner); `VmRSS` again (the idle figure); every connection subscribes to one
//! topic; one publisher sends one message there, and the time until the last subscriber has it
//! is the fan-out time. A missed PINGRESP, a connection the broker closed, a refused
//! subscription or a missing or duplicated message fails the run.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::NonZeroU16;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use midge::codec::ProtocolVersion;
use midge::codec::QoS;
use midge::codec::v4::{
    ConnAck, Connect, ConnectReturnCode, Decoder, Packet, Subscribe, SubscribeReturnCode, encode,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::connections::rss_bytes;
use crate::mqtt::{Conn, ConnectOptions};
use crate::record::{Common, Record, percentile};

/// The topic every connection subscribes to and the message is published on.
const TOPIC: &str = "bench/scale";

/// Largest packet a held connection accepts.
const MAX_PACKET: u32 = 4096;

/// How long opening one connection (TCP, CONNACK) or one SUBACK may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a PINGRESP may take (or half the keep alive, if shorter) before it counts as
/// missed.
const PONG_TIMEOUT: Duration = Duration::from_secs(10);

/// Descriptors the load generator needs besides its connections.
const SPARE_FDS: u64 = 64;

/// Options of the `connections` scenario.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// The broker's process id, whose VmRSS is read from /proc.
    #[arg(long)]
    pub(crate) pid: u32,
    /// Idle connections to open and hold.
    #[arg(long, default_value_t = 19_000)]
    pub(crate) connections: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 100)]
    pub(crate) parallel: usize,
    /// Loopback source addresses to spread the connections over (127.0.1.1, 127.0.1.2, ...),
    /// each with its own ephemeral ports; 0 lets the OS choose (127.0.0.1).
    #[arg(long, default_value_t = 4)]
    pub(crate) sources: u8,
    /// Keep alive in each CONNECT, seconds; PINGREQ is sent every half of it.
    #[arg(long, default_value_t = 60)]
    pub(crate) keep_alive: u16,
    /// Seconds to hold the idle connections (with keep-alives) before the fan-out.
    #[arg(long, default_value_t = 60.0)]
    pub(crate) hold: f64,
    /// Seconds to wait before each RSS reading, for the broker to settle.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) settle: f64,
    /// QoS of the subscriptions and of the message fanned out (0 or 1).
    #[arg(long, default_value_t = 0)]
    pub(crate) qos: u8,
}

/// Runs the scenario and emits its record; an error means the run failed.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let mut record = Record::new(&args.common, "connections", Some(args.qos));
    let result = measure(&args, &mut record).await;
    if let Err(err) = &result {
        record.fail(err);
    }
    record.emit(&args.common)?;
    result
}

/// What the held connections are told to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Stay idle, sending PINGREQ on time.
    Hold,
    /// Subscribe to [`TOPIC`], then stay idle.
    Subscribe,
    /// Disconnect and end.
    Close,
}

/// Counters shared by the held connections.
#[derive(Debug, Default)]
struct Shared {
    pings: AtomicU64,
    pongs: AtomicU64,
    /// PINGRESPs that did not come before the next PINGREQ was due.
    missed: AtomicU64,
    /// Connections the broker closed (or that failed) before `Close`.
    closed: AtomicU64,
    subscribed: AtomicUsize,
    refused: AtomicUsize,
    received: AtomicUsize,
    /// Nanoseconds from `base` to the latest receipt of the fanned-out message.
    last_receipt_ns: AtomicU64,
}

async fn measure(args: &Args, record: &mut Record) -> anyhow::Result<()> {
    ensure!(
        args.connections > 0 && args.parallel > 0,
        "need connections"
    );
    ensure!(args.keep_alive >= 2, "keep alive must be at least 2 s");
    let qos = crate::mqtt::qos(args.qos)?;
    let fd_limit = raise_fd_limit();
    ensure!(
        args.connections as u64 + SPARE_FDS <= fd_limit,
        "the load generator may open {fd_limit} files, too few for {} connections (ulimit -n)",
        args.connections
    );
    if let Some(limit) = broker_fd_limit(args.pid) {
        record.detail("broker_fd_limit", limit);
    }
    let settle = Duration::from_secs_f64(args.settle);
    for (name, value) in [
        ("connections", args.connections),
        ("parallel", args.parallel),
        ("sources", usize::from(args.sources)),
        ("keep_alive_s", usize::from(args.keep_alive)),
    ] {
        record.detail(name, value);
    }
    record.detail("hold_s", args.hold);

    // Warm-up: lazily built state (runtime, allocator arenas) is not a per-connection cost.
    let mut warm = Vec::new();
    for i in 0..args.parallel.min(100) {
        warm.push(
            Conn::connect(
                args.common.addr,
                &format!("bench-warm-{i}"),
                &ConnectOptions::default(),
            )
            .await?,
        );
    }
    for conn in warm {
        conn.disconnect().await;
    }
    tokio::time::sleep(settle).await;
    let rss_before = rss_bytes(args.pid)?;

    // Open every connection; each then runs in its own task until told to close.
    let shared = Arc::new(Shared::default());
    let base = Instant::now();
    let (phase_tx, phase_rx) = watch::channel(Phase::Hold);
    let opened = open_all(args, &shared, base, &phase_rx).await;
    let (mut held, latencies) = match opened {
        Ok(ok) => ok,
        Err(err) => {
            let _ = phase_tx.send(Phase::Close);
            return Err(err);
        }
    };
    let open_s = base.elapsed().as_secs_f64();
    let ms = |ns: u64| ns as f64 / 1e6;
    record.metric("connack_p50_ms", ms(percentile(&latencies, 50.0)));
    record.metric("connack_p99_ms", ms(percentile(&latencies, 99.0)));
    record.detail("connack_max_ms", ms(latencies.last().copied().unwrap_or(0)));
    record.detail("open_s", open_s);
    record.metric("conn_per_s", args.connections as f64 / open_s);
    tokio::time::sleep(settle).await;
    let rss_open = rss_bytes(args.pid)?;

    // Hold, with keep-alives.
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let rss_held = rss_bytes(args.pid)?;

    // Subscribe all, then fan one message out.
    let result = fan_out(args, qos, &shared, base, &phase_tx).await;
    let rss_subscribed = rss_bytes(args.pid)?;
    let _ = phase_tx.send(Phase::Close);
    while held.join_next().await.is_some() {}
    let fanout_ms = result?;

    let n = args.connections as f64;
    let per_conn = rss_held.saturating_sub(rss_before) as f64 / n;
    let per_conn_subscribed = rss_subscribed.saturating_sub(rss_before) as f64 / n;
    let mib = |b: f64| b / (1024.0 * 1024.0);
    record.metric("bytes_per_conn", per_conn);
    record.metric("bytes_per_conn_subscribed", per_conn_subscribed);
    record.metric(
        "projected_1m_mib",
        mib(rss_before as f64 + per_conn_subscribed * 1e6),
    );
    record.metric("fanout_ms", fanout_ms);
    record.detail("rss_before_kib", rss_before / 1024);
    record.detail("rss_open_kib", rss_open / 1024);
    record.detail("rss_held_kib", rss_held / 1024);
    record.detail("rss_subscribed_kib", rss_subscribed / 1024);
    record.detail(
        "bytes_per_conn_at_open",
        rss_open.saturating_sub(rss_before) as f64 / n,
    );
    let (pings, pongs) = (shared.pings.load(Relaxed), shared.pongs.load(Relaxed));
    let (missed, closed) = (shared.missed.load(Relaxed), shared.closed.load(Relaxed));
    record.detail("pings", pings);
    record.detail("pongs", pongs);
    record.metric("keepalive_misses", (missed + closed) as f64);
    record.detail("pingresp_missed", missed);
    record.detail("closed_by_broker", closed);
    ensure!(
        missed == 0 && closed == 0,
        "keep-alive misses: {missed} PINGRESP late or missing, {closed} connections closed by the broker"
    );
    ensure!(
        pings > 0,
        "no PINGREQ was sent: hold longer than half the keep alive"
    );
    Ok(())
}

/// The load generator's own descriptor limit, raised to the hard limit.
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    if current != maximum
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: maximum,
                maximum,
            },
        )
        .is_ok()
    {
        return maximum.unwrap_or(u64::MAX);
    }
    current.unwrap_or(u64::MAX)
}

/// The broker's "Max open files" soft limit from `/proc/PID/limits`, if readable.
fn broker_fd_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Opens `args.connections` connections, `args.parallel` at a time, and spawns each one's
/// holding task. Returns the tasks and the sorted CONNACK latencies (ns).
async fn open_all(
    args: &Args,
    shared: &Arc<Shared>,
    base: Instant,
    phase: &watch::Receiver<Phase>,
) -> anyhow::Result<(JoinSet<()>, Vec<u64>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut openers = JoinSet::new();
    for _ in 0..args.parallel.min(args.connections) {
        let next = Arc::clone(&next);
        let (addr, count, sources, keep_alive) = (
            args.common.addr,
            args.connections,
            args.sources,
            args.keep_alive,
        );
        openers.spawn(async move {
            let mut opened = Vec::new();
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= count {
                    return anyhow::Ok(opened);
                }
                let t0 = Instant::now();
                let stream = tokio::time::timeout(
                    STEP_TIMEOUT,
                    connect(
                        addr,
                        source(i, sources),
                        &format!("bench-scale-{i}"),
                        keep_alive,
                    ),
                )
                .await
                .with_context(|| format!("connection {i}: no CONNACK within {STEP_TIMEOUT:?}"))??;
                let latency = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                opened.push((i, stream, latency));
            }
        });
    }
    let mut held = JoinSet::new();
    let mut latencies = Vec::with_capacity(args.connections);
    let interval = Duration::from_secs(u64::from(args.keep_alive)) / 2;
    while let Some(joined) = openers.join_next().await {
        for (i, stream, latency) in joined.context("opening task")?? {
            latencies.push(latency);
            // First PINGREQs spread over one interval, so they do not all come at once.
            let offset = interval.mul_f64((i as f64 * 0.618_034).fract());
            let conn = Held {
                stream,
                shared: Arc::clone(shared),
                phase: phase.clone(),
                interval,
                first_ping: Instant::now() + offset,
                base,
                qos: args.qos,
            };
            held.spawn(conn.run());
        }
    }
    latencies.sort_unstable();
    Ok((held, latencies))
}

/// The source address of connection `i`: 127.0.1.(1 + i mod sources), or any when `sources`
/// is 0.
fn source(i: usize, sources: u8) -> Option<SocketAddr> {
    if sources == 0 {
        return None;
    }
    let host = 1 + u8::try_from(i % usize::from(sources)).unwrap_or(0);
    Some(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(127, 0, 1, host),
        0,
    )))
}

/// TCP connect (bound to `source` first, when given), CONNECT with `keep_alive`, CONNACK.
async fn connect(
    addr: SocketAddr,
    source: Option<SocketAddr>,
    client_id: &str,
    keep_alive: u16,
) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = source {
        socket
            .bind(source)
            .with_context(|| format!("{client_id}: cannot bind {source}"))?;
    }
    let mut stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("{client_id}: cannot connect to {addr} from {source:?}"))?;
    stream.set_nodelay(true)?;
    let connect = Connect {
        protocol: ProtocolVersion::V311,
        clean_session: true,
        keep_alive,
        client_id: ByteString::from(client_id),
        will: None,
        username: None,
        password: None,
    };
    send(&mut stream, &Packet::Connect(Box::new(connect))).await?;
    let mut buf = BytesMut::with_capacity(64);
    let mut decoder = Decoder::new(MAX_PACKET);
    loop {
        if let Some(packet) = decoder.decode(&mut buf)? {
            return match packet {
                Packet::ConnAck(ConnAck {
                    return_code: ConnectReturnCode::Accepted,
                    ..
                }) => Ok(stream),
                Packet::ConnAck(ack) => {
                    bail!("{client_id}: CONNECT refused: {:?}", ack.return_code)
                }
                other => bail!("{client_id}: expected CONNACK, got {}", other.name()),
            };
        }
        ensure!(
            stream.read_buf(&mut buf).await? > 0,
            "{client_id}: closed by the broker before CONNACK"
        );
    }
}

async fn send(stream: &mut TcpStream, packet: &Packet) -> anyhow::Result<()> {
    let mut buf = BytesMut::with_capacity(64);
    encode(packet, &mut buf)?;
    stream.write_all(&buf).await?;
    Ok(())
}

/// One held connection.
struct Held {
    stream: TcpStream,
    shared: Arc<Shared>,
    phase: watch::Receiver<Phase>,
    interval: Duration,
    first_ping: Instant,
    base: Instant,
    qos: u8,
}

impl Held {
    /// PINGREQ every `interval`, each PINGRESP expected within [`PONG_TIMEOUT`] (or `interval`); subscribes and
    /// counts the fanned-out message when told; disconnects on `Close`. Anything unexpected
    /// from the broker, or the broker closing, counts in `closed`.
    async fn run(mut self) {
        if self.hold().await.is_err() {
            self.shared.closed.fetch_add(1, Relaxed);
        }
    }

    async fn hold(&mut self) -> anyhow::Result<()> {
        let mut buf = BytesMut::with_capacity(64);
        let mut decoder = Decoder::new(MAX_PACKET);
        let mut next_ping = self.first_ping;
        // Some(deadline) while a PINGRESP is awaited.
        let mut awaiting_pong: Option<Instant> = None;
        let mut subscribed = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next_ping) => {
                    send(&mut self.stream, &Packet::PingReq).await?;
                    self.shared.pings.fetch_add(1, Relaxed);
                    awaiting_pong = Some(Instant::now() + self.interval.min(PONG_TIMEOUT));
                    next_ping += self.interval;
                }
                () = tokio::time::sleep_until(awaiting_pong.unwrap_or(next_ping)), if awaiting_pong.is_some() => {
                    self.shared.missed.fetch_add(1, Relaxed);
                    awaiting_pong = None;
                }
                changed = self.phase.changed() => {
                    let phase = if changed.is_ok() { *self.phase.borrow_and_update() } else { Phase::Close };
                    match phase {
                        Phase::Hold => {}
                        Phase::Subscribe if !subscribed => {
                            subscribed = true;
                            let qos = crate::mqtt::qos(self.qos)?;
                            let subscribe = Subscribe {
                                packet_id: NonZeroU16::MIN,
                                filters: vec![(ByteString::from(TOPIC), qos)],
                            };
                            send(&mut self.stream, &Packet::Subscribe(subscribe)).await?;
                        }
                        Phase::Subscribe => {}
                        Phase::Close => {
                            // A PINGRESP still awaited here is not late yet.
                            let _ = send(&mut self.stream, &Packet::Disconnect).await;
                            let _ = self.stream.shutdown().await;
                            return Ok(());
                        }
                    }
                }
                read = self.stream.read_buf(&mut buf) => {
                    ensure!(read? > 0, "closed by the broker");
                    while let Some(packet) = decoder.decode(&mut buf)? {
                        match packet {
                            Packet::PingResp => {
                                awaiting_pong = None;
                                self.shared.pongs.fetch_add(1, Relaxed);
                            }
                            Packet::SubAck(ack) => match ack.return_codes.as_slice() {
                                [SubscribeReturnCode::Success(_)] => {
                                    self.shared.subscribed.fetch_add(1, Relaxed);
                                }
                                _ => {
                                    self.shared.refused.fetch_add(1, Relaxed);
                                }
                            },
                            Packet::Publish(publish) => {
                                let at = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
                                self.shared.received.fetch_add(1, Relaxed);
                                self.shared.last_receipt_ns.fetch_max(at, Relaxed);
                                if let Some(id) = publish.packet_id {
                                    send(&mut self.stream, &Packet::PubAck(id)).await?;
                                }
                            }
                            other => bail!("unexpected {} from the broker", other.name()),
                        }
                    }
                    if buf.capacity() > 256 && buf.is_empty() {
                        // Give back what a larger read grew the buffer to.
                        buf = BytesMut::with_capacity(64);
                    }
                }
            }
        }
    }
}

/// Subscribes every held connection, publishes one message on [`TOPIC`] and returns the
/// milliseconds from the publish to the last receipt.
async fn fan_out(
    args: &Args,
    qos: QoS,
    shared: &Shared,
    base: Instant,
    phase: &watch::Sender<Phase>,
) -> anyhow::Result<f64> {
    let n = args.connections;
    phase
        .send(Phase::Subscribe)
        .ok()
        .context("no held connection left")?;
    wait_for(
        || {
            shared.subscribed.load(Relaxed) + shared.refused.load(Relaxed) >= n
                || shared.closed.load(Relaxed) > 0
        },
        STEP_TIMEOUT * 4,
    )
    .await
    .with_context(|| format!("{} of {n} SUBACKs", shared.subscribed.load(Relaxed)))?;
    ensure!(
        shared.closed.load(Relaxed) == 0,
        "connections closed while subscribing"
    );
    let refused = shared.refused.load(Relaxed);
    ensure!(refused == 0, "{refused} subscriptions refused");

    let mut publisher = Conn::connect(
        args.common.addr,
        "bench-scale-pub",
        &ConnectOptions::default(),
    )
    .await?;
    let publish = midge::codec::v4::Publish {
        dup: false,
        qos,
        retain: false,
        topic: ByteString::from(TOPIC),
        packet_id: (qos != QoS::AtMostOnce).then_some(NonZeroU16::MIN),
        payload: Bytes::from_static(&[0xAB; 64]),
    };
    let sent_at = base.elapsed();
    publisher.send(&Packet::Publish(publish)).await?;
    let all = wait_for(
        || shared.received.load(Relaxed) >= n,
        Duration::from_secs(120),
    )
    .await;
    publisher.disconnect().await;
    all.with_context(|| {
        format!(
            "{} of {n} subscribers got the message",
            shared.received.load(Relaxed)
        )
    })?;
    // A duplicate would show up shortly after.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = shared.received.load(Relaxed);
    ensure!(
        received == n,
        "{received} receipts for {n} subscribers: duplicates"
    );
    let last = Duration::from_nanos(shared.last_receipt_ns.load(Relaxed));
    Ok(last.saturating_sub(sent_at).as_secs_f64() * 1e3)
}

/// Polls `done` every 10 ms for up to `limit`.
async fn wait_for(done: impl Fn() -> bool, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        ensure!(Instant::now() < deadline, "timed out after {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_cycle_over_loopback_addresses() {
        assert_eq!(source(0, 0), None);
        let hosts: Vec<_> = (0..5)
            .map(|i| source(i, 4).map(|a| a.ip().to_string()))
            .collect();
        assert_eq!(
            hosts,
            [
                "127.0.1.1",
                "127.0.1.2",
                "127.0.1.3",
                "127.0.1.4",
                "127.0.1.1"
            ]
            .map(|h| Some(h.to_owned()))
        );
    }

    #[test]
    fn broker_limits_are_read_from_proc() {
        let own = broker_fd_limit(std::process::id()).expect("own /proc/PID/limits");
        assert!(own > 0);
        assert_eq!(broker_fd_limit(u32::MAX), None);
    }
}
