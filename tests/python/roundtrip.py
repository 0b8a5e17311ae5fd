"""Round trip through Midge with paho-mqtt over MQTT 3.1.1.

Usage: roundtrip.py HOST PORT TOPIC

Connects, subscribes to TOPIC at QoS 1, publishes one QoS 1 message to it once the SUBACK
arrives, and waits for that message to come back. Exits 0 and prints `received ...` on
success; exits 1 with the reason on stderr otherwise (including after a 10 s timeout).
"""

import sys
import threading

import paho.mqtt.client as mqtt

PAYLOAD = b"hello from paho"


def main() -> int:
    host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    done = threading.Event()
    outcome = {}

    def fail(reason):
        outcome["error"] = reason
        done.set()

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            fail(f"connection refused: {reason_code}")
            return
        client.subscribe(topic, qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        if any(rc.is_failure for rc in reason_codes):
            fail(f"subscription refused: {reason_codes}")
            return
        client.publish(topic, PAYLOAD, qos=1)

    def on_message(client, userdata, message):
        outcome["message"] = message
        done.set()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id="paho-roundtrip",
        protocol=mqtt.MQTTv311,
    )
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port, keepalive=30)
    client.loop_start()
    finished = done.wait(10)
    client.disconnect()
    client.loop_stop()

    if not finished:
        print("timed out after 10 s", file=sys.stderr)
        return 1
    if "error" in outcome:
        print(outcome["error"], file=sys.stderr)
        return 1
    message = outcome["message"]
    got = (message.topic, message.payload, message.qos, message.retain)
    if got != (topic, PAYLOAD, 1, False):
        print(f"unexpected message {got}", file=sys.stderr)
        return 1
    print(f"received {message.topic} {message.payload.decode()} qos={message.qos}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
