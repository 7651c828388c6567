# SOCKS5 UDP ASSOCIATE probe: starts a UDP echo server on loopback, associates through the
# proxy at argv[1] (optional username argv[2] picks the exit), sends 20 datagrams of growing size
# and checks each echo comes back byte-identical with the right SOCKS5 UDP header.
import socket, struct, sys, threading, os
socks_port = int(sys.argv[1]); user = sys.argv[2] if len(sys.argv) > 2 else ""
# With argv[3] == "expect-refused" the destination must be refused: no echo may come back.
expect_refused = len(sys.argv) > 3 and sys.argv[3] == "expect-refused"
# UDP echo server
echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); echo.bind(("127.0.0.1", 0)); eport = echo.getsockname()[1]
def serve():
    while True:
        d, a = echo.recvfrom(65535)
        echo.sendto(b"echo:" + d, a)
threading.Thread(target=serve, daemon=True).start()
c = socket.create_connection(("127.0.0.1", socks_port), timeout=5)
if user and user != "":
    c.sendall(b"\x05\x01\x02"); assert c.recv(2) == b"\x05\x02"
    u = user.encode(); c.sendall(b"\x01" + bytes([len(u)]) + u + b"\x01x"); assert c.recv(2) == b"\x01\x00"
else:
    c.sendall(b"\x05\x01\x00"); assert c.recv(2) == b"\x05\x00"
c.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
r = c.recv(10); assert r[1] == 0, r
bport = struct.unpack(">H", r[8:10])[0]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
if expect_refused:
    u.settimeout(2)
    u.sendto(b"\x00\x00\x00\x01\x7f\x00\x00\x01" + struct.pack(">H", eport) + b"ping", ("127.0.0.1", bport))
    try:
        u.recvfrom(65535)
        print("udp NOT refused"); sys.exit(1)
    except socket.timeout:
        print("udp refused"); sys.exit(0)
ok = 0
for i in range(20):
    payload = os.urandom(100 + i * 50)
    u.sendto(b"\x00\x00\x00\x01\x7f\x00\x00\x01" + struct.pack(">H", eport) + payload, ("127.0.0.1", bport))
    d, _ = u.recvfrom(65535)
    assert d[:3] == b"\x00\x00\x00" and d[10:] == b"echo:" + payload, d[:20]
    ok += 1
print("udp ok", ok)
