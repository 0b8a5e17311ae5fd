//! The write stall and keep alive share one timer: these check that each still ends the
//! connection when it should. Paused time: the clock jumps to the next timer whenever the
//! runtime waits, so the 15 and 30 second limits take no real time.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::*;
use crate::broker::Broker;
use crate::codec::QoS;
use crate::config::Config;
use crate::message::Message;

/// An MQTT 3.1.1 CONNECT of client `c` with clean session and a keep alive of 10 s: the
/// keep alive limit is 15 s, the write stall limit 30 s.
const CONNECT: &[u8] = &[
    0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0, 1, b'c',
];

/// A connection of client `c` past CONNACK, served by its own task, with small socket
/// buffers on both sides so that a few deliveries the client does not read block the
/// broker's write.
async fn connected() -> (Arc<BrokerContext>, TcpStream, JoinHandle<()>) {
    let broker = Broker::new(Config::default()).expect("default config");
    let ctx = broker.context().clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let (client, accepted) = tokio::join!(
        socket.connect(listener.local_addr().expect("address")),
        listener.accept()
    );
    let mut client = client.expect("connect");
    let (server, addr) = accepted.expect("accept");
    socket2::SockRef::from(&server)
        .set_send_buffer_size(4096)
        .expect("send buffer");
    let peer = PeerInfo {
        addr,
        listener: Arc::from("test"),
        tls_subject: None,
        connect_deadline: Instant::now() + Duration::from_secs(300),
    };
    let task = tokio::spawn(serve(ctx.clone(), Transport::Tcp(server), peer));
    client.write_all(CONNECT).await.expect("CONNECT");
    let mut connack = [0; 4];
    client.read_exact(&mut connack).await.expect("CONNACK");
    assert_eq!(connack, [0x20, 2, 0, 0]);
    (ctx, client, task)
}

/// Queues more deliveries for `c` than the socket buffers hold.
fn flood(ctx: &BrokerContext) {
    let session = ctx.sessions.get("c").expect("session of c");
    for _ in 0..16 {
        let payload = Bytes::from(vec![0_u8; 64 * 1024]);
        let message = Message::new("t".into(), payload, QoS::AtMostOnce, false);
        session.deliver(message).expect("queued");
    }
}

/// How long after `started` the connection task `task` ended (within 300 s, without panic).
async fn closed_after(task: tokio::task::JoinHandle<()>, started: Instant) -> Duration {
    tokio::time::timeout(Duration::from_secs(300), task)
        .await
        .expect("connection closed")
        .expect("no panic");
    started.elapsed()
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_closed_after_the_write_stall() {
    let (ctx, _client, task) = connected().await;
    let started = Instant::now();
    flood(&ctx);
    // Not at the keep alive limit (15 s): the write's own limit applies while it waits.
    let elapsed = closed_after(task, started).await;
    assert!(
        (Duration::from_secs(30)..Duration::from_secs(35)).contains(&elapsed),
        "closed after {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn keep_alive_applies_again_once_a_waiting_write_completes() {
    let (ctx, mut client, task) = connected().await;
    let started = Instant::now();
    flood(&ctx);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The client reads everything from now on but sends nothing.
    let reader = tokio::spawn(async move {
        let mut buf = vec![0; 64 * 1024];
        let mut total = 0;
        while let Ok(n @ 1..) = client.read(&mut buf).await {
            total += n;
        }
        total
    });
    // The keep alive limit counted from the CONNECT, not the write stall limit.
    let elapsed = closed_after(task, started).await;
    assert!(
        (Duration::from_secs(14)..Duration::from_secs(20)).contains(&elapsed),
        "closed after {elapsed:?}"
    );
    let read = reader.await.expect("reader");
    assert!(read >= 16 * 64 * 1024, "read {read} bytes");
}
