//! MQTT 5 packets as values (spec §3). Payloads, topics and string properties are
//! `Bytes`-backed, so decoding slices the read buffer instead of copying.
//!
//! Every packet that has properties has a properties struct of its own with one typed field per
//! property it may carry (Table 2-4), and `Vec`s for those that may repeat. A property in the
//! wrong packet cannot be built; ranges are carried by types where they can be (`NonZeroU16`
//! Receive Maximum and Topic Alias, `NonZeroU32` Maximum Packet Size, [`SubscriptionId`]).

use std::num::NonZeroU32;

use bytestring::ByteString;

use crate::codec::types::PacketType;

mod connect;
mod control;
mod publish;
mod subscribe;

pub use connect::{
    ConnAck, ConnAckProperties, Connect, ConnectProperties, LastWill, WillProperties,
};
pub use control::{Auth, AuthProperties, Disconnect, DisconnectProperties};
pub use publish::{AckProperties, PubResponse, Publish, PublishProperties};
pub use subscribe::{
    RetainHandling, SubAck, Subscribe, SubscribeProperties, SubscriptionOptions, UnsubAck,
    Unsubscribe, UnsubscribeProperties,
};

/// User properties: name/value pairs, in wire order, duplicates allowed (§3.3.2.3.7).
pub type UserProperties = Vec<(ByteString, ByteString)>;

/// One MQTT 5 control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT (§3.1); boxed because it is much larger than most packets.
    Connect(Box<Connect>),
    /// CONNACK (§3.2); boxed because it is much larger than most packets.
    ConnAck(Box<ConnAck>),
    /// PUBLISH (§3.3).
    Publish(Publish),
    /// PUBACK (§3.4).
    PubAck(PubResponse),
    /// PUBREC (§3.5).
    PubRec(PubResponse),
    /// PUBREL (§3.6).
    PubRel(PubResponse),
    /// PUBCOMP (§3.7).
    PubComp(PubResponse),
    /// SUBSCRIBE (§3.8).
    Subscribe(Subscribe),
    /// SUBACK (§3.9).
    SubAck(SubAck),
    /// UNSUBSCRIBE (§3.10).
    Unsubscribe(Unsubscribe),
    /// UNSUBACK (§3.11).
    UnsubAck(UnsubAck),
    /// PINGREQ (§3.12).
    PingReq,
    /// PINGRESP (§3.13).
    PingResp,
    /// DISCONNECT (§3.14).
    Disconnect(Disconnect),
    /// AUTH (§3.15).
    Auth(Auth),
}

impl Packet {
    /// The packet type's name as the spec writes it, for logs and metrics labels.
    pub fn name(&self) -> &'static str {
        self.packet_type().name()
    }

    /// The control packet type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }
}

impl Packet {
    /// This packet without its Reason String and User Properties, or `None` if it has
    /// neither (or cannot carry them). The server leaves them out rather than exceed the
    /// client's Maximum Packet Size (§3.1.2.11.4, e.g. [MQTT-3.2.2-19], [MQTT-3.2.2-20]).
    pub fn without_diagnostics(&self) -> Option<Packet> {
        fn strip(
            reason_string: &mut Option<ByteString>,
            user_properties: &mut super::UserProperties,
        ) -> bool {
            let had = reason_string.is_some() || !user_properties.is_empty();
            *reason_string = None;
            user_properties.clear();
            had
        }
        let mut lean = self.clone();
        let had = match &mut lean {
            Packet::ConnAck(ack) => {
                let p = &mut ack.properties;
                strip(&mut p.reason_string, &mut p.user_properties)
            }
            Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
                strip(
                    &mut r.properties.reason_string,
                    &mut r.properties.user_properties,
                )
            }
            Packet::SubAck(SubAck { properties, .. })
            | Packet::UnsubAck(UnsubAck { properties, .. }) => strip(
                &mut properties.reason_string,
                &mut properties.user_properties,
            ),
            Packet::Disconnect(d) => strip(
                &mut d.properties.reason_string,
                &mut d.properties.user_properties,
            ),
            Packet::Auth(a) => strip(
                &mut a.properties.reason_string,
                &mut a.properties.user_properties,
            ),
            _ => false,
        };
        had.then_some(lean)
    }
}

/// A subscription identifier: 1 to 268 435 455 (§3.8.2.1.2). Set in SUBSCRIBE, returned in
/// every PUBLISH the subscription delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(NonZeroU32);

impl SubscriptionId {
    /// The largest subscription identifier: the largest variable byte integer.
    pub const MAX: u32 = 268_435_455;

    /// `value` as a subscription identifier, or `None` for 0 or a value above [`Self::MAX`].
    pub fn new(value: u32) -> Option<Self> {
        if value > Self::MAX {
            return None;
        }
        NonZeroU32::new(value).map(SubscriptionId)
    }

    /// The identifier's value.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Shows binary secrets and payloads in `Debug` by size only.
pub(crate) fn redacted(value: &Option<bytes::Bytes>) -> Option<&'static str> {
    value.as_ref().map(|_| "<REDACTED>")
}
