//! Pure MQTT codec: packet types, decoding, encoding. No I/O and no tokio in here.
//!
//! # Layout
//!
//! Everything that does not depend on the protocol version is shared by [`v4`] and [`v5`]:
//!
//! - [`types`]: QoS, packet identifiers, protocol versions, packet types.
//! - [`error`]: [`DecodeError`] (every way input can be bad, each naming the spec statement it
//!   breaks) and [`EncodeError`].
//! - [`primitives`]: variable byte integers, two-byte integers, strings, binary data.
//! - [`framing`]: the fixed header and the state machine that cuts packets out of a stream.
//! - [`topic`]: topic name and topic filter syntax.
//! - [`v4`]: MQTT 3.1 / 3.1.1 packets, their [`v4::Decoder`] and [`v4::encode`].
//! - [`v5`]: MQTT 5.0 packets, properties and reason codes, their [`v5::Decoder`] and
//!   [`v5::encode`].
//! - [`convert`]: 3.1.1 packets to MQTT 5 packets and back, so the broker handles every
//!   client in MQTT 5 terms.
//! - [`connect_peek`]: [`detect_protocol`], which reads the protocol level of a buffered
//!   CONNECT so that the connection can choose between the two.

pub mod connect_peek;
pub mod convert;
pub mod error;
pub mod framing;
pub mod primitives;
pub mod properties;
pub mod reason;
pub mod topic;
pub mod types;
pub mod v4;
pub mod v5;

pub use connect_peek::detect_protocol;
pub use error::{DecodeError, EncodeError};
pub use types::{PacketId, PacketType, ProtocolVersion, QoS};
