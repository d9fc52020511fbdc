#!/usr/bin/python3
# The Pi-style alternative the benchmarks measure against: a paho-mqtt subscriber (Debian's
# python3-paho-mqtt, as Raspberry Pi OS ships it) writing every message to SQLite in WAL mode,
# one transaction per 100 ms or 1,000 rows, synchronous=NORMAL (no sync per commit: not durable). Usage: pi-pipeline.py PORT DB_PATH
import sqlite3
import sys
import threading
import time

import paho.mqtt.client as mqtt

port, path = int(sys.argv[1]), sys.argv[2]
db = sqlite3.connect(path, check_same_thread=False)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")  # the usual pairing with WAL: not durable, fewer syncs
db.execute("CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY, topic TEXT, received_at REAL, payload TEXT)")
db.commit()
rows = []
lock = threading.Lock()
stored = 0


def on_connect(client, userdata, flags, rc, *rest):
    client.subscribe("#", qos=1)
    print("ready", flush=True)


def on_message(client, userdata, msg):
    with lock:
        rows.append((msg.topic, time.time(), msg.payload.decode("utf-8", "replace")))


def writer():
    global stored
    while True:
        time.sleep(0.1)
        with lock:
            batch = rows[:1000]
            del rows[:1000]
        if batch:
            db.executemany("INSERT INTO readings (topic, received_at, payload) VALUES (?, ?, ?)", batch)
            db.commit()
            stored += len(batch)
            print(f"stored {stored}", flush=True)


threading.Thread(target=writer, daemon=True).start()
client = mqtt.Client(client_id="pi-pipeline", clean_session=True)
client.on_connect = on_connect
client.on_message = on_message
client.connect("127.0.0.1", port)
client.loop_forever()
