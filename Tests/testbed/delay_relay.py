#!/usr/bin/env python3
"""A userspace TCP relay that adds a fixed one-way delay to every chunk in each direction (this
kernel has no netem). Order is preserved: each direction is one queue drained in order.

  delay_relay.py --listen HOST:PORT --target HOST:PORT --delay-ms MS [--transparent]

The testbed puts it on a path with nft DNAT in a router namespace (traffic to an exit's transit
port is redirected to the relay, which forwards to the exit). With --transparent the upstream
connection leaves from the original client's address (IP_TRANSPARENT; the router routes the
answers back to this socket), so the exit still sees its members' addresses: admission exempts
them, and attestation echoes are geolocated where they really come from.

Prints one line per connection accepted and closed (peer, bytes each way) to stdout.
Python 3.11 stdlib only.
"""
import argparse
import asyncio
import socket
import sys
import time

IP_TRANSPARENT = 19
# Bytes one direction holds while they wait out the delay; the reader pauses above it.
MAX_QUEUED = 8 * 1024 * 1024


async def pump(reader, writer, delay, counter):
    queue = asyncio.Queue()
    queued = 0
    room = asyncio.Event()
    room.set()

    async def sender():
        nonlocal queued
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
            counter[0] += len(data)
            queued -= len(data)
            if queued < MAX_QUEUED:
                room.set()
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass

    task = asyncio.create_task(sender())
    try:
        while True:
            await room.wait()
            data = await reader.read(65536)
            if not data:
                break
            queued += len(data)
            if queued >= MAX_QUEUED:
                room.clear()
            await queue.put((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass
    await queue.put((0, None))
    try:
        await task
    except (ConnectionError, OSError):
        # The other side is gone: stop reading this one too.
        writer.transport.abort()


async def connect_upstream(target, source_ip, transparent):
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if transparent:
            sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
            sock.bind((source_ip, 0))
        await asyncio.wait_for(loop.sock_connect(sock, target), 10)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


async def handle(client_reader, client_writer, args):
    peer = client_writer.get_extra_info("peername")
    try:
        up_reader, up_writer = await connect_upstream(args.target, peer[0], args.transparent)
    except (OSError, asyncio.TimeoutError) as e:
        print(f"upstream failed peer={peer[0]} error={e}", flush=True)
        client_writer.close()
        return
    print(f"accepted peer={peer[0]}", flush=True)
    up, down = [0], [0]
    await asyncio.gather(pump(client_reader, up_writer, args.delay, up), pump(up_reader, client_writer, args.delay, down))
    for w in (client_writer, up_writer):
        try:
            w.close()
        except OSError:
            pass
    print(f"closed peer={peer[0]} up={up[0]} down={down[0]}", flush=True)


def hostport(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", type=hostport, required=True)
    ap.add_argument("--target", type=hostport, required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--transparent", action="store_true")
    args = ap.parse_args()
    args.delay = args.delay_ms / 1000.0
    server = await asyncio.start_server(lambda r, w: handle(r, w, args), args.listen[0], args.listen[1], reuse_address=True)
    print(f"relay listening on {args.listen[0]}:{args.listen[1]} -> {args.target[0]}:{args.target[1]} "
          f"+{args.delay_ms:g} ms each way{' (transparent)' if args.transparent else ''}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
