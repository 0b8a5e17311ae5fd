//! Telling MQTT 3.1, 3.1.1 and 5.0 apart from the first bytes of a connection, so that the
//! connection can pick the [`v4`](crate::codec::v4) or [`v5`](crate::codec::v5) decoder before
//! decoding anything.
//!
//! The protocol name and level sit at the same place in every version's CONNECT: right after
//! the fixed header. [`detect_protocol`] reads them without consuming anything, and needs only
//! the first few bytes of the packet, however large it announces itself (the chosen decoder
//! then enforces the size limit).

use crate::codec::error::DecodeError;
use crate::codec::framing::parse_fixed_header;
use crate::codec::primitives::ensure;
use crate::codec::types::{PacketType, ProtocolVersion};

/// Peeks at the CONNECT at the start of `buf` and returns the protocol version it asks for.
///
/// Returns `Ok(None)` if `buf` does not yet hold the fixed header, protocol name and protocol
/// level. Fails if the first packet is not a CONNECT ([MQTT-3.1.0-1]) or has flags set
/// ([MQTT-2.2.2-2]), if the protocol name is neither `MQTT` nor `MQIsdp` ([MQTT-3.1.2-1]), if
/// the level is not one of 3 (`MQIsdp`), 4 or 5 (`MQTT`) ([MQTT-3.1.2-2]; the connection
/// decides whether to answer with a CONNACK), or if the packet ends before the level.
pub fn detect_protocol(buf: &[u8]) -> Result<Option<ProtocolVersion>, DecodeError> {
    let Some(header) = parse_fixed_header(buf)? else {
        return Ok(None);
    };
    let nibble = header.type_nibble();
    let packet = PacketType::from_nibble(nibble).ok_or(DecodeError::InvalidPacketType(nibble))?;
    ensure!(
        packet == PacketType::Connect,
        DecodeError::ExpectedConnect(packet)
    );
    ensure!(
        header.flags() == 0,
        DecodeError::InvalidFlags {
            packet,
            flags: header.flags(),
        }
    );

    let body = &buf[usize::from(header.header_len)..];
    let announced = header.remaining_length as usize;
    // The bytes of the body that have arrived, and of those the ones that are really the body.
    let body = &body[..body.len().min(announced)];

    let name_field = "protocol name";
    let Some(name_len) = peek_u16(body, announced, name_field)? else {
        return Ok(None);
    };
    // Only two names exist; refusing any other length at once means a peer cannot make us
    // wait for up to 64 KiB of name.
    ensure!(
        name_len == 4 || name_len == 6,
        DecodeError::InvalidProtocolName
    );
    let level_at = 2 + usize::from(name_len);
    ensure!(
        announced > level_at,
        DecodeError::Truncated {
            field: if announced < level_at {
                name_field
            } else {
                "protocol level"
            }
        }
    );
    let Some(&level) = body.get(level_at) else {
        return Ok(None);
    };
    match (&body[2..level_at], level) {
        (b"MQTT", 4) => Ok(Some(ProtocolVersion::V311)),
        (b"MQTT", 5) => Ok(Some(ProtocolVersion::V5)),
        (b"MQIsdp", 3) => Ok(Some(ProtocolVersion::V31)),
        (b"MQTT" | b"MQIsdp", other) => Err(DecodeError::UnsupportedProtocolLevel(other)),
        _ => Err(DecodeError::InvalidProtocolName),
    }
}

/// The two-byte integer at the start of `body`: `Ok(None)` if it has not arrived yet, an error
/// if the packet (`announced` bytes of body) is too short to hold it.
fn peek_u16(
    body: &[u8],
    announced: usize,
    field: &'static str,
) -> Result<Option<u16>, DecodeError> {
    ensure!(announced >= 2, DecodeError::Truncated { field });
    Ok(match body {
        [high, low, ..] => Some(u16::from_be_bytes([*high, *low])),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V311: &[u8] = b"\x10\x0C\x00\x04MQTT\x04\x02\x00\x3C\x00\x00";
    const V31: &[u8] = b"\x10\x0F\x00\x06MQIsdp\x03\x00\x00\x3C\x00\x01a";
    const V5: &[u8] = b"\x10\x0D\x00\x04MQTT\x05\x02\x00\x3C\x00\x00\x00";

    #[test]
    fn detects_each_version_without_consuming() {
        for (bytes, version) in [
            (V311, ProtocolVersion::V311),
            (V31, ProtocolVersion::V31),
            (V5, ProtocolVersion::V5),
        ] {
            assert_eq!(detect_protocol(bytes), Ok(Some(version)), "{bytes:02X?}");
        }
    }

    #[test]
    fn needs_only_the_bytes_up_to_the_level() {
        for (bytes, name_len) in [(V311, 4), (V31, 6), (V5, 4)] {
            // Fixed header (2), name length (2), name, then the level.
            let level_at = 2 + 2 + name_len;
            for len in 0..bytes.len() {
                let got = detect_protocol(&bytes[..len]);
                if len > level_at {
                    assert!(matches!(got, Ok(Some(_))), "cut at {len}: {got:?}");
                } else {
                    assert_eq!(got, Ok(None), "cut at {len}");
                }
            }
        }
    }

    #[test]
    fn a_huge_connect_is_recognised_from_its_first_bytes() {
        // Announces 2 MiB; only the start has arrived.
        let bytes = b"\x10\x80\x80\x80\x01\x00\x04MQTT\x05";
        assert_eq!(detect_protocol(bytes), Ok(Some(ProtocolVersion::V5)));
    }

    #[test]
    fn refuses_what_is_not_a_known_connect() {
        use DecodeError as E;
        let cases: &[(&[u8], DecodeError)] = &[
            (b"\x30\x02\x00\x00", E::ExpectedConnect(PacketType::Publish)),
            (b"\x00\x00", E::InvalidPacketType(0)),
            (
                b"\x12\x0C\x00\x04MQTT\x04",
                E::InvalidFlags {
                    packet: PacketType::Connect,
                    flags: 2,
                },
            ),
            (b"\x10\x0C\x00\x04MQTX\x04", E::InvalidProtocolName),
            (b"\x10\x0C\x00\x05MQTTT\x04", E::InvalidProtocolName),
            // A 64 KiB name is refused from its length alone.
            (b"\x10\x7F\xFF\xFF", E::InvalidProtocolName),
            (b"\x10\x0C\x00\x04MQTT\x06", E::UnsupportedProtocolLevel(6)),
            (b"\x10\x0C\x00\x04MQTT\x03", E::UnsupportedProtocolLevel(3)),
            (
                b"\x10\x0C\x00\x06MQIsdp\x04",
                E::UnsupportedProtocolLevel(4),
            ),
            (
                b"\x10\x01\x00",
                E::Truncated {
                    field: "protocol name",
                },
            ),
            (
                b"\x10\x05\x00\x04MQT",
                E::Truncated {
                    field: "protocol name",
                },
            ),
            (
                b"\x10\x06\x00\x04MQTT",
                E::Truncated {
                    field: "protocol level",
                },
            ),
            (b"\x10\xFF\xFF\xFF\xFF\x01", E::MalformedRemainingLength),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                detect_protocol(bytes).as_ref(),
                Err(expected),
                "{bytes:02X?}"
            );
        }
    }
}
