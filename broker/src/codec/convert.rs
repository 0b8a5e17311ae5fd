//! Conversions between MQTT 3.1/3.1.1 packets and MQTT 5 packets.
//!
//! MQTT 5 packets are a superset of MQTT 3.1.1 ones, so the broker handles every client in
//! MQTT 5 terms: a 3.1.1 packet becomes the MQTT 5 packet with no properties and success reason
//! codes ([`v4_to_v5`]), and an answer is written to a 3.1.1 client as the 3.1.1 packet that
//! means the same ([`v5_to_v4`]), or not at all where 3.1.1 has no such packet.

use crate::codec::types::QoS;
use crate::codec::v4;
use crate::codec::v5::{self, ReasonCode};

/// The MQTT 5 packet equivalent to a 3.1/3.1.1 packet: no properties, success reason codes,
/// a SUBACK failure as 0x80.
pub fn v4_to_v5(packet: v4::Packet) -> v5::Packet {
    use v5::PubResponse as R;
    match packet {
        v4::Packet::Connect(c) => v5::Packet::Connect(Box::new(v5::Connect {
            clean_start: c.clean_session,
            keep_alive: c.keep_alive,
            properties: v5::ConnectProperties::default(),
            client_id: c.client_id,
            will: c.will.map(|w| v5::LastWill {
                topic: w.topic,
                payload: w.message,
                qos: w.qos,
                retain: w.retain,
                properties: v5::WillProperties::default(),
            }),
            username: c.username,
            password: c.password,
        })),
        v4::Packet::ConnAck(c) => v5::Packet::ConnAck(Box::new(v5::ConnAck {
            session_present: c.session_present,
            reason_code: connack_reason(c.return_code),
            properties: v5::ConnAckProperties::default(),
        })),
        v4::Packet::Publish(p) => v5::Packet::Publish(v5::Publish {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: p.topic,
            packet_id: p.packet_id,
            properties: v5::PublishProperties::default(),
            payload: p.payload,
        }),
        v4::Packet::PubAck(id) => v5::Packet::PubAck(R::success(id)),
        v4::Packet::PubRec(id) => v5::Packet::PubRec(R::success(id)),
        v4::Packet::PubRel(id) => v5::Packet::PubRel(R::success(id)),
        v4::Packet::PubComp(id) => v5::Packet::PubComp(R::success(id)),
        v4::Packet::Subscribe(s) => v5::Packet::Subscribe(v5::Subscribe {
            packet_id: s.packet_id,
            properties: v5::SubscribeProperties::default(),
            filters: s
                .filters
                .into_iter()
                .map(|(filter, qos)| (filter, v5::SubscriptionOptions::new(qos)))
                .collect(),
        }),
        v4::Packet::SubAck(s) => v5::Packet::SubAck(v5::SubAck {
            packet_id: s.packet_id,
            properties: v5::AckProperties::default(),
            reason_codes: s
                .return_codes
                .into_iter()
                .map(|code| match code {
                    v4::SubscribeReturnCode::Success(qos) => ReasonCode::granted(qos),
                    v4::SubscribeReturnCode::Failure => ReasonCode::UnspecifiedError,
                })
                .collect(),
        }),
        v4::Packet::Unsubscribe(u) => v5::Packet::Unsubscribe(v5::Unsubscribe {
            packet_id: u.packet_id,
            properties: v5::UnsubscribeProperties::default(),
            filters: u.filters,
        }),
        v4::Packet::UnsubAck(id) => v5::Packet::UnsubAck(v5::UnsubAck {
            packet_id: id,
            properties: v5::AckProperties::default(),
            reason_codes: Vec::new(),
        }),
        v4::Packet::PingReq => v5::Packet::PingReq,
        v4::Packet::PingResp => v5::Packet::PingResp,
        v4::Packet::Disconnect => v5::Packet::Disconnect(v5::Disconnect::default()),
    }
}

