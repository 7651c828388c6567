#!/usr/bin/env python3
"""A tiny userspace first-packet classifier for the testbed's censor routers.

  classifier.py --listen HOST:PORT [--rule fully-encrypted] [--rule sni --sni-allow NAME ...]
                [--wait-ms 2000] [--max-bytes 16389] [--max-connections 256] [--transparent]
                [--capture FILE [--capture-port PORT ...] [--capture-bytes 16389] [--capture-connections 8]]

The censor namespace DNATs the client network's forwarded TCP to this listener (nft `dnat` in a
prerouting chain for packets arriving from the ISP side). For each connection it reads the
original destination (getsockopt SOL_IP SO_ORIGINAL_DST = 80), waits a bounded time for the first
data (--wait-ms; bounded bytes, --max-bytes), classifies it and then either connects onward to the
original destination and relays both ways, or resets the connection (SO_LINGER 0, close: the
client sees a TCP RST, nothing reaches the destination).

Rules (each off unless named with --rule):
  fully-encrypted  the GFW's 2021 rule for fully encrypted traffic (Wu et al., "How the Great
                   Firewall of China Detects and Blocks Fully Encrypted Traffic", USENIX Security
                   2023, section 4): the first packet is exempt, and passes, if any of
                   Ex1 the average popcount per byte is <= 3.4 or >= 4.6;
                   Ex2 its first 6 bytes are printable ASCII (0x20-0x7e);
                   Ex3 more than 50 % of its bytes are printable ASCII;
                   Ex4 it holds more than 20 contiguous printable ASCII bytes;
                   Ex5 it starts like a known protocol: a TLS record (0x16 0x03 0x00-0x04 or
                       0x17 0x03), an HTTP method ("GET ", "POST ", ...), "SSH-".
                   Anything else is blocked. (The GFW blocks only a fraction of such
                   connections; this censor blocks all of them: the testbed wants certainty.)
  sni              a TLS ClientHello (0x16 0x03) whose server_name is not in --sni-allow (or has
                   none) is blocked; the record is read whole (bounded by --max-bytes).
Everything else passes. A connection that sends nothing within --wait-ms passes (the server may
speak first). With --transparent the onward connection leaves from the client's own address
(IP_TRANSPARENT; the namespace routes the answers back to this socket), so the destination sees
the client, not the router.

Bounds: at most --max-connections at once (more are reset at once, counted as verdict=overload);
the first-packet buffer holds at most --max-bytes; each relay direction reads 64 KiB at a time and
waits for the other side to drain (asyncio's own write buffer bound).

Capture (for an active prober that replays what a real client sent): with --capture FILE, the first
client data of up to --capture-connections connections (default 8, at most 64) to a destination
port in --capture-port (default: any port), at most --capture-bytes of it (default 16389: one whole
TLS record, so a ClientHello is captured whole — with --capture a first TLS record is read whole, as
for the sni rule; at most --max-bytes), is appended to FILE as one
JSON line each: {"dst": "HOST:PORT", "verdict": "pass|block", "bytes": N, "hex": "..."}. After M
captures nothing more is written (the file holds at most M * (2N + 100) bytes).

Output: one line per verdict to stdout, `verdict=pass|block|overload|upstream-failed rule=... dst=...
bytes=N popcount=P`, and `classifier listening on ...` at start. Destinations are the testbed's
own namespace addresses; no client address is printed. Python 3.11 stdlib only.
"""
import argparse
import asyncio
import json
import socket
import struct
import sys

SO_ORIGINAL_DST = 80
IP_TRANSPARENT = 19
CHUNK = 65536
# A TLS record is at most 2^14 bytes plus its 5-byte header: the most a ClientHello record can be.
DEFAULT_MAX_BYTES = 16384 + 5

HTTP_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ", b"PATCH ", b"TRACE ")


def printable(b):
    return 0x20 <= b <= 0x7E


def popcount_per_byte(data):
    if not data:
        return 0.0
    return sum(bin(b).count("1") for b in data) / len(data)


def known_protocol(data):
    """Ex5: a TLS record, an HTTP request or an SSH banner."""
    if len(data) >= 3 and data[0] in (0x16, 0x17) and data[1] == 0x03 and data[2] <= 0x04:
        return "tls"
    if data.startswith(HTTP_METHODS):
        return "http"
    if data.startswith(b"SSH-"):
        return "ssh"
    return None


