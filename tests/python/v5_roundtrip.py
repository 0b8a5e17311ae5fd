"""Round trip through Midge with paho-mqtt over MQTT 5.0, with message properties.

Usage: v5_roundtrip.py HOST PORT TOPIC

Connects with protocol MQTTv5, subscribes to TOPIC at QoS 1 with Subscription Identifier 42,
publishes one QoS 1 message to it with user properties, content type, response topic and
correlation data once the SUBACK arrives, and waits for it to come back. Prints the received
message as one JSON line and exits 0; exits 1 with the reason on stderr otherwise (including
after a 10 s timeout).
"""

import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PAYLOAD = b"hello from paho v5"
USER_PROPERTIES = [("b", "2"), ("a", "1"), ("b", "3")]


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
        sub_props = Properties(PacketTypes.SUBSCRIBE)
        sub_props.SubscriptionIdentifier = 42
        client.subscribe(topic, qos=1, properties=sub_props)

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        if any(rc.is_failure for rc in reason_codes):
            fail(f"subscription refused: {reason_codes}")
            return
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = USER_PROPERTIES
        props.ContentType = "text/plain"
        props.ResponseTopic = topic + "/reply"
        props.CorrelationData = b"\x01\x02"
        props.PayloadFormatIndicator = 1
        client.publish(topic, PAYLOAD, qos=1, properties=props)

    def on_message(client, userdata, message):
        outcome["message"] = message
        done.set()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id="paho-v5-roundtrip",
        protocol=mqtt.MQTTv5,
    )
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port, keepalive=30, clean_start=True)
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
    props = message.properties
    print(
        json.dumps(
            {
                "topic": message.topic,
                "payload": message.payload.decode(),
                "qos": message.qos,
                "retain": bool(message.retain),
                "user_properties": [list(p) for p in getattr(props, "UserProperty", [])],
                "content_type": getattr(props, "ContentType", None),
                "response_topic": getattr(props, "ResponseTopic", None),
                "correlation_data": getattr(props, "CorrelationData", b"").hex(),
                "payload_format": getattr(props, "PayloadFormatIndicator", None),
                "subscription_ids": getattr(props, "SubscriptionIdentifier", []),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
