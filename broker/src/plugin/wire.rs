//! Protobuf wire format written by hand where the hot path needs it (message events, the
//! `sequence` prefix of batched events): lengths computed first, then the bytes written into a
//! slice sized for them, one bounds check per piece and no capacity check per byte.
//!
//! What is written is byte for byte what prost writes for the same fields; the callers' tests
//! compare the two.

use prost::encoding::{WireType, encoded_len_varint, key_len};

/// Encoded length of a length-delimited field (key, length, value) of `len` bytes.
pub(super) fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// Encoded length of a proto3 `string`/`bytes` field: nothing when empty (the default).
pub(super) fn text_len(tag: u32, value: &[u8]) -> usize {
    if value.is_empty() {
        0
    } else {
        delimited_len(tag, value.len())
    }
}

/// Encoded length of a proto3 varint field: nothing when 0 (the default).
pub(super) fn varint_len(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(value)
    }
}

/// Writes into a slice whose length the caller computed with the `*_len` functions above.
/// Writing past its end is a bug in that computation and panics (the slice is never written
/// short or past).
#[derive(Debug)]
pub(super) struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> SliceWriter<'a> {
    /// A writer at the start of `buf`.
    pub(super) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub(super) fn written(&self) -> usize {
        self.pos
    }

    /// The part not written yet, for an encoder that writes through `BufMut` (`&mut [u8]` is
    /// one); the caller then [`skips`](Self::skip) what it wrote.
    pub(super) fn rest(&mut self) -> &mut [u8] {
        &mut self.buf[self.pos..]
    }

    /// Moves past `n` bytes written through [`rest`](Self::rest).
    pub(super) fn skip(&mut self, n: usize) {
        self.pos += n;
    }

    /// Writes one byte.
    pub(super) fn byte(&mut self, byte: u8) {
        self.buf[self.pos] = byte;
        self.pos += 1;
    }

    /// Writes raw bytes.
    pub(super) fn bytes(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        self.buf[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
    }

    /// Writes `value` as a varint.
    pub(super) fn raw_varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.byte((value as u8) | 0x80);
            value >>= 7;
        }
        self.byte(value as u8);
    }

    /// Writes a field key.
    pub(super) fn key(&mut self, tag: u32, wire_type: WireType) {
        self.raw_varint(u64::from(tag << 3 | wire_type as u32));
    }

    /// Writes the key and length of a length-delimited field.
    pub(super) fn delimited_head(&mut self, tag: u32, len: usize) {
        self.key(tag, WireType::LengthDelimited);
        self.raw_varint(len as u64);
    }

    /// Writes a proto3 `string`/`bytes` field, unless empty.
    pub(super) fn text(&mut self, tag: u32, value: &[u8]) {
        if !value.is_empty() {
            self.delimited_head(tag, value.len());
            self.bytes(value);
        }
    }

    /// Writes a proto3 varint field, unless 0.
    pub(super) fn varint(&mut self, tag: u32, value: u64) {
        if value != 0 {
            self.key(tag, WireType::Varint);
            self.raw_varint(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BufMut as _;
    use prost::encoding::{encode_key, encode_varint};

    use super::*;

    #[test]
    fn writes_what_prost_writes() {
        for value in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let len = varint_len(3, value) + delimited_len(9, 200) + text_len(2, b"");
            let mut buf = vec![0u8; len];
            let mut w = SliceWriter::new(&mut buf);
            w.varint(3, value);
            w.delimited_head(9, 200);
            w.rest()[..200].fill(7);
            w.skip(200);
            w.text(2, b"");
            assert_eq!(w.written(), len);

            let mut reference = Vec::new();
            if value != 0 {
                encode_key(3, WireType::Varint, &mut reference);
                encode_varint(value, &mut reference);
            }
            encode_key(9, WireType::LengthDelimited, &mut reference);
            encode_varint(200, &mut reference);
            reference.put_bytes(7, 200);
            assert_eq!(buf, reference, "value {value}");
        }
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn writing_past_the_computed_length_panics() {
        let mut buf = [0u8; 2];
        SliceWriter::new(&mut buf).bytes(b"abc");
    }
}
