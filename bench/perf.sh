#!/usr/bin/env bash
# Where the broker's time goes per message, by `perf record -e cpu-clock` (a sampling timer:
# works in VMs without hardware counters). Complements bench/profile.sh: instruction counts
# miss what costs time without costing instructions (atomic operations, a clock read that
# traps to the hypervisor, the kernel's side of a socket). See bench/README.md.
#
#   bench/perf.sh                          # fan-in QoS 0: plain, event sink, cached topic check
#   VARIANTS="none event-sink" QOS=1 bench/perf.sh
#
# Per variant: the broker pinned to CPU $BROKER_CPU, the load generator and the stand-in plugin
# on $LOADGEN_CPU, fan-in for DURATION seconds, `perf record` over the middle of it. Prints the
# throughput, the CPU time broker and plugin used while recorded, then, for each variant after
# the first, the symbols whose nanoseconds per delivered message grew most against the first
# (share of samples x time per message). perf.data files stay in bench/results/perf-<time>/.
#
# Environment (defaults in brackets):
#   VARIANTS ["none event-sink topic-check-cached"]   QOS [0]  DURATION [6]  TOP [25]
#   BROKER_CPU [0] LOADGEN_CPU [1] SKIP_BUILD [0] BASE_PORT [41883]
set -euo pipefail

cd "$(dirname "$0")/.."
VARIANTS=${VARIANTS:-none event-sink topic-check-cached}
QOS=${QOS:-0}
DURATION=${DURATION:-6}
TOP=${TOP:-25}
BROKER_CPU=${BROKER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
BASE_PORT=${BASE_PORT:-41883}

command -v perf >/dev/null || {
    echo "perf is missing: sudo apt-get install linux-perf" >&2
    exit 2
}
if [ "$SKIP_BUILD" != 1 ]; then
    cargo build --release --quiet -p midge -p midge-loadgen
fi
midge=$PWD/target/release/midge
loadgen=$PWD/target/release/midge-loadgen
# shellcheck source=bench/variants.sh
. bench/variants.sh
out=bench/results/perf-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
port=$BASE_PORT
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# CPU ticks (user + system) a process used so far.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# run VARIANT: records $out/VARIANT.perf.data; prints "msg_per_s broker_cpu plugin_cpu".
run() {
    local variant=$1 pport=$((port + 1)) cfg plugin_pid='' broker_pid perf_pid
    port=$((port + 2))
    cfg=$out/$variant.yaml
    variant_config "$cfg" "$port" "$pport" "$variant"
    start_variant_plugin "$variant" "$pport" "$out/$variant.plugin.log" "$LOADGEN_CPU"
    [ -z "$plugin_pid" ] || { pids+=("$plugin_pid"); sleep 0.5; }
    taskset -c "$BROKER_CPU" "$midge" --config "$cfg" --log-level warn >"$out/$variant.log" 2>&1 &
    broker_pid=$!
    pids+=("$broker_pid")
    "$loadgen" wait --addr "127.0.0.1:$port" --timeout 30 >/dev/null
    # Recorded: the middle of the run, after the warm-up, before the end.
    local record=$((DURATION - 2))
    (
        sleep 1.5
        b0=$(ticks "$broker_pid") p0=0 t0=$(date +%s.%N)
        [ -z "$plugin_pid" ] || p0=$(ticks "$plugin_pid")
        perf record -q -e cpu-clock -F 4999 -g -p "$broker_pid" -o "$out/$variant.perf.data" \
            -- sleep "$record" >/dev/null 2>&1
        b1=$(ticks "$broker_pid") p1=0 t1=$(date +%s.%N)
        [ -z "$plugin_pid" ] || p1=$(ticks "$plugin_pid")
        echo "$((b1 - b0)) $((p1 - p0)) $t0 $t1" >"$out/$variant.cpu"
    ) &
    perf_pid=$!
    taskset -c "$LOADGEN_CPU" "$loadgen" fan-in --addr "127.0.0.1:$port" --qos "$QOS" --warmup 1 \
        --duration "$DURATION" --stall-timeout 30 >"$out/$variant.json"
    wait "$perf_pid"
    kill -TERM "$broker_pid"
    wait "$broker_pid" 2>/dev/null || true
    [ -z "$plugin_pid" ] || { kill "$plugin_pid" 2>/dev/null; wait "$plugin_pid" 2>/dev/null || true; }
    local rate hz cpu b p t0 t1
    rate=$(grep -o '"delivered_per_s":[0-9.]*' "$out/$variant.json" | cut -d: -f2)
    hz=$(getconf CLK_TCK)
    read -r b p t0 t1 <"$out/$variant.cpu"
    cpu=$(awk -v b="$b" -v p="$p" -v hz="$hz" -v t0="$t0" -v t1="$t1" \
        'BEGIN { s = t1 - t0; printf "%.0f%% %.0f%%", 100 * b / hz / s, 100 * p / hz / s }')
    echo "$rate $cpu"
}

# Symbol shares of VARIANT's samples, as "percent<TAB>dso symbol" lines.
shares() {
    perf report -i "$out/$1.perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
        | awk '/^ *[0-9.]+%/ { p = $1; sub("%", "", p); $1 = ""; print p "\t" substr($0, 2) }'
}

printf '%-20s %4s %14s %12s %12s\n' variant qos msg/s "broker CPU" "plugin CPU"
first='' first_ns=''
for variant in $VARIANTS; do
    read -r rate bcpu pcpu < <(run "$variant")
    printf '%-20s %4s %14.0f %12s %12s\n' "$variant" "$QOS" "$rate" "$bcpu" "$pcpu"
    ns=$(awk -v r="$rate" 'BEGIN { printf "%.1f", 1e9 / r }')
    shares "$variant" >"$out/$variant.shares"
    if [ -z "$first" ]; then
        first=$variant first_ns=$ns
        continue
    fi
    echo "  $variant: $ns ns per message against $first_ns for $first; grown most:"
    awk -F'\t' -v a="$first_ns" -v b="$ns" '
        FNR == NR { base[$2] = $1; next }
        { grew[$2] = $1 * b / 100 - base[$2] * a / 100; seen[$2] = 1 }
        END {
            for (k in base) if (!(k in seen)) grew[k] = -base[k] * a / 100
            for (k in grew) printf "%8.1f ns  %s\n", grew[k], k
        }' "$out/$first.shares" "$out/$variant.shares" | sort -rn | head -n "$TOP"
done
echo "perf files: $out (perf report -i FILE)"
