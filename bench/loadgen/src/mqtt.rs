//! A minimal MQTT 3.1.1 client on raw tokio TCP, built on the broker's own codec
//! (`midge::codec::v4`): connect, subscribe, and the read / encode helpers the scenarios use on
//! their hot paths.

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use bytes::{BufMut as _, Bytes, BytesMut};
use bytestring::ByteString;
use midge::codec::QoS;
use midge::codec::v4::{
    ConnAck, Connect, ConnectReturnCode, Decoder, Packet, Subscribe, SubscribeReturnCode, encode,
};
use midge::codec::{PacketId, ProtocolVersion};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

/// Largest packet the load generator accepts from a broker.
const MAX_PACKET: u32 = 1 << 20;

/// Keep alive sent in every CONNECT. Long, so idle connections stay up without PINGREQ; not 0,
/// which rumqttd refuses.
pub(crate) const KEEP_ALIVE_SECS: u16 = 600;

/// How long a CONNECT / SUBSCRIBE may take before the scenario gives up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The protocol QoS of a `--qos` value.
pub(crate) fn qos(level: u8) -> anyhow::Result<QoS> {
    match level {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        other => bail!("QoS {other} is not benchmarked (0 or 1)"),
    }
}

/// The packet identifier used for the `seq`-th QoS 1 message of a connection: 1..=65535,
/// cycling. Never reused while in flight as long as fewer than 65535 messages are unacknowledged.
pub(crate) fn packet_id(seq: u64) -> PacketId {
    // seq % 65535 + 1 is in 1..=65535.
    NonZeroU16::new(u16::try_from(seq % 65_535).unwrap_or(0) + 1).unwrap_or(NonZeroU16::MIN)
}

/// An MQTT connection: the socket, its read buffer and a decoder.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    reader: PacketReader,
}

/// What a connection's CONNECT says.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectOptions {
    /// User name, if any (the password is then `"bench"`).
    pub(crate) username: Option<String>,
}

impl Conn {
    /// Opens a TCP connection to `addr`, sends CONNECT (MQTT 3.1.1, clean session) and waits
    /// for an accepting CONNACK.
    pub(crate) async fn connect(
        addr: SocketAddr,
        client_id: &str,
        options: &ConnectOptions,
    ) -> anyhow::Result<Conn> {
        tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            Self::connect_inner(addr, client_id, options),
        )
        .await
        .map_err(|_| anyhow!("{client_id}: no CONNACK within {HANDSHAKE_TIMEOUT:?}"))?
    }

    async fn connect_inner(
        addr: SocketAddr,
        client_id: &str,
        options: &ConnectOptions,
    ) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("{client_id}: cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            reader: PacketReader::new(),
        };
        let connect = Connect {
            protocol: ProtocolVersion::V311,
            clean_session: true,
            keep_alive: KEEP_ALIVE_SECS,
            client_id: ByteString::from(client_id),
            will: None,
            username: options.username.as_deref().map(ByteString::from),
            password: options
                .username
                .as_ref()
                .map(|_| Bytes::from_static(b"bench")),
        };
        conn.send(&Packet::Connect(Box::new(connect))).await?;
        match conn.next().await? {
            Packet::ConnAck(ConnAck {
                return_code: ConnectReturnCode::Accepted,
                ..
            }) => Ok(conn),
            Packet::ConnAck(ack) => bail!("{client_id}: CONNECT refused: {:?}", ack.return_code),
            other => bail!("{client_id}: expected CONNACK, got {}", other.name()),
        }
    }

    /// Subscribes to one filter and waits for a SUBACK granting it.
    pub(crate) async fn subscribe(&mut self, filter: &str, qos: QoS) -> anyhow::Result<()> {
        let subscribe = Subscribe {
            packet_id: NonZeroU16::MIN,
            filters: vec![(ByteString::from(filter), qos)],
        };
        self.send(&Packet::Subscribe(subscribe)).await?;
        let packet = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.next())
            .await
            .map_err(|_| anyhow!("no SUBACK within {HANDSHAKE_TIMEOUT:?}"))??;
        match packet {
            Packet::SubAck(ack) => match ack.return_codes.as_slice() {
                [SubscribeReturnCode::Success(_)] => Ok(()),
                codes => bail!("SUBSCRIBE {filter} refused: {codes:?}"),
            },
            other => bail!("expected SUBACK, got {}", other.name()),
        }
    }

    /// Encodes and writes one packet.
    pub(crate) async fn send(&mut self, packet: &Packet) -> anyhow::Result<()> {
        let mut buf = BytesMut::with_capacity(64);
        encode(packet, &mut buf)?;
        self.stream.write_all(&buf).await?;
        Ok(())
    }

    /// The next packet from the broker.
    pub(crate) async fn next(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(packet) = self.reader.decode()? {
                return Ok(packet);
            }
            let n = self.stream.read_buf(&mut self.reader.buf).await?;
            ensure!(n > 0, "connection closed by the broker");
        }
    }

    /// Sends DISCONNECT and closes the socket, ignoring errors: the end of a scenario.
    pub(crate) async fn disconnect(mut self) {
        let _ = self.send(&Packet::Disconnect).await;
        let _ = self.stream.shutdown().await;
    }

    /// Splits into a [`PacketReader`] over the read half (keeping bytes already read) and the
    /// write half.
    pub(crate) fn split(self) -> (ReadHalf, tokio::net::tcp::OwnedWriteHalf) {
        let (read, write) = self.stream.into_split();
        (
            ReadHalf {
                read,
                reader: self.reader,
            },
            write,
        )
    }
}

