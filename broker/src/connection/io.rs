//! Framed packet I/O over a [`Transport`]: a read buffer fed to the decoder and a write buffer
//! written out once per batch.

use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::codec::v5::Packet;
use crate::codec::{DecodeError, EncodeError, PacketType, ProtocolVersion, convert, v4, v5};
use crate::listener::Transport;
use crate::outbound::Outbound;
use crate::session::Session;
use crate::stats::Stats;

/// At most this many bytes of deliveries are encoded per loop turn, so reading is not starved.
const WRITE_BATCH: usize = 64 * 1024;
/// Below this much spare capacity, the read buffer is grown before reading.
const MIN_SPARE: usize = 64;
/// Smallest read reservation: what an idle connection holds.
const READ_HINT_MIN: usize = 256;
/// Largest read reservation, for clients that keep the socket full.
const READ_HINT_MAX: usize = 64 * 1024;
/// Buffers that grew beyond this (a burst, a large packet) are released once empty, so an idle
/// connection holds no more than a small buffer.
const BUFFER_KEEP: usize = 64 * 1024;
/// A connection that is not busy (its read reservation at [`READ_HINT_MIN`]) holds no read buffer
/// while it waits: it reads into this much stack space and copies what arrived into a new
/// buffer (bench: RSS per idle connection).
const IDLE_READ: usize = 4096;
/// Write buffers this small or smaller are released after a flush.
const WRITE_KEEP_MIN: usize = 64;

/// Why reading or writing packets failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IoError {
    /// The peer sent bytes that are not a valid packet.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A packet could not be encoded (too large for the protocol).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection in the middle of a packet.
    #[error("connection closed mid-packet")]
    Truncated,
}

/// One client's byte stream with its buffers and decoder state.
pub(crate) struct PacketStream {
    transport: Transport,
    read_buf: BytesMut,
    /// Encoded packets waiting for the next [`flush`](Self::flush).
    pub(crate) write_buf: BytesMut,
    /// How much of `write_buf` the flush in progress has written.
    write_pos: usize,
    decoder: Wire,
    /// How deliveries are encoded for this client (set once CONNECT is known).
    pub(crate) out: Outbound,
    /// Bytes read since the counter was last taken (every loop turn, so 32 bits suffice; the
    /// counters saturate rather than wrap).
    pub(crate) bytes_in: u32,
    /// Bytes written since the counter was last taken.
    pub(crate) bytes_out: u32,
    /// Packets queued for writing since the counter was last taken.
    pub(crate) packets_out: u32,
    /// PUBLISH packets among them.
    pub(crate) publishes_out: u32,
    last_size: u32,
    /// How much to reserve for the next read (adapts between the two bounds).
    read_hint: u32,
    /// Packets and bytes received of the packet type counted last; added to `Stats::by_type`
    /// when another type comes or the counters are taken.
    tally_in: Tally,
    /// The same for packets queued for writing.
    tally_out: Tally,
    stats: Arc<Stats>,
}

/// Packets and bytes of one packet type (the type nibble), between two additions to
/// [`crate::stats::PacketTypeCounters`]. A loop turn mostly sees one type per direction
/// (PUBLISH in, PUBACK out, ...), so one slot per direction replaces a table of all sixteen.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    kind: u8,
    packets: u32,
    bytes: u32,
}

impl Tally {
    /// Adds the counts to the global counters of their packet type and starts again from zero.
    fn add_to(&mut self, packets: &[AtomicU64; 16], bytes: &[AtomicU64; 16]) {
        let Tally {
            kind,
            packets: n,
            bytes: size,
        } = std::mem::take(self);
        let index = usize::from(kind & 0x0f);
        Stats::add(&packets[index], u64::from(n));
        Stats::add(&bytes[index], u64::from(size));
    }
}

/// The decoder for the protocol version the client's CONNECT asked for.
#[derive(Debug)]
enum Wire {
    /// CONNECT not seen yet: the first bytes decide ([`crate::codec::detect_protocol`]).
    Undetected(u32),
    /// MQTT 3.1 or 3.1.1; packets are converted to their MQTT 5 form.
    V4(v4::Decoder, ProtocolVersion),
    /// MQTT 5.
    V5(v5::Decoder),
}

