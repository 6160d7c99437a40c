#!/usr/bin/env python3
"""Stands in for systemd's notification socket: binds an AF_UNIX datagram socket at PATH and
appends each message a service sends (sd_notify(3)) to LOG as one line, "SECONDS STATE|STATE",
SECONDS on the monotonic clock, until it is killed. Usage: notify-listen.py PATH LOG"""
import os
import socket
import sys
import time

path, log = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o600)
with open(log, "a", buffering=1) as out:
    while True:
        data = sock.recv(4096)
        text = data.decode("utf-8", "replace").strip("\n").replace("\n", "|")
        out.write("%.3f %s\n" % (time.monotonic(), text))
