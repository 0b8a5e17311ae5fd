//! [`MqttClient`]: a `rumqttc` MQTT 3.1.1 client whose event loop runs in a background task and
//! forwards every event to the test, which waits for acks and messages with a deadline.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnAck, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet,
    Publish, QoS, SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use crate::TIMEOUT;

/// Options for a client called `client_id` connecting to `addr` over TCP: clean session,
/// keepalive 30 s, packets up to 1 MiB.
pub fn options(addr: SocketAddr, client_id: &str) -> MqttOptions {
    let mut opts = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts
}

/// [`options`] over TLS with `config` (the server is named by its IP address).
pub fn tls_options(
    addr: SocketAddr,
    client_id: &str,
    config: Arc<rustls::ClientConfig>,
) -> MqttOptions {
    let mut opts = options(addr, client_id);
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    opts
}

/// A connected `rumqttc` client.
///
/// The event loop stops at the first connection error instead of reconnecting, so a closed
/// connection is observable ([`MqttClient::expect_closed`]). Incoming QoS 1/2 messages are
/// acknowledged by rumqttc.
#[derive(Debug)]
pub struct MqttClient {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<Event, ConnectionError>>,
    /// Messages that arrived while waiting for something else.
    pending: VecDeque<Publish>,
    task: JoinHandle<()>,
    name: String,
}

impl MqttClient {
    /// Connects `client_id` to `addr` with [`options`].
    ///
    /// # Panics
    ///
    /// If the broker does not accept the connection.
    pub async fn connect(addr: SocketAddr, client_id: &str) -> Self {
        Self::connect_with(options(addr, client_id)).await
    }

    /// Connects with `opts`.
    ///
    /// # Panics
    ///
    /// If the connection fails or the broker refuses it.
    pub async fn connect_with(opts: MqttOptions) -> Self {
        let name = opts.client_id();
        match Self::try_connect_with(opts).await {
            Ok((client, _)) => client,
            Err(e) => panic!("client {name:?} could not connect: {e}"),
        }
    }

    /// Connects with `opts` and returns the client with the CONNACK, or the connection error
    /// (`ConnectionRefused(code)` for a CONNACK with a non-zero code).
    ///
    /// # Panics
    ///
    /// If nothing happens within [`TIMEOUT`].
    pub async fn try_connect_with(opts: MqttOptions) -> Result<(Self, ConnAck), ConnectionError> {
        let name = opts.client_id();
        let (client, eventloop) = AsyncClient::new(opts, 64);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(pump(eventloop, tx));
        let mut this = MqttClient {
            client,
            events,
            pending: VecDeque::new(),
            task,
            name,
        };
        let ack = this
            .wait("CONNACK", |e| match e {
                Event::Incoming(Packet::ConnAck(ack)) => Some(ack.clone()),
                _ => None,
            })
            .await?;
        Ok((this, ack))
    }

