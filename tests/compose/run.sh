#!/usr/bin/env bash
# The compose fault test: builds the images (offline: scripts/docker-offline-base.sh and
# scripts/docker-offline-stage.sh, then docker-compose.yml + docker-compose.offline.yml), brings
# the whole system up, and checks it from the host over the ports published on 127.0.0.1:
#   1. a good password is allowed and a bad one refused (by the auth container);
#   2. a publish to an allowed topic is delivered, one to a forbidden topic dropped (acl);
#   3. the event logger and the Python plugin received those events (their logs);
#   4. `stop auth`: CONNECTs get the fallback (deny) within the timeout, the plugin is seen as
#      down, the broker keeps serving a connected client; `start auth`: the broker reconnects
#      by itself;
#   5. `pause auth` (hung, not dead): the same, each refusal within the timeout; `unpause`:
#      the breaker closes;
#   6. `stop events` / `pause python`: events published meanwhile reach them once they are back;
#   7. `restart midge`: both event plugins see the shutdown and start events.
# `docker compose down -v` always runs at the end. Without a working Docker this fails under
# CI=true and skips (loudly) otherwise. Needs the test clients of scripts/test-deps.sh.
#   MIDGE_COMPOSE_KEEP=1  leave the containers up on failure, for a look (down -v by hand)
set -euo pipefail

cd "$(dirname "$0")/../.."
repo="$PWD"
started=$SECONDS

say() { printf '\n=== compose test: %s\n' "$*"; }
die() { printf '\nFAIL compose test: %s\n' "$*" >&2; exit 1; }

# --- Docker or not ---------------------------------------------------------------------------
if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
    why="no usable Docker engine here ('docker info' fails or docker is not installed)"
    if [ "${CI:-}" = true ]; then
        die "$why; the compose test needs Docker and compose under CI=true"
    fi
    printf '\n%s\n!!! SKIPPED: tests/compose/run.sh: %s.\n!!! The docker compose deployment was NOT tested.\n%s\n\n' \
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' "$why" \
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2
    exit 0
fi
if docker compose version >/dev/null 2>&1; then
    compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose_cmd=(docker-compose)
else
    [ "${CI:-}" = true ] && die "Docker is here but neither 'docker compose' nor 'docker-compose'"
    echo "!!! SKIPPED: tests/compose/run.sh: no docker compose / docker-compose. NOT tested." >&2
    exit 0
fi

project="midge-compose-test-$$"
compose_args=(-p "$project" -f docker-compose.yml -f docker-compose.offline.yml)
compose() { "${compose_cmd[@]}" "${compose_args[@]}" "$@"; }

# Free host ports for the published ones (bound by docker on 127.0.0.1 right after).
read -r MIDGE_MQTT_PORT MIDGE_ADMIN_PORT MIDGE_METRICS_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
export MIDGE_MQTT_PORT MIDGE_ADMIN_PORT MIDGE_METRICS_PORT

tmp="$(mktemp -d)"
finish() {
    status=$?
    set +e
    for job in $(jobs -p); do kill "$job" 2>/dev/null; done # a waiting subscriber, on failure
    if [ "$status" -ne 0 ]; then
        echo "--- compose ps and the last log lines of each service (test failed) ---"
        compose ps
        compose logs --no-color --tail=40
        if [ "${MIDGE_COMPOSE_KEEP:-}" = 1 ]; then
            echo "MIDGE_COMPOSE_KEEP=1: left up; clean up with: ${compose_cmd[*]} ${compose_args[*]} down -v"
            exit "$status"
        fi
    fi
    compose down -v --remove-orphans >/dev/null 2>&1 || compose down -v
    rm -rf "$tmp"
    [ "$status" -eq 0 ] && echo "compose test: PASSED in $((SECONDS - started))s" \
        || echo "compose test: FAILED after $((SECONDS - started))s" >&2
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# --- Helpers -----------------------------------------------------------------------------------
scripts/test-deps.sh >/dev/null
python="$repo/.venv/bin/python"
grpcurl="$repo/.venv/bin/grpcurl"
mqtt() { "$python" tests/compose/mqtt_probe.py "$MIDGE_MQTT_PORT" "$@"; }

# Polls `$@` every 0.5 s until it succeeds, for at most $1 seconds; $2 says what is awaited.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "$what: not within ${limit}s"
        sleep 0.5
    done
}

