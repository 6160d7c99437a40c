#!/usr/bin/env python3
"""A libvirt socket that can hang: listens on LISTEN (a UNIX stream socket) and relays every
connection to TARGET (libvirtd's socket), byte for byte, both ways. SIGUSR1 stalls it: bytes
stop moving (held, not dropped), so a client's next call blocks as on a hung libvirtd, while
the real libvirtd and everyone else's connections to it carry on; SIGUSR2 lets them move again.
Usage: stall-proxy.py LISTEN TARGET"""
import os
import signal
import socket
import sys
import threading

listen_path, target_path = sys.argv[1], sys.argv[2]
flowing = threading.Event()
flowing.set()
signal.signal(signal.SIGUSR1, lambda *_: flowing.clear())
signal.signal(signal.SIGUSR2, lambda *_: flowing.set())


def relay(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            flowing.wait()
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(listen_path)
os.chmod(listen_path, 0o666)
server.listen(16)
while True:
    try:
        client, _ = server.accept()
    except InterruptedError:
        continue
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(target_path)
    except OSError:
        client.close()
        continue
    for a, b in ((client, upstream), (upstream, client)):
        threading.Thread(target=relay, args=(a, b), daemon=True).start()
