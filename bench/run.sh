#!/usr/bin/env bash
# Midge vs mosquitto vs rumqttd, side by side, on 127.0.0.1. See bench/README.md.
#
#   bench/run.sh                 # full run, both profiles: REPS=3, 10 s per throughput run (~1 h)
#   QUICK=1 bench/run.sh         # smoke: 1 repetition, short runs, smaller counts (~7 min)
#   PROFILE=defaults bench/run.sh  # only the brokers' out-of-the-box configs, with the floors
#
# Two profiles of broker configuration (bench/README.md lists every setting):
#   defaults  each broker's own out-of-the-box configuration, only its listeners moved to
#             127.0.0.1 and bench ports; the report checks issue #16's floors on it
#   tuned     every broker tuned as before: in-flight windows of 100, queues unbounded or 100,000
# Scenarios, connection counts and windows are the same in both.
#
# Each broker is started fresh for every scenario run, pinned to CPU $BROKER_CPU; the load
# generator (and the stand-in plugins) run on CPU $LOADGEN_CPU. Repetitions are interleaved:
# for each repetition, for each profile, for each scenario, each broker in turn (rotated per
# repetition).
# Results: bench/results/<timestamp>.{json,md} plus bench/results/<timestamp>/ (raw lines,
# configs, logs). Exit status 1 if any run failed (lost or duplicated messages, a broker that
# did not start, ...) in any profile, or, with FLOORS=enforce, if a floor is not met.
#
# Environment (defaults in brackets):
#   PROFILE [both]       defaults, tuned or both (one report with a table per profile)
#   FLOORS [report]      report: print the floors' verdicts; enforce: an unmet floor fails the run
#   REPS [3]             repetitions
#   QUICK [0]            1: smoke run (REPS=1, 2 s runs, 2,000 connections)
#   BROKERS ["midge mosquitto rumqttd"]
#   SCENARIOS ["fan-in-qos0 fan-in-qos1 fan-out-qos0 fan-out-qos1 latency-qos0 latency-qos1
#              connect-storm connect-latency memory plugins"] (plugins: tuned profile only)
#   DURATION [10] WARMUP [2]          seconds, throughput runs
#   FANIN_WINDOW [32] FANOUT_WINDOW [64]  messages in flight per publisher (see README)
#   LAT_DURATION [10] LAT_RATE [1000] latency runs
#   CONNECTIONS [10000]               connect-storm and memory
#   SCALE_CONNECTIONS [19000] SCALE_HOLD [60] SCALE_KEEP_ALIVE [60]
#                                     `connections` (not in the default SCENARIOS: about two
#                                     minutes per broker): idle connections, seconds held,
#                                     keep alive (PINGREQ every half of it); 2000, 10, 10 quick
#   LAT_CONNECTIONS [2000]            connect-latency (one CONNECT at a time)
#   BROKER_CPU [0] LOADGEN_CPU [1] PLUGIN_CPU [$LOADGEN_CPU]
#   BASE_PORT [21883]                 first broker port; every broker start takes the next one
#   SKIP_BUILD [0]                    1: use the release binaries already built
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    REPS=${REPS:-1}
    DURATION=${DURATION:-2}
    WARMUP=${WARMUP:-1}
    LAT_DURATION=${LAT_DURATION:-2}
    CONNECTIONS=${CONNECTIONS:-2000}
    SCALE_CONNECTIONS=${SCALE_CONNECTIONS:-2000}
    SCALE_HOLD=${SCALE_HOLD:-10}
    SCALE_KEEP_ALIVE=${SCALE_KEEP_ALIVE:-10}