def fully_encrypted(data):
    """(blocked, why): the GFW's 2021 exemptions Ex1-Ex5 (see the module doc)."""
    pc = popcount_per_byte(data)
    if pc <= 3.4 or pc >= 4.6:
        return False, f"ex1-popcount-{pc:.2f}"
    if len(data) >= 6 and all(printable(b) for b in data[:6]):
        return False, "ex2-printable-prefix"
    if sum(1 for b in data if printable(b)) * 2 > len(data):
        return False, "ex3-half-printable"
    run = best = 0
    for b in data:
        run = run + 1 if printable(b) else 0
        best = max(best, run)
    if best > 20:
        return False, "ex4-printable-run"
    proto = known_protocol(data)
    if proto:
        return False, f"ex5-{proto}"
    return True, f"popcount-{pc:.2f}"


def tls_record_length(data):
    """The whole first record's length (header included) when data starts a TLS handshake record."""
    if len(data) >= 5 and data[0] == 0x16 and data[1] == 0x03:
        return 5 + struct.unpack("!H", data[3:5])[0]
    return None


def client_hello_sni(data):
    """The server_name of a TLS ClientHello record, "" when it has none, None when data is not a
    (whole, parseable) ClientHello. Every length is checked against what is there."""
    try:
        if len(data) < 9 or data[0] != 0x16 or data[5] != 0x01:
            return None
        end = min(len(data), 5 + struct.unpack("!H", data[3:5])[0])
        p = 9 + 2 + 32  # record header, handshake header, client_version, random
        sid = data[p]
        p += 1 + sid
        suites = struct.unpack("!H", data[p:p + 2])[0]
        p += 2 + suites
        comp = data[p]
        p += 1 + comp
        if p + 2 > end:
            return ""
        ext_end = min(end, p + 2 + struct.unpack("!H", data[p:p + 2])[0])
        p += 2
        while p + 4 <= ext_end:
            etype, elen = struct.unpack("!HH", data[p:p + 4])
            p += 4
            if p + elen > ext_end:
                return None
            if etype == 0:  # server_name: list length, then (type, length, name)
                q = p + 2
                while q + 3 <= p + elen:
                    ntype, nlen = data[q], struct.unpack("!H", data[q + 1:q + 3])[0]
                    q += 3
                    if q + nlen > p + elen:
                        return None
                    if ntype == 0:
                        return data[q:q + nlen].decode("ascii", errors="replace").lower()
                    q += nlen
                return ""
            p += elen
        return ""
    except (IndexError, struct.error):
        return None


def classify(data, rules, sni_allow):
    """(verdict, rule) for a first packet."""
    if not data:
        return "pass", "no-data"
    if "sni" in rules and data[0] == 0x16 and len(data) > 1 and data[1] == 0x03:
        name = client_hello_sni(data)
        if name is None:
            return "block", "sni-unparseable"
        if name not in sni_allow:
            return "block", f"sni-not-allowed:{name or '(none)'}"
    if "fully-encrypted" in rules:
        blocked, why = fully_encrypted(data)
        if blocked:
            return "block", f"fully-encrypted:{why}"
        return "pass", why
    return "pass", "default"


def original_dst(sock):
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack("!H", raw[2:4])[0]
    return socket.inet_ntoa(raw[4:8]), port


def reset(writer):
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


