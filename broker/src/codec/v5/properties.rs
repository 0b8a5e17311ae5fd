//! MQTT 5 properties (spec §2.2.2): reading and writing property sections. The identifiers,
//! their data types and which packets may carry each (Table 2-4) are in
//! [`crate::codec::properties`], re-exported here.
//!
//! Packets hold their properties as typed fields of one struct per packet (see
//! [`super::packet`]), so a property in the wrong packet cannot be built. On the wire the rules
//! are checked as each property is read:
//!
//! - an identifier MQTT 5 does not define, or one the packet may not carry, is a Malformed
//!   Packet (§2.2.2.2): [`DecodeError::InvalidPropertyId`], [`DecodeError::PropertyNotAllowed`];
//! - a property repeated where it may appear once is a Protocol Error (stated per property,
//!   e.g. §3.1.2.11.2): [`DecodeError::DuplicateProperty`]. Only User Property (everywhere)
//!   and Subscription Identifier (in PUBLISH) may repeat;
//! - a value out of range (0 where 0 is forbidden, a flag byte other than 0 or 1) is a
//!   Protocol Error: [`DecodeError::InvalidPropertyValue`].
//!
//! [`DecodeError::InvalidPropertyId`]: crate::codec::DecodeError::InvalidPropertyId
//! [`DecodeError::PropertyNotAllowed`]: crate::codec::DecodeError::PropertyNotAllowed
//! [`DecodeError::DuplicateProperty`]: crate::codec::DecodeError::DuplicateProperty
//! [`DecodeError::InvalidPropertyValue`]: crate::codec::DecodeError::InvalidPropertyValue

pub use crate::codec::properties::{DataType, PropertyContext, PropertyId};

pub(crate) mod read;
pub(crate) mod write;

#[cfg(test)]
mod tests;
