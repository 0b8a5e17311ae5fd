//! MQTT 5 reason codes (spec §2.4, Table 2-6) and the packets that may carry each.
//!
//! The table below is written once and generates the enum, [`TryFrom<u8>`], the spec names and
//! [`ReasonCode::allowed_in`], so that they cannot drift apart. The per-packet lists it encodes
//! are the ones each packet's section requires the sender to use: CONNACK [MQTT-3.2.2-8],
//! PUBACK [MQTT-3.4.2-1], PUBREC [MQTT-3.5.2-1], PUBREL [MQTT-3.6.2-1], PUBCOMP [MQTT-3.7.2-1],
//! SUBACK [MQTT-3.9.3-2], UNSUBACK [MQTT-3.11.3-2], DISCONNECT [MQTT-3.14.2-1] and
//! AUTH [MQTT-3.15.2-1].

use crate::codec::types::{PacketType, QoS};

macro_rules! reason_codes {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $value:literal, $name:literal, [$($packet:ident),+ $(,)?];
    )+) => {
        /// An MQTT 5 reason code: the outcome of an operation, carried by CONNACK, PUBACK,
        /// PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK (one per topic filter), DISCONNECT and
        /// AUTH.
        ///
        /// Values below 0x80 report success, 0x80 and above failure. The spec gives 0x00 three
        /// names (Success, Normal disconnection, Granted QoS 0); here it is
        /// [`ReasonCode::Success`], with [`ReasonCode::NORMAL_DISCONNECTION`] and
        /// [`ReasonCode::GRANTED_QOS_0`] as aliases.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum ReasonCode {
            $( $(#[$doc])* $variant = $value, )+
        }

        impl ReasonCode {
            /// Every reason code, in ascending order of value.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$variant),+];

            /// The reason code's name as Table 2-6 writes it (for 0x00, "Success").
            pub fn name(self) -> &'static str {
                match self {
                    $(ReasonCode::$variant => $name,)+
                }
            }

            /// Whether a packet of type `packet` may carry this reason code (Table 2-6).
            /// PUBLISH, SUBSCRIBE, UNSUBSCRIBE, CONNECT, PINGREQ and PINGRESP carry none.
            pub fn allowed_in(self, packet: PacketType) -> bool {
                match self {
                    $(ReasonCode::$variant => matches!(packet, $(PacketType::$packet)|+),)+
                }
            }
        }

        impl TryFrom<u8> for ReasonCode {
            type Error = u8;

            /// Converts a reason code byte; `Err` carries a value MQTT 5 does not define.
            fn try_from(value: u8) -> Result<Self, Self::Error> {
                match value {
                    $($value => Ok(ReasonCode::$variant),)+
                    other => Err(other),
                }
            }
        }
    };
}

