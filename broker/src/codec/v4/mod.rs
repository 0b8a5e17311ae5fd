//! MQTT 3.1 / 3.1.1 packets: the packet model, a streaming [`Decoder`] and [`encode`].
//!
//! ```
//! use bytes::BytesMut;
//! use midge::codec::v4::{Decoder, Packet, encode};
//!
//! let mut out = BytesMut::new();
//! encode(&Packet::PingReq, &mut out).unwrap();
//!
//! let mut decoder = Decoder::new(1024);
//! assert_eq!(decoder.decode(&mut out).unwrap(), Some(Packet::PingReq));
//! assert_eq!(decoder.decode(&mut out).unwrap(), None); // needs more bytes
//! ```

use bytes::BytesMut;

use crate::codec::error::DecodeError;
use crate::codec::framing::Framer;

mod decode;
mod encode;
pub mod packet;

pub use encode::{encode, encode_publish};
pub use packet::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, Publish, SubAck, Subscribe,
    SubscribeReturnCode, Unsubscribe,
};

/// Streaming decoder of MQTT 3.1 / 3.1.1 packets.
///
/// Feed it the connection's read buffer: [`Decoder::decode`] removes one complete packet at a
/// time from the front. It never panics, whatever the input; it refuses a packet larger than
/// the configured maximum as soon as the fixed header is in, without buffering the body; and
/// the packet's topics and payloads share the read buffer's memory instead of copying it.
///
/// Decoding is stateless across packets, except for the header of a packet whose body is still
/// arriving. After an error the stream cannot be resynchronised: close the connection (after a
/// CONNACK where [`DecodeError::connack_code`] asks for one).
#[derive(Debug, Clone)]
pub struct Decoder {
    framer: Framer,
}

impl Decoder {
    /// A decoder that refuses packets whose total size (fixed header plus remaining length)
    /// exceeds `max_packet_size` bytes.
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

/// MQTT 3.1.1's answer to a decode error, beside the rest of MQTT 3.1.1 (as `v5::error` gives
/// the MQTT 5 reason codes).
impl DecodeError {
    /// The CONNACK return code to send before closing the connection, where MQTT 3.1/3.1.1
    /// requires one; `None` means close without answering ([MQTT-3.1.4-1]).
    ///
    /// Only two decode errors are answered: an unsupported protocol level with
    /// [`ConnectReturnCode::UnacceptableProtocolVersion`] ([MQTT-3.1.2-2]) and a forbidden empty
    /// client identifier with [`ConnectReturnCode::IdentifierRejected`] ([MQTT-3.1.3-8]).
    pub fn connack_code(&self) -> Option<ConnectReturnCode> {
        match self {
            DecodeError::UnsupportedProtocolLevel(_) => {
                Some(ConnectReturnCode::UnacceptableProtocolVersion)
            }
            DecodeError::EmptyClientId(_) => Some(ConnectReturnCode::IdentifierRejected),
            _ => None,
        }
    }
}
