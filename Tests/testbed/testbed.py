#!/usr/bin/env python3
"""The censorship testbed: a whole alliance in network namespaces, two censored client networks,
and scenarios that filter, black-hole, cap, delay and kill parts of it while real `montana`
processes carry real downloads. Run it with scripts/testbed (root, Linux network namespaces).
Python 3.11 stdlib only.

Topology (every address exists only inside the namespaces this script creates):

  mt-ispa 10.101.0.2 -- mt-censa --\\                 /-- mt-f1 10.11.0.2 front (op A, FI)
                                    >-- mt-core ------+-- mt-f2 10.12.0.2 front (op B, SE)
  mt-ispb 10.102.0.2 -- mt-censb --/    (router)      +-- mt-f3 10.13.0.2 front (op C, EE)
                                                      +-- mt-x1 10.21.0.2 exit (op A, DE)
                                                      +-- mt-x2 10.22.0.2 front+exit (op B, NL)
                                                      +-- mt-web 10.30.0.2 web server
                                                      \\-- mt-cdn 10.40.0.2 "CDN": nginx, TLS :443

Censors filter in their namespace's nft table `inet mt` (chain `censor`, forward hook); delays
are a userspace relay (delay_relay.py) in mt-core behind nft DNAT (this kernel has no netem).
A censor can also run the first-packet classifier (classifier.py) behind nft DNAT (`ip mtcls`).
Carriers: every front has T0 (transit :7443), T1 ([carriers.tls] :443, relaying to its cover
site: nginx on the front's own 127.0.0.1:8443 with a self-signed certificate for
www.cover-<front>.test; own keys for operators A and C, the universal key for operator B), T2
([carriers.ws], plain HTTP :8080 behind the CDN's nginx, which terminates TLS for CDN_NAME with a
CA the harness makes) and T3 ([carriers.obfs4] :7444, when obfs4proxy is installed). The two standing clients use T0 only
(carriers = ["t0"]); the carrier scenarios start their own clients with other ladders.
"""
import argparse
import atexit
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import webserver  # noqa: E402  (payload_sha256: the expected digest of /bytes/N)
import classifier  # noqa: E402  (client_hello_sni, tls_record_length: to read the censor's captures)

PREFIX = "mt-"
CORE = "mt-core"
WEB_NS = "mt-web"
WEB_IP = "10.30.0.2"
WEB_PORT = 80
WEB = f"http://{WEB_IP}:{WEB_PORT}"
TRANSIT_PORT = 7443
NODE_ADMIN = "127.0.0.1:9090"
MiB = 1 << 20
# The "CDN": one namespace, one address, nginx terminating TLS for CDN_NAME on :443 and proxying
# each front's secret path to that front's plain-HTTP [carriers.ws] listener (WS_PORT).
CDN_NS = "mt-cdn"
CDN_IP = "10.40.0.2"
CDN_NAME = "cdn.montana-testbed.example"
CDN_PORT = 443
WS_PORT = 8080
T3_PORT = 7444
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
OBFS4PROXY = shutil.which("obfs4proxy")
# The classifier listens on the censor's LAN address (the ISP side) behind nft DNAT.
CLASSIFIER_PORT = 15001
# T1 ([carriers.tls]): every front listens on its own address :T1_PORT and relays to a cover
# site, nginx on the front's loopback (COVER_PORT, TLS 1.3 + h2, a self-signed certificate for
# cover_name(front)). Operator B's fronts use the alliance's universal key, the others own keys.
T1_PORT = 443
COVER_PORT = 8443
T1_UNIVERSAL_OPERATORS = ("Operator B",)


def cover_name(server_name):
    return f"www.cover-{server_name}.test"

# name, roles, operator, country, second octet of its /16
SERVERS = [
    ("f1", ["front"], "Operator A", "FI", 11),
    ("f2", ["front"], "Operator B", "SE", 12),
    ("f3", ["front"], "Operator C", "EE", 13),
    ("x1", ["exit"], "Operator A", "DE", 21),
    ("x2", ["front", "exit"], "Operator B", "NL", 22),
]
# client networks: name, client ns, censor ns, client /16 octet, censor uplink /16 octet
ISPS = [("a", "mt-ispa", "mt-censa", 101, 201), ("b", "mt-ispb", "mt-censb", 102, 202)]
# Countries of the client networks in the GeoIP table (vantage only; no member lives there).
ISP_COUNTRY = {"a": "IR", "b": "CN"}
# Their autonomous systems (the GeoIP CSV's third column; private-use AS numbers).
ISP_ASN = {"a": 64601, "b": 64602}


def log(msg):
    print(msg, flush=True)


class TestbedError(Exception):
    pass


class ScenarioFailed(Exception):
    pass


class Interrupted(BaseException):
    pass


# --------------------------------------------------------------------------------------------
# processes and commands