reason_codes! {
    /// 0x00 Success; in DISCONNECT "Normal disconnection", in SUBACK "Granted QoS 0".
    Success = 0x00, "Success",
        [ConnAck, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, Disconnect, Auth];
    /// 0x01 Granted QoS 1.
    GrantedQoS1 = 0x01, "Granted QoS 1", [SubAck];
    /// 0x02 Granted QoS 2.
    GrantedQoS2 = 0x02, "Granted QoS 2", [SubAck];
    /// 0x04 Disconnect with Will Message: the client wants its will published.
    DisconnectWithWillMessage = 0x04, "Disconnect with Will Message", [Disconnect];
    /// 0x10 No matching subscribers: accepted, but nobody is subscribed.
    NoMatchingSubscribers = 0x10, "No matching subscribers", [PubAck, PubRec];
    /// 0x11 No subscription existed for the filter.
    NoSubscriptionExisted = 0x11, "No subscription existed", [UnsubAck];
    /// 0x18 Continue authentication: another AUTH step follows.
    ContinueAuthentication = 0x18, "Continue authentication", [Auth];
    /// 0x19 Re-authenticate: the client starts a new authentication exchange.
    ReAuthenticate = 0x19, "Re-authenticate", [Auth];
    /// 0x80 Unspecified error.
    UnspecifiedError = 0x80, "Unspecified error",
        [ConnAck, PubAck, PubRec, SubAck, UnsubAck, Disconnect];
    /// 0x81 Malformed Packet: the packet could not be parsed.
    MalformedPacket = 0x81, "Malformed Packet", [ConnAck, Disconnect];
    /// 0x82 Protocol Error: the packet parsed but breaks the specification.
    ProtocolError = 0x82, "Protocol Error", [ConnAck, Disconnect];
    /// 0x83 Implementation specific error.
    ImplementationSpecificError = 0x83, "Implementation specific error",
        [ConnAck, PubAck, PubRec, SubAck, UnsubAck, Disconnect];
    /// 0x84 Unsupported Protocol Version.
    UnsupportedProtocolVersion = 0x84, "Unsupported Protocol Version", [ConnAck];
    /// 0x85 Client Identifier not valid.
    ClientIdentifierNotValid = 0x85, "Client Identifier not valid", [ConnAck];
    /// 0x86 Bad User Name or Password.
    BadUserNameOrPassword = 0x86, "Bad User Name or Password", [ConnAck];
    /// 0x87 Not authorized.
    NotAuthorized = 0x87, "Not authorized",
        [ConnAck, PubAck, PubRec, SubAck, UnsubAck, Disconnect];
    /// 0x88 Server unavailable.
    ServerUnavailable = 0x88, "Server unavailable", [ConnAck];
    /// 0x89 Server busy.
    ServerBusy = 0x89, "Server busy", [ConnAck, Disconnect];
    /// 0x8A Banned.
    Banned = 0x8A, "Banned", [ConnAck];
    /// 0x8B Server shutting down.
    ServerShuttingDown = 0x8B, "Server shutting down", [Disconnect];
    /// 0x8C Bad authentication method.
    BadAuthenticationMethod = 0x8C, "Bad authentication method", [ConnAck, Disconnect];
    /// 0x8D Keep Alive timeout.
    KeepAliveTimeout = 0x8D, "Keep Alive timeout", [Disconnect];
    /// 0x8E Session taken over: another connection uses the same client identifier.
    SessionTakenOver = 0x8E, "Session taken over", [Disconnect];
    /// 0x8F Topic Filter invalid.
    TopicFilterInvalid = 0x8F, "Topic Filter invalid", [SubAck, UnsubAck, Disconnect];
    /// 0x90 Topic Name invalid.
    TopicNameInvalid = 0x90, "Topic Name invalid", [ConnAck, PubAck, PubRec, Disconnect];
    /// 0x91 Packet Identifier in use.
    PacketIdentifierInUse = 0x91, "Packet Identifier in use",
        [PubAck, PubRec, SubAck, UnsubAck];
    /// 0x92 Packet Identifier not found.
    PacketIdentifierNotFound = 0x92, "Packet Identifier not found", [PubRel, PubComp];
    /// 0x93 Receive Maximum exceeded.
    ReceiveMaximumExceeded = 0x93, "Receive Maximum exceeded", [Disconnect];
    /// 0x94 Topic Alias invalid.
    TopicAliasInvalid = 0x94, "Topic Alias invalid", [Disconnect];
    /// 0x95 Packet too large.
    PacketTooLarge = 0x95, "Packet too large", [ConnAck, Disconnect];
    /// 0x96 Message rate too high.
    MessageRateTooHigh = 0x96, "Message rate too high", [Disconnect];
    /// 0x97 Quota exceeded.
    QuotaExceeded = 0x97, "Quota exceeded", [ConnAck, PubAck, PubRec, SubAck, Disconnect];
    /// 0x98 Administrative action.
    AdministrativeAction = 0x98, "Administrative action", [Disconnect];
    /// 0x99 Payload format invalid.
    PayloadFormatInvalid = 0x99, "Payload format invalid",
        [ConnAck, PubAck, PubRec, Disconnect];
    /// 0x9A Retain not supported.
    RetainNotSupported = 0x9A, "Retain not supported", [ConnAck, Disconnect];
    /// 0x9B QoS not supported.
    QoSNotSupported = 0x9B, "QoS not supported", [ConnAck, Disconnect];
    /// 0x9C Use another server (temporarily).
    UseAnotherServer = 0x9C, "Use another server", [ConnAck, Disconnect];
    /// 0x9D Server moved (permanently).
    ServerMoved = 0x9D, "Server moved", [ConnAck, Disconnect];
    /// 0x9E Shared Subscriptions not supported.
    SharedSubscriptionsNotSupported = 0x9E, "Shared Subscriptions not supported",
        [SubAck, Disconnect];
    /// 0x9F Connection rate exceeded.
    ConnectionRateExceeded = 0x9F, "Connection rate exceeded", [ConnAck, Disconnect];
    /// 0xA0 Maximum connect time.
    MaximumConnectTime = 0xA0, "Maximum connect time", [Disconnect];
    /// 0xA1 Subscription Identifiers not supported.
    SubscriptionIdentifiersNotSupported = 0xA1, "Subscription Identifiers not supported",
        [SubAck, Disconnect];
    /// 0xA2 Wildcard Subscriptions not supported.
    WildcardSubscriptionsNotSupported = 0xA2, "Wildcard Subscriptions not supported",
        [SubAck, Disconnect];
}