async def read_first(reader, wait, max_bytes, want_whole_record):
    """The first data within `wait` seconds (at most max_bytes). For the SNI rule, a TLS record is
    read until whole (same deadline, same bound)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    data = b""
    try:
        data = await asyncio.wait_for(reader.read(max_bytes), wait)
    except asyncio.TimeoutError:
        return b""
    if want_whole_record:
        need = tls_record_length(data)
        while need is not None and len(data) < min(need, max_bytes):
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                more = await asyncio.wait_for(reader.read(min(need, max_bytes) - len(data)), left)
            except asyncio.TimeoutError:
                break
            if not more:
                break
            data += more
    return data


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


async def connect_upstream(dst, source_ip, transparent):
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if transparent:
            sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
            sock.bind((source_ip, 0))
        await asyncio.wait_for(loop.sock_connect(sock, dst), 10)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


class Classifier:
    def __init__(self, args):
        self.args = args
        self.active = 0
        self.rules = set(args.rule)
        self.sni_allow = {n.lower() for n in args.sni_allow}
        self.captured = 0

    def capture(self, verdict, dst, data):
        a = self.args
        if not a.capture or not data or self.captured >= a.capture_connections:
            return
        if a.capture_port and dst[1] not in a.capture_port:
            return
        self.captured += 1
        line = json.dumps({"dst": f"{dst[0]}:{dst[1]}", "verdict": verdict, "bytes": min(len(data), a.capture_bytes),
                           "hex": data[:a.capture_bytes].hex()})
        with open(a.capture, "a") as f:
            f.write(line + "\n")

    def report(self, verdict, rule, dst, data):
        pc = popcount_per_byte(data)
        print(f"verdict={verdict} rule={rule} dst={dst[0]}:{dst[1]} bytes={len(data)} popcount={pc:.2f}", flush=True)

    async def handle(self, reader, writer):
        sock = writer.get_extra_info("socket")
        peer = writer.get_extra_info("peername")
        try:
            dst = original_dst(sock)
        except OSError:
            dst = ("?", 0)
        if self.active >= self.args.max_connections:
            self.report("overload", f"max-connections-{self.args.max_connections}", dst, b"")
            reset(writer)
            return
        self.active += 1
        try:
            await self.serve(reader, writer, peer, dst)
        except (ConnectionError, OSError):
            writer.transport.abort()
        finally:
            self.active -= 1

    async def serve(self, reader, writer, peer, dst):
        if dst[0] == "?":
            self.report("block", "no-original-destination", dst, b"")
            reset(writer)
            return
        data = await read_first(reader, self.args.wait_ms / 1000.0, self.args.max_bytes, "sni" in self.rules or bool(self.args.capture))
        verdict, rule = classify(data, self.rules, self.sni_allow)
        self.capture(verdict, dst, data)
        if verdict == "block":
            self.report("block", rule, dst, data)
            reset(writer)
            return
        try:
            up_reader, up_writer = await connect_upstream(dst, peer[0], self.args.transparent)
        except (OSError, asyncio.TimeoutError) as e:
            self.report("upstream-failed", type(e).__name__, dst, data)
            reset(writer)
            return
        self.report("pass", rule, dst, data)
        if data:
            up_writer.write(data)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        for w in (writer, up_writer):
            try:
                w.close()
            except OSError:
                pass


def hostport(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", type=hostport, required=True)
    ap.add_argument("--rule", action="append", default=[], choices=["fully-encrypted", "sni"])
    ap.add_argument("--sni-allow", action="append", default=[], metavar="NAME")
    ap.add_argument("--wait-ms", type=int, default=2000, help="how long to wait for the first data (default 2000)")
    ap.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help=f"first-packet bound (default {DEFAULT_MAX_BYTES})")
    ap.add_argument("--max-connections", type=int, default=256, help="connections at once (default 256)")
    ap.add_argument("--transparent", action="store_true")
    ap.add_argument("--capture", metavar="FILE", help="append the first data of up to --capture-connections connections to FILE (JSON lines)")
    ap.add_argument("--capture-port", action="append", type=int, default=[], metavar="PORT", help="capture only connections to this port")
    ap.add_argument("--capture-bytes", type=int, default=DEFAULT_MAX_BYTES, help=f"bytes kept per capture (default {DEFAULT_MAX_BYTES})")
    ap.add_argument("--capture-connections", type=int, default=8, help="connections captured at most (default 8)")
    args = ap.parse_args()
    if not (1 <= args.max_bytes <= 1 << 20) or not (1 <= args.wait_ms <= 60000) or not (1 <= args.max_connections <= 65536):
        ap.error("--max-bytes 1..1048576, --wait-ms 1..60000, --max-connections 1..65536")
    if not (1 <= args.capture_bytes <= args.max_bytes) or not (1 <= args.capture_connections <= 64):
        ap.error("--capture-bytes 1..--max-bytes, --capture-connections 1..64")
    c = Classifier(args)
    server = await asyncio.start_server(c.handle, args.listen[0], args.listen[1], reuse_address=True, limit=CHUNK)
    print(f"classifier listening on {args.listen[0]}:{args.listen[1]} rules={','.join(sorted(c.rules)) or 'none'} "
          f"sni_allow={','.join(sorted(c.sni_allow)) or '-'} wait_ms={args.wait_ms} max_bytes={args.max_bytes}"
          f"{' (transparent)' if args.transparent else ''}"
          f"{f' capture={args.capture_connections}x{args.capture_bytes}B' if args.capture else ''}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
