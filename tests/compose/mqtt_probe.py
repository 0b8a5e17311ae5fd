"""MQTT steps of the compose fault test (tests/compose/run.sh), with paho-mqtt over MQTT 3.1.1.

Usage: mqtt_probe.py PORT COMMAND ARGS...   (the broker is always 127.0.0.1:PORT)

  connect USER PASSWORD allowed|refused [--max S] [--min S]
      Connects with a fresh client id (so no cached verdict applies) and checks the CONNACK:
      accepted or refused, and that it came within --max seconds (and after --min).
  publish USER PASSWORD TOPIC PAYLOAD...
      Publishes each PAYLOAD at QoS 1 and waits for every PUBACK.
  pubsub MARKER
      admin subscribes to sensors/#; alice publishes `MARKER forbidden` to sensors/1/pressure
      (outside her publish ACL), then `MARKER allowed` to sensors/1/temp. Passes when the
      allowed message arrives and the forbidden one did not come before it (the broker keeps
      each client's order, so it was dropped).
  subscribe USER PASSWORD FILTER PAYLOAD READY_FILE [--timeout S]
      Subscribes, creates READY_FILE once the SUBACK arrived, then waits for PAYLOAD.

Each command prints one line saying what happened and exits 0 when it is what was expected,
1 otherwise. Every wait is bounded (10 s unless said otherwise).
"""

import argparse
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt

HOST = "127.0.0.1"
WAIT = 10.0


class Client:
    """A paho client on its own network thread, with the callbacks turned into waits."""

    def __init__(self, port, user, password, prefix):
        self.connack = threading.Event()
        self.reason = None
        self.subscribed = threading.Event()
        self.messages = []
        self.message_arrived = threading.Condition()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"{prefix}-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
        )
        self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = self._on_message
        self.started = time.monotonic()
        self.client.connect(HOST, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if self.reason is None:
            self.reason = reason_code
            self.elapsed = time.monotonic() - self.started
            self.connack.set()

    def _on_message(self, client, userdata, message):
        with self.message_arrived:
            self.messages.append(message.payload.decode(errors="replace"))
            self.message_arrived.notify_all()

    def wait_connected(self):
        if not self.connack.wait(WAIT):
            raise SystemExit(fail(f"no CONNACK within {WAIT}s"))
        if self.reason.is_failure:
            raise SystemExit(fail(f"connection refused: {self.reason}"))

    def wait_message(self, payload, timeout):
        deadline = time.monotonic() + timeout
        with self.message_arrived:
            while payload not in self.messages:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.message_arrived.wait(left)
        return True

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def fail(message):
    print(f"FAIL: {message}")
    return 1


def cmd_connect(args):
    c = Client(args.port, args.user, args.password, "compose-connect")
    try:
        if not c.connack.wait(WAIT):
            return fail(f"connect {args.user}: no CONNACK within {WAIT}s")
        outcome = "refused" if c.reason.is_failure else "allowed"
        line = f"connect {args.user}: {outcome} ({c.reason}) in {c.elapsed:.2f}s"
        if outcome != args.expect:
            return fail(f"{line}, expected {args.expect}")
        if args.max is not None and c.elapsed > args.max:
            return fail(f"{line}, expected within {args.max}s")
        if args.min is not None and c.elapsed < args.min:
            return fail(f"{line}, expected after at least {args.min}s")
        print(line)
        return 0
    finally:
        c.close()


def cmd_publish(args):
    c = Client(args.port, args.user, args.password, "compose-pub")
    try:
        c.wait_connected()
        for payload in args.payloads:
            info = c.client.publish(args.topic, payload, qos=1)
            info.wait_for_publish(WAIT)
            if not info.is_published():
                return fail(f"publish {args.topic} {payload!r}: no PUBACK within {WAIT}s")
        print(f"published {len(args.payloads)} message(s) to {args.topic} as {args.user}")
        return 0
    finally:
        c.close()


def cmd_pubsub(args):
    sub = Client(args.port, "admin", "admin-secret", "compose-sub")
    pub = Client(args.port, "alice", "alice-secret", "compose-pub")
    try:
        sub.wait_connected()
        pub.wait_connected()
        sub.client.subscribe("sensors/#", qos=1)
        if not sub.subscribed.wait(WAIT):
            return fail(f"no SUBACK within {WAIT}s")
        forbidden, allowed = f"{args.marker} forbidden", f"{args.marker} allowed"
        pub.client.publish("sensors/1/pressure", forbidden, qos=1).wait_for_publish(WAIT)
        pub.client.publish("sensors/1/temp", allowed, qos=1).wait_for_publish(WAIT)
        if not sub.wait_message(allowed, WAIT):
            return fail(f"alice's allowed publish to sensors/1/temp not delivered within {WAIT}s")
        if forbidden in sub.messages:
            return fail("alice's publish to sensors/1/pressure was delivered (ACL should drop it)")
        print("pubsub: sensors/1/temp delivered, sensors/1/pressure dropped (publish ACL)")
        return 0
    finally:
        sub.close()
        pub.close()


def cmd_subscribe(args):
    c = Client(args.port, args.user, args.password, "compose-hold")
    try:
        c.wait_connected()
        c.client.subscribe(args.filter, qos=1)
        if not c.subscribed.wait(WAIT):
            return fail(f"no SUBACK within {WAIT}s")
        open(args.ready_file, "w").close()
        if not c.wait_message(args.payload, args.timeout):
            return fail(f"{args.payload!r} not received on {args.filter} within {args.timeout}s")
        print(f"subscriber {args.user}: received {args.payload!r} on {args.filter}")
        return 0
    finally:
        c.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("connect")
    p.add_argument("user")
    p.add_argument("password")
    p.add_argument("expect", choices=["allowed", "refused"])
    p.add_argument("--max", type=float)
    p.add_argument("--min", type=float)
    p.set_defaults(run=cmd_connect)

    p = commands.add_parser("publish")
    p.add_argument("user")
    p.add_argument("password")
    p.add_argument("topic")
    p.add_argument("payloads", nargs="+")
    p.set_defaults(run=cmd_publish)

    p = commands.add_parser("pubsub")
    p.add_argument("marker")
    p.set_defaults(run=cmd_pubsub)

    p = commands.add_parser("subscribe")
    p.add_argument("user")
    p.add_argument("password")
    p.add_argument("filter")
    p.add_argument("payload")
    p.add_argument("ready_file")
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(run=cmd_subscribe)

    args = parser.parse_args()
    try:
        return args.run(args)
    except (OSError, mqtt.WebsocketConnectionError) as e:
        return fail(f"{args.command}: {e}")


if __name__ == "__main__":
    sys.exit(main())