fi
REPS=${REPS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
LAT_DURATION=${LAT_DURATION:-10}
FANIN_WINDOW=${FANIN_WINDOW:-32}
FANOUT_WINDOW=${FANOUT_WINDOW:-64}
LAT_RATE=${LAT_RATE:-1000}
CONNECTIONS=${CONNECTIONS:-10000}
SCALE_CONNECTIONS=${SCALE_CONNECTIONS:-19000}
SCALE_HOLD=${SCALE_HOLD:-60}
SCALE_KEEP_ALIVE=${SCALE_KEEP_ALIVE:-60}
BROKERS=${BROKERS:-midge mosquitto rumqttd}
SCENARIOS=${SCENARIOS:-fan-in-qos0 fan-in-qos1 fan-out-qos0 fan-out-qos1 latency-qos0 latency-qos1 connect-storm connect-latency memory plugins}
LAT_CONNECTIONS=${LAT_CONNECTIONS:-2000}
BROKER_CPU=${BROKER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PLUGIN_CPU=${PLUGIN_CPU:-$LOADGEN_CPU}
BASE_PORT=${BASE_PORT:-21883}
SKIP_BUILD=${SKIP_BUILD:-0}
PROFILE=${PROFILE:-both}
FLOORS=${FLOORS:-report}
RUMQTTD_VERSION=0.20.0

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

case $PROFILE in
    defaults | tuned) profiles=$PROFILE ;;
    both) profiles='defaults tuned' ;;
    *) die "unknown PROFILE '$PROFILE' (defaults, tuned, both)" ;;
esac
case $FLOORS in
    report | enforce) ;;
    *) die "unknown FLOORS '$FLOORS' (report, enforce)" ;;
esac

# --- tools -----------------------------------------------------------------------------------
command -v taskset >/dev/null || die "taskset is missing (Debian package util-linux)"
cpus=$(nproc --all)
[ "$cpus" -ge 2 ] || log "warning: only $cpus CPU: broker and load generator share it"
for cpu in "$BROKER_CPU" "$LOADGEN_CPU" "$PLUGIN_CPU"; do
    taskset -c "$cpu" true 2>/dev/null || die "cannot pin to CPU $cpu (see BROKER_CPU / LOADGEN_CPU)"
done

target=${CARGO_TARGET_DIR:-$root/target}
if [ "$SKIP_BUILD" != 1 ]; then
    log "building release binaries (midge, midge-loadgen)"
    cargo build --release --quiet -p midge -p midge-loadgen
fi
midge=$target/release/midge
loadgen=$target/release/midge-loadgen
[ -x "$midge" ] && [ -x "$loadgen" ] || die "release binaries missing in $target/release"

need_mosquitto=0 need_rumqttd=0
for b in $BROKERS; do
    case $b in
        midge) ;;
        mosquitto) need_mosquitto=1 ;;
        rumqttd) need_rumqttd=1 ;;
        *) die "unknown broker '$b' (midge, mosquitto, rumqttd)" ;;
    esac
done
mosquitto_bin=$(command -v mosquitto || true)
if [ -z "$mosquitto_bin" ] && [ -x /usr/sbin/mosquitto ]; then mosquitto_bin=/usr/sbin/mosquitto; fi
if [ "$need_mosquitto" = 1 ] && [ -z "$mosquitto_bin" ]; then
    command -v apt-get >/dev/null || die "please install mosquitto (no apt-get here)"
    log "installing mosquitto (Debian package)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto
    mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
fi
rumqttd_bin=$root/bench/.tools/bin/rumqttd
if [ "$need_rumqttd" = 1 ] && [ ! -x "$rumqttd_bin" ]; then
    # Not --locked: rumqttd 0.20.0's lock file pins metrics 0.22.1, which no longer builds with
    # current compilers; the semver-compatible update does.
    log "installing rumqttd $RUMQTTD_VERSION into bench/.tools (a few minutes)"
    cargo install rumqttd --version "$RUMQTTD_VERSION" --root "$root/bench/.tools" --quiet
fi

# 10,000 idle connections need as many descriptors, in the broker and in the load generator.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((CONNECTIONS + 1000)) ] \
    || log "warning: ulimit -n is $(ulimit -n), too low for $CONNECTIONS connections"