metrics() { curl -sf "http://127.0.0.1:$MIDGE_METRICS_PORT/metrics"; }
# True when the broker's metric says plugin $1 is in state $2 (connected, reconnecting, breaker_open).
plugin_state() { metrics | grep -qx "midge_plugin_state{plugin=\"$1\",state=\"$2\"} 1"; }
# True when plugin $1 is not connected (reconnecting or breaker open).
plugin_down() { plugin_state "$1" reconnecting || plugin_state "$1" breaker_open; }
logs_of() { compose logs --no-color "$1" 2>/dev/null; }
# True when service $1's logs contain every string after it.
logs_contain() {
    local service=$1 logs
    shift
    logs="$(logs_of "$service")"
    for needle in "$@"; do grep -qF -- "$needle" <<<"$logs" || return 1; done
}
# True when service $1 logged a message event with each payload after it: the event logger
# writes UTF-8 payloads as text, the Python plugin writes every payload in base64.
logged_payloads() {
    local service=$1 payload
    shift
    for payload in "$@"; do
        if [ "$service" = python ]; then payload="$(printf '%s' "$payload" | base64 -w0)"; fi
        logs_contain "$service" "\"$payload\"" || return 1
    done
}
# How many events of kind $2 service $1 has logged (JSON lines from both loggers).
count_kind() { logs_of "$1" | grep -cE "\"kind\": ?\"$2\"" || true; }
# True when service $1 has logged at least $3 events of kind $2.
kind_count_at_least() { [ "$(count_kind "$1" "$2")" -ge "$3" ]; }

# Waits until every container of the project is running and healthy; prints the time taken.
wait_healthy() {
    local limit=$1 deadline=$((SECONDS + $1)) ids states
    while :; do
        ids="$(compose ps -q)"
        states="$(docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' $ids)"
        if [ -n "$ids" ] && ! grep -qv ' running healthy$' <<<"$states"; then return 0; fi
        [ "$SECONDS" -lt "$deadline" ] || { echo "$states"; die "not every service healthy within ${limit}s"; }
        sleep 0.5
    done
}

# --- Build -------------------------------------------------------------------------------------
say "base images (cached) and host-built binaries"
scripts/docker-offline-base.sh
scripts/docker-offline-stage.sh
say "building the images"
t0=$SECONDS
compose build >"$tmp/build.log" 2>&1 || { tail -n 60 "$tmp/build.log"; die "docker build failed"; }
echo "images built in $((SECONDS - t0))s:"
for image in midge/broker midge/plugins midge/python-plugin; do
    printf '  %-22s %s\n' "$image" "$(docker image inspect -f '{{.Size}}' "$image:latest" | numfmt --to=iec --suffix=B)"
done

# --- Up ------------------------------------------------------------------------------------------
say "up (project $project; MQTT 127.0.0.1:$MIDGE_MQTT_PORT, admin :$MIDGE_ADMIN_PORT, metrics :$MIDGE_METRICS_PORT)"
t0=$(date +%s.%N)
# docker-compose v1 has no --wait, but waits for the depends_on health conditions.
wait_flag=()
[ "${compose_cmd[*]}" = "docker compose" ] && wait_flag=(--wait)
timeout 300 "${compose_cmd[@]}" "${compose_args[@]}" up -d "${wait_flag[@]}" || die "up failed or took over 300s"
wait_healthy 120
echo "every service healthy $(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')")s after up"
compose ps

# --- 1-3: the system works ---------------------------------------------------------------------
say "authentication by the auth container"
mqtt connect alice alice-secret allowed --max 5
mqtt connect alice wrong-password refused --max 5
mqtt connect mallory whatever refused --max 5

say "topic ACL by the acl container"
run_id="run-$$-$RANDOM"
mqtt pubsub "$run_id"

say "the event logger and the Python plugin received the events"
for service in events python; do
    wait_for 20 "$service logs show alice's connection" logs_contain "$service" '"client_connected"'
    wait_for 20 "$service logs show alice's message" logged_payloads "$service" "$run_id allowed"
done
echo "events and python both logged client_connected and message_received \"$run_id allowed\""

