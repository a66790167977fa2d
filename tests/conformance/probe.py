#!/usr/bin/env python3
"""Readiness probe for a Kafka wire-protocol broker, standard library only.

    probe.py HOST:PORT [--timeout SECONDS]

Polls (bounded) until the broker answers ApiVersions (v0) with no error and
Metadata (v4, all topics) with at least one broker and a controller id, and
exits 0; exits 1 with the last error when the deadline passes.
"""
import argparse
import socket
import struct
import sys
import time


def request(sock, api_key, version, corr, body):
    client_id = b"sluice-conformance-probe"
    hdr = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    msg = hdr + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", read_exact(sock, 4))[0]
    resp = read_exact(sock, size)
    (rcorr,) = struct.unpack(">i", resp[:4])
    if rcorr != corr:
        raise RuntimeError(f"correlation id {rcorr} != {corr}")
    return resp[4:]


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk
    return buf


def probe(host, port):
    with socket.create_connection((host, port), timeout=5) as s:
        s.settimeout(5)
        r = request(s, 18, 0, 1, b"")  # ApiVersions v0
        (err,) = struct.unpack(">h", r[:2])
        if err != 0:
            raise RuntimeError(f"ApiVersions error {err}")
        # Metadata v4: topics = null (all), allow_auto_topic_creation = false
        r = request(s, 3, 4, 2, struct.pack(">i?", -1, False))
        pos = 4  # throttle_time_ms
        (nbrokers,) = struct.unpack(">i", r[pos:pos + 4]); pos += 4
        for _ in range(nbrokers):
            pos += 4  # node id
            (hl,) = struct.unpack(">h", r[pos:pos + 2]); pos += 2 + hl
            pos += 4  # port
            (rl,) = struct.unpack(">h", r[pos:pos + 2]); pos += 2 + max(rl, 0)
        (cl,) = struct.unpack(">h", r[pos:pos + 2]); pos += 2 + max(cl, 0)
        (controller,) = struct.unpack(">i", r[pos:pos + 4])
        if nbrokers < 1 or controller < 0:
            raise RuntimeError(f"metadata: {nbrokers} brokers, controller {controller}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    host, port = a.bootstrap.rsplit(":", 1)
    deadline = time.monotonic() + a.timeout
    last = None
    while time.monotonic() < deadline:
        try:
            probe(host, int(port))
            return 0
        except Exception as e:  # noqa: BLE001 - any failure means not ready yet
            last = e
            time.sleep(0.25)  # poll interval, not synchronisation
    print(f"probe: {a.bootstrap} not ready after {a.timeout}s: {last}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