# --- run directory ---------------------------------------------------------------------------
stamp=$(date +%Y%m%d-%H%M%S)
results=$root/bench/results
run_dir=$results/$stamp
mkdir -p "$run_dir/conf" "$run_dir/logs"
lines=$run_dir/results.jsonl
: >"$lines"

versions="midge $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
if [ "$need_mosquitto" = 1 ]; then
    # mosquitto -h exits with status 3.
    versions+=", mosquitto $({ "$mosquitto_bin" -h 2>&1 || true; } | sed -n 's/^mosquitto version //p' | head -1)"
fi
if [ "$need_rumqttd" = 1 ]; then versions+=", rumqttd $RUMQTTD_VERSION"; fi
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1 || true)
title="$(date -u +%Y-%m-%dT%H:%MZ) · ${cpu_model:-unknown CPU}, $cpus CPUs, $(uname -r) · $versions · REPS=$REPS QUICK=$QUICK PROFILE=$PROFILE"
log "$title"
log "writing $run_dir"

# --- brokers ---------------------------------------------------------------------------------
next_port=$BASE_PORT
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
take_port() {
    while ! port_free "$next_port"; do next_port=$((next_port + 1)); done
    port=$next_port
    next_port=$((next_port + 1))
}

broker_pid='' plugin_pid='' rumqttd_ports=''

# write_defaults_config BROKER PORT -> path of the config file: the broker's out-of-the-box
# configuration with only its listeners moved to 127.0.0.1 and bench ports (bench/README.md).
write_defaults_config() {
    local broker=$1 port=$2 file
    case $broker in
        midge)
            # Everything else is the embedded default (broker/src/config/default.yaml): a
            # section left out keeps it, and so do the listener keys left out.
            file=$run_dir/conf/midge-defaults-$port.yaml
            cat >"$file" <<EOF
listeners:
  - name: default
    kind: tcp
    bind: 127.0.0.1:$port
EOF
            ;;
        mosquitto)
            # mosquitto 2 refuses anonymous clients once a listener is configured.
            file=$run_dir/conf/mosquitto-defaults-$port.conf
            cat >"$file" <<EOF
listener $port 127.0.0.1
allow_anonymous true
EOF
            ;;
        rumqttd)
            # rumqttd's own default config (`rumqttd generate-config` prints the rumqttd.toml it
            # runs without --config), with every listener moved to 127.0.0.1 and a bench port:
            # besides the v4 listener on 0.0.0.0:1883 it binds v5 on 0.0.0.0:1884, websocket on
            # 0.0.0.0:8083, console on 0.0.0.0:3030 and prometheus on 127.0.0.1:9042. And
            # max_connections raised only if the bench holds more connections than it allows.
            local v5 ws console prometheus max_conn
            read -r v5 ws console prometheus <<<"$rumqttd_ports"
            file=$run_dir/conf/rumqttd-defaults-$port.toml
            "$rumqttd_bin" generate-config | sed \
                -e "s|^\([[:space:]]*listen = \)\"0\.0\.0\.0:1883\"|\1\"127.0.0.1:$port\"|" \
                -e "s|^\([[:space:]]*listen = \)\"0\.0\.0\.0:1884\"|\1\"127.0.0.1:$v5\"|" \
                -e "s|^\([[:space:]]*listen = \)\"0\.0\.0\.0:8083\"|\1\"127.0.0.1:$ws\"|" \
                -e "s|^\([[:space:]]*listen = \)\"0\.0\.0\.0:3030\"|\1\"127.0.0.1:$console\"|" \
                -e "s|^\([[:space:]]*listen = \)\"127\.0\.0\.1:9042\"|\1\"127.0.0.1:$prometheus\"|" \
                >"$file"
            max_conn=$(sed -n 's/^max_connections = \([0-9]*\)$/\1/p' "$file")
            local held=$((CONNECTIONS > SCALE_CONNECTIONS ? CONNECTIONS : SCALE_CONNECTIONS))
            if [ $((held + 10)) -gt "${max_conn:-0}" ]; then
                sed -i "s/^max_connections = .*/max_connections = $((held + 10))/" "$file"
            fi
            local ports=" $port $v5 $ws $console $prometheus " addr
            for addr in $(sed -n 's/^[[:space:]]*listen = "\(.*\)"$/\1/p' "$file"); do
                if [ "${addr%:*}" != 127.0.0.1 ] || [[ $ports != *" ${addr##*:} "* ]]; then
                    log "rumqttd's default config has a listener this script does not move: $addr"
                    return 1
                fi
            done
            grep -q "^listen = \"127.0.0.1:$port\"" "$file" \
                || { log "no v4 listener on 0.0.0.0:1883 in rumqttd's default config"; return 1; }
            ;;
    esac
    echo "$file"
}

