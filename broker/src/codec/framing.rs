//! Splitting a byte stream into packets (spec §2.2), shared by every protocol version.
//!
//! Every MQTT packet starts with the same fixed header: one byte of type and flags, then the
//! remaining length. [`Framer`] reads that header, rejects a packet that is too large or that
//! the version-specific header check refuses as soon as the header is complete (never buffering
//! its body), and then waits until the whole packet is buffered and slices it out without
//! copying.

use bytes::{Bytes, BytesMut};

use crate::codec::error::DecodeError;
use crate::codec::primitives::{decode_remaining_length, ensure};

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The first byte: packet type in the high nibble, flags in the low nibble.
    pub first_byte: u8,
    /// The remaining length: the size of the variable header and payload.
    pub remaining_length: u32,
    /// The size of the fixed header itself (2 to 5 bytes).
    pub header_len: u8,
}

impl FixedHeader {
    /// The packet type nibble (0 to 15).
    pub fn type_nibble(&self) -> u8 {
        self.first_byte >> 4
    }

    /// The flags nibble.
    pub fn flags(&self) -> u8 {
        self.first_byte & 0x0F
    }

    /// The size of the whole packet: fixed header plus remaining length.
    pub fn packet_len(&self) -> u64 {
        u64::from(self.header_len) + u64::from(self.remaining_length)
    }
}

/// Parses a fixed header from the start of `src`; `Ok(None)` if `src` holds only part of it.
pub fn parse_fixed_header(src: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
    let Some((&first_byte, rest)) = src.split_first() else {
        return Ok(None);
    };
    let Some((remaining_length, len_bytes)) = decode_remaining_length(rest)? else {
        return Ok(None);
    };
    Ok(Some(FixedHeader {
        first_byte,
        remaining_length,
        // At most 1 + 4, so the cast cannot truncate.
        header_len: 1 + len_bytes as u8,
    }))
}

/// A version-specific check of a fixed header, run once per packet as soon as the header is
/// complete, before the body is buffered (packet type, flags, fixed body sizes).
pub type HeaderCheck = fn(&FixedHeader) -> Result<(), DecodeError>;

/// One complete packet as cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its fixed header.
    pub header: FixedHeader,
    /// Its variable header and payload, `header.remaining_length` bytes, sharing the read
    /// buffer's memory.
    pub body: Bytes,
}

/// The framing state machine: cuts complete packets out of a read buffer.
///
/// After it returns an error the stream cannot be resynchronised and must be closed.
#[derive(Debug, Clone)]
pub struct Framer {
    max_packet_size: u32,
    check: HeaderCheck,
    /// The header of the packet being waited for, once it has been parsed and checked.
    pending: Option<FixedHeader>,
}

impl Framer {
    /// A framer that refuses packets larger than `max_packet_size` bytes in total (fixed header
    /// included) and runs `check` on every fixed header.
    pub fn new(max_packet_size: u32, check: HeaderCheck) -> Self {
        Self {
            max_packet_size,
            check,
            pending: None,
        }
    }

    /// The largest total packet size accepted.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Cuts the next complete packet from the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold a whole packet; in that case `buf` has
    /// been given enough capacity for the rest of the packet (and no more is reserved than the
    /// packet needs). On success the packet's bytes are split off `buf` without copying.
    pub fn next_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let header = match self.pending {
            Some(header) => header,
            None => {
                let Some(header) = parse_fixed_header(buf)? else {
                    return Ok(None);
                };
                let size = header.packet_len();
                ensure!(
                    size <= u64::from(self.max_packet_size),
                    DecodeError::PacketTooLarge {
                        size,
                        max: self.max_packet_size,
                    }
                );
                (self.check)(&header)?;
                self.pending = Some(header);
                header
            }
        };

        // Bounded by max_packet_size (a u32), so this fits in usize on every supported target.
        let total =
            usize::try_from(header.packet_len()).map_err(|_| DecodeError::PacketTooLarge {
                size: header.packet_len(),
                max: self.max_packet_size,
            })?;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }

        self.pending = None;
        let mut body = buf.split_to(total).freeze();
        let header_bytes = body.split_to(usize::from(header.header_len));
        debug_assert_eq!(header_bytes.first(), Some(&header.first_byte));
        Ok(Some(Frame { header, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(_: &FixedHeader) -> Result<(), DecodeError> {
        Ok(())
    }

    #[test]
    fn parses_fixed_headers() {
        assert_eq!(parse_fixed_header(&[]), Ok(None));
        assert_eq!(parse_fixed_header(&[0x30]), Ok(None));
        assert_eq!(parse_fixed_header(&[0x30, 0x80]), Ok(None));
        let header = parse_fixed_header(&[0x3B, 0x80, 0x01, 0xAA])
            .unwrap()
            .unwrap();
        assert_eq!(header.type_nibble(), 3);
        assert_eq!(header.flags(), 0xB);
        assert_eq!(header.remaining_length, 128);
        assert_eq!(header.header_len, 3);
        assert_eq!(header.packet_len(), 131);
    }

    #[test]
    fn frames_are_cut_without_copying() {
        let mut buf = BytesMut::from(&b"\xC0\x00\x30\x03\x00\x01a\xE0"[..]);
        let base = buf.as_ptr();
        let mut framer = Framer::new(1024, accept);

        let ping = framer.next_frame(&mut buf).unwrap().unwrap();
        assert_eq!(ping.header.first_byte, 0xC0);
        assert!(ping.body.is_empty());

        let publish = framer.next_frame(&mut buf).unwrap().unwrap();
        assert_eq!(&publish.body[..], b"\x00\x01a");
        assert_eq!(publish.body.as_ptr(), base.wrapping_add(4));

        assert_eq!(framer.next_frame(&mut buf), Ok(None));
        assert_eq!(&buf[..], b"\xE0");
    }

    #[test]
    fn oversize_is_rejected_from_the_header_alone() {
        let mut framer = Framer::new(10, accept);
        // Announces 2 + 9 = 11 bytes; the body never arrives.
        let mut buf = BytesMut::from(&b"\x30\x09"[..]);
        let err = framer.next_frame(&mut buf).unwrap_err();
        assert_eq!(err, DecodeError::PacketTooLarge { size: 11, max: 10 });

        // Exactly at the limit is fine.
        let mut framer = Framer::new(10, accept);
        let mut buf = BytesMut::from(&b"\x30\x08"[..]);
        assert_eq!(framer.next_frame(&mut buf), Ok(None));
        assert!(buf.capacity() >= 10);
    }

    #[test]
    fn header_check_runs_before_the_body_arrives() {
        fn refuse(header: &FixedHeader) -> Result<(), DecodeError> {
            Err(DecodeError::InvalidPacketType(header.type_nibble()))
        }
        let mut framer = Framer::new(1024, refuse);
        let mut buf = BytesMut::from(&b"\x00\x05"[..]);
        let err = framer.next_frame(&mut buf).unwrap_err();
        assert_eq!(err, DecodeError::InvalidPacketType(0));
    }
}
