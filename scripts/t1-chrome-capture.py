#!/usr/bin/env python3
"""Capture a real Chrome-shaped TLS ClientHello on loopback (T1 re-pinning tool).

curl_cffi (curl-impersonate, BoringSSL) impersonating a Chrome release connects to a one-shot
TCP listener on 127.0.0.1 that records the raw TLS records of the ClientHello and closes.
Prints one JSON object: {"target", "curl_cffi", "date", "sni", "record_hex"}.

Usage: python3 scripts/t1-chrome-capture.py [--target chrome145] [--sni www.example.com]
Exit 2 when curl_cffi is not installed (tests treat that as "skip").
"""
import argparse, datetime, json, socket, sys, threading

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="chrome145")
    ap.add_argument("--sni", default="www.example.com")
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    try:
        import curl_cffi
        from curl_cffi import requests
    except ImportError:
        print("curl_cffi not installed (pip install curl_cffi)", file=sys.stderr)
        sys.exit(2)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0)); srv.listen(1); srv.settimeout(args.timeout)
    port = srv.getsockname()[1]
    got = {}
    def serve():
        try:
            c, _ = srv.accept(); c.settimeout(args.timeout)
            buf = b""
            # Read whole handshake records until the ClientHello message is complete (bounded 64 KiB).
            def need(n):
                nonlocal buf
                while len(buf) < n:
                    d = c.recv(65536)
                    if not d: raise EOF
                    buf += d
                    if len(buf) > 65536: raise ValueError("too large")
            class EOF(Exception): pass
            off, hs = 0, b""
            while True:
                need(off + 5)
                ln = int.from_bytes(buf[off+3:off+5], "big")
                need(off + 5 + ln)
                hs += buf[off+5:off+5+ln]; off += 5 + ln
                if len(hs) >= 4 and len(hs) >= 4 + int.from_bytes(hs[1:4], "big"): break
            got["record"] = buf[:off]
            c.close()
        except Exception as e:
            got["error"] = repr(e)
    t = threading.Thread(target=serve); t.start()
    try:
        from curl_cffi import CurlOpt
        with requests.Session(curl_options={CurlOpt.RESOLVE: [f"{args.sni}:{port}:127.0.0.1"]}) as s:
            s.get(f"https://{args.sni}:{port}/", impersonate=args.target, verify=False,
                  timeout=args.timeout)
    except Exception:
        pass  # the listener closes after the ClientHello; the handshake error is expected
    t.join(args.timeout + 1); srv.close()
    if "record" not in got:
        print("no ClientHello captured: %s" % got.get("error"), file=sys.stderr); sys.exit(1)
    print(json.dumps({"target": args.target, "curl_cffi": curl_cffi.__version__,
                      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "sni": args.sni, "record_hex": got["record"].hex()}))

if __name__ == "__main__":
    main()