# write_config BROKER PORT VARIANT PLUGIN_PORT -> path of the config file
write_config() {
    local broker=$1 port=$2 variant=$3 pport=$4 file
    if [ "$profile" = defaults ]; then
        write_defaults_config "$broker" "$port"
        return
    fi
    case $broker in
        midge)
            file=$run_dir/conf/midge-$port.yaml
            cat >"$file" <<EOF
listeners:
  - name: bench
    kind: tcp
    bind: 127.0.0.1:$port
    max-connections: 0
    connect-timeout: 30s
limits:
  max-inflight: 100
  max-queued-messages: 100000
sys-interval: 0s
EOF
            case $variant in
                '') printf 'auth:\n  allow-anonymous: true\n' >>"$file" ;;
                event-sink)
                    cat >>"$file" <<EOF
auth:
  allow-anonymous: true
plugins:
  sink:
    endpoint: http://127.0.0.1:$pport
    events: [message_received]
    mandatory: true
EOF
                    ;;
                topic-check-cached | topic-check-uncached)
                    cat >>"$file" <<EOF
auth:
  allow-anonymous: true
topic-check:
  enable: true
  plugins: [acl]
plugins:
  acl:
    endpoint: http://127.0.0.1:$pport
    mandatory: true
EOF
                    ;;
                auth)
                    cat >>"$file" <<EOF
auth:
  plugins: [allow]
plugins:
  allow:
    endpoint: http://127.0.0.1:$pport
    mandatory: true
EOF
                    ;;
                *) die "unknown variant $variant" ;;
            esac
            ;;
        mosquitto)
            file=$run_dir/conf/mosquitto-$port.conf
            cat >"$file" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_inflight_messages 100
set_tcp_nodelay true
max_connections -1
log_dest stderr
log_type error
log_type warning
EOF
            ;;
        rumqttd)
            file=$run_dir/conf/rumqttd-$port.toml
            cat >"$file" <<EOF
id = 0

[router]
id = 0
max_connections = $((CONNECTIONS + SCALE_CONNECTIONS + 10000))
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:$port"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 20480
    max_inflight_count = 100
    dynamic_filters = true
EOF
            ;;
    esac
    echo "$file"
}

