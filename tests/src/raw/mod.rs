//! [`RawClient`]: MQTT 3.1.1 spoken byte by byte over TCP, TLS or WebSocket, so tests can assert
//! exact packets (flags, packet ids, return codes) and send malformed input no client library
//! would produce.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::{TIMEOUT, within};

pub mod packet;
pub mod v5;

pub use packet::{ConnAck, Connect, Packet, Publish};

/// Any bidirectional byte stream: a `TcpStream` or a TLS stream over one.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

enum Transport {
    Bytes(Box<dyn ByteStream>),
    Ws(Box<WebSocketStream<Box<dyn ByteStream>>>),
}

/// What [`RawClient::next`] saw.
#[derive(Debug)]
pub enum Read {
    /// A complete packet.
    Packet(Packet),
    /// The broker closed the connection (EOF, reset, or a WebSocket close).
    Closed,
    /// Nothing arrived before the limit.
    TimedOut,
}

/// One MQTT connection driven by hand. Every wait is bounded by [`TIMEOUT`].
pub struct RawClient {
    transport: Transport,
    local_addr: SocketAddr,
    buf: Vec<u8>,
    /// Packets read while waiting for something else (e.g. a PUBLISH that arrived before the
    /// PUBACK we waited for), handed out first by [`RawClient::next`].
    pending: VecDeque<Packet>,
    closed: bool,
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawClient")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RawClient {
    /// Opens a TCP connection to `addr` without sending anything.
    ///
    /// # Panics
    ///
    /// If the connection cannot be opened.
    pub async fn tcp(addr: SocketAddr) -> Self {
        let stream = within("TCP connect", TcpStream::connect(addr))
            .await
            .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        let local_addr = stream
            .local_addr()
            .expect("local address of a connected socket");
        Self::over(Box::new(stream), local_addr)
    }