impl ReasonCode {
    /// 0x00 as DISCONNECT names it.
    pub const NORMAL_DISCONNECTION: ReasonCode = ReasonCode::Success;
    /// 0x00 as SUBACK names it.
    pub const GRANTED_QOS_0: ReasonCode = ReasonCode::Success;

    /// The SUBACK code granting `qos`.
    pub fn granted(qos: QoS) -> ReasonCode {
        match qos {
            QoS::AtMostOnce => ReasonCode::Success,
            QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
            QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
        }
    }

    /// Whether this code reports a failure (0x80 and above).
    pub fn is_error(self) -> bool {
        self as u8 >= 0x80
    }
}

impl Default for ReasonCode {
    /// [`ReasonCode::Success`], which is also Normal disconnection and Granted QoS 0.
    fn default() -> Self {
        ReasonCode::Success
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#04x} ({})", *self as u8, self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_code_round_trips_through_its_byte() {
        assert_eq!(ReasonCode::ALL.len(), 43);
        for &code in ReasonCode::ALL {
            assert_eq!(ReasonCode::try_from(code as u8), Ok(code), "{code}");
        }
        let defined: Vec<u8> = ReasonCode::ALL.iter().map(|&c| c as u8).collect();
        for byte in 0..=u8::MAX {
            if !defined.contains(&byte) {
                assert_eq!(ReasonCode::try_from(byte), Err(byte));
            }
        }
    }

    #[test]
    fn per_packet_lists_match_the_packet_sections() {
        use ReasonCode as R;
        // Tables 3-1, 3-4, 3-5, 3-6, 3-7, 3-9, 3-10, 3-11 and 3-12, copied per packet so
        // that they check the per-code lists of Table 2-6 above.
        #[rustfmt::skip]
        let tables: [(PacketType, &[u8]); 9] = [
            (PacketType::ConnAck, &[0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
                0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F]),
            (PacketType::PubAck, &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]),
            (PacketType::PubRec, &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]),
            (PacketType::PubRel, &[0x00, 0x92]),
            (PacketType::PubComp, &[0x00, 0x92]),
            (PacketType::SubAck, &[0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E,
                0xA1, 0xA2]),
            (PacketType::UnsubAck, &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91]),
            (PacketType::Disconnect, &[0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B,
                0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A,
                0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2]),
            (PacketType::Auth, &[0x00, 0x18, 0x19]),
        ];
        for (packet, table) in tables {
            let allowed: Vec<u8> = R::ALL
                .iter()
                .filter(|code| code.allowed_in(packet))
                .map(|&code| code as u8)
                .collect();
            assert_eq!(allowed, table, "{packet}");
        }
        for packet in [
            PacketType::Connect,
            PacketType::Publish,
            PacketType::Subscribe,
            PacketType::Unsubscribe,
            PacketType::PingReq,
            PacketType::PingResp,
        ] {
            assert!(!R::ALL.iter().any(|c| c.allowed_in(packet)), "{packet}");
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(
            ReasonCode::granted(QoS::ExactlyOnce),
            ReasonCode::GrantedQoS2
        );
        assert_eq!(ReasonCode::GRANTED_QOS_0, ReasonCode::Success);
        assert!(ReasonCode::UnspecifiedError.is_error());
        assert!(!ReasonCode::NoMatchingSubscribers.is_error());
        assert_eq!(
            ReasonCode::TopicAliasInvalid.to_string(),
            "0x94 (Topic Alias invalid)"
        );
    }
}
