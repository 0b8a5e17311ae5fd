//! The opt-in `packet_received` / `packet_sent` events (aMQTT's `mqtt_packet_*`): one per MQTT
//! packet with its type and size, and its raw bytes for plugins that asked for them
//! (`DescribeResponse.packet_bytes`). Checked with one atomic load per plugin, so they cost
//! nothing unless a plugin asked for them.

use midge_proto::plugin::v1 as pb;

use super::PluginManager;
use crate::codec::framing::parse_fixed_header;

/// Who the packets belong to (borrowed: made when an event needs it, not kept).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PacketSource<'a> {
    /// The client's id.
    pub(crate) client_id: &'a str,
    /// The connection's id.
    pub(crate) connection_id: u64,
}

impl PacketSource<'_> {
    fn event(&self, type_nibble: u8, size: usize, raw: &[u8]) -> pb::PacketEvent {
        pb::PacketEvent {
            client_id: self.client_id.to_owned(),
            connection_id: self.connection_id.to_string(),
            // The proto numbers packet types like the fixed header does (CONNECT = 1, …).
            packet_type: i32::from(type_nibble),
            size: u32::try_from(size).unwrap_or(u32::MAX),
            raw: raw.to_vec(),
        }
    }
}

impl PluginManager {
    /// Whether the next received packet's raw bytes should be kept for its event.
    pub(crate) fn wants_received_bytes(&self) -> bool {
        self.wants(pb::EventKind::PacketReceived) && self.wants_packet_bytes()
    }

    /// A packet of type `type_nibble` and `size` bytes arrived (`raw`: its bytes, when kept).
    pub(crate) fn packet_received(
        &self,
        source: &PacketSource<'_>,
        type_nibble: u8,
        size: usize,
        raw: Option<&[u8]>,
    ) {
        if !self.wants(pb::EventKind::PacketReceived) {
            return;
        }
        self.emit_packet(pb::EventKind::PacketReceived, |with_bytes| {
            let raw = if with_bytes {
                raw.unwrap_or_default()
            } else {
                &[]
            };
            pb::event::Body::PacketReceived(source.event(type_nibble, size, raw))
        });
    }

    /// `bytes` (whole encoded packets) are about to be written: one event per packet.
    pub(crate) fn packets_sent(&self, source: &PacketSource<'_>, mut bytes: &[u8]) {
        if !self.wants(pb::EventKind::PacketSent) {
            return;
        }
        while let Ok(Some(header)) = parse_fixed_header(bytes) {
            let size = usize::from(header.header_len) + header.remaining_length as usize;
            let Some(packet) = bytes.get(..size) else {
                break;
            };
            self.emit_packet(pb::EventKind::PacketSent, |with_bytes| {
                let raw = if with_bytes { packet } else { &[] };
                pb::event::Body::PacketSent(source.event(header.type_nibble(), size, raw))
            });
            bytes = &bytes[size..];
        }
    }
}
