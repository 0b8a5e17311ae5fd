//! Which properties each packet may carry (spec Table 2-4), in the order each packet's section
//! lists them, with the section that describes each. The order is the one the encoder writes.

use crate::codec::properties::{PropertyContext, PropertyId};
use crate::codec::types::PacketType;

use PropertyId as P;

/// One row of a packet's property list: the property and its section in the spec.
type Row = (PropertyId, &'static str);

const CONNECT: &[Row] = &[
    (P::SessionExpiryInterval, "§3.1.2.11.2"),
    (P::ReceiveMaximum, "§3.1.2.11.3"),
    (P::MaximumPacketSize, "§3.1.2.11.4"),
    (P::TopicAliasMaximum, "§3.1.2.11.5"),
    (P::RequestResponseInformation, "§3.1.2.11.6"),
    (P::RequestProblemInformation, "§3.1.2.11.7"),
    (P::UserProperty, "§3.1.2.11.8"),
    (P::AuthenticationMethod, "§3.1.2.11.9"),
    (P::AuthenticationData, "§3.1.2.11.10"),
];

const WILL: &[Row] = &[
    (P::WillDelayInterval, "§3.1.3.2.2"),
    (P::PayloadFormatIndicator, "§3.1.3.2.3"),
    (P::MessageExpiryInterval, "§3.1.3.2.4"),
    (P::ContentType, "§3.1.3.2.5"),
    (P::ResponseTopic, "§3.1.3.2.6"),
    (P::CorrelationData, "§3.1.3.2.7"),
    (P::UserProperty, "§3.1.3.2.8"),
];

const CONNACK: &[Row] = &[
    (P::SessionExpiryInterval, "§3.2.2.3.2"),
    (P::ReceiveMaximum, "§3.2.2.3.3"),
    (P::MaximumQoS, "§3.2.2.3.4"),
    (P::RetainAvailable, "§3.2.2.3.5"),
    (P::MaximumPacketSize, "§3.2.2.3.6"),
    (P::AssignedClientIdentifier, "§3.2.2.3.7"),
    (P::TopicAliasMaximum, "§3.2.2.3.8"),
    (P::ReasonString, "§3.2.2.3.9"),
    (P::UserProperty, "§3.2.2.3.10"),
    (P::WildcardSubscriptionAvailable, "§3.2.2.3.11"),
    (P::SubscriptionIdentifierAvailable, "§3.2.2.3.12"),
    (P::SharedSubscriptionAvailable, "§3.2.2.3.13"),
    (P::ServerKeepAlive, "§3.2.2.3.14"),
    (P::ResponseInformation, "§3.2.2.3.15"),
    (P::ServerReference, "§3.2.2.3.16"),
    (P::AuthenticationMethod, "§3.2.2.3.17"),
    (P::AuthenticationData, "§3.2.2.3.18"),
];

const PUBLISH: &[Row] = &[
    (P::PayloadFormatIndicator, "§3.3.2.3.2"),
    (P::MessageExpiryInterval, "§3.3.2.3.3"),
    (P::TopicAlias, "§3.3.2.3.4"),
    (P::ResponseTopic, "§3.3.2.3.5"),
    (P::CorrelationData, "§3.3.2.3.6"),
    (P::UserProperty, "§3.3.2.3.7"),
    (P::SubscriptionIdentifier, "§3.3.2.3.8"),
    (P::ContentType, "§3.3.2.3.9"),
];

const PUBACK: &[Row] = &[
    (P::ReasonString, "§3.4.2.2.2"),
    (P::UserProperty, "§3.4.2.2.3"),
];
const PUBREC: &[Row] = &[
    (P::ReasonString, "§3.5.2.2.2"),
    (P::UserProperty, "§3.5.2.2.3"),
];
const PUBREL: &[Row] = &[
    (P::ReasonString, "§3.6.2.2.2"),
    (P::UserProperty, "§3.6.2.2.3"),
];
const PUBCOMP: &[Row] = &[
    (P::ReasonString, "§3.7.2.2.2"),
    (P::UserProperty, "§3.7.2.2.3"),
];

const SUBSCRIBE: &[Row] = &[
    (P::SubscriptionIdentifier, "§3.8.2.1.2"),
    (P::UserProperty, "§3.8.2.1.3"),
];
const SUBACK: &[Row] = &[
    (P::ReasonString, "§3.9.2.1.2"),
    (P::UserProperty, "§3.9.2.1.3"),
];
const UNSUBSCRIBE: &[Row] = &[(P::UserProperty, "§3.10.2.1.2")];
const UNSUBACK: &[Row] = &[
    (P::ReasonString, "§3.11.2.1.2"),
    (P::UserProperty, "§3.11.2.1.3"),
];

const DISCONNECT: &[Row] = &[
    (P::SessionExpiryInterval, "§3.14.2.2.2"),
    (P::ReasonString, "§3.14.2.2.3"),
    (P::UserProperty, "§3.14.2.2.4"),
    (P::ServerReference, "§3.14.2.2.5"),
];

const AUTH: &[Row] = &[
    (P::AuthenticationMethod, "§3.15.2.2.2"),
    (P::AuthenticationData, "§3.15.2.2.3"),
    (P::ReasonString, "§3.15.2.2.4"),
    (P::UserProperty, "§3.15.2.2.5"),
];

/// The properties `context` may carry, in the spec's order, with their sections.
fn rows(context: PropertyContext) -> &'static [Row] {
    match context {
        PropertyContext::Will => WILL,
        PropertyContext::Packet(packet) => match packet {
            PacketType::Connect => CONNECT,
            PacketType::ConnAck => CONNACK,
            PacketType::Publish => PUBLISH,
            PacketType::PubAck => PUBACK,
            PacketType::PubRec => PUBREC,
            PacketType::PubRel => PUBREL,
            PacketType::PubComp => PUBCOMP,
            PacketType::Subscribe => SUBSCRIBE,
            PacketType::SubAck => SUBACK,
            PacketType::Unsubscribe => UNSUBSCRIBE,
            PacketType::UnsubAck => UNSUBACK,
            PacketType::Disconnect => DISCONNECT,
            PacketType::Auth => AUTH,
            PacketType::PingReq | PacketType::PingResp => &[],
        },
    }
}

impl PropertyContext {
    /// The properties this packet (or the will) may carry, in the order the spec lists them.
    pub fn allowed_properties(self) -> impl Iterator<Item = PropertyId> {
        rows(self).iter().map(|&(property, _)| property)
    }
}

impl PropertyId {
    /// Whether `context` may carry this property (Table 2-4). Any other is a Malformed Packet
    /// (§2.2.2.2).
    pub fn allowed_in(self, context: PropertyContext) -> bool {
        self.spec_section(context).is_some()
    }

    /// Whether the property may appear more than once in `context`: User Property anywhere,
    /// Subscription Identifier in PUBLISH (§3.3.2.3.8). Repeating any other is a Protocol
    /// Error.
    pub fn repeatable_in(self, context: PropertyContext) -> bool {
        match self {
            PropertyId::UserProperty => true,
            PropertyId::SubscriptionIdentifier => {
                context == PropertyContext::Packet(PacketType::Publish)
            }
            _ => false,
        }
    }

    /// The section describing this property in `context`, e.g. `"§3.1.2.11.2"` for Session
    /// Expiry Interval in CONNECT, which states the rules on its repetition and values; `None`
    /// if `context` may not carry it.
    pub fn spec_section(self, context: PropertyContext) -> Option<&'static str> {
        rows(context)
            .iter()
            .find(|&&(property, _)| property == self)
            .map(|&(_, section)| section)
    }
}
