"""A Midge plugin in Python, written from proto/midge/plugin/v1/*.proto alone (no SDK).

It serves:
  * midge.plugin.v1.Plugin/Describe: reads its config (`allow-users`), asks for every event
    kind but the packet kinds;
  * midge.plugin.v1.EventSink/Stream: writes each event as one JSON line (to --out FILE, or
    stdout), drops duplicates by sequence number per stream_id, acks cumulatively per batch;
  * midge.plugin.v1.Authenticator/Authenticate: ALLOW for the users in `allow-users`, IGNORE
    for everyone else;
  * grpc.health.v1.Health and server reflection.

Run it with run.sh (which runs setup.sh first if needed); see README.md.
"""

import argparse
import json
import os
import signal
import sys
import threading
from concurrent import futures

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection  # noqa: E402

from midge.plugin.v1 import auth_pb2, auth_pb2_grpc  # noqa: E402
from midge.plugin.v1 import common_pb2  # noqa: E402
from midge.plugin.v1 import events_pb2, events_pb2_grpc  # noqa: E402
from midge.plugin.v1 import plugin_pb2, plugin_pb2_grpc  # noqa: E402

NAME = "python-event-logger"
VERSION = "0.1.0"
DEFAULT_PORT = 50066
CONFIG_KEYS = {"allow-users"}

# Every kind except the high-volume packet kinds (events.proto: EventKind 1..12).
WANTED_EVENTS = [
    kind.number
    for kind in events_pb2.EventKind.DESCRIPTOR.values
    if kind.number != 0 and not kind.name.startswith("EVENT_KIND_PACKET_")
]

SERVICES = [
    plugin_pb2.DESCRIPTOR.services_by_name["Plugin"].full_name,
    events_pb2.DESCRIPTOR.services_by_name["EventSink"].full_name,
    auth_pb2.DESCRIPTOR.services_by_name["Authenticator"].full_name,
]

LOG_JSON = False


def log(level, message, **fields):
    """One diagnostic line on stderr: text, or JSON shaped like the Rust plugins' logs."""
    if LOG_JSON:
        line = json.dumps({"level": level, "fields": {"message": message, **fields}})
    else:
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{level} {message} {extra}".rstrip()
    print(line, file=sys.stderr, flush=True)


def kind_name(body_field):
    """The event kind's snake_case name, as the Rust loggers write it (events.proto EventKind)."""
    if body_field in ("pre_start", "post_start", "pre_shutdown", "post_shutdown"):
        return "broker_" + body_field
    return body_field


class EventWriter:
    """Appends events as JSON lines; remembers the last sequence handled per stream_id."""

    def __init__(self, out):
        self._out = open(out, "a", encoding="utf-8") if out else sys.stdout
        self._lock = threading.Lock()
        self._last = {}

    def handle(self, stream_id, event):
        """Writes `event` unless it was handled before. Returns the stream's cumulative ack."""
        with self._lock:
            last = self._last.get(stream_id, 0)
            if event.sequence <= last:
                return last  # a replay after a reconnect: already written
            body = event.WhichOneof("body")
            line = {"stream_id": stream_id, "seq": event.sequence, "kind": kind_name(body)}
            if event.HasField("time"):
                line["time"] = event.time.ToJsonString()
            if body:
                line.update(
                    json_format.MessageToDict(
                        getattr(event, body), preserving_proto_field_name=True
                    )
                )
            self._out.write(json.dumps(line, sort_keys=True) + "\n")
            self._out.flush()
            self._last[stream_id] = event.sequence
            return event.sequence

    def last(self, stream_id):
        with self._lock:
            return self._last.get(stream_id, 0)


class Plugin(
    plugin_pb2_grpc.PluginServicer,
    events_pb2_grpc.EventSinkServicer,
    auth_pb2_grpc.AuthenticatorServicer,
):
    def __init__(self, writer, allow_users):
        self._writer = writer
        self._base_users = frozenset(allow_users)
        self._allow_users = self._base_users

    # --- midge.plugin.v1.Plugin ---------------------------------------------------------------
    def Describe(self, request, context):
        config = json_format.MessageToDict(request.config) if request.HasField("config") else {}
        unknown = set(config) - CONFIG_KEYS
        if unknown:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown config keys {sorted(unknown)}; known: {sorted(CONFIG_KEYS)}",
            )
        users = config.get("allow-users")
        if users is None:
            self._allow_users = self._base_users
        elif isinstance(users, list) and all(isinstance(u, str) for u in users):
            self._allow_users = frozenset(users)
        else:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "allow-users must be a list of names")
        log("INFO", "described to broker", alias=request.alias,
            allow_users=sorted(self._allow_users))
        return plugin_pb2.DescribeResponse(
            name=NAME, version=VERSION, events=WANTED_EVENTS, services=SERVICES
        )

    # --- midge.plugin.v1.EventSink --------------------------------------------------------------
    def Stream(self, request_iterator, context):
        for batch in request_iterator:
            ack = self._writer.last(batch.stream_id)
            for event in batch.events:
                ack = self._writer.handle(batch.stream_id, event)
            if ack:
                yield events_pb2.StreamReply(ack=ack)

    # --- midge.plugin.v1.Authenticator ----------------------------------------------------------
    def Authenticate(self, request, context):
        if request.HasField("username") and request.username in self._allow_users:
            return auth_pb2.AuthenticateResponse(verdict=common_pb2.VERDICT_ALLOW)
        return auth_pb2.AuthenticateResponse(verdict=common_pb2.VERDICT_IGNORE)


def health_check(target):
    """grpc.health.v1 Check of `target`; exit code 0 when SERVING."""
    target = target.split("://", 1)[-1]
    try:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=3
            )
    except grpc.RpcError as e:
        print(f"{target}: {e.code().name}", file=sys.stderr)
        return 1
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{target}: {name}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def main():
    global LOG_JSON
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default=f"0.0.0.0:{DEFAULT_PORT}",
                        help="address to serve on (port 0 picks one); default %(default)s")
    parser.add_argument("--out", help="append events as JSON lines to this file (default stdout)")
    parser.add_argument("--allow-user", action="append", default=[], metavar="NAME",
                        help="a user to ALLOW until the broker sends `allow-users` (repeatable)")
    parser.add_argument("--health-check", metavar="ADDR",
                        help="probe the plugin at ADDR, exit 0 if SERVING, 1 otherwise")
    parser.add_argument("--log-format", choices=["text", "json"], default="text")
    args = parser.parse_args()
    LOG_JSON = args.log_format == "json"
    if args.health_check:
        return health_check(args.health_check)

    plugin = Plugin(EventWriter(args.out), args.allow_user)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    plugin_pb2_grpc.add_PluginServicer_to_server(plugin, server)
    events_pb2_grpc.add_EventSinkServicer_to_server(plugin, server)
    auth_pb2_grpc.add_AuthenticatorServicer_to_server(plugin, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ["", *SERVICES]:
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    host = args.listen.rpartition(":")[0]
    bound = server.add_insecure_port(args.listen)
    if bound == 0:
        log("ERROR", "cannot listen", addr=args.listen)
        return 1
    server.start()
    log("INFO", "plugin listening", addr=f"{host}:{bound}", plugin=NAME)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    while not stop.wait(0.5):
        pass
    log("INFO", "shutting down")
    health_servicer.enter_graceful_shutdown()
    server.stop(grace=5).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