# start_broker BROKER VARIANT: sets port, broker_pid (and plugin_pid for plugin variants).
start_broker() {
    local broker=$1 variant=$2 pport='' config log_file
    take_port
    log_file=$run_dir/logs/$broker-$port.log
    case $variant in
        '') ;;
        event-sink | topic-check-cached | topic-check-uncached | auth)
            local kind=$variant cache=0
            case $variant in
                topic-check-cached) kind=topic-check cache=60000 ;;
                topic-check-uncached) kind=topic-check ;;
            esac
            local saved=$port
            take_port
            pport=$port
            port=$saved
            plugin_count=$run_dir/logs/plugin-$pport.count
            taskset -c "$PLUGIN_CPU" "$loadgen" plugin "$kind" --listen "127.0.0.1:$pport" \
                --cache-ms "$cache" --count-file "$plugin_count" \
                >"$run_dir/logs/plugin-$pport.log" 2>&1 &
            plugin_pid=$!
            # The broker would connect anyway (with backoff), but the plugin listening first
            # keeps its start-up out of the broker's.
            local i
            for i in $(seq 100); do
                port_free "$pport" || break
                sleep 0.1
            done
            ;;
    esac
    if [ "$profile" = defaults ] && [ "$broker" = rumqttd ]; then
        # Its sample's other listeners (v5, websocket, console, prometheus) get ports too.
        local saved=$port i
        rumqttd_ports=''
        for i in 1 2 3 4; do
            take_port
            rumqttd_ports+="$port "
        done
        port=$saved
    fi
    config=$(write_config "$broker" "$port" "$variant" "$pport") || return 1
    # Defaults: no flags either (Midge logs at info, which logs nothing per normal connection).
    local midge_flags=(--log-level warn)
    [ "$profile" != defaults ] || midge_flags=()
    case $broker in
        midge) taskset -c "$BROKER_CPU" "$midge" --config "$config" "${midge_flags[@]}" >"$log_file" 2>&1 & ;;
        mosquitto) taskset -c "$BROKER_CPU" "$mosquitto_bin" -c "$config" >"$log_file" 2>&1 & ;;
        rumqttd) taskset -c "$BROKER_CPU" "$rumqttd_bin" --quiet --config "$config" >"$log_file" 2>&1 & ;;
    esac
    broker_pid=$!
    if ! taskset -c "$LOADGEN_CPU" "$loadgen" wait --addr "127.0.0.1:$port" --timeout 30 \
        >>"$run_dir/logs/wait.log" 2>&1 || ! kill -0 "$broker_pid" 2>/dev/null; then
        log "  $broker did not start on port $port (see $log_file)"
        return 1
    fi
}

# stop PID: SIGTERM, then SIGKILL after 15 s.
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_broker() {
    stop_pid "$broker_pid"
    stop_pid "$plugin_pid"
    broker_pid='' plugin_pid=''
}
trap 'stop_broker' EXIT

failures=0

# fail_line SCENARIO QOS BROKER VARIANT REP MESSAGE: a result line for a run that produced none.
fail_line() {
    local qos=$2
    [ -n "$qos" ] || qos=null
    printf '{"scenario":"%s","qos":%s,"broker":"%s","variant":"%s","rep":%s,"profile":"%s","ok":false,"error":"%s","metrics":{},"details":{}}\n' \
        "$1" "$qos" "$3" "$4" "$5" "$profile" "$6" >>"$lines"
}

