"""Leaves Midge without DISCONNECT so the broker publishes this client's will.

Usage: will.py HOST PORT WILL_TOPIC

Connects with paho-mqtt over MQTT 3.1.1 with a QoS 1 will (`paho-gone` on WILL_TOPIC), and as
soon as the connection is accepted exits the process without a DISCONNECT, so the socket just
closes. Exits 0 after an accepted CONNECT; 1 if it is refused or does not happen within 10 s.
"""

import os
import sys
import threading

import paho.mqtt.client as mqtt


def main() -> int:
    host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    accepted = threading.Event()
    refused = []

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            refused.append(str(reason_code))
        accepted.set()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id="paho-will",
        protocol=mqtt.MQTTv311,
    )
    client.will_set(topic, b"paho-gone", qos=1, retain=False)
    client.on_connect = on_connect
    client.connect(host, port, keepalive=30)
    client.loop_start()
    if not accepted.wait(10):
        print("no CONNACK within 10 s", file=sys.stderr)
        return 1
    if refused:
        print(f"connection refused: {refused[0]}", file=sys.stderr)
        return 1
    print("connected; exiting without DISCONNECT", flush=True)
    os._exit(0)  # No DISCONNECT, no clean shutdown of the network loop.


if __name__ == "__main__":
    sys.exit(main())
