#!/usr/bin/env python3
"""RSS of sluice broker with N idle connections: python3 idle_connections.py HOST:PORT N PID.
Each connection sends one ApiVersions request, reads the answer and stays open."""
import socket, struct, sys, time, subprocess, os
addr = sys.argv[1]; n = int(sys.argv[2]); pid = int(sys.argv[3])
host, port = addr.rsplit(':', 1)
def rss(pid):
    for l in open(f'/proc/{pid}/status'):
        if l.startswith('VmRSS:'): return int(l.split()[1])
before = rss(pid)
socks = []
# ApiVersions v0 request: api_key 18, version 0, correlation id, client id "idle"
body = struct.pack('>hhih', 18, 0, 1, 4) + b'idle'
frame = struct.pack('>i', len(body)) + body
for i in range(n):
    s = socket.create_connection((host, int(port)))
    s.sendall(frame)
    size = struct.unpack('>i', s.recv(4, socket.MSG_WAITALL))[0]
    s.recv(size, socket.MSG_WAITALL)
    socks.append(s)
after = rss(pid)
print(f'{{"connections":{n},"rss_before_kib":{before},"rss_after_kib":{after},"per_connection_kib":{(after-before)/n:.1f}}}')
