//! Table 2-4, checked two ways, and every property in every packet: accepted where allowed,
//! refused elsewhere, refused when repeated unless it may repeat.

use bytes::{Bytes, BytesMut};

use super::read::read_variable_int;
use super::{DataType, PropertyContext, PropertyId};
use crate::codec::error::DecodeError;
use crate::codec::types::PacketType;
use crate::codec::v5::{Decoder, encode};

use PacketType as T;
use PropertyContext as C;

/// Every context that has a property section.
const CONTEXTS: [PropertyContext; 14] = [
    C::Packet(T::Connect),
    C::Will,
    C::Packet(T::ConnAck),
    C::Packet(T::Publish),
    C::Packet(T::PubAck),
    C::Packet(T::PubRec),
    C::Packet(T::PubRel),
    C::Packet(T::PubComp),
    C::Packet(T::Subscribe),
    C::Packet(T::SubAck),
    C::Packet(T::Unsubscribe),
    C::Packet(T::UnsubAck),
    C::Packet(T::Disconnect),
    C::Packet(T::Auth),
];

#[test]
fn table_2_4_by_property_matches_the_packet_sections() {
    use PropertyId as P;
    let publish_and_will = &[C::Packet(T::Publish), C::Will][..];
    let acks = [
        T::PubAck,
        T::PubRec,
        T::PubRel,
        T::PubComp,
        T::SubAck,
        T::UnsubAck,
    ];
    let reason_string: Vec<_> = acks
        .iter()
        .chain(&[T::ConnAck, T::Disconnect, T::Auth])
        .map(|&t| C::Packet(t))
        .collect();
    // Table 2-4 as the spec prints it: identifier, name, type, and where it may appear.
    #[rustfmt::skip]
    let table: Vec<(u8, PropertyId, &str, DataType, Vec<PropertyContext>)> = vec![
        (0x01, P::PayloadFormatIndicator, "Payload Format Indicator", DataType::Byte, publish_and_will.to_vec()),
        (0x02, P::MessageExpiryInterval, "Message Expiry Interval", DataType::FourByteInteger, publish_and_will.to_vec()),
        (0x03, P::ContentType, "Content Type", DataType::Utf8String, publish_and_will.to_vec()),
        (0x08, P::ResponseTopic, "Response Topic", DataType::Utf8String, publish_and_will.to_vec()),
        (0x09, P::CorrelationData, "Correlation Data", DataType::BinaryData, publish_and_will.to_vec()),
        (0x0B, P::SubscriptionIdentifier, "Subscription Identifier", DataType::VariableByteInteger, vec![C::Packet(T::Publish), C::Packet(T::Subscribe)]),
        (0x11, P::SessionExpiryInterval, "Session Expiry Interval", DataType::FourByteInteger, vec![C::Packet(T::Connect), C::Packet(T::ConnAck), C::Packet(T::Disconnect)]),
        (0x12, P::AssignedClientIdentifier, "Assigned Client Identifier", DataType::Utf8String, vec![C::Packet(T::ConnAck)]),
        (0x13, P::ServerKeepAlive, "Server Keep Alive", DataType::TwoByteInteger, vec![C::Packet(T::ConnAck)]),
        (0x15, P::AuthenticationMethod, "Authentication Method", DataType::Utf8String, vec![C::Packet(T::Connect), C::Packet(T::ConnAck), C::Packet(T::Auth)]),
        (0x16, P::AuthenticationData, "Authentication Data", DataType::BinaryData, vec![C::Packet(T::Connect), C::Packet(T::ConnAck), C::Packet(T::Auth)]),
        (0x17, P::RequestProblemInformation, "Request Problem Information", DataType::Byte, vec![C::Packet(T::Connect)]),
        (0x18, P::WillDelayInterval, "Will Delay Interval", DataType::FourByteInteger, vec![C::Will]),
        (0x19, P::RequestResponseInformation, "Request Response Information", DataType::Byte, vec![C::Packet(T::Connect)]),
        (0x1A, P::ResponseInformation, "Response Information", DataType::Utf8String, vec![C::Packet(T::ConnAck)]),
        (0x1C, P::ServerReference, "Server Reference", DataType::Utf8String, vec![C::Packet(T::ConnAck), C::Packet(T::Disconnect)]),
        (0x1F, P::ReasonString, "Reason String", DataType::Utf8String, reason_string),
        (0x21, P::ReceiveMaximum, "Receive Maximum", DataType::TwoByteInteger, vec![C::Packet(T::Connect), C::Packet(T::ConnAck)]),
        (0x22, P::TopicAliasMaximum, "Topic Alias Maximum", DataType::TwoByteInteger, vec![C::Packet(T::Connect), C::Packet(T::ConnAck)]),
        (0x23, P::TopicAlias, "Topic Alias", DataType::TwoByteInteger, vec![C::Packet(T::Publish)]),
        (0x24, P::MaximumQoS, "Maximum QoS", DataType::Byte, vec![C::Packet(T::ConnAck)]),
        (0x25, P::RetainAvailable, "Retain Available", DataType::Byte, vec![C::Packet(T::ConnAck)]),
        (0x26, P::UserProperty, "User Property", DataType::Utf8StringPair, CONTEXTS.to_vec()),
        (0x27, P::MaximumPacketSize, "Maximum Packet Size", DataType::FourByteInteger, vec![C::Packet(T::Connect), C::Packet(T::ConnAck)]),
        (0x28, P::WildcardSubscriptionAvailable, "Wildcard Subscription Available", DataType::Byte, vec![C::Packet(T::ConnAck)]),
        (0x29, P::SubscriptionIdentifierAvailable, "Subscription Identifier Available", DataType::Byte, vec![C::Packet(T::ConnAck)]),
        (0x2A, P::SharedSubscriptionAvailable, "Shared Subscription Available", DataType::Byte, vec![C::Packet(T::ConnAck)]),
    ];
    assert_eq!(table.len(), 27);
    assert_eq!(PropertyId::ALL.len(), 27);
    for (byte, id, name, data_type, contexts) in table {
        assert_eq!(PropertyId::try_from(byte), Ok(id));
        assert_eq!(id as u8, byte);
        assert_eq!(id.name(), name);
        assert_eq!(id.data_type(), data_type, "{id}");
        for context in CONTEXTS {
            assert_eq!(
                id.allowed_in(context),
                contexts.contains(&context),
                "{id} in {context}"
            );
        }
    }
    for context in [C::Packet(T::PingReq), C::Packet(T::PingResp)] {
        assert_eq!(context.allowed_properties().count(), 0);
    }
}