impl std::fmt::Debug for PacketStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketStream")
            .field("read_buf", &self.read_buf.len())
            .field("write_buf", &self.write_buf.len())
            .finish()
    }
}

impl PacketStream {
    /// Wraps `transport`; packets larger than `max_packet_size` are refused. Per packet type
    /// counts go to `stats`.
    pub(crate) fn new(transport: Transport, max_packet_size: u32, stats: Arc<Stats>) -> Self {
        PacketStream {
            transport,
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            write_pos: 0,
            decoder: Wire::Undetected(max_packet_size),
            out: Outbound::v4(),
            bytes_in: 0,
            bytes_out: 0,
            packets_out: 0,
            publishes_out: 0,
            last_size: 0,
            read_hint: READ_HINT_MIN as u32,
            tally_in: Tally::default(),
            tally_out: Tally::default(),
            stats,
        }
    }

    /// Counts one packet of type `kind` and `bytes` received.
    fn count_in(&mut self, kind: u8, bytes: usize) {
        if self.tally_in.kind != kind {
            self.flush_tally_in();
            self.tally_in.kind = kind;
        }
        self.tally_in.packets = self.tally_in.packets.saturating_add(1);
        self.tally_in.bytes = self.tally_in.bytes.saturating_add(saturate(bytes));
    }

    /// Counts `packets` of type `kind` in `bytes` queued for writing.
    fn count_out(&mut self, kind: u8, packets: usize, bytes: usize) {
        if packets == 0 {
            return;
        }
        if self.tally_out.kind != kind {
            self.flush_tally_out();
            self.tally_out.kind = kind;
        }
        self.tally_out.packets = self.tally_out.packets.saturating_add(saturate(packets));
        self.tally_out.bytes = self.tally_out.bytes.saturating_add(saturate(bytes));
    }

    fn flush_tally_in(&mut self) {
        let global = &self.stats.by_type;
        self.tally_in
            .add_to(&global.packets_received, &global.bytes_received);
    }

    fn flush_tally_out(&mut self) {
        let global = &self.stats.by_type;
        self.tally_out
            .add_to(&global.packets_sent, &global.bytes_sent);
    }

    /// Adds the per packet type counts not added yet to `Stats::by_type`.
    pub(crate) fn flush_by_type(&mut self) {
        self.flush_tally_in();
        self.flush_tally_out();
    }

    /// Decodes the next complete packet already buffered, if any. [`last_size`](Self::last_size)
    /// then tells its encoded size.
    pub(crate) fn next_buffered(&mut self) -> Result<Option<Packet>, IoError> {
        let before = self.read_buf.len();
        if let Wire::Undetected(max) = self.decoder {
            self.decoder = match crate::codec::detect_protocol(&self.read_buf)? {
                None => return Ok(None),
                Some(ProtocolVersion::V5) => Wire::V5(v5::Decoder::new(max)),
                Some(v4) => Wire::V4(v4::Decoder::new(max), v4),
            };
        }
        let packet = match &mut self.decoder {
            Wire::V4(decoder, _) => decoder.decode(&mut self.read_buf)?.map(convert::v4_to_v5),
            Wire::V5(decoder) => decoder.decode(&mut self.read_buf)?,
            Wire::Undetected(_) => None,
        };
        let size = before - self.read_buf.len();
        self.last_size = saturate(size);
        if let Some(packet) = &packet {
            self.count_in(packet.packet_type() as u8, size);
        }
        Ok(packet)
    }

    /// A copy of the next packet's bytes, if it is completely buffered (for packet events that
    /// carry raw bytes).
    pub(crate) fn peek_packet(&self) -> Option<Vec<u8>> {
        let header = crate::codec::framing::parse_fixed_header(&self.read_buf).ok()??;
        let size = usize::from(header.header_len) + header.remaining_length as usize;
        self.read_buf.get(..size).map(<[u8]>::to_vec)
    }