    /// Waits up to [`TIMEOUT`] for an event `pick` accepts, keeping publishes seen on the way.
    async fn wait<T>(
        &mut self,
        what: &str,
        pick: impl Fn(&Event) -> Option<T>,
    ) -> Result<T, ConnectionError> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let event = match timeout_at(deadline, self.events.recv()).await {
                Err(_) => panic!("client {:?}: no {what} within {TIMEOUT:?}", self.name),
                Ok(None) => panic!(
                    "client {:?}: event loop ended while waiting for {what}",
                    self.name
                ),
                Ok(Some(Err(e))) => return Err(e),
                Ok(Some(Ok(event))) => event,
            };
            if let Some(found) = pick(&event) {
                return Ok(found);
            }
            if let Event::Incoming(Packet::Publish(p)) = event {
                self.pending.push_back(p);
            }
        }
    }

    async fn wait_ok<T>(&mut self, what: &str, pick: impl Fn(&Event) -> Option<T>) -> T {
        match self.wait(what, pick).await {
            Ok(found) => found,
            Err(e) => panic!(
                "client {:?}: connection failed while waiting for {what}: {e}",
                self.name
            ),
        }
    }

    /// Subscribes and returns the SUBACK return codes.
    ///
    /// # Panics
    ///
    /// If no SUBACK arrives.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<SubscribeReasonCode> {
        self.client
            .subscribe(filter, qos)
            .await
            .expect("the event loop is running");
        self.wait_ok("SUBACK", |e| match e {
            Event::Incoming(Packet::SubAck(ack)) => Some(ack.return_codes.clone()),
            _ => None,
        })
        .await
    }

    /// Subscribes and checks the broker granted exactly `qos`.
    ///
    /// # Panics
    ///
    /// If no SUBACK arrives or it grants something else.
    pub async fn subscribe_ok(&mut self, filter: &str, qos: QoS) {
        let codes = self.subscribe(filter, qos).await;
        assert_eq!(
            codes,
            [SubscribeReasonCode::Success(qos)],
            "SUBACK for {filter:?}"
        );
    }

    /// Unsubscribes and waits for the UNSUBACK.
    ///
    /// # Panics
    ///
    /// If no UNSUBACK arrives.
    pub async fn unsubscribe(&mut self, filter: &str) {
        self.client
            .unsubscribe(filter)
            .await
            .expect("the event loop is running");
        self.wait_ok("UNSUBACK", |e| {
            matches!(e, Event::Incoming(Packet::UnsubAck(_))).then_some(())
        })
        .await;
    }

    /// Publishes and waits until the broker took it: PUBACK for QoS 1, PUBCOMP for QoS 2, the
    /// packet written to the socket for QoS 0.
    ///
    /// # Panics
    ///
    /// If the acknowledgement does not arrive.
    pub async fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) {
        self.client
            .publish(topic, qos, retain, payload)
            .await
            .expect("the event loop is running");
        match qos {
            QoS::AtMostOnce => {
                self.wait_ok("PUBLISH sent", |e| {
                    matches!(e, Event::Outgoing(Outgoing::Publish(_))).then_some(())
                })
                .await
            }
            QoS::AtLeastOnce => {
                self.wait_ok("PUBACK", |e| {
                    matches!(e, Event::Incoming(Packet::PubAck(_))).then_some(())
                })
                .await
            }
            QoS::ExactlyOnce => {
                self.wait_ok("PUBCOMP", |e| {
                    matches!(e, Event::Incoming(Packet::PubComp(_))).then_some(())
                })
                .await
            }
        }
    }

    /// The next message delivered to this client, within [`TIMEOUT`].
    ///
    /// # Panics
    ///
    /// If none arrives or the connection fails.
    pub async fn recv(&mut self) -> Publish {
        if let Some(p) = self.pending.pop_front() {
            return p;
        }
        self.wait_ok("a message", |e| match e {
            Event::Incoming(Packet::Publish(p)) => Some(p.clone()),
            _ => None,
        })
        .await
    }

    /// The next `n` messages.
    ///
    /// # Panics
    ///
    /// As [`MqttClient::recv`].
    pub async fn recv_n(&mut self, n: usize) -> Vec<Publish> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.recv().await);
        }
        out
    }

    /// Waits until the broker closes the connection (or it fails), within [`TIMEOUT`], and
    /// returns the error that ended it. Messages that arrive first are kept for `recv`.
    ///
    /// # Panics
    ///
    /// If the connection stays up.
    pub async fn expect_closed(&mut self) -> ConnectionError {
        match self.wait("the connection to close", |_| None::<()>).await {
            Err(e) => e,
            Ok(()) => unreachable!("the picker accepts no event"),
        }
    }

    /// Sends DISCONNECT and waits until it was written.
    ///
    /// # Panics
    ///
    /// If it cannot be sent.
    pub async fn disconnect(mut self) {
        self.client
            .disconnect()
            .await
            .expect("the event loop is running");
        let sent = self
            .wait("DISCONNECT sent", |e| {
                matches!(e, Event::Outgoing(Outgoing::Disconnect)).then_some(())
            })
            .await;
        if let Err(e) = sent {
            panic!("client {:?}: DISCONNECT failed: {e}", self.name);
        }
    }
}

impl Drop for MqttClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls the event loop and forwards events until the first error (no reconnect) or until the
/// test drops the receiver.
async fn pump(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Result<Event, ConnectionError>>) {
    loop {
        let event = eventloop.poll().await;
        let failed = event.is_err();
        if tx.send(event).is_err() || failed {
            return;
        }
    }
}
