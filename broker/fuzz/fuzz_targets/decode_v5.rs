//! Fuzzes the MQTT 5 stream decoder and the protocol-level peek.
//!
//! The first input byte sets how many bytes each simulated socket read delivers, so partial
//! packets and several packets per read are both exercised. Properties checked: neither
//! `detect_protocol` nor decoding ever panics, and every packet the decoder returns encodes and
//! decodes back to itself (so a property it accepts is one it can write, and the encoder's
//! canonical order and short forms lose nothing).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use midge::codec::detect_protocol;
use midge::codec::v5::{Decoder, Packet, encode};

const MAX_PACKET_SIZE: u32 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    let _ = detect_protocol(input);
    let mut decoder = Decoder::new(MAX_PACKET_SIZE);
    let mut buf = BytesMut::new();
    for piece in input.chunks(usize::from(chunk).max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => assert_round_trips(&packet),
                Ok(None) => break,
                Err(error) => {
                    // Every error maps to a reason code without panicking.
                    let _ = (error.v5_reason(), error.v5_spec_reference());
                    return;
                }
            }
        }
    }
});

fn assert_round_trips(packet: &Packet) {
    let mut encoded = BytesMut::new();
    if let Err(error) = encode(packet, &mut encoded) {
        panic!("decoded packet does not encode: {error}: {packet:?}");
    }
    match Decoder::new(MAX_PACKET_SIZE).decode(&mut encoded) {
        Ok(Some(again)) => assert_eq!(&again, packet, "re-decoded packet differs"),
        other => panic!("re-encoded packet does not decode: {other:?}: {packet:?}"),
    }
    assert!(encoded.is_empty(), "re-encoding left trailing bytes");
}