#[test]
fn only_user_property_and_publish_subscription_ids_repeat() {
    for &id in PropertyId::ALL {
        for context in CONTEXTS.into_iter().filter(|&c| id.allowed_in(c)) {
            let expected = id == PropertyId::UserProperty
                || (id == PropertyId::SubscriptionIdentifier && context == C::Packet(T::Publish));
            assert_eq!(id.repeatable_in(context), expected, "{id} in {context}");
        }
    }
}

#[test]
fn sections_name_where_the_spec_describes_each_property() {
    use PropertyId as P;
    let cases = [
        (
            P::SessionExpiryInterval,
            C::Packet(T::Connect),
            "§3.1.2.11.2",
        ),
        (P::AuthenticationData, C::Packet(T::Connect), "§3.1.2.11.10"),
        (P::UserProperty, C::Will, "§3.1.3.2.8"),
        (P::AuthenticationData, C::Packet(T::ConnAck), "§3.2.2.3.18"),
        (P::ContentType, C::Packet(T::Publish), "§3.3.2.3.9"),
        (P::ReasonString, C::Packet(T::PubComp), "§3.7.2.2.2"),
        (P::UserProperty, C::Packet(T::Unsubscribe), "§3.10.2.1.2"),
        (P::ServerReference, C::Packet(T::Disconnect), "§3.14.2.2.5"),
        (P::UserProperty, C::Packet(T::Auth), "§3.15.2.2.5"),
    ];
    for (id, context, section) in cases {
        assert_eq!(id.spec_section(context), Some(section), "{id} in {context}");
    }
    assert_eq!(P::TopicAlias.spec_section(C::Packet(T::Connect)), None);
}

