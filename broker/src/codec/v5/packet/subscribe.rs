//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK (§3.8 to §3.11).

use bytestring::ByteString;

use crate::codec::types::{PacketId, QoS};
use crate::codec::v5::packet::{AckProperties, SubscriptionId, UserProperties};
use crate::codec::v5::reason::ReasonCode;

/// SUBSCRIBE: one or more topic filters with their subscription options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier echoed in SUBACK.
    pub packet_id: PacketId,
    /// SUBSCRIBE properties.
    pub properties: SubscribeProperties,
    /// (filter, options) pairs, at least one ([MQTT-3.8.3-2]).
    pub filters: Vec<(ByteString, SubscriptionOptions)>,
}

/// SUBSCRIBE properties (§3.8.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeProperties {
    /// Identifier returned with every message these subscriptions deliver.
    pub subscription_identifier: Option<SubscriptionId>,
    /// User properties.
    pub user_properties: UserProperties,
}

/// The subscription options byte of one topic filter (§3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionOptions {
    /// Maximum QoS the server may deliver with.
    pub qos: QoS,
    /// Do not deliver messages this client published itself; not allowed on shared
    /// subscriptions ([MQTT-3.8.3-4]).
    pub no_local: bool,
    /// Keep the RETAIN flag of delivered messages as published.
    pub retain_as_published: bool,
    /// When retained messages are sent.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with this maximum QoS and every flag at its default (0).
    pub fn new(qos: QoS) -> Self {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }

    /// The byte written in SUBSCRIBE.
    pub fn to_u8(self) -> u8 {
        self.qos as u8
            | u8::from(self.no_local) << 2
            | u8::from(self.retain_as_published) << 3
            | (self.retain_handling as u8) << 4
    }
}

impl TryFrom<u8> for SubscriptionOptions {
    type Error = u8;

    /// Converts a subscription options byte; `Err` carries a byte with reserved bits 7-6 set
    /// ([MQTT-3.8.3-5]), QoS 3 or retain handling 3.
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        if value & 0b1100_0000 != 0 {
            return Err(value);
        }
        let retain_handling = match (value >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtNewSubscribe,
            2 => RetainHandling::DoNotSend,
            _ => return Err(value),
        };
        Ok(SubscriptionOptions {
            qos: QoS::try_from(value & 0b11).map_err(|_| value)?,
            no_local: value & 0b0100 != 0,
            retain_as_published: value & 0b1000 != 0,
            retain_handling,
        })
    }
}

/// Retain Handling: when the server sends retained messages for a subscription (§3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RetainHandling {
    /// 0: at the time of the subscribe.
    SendAtSubscribe = 0,
    /// 1: at subscribe, only if the subscription did not exist.
    SendAtNewSubscribe = 1,
    /// 2: never at subscribe.
    DoNotSend = 2,
}

/// SUBACK: the server's answer to SUBSCRIBE, one reason code per filter, same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: PacketId,
    /// Reason string and user properties.
    pub properties: AckProperties,
    /// One code per requested filter: a granted QoS ([`ReasonCode::granted`]) or a failure.
    pub reason_codes: Vec<ReasonCode>,
}

/// UNSUBSCRIBE: one or more topic filters to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier echoed in UNSUBACK.
    pub packet_id: PacketId,
    /// UNSUBSCRIBE properties.
    pub properties: UnsubscribeProperties,
    /// Filters to remove, at least one ([MQTT-3.10.3-2]).
    pub filters: Vec<ByteString>,
}

/// UNSUBSCRIBE properties (§3.10.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnsubscribeProperties {
    /// User properties.
    pub user_properties: UserProperties,
}

/// UNSUBACK: the server's answer to UNSUBSCRIBE, one reason code per filter, same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub packet_id: PacketId,
    /// Reason string and user properties.
    pub properties: AckProperties,
    /// One code per filter.
    pub reason_codes: Vec<ReasonCode>,
}