    /// Opens a TLS connection to `addr` (server name: its IP address) with `config`.
    ///
    /// # Errors
    ///
    /// If the TCP connect or the TLS handshake fails.
    pub async fn tls(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> io::Result<Self> {
        let (stream, local_addr) = tls_stream(addr, config).await?;
        Ok(Self::over(stream, local_addr))
    }

    /// Wraps an already-open byte stream.
    pub fn over(stream: Box<dyn ByteStream>, local_addr: SocketAddr) -> Self {
        RawClient {
            transport: Transport::Bytes(stream),
            local_addr,
            buf: Vec::new(),
            pending: VecDeque::new(),
            closed: false,
        }
    }

    /// Opens a WebSocket to `ws://addr/mqtt` offering subprotocol `mqtt`.
    ///
    /// # Panics
    ///
    /// If the connection or the handshake fails.
    pub async fn ws(addr: SocketAddr) -> Self {
        let stream = within("TCP connect", TcpStream::connect(addr))
            .await
            .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        let local_addr = stream
            .local_addr()
            .expect("local address of a connected socket");
        let url = format!("ws://{addr}/mqtt");
        let (client, _) = Self::websocket(Box::new(stream), local_addr, &url, Some("mqtt"))
            .await
            .unwrap_or_else(|e| panic!("WebSocket handshake with {url}: {e}"));
        client
    }

    /// Runs the WebSocket client handshake for `url` over `stream` (TCP or TLS), offering
    /// `subprotocol`, and returns the client plus the server's handshake response.
    ///
    /// # Errors
    ///
    /// If the handshake fails (including an HTTP error status from the server).
    pub async fn websocket(
        stream: Box<dyn ByteStream>,
        local_addr: SocketAddr,
        url: &str,
        subprotocol: Option<&str>,
    ) -> Result<(Self, Response), tungstenite::Error> {
        let mut request = url.into_client_request()?;
        if let Some(protocol) = subprotocol {
            let value = HeaderValue::from_str(protocol).expect("a valid header value");
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", value);
        }
        let (ws, response) = within(
            "WebSocket handshake",
            tokio_tungstenite::client_async(request, stream),
        )
        .await?;
        let client = RawClient {
            transport: Transport::Ws(Box::new(ws)),
            local_addr,
            buf: Vec::new(),
            pending: VecDeque::new(),
            closed: false,
        };
        Ok((client, response))
    }

    /// Opens a TCP connection, sends `connect`, and returns the client and the CONNACK.
    ///
    /// # Panics
    ///
    /// If no CONNACK arrives.
    pub async fn connect(addr: SocketAddr, connect: &Connect) -> (Self, ConnAck) {
        let mut client = Self::tcp(addr).await;
        let ack = client.handshake(connect).await;
        (client, ack)
    }

    /// Opens a TCP connection and connects as `client_id` with a clean session.
    ///
    /// # Panics
    ///
    /// If the broker does not accept the connection (CONNACK 0).
    pub async fn connected(addr: SocketAddr, client_id: &str) -> Self {
        let (client, ack) = Self::connect(addr, &Connect::new(client_id)).await;
        assert_eq!(ack.code, 0, "CONNACK for {client_id}");
        client
    }

    /// The client side's socket address: how the broker's log names this peer.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sends raw bytes (one binary message on a WebSocket).
    ///
    /// # Errors
    ///
    /// If the write fails, typically because the broker closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let write = async {
            match &mut self.transport {
                Transport::Bytes(stream) => {
                    stream.write_all(bytes).await?;
                    stream.flush().await
                }
                Transport::Ws(ws) => ws
                    .send(Message::binary(bytes.to_vec()))
                    .await
                    .map_err(io::Error::other),
            }
        };
        within("a write", write).await
    }

    /// Sends raw bytes that must be accepted by the socket.
    ///
    /// # Panics
    ///
    /// If the write fails.
    pub async fn send_ok(&mut self, bytes: &[u8]) {
        if let Err(e) = self.send(bytes).await {
            panic!("sending {bytes:?}: {e}");
        }
    }

    /// Waits up to `limit` for the next packet or the end of the connection.
    ///
    /// # Panics
    ///
    /// If the broker sends bytes that are not a packet.
    pub async fn next(&mut self, limit: Duration) -> Read {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(packet) = self.pending.pop_front() {
                return Read::Packet(packet);
            }
            match packet::split_packet(&mut self.buf) {
                Ok(Some(packet)) => return Read::Packet(packet),
                Ok(None) => {}
                Err(e) => panic!("the broker sent a malformed packet: {e}"),
            }
            if self.closed {
                return Read::Closed;
            }
            match timeout_at(deadline, self.read_more()).await {
                Err(_) => return Read::TimedOut,
                Ok(false) => self.closed = true,
                Ok(true) => {}
            }
        }
    }

    /// Reads more bytes into `buf`; `false` once the connection is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes are only appended once a read completes.
    async fn read_more(&mut self) -> bool {
        match &mut self.transport {
            Transport::Bytes(stream) => {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => false,
                    Ok(n) => {
                        self.buf.extend_from_slice(&chunk[..n]);
                        true
                    }
                }
            }
            Transport::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(data))) => {
                        self.buf.extend_from_slice(&data);
                        return true;
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                    Some(Ok(_)) => {}
                }
            },
        }
    }

    /// The next packet, within [`TIMEOUT`].
    ///
    /// # Panics
    ///
    /// If the connection closes or nothing arrives in time.
    pub async fn read_packet(&mut self) -> Packet {
        match self.next(TIMEOUT).await {
            Read::Packet(packet) => packet,
            Read::Closed => panic!("{self:?}: connection closed while waiting for a packet"),
            Read::TimedOut => panic!("{self:?}: no packet within {TIMEOUT:?}"),
        }
    }

    /// Waits up to [`TIMEOUT`] for the broker to close the connection and returns the packets
    /// that arrived before the close.
    ///
    /// # Panics
    ///
    /// If the connection is still open after [`TIMEOUT`].
    pub async fn expect_closed(&mut self) -> Vec<Packet> {
        let deadline = Instant::now() + TIMEOUT;
        let mut before = Vec::new();
        loop {
            match self
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Read::Packet(packet) => before.push(packet),
                Read::Closed => return before,
                Read::TimedOut => panic!(
                    "{self:?}: the broker did not close the connection within {TIMEOUT:?} \
                     (received {before:?})"
                ),
            }
        }
    }

    /// Waits for a packet of type `kind` (and packet id `id`, if given), keeping any other
    /// packet for later reads.
    ///
    /// # Panics
    ///
    /// If the connection closes or no such packet arrives within [`TIMEOUT`].
    pub async fn wait_for(&mut self, kind: u8, id: Option<u16>) -> Packet {
        let deadline = Instant::now() + TIMEOUT;
        let mut others = Vec::new();
        let found = loop {
            let limit = deadline.saturating_duration_since(Instant::now());
            match self.next(limit).await {
                Read::Packet(p) if p.kind() == kind && id.is_none_or(|id| p.packet_id() == id) => {
                    break p;
                }
                Read::Packet(p) => others.push(p),
                Read::Closed => panic!(
                    "{self:?}: closed while waiting for {} (got {others:?})",
                    packet::kind_name(kind)
                ),
                Read::TimedOut => panic!(
                    "{self:?}: no {} {id:?} within {TIMEOUT:?} (got {others:?})",
                    packet::kind_name(kind)
                ),
            }
        };
        // Keep the others in arrival order, ahead of anything not yet read.
        for p in others.into_iter().rev() {
            self.pending.push_front(p);
        }
        found
    }

    /// Sends `connect` and returns the CONNACK.
    ///
    /// # Panics
    ///
    /// If the next packet is not a CONNACK.
    pub async fn handshake(&mut self, connect: &Connect) -> ConnAck {
        self.send_ok(&connect.encode()).await;
        self.read_packet().await.connack()
    }

    /// Subscribes with packet id `id` and returns the SUBACK return codes.
    ///
    /// # Panics
    ///
    /// If no SUBACK for `id` arrives.
    pub async fn subscribe(&mut self, id: u16, filters: &[(&str, u8)]) -> Vec<u8> {
        self.send_ok(&packet::subscribe(id, filters)).await;
        self.wait_for(packet::SUBACK, Some(id)).await.suback().1
    }

    /// Unsubscribes with packet id `id` and waits for the UNSUBACK.
    ///
    /// # Panics
    ///
    /// If no UNSUBACK for `id` arrives.
    pub async fn unsubscribe(&mut self, id: u16, filters: &[&str]) {
        self.send_ok(&packet::unsubscribe(id, filters)).await;
        self.wait_for(packet::UNSUBACK, Some(id)).await;
    }

    /// Publishes `publish` and completes its QoS flow (PUBACK; or PUBREC, PUBREL, PUBCOMP).
    ///
    /// # Panics
    ///
    /// If an acknowledgement is missing.
    pub async fn publish(&mut self, publish: &Publish) {
        self.send_ok(&publish.encode()).await;
        match (publish.qos, publish.packet_id) {
            (1, id @ Some(_)) => {
                self.wait_for(packet::PUBACK, id).await;
            }
            (2, Some(id)) => {
                self.wait_for(packet::PUBREC, Some(id)).await;
                self.send_ok(&packet::pubrel(id)).await;
                self.wait_for(packet::PUBCOMP, Some(id)).await;
            }
            _ => {}
        }
    }

    /// The next packet, which must be a PUBLISH. QoS 1 and 2 are *not* acknowledged: that is
    /// the caller's choice.
    ///
    /// # Panics
    ///
    /// If the next packet is something else, or nothing arrives.
    pub async fn expect_publish(&mut self) -> Publish {
        self.read_packet().await.publish()
    }

    /// Sends PINGREQ and waits for PINGRESP: proof that the broker still serves this client.
    ///
    /// # Panics
    ///
    /// If no PINGRESP arrives.
    pub async fn ping(&mut self) {
        self.send_ok(&packet::pingreq()).await;
        self.wait_for(packet::PINGRESP, None).await;
    }

    /// Sends DISCONNECT and waits until the broker has closed the connection, so the broker
    /// has processed the DISCONNECT when this returns.
    ///
    /// # Panics
    ///
    /// If the broker keeps the connection open.
    pub async fn disconnect(&mut self) {
        self.send_ok(&packet::disconnect()).await;
        let after = self.expect_closed().await;
        assert!(after.is_empty(), "packets after DISCONNECT: {after:?}");
    }
}

/// Opens a TCP connection to `addr` and runs a TLS handshake naming the server by its IP
/// address. Returns the stream and the local socket address.
///
/// # Errors
///
/// If the TCP connect or the handshake fails.
pub async fn tls_stream(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> io::Result<(Box<dyn ByteStream>, SocketAddr)> {
    let tcp = within("TCP connect", TcpStream::connect(addr)).await?;
    let local_addr = tcp.local_addr()?;
    let name =
        rustls::pki_types::ServerName::try_from(addr.ip().to_string()).map_err(io::Error::other)?;
    let tls = within(
        "TLS handshake",
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await?;
    Ok((Box::new(tls), local_addr))
}