# --- 4: auth stopped -----------------------------------------------------------------------------
say "stop auth: fallback deny within the 1s timeout, broker keeps serving"
ready="$tmp/ready"
mqtt subscribe admin admin-secret 'alerts/#' "$run_id during outage" "$ready" --timeout 60 &
holder=$!
wait_for 10 "subscriber ready" test -e "$ready"
compose stop auth
for _ in 1 2 3; do mqtt connect alice alice-secret refused --max 2; done
wait_for 10 "passwords seen as down" plugin_down passwords
echo "metrics: $(metrics | grep '^midge_plugin_state{plugin="passwords"' | grep ' 1$')"
"$grpcurl" -plaintext -d "{\"topic\":\"alerts/outage\",\"payload\":\"$(printf '%s during outage' "$run_id" | base64 -w0)\"}" \
    "127.0.0.1:$MIDGE_ADMIN_PORT" midge.admin.v1.BrokerAdmin/Publish >/dev/null
wait "$holder" || die "the client connected before the outage did not get the message published during it"
"$grpcurl" -plaintext "127.0.0.1:$MIDGE_ADMIN_PORT" grpc.health.v1.Health/Check | grep -q SERVING \
    || die "broker not SERVING while auth is down"
echo "broker still SERVING; connected client got a message published during the outage"

say "start auth: the broker reconnects by itself"
compose start auth
wait_for 60 "good password allowed again" mqtt connect alice alice-secret allowed
wait_for 10 "passwords connected" plugin_state passwords connected
mqtt connect alice alice-secret allowed --max 5
mqtt connect alice wrong-password refused --max 5

# --- 5: auth paused ------------------------------------------------------------------------------
say "pause auth (hung): each CONNECT gets the fallback within the timeout, breaker opens"
compose pause auth
for _ in 1 2 3; do mqtt connect alice alice-secret refused --max 2.5; done
wait_for 10 "breaker open for passwords" plugin_state passwords breaker_open
echo "metrics: midge_plugin_state{plugin=\"passwords\",state=\"breaker_open\"} 1"
mqtt connect alice alice-secret refused --max 0.5
opened="$(metrics | grep '^midge_plugin_breaker_opened_total{plugin="passwords"}' || true)"
echo "metrics: ${opened:-midge_plugin_breaker_opened_total missing}"

say "unpause auth: the breaker closes"
compose unpause auth
wait_for 60 "good password allowed again" mqtt connect alice alice-secret allowed
wait_for 10 "passwords connected (breaker closed)" plugin_state passwords connected
mqtt connect alice wrong-password refused --max 5
echo "metrics: midge_plugin_state{plugin=\"passwords\",state=\"connected\"} 1"

# --- 6: event plugins down, then back ------------------------------------------------------------
say "stop events, pause python: events emitted meanwhile arrive once they are back"
compose stop events
compose pause python
missed=("$run_id missed-1" "$run_id missed-2" "$run_id missed-3")
mqtt publish alice alice-secret sensors/2/temp "${missed[@]}"
compose start events
compose unpause python
wait_for 60 "events logs show the messages published while it was stopped" logged_payloads events "${missed[@]}"
wait_for 60 "python logs show the messages published while it was paused" logged_payloads python "${missed[@]}"
wait_for 10 "events connected" plugin_state events connected
echo "both event plugins logged all ${#missed[@]} messages published while they were down"

# --- 7: broker restart -------------------------------------------------------------------------
say "restart midge: the plugins see shutdown and start events"
declare -A before
for service in events python; do
    for kind in broker_pre_shutdown broker_post_shutdown broker_pre_start broker_post_start; do
        before[$service.$kind]=$(count_kind "$service" "$kind")
    done
done
t0=$SECONDS
compose restart midge
wait_healthy 120
echo "midge healthy again $((SECONDS - t0))s after restart"
for service in events python; do
    for kind in broker_pre_shutdown broker_post_shutdown broker_pre_start broker_post_start; do
        want=$((before[$service.$kind] + 1))
        wait_for 30 "$service sees $kind after the restart" kind_count_at_least "$service" "$kind" "$want"
    done
done
echo "events and python each saw broker_pre_shutdown, broker_post_shutdown, broker_pre_start, broker_post_start"
mqtt connect alice alice-secret allowed --max 5
mqtt pubsub "$run_id-after-restart"