/// The read side of a split [`Conn`].
#[derive(Debug)]
pub(crate) struct ReadHalf {
    read: OwnedReadHalf,
    reader: PacketReader,
}

impl ReadHalf {
    /// Reads once from the socket (at least one byte, possibly many packets). `Ok(false)` when
    /// the broker closed the connection.
    pub(crate) async fn fill(&mut self) -> anyhow::Result<bool> {
        if self.reader.buf.capacity() - self.reader.buf.len() < 4096 {
            self.reader.buf.reserve(64 * 1024);
        }
        Ok(self.read.read_buf(&mut self.reader.buf).await? > 0)
    }

    /// The next complete packet already read, if any.
    pub(crate) fn decode(&mut self) -> anyhow::Result<Option<Packet>> {
        self.reader.decode()
    }
}

/// A read buffer with the v4 decoder.
#[derive(Debug)]
struct PacketReader {
    buf: BytesMut,
    decoder: Decoder,
}

impl PacketReader {
    fn new() -> Self {
        PacketReader {
            buf: BytesMut::with_capacity(64 * 1024),
            decoder: Decoder::new(MAX_PACKET),
        }
    }

    fn decode(&mut self) -> anyhow::Result<Option<Packet>> {
        self.decoder
            .decode(&mut self.buf)
            .context("malformed packet from the broker")
    }
}

/// Appends a PUBLISH with `payload` on `topic` to `buf`; QoS 1 messages get
/// [`packet_id`]`(seq)`. Written by hand (no `Publish` value, no allocation): this is the load
/// generator's hot path. The tests check it against the broker's decoder.
pub(crate) fn put_publish(buf: &mut BytesMut, topic: &[u8], qos: QoS, seq: u64, payload: &[u8]) {
    let id_len = if qos == QoS::AtMostOnce { 0 } else { 2 };
    let mut remaining = 2 + topic.len() + id_len + payload.len();
    buf.reserve(5 + remaining);
    buf.put_u8(0x30 | ((qos as u8) << 1));
    loop {
        // Variable byte integer: 7 bits at a time, high bit = more.
        let byte = (remaining % 128) as u8;
        remaining /= 128;
        if remaining == 0 {
            buf.put_u8(byte);
            break;
        }
        buf.put_u8(byte | 0x80);
    }
    buf.put_u16(u16::try_from(topic.len()).unwrap_or(u16::MAX));
    buf.put_slice(topic);
    if id_len > 0 {
        buf.put_u16(packet_id(seq).get());
    }
    buf.put_slice(payload);
}

/// Appends a PUBACK to `buf`.
pub(crate) fn put_puback(buf: &mut BytesMut, id: PacketId) -> anyhow::Result<()> {
    encode(&Packet::PubAck(id), buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_publish_decodes_with_the_broker_codec() {
        for (qos, seq) in [(QoS::AtMostOnce, 7), (QoS::AtLeastOnce, 65_535 * 3 + 4)] {
            let topic = "bench/in/42".repeat(20); // > 127 bytes: two-byte remaining length
            let payload = [0xAB_u8; 64];
            let mut buf = BytesMut::new();
            put_publish(&mut buf, topic.as_bytes(), qos, seq, &payload);
            let packet = Decoder::new(MAX_PACKET).decode(&mut buf).unwrap();
            let Some(Packet::Publish(p)) = packet else {
                panic!("not a PUBLISH: {packet:?}");
            };
            assert_eq!(p.topic, topic.as_str());
            assert_eq!(p.qos, qos);
            assert_eq!(p.payload.as_ref(), payload.as_slice());
            assert_eq!(
                p.packet_id,
                (qos == QoS::AtLeastOnce).then(|| packet_id(seq))
            );
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn packet_ids_cycle_through_1_to_65535() {
        assert_eq!(packet_id(0).get(), 1);
        assert_eq!(packet_id(65_534).get(), 65_535);
        assert_eq!(packet_id(65_535).get(), 1);
    }
}