/// The 3.1.1 packet that carries what `packet` means to a 3.1.1 client, or `None` where 3.1.1
/// has no such packet (a server's DISCONNECT, AUTH): the caller then just closes or skips.
/// Properties are dropped; reason codes map to the nearest 3.1.1 code.
pub fn v5_to_v4(packet: &v5::Packet) -> Option<v4::Packet> {
    Some(match packet {
        v5::Packet::Connect(c) => v4::Packet::Connect(Box::new(v4::Connect {
            protocol: crate::codec::ProtocolVersion::V311,
            clean_session: c.clean_start,
            keep_alive: c.keep_alive,
            client_id: c.client_id.clone(),
            will: c.will.as_ref().map(|w| v4::LastWill {
                topic: w.topic.clone(),
                message: w.payload.clone(),
                qos: w.qos,
                retain: w.retain,
            }),
            username: c.username.clone(),
            password: c.password.clone(),
        })),
        v5::Packet::ConnAck(c) => v4::Packet::ConnAck(v4::ConnAck {
            session_present: c.session_present,
            return_code: connect_return_code(c.reason_code),
        }),
        v5::Packet::Publish(p) => v4::Packet::Publish(v4::Publish {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: p.topic.clone(),
            packet_id: p.packet_id,
            payload: p.payload.clone(),
        }),
        v5::Packet::PubAck(r) => v4::Packet::PubAck(r.packet_id),
        v5::Packet::PubRec(r) => v4::Packet::PubRec(r.packet_id),
        v5::Packet::PubRel(r) => v4::Packet::PubRel(r.packet_id),
        v5::Packet::PubComp(r) => v4::Packet::PubComp(r.packet_id),
        v5::Packet::Subscribe(s) => v4::Packet::Subscribe(v4::Subscribe {
            packet_id: s.packet_id,
            filters: s
                .filters
                .iter()
                .map(|(filter, options)| (filter.clone(), options.qos))
                .collect(),
        }),
        v5::Packet::SubAck(s) => v4::Packet::SubAck(v4::SubAck {
            packet_id: s.packet_id,
            return_codes: s.reason_codes.iter().map(|c| suback_code(*c)).collect(),
        }),
        v5::Packet::Unsubscribe(u) => v4::Packet::Unsubscribe(v4::Unsubscribe {
            packet_id: u.packet_id,
            filters: u.filters.clone(),
        }),
        v5::Packet::UnsubAck(u) => v4::Packet::UnsubAck(u.packet_id),
        v5::Packet::PingReq => v4::Packet::PingReq,
        v5::Packet::PingResp => v4::Packet::PingResp,
        v5::Packet::Disconnect(_) | v5::Packet::Auth(_) => return None,
    })
}

/// A 3.1.1 CONNACK return code as an MQTT 5 reason code.
fn connack_reason(code: v4::ConnectReturnCode) -> ReasonCode {
    use v4::ConnectReturnCode as C;
    match code {
        C::Accepted => ReasonCode::Success,
        C::UnacceptableProtocolVersion => ReasonCode::UnsupportedProtocolVersion,
        C::IdentifierRejected => ReasonCode::ClientIdentifierNotValid,
        C::ServerUnavailable => ReasonCode::ServerUnavailable,
        C::BadUserNameOrPassword => ReasonCode::BadUserNameOrPassword,
        C::NotAuthorized => ReasonCode::NotAuthorized,
    }
}

/// The 3.1.1 CONNACK return code nearest to an MQTT 5 CONNACK reason code (§3.2.2.3 lists
/// only six; everything else is "server unavailable").
pub fn connect_return_code(reason: ReasonCode) -> v4::ConnectReturnCode {
    use v4::ConnectReturnCode as C;
    match reason {
        ReasonCode::Success => C::Accepted,
        ReasonCode::UnsupportedProtocolVersion => C::UnacceptableProtocolVersion,
        ReasonCode::ClientIdentifierNotValid => C::IdentifierRejected,
        ReasonCode::BadUserNameOrPassword => C::BadUserNameOrPassword,
        ReasonCode::NotAuthorized | ReasonCode::Banned | ReasonCode::BadAuthenticationMethod => {
            C::NotAuthorized
        }
        _ => C::ServerUnavailable,
    }
}

