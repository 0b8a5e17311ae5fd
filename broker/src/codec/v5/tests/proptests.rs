//! Property tests: every valid packet round-trips, and no input makes the decoder (or
//! [`detect_protocol`]) panic.
//!
//! The number of cases follows proptest's `PROPTEST_CASES` environment variable (default 256),
//! so `PROPTEST_CASES=1000000 cargo test -p midge --lib codec::v5::tests::proptests` is a long,
//! fuzz-like run on a stable toolchain.

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;

use super::strategies;
use crate::codec::detect_protocol;
use crate::codec::error::DecodeError;
use crate::codec::v5::{Decoder, Packet, encode, encode_publish};

const MAX: u32 = 1 << 20;

/// Decodes everything in `buf`, stopping at the first error or when more input is needed.
fn decode_all(decoder: &mut Decoder, buf: &mut BytesMut) -> Result<Vec<Packet>, DecodeError> {
    let mut packets = Vec::new();
    while let Some(packet) = decoder.decode(buf)? {
        packets.push(packet);
    }
    Ok(packets)
}

/// What the decoder must guarantee for any input: no panic, and every packet it returns
/// survives re-encoding (checked by the caller through the returned packets).
fn decode_arbitrary(input: &[u8], chunk: usize) -> Vec<Packet> {
    let mut decoder = Decoder::new(MAX);
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        match decode_all(&mut decoder, &mut buf) {
            Ok(more) => packets.extend(more),
            Err(_) => break,
        }
    }
    packets
}

/// A decoded packet must encode, and decode back to itself.
fn assert_reencodes(packet: &Packet) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::new();
    prop_assert_eq!(encode(packet, &mut buf), Ok(()));
    let again = Decoder::new(MAX).decode(&mut buf);
    prop_assert_eq!(again.as_ref(), Ok(&Some(packet.clone())));
    prop_assert!(buf.is_empty());
    Ok(())
}

proptest! {
    #[test]
    fn every_valid_packet_round_trips(packet in strategies::packet()) {
        let mut buf = BytesMut::new();
        encode(&packet, &mut buf).unwrap();
        let encoded_len = buf.len();
        let decoded = Decoder::new(MAX).decode(&mut buf);
        prop_assert_eq!(decoded, Ok(Some(packet)), "{} encoded bytes", encoded_len);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn encode_publish_round_trips(publish in strategies::publish()) {
        let mut fast = BytesMut::new();
        encode_publish(&publish, &mut fast).unwrap();
        let mut general = BytesMut::new();
        encode(&Packet::Publish(publish.clone()), &mut general).unwrap();
        prop_assert_eq!(&fast, &general);
        prop_assert_eq!(Decoder::new(MAX).decode(&mut fast), Ok(Some(Packet::Publish(publish))));
    }

    #[test]
    fn streams_split_anywhere_decode_the_same(
        packets in vec(strategies::packet(), 1..8),
        chunk in 1usize..64,
    ) {
        let mut stream = BytesMut::new();
        for packet in &packets {
            encode(packet, &mut stream).unwrap();
        }
        prop_assert_eq!(decode_arbitrary(&stream, chunk), packets);
    }

    #[test]
    fn exact_size_limit_is_inclusive(packet in strategies::packet()) {
        let mut buf = BytesMut::new();
        encode(&packet, &mut buf).unwrap();
        let size = u32::try_from(buf.len()).unwrap();
        let mut too_big = buf.clone();
        prop_assert!(Decoder::new(size).decode(&mut buf).unwrap().is_some());
        let refused = Decoder::new(size - 1).decode(&mut too_big);
        let is_too_large = matches!(refused, Err(DecodeError::PacketTooLarge { .. }));
        prop_assert!(is_too_large);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in vec(any::<u8>(), 0..512), chunk in 1usize..32) {
        let _ = detect_protocol(&input);
        for packet in decode_arbitrary(&input, chunk) {
            assert_reencodes(&packet)?;
        }
    }

    #[test]
    fn mutated_packets_never_panic(
        packet in strategies::packet(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        // Start from a valid packet so that mutations reach deep into the body decoders.
        let mut buf = BytesMut::new();
        encode(&packet, &mut buf).unwrap();
        for (at, byte) in flips {
            let at = at.index(buf.len());
            buf[at] ^= byte;
        }
        let cut = cut.index(buf.len() + 1);
        let _ = detect_protocol(&buf[..cut]);
        for packet in decode_arbitrary(&buf[..cut], buf.len()) {
            assert_reencodes(&packet)?;
        }
    }
}