    /// The client's protocol version, once its CONNECT has been seen.
    pub(crate) fn protocol(&self) -> Option<ProtocolVersion> {
        match self.decoder {
            Wire::Undetected(_) => None,
            Wire::V4(_, version) => Some(version),
            Wire::V5(_) => Some(ProtocolVersion::V5),
        }
    }

    /// Whether the client speaks MQTT 5.
    pub(crate) fn is_v5(&self) -> bool {
        matches!(self.decoder, Wire::V5(_))
    }

    /// Encoded size of the packet the last [`next_buffered`](Self::next_buffered) returned.
    pub(crate) fn last_size(&self) -> usize {
        self.last_size as usize
    }

    /// Reads more bytes from the socket into the read buffer. Returns `Ok(false)` on a clean end
    /// of stream (no partial packet buffered).
    ///
    /// # Cancel safety
    /// Cancel safe: bytes are either fully appended to the buffer or not read at all.
    pub(crate) async fn fill(&mut self) -> Result<bool, IoError> {
        // A poll function rather than an `async` body: waiting for bytes then takes no room in
        // the connection future beyond a pointer (bench: RSS per idle connection).
        poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// [`fill`](Self::fill) as a poll function. Cancel safe between polls: bytes are appended
    /// in the poll that read them.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, IoError>> {
        let hint = self.read_hint as usize;
        if self.read_buf.is_empty()
            && (self.read_buf.capacity() > BUFFER_KEEP || hint == READ_HINT_MIN)
        {
            // Nothing buffered and not busy: hold no buffer while waiting.
            self.read_buf = BytesMut::new();
        }
        let (n, spare) = if self.read_buf.capacity() == 0 {
            // Read into stack space (not part of any future), then into a buffer made now.
            let mut chunk = [MaybeUninit::<u8>::uninit(); IDLE_READ];
            let mut buf = ReadBuf::uninit(&mut chunk);
            ready!(Pin::new(&mut self.transport).poll_read(cx, &mut buf))?;
            let filled = buf.filled();
            if !filled.is_empty() {
                self.read_buf.reserve(hint.max(filled.len()));
                self.read_buf.extend_from_slice(filled);
            }
            (filled.len(), IDLE_READ)
        } else {
            let spare = self.read_buf.capacity() - self.read_buf.len();
            if spare < MIN_SPARE {
                self.read_buf.reserve(hint);
            }
            let spare = self.read_buf.capacity() - self.read_buf.len();
            // `read_buf` keeps no state between polls: made and polled once here.
            let read = self.transport.read_buf(&mut self.read_buf);
            let n = ready!(std::pin::pin!(read).poll(cx))?;
            (n, spare)
        };
        // Grow the next reservation while reads fill the buffer (a busy client), shrink it when
        // they do not, so an idle connection keeps a small buffer and a busy one a large one.
        let hint = if n >= spare {
            (hint * 2).min(READ_HINT_MAX)
        } else {
            (hint / 2).max(READ_HINT_MIN)
        };
        self.read_hint = saturate(hint);
        self.bytes_in = self.bytes_in.saturating_add(saturate(n));
        Poll::Ready(match (n, self.read_buf.is_empty()) {
            (0, true) => Ok(false),
            (0, false) => Err(IoError::Truncated),
            _ => Ok(true),
        })
    }

