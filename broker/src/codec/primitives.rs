//! The data representations of spec §1.5 and §2.2.3, shared by every protocol version:
//! the remaining-length variable byte integer, two-byte integers, UTF-8 strings and binary data.
//!
//! Readers take a `&mut Bytes` cursor positioned at the field, advance it past the field and
//! slice strings and binary data out of it without copying. They never panic: a field that runs
//! past the end of the input is [`DecodeError::Truncated`]. Writers append to a `BytesMut` and
//! fail only when a length does not fit its prefix.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::codec::error::{DecodeError, EncodeError};
use crate::codec::types::PacketId;

/// The largest value the four-byte remaining-length encoding can carry (spec §2.2.3).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The most bytes a remaining-length field may take.
pub const MAX_REMAINING_LENGTH_BYTES: usize = 4;

/// The longest string or binary field a two-byte length prefix allows.
pub const MAX_FIELD_LEN: usize = u16::MAX as usize;

/// Returns early with `Err($err.into())` unless `$cond` holds.
macro_rules! ensure {
    ($cond:expr, $err:expr $(,)?) => {
        if !$cond {
            return Err($err.into());
        }
    };
}
pub(crate) use ensure;

/// Decodes a remaining-length variable byte integer from the start of `src`.
///
/// Returns `Ok(Some((value, bytes_used)))`, or `Ok(None)` if `src` ends before the last byte of
/// the integer. Fails if the integer continues past four bytes. Non-minimal encodings
/// (e.g. `0x80 0x00` for 0) are accepted, as MQTT 3.1.1 does not forbid them.
pub fn decode_remaining_length(src: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for (i, &byte) in src.iter().take(MAX_REMAINING_LENGTH_BYTES).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    ensure!(
        src.len() < MAX_REMAINING_LENGTH_BYTES,
        DecodeError::MalformedRemainingLength
    );
    Ok(None)
}

/// How many bytes [`write_remaining_length`] uses for `len` (1 to 4; `len` must not exceed
/// [`MAX_REMAINING_LENGTH`]).
pub fn remaining_length_len(len: usize) -> usize {
    match len {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        _ => 4,
    }
}

/// Appends `len` as a minimal remaining-length variable byte integer.
pub fn write_remaining_length(len: usize, dst: &mut BytesMut) -> Result<(), EncodeError> {
    ensure!(
        len <= MAX_REMAINING_LENGTH,
        EncodeError::PacketTooLarge(len)
    );
    let mut rest = len;
    loop {
        // Truncation is the point: the low seven bits go out first.
        let mut byte = (rest & 0x7F) as u8;
        rest >>= 7;
        if rest > 0 {
            byte |= 0x80;
        }
        dst.put_u8(byte);
        if rest == 0 {
            return Ok(());
        }
    }
}

/// Reads one byte.
pub fn read_u8(src: &mut Bytes, field: &'static str) -> Result<u8, DecodeError> {
    ensure!(src.has_remaining(), DecodeError::Truncated { field });
    Ok(src.get_u8())
}

/// Reads a big-endian two-byte integer (spec §1.5.2).
pub fn read_u16(src: &mut Bytes, field: &'static str) -> Result<u16, DecodeError> {
    ensure!(src.remaining() >= 2, DecodeError::Truncated { field });
    Ok(src.get_u16())
}

/// Reads a packet identifier. Absent or zero is [`DecodeError::PacketIdRequired`]
/// ([MQTT-2.3.1-1]).
pub fn read_packet_id(src: &mut Bytes) -> Result<PacketId, DecodeError> {
    ensure!(src.remaining() >= 2, DecodeError::PacketIdRequired);
    PacketId::new(src.get_u16()).ok_or(DecodeError::PacketIdRequired)
}

/// Reads two-byte-length-prefixed binary data, sliced from `src` without copying.
pub fn read_binary(src: &mut Bytes, field: &'static str) -> Result<Bytes, DecodeError> {
    let len = usize::from(read_u16(src, field)?);
    ensure!(src.remaining() >= len, DecodeError::Truncated { field });
    Ok(src.split_to(len))
}

/// Reads a UTF-8 encoded string (spec §1.5.3), sliced from `src` without copying.
///
/// Ill-formed UTF-8 (including encoded surrogates) fails with [`DecodeError::InvalidUtf8`]
/// ([MQTT-1.5.3-1]) and U+0000 with [`DecodeError::NullCharacter`] ([MQTT-1.5.3-2]).
pub fn read_string(src: &mut Bytes, field: &'static str) -> Result<ByteString, DecodeError> {
    let bytes = read_binary(src, field)?;
    ensure!(!bytes.contains(&0), DecodeError::NullCharacter { field });
    ByteString::try_from(bytes).map_err(|_| DecodeError::InvalidUtf8 { field })
}

/// Appends two-byte-length-prefixed binary data.
pub fn write_binary(
    field: &'static str,
    data: &[u8],
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let len = u16::try_from(data.len()).map_err(|_| EncodeError::FieldTooLong {
        field,
        len: data.len(),
    })?;
    dst.put_u16(len);
    dst.put_slice(data);
    Ok(())
}

