#!/usr/bin/env bash
# Runs a short, bounded libFuzzer session against midge's MQTT decoder.
#
#   scripts/fuzz.sh [SECONDS] [TARGET]     defaults: 60 seconds, target "decode"
#
# Installs cargo-fuzz from crates.io if it is missing. cargo-fuzz passes nightly-only flags
# (-Zsanitizer=address); a stable toolchain accepts them with RUSTC_BOOTSTRAP=1, which is set
# for the fuzz build only. Crashes land in broker/fuzz/artifacts/TARGET/ and the script exits
# non-zero; the growing corpus is kept in broker/fuzz/corpus/TARGET/ (both git-ignored).
set -euo pipefail

seconds="${1:-60}"
target="${2:-decode}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS] [TARGET]  (SECONDS must be a positive integer)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$root/broker/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# Seed an empty corpus with a few valid packets. The first byte of each input is the size of
# the simulated socket reads (see fuzz_targets/decode.rs).
corpus="$fuzz_dir/corpus/$target"
mkdir -p "$corpus"
if [[ "$target" == decode && -z "$(ls -A "$corpus")" ]]; then
    printf '\x08\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00' >"$corpus/connect"
    printf '\x05\x10\x0f\x00\x06MQIsdp\x03\x00\x00\x3c\x00\x01a' >"$corpus/connect-3.1"
    printf '\x03\x3b\x06\x00\x01a\x00\x0ax' >"$corpus/publish-qos1"
    printf '\x04\x82\x0c\x00\x05\x00\x03a/#\x01\x00\x01+\x02' >"$corpus/subscribe"
    printf '\x01\xa2\x09\x00\x06\x00\x01a\x00\x02+/' >"$corpus/unsubscribe"
    printf '\x02\x20\x02\x01\x00\x90\x05\x00\x05\x00\x02\x80' >"$corpus/connack-suback"
    printf '\x01\xc0\x00\x62\x02\x00\x03\xe0\x00' >"$corpus/pingreq-pubrel-disconnect"
fi

# Build against the same dependency versions as the main workspace; cargo adds the fuzz-only
# packages (libfuzzer-sys) on top.
cp "$root/Cargo.lock" "$fuzz_dir/Cargo.lock"

cd "$fuzz_dir"
RUSTC_BOOTSTRAP=1 exec cargo fuzz run "$target" -- -max_total_time="$seconds"
