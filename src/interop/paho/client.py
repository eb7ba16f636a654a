#!/usr/bin/python3
"""A small driver around an unmodified paho-mqtt 1.6 client, for Skein's interop tests.

Usage: /usr/bin/python3 -u client.py '<json spec>'

Spec keys: host, port, version (3 = MQTT 3.1, 4 = 3.1.1, 5 = 5.0), clientId, clean (bool),
sessionExpiry (v5, seconds or null), will ({topic, payload, qos, retain} or null),
subscribe ([[topic, qos], ...]), publish ([{topic, payload, qos, retain}, ...]),
expect (number of messages to receive before exiting), hold (stay connected until killed),
timeout (seconds, hard bound).

Prints one JSON object per line on stdout: connected, subscribed, published, message, done, error.
Exit code 0 on success, 2 on timeout, 3 on a refused connection.
"""
import json
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

spec = json.loads(sys.argv[1])
version = spec.get("version", 4)
protocol = {3: mqtt.MQTTv31, 4: mqtt.MQTTv311, 5: mqtt.MQTTv5}[version]
deadline = time.monotonic() + spec.get("timeout", 10)


def emit(event, **kw):
    kw["event"] = event
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


state = {"connected": None, "subscribed": False, "published": 0, "messages": 0}

if version == 5:
    client = mqtt.Client(client_id=spec["clientId"], protocol=protocol)
else:
    client = mqtt.Client(client_id=spec["clientId"], clean_session=spec.get("clean", True), protocol=protocol)


def on_connect(c, userdata, flags, rc, properties=None):
    code = rc.value if hasattr(rc, "value") else rc
    state["connected"] = code
    emit("connected", rc=code, sessionPresent=bool(flags.get("session present")))


def on_subscribe(c, userdata, mid, granted, properties=None):
    state["subscribed"] = True
    emit("subscribed", granted=[g.value if hasattr(g, "value") else g for g in granted])


def on_publish(c, userdata, mid):
    state["published"] += 1
    emit("published", mid=mid)


def on_message(c, userdata, msg):
    state["messages"] += 1
    emit("message", topic=msg.topic, payload=msg.payload.decode("utf-8"), qos=msg.qos, retain=bool(msg.retain), dup=bool(msg.dup))


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_publish = on_publish
client.on_message = on_message

will = spec.get("will")
if will:
    client.will_set(will["topic"], will.get("payload", ""), will.get("qos", 0), will.get("retain", False))


def loop_until(cond):
    while not cond():
        if time.monotonic() > deadline:
            emit("error", message="timeout", state=state)
            sys.exit(2)
        client.loop(0.05)


if version == 5:
    props = None
    if spec.get("sessionExpiry") is not None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = spec["sessionExpiry"]
    client.connect(spec["host"], spec["port"], 30, clean_start=spec.get("clean", True), properties=props)
else:
    client.connect(spec["host"], spec["port"], 30)

loop_until(lambda: state["connected"] is not None)
if state["connected"] != 0:
    emit("error", message="connection refused", rc=state["connected"])
    sys.exit(3)

subs = spec.get("subscribe") or []
if subs:
    client.subscribe([(t, q) for t, q in subs])
    loop_until(lambda: state["subscribed"])

pubs = spec.get("publish") or []
for p in pubs:
    client.publish(p["topic"], p.get("payload", ""), p.get("qos", 0), p.get("retain", False))
loop_until(lambda: state["published"] >= len(pubs))

expect = spec.get("expect", 0)
loop_until(lambda: state["messages"] >= expect)

if spec.get("hold"):
    emit("holding")
    loop_until(lambda: False)  # until killed (or the timeout, exit 2)

client.disconnect()
# Let the DISCONNECT go out.
for _ in range(5):
    client.loop(0.02)
emit("done", messages=state["messages"])
sys.exit(0)
