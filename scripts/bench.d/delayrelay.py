#!/usr/bin/env python3
"""A userspace TCP delay relay for scripts/bench (this kernel has no netem).

    delayrelay.py --listen 127.0.0.1:PORT --to HOST:PORT [--delay-ms 25] [--buffer-mib 16]

Every accepted connection gets its own upstream connection; bytes in each direction are held
for --delay-ms before they are written on (so a request/response pair sees 2 x delay: 25 ms each
way is a 50 ms RTT), in order, with EOF delayed the same way. Each direction holds at most
--buffer-mib of delayed data (the path's bytes in flight); beyond that it stops reading, so the
sender's TCP window closes (back-pressure, bounded memory). Both TCP legs are loopback, so the
relay models a path of fixed one-way delay and bounded capacity-delay product, not TCP's own
window dynamics on a long path.
"""
import argparse
import asyncio
import collections
import signal

EOF_MARK = None


class Direction:
    """Bytes from `src` (a transport we read) to `dst` (a transport we write), delayed."""

    def __init__(self, loop, delay, bound):
        self.loop = loop
        self.delay = delay
        self.bound = bound
        self.queue = collections.deque()  # (due, bytes or EOF_MARK)
        self.queued = 0
        self.src = None
        self.dst = None
        self.src_paused = False
        self.dst_blocked = False
        self.timer = None
        self.closed = False

    def push(self, data):
        if self.closed:
            return
        self.queue.append((self.loop.time() + self.delay, data))
        if data is not EOF_MARK:
            self.queued += len(data)
            if self.queued > self.bound and not self.src_paused and self.src is not None:
                self.src.pause_reading()
                self.src_paused = True
        self.arm()

    def arm(self):
        if self.timer is None and self.queue and not self.dst_blocked:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)

    def flush(self):
        self.timer = None
        if self.dst is None or self.closed:
            return
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now and not self.dst_blocked:
            _, data = self.queue.popleft()
            if data is EOF_MARK:
                if self.dst.can_write_eof():
                    self.dst.write_eof()
                else:
                    self.dst.close()
                continue
            self.queued -= len(data)
            self.dst.write(data)
        if self.src_paused and self.queued <= self.bound // 2 and self.src is not None:
            self.src.resume_reading()
            self.src_paused = False
        self.arm()

    def blocked(self, on):
        self.dst_blocked = on
        if not on:
            self.flush()


class Side(asyncio.Protocol):
    """One TCP leg: what it reads goes into `out`; `inbound` is the direction writing to it."""

    def __init__(self, out, inbound, on_lost):
        self.out = out
        self.inbound = inbound
        self.on_lost = on_lost
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.out.src = transport
        self.inbound.dst = transport
        self.inbound.flush()

    def data_received(self, data):
        self.out.push(data)

    def eof_received(self):
        self.out.push(EOF_MARK)
        return True  # keep the write side open until the other direction finishes

    def pause_writing(self):
        self.inbound.blocked(True)

    def resume_writing(self):
        self.inbound.blocked(False)

    def connection_lost(self, exc):
        self.on_lost(self)


async def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--delay-ms", type=float, default=25.0)
    p.add_argument("--buffer-mib", type=float, default=16.0)
    a = p.parse_args()
    lhost, lport = a.listen.rsplit(":", 1)
    uhost, uport = a.to.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    delay = a.delay_ms / 1000.0
    bound = int(a.buffer_mib * 1024 * 1024)

    class Accepted(Side):
        def __init__(self):
            self.up = Direction(loop, delay, bound)    # client -> upstream
            self.down = Direction(loop, delay, bound)  # upstream -> client
            self.peer = None
            super().__init__(self.up, self.down, self.lost)

        def connection_made(self, transport):
            super().connection_made(transport)
            transport.pause_reading()
            self.up.src_paused = True
            loop.create_task(self.dial())

        async def dial(self):
            try:
                _, self.peer = await loop.create_connection(
                    lambda: Side(self.down, self.up, self.lost), uhost, int(uport))
            except OSError:
                self.transport.close()
                return
            self.transport.resume_reading()
            self.up.src_paused = False

        def lost(self, side):
            # Deliver what is queued towards the other side (after its delay), then close it.
            if side is self:
                other, towards = (self.peer.transport if self.peer else None), self.up
            else:
                other, towards = self.transport, self.down
            if other is None:
                return
            def close_later():
                if towards.queue:
                    loop.call_later(delay, close_later)
                else:
                    towards.closed = True
                    other.close()
            loop.call_later(delay, close_later)

    server = await loop.create_server(Accepted, lhost, int(lport), backlog=4096)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
