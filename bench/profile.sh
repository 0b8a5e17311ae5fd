#!/usr/bin/env bash
# The broker's cost per message, counted in instructions by callgrind: repeatable whatever else
# the machine is doing, unlike the throughput of bench/run.sh. See bench/README.md.
#
#   bench/profile.sh                       # fan-in QoS 0: plain, event sink, cached topic check
#   VARIANTS="event-sink" QOS=1 bench/profile.sh
#
# For each variant it runs the release broker under `valgrind --tool=callgrind` twice: once idle
# (start, 6 s, SIGTERM) and once under the load generator's fan-in for DURATION seconds, and
# prints (instructions under load - instructions idle) / messages delivered. The callgrind
# files stay in bench/results/profile-<timestamp>/ for `callgrind_annotate`.
#
# Environment (defaults in brackets):
#   VARIANTS ["none event-sink topic-check-cached"]   none = no plugin
#   QOS [0]  DURATION [5]  SKIP_BUILD [0]  BASE_PORT [31883]
set -euo pipefail

cd "$(dirname "$0")/.."
VARIANTS=${VARIANTS:-none event-sink topic-check-cached}
QOS=${QOS:-0}
DURATION=${DURATION:-5}
SKIP_BUILD=${SKIP_BUILD:-0}
BASE_PORT=${BASE_PORT:-31883}

command -v valgrind >/dev/null || {
    echo "valgrind is missing: sudo apt-get install valgrind" >&2
    exit 2
}
if [ "$SKIP_BUILD" != 1 ]; then
    cargo build --release --quiet -p midge -p midge-loadgen
fi
midge=$PWD/target/release/midge
loadgen=$PWD/target/release/midge-loadgen
# shellcheck source=bench/variants.sh
. bench/variants.sh
out=bench/results/profile-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
port=$BASE_PORT
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# run VARIANT LOAD(idle|fan-in): prints "instructions delivered"
run() {
    local variant=$1 load=$2 pport=$((port + 1)) cfg plugin_pid='' broker_pid delivered=0
    port=$((port + 2))
    cfg=$out/$variant-$load.yaml
    variant_config "$cfg" "$port" "$pport" "$variant"
    start_variant_plugin "$variant" "$pport" "$out/plugin.log"
    [ -z "$plugin_pid" ] || { pids+=("$plugin_pid"); sleep 0.5; }
    valgrind --tool=callgrind --callgrind-out-file="$out/$variant-$load.callgrind" \
        "$midge" --config "$cfg" --log-level warn >"$out/$variant-$load.log" 2>&1 &
    broker_pid=$!
    pids+=("$broker_pid")
    "$loadgen" wait --addr "127.0.0.1:$port" --timeout 60 >/dev/null
    if [ "$load" = idle ]; then
        sleep 6
    else
        "$loadgen" fan-in --addr "127.0.0.1:$port" --qos "$QOS" --warmup 1 \
            --duration "$DURATION" --stall-timeout 30 >"$out/$variant-$load.json"
        delivered=$(grep -o '"delivered":[0-9]*' "$out/$variant-$load.json" | cut -d: -f2)
    fi
    kill -TERM "$broker_pid"
    wait "$broker_pid" 2>/dev/null || true
    [ -z "$plugin_pid" ] || { kill "$plugin_pid" 2>/dev/null; wait "$plugin_pid" 2>/dev/null || true; }
    local ir
    ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' \
        "$out/$variant-$load.callgrind" | head -1)
    echo "$ir $delivered"
}

printf '%-20s %6s %14s %12s %16s\n' variant qos instructions delivered "instr/message"
base=''
for variant in $VARIANTS; do
    read -r idle _ < <(run "$variant" idle)
    read -r loaded delivered < <(run "$variant" fan-in)
    per=$(((loaded - idle) / delivered))
    [ -n "$base" ] || base=$per
    printf '%-20s %6s %14s %12s %16s  (%s x the first)\n' "$variant" "$QOS" "$loaded" "$delivered" \
        "$per" "$(awk -v a="$per" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
done
echo "callgrind files: $out"
