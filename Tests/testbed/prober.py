#!/usr/bin/env python3
"""An active prober for the testbed: sends the bytes of a captured first packet (a TLS ClientHello
the censor's classifier captured from a real client) to HOST:PORT and reports what came back.

  prober.py --connect HOST:PORT --hello-file FILE [--window 5] [--settle 1.5] [--max-bytes 65536]

FILE holds the bytes as hex (one line). It connects (5 s limit), sends them, and reads until
--settle seconds pass with nothing new, the peer closes, --window seconds pass in all, or
--max-bytes arrived (the bound on what it keeps). It prints one JSON object: sent, received (byte
counts), records ([content type, length] of every whole TLS record received, in order),
handshake_types (the handshake message type of each handshake record's first message: 2 is a
ServerHello), closed (the peer closed or reset), error. Python 3.11 stdlib only.
"""
import argparse
import json
import socket
import struct
import sys
import time


def records(data):
    out, i = [], 0
    while i + 5 <= len(data):
        n = struct.unpack("!H", data[i + 3:i + 5])[0]
        if i + 5 + n > len(data):
            break
        out.append((data[i], n, data[i + 5] if data[i] == 22 and n > 0 else None))
        i += 5 + n
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connect", required=True)
    ap.add_argument("--hello-file", required=True)
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument("--settle", type=float, default=1.5)
    ap.add_argument("--max-bytes", type=int, default=65536)
    a = ap.parse_args()
    host, port = a.connect.rsplit(":", 1)
    with open(a.hello_file) as f:
        hello = bytes.fromhex(f.read().strip())
    got, closed, error = b"", False, None
    try:
        s = socket.create_connection((host, int(port)), timeout=5)
        s.sendall(hello)
        start = last = time.monotonic()
        while len(got) < a.max_bytes:
            now = time.monotonic()
            left = min(a.window - (now - start), a.settle - (now - last))
            if left <= 0:
                break
            s.settimeout(left)
            try:
                chunk = s.recv(min(65536, a.max_bytes - len(got)))
            except socket.timeout:
                break
            if not chunk:
                closed = True
                break
            got += chunk
            last = time.monotonic()
        s.close()
    except ConnectionResetError as e:
        closed, error = True, f"reset: {e}"
    except OSError as e:
        error = f"{type(e).__name__}: {e}"
    recs = records(got)
    print(json.dumps({"sent": len(hello), "received": len(got), "records": [[t, n] for t, n, _ in recs],
                      "handshake_types": [h for t, _, h in recs if t == 22], "closed": closed, "error": error}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
