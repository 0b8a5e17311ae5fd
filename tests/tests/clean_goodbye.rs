//! A clean goodbye: when the broker ends a connection with a DISCONNECT, a client that is still
//! writing (PUBRELs, PINGREQs) can read it. The broker shuts its write side down after the
//! DISCONNECT and reads and discards what the client still sends for a short grace, instead
//! of closing a socket with unread bytes (a reset: the client's next write fails with a broken
//! pipe and the reason code may be lost).

use std::time::Duration;

use midge_tests::TestBroker;
use midge_tests::broker::tcp_config;
use midge_tests::raw::packet::{PINGREQ, PUBREC};
use midge_tests::raw::v5::{Connect5, Decode5, Publish5, V5Client, ack, reason};
use midge_tests::raw::{Packet, Read};
use tokio::time::Instant;

/// How long the client goes on writing after the broker ended the connection: well inside
/// the broker's one-second grace.
const KEEP_WRITING: Duration = Duration::from_millis(400);

/// Writes PINGREQs (and `extra` before the first) for [`KEEP_WRITING`], asserting that every
/// write succeeds, then reads until the end of the stream and returns the DISCONNECT's reason
/// code and what else arrived.
async fn keep_writing_then_read(client: &mut V5Client, extra: &[u8]) -> (u8, Vec<Packet>) {
    let until = Instant::now() + KEEP_WRITING;
    let mut first = extra.to_vec();
    first.push(PINGREQ << 4);
    first.push(0);
    let mut writes = 0;
    if let Err(e) = client.send(&first).await {
        panic!("write 0 failed: {e}");
    }
    while Instant::now() < until {
        writes += 1;
        if let Err(e) = client.send(&[PINGREQ << 4, 0]).await {
            panic!("write {writes} failed after the broker ended the connection: {e}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut others = Vec::new();
    loop {
        match client.next(Duration::from_secs(5)).await {
            Read::Packet(p) if p.kind() == midge_tests::raw::packet::DISCONNECT => {
                let code = p.disconnect5().reason;
                let after = client.expect_closed().await;
                assert!(after.is_empty(), "packets after DISCONNECT: {after:?}");
                return (code, others);
            }
            Read::Packet(p) => others.push(p),
            Read::Closed => panic!("closed without a DISCONNECT (got {others:?})"),
            Read::TimedOut => panic!("neither DISCONNECT nor close (got {others:?})"),
        }
    }
}

#[tokio::test]
async fn a_client_still_sending_pubrels_reads_disconnect_0x93() {
    let broker = TestBroker::start(&tcp_config("", "limits:\n  receive-maximum: 2\n")).await;
    let mut client = V5Client::connected(broker.mqtt_addr(), "eager").await;
    for id in 1..=2 {
        client
            .send_ok(&Publish5::new("t", b"x").qos(2, id).encode())
            .await;
        client.wait_for(PUBREC, Some(id)).await;
    }
    // A third unreleased QoS 2 message is one too many; the PUBRELs of the first two follow
    // in the same write, as a client flushing its window would send them.
    let mut burst = Publish5::new("t", b"x").qos(2, 3).encode();
    burst.extend(ack(midge_tests::raw::packet::PUBREL, 1, 0));
    burst.extend(ack(midge_tests::raw::packet::PUBREL, 2, 0));
    let (code, _) = keep_writing_then_read(&mut client, &burst).await;
    assert_eq!(code, reason::RECEIVE_MAXIMUM_EXCEEDED);
}

#[tokio::test]
async fn a_client_still_pinging_reads_disconnect_0x8e_after_a_takeover() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut first = V5Client::connected(addr, "same").await;
    let (mut second, _) =
        V5Client::connect_ok(addr, &Connect5::new("same").clean_start(false)).await;
    let (code, others) = keep_writing_then_read(&mut first, &[]).await;
    assert_eq!(code, reason::SESSION_TAKEN_OVER);
    assert!(
        others
            .iter()
            .all(|p| p.kind() == midge_tests::raw::packet::PINGRESP),
        "{others:?}"
    );
    // The new connection was not held up by the old one's grace.
    second.ping().await;
}