    /// Reads until one whole packet is decoded. `Ok(None)` on a clean end of stream.
    ///
    /// # Cancel safety
    /// Cancel safe (see [`fill`](Self::fill)); used under the CONNECT deadline.
    pub(crate) async fn read_packet(&mut self) -> Result<Option<Packet>, IoError> {
        loop {
            if let Some(packet) = self.next_buffered()? {
                return Ok(Some(packet));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Appends `packet` to the write buffer, in the client's protocol version: a 3.1.1 client
    /// gets the 3.1.1 equivalent, or nothing where 3.1.1 has none (a server DISCONNECT).
    ///
    /// An MQTT 5 packet never exceeds the client's Maximum Packet Size ([MQTT-3.1.2-24]): its
    /// Reason String and User Properties are left out when they would make it too large
    /// (§3.1.2.11.4), and a packet still too large without them is not sent at all
    /// ([MQTT-3.1.2-25]).
    pub(crate) fn queue(&mut self, packet: &Packet) -> Result<(), IoError> {
        let before = self.write_buf.len();
        if self.is_v5() {
            v5::encode(packet, &mut self.write_buf)?;
            let max = self.out.max_packet_size() as usize;
            if self.write_buf.len() - before > max {
                self.write_buf.truncate(before);
                if let Some(lean) = packet.without_diagnostics() {
                    v5::encode(&lean, &mut self.write_buf)?;
                }
                if self.write_buf.len() - before > max || self.write_buf.len() == before {
                    self.write_buf.truncate(before);
                    tracing::warn!(
                        packet = packet.name(),
                        max_packet_size = max,
                        "packet larger than the client accepts: not sent [MQTT-3.1.2-25]"
                    );
                    return Ok(());
                }
            }
        } else if let Some(packet) = convert::v5_to_v4(packet) {
            v4::encode(&packet, &mut self.write_buf)?;
        } else {
            return Ok(());
        }
        self.packets_out = self.packets_out.saturating_add(1);
        let bytes = self.write_buf.len() - before;
        self.count_out(packet.packet_type() as u8, 1, bytes);
        Ok(())
    }

    /// Appends up to a batch of the session's queued deliveries to the write buffer.
    pub(crate) fn queue_deliveries(&mut self, session: &Session) {
        let before = self.write_buf.len();
        let n = session.fill_outbound(&mut self.write_buf, WRITE_BATCH, &mut self.out);
        self.packets_out = self.packets_out.saturating_add(saturate(n));
        self.publishes_out = self.publishes_out.saturating_add(saturate(n));
        let bytes = self.write_buf.len() - before;
        self.count_out(PacketType::Publish as u8, n, bytes);
    }

    /// Writes the whole write buffer to the socket.
    ///
    /// # Cancel safety
    /// Cancel safe: what was written is remembered, and the next call goes on from there.
    pub(crate) async fn flush(&mut self) -> Result<(), IoError> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// [`flush`](Self::flush) as a poll function: the write in progress is a position in this
    /// stream rather than a future, so the connection task keeps no write future in its state
    /// (bench: RSS per idle connection), and can poll a write once to see whether it completes
    /// at once.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), IoError>> {
        if self.write_buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while self.write_pos < self.write_buf.len() {
            let unwritten = &self.write_buf[self.write_pos..];
            let n = ready!(Pin::new(&mut self.transport).poll_write(cx, unwritten))?;
            if n == 0 {
                return Poll::Ready(Err(
                    std::io::Error::from(std::io::ErrorKind::WriteZero).into()
                ));
            }
            self.write_pos += n;
        }
        ready!(Pin::new(&mut self.transport).poll_flush(cx))?;
        self.write_pos = 0;
        self.bytes_out = self
            .bytes_out
            .saturating_add(saturate(self.write_buf.len()));
        // Tiny buffers (a CONNACK, a PINGRESP) are not kept either: an idle connection then
        // holds no write buffer, and they cost little to make again.
        if self.write_buf.capacity() > BUFFER_KEEP || self.write_buf.capacity() <= WRITE_KEEP_MIN {
            self.write_buf = BytesMut::new();
        } else {
            self.write_buf.clear();
        }
        Poll::Ready(Ok(()))
    }

    /// Writes pending bytes and shuts the write side down (best effort).
    pub(crate) async fn close(&mut self) {
        let _ = self.flush().await;
        let _ = self.transport.shutdown().await;
    }

    /// After [`close`](Self::close): reads and discards what the client still sends until it
    /// closes too, or `until`. Closing a socket with unread bytes resets the connection, and
    /// a client still writing (PUBRELs, PINGREQs) would then get a broken pipe instead of
    /// reading the DISCONNECT before the end of the stream.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: what it read is discarded anyway.
    pub(crate) async fn drain(&mut self, until: tokio::time::Instant) {
        let mut sink = [0u8; 4096];
        let discard = async { while let Ok(1..) = self.transport.read(&mut sink).await {} };
        let _ = tokio::time::timeout_at(until, discard).await;
    }
}

/// `n` as a per-turn counter value (counters are flushed every loop turn, so this never
/// saturates in practice).
fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
