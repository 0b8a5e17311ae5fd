//! The broker out of file descriptors: its `RLIMIT_NOFILE` is lowered with `prlimit` while it
//! runs, clients connect until `accept` fails, and the broker must log it, keep serving the
//! clients it has without spinning, and accept again once connections close. Also: the limits
//! are logged at start.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use midge_tests::admin::{admin_addr, metrics_addr};
use midge_tests::broker::tcp_config;
use midge_tests::grpcurl::scrape;
use midge_tests::raw::Read;
use midge_tests::raw::packet::{self, Connect, Publish};
use midge_tests::{RawClient, TestBroker, require_tool};

/// Descriptors left free above what the idle broker holds when the limit is lowered: room for
/// a few clients, so that some connect before `accept` fails.
const HEADROOM: usize = 6;

/// How long a client waits for its CONNACK before it counts as not accepted.
const CONNACK_WAIT: Duration = Duration::from_secs(2);

/// How soon after descriptors are freed a client waiting in the backlog must be accepted: the
/// longest back-off between accept retries is 1 s.
const ACCEPT_AGAIN_WITHIN: Duration = Duration::from_secs(3);

/// Opens a TCP connection and sends CONNECT; returns the client and whether a CONNACK (0)
/// came back within `wait`.
async fn try_connect(addr: SocketAddr, client_id: &str, wait: Duration) -> (RawClient, bool) {
    let mut client = RawClient::tcp(addr).await;
    client.send_ok(&Connect::new(client_id).encode()).await;
    let acked = match client.next(wait).await {
        Read::Packet(p) => p.kind() == packet::CONNACK && p.connack().code == 0,
        Read::Closed | Read::TimedOut => false,
    };
    (client, acked)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd of the broker")
        .count()
}

/// User plus system CPU time of `pid`, in clock ticks (fields 14 and 15 of `/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `after_name` starts at field 3 (state): utime is field 14, stime field 15.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn set_fd_limit(prlimit: &std::path::Path, pid: u32, limit: usize) {
    let status = Command::new(prlimit)
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .expect("running prlimit");
    assert!(
        status.success(),
        "prlimit --nofile={limit} failed: {status}"
    );
}

#[tokio::test]
async fn out_of_descriptors_is_survived_and_accepting_resumes() {
    let Some(prlimit) = require_tool("prlimit") else {
        return;
    };
    let broker = TestBroker::start(&tcp_config("", "")).await;
    let addr = broker.mqtt_addr();
    let pid = broker.pid();
    // Both are bound after the MQTT listener: wait for them before counting descriptors.
    // (The metrics endpoint cannot accept either while the broker is out of descriptors.)
    let metrics = metrics_addr(&broker).await;
    admin_addr(&broker).await;

    let limit = open_fds(pid) + HEADROOM;
    set_fd_limit(&prlimit, pid, limit);

    // Connect until the broker cannot accept any more.
    let mut clients = Vec::new();
    let mut waiting = None;
    for i in 0..HEADROOM * 4 {
        let (client, acked) = try_connect(addr, &format!("c{i}"), CONNACK_WAIT).await;
        if !acked {
            waiting = Some(client);
            break;
        }
        clients.push(client);
    }
    let mut waiting = waiting.unwrap_or_else(|| {
        panic!(
            "{} clients connected under an fd limit of {limit}: accept never failed",
            clients.len()
        )
    });
    eprintln!(
        "{} clients connected under an fd limit of {limit}",
        clients.len()
    );
    assert!(
        clients.len() >= 2,
        "only {} clients connected before accept failed (limit {limit})",
        clients.len()
    );
    broker
        .wait_for_log("the out-of-descriptors warning", |l| {
            l.contains("\"level\":\"WARN\"") && l.contains("out of file descriptors")
        })
        .await;

    // The connected clients are still served: a round trip through the broker.
    let mut sub = clients.remove(0);
    sub.subscribe(1, &[("fd/test", 1)]).await;
    let mut publisher = clients.remove(0);
    publisher
        .publish(&Publish::new("fd/test", b"still here").qos(1, 7))
        .await;
    assert_eq!(sub.expect_publish().await.payload, b"still here");
    for client in &mut clients {
        client.ping().await;
    }

    // The accept loop backs off instead of spinning on the pending connection.
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let used = cpu_ticks(pid) - before;
    // 4 s at 100 ticks/s is 400 ticks of a spinning thread; a back-off uses next to none.
    assert!(
        used < 80,
        "the broker used {used} CPU ticks in 4 s while out of descriptors"
    );

    // Closing connections frees descriptors: the client waiting in the backlog is accepted
    // within the longest back-off (1 s, plus slack for a busy machine), then a new one.
    publisher.disconnect().await;
    sub.disconnect().await;
    match waiting.next(ACCEPT_AGAIN_WITHIN).await {
        Read::Packet(p) if p.kind() == packet::CONNACK => assert_eq!(p.connack().code, 0),
        other => {
            panic!("the waiting client got no CONNACK after descriptors were freed: {other:?}")
        }
    }
    waiting.ping().await;
    let (mut fresh, acked) = try_connect(addr, "fresh", Duration::from_secs(10)).await;
    assert!(
        acked,
        "a new client was not accepted after descriptors were freed"
    );
    fresh.ping().await;
    broker
        .wait_for_log("the recovery line", |l| {
            l.contains("accepting connections again")
        })
        .await;

    // Room for the metrics scrape, which counted the failures.
    for mut client in clients.drain(..) {
        client.disconnect().await;
    }
    let scraped = scrape(metrics).await;
    let errors = scraped.get("midge_listener_accept_errors_total{listener=\"default\"}");
    assert!(errors >= 1.0, "accept errors counted: {errors}");
}