/// Appends a UTF-8 encoded string with its two-byte length prefix.
pub fn write_string(field: &'static str, s: &str, dst: &mut BytesMut) -> Result<(), EncodeError> {
    write_binary(field, s.as_bytes(), dst)
}

/// The encoded size of a length-prefixed string or binary field of `len` bytes.
pub fn field_len(len: usize) -> usize {
    2 + len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(len: usize) -> Vec<u8> {
        let mut buf = BytesMut::new();
        write_remaining_length(len, &mut buf).unwrap();
        buf.to_vec()
    }

    #[test]
    fn remaining_length_boundaries_match_spec_table() {
        // Spec §2.2.3, Table 2.4.
        let cases: &[(usize, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for &(value, bytes) in cases {
            assert_eq!(varint(value), bytes, "encoding {value}");
            assert_eq!(
                remaining_length_len(value),
                bytes.len(),
                "length of {value}"
            );
            let decoded = decode_remaining_length(bytes).unwrap();
            assert_eq!(
                decoded,
                Some((value as u32, bytes.len())),
                "decoding {value}"
            );
        }
    }

    #[test]
    fn remaining_length_too_large_to_encode() {
        let mut buf = BytesMut::new();
        let err = write_remaining_length(MAX_REMAINING_LENGTH + 1, &mut buf).unwrap_err();
        assert_eq!(err, EncodeError::PacketTooLarge(MAX_REMAINING_LENGTH + 1));
        assert!(buf.is_empty());
    }

    #[test]
    fn remaining_length_incomplete_and_malformed() {
        assert_eq!(decode_remaining_length(&[]), Ok(None));
        assert_eq!(decode_remaining_length(&[0x80]), Ok(None));
        assert_eq!(decode_remaining_length(&[0xFF, 0xFF, 0xFF]), Ok(None));
        assert_eq!(
            decode_remaining_length(&[0xFF, 0xFF, 0xFF, 0x80]),
            Err(DecodeError::MalformedRemainingLength)
        );
        assert_eq!(
            decode_remaining_length(&[0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(DecodeError::MalformedRemainingLength)
        );
        // Non-minimal but within four bytes: accepted.
        assert_eq!(decode_remaining_length(&[0x80, 0x00]), Ok(Some((0, 2))));
    }

    #[test]
    fn strings_are_validated() {
        let cases: &[(&[u8], Result<&str, DecodeError>)] = &[
            (b"\x00\x03abc", Ok("abc")),
            (b"\x00\x00", Ok("")),
            (b"\x00\x03\xEF\xBB\xBF", Ok("\u{FEFF}")),
            (
                b"\x00\x02a\x00",
                Err(DecodeError::NullCharacter { field: "f" }),
            ),
            (
                b"\x00\x02\xC3\x28",
                Err(DecodeError::InvalidUtf8 { field: "f" }),
            ),
            // U+D800 encoded as if it were a scalar value.
            (
                b"\x00\x03\xED\xA0\x80",
                Err(DecodeError::InvalidUtf8 { field: "f" }),
            ),
            (b"\x00\x04abc", Err(DecodeError::Truncated { field: "f" })),
            (b"\x00", Err(DecodeError::Truncated { field: "f" })),
        ];
        for (input, expected) in cases {
            let mut src = Bytes::from_static(input);
            let got = read_string(&mut src, "f");
            assert_eq!(got.as_deref().map_err(Clone::clone), *expected, "{input:?}");
        }
    }

    #[test]
    fn strings_are_sliced_without_copying() {
        let backing = Bytes::from_static(b"\x00\x05hello\x00\x01!");
        let mut src = backing.clone();
        let s = read_string(&mut src, "f").unwrap();
        assert_eq!(s, "hello");
        assert_eq!(s.as_bytes().as_ptr(), backing[2..].as_ptr());
        assert_eq!(src, Bytes::from_static(b"\x00\x01!"));
    }

    #[test]
    fn packet_id_must_be_present_and_non_zero() {
        assert_eq!(
            read_packet_id(&mut Bytes::from_static(b"\x00\x07"))
                .unwrap()
                .get(),
            7
        );
        for input in [&b"\x00\x00"[..], b"\x01", b""] {
            let got = read_packet_id(&mut Bytes::copy_from_slice(input));
            assert_eq!(got, Err(DecodeError::PacketIdRequired), "{input:?}");
        }
    }

    #[test]
    fn binary_round_trips_and_rejects_overlong() {
        let mut buf = BytesMut::new();
        write_binary("f", b"\x00\xFF", &mut buf).unwrap();
        assert_eq!(&buf[..], b"\x00\x02\x00\xFF");
        assert_eq!(
            read_binary(&mut buf.freeze(), "f").unwrap(),
            &b"\x00\xFF"[..]
        );

        let long = vec![0u8; MAX_FIELD_LEN + 1];
        let mut buf = BytesMut::new();
        let err = write_binary("f", &long, &mut buf).unwrap_err();
        assert_eq!(
            err,
            EncodeError::FieldTooLong {
                field: "f",
                len: MAX_FIELD_LEN + 1
            }
        );
    }
}