# run_one SCENARIO BROKER VARIANT REP
run_one() {
    local scenario=$1 broker=$2 variant=$3 rep=$4 qos='' cmd args=()
    case $scenario in
        fan-in-qos[01])
            cmd=fan-in qos=${scenario##*qos}
            args=(--qos "$qos" --warmup "$WARMUP" --duration "$DURATION" --window "$FANIN_WINDOW")
            ;;
        fan-out-qos[01])
            cmd=fan-out qos=${scenario##*qos}
            args=(--qos "$qos" --warmup "$WARMUP" --duration "$DURATION" --window "$FANOUT_WINDOW")
            ;;
        latency-qos[01])
            cmd=latency qos=${scenario##*qos}
            args=(--qos "$qos" --rate "$LAT_RATE" --warmup 1 --duration "$LAT_DURATION")
            ;;
        connect-storm) cmd=connect-storm args=(--connections "$CONNECTIONS" --parallel 100) ;;
        connect-latency)
            cmd=connect-storm
            args=(--name connect-latency --connections "$LAT_CONNECTIONS" --parallel 1)
            ;;
        memory) cmd=memory args=(--connections "$CONNECTIONS" --parallel 100) ;;
        connections)
            cmd=connections qos=0
            args=(--connections "$SCALE_CONNECTIONS" --hold "$SCALE_HOLD" --keep-alive "$SCALE_KEEP_ALIVE" --parallel 100)
            ;;
        *) die "unknown scenario $scenario" ;;
    esac
    local label="$scenario on $broker${variant:+ [$variant]} ($profile, rep $rep)" name=$cmd
    [ "$scenario" != connect-latency ] || name=connect-latency
    if ! start_broker "$broker" "$variant"; then
        fail_line "$name" "$qos" "$broker" "$variant" "$rep" "the broker did not start"
        failures=$((failures + 1))
        stop_broker
        return
    fi
    if [ "$cmd" = memory ] || [ "$cmd" = connections ]; then args+=(--pid "$broker_pid"); fi
    if [ -n "$variant" ]; then args+=(--plugin-count-file "$plugin_count"); fi
    local before after status=0 summary
    before=$(wc -l <"$lines")
    taskset -c "$LOADGEN_CPU" "$loadgen" "$cmd" --addr "127.0.0.1:$port" --broker "$broker" \
        --variant "$variant" --rep "$rep" --profile "$profile" --out "$lines" "${args[@]}" \
        >>"$run_dir/logs/loadgen.log" 2>>"$run_dir/logs/loadgen.err" || status=$?
    after=$(wc -l <"$lines")
    if [ "$after" = "$before" ]; then
        fail_line "$name" "$qos" "$broker" "$variant" "$rep" "the load generator exited with status $status"
    fi
    summary=$(tail -1 "$lines" | sed -e 's/.*"metrics":{\([^}]*\)}.*/\1/')
    if [ "$status" != 0 ]; then
        # A peer losing messages at its own defaults is a finding, reported in the table, not a
        # failure of the bench: the promise under test is Midge's.
        if [ "$broker" = midge ] || [ "$profile" != defaults ]; then
            failures=$((failures + 1))
        fi
        log "  FAIL $label: $(tail -1 "$lines" | sed -n 's/.*"error":"\([^"]*\)".*/\1/p')"
    else
        log "  ok   $label: $summary"
    fi
    stop_broker
}

# --- the runs ---------------------------------------------------------------------------------
read -r -a broker_list <<<"$BROKERS"
nb=${#broker_list[@]}
profile=''
for rep in $(seq "$REPS"); do
    for profile in $profiles; do
        log "repetition $rep of $REPS, profile $profile"
        for scenario in $SCENARIOS; do
            if [ "$scenario" = plugins ]; then
                # Plugins are configuration: not part of anyone's defaults.
                [ "$profile" = tuned ] || continue
                # Midge only: fan-in with each plugin, and the connection storm with an auth
                # plugin.
                for variant in event-sink topic-check-cached topic-check-uncached; do
                    for q in 0 1; do run_one "fan-in-qos$q" midge "$variant" "$rep"; done
                done
                run_one connect-storm midge auth "$rep"
                run_one connect-latency midge auth "$rep"
                continue
            fi
            for i in $(seq 0 $((nb - 1))); do
                run_one "$scenario" "${broker_list[$(((i + rep - 1) % nb))]}" '' "$rep"
            done
        done
    done
done

# --- report -----------------------------------------------------------------------------------
report_status=0 report_flags=()
[ "$FLOORS" != enforce ] || report_flags+=(--enforce-floors)
"$loadgen" report --input "$lines" --json-out "$results/$stamp.json" --md-out "$results/$stamp.md" \
    --title "$title" "${report_flags[@]}" || report_status=$?
log "results: bench/results/$stamp.md, bench/results/$stamp.json (raw: bench/results/$stamp/)"
if [ "$failures" -gt 0 ] || [ "$report_status" != 0 ]; then
    if [ "$failures" -gt 0 ]; then
        log "$failures run(s) failed"
    else
        log "the report failed: a floor not met (FLOORS=$FLOORS), or see above"
    fi
    exit 1
fi
