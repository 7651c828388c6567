#!/usr/bin/env python3
"""The testbed's web server (runs in the mt-web namespace). Python 3.11 stdlib only.

GET /bytes/N            N deterministic pseudo-random bytes (fixed seed, streamed in 64 KiB
                        chunks, Content-Length set): payload_sha256(N) is known in advance.
GET /slow/N?rate=B      the same bytes, paced at B bytes per second (default 1 MiB/s).
GET /whoami             the peer's IP address (text).
GET /connections        JSON: {"count": n, "connections": [{"id", "peer", "port", "paths",
                        "opened", "closed", "bytes_sent"}]} for every TCP connection accepted.
GET /healthz            "ok".
Any query string (e.g. ?tag=run1) is ignored by the handlers but recorded in "paths", so a test
can find the connections its own request arrived on.
"""
import argparse
import hashlib
import json
import random
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SEED = 20260101
CHUNK = 64 * 1024
_BLOCK = random.Random(SEED).randbytes(1 << 20)
_DOUBLE = _BLOCK + _BLOCK
# The largest body served: 4 GiB.
MAX_BYTES = 4 << 30


def payload_chunks(n, chunk=CHUNK):
    """Yields the N payload bytes in chunks. Chunk j starts at a different offset of a 1 MiB
    random block, so the stream is not periodic: a lost, repeated or reordered chunk changes the
    sha256."""
    j = 0
    left = n
    while left > 0:
        off = (j * 104729) % len(_BLOCK)
        size = min(chunk, left)
        yield _DOUBLE[off:off + size]
        left -= size
        j += 1


def payload_sha256(n):
    h = hashlib.sha256()
    for c in payload_chunks(n):
        h.update(c)
    return h.hexdigest()


class Registry:
    def __init__(self):
        self.lock = threading.Lock()
        self.connections = []

    def open(self, peer, port):
        with self.lock:
            entry = {"id": len(self.connections) + 1, "peer": peer, "port": port, "paths": [],
                     "opened": time.time(), "closed": None, "bytes_sent": 0}
            self.connections.append(entry)
            return entry

    def snapshot(self):
        with self.lock:
            return json.loads(json.dumps(self.connections))


REGISTRY = Registry()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "montana-testbed"

    def setup(self):
        super().setup()
        peer = self.client_address
        self.entry = REGISTRY.open(peer[0], peer[1])

    def finish(self):
        try:
            super().finish()
        finally:
            with REGISTRY.lock:
                self.entry["closed"] = time.time()

    def log_message(self, fmt, *args):  # quiet: the harness reads /connections instead
        pass

    def _send(self, code, body, ctype="text/plain"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with REGISTRY.lock:
            self.entry["bytes_sent"] += len(data)

    def do_GET(self):
        url = urlsplit(self.path)
        with REGISTRY.lock:
            self.entry["paths"].append(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        try:
            if url.path == "/whoami":
                return self._send(200, self.client_address[0] + "\n")
            if url.path == "/healthz":
                return self._send(200, "ok\n")
            if url.path == "/connections":
                conns = REGISTRY.snapshot()
                return self._send(200, json.dumps({"count": len(conns), "connections": conns}), "application/json")
            if len(parts) == 2 and parts[0] in ("bytes", "slow") and parts[1].isdigit():
                n = int(parts[1])
                if n > MAX_BYTES:
                    return self._send(400, "too large\n")
                rate = None
                if parts[0] == "slow":
                    rate = float(query.get("rate", [str(1 << 20)])[0])
                    if rate <= 0:
                        return self._send(400, "rate must be > 0\n")
                return self._stream(n, rate)
            return self._send(404, "not found\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _stream(self, n, rate):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        started = time.monotonic()
        sent = 0
        for chunk in payload_chunks(n):
            self.wfile.write(chunk)
            sent += len(chunk)
            with REGISTRY.lock:
                self.entry["bytes_sent"] = sent
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="0.0.0.0:80", help="HOST:PORT")
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    server = Server((host, int(port)), Handler)
    print(f"webserver listening on {host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
