//! The 64-byte benchmark payload and the clock its timestamps come from.
//!
//! Layout (little endian): publisher id `u32` at 0, sequence number `u64` at 4, send time `u64`
//! (nanoseconds on [`now_ns`]'s clock) at 12, then [`PAD`] bytes up to 64. Publishers and
//! subscribers run in the same process, so send and receive times share one monotonic clock.

use std::sync::OnceLock;
use std::time::Instant;

use anyhow::ensure;

/// Payload size, as the issue asks.
pub(crate) const LEN: usize = 64;

/// Filler byte after the header fields, checked on receipt.
const PAD: u8 = 0xA5;

/// Nanoseconds since the first call in this process (monotonic).
pub(crate) fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A decoded payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Which publisher sent it (index within the scenario).
    pub(crate) publisher: u32,
    /// Its per-publisher sequence number, from 0.
    pub(crate) seq: u64,
    /// When it was written to the socket, on [`now_ns`]'s clock.
    pub(crate) sent_ns: u64,
}

/// Encodes `stamp` into a payload.
pub(crate) fn encode(stamp: Stamp) -> [u8; LEN] {
    let mut out = [PAD; LEN];
    out[0..4].copy_from_slice(&stamp.publisher.to_le_bytes());
    out[4..12].copy_from_slice(&stamp.seq.to_le_bytes());
    out[12..20].copy_from_slice(&stamp.sent_ns.to_le_bytes());
    out
}

/// Decodes and checks a payload: its length and its padding must be intact.
pub(crate) fn decode(payload: &[u8]) -> anyhow::Result<Stamp> {
    ensure!(
        payload.len() == LEN,
        "payload of {} bytes, expected {LEN}",
        payload.len()
    );
    ensure!(
        payload[20..].iter().all(|&b| b == PAD),
        "payload padding corrupted"
    );
    let u32_at =
        |i: usize| u32::from_le_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]]);
    let u64_at = |i: usize| u64::from(u32_at(i)) | (u64::from(u32_at(i + 4)) << 32);
    Ok(Stamp {
        publisher: u32_at(0),
        seq: u64_at(4),
        sent_ns: u64_at(12),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let stamp = Stamp {
            publisher: 99,
            seq: u64::MAX - 3,
            sent_ns: 1_234_567_890_123,
        };
        assert_eq!(decode(&encode(stamp)).unwrap(), stamp);
    }

    #[test]
    fn refuses_bad_length_and_padding() {
        let mut p = encode(Stamp {
            publisher: 1,
            seq: 2,
            sent_ns: 3,
        });
        assert!(decode(&p[..63]).is_err());
        p[63] = 0;
        assert!(decode(&p).is_err());
    }
}
