//! MQTT 5.0 packets: the packet model, a streaming [`Decoder`] and [`encode`].
//!
//! Same contract as [`v4`](crate::codec::v4): need-more is `Ok(None)`, an oversize packet is
//! refused from its fixed header, decoded topics, payloads and properties share the read
//! buffer's memory, and the output buffer is unchanged when encoding fails. After a decode
//! error, close the connection with [`DecodeError::v5_reason`] (in CONNACK if the error came
//! from the CONNECT, in DISCONNECT otherwise).
//!
//! ```
//! use bytes::BytesMut;
//! use midge::codec::v5::{Decoder, Disconnect, Packet, ReasonCode, encode};
//!
//! let mut out = BytesMut::new();
//! let disconnect = Disconnect {
//!     reason_code: ReasonCode::ServerShuttingDown,
//!     ..Disconnect::default()
//! };
//! encode(&Packet::Disconnect(disconnect.clone()), &mut out).unwrap();
//! assert_eq!(&out[..], b"\xE0\x01\x8B");
//!
//! let mut decoder = Decoder::new(1024);
//! assert_eq!(decoder.decode(&mut out).unwrap(), Some(Packet::Disconnect(disconnect)));
//! assert_eq!(decoder.decode(&mut out).unwrap(), None); // needs more bytes
//! ```
//!
//! # Layout
//!
//! - [`packet`]: the packets, with one properties struct per packet.
//! - [`properties`]: the 27 property identifiers, their data types and Table 2-4.
//! - [`reason`]: the 43 reason codes and the packets that may carry each.
//! - `decode` / `encode`: one file per packet group; `error`: the reason code and MQTT 5
//!   statement of each [`DecodeError`].
//!
//! [`DecodeError`]: crate::codec::DecodeError
//! [`DecodeError::v5_reason`]: crate::codec::DecodeError::v5_reason

use bytes::BytesMut;

use crate::codec::error::DecodeError;
use crate::codec::framing::Framer;

mod decode;
mod encode;
mod error;
pub mod packet;
pub mod properties;
pub use crate::codec::reason;

pub use encode::{encode, encode_publish};
pub use packet::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, DisconnectProperties, LastWill, Packet, PubResponse, Publish, PublishProperties,
    RetainHandling, SubAck, Subscribe, SubscribeProperties, SubscriptionId, SubscriptionOptions,
    UnsubAck, Unsubscribe, UnsubscribeProperties, UserProperties, WillProperties,
};
pub use properties::{DataType, PropertyContext, PropertyId};
pub use reason::ReasonCode;

/// Streaming decoder of MQTT 5 packets.
///
/// Feed it the connection's read buffer: [`Decoder::decode`] removes one complete packet at a
/// time from the front. It never panics, whatever the input; it refuses a packet larger than
/// the configured maximum as soon as the fixed header is in, without buffering the body; and
/// the packet's topics, payloads and properties share the read buffer's memory instead of
/// copying it.
///
/// Decoding is stateless across packets, except for the header of a packet whose body is still
/// arriving. Rules that depend on the connection (topic alias and receive maximums, which side
/// may send what) are the caller's. After an error the stream cannot be resynchronised: close
/// the connection with [`DecodeError::v5_reason`].
#[derive(Debug, Clone)]
pub struct Decoder {
    framer: Framer,
}

impl Decoder {
    /// A decoder that refuses packets whose total size (fixed header plus remaining length)
    /// exceeds `max_packet_size` bytes: the Maximum Packet Size the server announces in
    /// CONNACK, or the broker's limit.
    pub fn new(max_packet_size: u32) -> Self {
        Self {
            framer: Framer::new(max_packet_size, decode::check_fixed_header),
        }
    }

    /// The largest total packet size this decoder accepts.
    pub fn max_packet_size(&self) -> u32 {
        self.framer.max_packet_size()
    }

    /// Decodes the next packet from the front of `buf`, removing its bytes.
    ///
    /// Returns `Ok(None)` if `buf` does not yet hold a complete packet (read more and call
    /// again); `buf` then has capacity reserved for the rest of that packet, and no more.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        match self.framer.next_frame(buf)? {
            Some(frame) => decode::decode_frame(frame).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