#[tokio::test]
async fn limits_are_logged_at_start() {
    let broker = TestBroker::start(&tcp_config("", "")).await;
    let fd_line = broker
        .wait_for_log("the fd limit", |l| l.contains("file descriptor limit"))
        .await;
    assert!(fd_line.contains("\"fd_limit\""), "{fd_line}");
    broker
        .wait_for_log("the default listener's limit", |l| {
            l.contains("connection limit") && l.contains("\"max_connections\":\"unlimited\"")
        })
        .await;
    assert!(
        !broker.logs_contain("add up to more than the file descriptor limit"),
        "unlimited listeners are bounded by the fd limit by definition"
    );

    // More than any fd limit Linux allows (nr_open is at most 2^30).
    let broker = TestBroker::start(&tcp_config("max-connections: 4000000000", "")).await;
    let warning = broker
        .wait_for_log("the over-the-limit warning", |l| {
            l.contains("add up to more than the file descriptor limit")
        })
        .await;
    assert!(warning.contains("\"level\":\"WARN\""), "{warning}");
    assert!(warning.contains("4000000000"), "{warning}");
}

/// The soft and hard "Max open files" of `pid`, from `/proc/PID/limits`.
fn nofile_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc/PID/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_owned(), fields[4].to_owned())
}

#[tokio::test]
async fn the_soft_limit_is_raised_to_the_hard_limit_at_start() {
    let Some(prlimit) = require_tool("prlimit") else {
        return;
    };
    // The broker inherits this process's limits: lower the soft one for the spawn only.
    let me = std::process::id();
    let (soft, hard) = nofile_limits(me);
    let lowered = "512";
    assert_ne!(hard, lowered, "the hard limit is already {lowered}");
    let set_soft = |soft: &str| {
        let status = Command::new(&prlimit)
            .args(["--pid", &me.to_string(), &format!("--nofile={soft}:{hard}")])
            .status()
            .expect("running prlimit");
        assert!(
            status.success(),
            "prlimit --nofile={soft}:{hard} failed: {status}"
        );
    };
    set_soft(lowered);
    let broker = TestBroker::start(&tcp_config("", "")).await;
    set_soft(&soft);

    assert_eq!(nofile_limits(broker.pid()), (hard.clone(), hard.clone()));
    let line = broker
        .wait_for_log("the raised limit", |l| {
            l.contains("file descriptor limit raised to the hard limit")
        })
        .await;
    assert!(line.contains(&format!("\"was\":\"{lowered}\"")), "{line}");
    assert!(line.contains(&format!("\"fd_limit\":\"{hard}\"")), "{line}");
}