/// One valid encoded value of each data type.
fn sample_value(data_type: DataType) -> &'static [u8] {
    match data_type {
        DataType::Byte => b"\x01",
        DataType::TwoByteInteger => b"\x00\x01",
        DataType::FourByteInteger => b"\x00\x00\x00\x01",
        DataType::VariableByteInteger => b"\x01",
        DataType::Utf8String => b"\x00\x01a",
        DataType::BinaryData => b"\x00\x01\xFF",
        DataType::Utf8StringPair => b"\x00\x01k\x00\x01v",
    }
}

/// `id` with its sample value.
fn property(id: PropertyId) -> Vec<u8> {
    [&[id as u8][..], sample_value(id.data_type())].concat()
}

/// A packet whose property section for `context` holds `properties` (plus the authentication
/// method that AUTH and CONNECT authentication data require), and otherwise the least each
/// packet needs. Lengths fit in one byte.
fn packet_with(context: PropertyContext, id: PropertyId, properties: &[u8]) -> Vec<u8> {
    let method = property(PropertyId::AuthenticationMethod);
    let needs_method = match context {
        C::Packet(T::Auth) => id != PropertyId::AuthenticationMethod,
        C::Packet(T::Connect) => id == PropertyId::AuthenticationData,
        _ => false,
    };
    let section = |props: &[u8]| -> Vec<u8> {
        let len = u8::try_from(props.len()).unwrap_or(u8::MAX);
        [&[len][..], props].concat()
    };
    let props = if needs_method {
        section(&[&method[..], properties].concat())
    } else {
        section(properties)
    };
    let empty = section(b"");
    let connect = |flags: u8, props: &[u8], payload: &[u8]| -> (u8, Vec<u8>) {
        let header = [&b"\x00\x04MQTT\x05"[..], &[flags, 0, 60]].concat();
        (0x10, [&header[..], props, b"\x00\x00", payload].concat())
    };
    let (first, body) = match context {
        C::Packet(T::Connect) => connect(0x02, &props, b""),
        C::Will => connect(0x06, &empty, &[&props[..], b"\x00\x01t\x00\x00"].concat()),
        C::Packet(T::ConnAck) => (0x20, [&b"\x00\x00"[..], &props].concat()),
        C::Packet(T::Publish) => (0x30, [&b"\x00\x01a"[..], &props].concat()),
        C::Packet(T::PubAck) => (0x40, [&b"\x00\x01\x00"[..], &props].concat()),
        C::Packet(T::PubRec) => (0x50, [&b"\x00\x01\x00"[..], &props].concat()),
        C::Packet(T::PubRel) => (0x62, [&b"\x00\x01\x00"[..], &props].concat()),
        C::Packet(T::PubComp) => (0x70, [&b"\x00\x01\x00"[..], &props].concat()),
        C::Packet(T::Subscribe) => (0x82, [&b"\x00\x01"[..], &props, b"\x00\x01a\x00"].concat()),
        C::Packet(T::SubAck) => (0x90, [&b"\x00\x01"[..], &props, b"\x00"].concat()),
        C::Packet(T::Unsubscribe) => (0xA2, [&b"\x00\x01"[..], &props, b"\x00\x01a"].concat()),
        C::Packet(T::UnsubAck) => (0xB0, [&b"\x00\x01"[..], &props, b"\x00"].concat()),
        C::Packet(T::Disconnect) => (0xE0, [&b"\x00"[..], &props].concat()),
        C::Packet(T::Auth) => (0xF0, [&b"\x18"[..], &props].concat()),
        C::Packet(other) => panic!("{other} has no properties"),
    };
    let len = u8::try_from(body.len()).unwrap_or(u8::MAX);
    assert!(len < 0x80);
    [&[first, len][..], &body].concat()
}

