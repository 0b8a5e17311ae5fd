//! The opt-in `packet_received` / `packet_sent` events (aMQTT's `mqtt_packet_*`): one per MQTT
//! packet with its type and size. Checked with one atomic load per plugin, so they cost nothing
//! unless a plugin asked for them.

use midge_proto::plugin::v1 as pb;

use crate::codec::framing::parse_fixed_header;
use crate::context::BrokerContext;

/// Who the packets belong to.
#[derive(Debug, Clone)]
pub(crate) struct PacketSource {
    pub(crate) client_id: String,
    pub(crate) connection_id: String,
}

impl PacketSource {
    fn event(&self, type_nibble: u8, size: usize) -> pb::PacketEvent {
        pb::PacketEvent {
            client_id: self.client_id.clone(),
            connection_id: self.connection_id.clone(),
            // The proto numbers packet types like the fixed header does (CONNECT = 1, …).
            packet_type: i32::from(type_nibble),
            size: u32::try_from(size).unwrap_or(u32::MAX),
            raw: Vec::new(),
        }
    }
}

/// A packet of type `type_nibble` and `size` bytes arrived.
pub(crate) fn received(ctx: &BrokerContext, source: &PacketSource, type_nibble: u8, size: usize) {
    ctx.plugins.emit(pb::EventKind::PacketReceived, || {
        pb::event::Body::PacketReceived(source.event(type_nibble, size))
    });
}

/// `bytes` (whole encoded packets) are about to be written: one event per packet.
pub(crate) fn sent(ctx: &BrokerContext, source: &PacketSource, mut bytes: &[u8]) {
    if !ctx.plugins.wants(pb::EventKind::PacketSent) {
        return;
    }
    while let Ok(Some(header)) = parse_fixed_header(bytes) {
        let size = usize::from(header.header_len) + header.remaining_length as usize;
        ctx.plugins.emit(pb::EventKind::PacketSent, || {
            pb::event::Body::PacketSent(source.event(header.type_nibble(), size))
        });
        let Some(rest) = bytes.get(size..) else { break };
        bytes = rest;
    }
}