def run(argv, timeout=30, check=True, input=None):
    """Runs a command (bounded); returns CompletedProcess with text output."""
    try:
        # errors="replace": a tool may print binary (openssl s_client prints the h2 server's frames).
        p = subprocess.run(argv, input=input, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise TestbedError(f"timed out after {timeout}s: {' '.join(argv)}") from e
    if check and p.returncode != 0:
        raise TestbedError(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stdout}{p.stderr}")
    return p


def nsrun(ns, argv, **kw):
    return run(["ip", "netns", "exec", ns] + argv, **kw)


class Proc:
    """A process started in a namespace, its output in a log file; stopped by PID."""

    def __init__(self, name, ns, argv, logdir, env=None, cwd=None):
        self.name = name
        self.ns = ns
        self.argv = argv
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.env = env
        self.cwd = cwd
        self.p = None
        self.starts = 0

    def start(self):
        self.starts += 1
        logf = open(self.log_path, "ab")
        logf.write(f"\n==== start #{self.starts} at {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
        logf.flush()
        env = dict(os.environ)
        env["MONTANA_EXIT_WITH_PARENT"] = "1"  # montana processes stop if the harness dies
        if self.env:
            env.update(self.env)
        self.p = subprocess.Popen(["ip", "netns", "exec", self.ns] + self.argv, stdout=logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, cwd=self.cwd, start_new_session=True)
        logf.close()
        return self

    @property
    def pid(self):
        return self.p.pid if self.p else None

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def stop(self, grace=5.0):
        if not self.p:
            return
        if self.p.poll() is None:
            try:
                os.kill(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.p = None

    def kill9(self):
        if self.p and self.p.poll() is None:
            try:
                os.kill(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError as e:
            return f"(no log: {e})"


class Download:
    """curl in a client namespace, its body hashed as it arrives (nothing on disk); records the
    byte count, the gaps between reads and the exit code."""

    def __init__(self, client, url, user=None, max_time=120, proxy="socks"):
        self.url = url
        argv = ["curl", "-sS", "--max-time", str(max_time), "-o", "-"]
        if proxy == "socks":
            argv += ["--socks5-hostname", client.socks]
            if user:
                argv += ["-U", f"{user}:x"]
        else:
            argv += ["--proxy", f"http://{client.http}"]
            if user:
                argv += ["--proxy-user", f"{user}:x"]
        argv.append(url)
        self.started = time.monotonic()
        self.p = subprocess.Popen(["ip", "netns", "exec", client.ns] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        self.max_time = max_time
        self.sha = hashlib.sha256()
        self.bytes = 0
        self.first_byte = None
        self.last_read = None
        self.max_gap = 0.0
        self.gap_at = 0  # bytes received when the longest gap began
        self.body_head = b""
        self.stderr = b""
        self.rc = None
        self.finished = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._err.start()

    def _read(self):
        fd = self.p.stdout.fileno()
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            now = time.monotonic()
            if self.first_byte is None:
                self.first_byte = now
            elif now - self.last_read > self.max_gap:
                self.max_gap = now - self.last_read
                self.gap_at = self.bytes
            self.last_read = now
            if len(self.body_head) < 4096:
                self.body_head += chunk[:4096 - len(self.body_head)]
            self.sha.update(chunk)
            self.bytes += len(chunk)

    def _read_err(self):
        self.stderr = self.p.stderr.read()

    def wait_bytes(self, n, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.bytes >= n:
                return True
            if self.p.poll() is not None:
                return self.bytes >= n
            time.sleep(0.05)
        return False

    def wait(self, timeout=None):
        timeout = timeout if timeout is not None else self.max_time + 15
        try:
            self.rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.rc = self.p.wait(timeout=5)
        self._reader.join(10)
        self._err.join(5)
        self.finished = time.monotonic()
        return self.rc

    def kill(self):
        if self.p.poll() is None:
            try:
                os.kill(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    @property
    def seconds(self):
        end = self.finished or time.monotonic()
        return end - self.started

    @property
    def digest(self):
        return self.sha.hexdigest()

    @property
    def error(self):
        return self.stderr.decode(errors="replace").strip()


# --------------------------------------------------------------------------------------------
# censors and delays


class Censor:
    """The filters of one censor router (nft table `inet mt`, chain `censor` on the forward hook;
    rules match every packet, so they also stop established flows), and its first-packet
    classifier (classifier.py; table `ip mtcls`): `classifier_on` DNATs every new TCP connection
    from the client network to it, and cuts the client network's TCP flows that were forwarded
    before (the forward hook sees only those once the DNAT is in place)."""

    def __init__(self, ns, lan_ip, lan_net, logs, procs):
        self.ns = ns
        self.lan_ip = lan_ip
        self.lan_net = lan_net
        self.logs = logs
        self.procs = procs
        self.rules = []
        self.classifier = None
        self.classifier_runs = 0
        self.capture_path = None
        # (addr, port) of drop/reject filters: with the classifier on, those flows skip its DNAT
        # (an `accept` ahead of it in `to_classifier`) and meet the filter in the forward chain.
        self.port_filters = []

    def setup(self):
        nsrun(self.ns, ["nft", "-f", "-"], input="""
table inet mt {
  chain censor { type filter hook forward priority 0; policy accept; }
}
table ip mtcls {
  chain tproxy_mark { type filter hook prerouting priority mangle; policy accept;
    meta l4proto tcp socket transparent 1 meta mark set 0x1
  }
  chain to_classifier { type nat hook prerouting priority dstnat; policy accept; }
  chain cut_forwarded { type filter hook forward priority 10; policy accept; }
}
""")
        # ct bytes needs conntrack accounting in this namespace.
        nsrun(self.ns, ["sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1"])
        # The classifier's onward connections leave from the client's address (transparent):
        # the answers are routed to the local socket (the TPROXY recipe, as in mt-core).
        run(["ip", "-n", self.ns, "rule", "add", "fwmark", "1", "lookup", "100", "pref", "100"])
        run(["ip", "-n", self.ns, "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"])

    def classifier_on(self, rules=("fully-encrypted",), sni_allow=(), wait_ms=2000, capture_ports=None, capture_bytes=None,
                      capture_connections=None):
        """Starts classifier.py with `rules` (fully-encrypted, sni) and sends every new TCP
        connection from the client network through it (except those to a drop/reject filter's
        addr:port: the filter stops them); flows forwarded before are reset. With capture_ports
        (a list; [] = any port) it captures the first client data of up to capture_connections
        (default 8) connections, capture_bytes each (default 16389), to self.capture_path
        (`captures()` reads it)."""
        self.classifier_off()
        self.classifier_runs += 1
        argv = [sys.executable, os.path.join(HERE, "classifier.py"), "--listen", f"{self.lan_ip}:{CLASSIFIER_PORT}",
                "--wait-ms", str(wait_ms), "--transparent"]
        for r in rules:
            argv += ["--rule", r]
        for n in sni_allow:
            argv += ["--sni-allow", n]
        self.capture_path = None
        if capture_ports is not None:
            self.capture_path = os.path.join(self.logs, f"capture-{self.ns}-{self.classifier_runs}.jsonl")
            argv += ["--capture", self.capture_path]
            for port in capture_ports:
                argv += ["--capture-port", str(port)]
            if capture_bytes is not None:
                argv += ["--capture-bytes", str(capture_bytes)]
            if capture_connections is not None:
                argv += ["--capture-connections", str(capture_connections)]
        proc = Proc(f"classifier-{self.ns}-{self.classifier_runs}", self.ns, argv, self.logs)
        self.procs.append(proc)
        proc.start()
        self.classifier = proc
        deadline = time.monotonic() + 10
        while "classifier listening" not in proc.tail(5):
            if not proc.alive() or time.monotonic() > deadline:
                raise TestbedError(f"classifier in {self.ns} did not start:\n{proc.tail()}")
            time.sleep(0.1)
        for addr, port in self.port_filters:
            self._bypass(addr, port, "add")
        nsrun(self.ns, ["nft", "add", "rule", "ip", "mtcls", "to_classifier", "iifname", "lan", "ip", "daddr", "!=", self.lan_net,
                        "meta", "l4proto", "tcp", "dnat", "to", f"{self.lan_ip}:{CLASSIFIER_PORT}"])
        nsrun(self.ns, ["nft", "add", "rule", "ip", "mtcls", "cut_forwarded", "iifname", "lan", "meta", "l4proto", "tcp",
                        "reject", "with", "tcp", "reset"])
        nsrun(self.ns, ["nft", "add", "rule", "ip", "mtcls", "cut_forwarded", "oifname", "lan", "meta", "l4proto", "tcp", "drop"])
        return proc

    def classifier_off(self):
        nsrun(self.ns, ["nft", "flush", "chain", "ip", "mtcls", "to_classifier"], check=False)
        nsrun(self.ns, ["nft", "flush", "chain", "ip", "mtcls", "cut_forwarded"], check=False)
        if self.classifier is not None:
            self.classifier.stop(grace=2)
            self.classifier = None

    def _bypass(self, addr, port, how):
        nsrun(self.ns, ["nft", how, "rule", "ip", "mtcls", "to_classifier", "iifname", "lan", "ip", "daddr", addr,
                        "tcp", "dport", str(port), "accept"])

    def captures(self):
        """The classifier's captures of its current run: [{"dst", "verdict", "bytes", "data"}]."""
        out = []
        if not self.capture_path or not os.path.exists(self.capture_path):
            return out
        with open(self.capture_path) as f:
            for line in f:
                try:
                    doc = json.loads(line)
                    doc["data"] = bytes.fromhex(doc.pop("hex"))
                except (ValueError, KeyError):
                    continue
                out.append(doc)
        return out

    def verdicts(self):
        """{"pass": [...], "block": [...], ...}: the classifier's verdict lines of its current run."""
        out = {}
        if self.classifier is None:
            return out
        for line in self.classifier.tail(5000).splitlines():
            if line.startswith("verdict="):
                fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
                out.setdefault(fields["verdict"], []).append(fields)
        return out

    def _add(self, *rules):
        for r in rules:
            nsrun(self.ns, ["nft", "add", "rule", "inet", "mt", "censor"] + r.split())
            self.rules.append(r)

    def _port_filter(self, addr, port):
        self.port_filters.append((addr, port))
        if self.classifier is not None:
            self._bypass(addr, port, "insert")

    def drop(self, addr, port):
        self._add(f"ip daddr {addr} tcp dport {port} drop", f"ip saddr {addr} tcp sport {port} drop")
        self._port_filter(addr, port)

    def reject(self, addr, port):
        self._add(f"ip daddr {addr} tcp dport {port} reject with tcp reset",
                  f"ip saddr {addr} tcp sport {port} reject with tcp reset")
        self._port_filter(addr, port)

    def blackhole(self, addr):
        """Silent drop of everything to and from addr, established connections included."""
        self._add(f"ip daddr {addr} drop", f"ip saddr {addr} drop")

    def cap_bytes(self, addr, port, n):
        """Every connection to addr:port stops passing packets once it carried n bytes (both
        directions counted)."""
        self._add(f"ip daddr {addr} tcp dport {port} ct bytes gt {n} drop",
                  f"ip saddr {addr} tcp sport {port} ct bytes gt {n} drop")

    def clear(self):
        nsrun(self.ns, ["nft", "flush", "chain", "inet", "mt", "censor"])
        self.rules = []
        self.port_filters = []
        self.classifier_off()

    def listing(self):
        return nsrun(self.ns, ["nft", "list", "chain", "inet", "mt", "censor"], check=False).stdout


# --------------------------------------------------------------------------------------------
# the testbed


class Server:
    def __init__(self, name, roles, operator, country, octet):
        self.name = name
        self.roles = roles
        self.operator = operator
        self.country = country
        self.octet = octet
        self.ns = PREFIX + name
        self.ip = f"10.{octet}.0.2"
        self.core_ip = f"10.{octet}.0.1"
        self.core_if = f"c-{name}"
        self.node_id = None
        self.link = None
        self.dir = None
        self.proc = None
        # T2's secret path ("/ws-" + 20 url-safe characters): in the record and in the CDN's nginx.
        self.ws_path = "/ws-" + secrets.token_urlsafe(15) if self.is_front else None
        # T1: the cover site's name, its self-signed certificate, the page's marker, the key mode.
        self.cover_name = cover_name(name) if self.is_front else None
        self.cover_marker = f"montana-testbed-cover-{name}-{secrets.token_hex(6)}" if self.is_front else None
        self.cover_cert = None  # PEM path (also the CA file a prober verifies it with)
        self.cover = None  # the cover's nginx Proc
        self.t1_key_mode = ("universal" if operator in T1_UNIVERSAL_OPERATORS else "own") if self.is_front else None

    @property
    def is_front(self):
        return "front" in self.roles

    @property
    def is_exit(self):
        return "exit" in self.roles

    @property
    def short(self):
        return self.node_id[:12]


class Client:
    def __init__(self, name, ns, socks_port=1080, http_port=8080, admin_port=9000):
        self.name = name
        self.ns = ns
        self.socks = f"127.0.0.1:{socks_port}"
        self.http = f"127.0.0.1:{http_port}"
        self.admin = f"127.0.0.1:{admin_port}"
        self.data = None
        self.proc = None


def wait_nginx_serves(ns, proc, prefix, cacert, name, port, ip, marker, what):
    """Until the nginx `proc` (prefix dir `prefix`) in namespace `ns` serves https://name:port/ with
    `marker` in the page (15 s at most); otherwise a TestbedError with its output and error log."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        p = nsrun(ns, ["curl", "-s", "-m", "2", "--cacert", cacert, "--resolve", f"{name}:{port}:{ip}",
                       f"https://{name}:{port}/"], check=False)
        if marker in p.stdout:
            return
        if not proc.alive():
            break
        time.sleep(0.1)
    try:
        with open(os.path.join(prefix, "error.log")) as f:
            err = f.read()[-2000:]
    except OSError:
        err = ""
    raise TestbedError(f"{what} did not serve https://{name}:{port}/:\n{proc.tail()}\n{err}")


class Testbed:
    def __init__(self, binary, workdir):
        self.bin = binary
        self.work = workdir
        self.logs = os.path.join(workdir, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.servers = {s[0]: Server(*s) for s in SERVERS}
        self.procs = []  # every Proc, for teardown
        self.censors = {name: Censor(cns, f"10.{octet}.0.1", f"10.{octet}.0.0/16", self.logs, self.procs)
                        for name, _, cns, octet, _ in ISPS}
        self.isp_ns = {name: ns for name, ns, _, _, _ in ISPS}
        self.clients = {}
        self.namespaces = []
        self.web = None
        self.cdn = None  # the CDN's nginx Proc (None: nginx or openssl not installed)
        self.cdn_missing = None
        # T1 needs nginx (the covers) and openssl (their certificates); without them no front has T1.
        self.t1_missing = None if os.access(NGINX, os.X_OK) and shutil.which("openssl") else \
            f"nginx ({NGINX}) or openssl not installed (apt-get install nginx-light openssl)"
        self.ca = None
        self.relays = []
        self.delay_rules = False
        self.torn_down = False
        self._lock = threading.Lock()

    # ---- namespaces and links

    def add_ns(self, ns):
        run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def veth(self, ns_a, if_a, addr_a, ns_b, if_b, addr_b):
        run(["ip", "-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
        run(["ip", "-n", ns_a, "addr", "add", addr_a, "dev", if_a])
        run(["ip", "-n", ns_b, "addr", "add", addr_b, "dev", if_b])
        run(["ip", "-n", ns_a, "link", "set", if_a, "up"])
        run(["ip", "-n", ns_b, "link", "set", if_b, "up"])

    def setup_network(self):
        self.add_ns(CORE)
        nsrun(CORE, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for s in self.servers.values():
            self.add_ns(s.ns)
            self.veth(CORE, s.core_if, f"{s.core_ip}/24", s.ns, "eth0", f"{s.ip}/24")
            run(["ip", "-n", s.ns, "route", "add", "default", "via", s.core_ip])
        self.add_ns(WEB_NS)
        self.veth(CORE, "c-web", "10.30.0.1/24", WEB_NS, "eth0", f"{WEB_IP}/24")
        run(["ip", "-n", WEB_NS, "route", "add", "default", "via", "10.30.0.1"])
        self.add_ns(CDN_NS)
        self.veth(CORE, "c-cdn", "10.40.0.1/24", CDN_NS, "eth0", f"{CDN_IP}/24")
        run(["ip", "-n", CDN_NS, "route", "add", "default", "via", "10.40.0.1"])
        for name, cns, censor_ns, octet, up in ISPS:
            self.add_ns(censor_ns)
            self.add_ns(cns)
            nsrun(censor_ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            self.veth(CORE, f"c-cens{name}", f"10.{up}.0.1/24", censor_ns, "wan", f"10.{up}.0.2/24")
            self.veth(censor_ns, "lan", f"10.{octet}.0.1/24", cns, "eth0", f"10.{octet}.0.2/24")
            run(["ip", "-n", censor_ns, "route", "add", "default", "via", f"10.{up}.0.1"])
            run(["ip", "-n", cns, "route", "add", "default", "via", f"10.{octet}.0.1"])
            run(["ip", "-n", CORE, "route", "add", f"10.{octet}.0.0/16", "via", f"10.{up}.0.2"])
            self.censors[name].setup()
        # mt-core: the delay relays' DNAT, and the routing that brings the exits' answers back
        # to the relays' transparent sockets (the TPROXY recipe: mark packets that belong to a
        # transparent socket, route marked packets to the local stack).
        nsrun(CORE, ["nft", "-f", "-"], input="""
table inet mt {
  chain delay_mark { type filter hook prerouting priority mangle; policy accept;
    meta l4proto tcp socket transparent 1 meta mark set 0x1
  }
  chain delay_dnat { type nat hook prerouting priority dstnat; policy accept; }
}
""")
        run(["ip", "-n", CORE, "rule", "add", "fwmark", "1", "lookup", "100", "pref", "100"])
        run(["ip", "-n", CORE, "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"])

    # ---- the alliance

    def montana(self, *args, timeout=30):
        return run([self.bin] + list(args), timeout=timeout)

    def setup_alliance(self):
        w = self.work
        self.montana("alliance", "init", os.path.join(w, "alliance"), "--name", "Montana testbed")
        alliance_json = os.path.join(w, "alliance", "alliance.json")
        secret = os.path.join(w, "alliance", "alliance.secret")
        geo = ["# testbed GeoIP: one /16 per member (and per client network)"]
        for s in self.servers.values():
            geo.append(f"10.{s.octet}.0.0/16,{s.country}")
        for name, _, _, octet, _ in ISPS:
            geo.append(f"10.{octet}.0.0/16,{ISP_COUNTRY[name]},{ISP_ASN[name]}")
        with open(os.path.join(w, "geoip.csv"), "w") as f:
            f.write("\n".join(geo) + "\n")
        for s in self.servers.values():
            s.dir = os.path.join(w, s.name)
            out = self.montana("node", "init", s.dir, "--country", s.country, "--roles", ",".join(s.roles),
                               "--transit", f"{s.ip}:{TRANSIT_PORT}", "--public-host", s.ip).stdout
            s.node_id = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("node_id:"))
            if s.is_front and self.t1_missing is None:
                self.make_t1(s, secret)
            self.montana("alliance", "endorse", "--secret", secret, "--alliance", alliance_json,
                         "--node", os.path.join(s.dir, "node.pub.json"), "--operator", s.operator,
                         "--out", os.path.join(s.dir, "endorsement.json"))
            self.write_node_config(s, bootstrap=[])
            s.link = self.montana("node", "link", "--config", os.path.join(s.dir, "node.toml")).stdout.strip().splitlines()[-1]
            if not s.link.startswith("montana://"):
                raise TestbedError(f"montana node link for {s.name} printed {s.link!r}")
        ring = list(self.servers.values())
        for i, s in enumerate(ring):
            self.write_node_config(s, bootstrap=[ring[i - 1].link])
        fronts = [s.link for s in ring if s.is_front]
        self.subscription = os.path.join(w, "subscription.json")
        self.montana("subscription", "create", "--alliance", alliance_json, "--bootstrap", *fronts,
                     "--title", "Montana testbed", "--out", self.subscription)

    def make_t1(self, s, secret):
        """Front s's T1 key (own: `montana keygen t1`; Operator B: the alliance's universal key,
        `montana alliance t1-key`) in its directory, and its cover's self-signed certificate."""
        if s.t1_key_mode == "universal":
            self.montana("alliance", "t1-key", "--secret", secret, "--out", s.dir)
        else:
            self.montana("keygen", "t1", "--out", s.dir)
        if not os.path.exists(os.path.join(s.dir, "t1.key")):
            raise TestbedError(f"no t1.key in {s.dir} after making {s.name}'s {s.t1_key_mode} T1 key")
        d = os.path.join(self.work, f"cover-{s.name}")
        os.makedirs(os.path.join(d, "html"), exist_ok=True)
        cert, key = os.path.join(d, "cover.crt"), os.path.join(d, "cover.key")
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={s.cover_name}",
             "-addext", f"subjectAltName=DNS:{s.cover_name}", "-addext", "extendedKeyUsage=serverAuth"])
        s.cover_cert = cert
        with open(os.path.join(d, "html", "index.html"), "w") as f:
            f.write(f"<!DOCTYPE html>\n<html><head><title>{s.cover_name}</title></head>"
                    f"<body><h1>Welcome to {s.cover_name}</h1><p>{s.cover_marker}</p></body></html>\n")

    def start_cover(self, s):
        """nginx in s's namespace on 127.0.0.1:COVER_PORT from scripts/nginx/t1-cover.conf.template
        (foreground, no master; stopped by PID), until it serves the marker page."""
        prefix = os.path.dirname(s.cover_cert)
        with open(os.path.join(REPO, "scripts", "nginx", "t1-cover.conf.template")) as f:
            template = f.read()
        conf = template
        for k, v in {"@PREFIX@": prefix, "@LISTEN@": f"127.0.0.1:{COVER_PORT}", "@CERT@": s.cover_cert,
                     "@KEY@": os.path.join(prefix, "cover.key"), "@NAME@": s.cover_name}.items():
            conf = conf.replace(k, v)
        conf = f"# Rendered by Tests/testbed/testbed.py from scripts/nginx/t1-cover.conf.template for {s.name}\n" + \
            "\n".join(line for line in conf.splitlines() if not line.startswith("#")) + "\n"
        leftover = [t for t in ("@PREFIX@", "@LISTEN@", "@CERT@", "@KEY@", "@NAME@") if t in conf]
        if leftover:
            raise TestbedError(f"nginx cover template: placeholders left after rendering: {leftover}")
        path = os.path.join(prefix, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        if s.cover is None:
            s.cover = Proc(f"cover-nginx-{s.name}", s.ns, [NGINX, "-p", prefix, "-c", path, "-e", os.path.join(prefix, "error.log")],
                           self.logs)
            self.procs.append(s.cover)
        s.cover.start()
        wait_nginx_serves(s.ns, s.cover, prefix, s.cover_cert, s.cover_name, COVER_PORT, "127.0.0.1", s.cover_marker,
                          f"{s.name}'s cover nginx")

    def write_node_config(self, s, bootstrap):
        text = f"""# Written by Tests/testbed/testbed.py for {s.name}.
[node]
identity_key = "identity.key"
kem_key = "kem.key"
roles = {json.dumps(s.roles)}
country = "{s.country}"
operator = "{s.operator}"
alliance = "../alliance/alliance.json"
endorsement = "endorsement.json"

[listen]
transit = "{s.ip}:{TRANSIT_PORT}"
public_host = "{s.ip}"
admin = "{NODE_ADMIN}"

[directory]
bootstrap = {json.dumps(bootstrap)}
geoip = "../geoip.csv"

[log]
level = "info"
"""
        if s.is_front:
            text += f"""
# T2 behind the testbed's CDN: nginx in mt-cdn terminates TLS for {CDN_NAME} and proxies this
# path here; the record advertises the CDN, and the CDN's X-Forwarded-For names the client.
[carriers.ws]
listen = "{s.ip}:{WS_PORT}"
path = "{s.ws_path}"
public_host = "{CDN_IP}"
public_port = {CDN_PORT}
host_header = "{CDN_NAME}"
sni = "{CDN_NAME}"
trusted_proxies = ["{CDN_IP}"]
"""
            if s.cover_cert:
                text += f"""
# T1: every connection to :{T1_PORT} is relayed to the cover site (nginx on this namespace's
# loopback); a token holder is switched to the carrier ({s.t1_key_mode} key).
[carriers.tls]
listen = "{s.ip}:{T1_PORT}"
cover = "127.0.0.1:{COVER_PORT}"
sni = ["{s.cover_name}"]
key = "t1.key"
"""
            if OBFS4PROXY:
                text += f"""
[carriers.obfs4]
listen = "{s.ip}:{T3_PORT}"
"""
        if s.is_exit:
            text += f"""
[exit]
admission = "any-account"
policy = "default-allow"
# attestations geolocate the address users' traffic leaves from
egress_source = ["{s.ip}"]
# the testbed's web server lives in a private range
allow_private = ["10.30.0.0/16"]
"""
        with open(os.path.join(s.dir, "node.toml"), "w") as f:
            f.write(text)

    def start_node(self, s):
        if s.proc is None:
            s.proc = Proc(f"node-{s.name}", s.ns, [self.bin, "node", "--config", os.path.join(s.dir, "node.toml")], self.logs)
            self.procs.append(s.proc)
        s.proc.start()

    def wait_node_up(self, s, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not s.proc.alive():
                raise TestbedError(f"node {s.name} exited:\n{s.proc.tail()}")
            if self.get_json(s.ns, NODE_ADMIN, "/status", quiet=True) is not None:
                return
            time.sleep(0.2)
        raise TestbedError(f"node {s.name} did not answer on its admin port within {timeout}s:\n{s.proc.tail()}")

    def directory_complete(self, ns, admin):
        doc = self.get_json(ns, admin, "/directory", quiet=True)
        if not doc:
            return False, "no answer"
        members = {m["node_id"]: m for m in doc.get("members", [])}
        missing = [s.name for s in self.servers.values() if s.node_id not in members]
        if missing:
            return False, f"missing {missing}"
        weak = [s.name for s in self.servers.values() if s.is_exit and members[s.node_id].get("corroboration") != "corroborated"]
        if weak:
            return False, f"not corroborated: {weak} " + str({s.name: members[s.node_id].get("corroboration") for s in self.servers.values() if s.is_exit})
        return True, "ok"

    def wait_converged(self, timeout=90):
        deadline = time.monotonic() + timeout
        pending = list(self.servers.values())
        why = {}
        while time.monotonic() < deadline and pending:
            for s in list(pending):
                if not s.proc.alive():
                    raise TestbedError(f"node {s.name} exited:\n{s.proc.tail()}")
                ok, why[s.name] = self.directory_complete(s.ns, NODE_ADMIN)
                if ok:
                    pending.remove(s)
            if pending:
                time.sleep(0.5)
        if pending:
            raise TestbedError("the alliance did not converge within %ds: %s" % (timeout, {s.name: why.get(s.name) for s in pending}))

    def make_ca(self):
        """A throw-away CA and a leaf for CDN_NAME (and CDN_IP), EC P-256, two days (openssl)."""
        d = os.path.join(self.work, "pki")
        os.makedirs(d, exist_ok=True)
        path = lambda n: os.path.join(d, n)  # noqa: E731
        with open(path("leaf.ext"), "w") as f:
            f.write(f"subjectAltName=DNS:{CDN_NAME},IP:{CDN_IP}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        run(["openssl", "req", "-x509", *ec, "-keyout", path("ca.key"), "-out", path("ca.crt"), "-days", "2",
             "-subj", "/CN=Montana Testbed CA"])
        run(["openssl", "req", *ec, "-keyout", path("leaf.key"), "-out", path("leaf.csr"), "-subj", f"/CN={CDN_NAME}"])
        run(["openssl", "x509", "-req", "-in", path("leaf.csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"),
             "-CAcreateserial", "-out", path("leaf.crt"), "-days", "2", "-extfile", path("leaf.ext")])
        self.ca = path("ca.crt")
        return path("leaf.crt"), path("leaf.key")

    def render_cdn_config(self, prefix, cert, key):
        """scripts/nginx/t2-cdn.conf.template with its `location = @WS_PATH@` block repeated
        once per front (each front's secret path to its own listener): one CDN, many origins."""
        with open(os.path.join(REPO, "scripts", "nginx", "t2-cdn.conf.template")) as f:
            template = f.read()
        start = template.index("        location = @WS_PATH@ {")
        end = template.index("        }\n", start) + len("        }\n")
        block = template[start:end]
        fronts = [s for s in self.servers.values() if s.is_front]
        blocks = "\n".join(block.replace("@WS_PATH@", s.ws_path).replace("@NODE@", f"{s.ip}:{WS_PORT}") for s in fronts)
        conf = template[:start] + blocks + template[end:]
        for k, v in {"@LISTEN@": f"{CDN_IP}:{CDN_PORT}", "@CERT@": cert, "@KEY@": key, "@PREFIX@": prefix}.items():
            conf = conf.replace(k, v)
        conf = conf.replace("server_name localhost;", f"server_name {CDN_NAME};")
        # The template's header comment names the placeholders: it is not part of the config.
        conf = "# Rendered by Tests/testbed/testbed.py from scripts/nginx/t2-cdn.conf.template\n" + \
            "\n".join(line for line in conf.splitlines() if not line.startswith("#")) + "\n"
        leftover = [t for t in ("@WS_PATH@", "@NODE@", "@LISTEN@", "@CERT@", "@KEY@", "@PREFIX@") if t in conf]
        if leftover:
            raise TestbedError(f"nginx template: placeholders left after rendering: {leftover}")
        return conf

    def start_cdn(self):
        """nginx in mt-cdn (foreground, no master; stopped by PID). Without nginx or openssl the
        T2 scenarios fail saying so; everything else runs."""
        if not os.access(NGINX, os.X_OK) or not shutil.which("openssl"):
            self.cdn_missing = f"nginx ({NGINX}) or openssl not installed (apt-get install nginx-light openssl)"
            log(f"testbed: no CDN: {self.cdn_missing}")
            return
        cert, key = self.make_ca()
        prefix = os.path.join(self.work, "cdn")
        os.makedirs(os.path.join(prefix, "html"), exist_ok=True)
        with open(os.path.join(prefix, "html", "index.html"), "w") as f:
            f.write("<html><body><h1>It works</h1></body></html>\n")
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(self.render_cdn_config(prefix, cert, key))
        self.cdn = Proc("cdn-nginx", CDN_NS, [NGINX, "-p", prefix, "-c", conf, "-e", os.path.join(prefix, "error.log")], self.logs)
        self.procs.append(self.cdn)
        self.cdn.start()
        wait_nginx_serves(CDN_NS, self.cdn, prefix, self.ca, CDN_NAME, CDN_PORT, CDN_IP, "It works", "the CDN's nginx")

    def cdn_access_log(self):
        try:
            with open(os.path.join(self.work, "cdn", "access.log")) as f:
                return f.read()
        except OSError:
            return ""

    def start_web(self):
        self.web = Proc("webserver", WEB_NS, [sys.executable, os.path.join(HERE, "webserver.py"), "--listen", f"0.0.0.0:{WEB_PORT}"], self.logs)
        self.procs.append(self.web)
        self.web.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if nsrun(WEB_NS, ["curl", "-s", "-m", "2", f"http://127.0.0.1:{WEB_PORT}/healthz"], check=False).stdout.strip() == "ok":
                return
            if not self.web.alive():
                break
            time.sleep(0.1)
        raise TestbedError(f"web server did not start:\n{self.web.tail()}")

    # ---- clients

    def start_client(self, name, isp, socks_port=1080, http_port=8080, admin_port=9000, data=None, wait=True, timeout=60,
                     carriers=("t0",)):
        """A client in ISP `isp`'s network with the ladder `carriers` (None: the default ladder,
        no `carriers` key); it trusts the testbed CA for T2 (t2_ca_file)."""
        c = Client(name, self.isp_ns[isp], socks_port, http_port, admin_port)
        c.isp = isp
        c.carriers = carriers
        c.data = data or os.path.join(self.work, f"client-{name}")
        os.makedirs(c.data, exist_ok=True)
        if not os.path.exists(os.path.join(c.data, "account.key")):
            if os.path.exists(os.path.join(c.data, "client.toml")):
                os.remove(os.path.join(c.data, "client.toml"))
            self.montana("client", "init", c.data)
        lines = ["# Written by Tests/testbed/testbed.py", "[client]", 'account_key = "account.key"']
        if carriers is not None:
            lines.append(f"carriers = {json.dumps(list(carriers))}")
        if self.ca:
            lines.append(f't2_ca_file = "{self.ca}"')
        lines += ["", "[log]", 'level = "info"', ""]
        config = os.path.join(c.data, "client.toml")
        with open(config, "w") as f:
            f.write("\n".join(lines))
        c.proc = Proc(f"client-{name}", c.ns, [self.bin, "client", "--config", config, "--subscription", self.subscription,
                                               "--socks", c.socks, "--http", c.http, "--admin", c.admin,
                                               "--geoip", os.path.join(self.work, "geoip.csv")], self.logs)
        self.procs.append(c.proc)
        c.proc.start()
        self.clients[name] = c
        if wait:
            self.wait_client_ready(c, timeout)
        return c

    def wait_client_ready(self, c, timeout=60):
        deadline = time.monotonic() + timeout
        why = "no answer"
        while time.monotonic() < deadline:
            if not c.proc.alive():
                raise TestbedError(f"client {c.name} exited:\n{c.proc.tail()}")
            ok, why = self.directory_complete(c.ns, c.admin)
            if ok:
                return
            time.sleep(0.3)
        raise TestbedError(f"client {c.name}: directory incomplete after {timeout}s ({why}):\n{c.proc.tail()}")

    def stop_client(self, c):
        c.proc.stop()
        self.clients.pop(c.name, None)

    # ---- queries

    def get_json(self, ns, admin, path, quiet=False, timeout=5):
        p = nsrun(ns, ["curl", "-s", "-m", str(timeout), f"http://{admin}{path}"], check=False, timeout=timeout + 5)
        if p.returncode != 0 or not p.stdout.strip():
            if quiet:
                return None
            raise TestbedError(f"GET {path} at {admin} in {ns}: curl exit {p.returncode} {p.stderr.strip()}")
        try:
            return json.loads(p.stdout)
        except json.JSONDecodeError:
            if quiet:
                return None
            raise TestbedError(f"GET {path} at {admin} in {ns}: not JSON: {p.stdout[:200]!r}")

    def status(self, c):
        return self.get_json(c.ns, c.admin, "/status")

    def curl(self, c, url, user=None, proxy="socks", max_time=30):
        argv = ["curl", "-sS", "--max-time", str(max_time), "-w", "\n%{http_code}"]
        if proxy == "socks":
            argv += ["--socks5-hostname", c.socks] + (["-U", f"{user}:x"] if user else [])
        else:
            argv += ["--proxy", f"http://{c.http}"] + (["--proxy-user", f"{user}:x"] if user else [])
        started = time.monotonic()
        p = nsrun(c.ns, argv + [url], check=False, timeout=max_time + 10)
        body, _, code = p.stdout.rpartition("\n")
        return {"rc": p.returncode, "body": body, "code": code.strip(), "stderr": p.stderr.strip(),
                "seconds": round(time.monotonic() - started, 2)}

    def web_connections(self, tag):
        doc = self.get_json(WEB_NS, f"127.0.0.1:{WEB_PORT}", "/connections")
        return [c for c in doc["connections"] if any(f"tag={tag}" in p for p in c["paths"])]

    def server_by_ip(self, ip):
        return next((s for s in self.servers.values() if s.ip == ip), None)

    def server_by_node(self, node):
        if not node:
            return None
        return next((s for s in self.servers.values() if s.node_id.startswith(node) or node.startswith(s.short)), None)

    def server_by_label(self, label):
        """A status label: "<operator> <node id prefix>" (or just the prefix, or a name)."""
        for token in reversed((label or "").split()):
            if len(token) >= 6 and all(ch in "0123456789abcdef" for ch in token.lower()):
                found = [s for s in self.servers.values() if s.node_id.startswith(token.lower())]
                if len(found) == 1:
                    return found[0]
        return None

    @staticmethod
    def names(s, text):
        """Whether text names server s: its node id prefix (as labels show it) or its host."""
        return s.node_id[:6] in text or f"{s.ip}:" in text

    # ---- delays

    def set_delay(self, target, ms, port=17000):
        """Every connection members open to target's transit port goes through a relay in
        mt-core that adds ms each way; clients' own connections (from the ISPs) do not."""
        relay = Proc(f"relay-{target.name}-{len(self.relays)}", CORE,
                     [sys.executable, os.path.join(HERE, "delay_relay.py"), "--listen", f"{target.core_ip}:{port}",
                      "--target", f"{target.ip}:{TRANSIT_PORT}", "--delay-ms", str(ms), "--transparent"], self.logs)
        self.procs.append(relay)
        relay.start()
        self.relays.append(relay)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not relay.alive():
                raise TestbedError(f"delay relay exited:\n{relay.tail()}")
            if "listening" in relay.tail(5):
                break
            time.sleep(0.1)
        members = ", ".join(s.ip for s in self.servers.values())
        nsrun(CORE, ["nft", "add", "rule", "inet", "mt", "delay_dnat", "ip", "saddr", "{", *members.split(), "}",
                     "ip", "daddr", target.ip, "tcp", "dport", str(TRANSIT_PORT), "dnat", "ip", "to", f"{target.core_ip}:{port}"])
        self.delay_rules = True
        return relay

    def clear_delays(self):
        if self.delay_rules:
            nsrun(CORE, ["nft", "flush", "chain", "inet", "mt", "delay_dnat"], check=False)
            self.delay_rules = False
        for r in self.relays:
            r.stop(grace=2)
        self.relays = []

    # ---- lifecycle

    def setup(self):
        t0 = time.monotonic()
        self.setup_network()
        self.setup_alliance()
        self.start_web()
        self.start_cdn()
        for s in self.servers.values():
            if s.cover_cert:
                self.start_cover(s)
        for s in self.servers.values():
            self.start_node(s)
        for s in self.servers.values():
            self.wait_node_up(s)
        self.wait_converged()
        converged = time.monotonic() - t0
        self.check_t1_up()
        for name, _, _, _, _ in ISPS:
            self.start_client(name, name)
        self.setup_seconds = time.monotonic() - t0
        self.converged_seconds = converged

    def t1_status(self, s):
        """Front s's `/status` carriers.t1 ({} when it has none)."""
        return ((self.get_json(s.ns, NODE_ADMIN, "/status") or {}).get("carriers") or {}).get("t1") or {}

    def check_t1_up(self):
        """Every front's T1 is up in the key mode the harness gave it."""
        for s in self.servers.values():
            if not s.cover_cert:
                continue
            t1 = self.t1_status(s)
            if t1.get("state") != "up" or t1.get("key_mode") != s.t1_key_mode or t1.get("endpoint") != f"{s.ip}:{T1_PORT}":
                raise TestbedError(f"{s.name}'s T1 is not up as configured ({s.t1_key_mode} key, {s.ip}:{T1_PORT}): {t1}")

    def heal(self):
        """Between scenarios: no filters, no delays, every node running, both clients running."""
        for c in self.censors.values():
            c.clear()
        self.clear_delays()
        for s in self.servers.values():
            if s.cover is not None and not s.cover.alive():
                self.start_cover(s)
        restarted = []
        for s in self.servers.values():
            if not s.proc.alive():
                self.start_node(s)
                restarted.append(s)
        for s in restarted:
            self.wait_node_up(s)
        if restarted:
            self.wait_converged(timeout=60)
        for name in ("a", "b"):
            c = self.clients.get(name)
            if c is None or not c.proc.alive():
                self.start_client(name, name)

    def teardown(self):
        with self._lock:
            if self.torn_down:
                return
            self.torn_down = True
        for p in reversed(self.procs):
            try:
                p.stop(grace=3)
            except Exception:
                pass
        # Anything still inside our namespaces was started by this run (curl, a child): by PID.
        for ns in self.namespaces:
            pids = run(["ip", "netns", "pids", ns], check=False, timeout=10).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        for ns in reversed(self.namespaces):
            run(["ip", "netns", "del", ns], check=False, timeout=10)
        self.namespaces = []

    def all_logs_tail(self, n=25):
        out = []
        for p in self.procs:
            if os.path.exists(p.log_path):
                out.append(f"---- {p.name} ({p.log_path}) ----\n{p.tail(n)}")
        return "\n".join(out)


# --------------------------------------------------------------------------------------------
# scenario plumbing


class Result:
    def __init__(self, name, run_index):
        self.name = name
        self.run = run_index
        self.checks = []
        self.figures = {}
        self.error = None
        self.seconds = 0.0

    def check(self, what, ok, detail=""):
        self.checks.append({"check": what, "ok": bool(ok), "detail": str(detail)[:2000]})
        return ok

    def require(self, what, ok, detail=""):
        if not self.check(what, ok, detail):
            raise ScenarioFailed(f"{what}: {detail}")

    def figure(self, key, value):
        self.figures[key] = value

    @property
    def passed(self):
        return self.error is None and all(c["ok"] for c in self.checks) and bool(self.checks)

    def failures(self):
        out = [f"{c['check']}: {c['detail']}" for c in self.checks if not c["ok"]]
        if self.error:
            out.append(self.error)
        return out

    def as_json(self):
        return {"scenario": self.name, "run": self.run, "status": "PASS" if self.passed else "FAIL",
                "seconds": round(self.seconds, 2), "figures": self.figures, "checks": self.checks, "error": self.error}


SCENARIOS = []


def scenario(tag):
    def register(fn):
        fn.tag = tag
        SCENARIOS.append(fn)
        return fn
    return register


def steering(doc):
    return doc.get("steering") if isinstance(doc.get("steering"), dict) else None


def active_for(doc, country):
    st = steering(doc)
    if not st:
        return None
    return next((a for a in st.get("active", []) if a.get("country") == country), None)


def events_since(doc, seconds):
    st = steering(doc) or {}
    return [e for e in st.get("events", []) if isinstance(e.get("seconds_ago"), int) and e["seconds_ago"] <= seconds]


def circuit_for(doc, country):
    return next((c for c in doc.get("circuits", []) if c.get("exit_country") == country), None)


def poll_status(tb, c, predicate, timeout=4.0):
    """The client's /status is a snapshot refreshed every second: polls until predicate(doc)
    holds (bounded); returns the last document."""
    deadline = time.monotonic() + timeout
    while True:
        doc = tb.status(c)
        if predicate(doc) or time.monotonic() >= deadline:
            return doc
        time.sleep(0.25)


def warm_up(tb, res, c, exit_server):
    """One request via country-de, so the session exists before the measured part."""
    r = tb.curl(c, f"{WEB}/whoami", user="country-de")
    res.figure("warm_up_seconds", r["seconds"])
    res.require("warm-up request via country-de", r["rc"] == 0 and r["body"].strip() == exit_server.ip, r)
    poll_status(tb, c, lambda d: active_for(d, "DE") is not None or circuit_for(d, "DE") is not None)


def active_front(tb, doc, country, res):
    """The server carrying the session to `country`: steering.active (the interface), its
    front_host and front_node agreeing."""
    a = active_for(doc, country)
    res.require("status has steering.active for " + country, a is not None,
                f"steering={json.dumps(steering(doc))[:300] if steering(doc) else 'absent'}; circuits={doc.get('circuits')}")
    host = (a.get("front_host") or "").rsplit(":", 1)[0]
    by_host = tb.server_by_ip(host)
    by_node = tb.server_by_node(a.get("front_node"))
    res.require("steering.active front_host and front_node name one testbed server", by_host is not None and by_host is by_node,
                f"active={a}")
    return by_host, a


def tag_for(res):
    return f"{res.name}-{res.run}-{int(time.time() * 1000) % 10**9}"


def check_download(tb, res, dl, n, tag, exit_server):
    res.figure("download_bytes", dl.bytes)
    res.figure("download_seconds", round(dl.seconds, 2))
    res.figure("client_max_gap_ms", int(dl.max_gap * 1000))
    res.figure("client_gap_at_mib", round(dl.gap_at / MiB, 1))
    res.check("curl exit 0", dl.rc == 0, f"rc={dl.rc} {dl.error}")
    res.check("all bytes arrived", dl.bytes == n, f"{dl.bytes} of {n}")
    res.check("sha256 of the body", dl.digest == webserver.payload_sha256(n), dl.digest)
    conns = tb.web_connections(tag)
    res.figure("web_connections", len(conns))
    res.check("the web server saw one TCP connection", len(conns) == 1, [(c["peer"], c["bytes_sent"]) for c in conns])
    res.check("from the same exit address", len(conns) >= 1 and all(c["peer"] == exit_server.ip for c in conns),
              f"peers {[c['peer'] for c in conns]}, exit {exit_server.name} is {exit_server.ip}")


def stall_figures(res, events, target_ms):
    resumed = [e for e in events if e.get("kind") == "resumed"]
    res.figure("events", [{k: e.get(k) for k in ("kind", "from_front", "to_front", "reason", "stall_ms")} for e in events][-12:])
    res.figure("resumptions", len(resumed))
    stalls = [e.get("stall_ms") for e in resumed if isinstance(e.get("stall_ms"), int)]
    res.figure("stall_ms", stalls)
    res.check("a 'resumed' steering event with stall_ms", bool(stalls), f"events: {[e.get('kind') for e in events]}")
    if stalls:
        res.check(f"stall ≤ {target_ms} ms", max(stalls) <= target_ms, f"stall_ms {stalls}")
    return resumed


# --------------------------------------------------------------------------------------------
# scenarios


@scenario("ready")
def filtered_exit_via_front(tb, res):
    """x1 (DE) dropped on ISP A: the ISP A client still exits in DE through an unfiltered front;
    the ISP B client (no filter) also reaches DE."""
    x1 = tb.servers["x1"]
    tb.censors["a"].drop(x1.ip, TRANSIT_PORT)
    a, b = tb.clients["a"], tb.clients["b"]
    r = tb.curl(a, f"{WEB}/whoami", user="country-de")
    res.figure("isp_a_seconds", r["seconds"])
    res.check("ISP A: country-de answers", r["rc"] == 0 and r["code"] == "200", r)
    res.check("ISP A: /whoami is x1's address", r["body"].strip() == x1.ip, f"{r['body'].strip()!r} (x1 {x1.ip})")
    doc = poll_status(tb, a, lambda d: circuit_for(d, "DE") is not None)
    circuit = circuit_for(doc, "DE")
    res.check("ISP A: the DE circuit is relayed by a front other than x1",
              circuit is not None and circuit.get("relayed") is True and tb.server_by_label(circuit.get("front")) not in (None, x1),
              circuit)
    if circuit:
        front = tb.server_by_label(circuit.get("front"))
        res.figure("isp_a_front", front.name if front else circuit.get("front"))
    r = tb.curl(b, f"{WEB}/whoami", user="country-de")
    res.figure("isp_b_seconds", r["seconds"])
    res.check("ISP B: country-de answers", r["rc"] == 0 and r["code"] == "200", r)
    res.check("ISP B: /whoami is x1's address", r["body"].strip() == x1.ip, f"{r['body'].strip()!r} (x1 {x1.ip})")


@scenario("ready")
def blackhole_active_front(tb, res):
    """A ≥ 8 s download via country-de; mid-way the active front is black-holed on ISP A. The
    download completes (same exit, one TCP connection at the site) and the stall is recorded."""
    a = tb.clients["a"]
    x1 = tb.servers["x1"]
    n, rate = 56 * MiB, 6 * MiB  # ≈ 9.3 s
    tag = tag_for(res)
    warm_up(tb, res, a, x1)
    t0 = time.monotonic()
    dl = Download(a, f"{WEB}/slow/{n}?rate={rate}&tag={tag}", user="country-de", max_time=40)
    try:
        res.require("download under way", dl.wait_bytes(12 * MiB, 30), f"{dl.bytes} bytes, {dl.error}")
        front, active = active_front(tb, tb.status(a), "DE", res)
        res.figure("blackholed_front", front.name)
        res.figure("reserve", active.get("reserve_node") or "")
        res.figure("blackholed_at_mib", round(dl.bytes / MiB, 1))
        tb.censors["a"].blackhole(front.ip)
        dl.wait()
    finally:
        dl.kill()
        dl.wait(10)
    check_download(tb, res, dl, n, tag, x1)
    doc = tb.status(a)
    after = active_for(doc, "DE")
    res.figure("front_after", (tb.server_by_node(after.get("front_node")).name if after and tb.server_by_node(after.get("front_node")) else None))
    stall_figures(res, events_since(doc, int(time.monotonic() - t0) + 2), TARGET_STALL_MS)


@scenario("ready")
def kill_active_front(tb, res):
    """200 MiB via country-de; the active front's node is killed (-9) mid-way. Same checks;
    stall and total time recorded; the node is restarted afterwards."""
    a = tb.clients["a"]
    x1 = tb.servers["x1"]
    n = 200 * MiB
    tag = tag_for(res)
    warm_up(tb, res, a, x1)
    t0 = time.monotonic()
    dl = Download(a, f"{WEB}/bytes/{n}?tag={tag}", user="country-de", max_time=90)
    killed = None
    try:
        res.require("download under way", dl.wait_bytes(40 * MiB, 60), f"{dl.bytes} bytes, {dl.error}")
        front, _ = active_front(tb, tb.status(a), "DE", res)
        res.figure("killed_front", front.name)
        res.figure("killed_at_mib", round(dl.bytes / MiB, 1))
        killed = front
        front.proc.kill9()
        dl.wait()
    finally:
        dl.kill()
        dl.wait(10)
        if killed is not None:
            restart = time.monotonic()
            tb.start_node(killed)
            tb.wait_node_up(killed)
            res.figure("restart_seconds", round(time.monotonic() - restart, 2))
    check_download(tb, res, dl, n, tag, x1)
    res.figure("total_seconds", round(dl.seconds, 2))
    stall_figures(res, events_since(tb.status(a), int(time.monotonic() - t0) + 2), TARGET_STALL_MS)
    if killed is not None:
        ok, why = True, ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ok, why = tb.directory_complete(killed.ns, NODE_ADMIN)
            if ok:
                break
            time.sleep(0.5)
        res.check(f"restarted {killed.name} rejoined the directory", ok, why)
        res.figure("rejoin_seconds", round(time.monotonic() - restart, 2))


@scenario("ready")
def byte_cap(tb, res):
    """ISP A's censor cuts every connection to a front after 2 MiB; a 30 MiB download still
    completes (resumptions over fresh circuits)."""
    a = tb.clients["a"]
    x1 = tb.servers["x1"]
    n, cap = 30 * MiB, 2 * MiB
    warm_up(tb, res, a, x1)
    for s in tb.servers.values():
        if s.is_front:
            tb.censors["a"].cap_bytes(s.ip, TRANSIT_PORT, cap)
    tag = tag_for(res)
    t0 = time.monotonic()
    dl = Download(a, f"{WEB}/bytes/{n}?tag={tag}", user="country-de", max_time=60)
    try:
        dl.wait()
    finally:
        dl.kill()
        dl.wait(10)
    res.figure("download_bytes", dl.bytes)
    res.figure("download_seconds", round(dl.seconds, 2))
    res.figure("client_max_gap_ms", int(dl.max_gap * 1000))
    res.check("curl exit 0", dl.rc == 0, f"rc={dl.rc} {dl.error}")
    res.check("all bytes arrived", dl.bytes == n, f"{dl.bytes} of {n}")
    res.check("sha256 of the body", dl.digest == webserver.payload_sha256(n), dl.digest)
    conns = tb.web_connections(tag)
    res.figure("web_connections", len(conns))
    res.figure("web_peers", sorted({c["peer"] for c in conns}))
    events = events_since(tb.status(a), int(time.monotonic() - t0) + 2)
    resumed = [e for e in events if e.get("kind") == "resumed"]
    res.figure("resumptions", len(resumed))
    res.figure("events", [{k: e.get(k) for k in ("kind", "from_front", "to_front", "reason", "stall_ms")} for e in events][-12:])
    res.check("resumed at least once (each carrier is cut at 2 MiB)", len(resumed) >= 1, f"events: {[e.get('kind') for e in events]}")


@scenario("ready")
def all_fronts_filtered(tb, res):
    """Every front and exit dropped on ISP A while the client has a session to DE: country-de
    fails within a bound, the proxy's error says the country is unreachable from this network
    and names each front tried, and status shows the same."""
    a = tb.clients["a"]
    x1 = tb.servers["x1"]
    fronts = [s for s in tb.servers.values() if s.is_front]
    warm_up(tb, res, a, x1)
    for s in tb.servers.values():
        tb.censors["a"].drop(s.ip, TRANSIT_PORT)
    bound = ALL_FILTERED_BOUND_S
    # The first request meets the session that was live when the filter came; the second one
    # has to build a new one. Both must fail in bounded time with the unreachable error.
    for attempt in (1, 2):
        r = tb.curl(a, f"{WEB}/whoami", user="country-de", proxy="http", max_time=bound + 15)
        body = r["body"]
        res.figure(f"request{attempt}_seconds", r["seconds"])
        res.figure(f"request{attempt}_http_code", r["code"])
        res.figure(f"request{attempt}_body", body[:600])
        res.check(f"request {attempt}: fails", not (r["rc"] == 0 and r["code"] == "200"), r)
        res.check(f"request {attempt}: fails within {bound} s (no hang)", r["seconds"] <= bound and r["rc"] != 28,
                  f"{r['seconds']} s, curl rc {r['rc']} {r['stderr']}")
        res.check(f"request {attempt}: HTTP proxy answers 502", r["code"] == "502", f"code {r['code']!r}, curl rc {r['rc']} {r['stderr']}")
        res.check(f"request {attempt}: error says 'country DE ... unreachable from this network'",
                  "unreachable from this network" in body and "DE" in body, body[:300])
        unnamed = [f.name for f in fronts if not tb.names(f, body)]
        res.check(f"request {attempt}: error names every front tried", not unnamed, f"not named: {unnamed}")
    doc = poll_status(tb, a, lambda d: "unreachable from this network" in (d.get("last_failures") or {}).get(x1.short, ""))
    failures = doc.get("last_failures") or {}
    text = failures.get(x1.short, "")
    res.figure("last_failure", text[:600])
    res.check("status last_failures[x1] says 'unreachable from this network'", "unreachable from this network" in text, failures)
    unnamed = [f.name for f in fronts if not tb.names(f, text)]
    res.check("status last_failures[x1] names every front", not unnamed, f"not named: {unnamed}")
    reach = doc.get("reachability") or {}
    states = {}
    for entry in reach.get("fronts", []):
        srv = tb.server_by_node(entry.get("node")) or tb.server_by_ip((entry.get("host") or "").rsplit(":", 1)[0])
        if srv:
            states[srv.name] = entry.get("state")
    res.figure("reachability", states)
    res.figure("vantage", reach.get("vantage"))
    res.check("status reachability.fronts: every front unreachable",
              all(states.get(f.name) == "unreachable" for f in fronts), states or "no reachability.fronts")
    vantage = (reach.get("vantage") or {}).get("source_group")
    res.check("status reachability.vantage.source_group is ISP A's /16", vantage == "10.101.0.0/16", reach.get("vantage"))


@scenario("ready")
def auto_lowest_latency(tb, res):
    """+150 ms on the paths to x1 (DE): a fresh automatic client exits at x2 (NL); the delay moved
    to x2: a fresh client exits at x1."""
    x1, x2 = tb.servers["x1"], tb.servers["x2"]
    for phase, (slow, fast) in enumerate([(x1, x2), (x2, x1)], 1):
        tb.clear_delays()
        relay = tb.set_delay(slow, AUTO_DELAY_MS, port=17000 + phase)
        c = tb.start_client(f"auto{phase}-{res.run}", "b", socks_port=1090 + phase, http_port=8090 + phase,
                            admin_port=9010 + phase)
        try:
            measured = wait_measured(tb, c, relay, res, phase)
            r = tb.curl(c, f"{WEB}/whoami")
            res.figure(f"phase{phase}_delayed", slow.name)
            res.figure(f"phase{phase}_whoami", r["body"].strip())
            res.figure(f"phase{phase}_measured_ms", measured)
            res.check(f"phase {phase}: +{AUTO_DELAY_MS:g} ms on {slow.name}: automatic exit is {fast.name}",
                      r["rc"] == 0 and r["body"].strip() == fast.ip, f"{r} (want {fast.ip})")
            res.figure(f"phase{phase}_relay_connections", relay.tail(200).count("accepted peer="))
            # The relay is transparent: the delayed exit sees its members' own addresses.
            peers = transit_peers(slow)
            res.figure(f"phase{phase}_peers_at_{slow.name}", sorted(peers))
            res.check(f"phase {phase}: {slow.name} sees members' addresses through the relay, not the router's",
                      slow.core_ip not in peers and "upstream failed" not in relay.tail(200), f"peers {sorted(peers)}")
        finally:
            tb.stop_client(c)
    tb.clear_delays()


def transit_peers(s):
    """Addresses of the established TCP connections at s's transit port."""
    out = nsrun(s.ns, ["ss", "-Htn", "state", "established", "sport", f"= :{TRANSIT_PORT}"], check=False).stdout
    peers = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            peers.add(fields[-1].rsplit(":", 1)[0])
    return peers


def wait_measured(tb, c, relay, res, phase, timeout=30):
    """Automatic selection uses each exit's measured path time; a fresh client probes the exits
    once it has the directory. Waits for both figures in steering.measured_ms when status has
    them, else until the probe through the delayed path has closed at the relay (+1 s)."""
    exits = [s for s in tb.servers.values() if s.is_exit]
    deadline = time.monotonic() + timeout
    closed_before = relay.tail(400).count("closed peer=")
    while time.monotonic() < deadline:
        doc = tb.status(c)
        st = steering(doc)
        if st is not None and isinstance(st.get("measured_ms"), dict):
            # keyed by the exits' labels ("<operator> <id prefix>")
            got = {s.name: None for s in exits}
            for label, ms in st["measured_ms"].items():
                srv = tb.server_by_label(label) or tb.server_by_node(label)
                if srv is not None and srv.name in got:
                    got[srv.name] = ms
            if all(v is not None for v in got.values()):
                return got
        elif relay.tail(400).count("closed peer=") > closed_before:
            time.sleep(1)
            return None
        time.sleep(0.3)
    res.check(f"phase {phase}: both exits measured within {timeout} s", False,
              (steering(tb.status(c)) or {}).get("measured_ms", "no steering.measured_ms"))
    return None


def map_entry(doc, country, asn, node_id):
    for v in (doc or {}).get("vantages", []):
        if v.get("country") == country and v.get("asn") == asn:
            return next((e for e in v.get("entries", []) if e.get("node") == node_id), None)
    return None


def client_map_entry(doc, node_id):
    """The client's /status entry of the alliance map for node_id (its vantage's), or None."""
    for e in ((doc or {}).get("reachability") or {}).get("map") or []:
        if e.get("node") and node_id.startswith(e["node"]):
            return e
    return None


@scenario("ready")
def false_reports(tb, res):
    """The ISP A client names its vantage (country and AS) from its GeoIP file. Reports from ONE
    /16 (ISP A's network, 200 to every front) claiming f1 unreachable for that vantage do not move
    the map at any front, nor at the ISP A client once it fetched the map again; the same claim
    from three distinct /16s (ISP A, ISP B, the web network) does, at every front: the quorum of
    section 9."""
    f1 = tb.servers["f1"]
    fronts = [s for s in tb.servers.values() if "front" in s.roles]
    c = tb.clients["a"]
    vantage = (ISP_COUNTRY["a"], ISP_ASN["a"])

    def client_vantage(d):
        v = (d.get("reachability") or {}).get("vantage") or {}
        return (v.get("country"), v.get("asn"))

    doc = poll_status(tb, c, lambda d: client_vantage(d) == vantage, timeout=10)
    res.figure("client_a_vantage", (doc.get("reachability") or {}).get("vantage"))
    res.check(f"the ISP A client's vantage is {vantage[0]} AS{vantage[1]} (its GeoIP file)", client_vantage(doc) == vantage,
              (doc.get("reachability") or {}).get("vantage"))

    def report(ns, count, front):
        out = nsrun(ns, [tb.bin, "reachability", "report", "--link", front.link, "--target", f1.node_id, "--unreachable",
                         "--count", str(count), "--country", vantage[0], "--asn", str(vantage[1])], timeout=60, check=False)
        return out.returncode, (out.stdout + out.stderr).strip()

    def at_fronts():
        return {s.name: map_entry(tb.get_json(s.ns, NODE_ADMIN, "/reachability"), *vantage, f1.node_id) for s in fronts}

    injected = time.monotonic()
    for s in fronts:
        rc, text = report(tb.isp_ns["a"], 200, s)
        res.figure(f"one_network_report_{s.name}", text[-80:])
        res.require(f"200 reports from ISP A's /16 to {s.name} were submitted", rc == 0, text)
    entries = at_fronts()
    res.figure("after_one_network", {n: e and {k: e.get(k) for k in ("sources", "state", "actionable")} for n, e in entries.items()})
    res.check("every front recorded the claim as one source group",
              all(e is not None and e.get("sources") == 1 for e in entries.values()), entries)
    res.check("one /16 cannot move the map: f1 is not actionable at any front",
              all(e is not None and e.get("actionable") is False and e.get("state") != "unreachable" for e in entries.values()), entries)
    # The client fetches its vantage's map at most once a minute, on a directory read (long polls
    # of 25 s): up to 85 s after the reports, or 10 s more when an exchange failed and is retried.
    def fetched_since(d):
        age = (d.get("reachability") or {}).get("map_seconds_ago")
        return isinstance(age, int) and age < time.monotonic() - injected - 1
    doc = poll_status(tb, c, fetched_since, timeout=130)
    res.figure("client_a_map_after_one_network", client_map_entry(doc, f1.node_id))
    res.require("the ISP A client fetched its vantage's map after the reports", fetched_since(doc),
                (doc.get("reachability") or {}).get("map_seconds_ago"))
    e = client_map_entry(doc, f1.node_id)
    res.check("the ISP A client's map does not mark f1 unreachable", e is None or e.get("state") != "unreachable", e)
    f1_seen = next((o for o in (doc.get("reachability") or {}).get("fronts") or [] if f1.node_id.startswith(o.get("node") or "-")), None)
    res.figure("client_a_f1_own_observation", f1_seen and {k: f1_seen.get(k) for k in ("state", "successes", "failures")})

    for ns in (tb.isp_ns["b"], WEB_NS):
        for s in fronts:
            rc, text = report(ns, 1, s)
            res.require(f"a report from {ns} to {s.name}", rc == 0, text)
    entries = at_fronts()
    res.figure("after_three_networks", {n: e and {k: e.get(k) for k in ("sources", "state", "actionable")} for n, e in entries.items()})
    res.check("three distinct /16s make the entry actionable at every front: f1 unreachable for that vantage",
              all(e is not None and e.get("sources") == 3 and e.get("state") == "unreachable" and e.get("actionable") is True
                  for e in entries.values()), entries)


# --------------------------------------------------------------------------------------------
# carrier scenarios (T2 behind the CDN, T3, the first-packet classifier)


def front_profiles(tb, doc):
    """{front name: {"profile", "working_profile", "profile_errors", "successes", "failures"}} from
    a client's /status reachability.fronts."""
    out = {}
    for e in ((doc or {}).get("reachability") or {}).get("fronts") or []:
        srv = tb.server_by_node(e.get("node")) or tb.server_by_label(e.get("front"))
        name = srv.name if srv else (e.get("front") or "?")
        out.setdefault(name, []).append({"profile": e.get("profile"), "working": e.get("working_profile"),
                                         "errors": {k: (v or "")[:80] for k, v in (e.get("profile_errors") or {}).items()},
                                         "ok": e.get("successes"), "failed": e.get("failures")})
    return out


def carrier_download(tb, res, c, exit_server, n, max_time=60):
    """n bytes via country-<exit's country> through client c: checked like every download (bytes,
    SHA-256, one connection at the web server from the exit). Returns the Download."""
    tag = tag_for(res) + "-" + c.name
    dl = Download(c, f"{WEB}/bytes/{n}?tag={tag}", user=f"country-{exit_server.country.lower()}", max_time=max_time)
    try:
        dl.wait()
    finally:
        dl.kill()
        dl.wait(10)
    check_download(tb, res, dl, n, tag, exit_server)
    return dl


def carrier_of(doc, country):
    """(circuit carrier, steering.active carrier) for the session to country."""
    circuit = circuit_for(doc, country)
    active = active_for(doc, country)
    return (circuit or {}).get("carrier"), (active or {}).get("carrier")


def check_t0_client_blocked(tb, res, c0, x1, why):
    """A client pinned to carriers ["t0"] on a censored network: its DE fetch fails, and its /status
    says t0 was tried (with the error), that no front works for it and that it has no DE circuit."""
    r = tb.curl(c0, f"{WEB}/whoami", user="country-de", max_time=ALL_FILTERED_BOUND_S)
    res.figure("t0_client_seconds", r["seconds"])
    res.figure("t0_client_result", {"rc": r["rc"], "code": r["code"], "error": r["stderr"][:160]})
    res.check(f"carriers [t0]: country-de fails {why}", not (r["rc"] == 0 and r["body"].strip() == x1.ip), r)
    doc = poll_status(tb, c0, lambda d: any("t0" in (e.get("profile_errors") or {})
                                            for e in (d.get("reachability") or {}).get("fronts") or []), timeout=10)
    tried = front_profiles(tb, doc)
    res.figure("t0_client_fronts", tried)
    res.check("carriers [t0]: status reachability.fronts names t0 as the profile tried, with its error",
              any("t0" in e["errors"] for es in tried.values() for e in es), tried)
    res.check("carriers [t0]: no front works for it", not any(e["working"] for es in tried.values() for e in es), tried)
    res.check("carriers [t0]: no circuit to DE", circuit_for(doc, "DE") is None, doc.get("circuits"))


def require_cdn(tb, res):
    res.require("the testbed's CDN (nginx) is running", tb.cdn is not None and tb.cdn.alive(),
                tb.cdn_missing or (tb.cdn.tail() if tb.cdn else "not started"))


@scenario("ready")
def random_first_packet(tb, res):
    """ISP A's censor classifies every new TCP connection's first packet (classifier.py, the GFW's
    2021 fully-encrypted rule): a client with carriers ["t0"] cannot reach DE (its T0 circuits
    die; status names the profile it tried); a client with the ladder ["t3", "t2", "t0"] (T3 is
    random bytes too: blocked) downloads through T2 via the CDN (TLS passes), SHA-256 right, and
    /status says carrier "t2"."""
    require_cdn(tb, res)
    x1 = tb.servers["x1"]
    censor = tb.censors["a"]
    ladder = ["t3", "t2", "t0"] if OBFS4PROXY else ["t2", "t0"]
    res.figure("ladder", ladder)
    # Both clients fetch the directory before the classifier comes on (the directory session is T0).
    c0 = tb.start_client(f"rfp-t0-{res.run}", "a", socks_port=1101, http_port=8101, admin_port=9101, carriers=["t0"])
    cl = tb.start_client(f"rfp-ladder-{res.run}", "a", socks_port=1102, http_port=8102, admin_port=9102, carriers=ladder)
    try:
        censor.classifier_on(["fully-encrypted"])
        check_t0_client_blocked(tb, res, c0, x1, "behind the classifier")

        dl = carrier_download(tb, res, cl, x1, 4 * MiB)
        doc = poll_status(tb, cl, lambda d: carrier_of(d, "DE")[0] is not None, timeout=8)
        circuit_carrier, active_carrier = carrier_of(doc, "DE")
        res.figure("ladder_client_carrier", {"circuit": circuit_carrier, "active": active_carrier})
        res.check('ladder client: the DE circuit\'s carrier is "t2" (or "t3")', circuit_carrier in ("t2", "t3"), doc.get("circuits"))
        res.check("ladder client: steering.active agrees", active_carrier == circuit_carrier, steering(doc))
        tried = front_profiles(tb, doc)
        res.figure("ladder_client_fronts", tried)
        if "t3" in ladder:
            res.check("ladder client: T3 (obfs4, random bytes) was tried and failed at a front",
                      any("t3" in e["errors"] for es in tried.values() for e in es), tried)
        verdicts = censor.verdicts()
        blocked = verdicts.get("block", [])
        passed = verdicts.get("pass", [])
        res.figure("classifier_blocked", len(blocked))
        res.figure("classifier_passed", len(passed))
        res.figure("classifier_blocked_ports", sorted({v["dst"].rsplit(":", 1)[1] for v in blocked}))
        res.figure("classifier_passed_dsts", sorted({v["dst"] for v in passed}))
        res.check("the classifier blocked connections to the T0 port as fully encrypted",
                  any(v["dst"].endswith(f":{TRANSIT_PORT}") and v["rule"].startswith("fully-encrypted") for v in blocked), blocked[:5])
        res.check("the classifier passed the TLS connections to the CDN",
                  any(v["dst"] == f"{CDN_IP}:{CDN_PORT}" for v in passed), passed[:5])
    finally:
        censor.classifier_off()
        tb.stop_client(c0)
        tb.stop_client(cl)


@scenario("ready")
def t2_via_cdn(tb, res):
    """ISP A's censor black-holes every front and exit address: a client with the default ladder
    still downloads through T2 via the CDN (nginx in mt-cdn: TLS, the secret path proxied to the
    fronts' plain-HTTP [carriers.ws]), SHA-256 right, /status carrier "t2"; the fronts see the
    client's own address through X-Forwarded-For (its vantage stays ISP A's /16, not the CDN's)."""
    require_cdn(tb, res)
    x1 = tb.servers["x1"]
    c = tb.start_client(f"cdn-{res.run}", "a", socks_port=1103, http_port=8103, admin_port=9103, carriers=None)
    try:
        for srv in tb.servers.values():
            tb.censors["a"].blackhole(srv.ip)
        res.figure("blackholed", sorted(srv.name for srv in tb.servers.values()))
        dl = carrier_download(tb, res, c, x1, 8 * MiB, max_time=90)
        res.figure("download_mib_per_s", round(dl.bytes / MiB / max(dl.seconds, 0.001), 1))
        doc = poll_status(tb, c, lambda d: carrier_of(d, "DE")[0] is not None, timeout=8)
        circuit_carrier, active_carrier = carrier_of(doc, "DE")
        res.figure("carrier", {"circuit": circuit_carrier, "active": active_carrier})
        res.check('the DE circuit\'s carrier is "t2"', circuit_carrier == "t2", doc.get("circuits"))
        res.check('steering.active carrier is "t2"', active_carrier == "t2", steering(doc))
        front = tb.server_by_label((circuit_for(doc, "DE") or {}).get("front"))
        res.figure("front", front.name if front else None)
        # The front reports the address it saw (msg2's observed-address TLV) on every control
        # session (the reserve's, over T2 now): through the CDN that is X-Forwarded-For's.
        doc = poll_status(tb, c, lambda d: any(e.get("working_profile") == "t2" and (e.get("successes") or 0) > 0
                                               for e in (d.get("reachability") or {}).get("fronts") or []), timeout=20)
        tried = front_profiles(tb, doc)
        res.figure("fronts", tried)
        res.check("a front answered over T2 (reachability.fronts working_profile t2)",
                  any(e["working"] == "t2" and (e["ok"] or 0) > 0 for es in tried.values() for e in es), tried)
        vantage = ((doc.get("reachability") or {}).get("vantage") or {})
        res.figure("vantage", vantage)
        res.check("the fronts saw the client's address via X-Forwarded-For: vantage source_group is ISP A's /16, not the CDN's",
                  vantage.get("source_group") == "10.101.0.0/16", vantage)
    finally:
        tb.stop_client(c)
    # nginx logs a WebSocket request when it ends (the client just stopped).
    deadline = time.monotonic() + 5
    while True:
        access = [line for line in tb.cdn_access_log().splitlines() if "/ws-" in line]
        if any(" 101 " in line for line in access) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    res.figure("cdn_websocket_requests", len(access))
    res.check("the CDN's access log has WebSocket upgrades (101) on the fronts' secret paths from ISP A's client",
              any(" 101 " in line and line.startswith("10.101.0.2 ") for line in access), access[-3:])


CAPTURE_M = 2  # t1_active_probe's capture bound (connections)
CAPTURE_SMALL_N = 512  # t1_sni_allowlist's capture bound (bytes; a T1 ClientHello is ~1.7 KB)


def require_t1(tb, res):
    res.require("every front runs T1 with a cover site", tb.t1_missing is None and
                all(s.cover is not None and s.cover.alive() for s in tb.servers.values() if s.is_front),
                tb.t1_missing or {s.name: s.cover.tail(5) if s.cover else "no cover" for s in tb.servers.values() if s.is_front})


def fronts(tb):
    return [s for s in tb.servers.values() if s.is_front]


def t1_counts(tb):
    """{front name: (switched, outcomes)} from every front's /status carriers.t1."""
    out = {}
    for s in fronts(tb):
        t1 = tb.t1_status(s)
        out[s.name] = (t1.get("switched") or 0, dict(t1.get("outcomes") or {}), t1.get("to_cover") or 0)
    return out


@scenario("ready")
def t1_sni_allowlist(tb, res):
    """ISP A's censor resets every member's T0 port and every front's T3 port, and its classifier
    blocks TLS whose SNI is not one of the fronts' cover names (T2's, to the CDN, dies too) and
    fully encrypted first packets: a client with the ladder ["t0", "t3", "t2", "t1"] converges on
    T1 (SHA-256 right, /status carrier "t1", the other profiles recorded as failed, the front's
    carriers.t1.switched up); a client with carriers ["t0"] fails clearly."""
    require_t1(tb, res)
    x1 = tb.servers["x1"]
    censor = tb.censors["a"]
    ladder = ["t0", "t3", "t2", "t1"] if OBFS4PROXY else ["t0", "t2", "t1"]
    res.figure("ladder", ladder)
    names = sorted(s.cover_name for s in fronts(tb))
    # Both clients fetch the directory before the censor acts (the directory session is T0).
    c0 = tb.start_client(f"sni-t0-{res.run}", "a", socks_port=1104, http_port=8104, admin_port=9104, carriers=["t0"])
    cl = tb.start_client(f"sni-ladder-{res.run}", "a", socks_port=1105, http_port=8105, admin_port=9105, carriers=ladder)
    try:
        before = t1_counts(tb)
        for srv in tb.servers.values():
            censor.reject(srv.ip, TRANSIT_PORT)
            if srv.is_front:
                censor.reject(srv.ip, T3_PORT)
        # A capture with a small byte bound (N = CAPTURE_SMALL_N, below a ClientHello's size): the
        # bound test of --capture-bytes (t1_active_probe pushes past --capture-connections).
        censor.classifier_on(["sni", "fully-encrypted"], sni_allow=names, capture_ports=[T1_PORT], capture_bytes=CAPTURE_SMALL_N,
                             capture_connections=2)
        res.figure("sni_allow", names)

        check_t0_client_blocked(tb, res, c0, x1, "(T0 ports reset)")

        dl = carrier_download(tb, res, cl, x1, 4 * MiB)
        doc = poll_status(tb, cl, lambda d: carrier_of(d, "DE")[0] is not None, timeout=8)
        circuit_carrier, active_carrier = carrier_of(doc, "DE")
        res.figure("ladder_client_carrier", {"circuit": circuit_carrier, "active": active_carrier})
        res.check('ladder client: the DE circuit\'s carrier is "t1"', circuit_carrier == "t1", doc.get("circuits"))
        res.check("ladder client: steering.active agrees", active_carrier == "t1", steering(doc))
        front = tb.server_by_label((circuit_for(doc, "DE") or {}).get("front"))
        res.figure("front", front.name if front else None)
        res.figure("front_key_mode", front.t1_key_mode if front else None)
        tried = front_profiles(tb, doc)
        res.figure("ladder_client_fronts", tried)
        errors = {p for es in tried.values() for e in es for p in e["errors"]}
        res.figure("ladder_client_failed_profiles", sorted(errors))
        for p in ladder[:-1]:
            res.check(f"ladder client: {p} was tried and failed at a front (reachability profile_errors.{p})", p in errors, tried)
        res.check("ladder client: a front works over t1 (working_profile)",
                  any(e["working"] == "t1" for es in tried.values() for e in es), tried)
        after = t1_counts(tb)
        res.figure("t1_switched", {n: after[n][0] - before[n][0] for n in after})
        res.check("the circuit's front switched T1 connections (carriers.t1.switched ≥ 1)",
                  front is not None and front.name in after and after[front.name][0] - before[front.name][0] >= 1,
                  {"front": front.name if front else None, "before": before, "after": after})

        verdicts = censor.verdicts()
        blocked = verdicts.get("block", [])
        passed = verdicts.get("pass", [])
        res.figure("classifier_blocked_rules", sorted({v["rule"] for v in blocked}))
        res.figure("classifier_passed_dsts", sorted({v["dst"] for v in passed}))
        res.check("the classifier blocked T2's TLS to the CDN (its SNI is not a cover name)",
                  any(v["dst"] == f"{CDN_IP}:{CDN_PORT}" and v["rule"] == f"sni-not-allowed:{CDN_NAME}" for v in blocked), blocked[:5])
        res.check("the classifier passed TLS to the fronts' T1 port",
                  any(v["dst"].endswith(f":{T1_PORT}") for v in passed), passed[:5])
        caps = censor.captures()
        longest = max([int(v["bytes"]) for v in passed if v["dst"].endswith(f":{T1_PORT}")] or [0])
        res.figure("capture_small_n", {"n": CAPTURE_SMALL_N, "captured": [c["bytes"] for c in caps], "hello_bytes": longest})
        res.check(f"the capture keeps at most N = {CAPTURE_SMALL_N} bytes of a longer first record",
                  caps and longest > CAPTURE_SMALL_N and all(len(c["data"]) == CAPTURE_SMALL_N == c["bytes"] for c in caps),
                  {"captures": [c["bytes"] for c in caps], "longest_first_record": longest})
    finally:
        censor.classifier_off()
        tb.stop_client(c0)
        tb.stop_client(cl)


def tls_records_shape(a, b, slack=2):
    """Same record types, lengths within `slack` (an ECDSA signature's DER length varies)."""
    return len(a) == len(b) and all(x[0] == y[0] and abs(x[1] - y[1]) <= slack for x, y in zip(a, b))


def probe(tb, ns, target, hello_file):
    p = nsrun(ns, [sys.executable, os.path.join(HERE, "prober.py"), "--connect", target, "--hello-file", hello_file], timeout=20)
    return json.loads(p.stdout)


@scenario("ready")
def t1_active_probe(tb, res):
    """ISP A's censor captures (classifier.py --capture) the T1 ClientHello of a real client that
    downloads through T1, then replays it from the censor router to that front's T1 port: the
    answer is the cover's own flight (same records as the cover sends that hello directly), the
    front counts a replay and switches nothing; openssl s_client (-verify_return_error) and curl
    from ISP A get the cover's verified certificate and its marker page."""
    require_t1(tb, res)
    x1 = tb.servers["x1"]
    censor = tb.censors["a"]
    names = sorted(s.cover_name for s in fronts(tb))
    c = tb.start_client(f"probe-t1-{res.run}", "a", socks_port=1106, http_port=8106, admin_port=9106, carriers=["t1"])
    try:
        # M = 2: the client's own T1 connections, then s_client's and curl's below, push past it.
        censor.classifier_on(["sni"], sni_allow=names, capture_ports=[T1_PORT], capture_connections=CAPTURE_M)
        dl = carrier_download(tb, res, c, x1, 1 * MiB)
        doc = poll_status(tb, c, lambda d: carrier_of(d, "DE")[0] is not None, timeout=8)
        res.check('the client\'s DE circuit carrier is "t1"', carrier_of(doc, "DE")[0] == "t1", doc.get("circuits"))
    finally:
        # The real client stops: from here on only the prober talks to the fronts' T1 ports.
        tb.stop_client(c)
    try:
        caps = censor.captures()
        res.figure("captures", [{k: v for k, v in cap.items() if k != "data"} for cap in caps])
        hellos = [cap for cap in caps if cap["data"][:1] == b"\x16" and classifier.tls_record_length(cap["data"]) == len(cap["data"])]
        res.require("the censor captured a whole TLS ClientHello record of the client's T1 connection", hellos, caps[:2])
        cap = hellos[0]
        front = tb.server_by_ip(cap["dst"].rsplit(":", 1)[0])
        res.require("the capture's destination is a front's T1 port", front is not None and cap["dst"] == f"{front.ip}:{T1_PORT}", cap["dst"])
        res.figure("front", front.name)
        res.figure("front_key_mode", front.t1_key_mode)
        res.figure("hello_bytes", len(cap["data"]))
        sni = classifier.client_hello_sni(cap["data"])
        res.check("the captured hello's SNI is that front's cover name", sni == front.cover_name, sni)
        hello_file = os.path.join(tb.work, f"captured-hello-{res.run}.hex")
        with open(hello_file, "w") as f:
            f.write(cap["data"].hex() + "\n")

        # What the cover itself answers to that hello (from inside the front's namespace).
        direct = probe(tb, front.ns, f"127.0.0.1:{COVER_PORT}", hello_file)
        res.figure("cover_flight", direct["records"])
        res.require("the cover answers the hello with a ServerHello and encrypted records",
                    direct["handshake_types"][:1] == [2] and len(direct["records"]) >= 3, direct)
        before = tb.t1_status(front)
        replayed = probe(tb, censor.ns, f"{front.ip}:{T1_PORT}", hello_file)
        res.figure("replay_flight", replayed["records"])
        res.check("the replayed hello gets a ServerHello", replayed["handshake_types"][:1] == [2], replayed)
        res.check("the replay's answer is the cover's flight (same records, lengths ±2)",
                  tls_records_shape(replayed["records"], direct["records"]), {"replay": replayed, "cover": direct})
        deadline = time.monotonic() + 5
        while True:
            after = tb.t1_status(front)
            if (after.get("outcomes") or {}).get("replay", 0) > (before.get("outcomes") or {}).get("replay", 0) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        replay_delta = (after.get("outcomes") or {}).get("replay", 0) - (before.get("outcomes") or {}).get("replay", 0)
        res.figure("replay_outcomes", replay_delta)
        res.check("the front counted the replay (carriers.t1.outcomes.replay up)", replay_delta >= 1, {"before": before, "after": after})
        res.check("the replayed connection was not switched (carriers.t1.switched unchanged)",
                  after.get("switched") == before.get("switched"), {"before": before, "after": after})

        # The prober sees a real site: verified certificate, h2, the marker page.
        isp = tb.isp_ns["a"]
        p = nsrun(isp, ["openssl", "s_client", "-connect", f"{front.ip}:{T1_PORT}", "-servername", front.cover_name,
                        "-CAfile", front.cover_cert, "-verify_return_error", "-tls1_3", "-alpn", "h2"],
                  input="", check=False, timeout=20)
        out = p.stdout + p.stderr
        res.figure("s_client_rc", p.returncode)
        res.check("openssl s_client -verify_return_error from ISP A: exit 0, Verify return code 0 (ok)",
                  p.returncode == 0 and "Verify return code: 0 (ok)" in out, out[-1500:])
        res.check("openssl s_client: the cover's certificate (CN) and ALPN h2",
                  f"CN = {front.cover_name}" in out or f"CN={front.cover_name}" in out, out[-1500:])
        res.check("openssl s_client: ALPN h2", "ALPN protocol: h2" in out, out[-800:])
        p = nsrun(isp, ["curl", "-sS", "--max-time", "10", "-D", "-", "--cacert", front.cover_cert,
                        "--resolve", f"{front.cover_name}:{T1_PORT}:{front.ip}", f"https://{front.cover_name}:{T1_PORT}/"],
                  check=False, timeout=20)
        res.figure("curl_status_line", (p.stdout.splitlines() or [""])[0].strip()[:40])
        res.check("curl --resolve from ISP A: HTTP/2 200 with the cover's marker page",
                  p.returncode == 0 and p.stdout.startswith("HTTP/2 200") and front.cover_marker in p.stdout,
                  f"rc={p.returncode} {p.stderr[:300]} {p.stdout[:300]}")
        final = tb.t1_status(front)
        res.figure("front_t1", {k: final.get(k) for k in ("switched", "to_cover", "outcomes", "key_mode")})
        res.check("no prober was switched (carriers.t1.switched unchanged)", final.get("switched") == before.get("switched"),
                  {"before": before, "after": final})
        verdicts = censor.verdicts()
        res.check("the classifier passed the probes' TLS to the front (SNI a cover name)",
                  any(v["dst"] == f"{front.ip}:{T1_PORT}" for v in verdicts.get("pass", [])), verdicts.get("pass", [])[:5])
        # The capture bound: more connections to :443 passed the classifier than it may capture.
        to_t1 = [v for v in verdicts.get("pass", []) if v["dst"].endswith(f":{T1_PORT}")]
        caps = censor.captures()
        res.figure("capture_bound", {"connections_to_t1": len(to_t1), "captured": len(caps), "max": CAPTURE_M})
        res.check(f"the capture stops at its bound (M = {CAPTURE_M}) when more connections pass",
                  len(to_t1) > CAPTURE_M and len(caps) == CAPTURE_M and all(len(c["data"]) <= classifier.DEFAULT_MAX_BYTES for c in caps),
                  {"connections_to_t1": len(to_t1), "captured": len(caps)})
    finally:
        censor.classifier_off()


# --------------------------------------------------------------------------------------------
# main

TARGET_STALL_MS = int(os.environ.get("TESTBED_STALL_TARGET_MS", "2000"))
ALL_FILTERED_BOUND_S = int(os.environ.get("TESTBED_UNREACHABLE_BOUND_S", "45"))
AUTO_DELAY_MS = float(os.environ.get("TESTBED_AUTO_DELAY_MS", "150"))

CURRENT = None


def _signal(signum, frame):
    # Once: the teardown that follows must not be interrupted by a second signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted(f"signal {signum}")


def _atexit():
    if CURRENT is not None:
        CURRENT.teardown()


def main():
    global CURRENT
    ap = argparse.ArgumentParser(description="Montana censorship testbed (run via scripts/testbed).")
    ap.add_argument("--scenario", action="append", default=[], help="run only this scenario (repeatable)")
    ap.add_argument("--runs", type=int, default=1, help="run the scenarios N times on one topology")
    ap.add_argument("--keep-logs", metavar="DIR", help="copy every process log (and the alliance files) to DIR")
    ap.add_argument("--list", action="store_true", help="list the scenarios")
    ap.add_argument("--all", action="store_true", help="also run the scenarios marked pending (they need work not done yet)")
    ap.add_argument("--results", default=os.path.join(REPO, ".build", "testbed", "results.json"))
    ap.add_argument("--bin", default=os.environ.get("MONTANA_BIN", os.path.join(REPO, ".build", "debug", "montana")))
    args = ap.parse_args()

    if args.list:
        for fn in SCENARIOS:
            print(f"{fn.__name__:26} [{fn.tag}]  {' '.join((fn.__doc__ or '').split())}")
        return 0
    names = {fn.__name__: fn for fn in SCENARIOS}
    unknown = [s for s in args.scenario if s not in names]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 2
    # Scenarios whose capability is not built yet are PENDING: named loudly, never counted as
    # passed, run only when asked for (--scenario NAME or --all).
    chosen = [fn for fn in SCENARIOS if fn.__name__ in args.scenario or (not args.scenario and (args.all or fn.tag == "ready"))]
    for fn in SCENARIOS:
        if fn not in chosen and not args.scenario:
            log(f"PENDING {fn.__name__}: {fn.tag}; not run (scripts/testbed --scenario {fn.__name__} runs it)")
    if args.runs < 1:
        print("--runs must be ≥ 1", file=sys.stderr)
        return 2
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        print(f"no montana binary at {binary} (build it, or set MONTANA_BIN)", file=sys.stderr)
        return 2

    work = tempfile.mkdtemp(prefix="montana-testbed-")
    tb = Testbed(binary, work)
    CURRENT = tb
    atexit.register(_atexit)
    signal.signal(signal.SIGINT, _signal)
    signal.signal(signal.SIGTERM, _signal)
    results = []
    started = time.monotonic()
    setup_error = None
    interrupted = False
    log(f"testbed: binary {binary}; work and logs in {work}")
    try:
        try:
            tb.setup()
            log(f"testbed: topology up in {tb.setup_seconds:.1f} s (alliance converged in {tb.converged_seconds:.1f} s)")
        except (TestbedError, subprocess.SubprocessError, OSError) as e:
            setup_error = f"setup failed: {e}"
            log(f"FAIL setup: {e}")
        if setup_error is None:
            for run_index in range(1, args.runs + 1):
                for fn in chosen:
                    res = Result(fn.__name__, run_index)
                    t0 = time.monotonic()
                    try:
                        fn(tb, res)
                    except ScenarioFailed as e:
                        res.error = str(e)
                    except (TestbedError, subprocess.SubprocessError, OSError, KeyError, ValueError, TypeError) as e:
                        res.error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
                    res.seconds = time.monotonic() - t0
                    results.append(res)
                    print_result(res, args.runs)
                    try:
                        tb.heal()
                    except (TestbedError, subprocess.SubprocessError, OSError) as e:
                        setup_error = f"could not restore the topology after {fn.__name__}: {e}"
                        log(f"FAIL heal: {e}")
                        break
                if setup_error:
                    break
    except Interrupted as e:
        interrupted = True
        log(f"testbed: interrupted ({e}); cleaning up")
    finally:
        failed = bool(setup_error) or interrupted or any(not r.passed for r in results)
        tails = tb.all_logs_tail() if failed else ""
        tb.teardown()
    total = time.monotonic() - started
    passed = sum(1 for r in results if r.passed)
    summary = {"passed": passed, "failed": len(results) - passed, "runs": args.runs, "seconds": round(total, 1),
               "setup_seconds": round(getattr(tb, "setup_seconds", 0), 1),
               "converged_seconds": round(getattr(tb, "converged_seconds", 0), 1),
               "setup_error": setup_error, "interrupted": interrupted}
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results, "w") as f:
        json.dump({"binary": binary, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "summary": summary,
                   "results": [r.as_json() for r in results]}, f, indent=2)
    if failed and tails:
        log("\n==== log tails (all logs: %s) ====\n%s" % (tb.logs, tails))
    if args.keep_logs:
        dest = os.path.abspath(args.keep_logs)
        shutil.copytree(work, dest, dirs_exist_ok=True)
        log(f"testbed: logs and alliance files copied to {dest}")
    if not failed and not args.keep_logs:
        shutil.rmtree(work, ignore_errors=True)
    log(f"testbed: {passed} passed, {len(results) - passed} failed in {total:.0f} s "
        f"(setup {summary['setup_seconds']} s); results in {args.results}")
    return 1 if failed else 0


def print_result(res, runs):
    status = "PASS" if res.passed else "FAIL"
    run = f" run {res.run}" if runs > 1 else ""
    figs = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in res.figures.items()
                    if k not in ("events", "last_failure") and not k.endswith("_body"))
    log(f"{status} {res.name}{run} {res.seconds:.1f}s {figs}")
    for f in res.failures():
        log(f"     - {f.strip()[:700]}")


if __name__ == "__main__":
    sys.exit(main())