/// Decodes one packet; on success checks that it re-encodes to exactly the same bytes, which
/// shows that the property was kept.
fn decode_and_reencode(bytes: &[u8]) -> Result<(), DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = Decoder::new(1024).decode(&mut buf)?;
    let packet = packet.unwrap_or_else(|| panic!("incomplete {bytes:02X?}"));
    let mut again = BytesMut::new();
    encode(&packet, &mut again).unwrap_or_else(|e| panic!("{e}: {packet:?}"));
    assert_eq!(&again[..], bytes, "{packet:?}");
    Ok(())
}

#[test]
fn every_property_is_accepted_where_allowed_and_refused_elsewhere() {
    for &id in PropertyId::ALL {
        for context in CONTEXTS {
            let bytes = packet_with(context, id, &property(id));
            let got = decode_and_reencode(&bytes);
            if id.allowed_in(context) {
                assert_eq!(got, Ok(()), "{id} in {context}: {bytes:02X?}");
            } else {
                let expected = DecodeError::PropertyNotAllowed {
                    property: id,
                    context,
                };
                assert_eq!(got, Err(expected), "{id} in {context}: {bytes:02X?}");
            }
        }
    }
}

#[test]
fn a_repeated_property_is_refused_unless_it_may_repeat() {
    for &id in PropertyId::ALL {
        for context in CONTEXTS.into_iter().filter(|&c| id.allowed_in(c)) {
            let twice = [property(id), property(id)].concat();
            let got = decode_and_reencode(&packet_with(context, id, &twice));
            if id.repeatable_in(context) {
                assert_eq!(got, Ok(()), "{id} in {context}");
            } else {
                let expected = DecodeError::DuplicateProperty {
                    property: id,
                    context,
                };
                assert_eq!(got, Err(expected), "{id} in {context}");
            }
        }
    }
}

#[test]
fn unknown_identifiers_are_refused() {
    let defined: Vec<u8> = PropertyId::ALL.iter().map(|&id| id as u8).collect();
    for byte in (0..=u8::MAX).filter(|b| !defined.contains(b)) {
        let bytes = packet_with(C::Packet(T::Publish), PropertyId::UserProperty, &[byte, 0]);
        let got = decode_and_reencode(&bytes);
        assert_eq!(
            got,
            Err(DecodeError::InvalidPropertyId(byte)),
            "{byte:#04x}"
        );
    }
}

#[test]
fn variable_byte_integers_must_be_minimal() {
    let field = "f";
    let cases: &[(&[u8], Result<u32, DecodeError>)] = &[
        (b"\x00", Ok(0)),
        (b"\x7F", Ok(127)),
        (b"\x80\x01", Ok(128)),
        (b"\xFF\xFF\xFF\x7F", Ok(268_435_455)),
        (
            b"\x80\x00",
            Err(DecodeError::NonMinimalVariableByteInteger { field }),
        ),
        (
            b"\xFF\x80\x00",
            Err(DecodeError::NonMinimalVariableByteInteger { field }),
        ),
        (
            b"\x80\x80\x80\x80\x01",
            Err(DecodeError::MalformedVariableByteInteger { field }),
        ),
        (b"\x80", Err(DecodeError::Truncated { field })),
        (b"", Err(DecodeError::Truncated { field })),
    ];
    for (input, expected) in cases {
        let mut src = Bytes::from_static(input);
        assert_eq!(
            read_variable_int(&mut src, field),
            *expected,
            "{input:02X?}"
        );
    }
}