/// A SUBACK reason code as a 3.1.1 return code: granted QoS, or failure for any error.
fn suback_code(code: ReasonCode) -> v4::SubscribeReturnCode {
    match code {
        ReasonCode::Success => v4::SubscribeReturnCode::Success(QoS::AtMostOnce),
        ReasonCode::GrantedQoS1 => v4::SubscribeReturnCode::Success(QoS::AtLeastOnce),
        ReasonCode::GrantedQoS2 => v4::SubscribeReturnCode::Success(QoS::ExactlyOnce),
        _ => v4::SubscribeReturnCode::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU16;

    fn id(n: u16) -> crate::codec::PacketId {
        NonZeroU16::new(n).expect("nonzero")
    }

    #[test]
    fn every_v4_packet_survives_a_round_trip_through_v5() {
        let packets = vec![
            v4::Packet::Connect(Box::new(v4::Connect {
                protocol: crate::codec::ProtocolVersion::V311,
                clean_session: true,
                keep_alive: 30,
                client_id: "c".into(),
                will: Some(v4::LastWill {
                    topic: "w".into(),
                    message: bytes::Bytes::from_static(b"bye"),
                    qos: QoS::AtLeastOnce,
                    retain: true,
                }),
                username: Some("u".into()),
                password: Some(bytes::Bytes::from_static(b"p")),
            })),
            v4::Packet::ConnAck(v4::ConnAck {
                session_present: true,
                return_code: v4::ConnectReturnCode::NotAuthorized,
            }),
            v4::Packet::Publish(v4::Publish {
                dup: true,
                qos: QoS::ExactlyOnce,
                retain: false,
                topic: "t".into(),
                packet_id: Some(id(7)),
                payload: bytes::Bytes::from_static(b"x"),
            }),
            v4::Packet::PubAck(id(1)),
            v4::Packet::PubRec(id(2)),
            v4::Packet::PubRel(id(3)),
            v4::Packet::PubComp(id(4)),
            v4::Packet::Subscribe(v4::Subscribe {
                packet_id: id(5),
                filters: vec![("a/#".into(), QoS::AtLeastOnce)],
            }),
            v4::Packet::SubAck(v4::SubAck {
                packet_id: id(5),
                return_codes: vec![
                    v4::SubscribeReturnCode::Success(QoS::ExactlyOnce),
                    v4::SubscribeReturnCode::Failure,
                ],
            }),
            v4::Packet::Unsubscribe(v4::Unsubscribe {
                packet_id: id(6),
                filters: vec!["a/#".into()],
            }),
            v4::Packet::UnsubAck(id(6)),
            v4::Packet::PingReq,
            v4::Packet::PingResp,
        ];
        for packet in packets {
            let back = v5_to_v4(&v4_to_v5(packet.clone()));
            assert_eq!(back.as_ref(), Some(&packet));
        }
    }

    #[test]
    fn v5_only_packets_have_no_v4_form() {
        assert_eq!(
            v5_to_v4(&v5::Packet::Disconnect(v5::Disconnect::default())),
            None
        );
    }

    #[test]
    fn v5_refusals_map_to_the_nearest_v4_code() {
        use v4::ConnectReturnCode as C;
        assert_eq!(connect_return_code(ReasonCode::Banned), C::NotAuthorized);
        assert_eq!(
            connect_return_code(ReasonCode::ServerBusy),
            C::ServerUnavailable
        );
        assert_eq!(
            connect_return_code(ReasonCode::ClientIdentifierNotValid),
            C::IdentifierRejected
        );
    }
}
