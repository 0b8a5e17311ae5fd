# shellcheck shell=bash
# The plugin variants of a fan-in run, shared by bench/profile.sh and bench/perf.sh: the
# broker's config for each and its stand-in plugin. Source it after setting $loadgen.
#
#   none                 no plugin
#   event-sink           a plugin receiving every message_received event
#   topic-check-cached   a topic check allowing everything, cached for a minute

# variant_config FILE PORT PLUGIN_PORT VARIANT: writes the broker's config for VARIANT.
variant_config() {
    local file=$1 port=$2 pport=$3 variant=$4
    cat >"$file" <<YAML
listeners:
  - name: bench
    kind: tcp
    bind: 127.0.0.1:$port
    max-connections: 0
limits:
  max-inflight: 100
  max-queued-messages: 100000
sys-interval: 0s
auth:
  allow-anonymous: true
YAML
    case $variant in
        none) ;;
        event-sink)
            printf 'plugins:\n  p:\n    endpoint: http://127.0.0.1:%s\n    events: [message_received]\n    mandatory: true\n' \
                "$pport" >>"$file"
            ;;
        topic-check-cached)
            printf 'topic-check:\n  enable: true\n  plugins: [p]\nplugins:\n  p:\n    endpoint: http://127.0.0.1:%s\n    mandatory: true\n' \
                "$pport" >>"$file"
            ;;
        *) echo "unknown variant $variant" >&2; exit 2 ;;
    esac
}

# start_variant_plugin VARIANT PLUGIN_PORT LOG [CPU]: starts VARIANT's stand-in plugin (pinned
# to CPU if given) and sets plugin_pid to its pid, or to '' for `none`.
start_variant_plugin() {
    local variant=$1 pport=$2 log=$3 cpu=${4:-} pin=()
    [ -z "$cpu" ] || pin=(taskset -c "$cpu")
    plugin_pid=''
    case $variant in
        none) return ;;
        event-sink)
            "${pin[@]}" "$loadgen" plugin event-sink --listen "127.0.0.1:$pport" >"$log" 2>&1 &
            ;;
        topic-check-cached)
            "${pin[@]}" "$loadgen" plugin topic-check --cache-ms 60000 \
                --listen "127.0.0.1:$pport" >"$log" 2>&1 &
            ;;
        *) echo "unknown variant $variant" >&2; exit 2 ;;
    esac
    plugin_pid=$!
}
