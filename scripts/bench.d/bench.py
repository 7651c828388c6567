#!/usr/bin/env python3
"""scripts/bench's driver: Montana side by side with its anchors on loopback (issue 10).

Started by scripts/bench (which builds the release binary and installs the anchors); see
docs/BENCHMARKS.md "Method" for what each path is and how CPU is attributed.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CLK = os.sysconf("SC_CLK_TCK")
GIB = 1 << 30
MIB = 1 << 20
PASSWORD = "montana-bench-password"
UUID = "6f1c3c2e-8b8e-4d8e-9a51-0d2f2f6a7b10"
SCENARIOS = ["paths", "anchors", "streams", "handshake", "rtt", "carriers"]
CURL_PARALLEL_CAP = 250  # curl 7.88 caps --parallel-max at 300; more streams = more curl processes


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, host="127.0.0.1", timeout=30, proc=None, what="", logfile=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = open(logfile).read()[-2000:] if logfile and os.path.exists(logfile) else ""
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {host}:{port}\n{tail}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout} s")


# ---------------------------------------------------------------- /proc


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(stat_fields(d)[1])
            except (OSError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    return kids


def descendants(pid, kids=None):
    kids = kids if kids is not None else children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def tree_cpu(pid):
    """utime+stime (+ reaped children's) of pid and its live descendants, in seconds."""
    total = 0
    for p in [pid] + descendants(pid):
        try:
            f = stat_fields(p)
        except OSError:
            continue
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / CLK


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[3] + v[4], sum(v[:8])  # idle + iowait, total


IDLE_WARNINGS = []
IDLE_MISSES = [0]


def wait_idle(label, threshold=0.90, sample=1.0, max_wait=20.0):
    """Until the machine is ≥ 90 % idle over `sample` s (bounded: warn and go on). After two
    misses in a row the machine is taken as busy and later waits are cut to 3 s until one succeeds."""
    if IDLE_MISSES[0] >= 2:
        max_wait = min(max_wait, 3.0)
    start = time.time()
    best = 0.0
    while True:
        i0, t0 = cpu_times()
        time.sleep(sample)
        i1, t1 = cpu_times()
        idle = (i1 - i0) / max(1, t1 - t0)
        best = max(best, idle)
        if idle >= threshold:
            IDLE_MISSES[0] = 0
            return idle
        if time.time() - start > max_wait:
            IDLE_MISSES[0] += 1
            IDLE_WARNINGS.append(f"{label}: machine never ≥ {threshold:.0%} idle within {max_wait:.0f} s (best {best:.0%})")
            log(f"warning: {IDLE_WARNINGS[-1]}")
            return idle


# ---------------------------------------------------------------- processes


class Procs:
    """Everything this run starts, stopped by PID (and their descendants by PID) at the end."""

    def __init__(self, work):
        self.work = work
        self.started = []  # (name, Popen)
        self.extra_pids = []

    def start(self, name, argv, cwd=None, cpu=None):
        logfile = os.path.join(self.work, f"{name}.log")
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv
        out = open(logfile, "w")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd)
        out.close()
        self.started.append((name, p))
        p.logfile = logfile
        return p

    def stop_all(self):
        kids = children_map()
        victims = []
        for name, p in reversed(self.started):
            if p.poll() is None:
                victims.append((name, p.pid, descendants(p.pid, kids)))
        for pid in self.extra_pids:
            victims.append(("extra", pid, descendants(pid, kids)))
        for _, pid, _ in victims:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 8
        for name, p in self.started:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        for _, pid, desc in victims:
            for q in [pid] + desc:
                try:
                    os.kill(q, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for name, p in self.started:
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass


# ---------------------------------------------------------------- curl


def curl_base(path):
    return ["curl", "-q", "-sS", "--max-time", "120"] + path.get("curl", [])


def single_stream(path, url, expect, max_time=None):
    argv = curl_base(path) + ["-o", "/dev/null", "-w", "%{size_download} %{time_total}", url]
    if max_time:
        argv[4] = str(max_time)
    r = subprocess.run(argv, capture_output=True, text=True)
    n, t = r.stdout.split()[:2] if r.stdout.strip() else ("0", "1")
    n, t = int(float(n)), float(t)
    if max_time is None and n != expect:
        return None, n, t, r.stderr.strip()[-300:]
    return n / t / 1e6, n, t, ""


def ttfb(path, url, count):
    values = []
    for _ in range(count):
        r = subprocess.run(curl_base(path) + ["-o", "/dev/null", "-w", "%{time_starttransfer} %{http_code}", url],
                           capture_output=True, text=True)
        parts = r.stdout.split()
        if r.returncode == 0 and len(parts) == 2 and parts[1] == "200":
            values.append(float(parts[0]) * 1000)
    return statistics.median(values) if values else None, count - len(values)


SERVER_CLOSE = []  # ["-H", "Connection: close"] with --server-close


def parallel_fetch(path, base_url, count, expect, work, tag, per_curl=CURL_PARALLEL_CAP, timeout=180, max_time=30):
    """`count` fresh fetches at once (ceil(count / per_curl) curl -Z processes started together,
    --parallel-immediate: every transfer opens its own connection). Returns (wall ms, successes,
    failures, {error: n})."""
    groups = [list(range(i, min(count, i + per_curl))) for i in range(0, count, per_curl)]
    files = []
    for g, ids in enumerate(groups):
        fn = os.path.join(work, f"urls-{tag}-{g}.txt")
        with open(fn, "w") as f:
            for i in ids:
                f.write(f'url = "{base_url}?i={i}"\noutput = "/dev/null"\n')
        files.append((fn, len(ids)))
    start = time.time()
    base = curl_base(path)
    base[base.index("--max-time") + 1] = str(max_time)
    procs = [subprocess.Popen(base + ["-Z", "--parallel-immediate", "--parallel-max", str(n),
                                                 *SERVER_CLOSE, "-K", fn,
                                                 "-w", "%{http_code} %{size_download}\\n"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for fn, n in files]
    ok = failed = 0
    errors = {}
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            errors["timed out"] = errors.get("timed out", 0) + 1
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "200" and int(float(parts[1])) == expect:
                ok += 1
            else:
                failed += 1
                if len(parts) != 2:
                    key = f"curl printed {line[:40]!r}"
                elif parts[0] == "200":
                    key = "HTTP 200 with a short body"
                else:
                    key = f"HTTP {parts[0]}"
                errors[key] = errors.get(key, 0) + 1
        for line in err.splitlines():
            m = re.match(r"curl: \((\d+)\) (.*)", line)
            if m:
                key = f"({m.group(1)}) " + re.sub(r"\d+", "N", m.group(2))[:90]
                errors[key] = errors.get(key, 0) + 1
    wall = (time.time() - start) * 1000
    failed = max(failed, count - ok)
    return wall, ok, failed, errors


# ---------------------------------------------------------------- the anchors


def start_nginx(procs, work, files_dir):
    port = free_port()
    prefix = os.path.join(work, "nginx")
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
daemon off;
user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {files_dir};
    }}
}}
""")
    p = procs.start("nginx", ["nginx", "-p", prefix, "-c", conf, "-e", f"{prefix}/logs/error.log"])
    wait_port(port, proc=p, what="nginx", logfile=p.logfile)
    return port, p


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)


def start_anchors(procs, work, origin):
    paths = []
    paths.append({"key": "direct", "label": "direct (curl → nginx)", "curl": [], "host": f"127.0.0.1:{origin}", "pids": {}})

    relay = free_port()
    p = procs.start("socat", ["socat", "-b", "131072", f"TCP-LISTEN:{relay},bind=127.0.0.1,reuseaddr,fork,backlog=4096",
                              f"TCP:127.0.0.1:{origin}"])
    wait_port(relay, proc=p, what="socat")
    paths.append({"key": "socat", "label": "socat relay, 128 KiB buffers", "curl": [], "host": f"127.0.0.1:{relay}",
                  "pids": {"front": [p.pid]}})

    method = "chacha20-ietf-poly1305"
    ss_b = free_port()
    exit_b = procs.start("ss-server-exit", ["ss-server", "-s", "127.0.0.1", "-p", str(ss_b), "-k", PASSWORD, "-m", method])
    ss_l = free_port()
    local1 = procs.start("ss-local-1hop", ["ss-local", "-s", "127.0.0.1", "-p", str(ss_b), "-l", str(ss_l), "-b", "127.0.0.1",
                                           "-k", PASSWORD, "-m", method])
    for port, pr, what in ((ss_b, exit_b, "ss-server"), (ss_l, local1, "ss-local")):
        wait_port(port, proc=pr, what=what)
    paths.append({"key": "ss1", "label": "shadowsocks-libev chacha20-ietf-poly1305, 1 hop",
                  "curl": ["--socks5-hostname", f"127.0.0.1:{ss_l}"], "host": f"127.0.0.1:{origin}",
                  "pids": {"client": [local1.pid], "exit": [exit_b.pid]}, "socks": ss_l})

    # 2 hops nested: ss-local (keys of exit B) → ss-tunnel (keys of relay A, tunnel to B) →
    # ss-server A → ss-server B → origin. A sees only B's ciphertext, as a Montana front does.
    ss_a = free_port()
    front_a = procs.start("ss-server-relay", ["ss-server", "-s", "127.0.0.1", "-p", str(ss_a), "-k", PASSWORD + "-a", "-m", method])
    tun = free_port()
    tunnel = procs.start("ss-tunnel", ["ss-tunnel", "-s", "127.0.0.1", "-p", str(ss_a), "-l", str(tun), "-b", "127.0.0.1",
                                       "-k", PASSWORD + "-a", "-m", method, "-L", f"127.0.0.1:{ss_b}"])
    ss_l2 = free_port()
    local2 = procs.start("ss-local-2hop", ["ss-local", "-s", "127.0.0.1", "-p", str(tun), "-l", str(ss_l2), "-b", "127.0.0.1",
                                           "-k", PASSWORD, "-m", method])
    for port, pr, what in ((ss_a, front_a, "ss-server relay"), (tun, tunnel, "ss-tunnel"), (ss_l2, local2, "ss-local")):
        wait_port(port, proc=pr, what=what)
    paths.append({"key": "ss2", "label": "shadowsocks-libev, 2 hops nested (ss-local → ss-tunnel → ss-server → ss-server)",
                  "curl": ["--socks5-hostname", f"127.0.0.1:{ss_l2}"], "host": f"127.0.0.1:{origin}",
                  "pids": {"client": [local2.pid, tunnel.pid], "front": [front_a.pid], "exit": [exit_b.pid]}})

    # v2ray: VMess (AEAD header, alterId 0) with aes-128-gcm; 2 hops through a dokodemo-door relay
    # that forwards the client's VMess connection to the exit without decrypting it.
    vexit = free_port()
    write_json(f"{work}/v2-exit.json", {"log": {"loglevel": "none"},
               "inbounds": [{"listen": "127.0.0.1", "port": vexit, "protocol": "vmess",
                             "settings": {"clients": [{"id": UUID, "alterId": 0}]}}],
               "outbounds": [{"protocol": "freedom"}]})
    vrelay = free_port()
    write_json(f"{work}/v2-relay.json", {"log": {"loglevel": "none"},
               "inbounds": [{"listen": "127.0.0.1", "port": vrelay, "protocol": "dokodemo-door",
                             "settings": {"address": "127.0.0.1", "port": vexit, "network": "tcp"}}],
               "outbounds": [{"protocol": "freedom"}]})
    vc = {}
    for hops, server in ((1, vexit), (2, vrelay)):
        vc[hops] = free_port()
        write_json(f"{work}/v2-client{hops}.json", {"log": {"loglevel": "none"},
                   "inbounds": [{"listen": "127.0.0.1", "port": vc[hops], "protocol": "socks", "settings": {"auth": "noauth", "udp": False}}],
                   "outbounds": [{"protocol": "vmess", "settings": {"vnext": [{"address": "127.0.0.1", "port": server,
                                  "users": [{"id": UUID, "alterId": 0, "security": "aes-128-gcm"}]}]}}]})
    v_exit = procs.start("v2ray-exit", ["v2ray", "-config", f"{work}/v2-exit.json"])
    v_relay = procs.start("v2ray-relay", ["v2ray", "-config", f"{work}/v2-relay.json"])
    v_c1 = procs.start("v2ray-client1", ["v2ray", "-config", f"{work}/v2-client1.json"])
    v_c2 = procs.start("v2ray-client2", ["v2ray", "-config", f"{work}/v2-client2.json"])
    for port, pr, what in ((vexit, v_exit, "v2ray exit"), (vrelay, v_relay, "v2ray relay"), (vc[1], v_c1, "v2ray client"),
                           (vc[2], v_c2, "v2ray client")):
        wait_port(port, proc=pr, what=what, logfile=pr.logfile)
    paths.append({"key": "v2ray1", "label": "v2ray VMess aes-128-gcm, 1 hop", "curl": ["--socks5-hostname", f"127.0.0.1:{vc[1]}"],
                  "host": f"127.0.0.1:{origin}", "pids": {"client": [v_c1.pid], "exit": [v_exit.pid]}})
    paths.append({"key": "v2ray2", "label": "v2ray VMess, 2 hops (client → dokodemo-door relay → exit)",
                  "curl": ["--socks5-hostname", f"127.0.0.1:{vc[2]}"], "host": f"127.0.0.1:{origin}",
                  "pids": {"client": [v_c2.pid], "front": [v_relay.pid], "exit": [v_exit.pid]}})
    return paths, {"ss_server_port": ss_b, "ss_method": method}


# ---------------------------------------------------------------- Montana


def http_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def montana_client_config(work, name, account_dir, alliance_file, socks, admin, front, front_endpoint, exit_city):
    text = f"""# scripts/bench: a real `montana client` with the demo's nodes as static members
[client]
account_key = "{account_dir}/account.key"
alliance = "{alliance_file}"
socks = "127.0.0.1:{socks}"
admin = "127.0.0.1:{admin}"
cache = "{work}/{name}-cache.sqlite"

[log]
level = "warning"

[[members]]
node_id = "{front['node_id']}"
kem_pk = "{front['kem_pk']}"
endpoint = "{front_endpoint}"
roles = ["front"]

[[members]]
node_id = "{exit_city['node_id']}"
kem_pk = "{exit_city['kem_pk']}"
endpoint = "{exit_city['transit']['host']}:{exit_city['transit']['port']}"
country = "{exit_city['country']}"
roles = ["exit"]
"""
    fn = os.path.join(work, f"{name}.toml")
    with open(fn, "w") as f:
        f.write(text)
    return fn


def start_montana(procs, work, binary, origin):
    demo_dir = os.path.join(work, "demo")
    status_file = os.path.join(work, "demo-status.json")
    demo = procs.start("montana-demo", [binary, "demo", "--quiet", "--socks", f"127.0.0.1:{free_port()}",
                                        "--http", f"127.0.0.1:{free_port()}", "--status-json", status_file,
                                        "--dir", demo_dir, "--admin", f"127.0.0.1:{free_port()}"])
    deadline = time.time() + 150
    while not (os.path.exists(status_file) and os.path.getsize(status_file) > 0):
        if demo.poll() is not None:
            raise RuntimeError("montana demo exited:\n" + open(demo.logfile).read()[-3000:])
        if time.time() > deadline:
            raise RuntimeError("montana demo did not come up within 150 s:\n" + open(demo.logfile).read()[-3000:])
        time.sleep(0.3)
    time.sleep(0.2)
    status = json.load(open(status_file))
    cities = {c["name"]: c for c in status["cities"]}
    procs.extra_pids += [c["pid"] for c in status["cities"]]
    exit_city = cities["berlin"]
    front_city = next(c for c in status["cities"] if c["roles"] == ["front"])  # warsaw: a front only
    subprocess.run([binary, "keygen", "account", "--out", f"{work}/account"], check=True, capture_output=True)
    alliance_file = status["alliance"]["file"]
    socks, admin = free_port(), free_port()
    cfg = montana_client_config(work, "client", f"{work}/account", alliance_file, socks, admin, front_city,
                                f"{front_city['transit']['host']}:{front_city['transit']['port']}", exit_city)
    client = procs.start("montana-client", [binary, "client", "run", "--config", cfg])
    wait_port(socks, proc=client, what="montana client", logfile=client.logfile)
    user = f"node-{exit_city['node_id'][:16]}:x"
    path = {"key": "montana", "label": f"montana, client → front ({front_city['name']}) → exit ({exit_city['name']}), T0",
            "curl": ["--socks5-hostname", f"127.0.0.1:{socks}", "--proxy-user", user], "host": f"127.0.0.1:{origin}",
            "pids": {"client": [client.pid], "front": [front_city["pid"]], "exit": [exit_city["pid"]]},
            "admin": admin, "demo_pid": status["pid"],
            "exit_admin": f"{exit_city['admin']['host']}:{exit_city['admin']['port']}"}
    # Warm up: the session exists before anything is measured, and /status names its front and exit.
    r = subprocess.run(curl_base(path) + ["-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{origin}/1k.bin"],
                       capture_output=True, text=True)
    if r.stdout != "200":
        raise RuntimeError(f"montana warm-up fetch failed: {r.stdout} {r.stderr}\n" + open(client.logfile).read()[-2000:])
    st = http_json(f"http://127.0.0.1:{admin}/status")
    path["status_circuits"] = st.get("circuits", st.get("steering", {}))
    info = {"demo": status, "front": front_city, "exit": exit_city, "alliance_file": alliance_file, "client_status": st}
    return path, info


def circuit_check(path, info):
    """The session's front and exit as the client reports them (/status, refreshed each second):
    they must be the processes whose CPU is charged to "front" and "exit"."""
    deadline = time.time() + 5
    seen = []
    while time.time() < deadline and not seen:
        st = http_json(f"http://127.0.0.1:{path['admin']}/status")
        seen = [(c.get("front", ""), c.get("exit", "")) for c in st.get("circuits") or [] if isinstance(c, dict)]
        if not seen:
            time.sleep(0.5)
    want = (info["front"]["node_id"], info["exit"]["node_id"])
    ok = bool(seen) and all(want[0].startswith(f.split("…")[0]) and want[1].startswith(e.split("…")[0]) for f, e in seen)
    if not ok:
        raise RuntimeError(f"the client's circuits {seen} are not front {info['front']['name']} → exit {info['exit']['name']}")
    return seen


def exit_memory(exit_admin):
    """The exit's /status heap in use (bytes) and open egress connections, or (None, None)."""
    try:
        st = http_json(f"http://{exit_admin}/status", timeout=1)
    except Exception:
        return None, None
    return (st.get("memory") or {}).get("heap_in_use_bytes"), (st.get("egress_connections") or {}).get("open")


def streams_active(admin):
    try:
        st = http_json(f"http://127.0.0.1:{admin}/status", timeout=1)
    except Exception:
        return None
    return sum(c.get("streams_active", 0) for c in st.get("circuits") or [] if isinstance(c, dict))


# ---------------------------------------------------------------- handshake load


def handshake_load(procs, work, binary, duration, concurrency, sources):
    d = os.path.join(work, "hs")
    run = lambda *a: subprocess.run([binary, *a], check=True, capture_output=True, text=True).stdout
    run("alliance", "init", d, "--name", "bench-handshake")
    run("keygen", "node", "--out", f"{d}/node")
    run("alliance", "endorse", "--secret", f"{d}/alliance.secret", "--node", f"{d}/node/node.pub.json",
        "--operator", "bench", "--out", f"{d}/node/endorsement.json")
    transit, admin = free_port(), free_port()
    high = 100000
    cfg = f"""# scripts/bench: an exit with admission budgets raised far above one core, so the
# handshake load measures CPU, not [limits]/[admission] budgets.
[node]
identity_key = "identity.key"
kem_key = "kem.key"
roles = ["front", "exit"]
country = "DE"
operator = "bench"
alliance = "../alliance.json"
endorsement = "endorsement.json"

[listen]
transit = "127.0.0.1:{transit}"
admin = "127.0.0.1:{admin}"
public_host = "127.0.0.1"

[limits]
handshakes_per_second = {high}
circuits_per_source = 4096

[admission]
source_prefaces_per_second = {high}
source_preface_burst = {high}
network_prefaces_per_second = {high}
network_preface_burst = {high}
node_prefaces_per_second = {high}
node_preface_burst = {high}
circuits_per_network = 4096

[exit]
admission = "any-account"
policy = "default-allow"

[log]
level = "warning"
"""
    with open(f"{d}/node/node.toml", "w") as f:
        f.write(cfg)
    link = run("node", "link", "--config", f"{d}/node/node.toml").strip()
    run("subscription", "create", "--alliance", f"{d}/alliance.json", "--bootstrap", link, "--out", f"{d}/sub.json")
    node = procs.start("hs-exit", [binary, "node", "run", "--config", f"{d}/node/node.toml"], cpu=0)
    wait_port(transit, proc=node, what="handshake bench exit", logfile=node.logfile)
    time.sleep(1.0)
    wait_idle("handshake load")
    e0, t0 = tree_cpu(node.pid), time.time()
    gen = subprocess.Popen(["taskset", "-c", "1", binary, "bench", "handshake-load", "--subscription", f"{d}/sub.json",
                            "--exit", f"127.0.0.1:{transit}", "--concurrency", str(concurrency), "--duration", str(duration),
                            "--sources", str(sources), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The generator's own CPU (initiator side), read just before it exits.
    gen_cpu = 0.0
    while gen.poll() is None:
        try:
            gen_cpu = tree_cpu(gen.pid)
        except Exception:
            pass
        time.sleep(0.2)
    out, err = gen.communicate()
    e1, t1 = tree_cpu(node.pid), time.time()
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except Exception:
        raise RuntimeError(f"handshake-load failed: {out}\n{err}")
    ok = max(1, result["handshakes"])
    result["exit_cpu_ms_per_handshake"] = (e1 - e0) * 1000 / ok
    result["exit_core_busy"] = (e1 - e0) / max(0.001, t1 - t0)
    result["generator_cpu_ms_per_handshake"] = gen_cpu * 1000 / ok
    result["exit_capacity_per_core"] = 1000 / result["exit_cpu_ms_per_handshake"] if result["handshakes"] else 0
    return result


# ---------------------------------------------------------------- 50 ms RTT


def rtt_paths(procs, work, binary, origin, minfo, anchors):
    delay = [sys.executable, os.path.join(HERE, "delayrelay.py"), "--delay-ms", "25", "--buffer-mib", "16"]
    out = []
    d_direct = free_port()
    p = procs.start("delay-direct", delay + ["--listen", f"127.0.0.1:{d_direct}", "--to", f"127.0.0.1:{origin}"])
    wait_port(d_direct, proc=p, what="delay relay")
    out.append({"key": "rtt-direct", "label": "direct TCP through the 50 ms relay", "curl": [], "host": f"127.0.0.1:{d_direct}"})

    d_ss = free_port()
    p = procs.start("delay-ss", delay + ["--listen", f"127.0.0.1:{d_ss}", "--to", f"127.0.0.1:{anchors['ss_server_port']}"])
    ss_l = free_port()
    q = procs.start("ss-local-rtt", ["ss-local", "-s", "127.0.0.1", "-p", str(d_ss), "-l", str(ss_l), "-b", "127.0.0.1",
                                     "-k", PASSWORD, "-m", anchors["ss_method"]])
    wait_port(d_ss, proc=p, what="delay relay")
    wait_port(ss_l, proc=q, what="ss-local")
    out.append({"key": "rtt-ss1", "label": "shadowsocks-libev 1 hop, ss-local → 50 ms relay → ss-server",
                "curl": ["--socks5-hostname", f"127.0.0.1:{ss_l}"], "host": f"127.0.0.1:{origin}"})

    front, exit_city = minfo["front"], minfo["exit"]
    d_m = free_port()
    p = procs.start("delay-montana", delay + ["--listen", f"127.0.0.1:{d_m}",
                                              "--to", f"{front['transit']['host']}:{front['transit']['port']}"])
    wait_port(d_m, proc=p, what="delay relay")
    socks, admin = free_port(), free_port()
    cfg = montana_client_config(work, "client-rtt", f"{work}/account", minfo["alliance_file"], socks, admin, front,
                                f"127.0.0.1:{d_m}", exit_city)
    c = procs.start("montana-client-rtt", [binary, "client", "run", "--config", cfg])
    wait_port(socks, proc=c, what="montana client (rtt)", logfile=c.logfile)
    path = {"key": "rtt-montana", "label": f"montana, client → 50 ms relay → front ({front['name']}) → exit ({exit_city['name']})",
            "curl": ["--socks5-hostname", f"127.0.0.1:{socks}", "--proxy-user", f"node-{exit_city['node_id'][:16]}:x"],
            "host": f"127.0.0.1:{origin}"}
    r = subprocess.run(curl_base(path) + ["-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{origin}/1k.bin"],
                       capture_output=True, text=True)
    if r.stdout != "200":
        raise RuntimeError(f"montana (rtt) warm-up failed: {r.stdout} {r.stderr}")
    out.append(path)
    return out


# ---------------------------------------------------------------- carriers side by side


CARRIERS = ["t0", "t1", "t2", "t3"]
T1_COVER_NAME = "cover.example"
T1_SHORT_ID = "5e1f00aa"
T2_PATH = "/ws-bench-" + "q8Zr3kLm5VxN2pT7"
CARRIER_WHAT = {
    "t0": "T0: the front's transit port (Noise_PQ session end to end; the front relays ciphertext, splice(2) for bulk)",
    "t1": "T1: relay-and-tag TLS 1.3 via the nginx cover, then one ChaCha20-Poly1305 record layer each way at client and front",
    "t2": "T2: WebSocket over the node's own TLS (tls_cert/tls_key), secret path",
    "t3": "T3: obfs4 (obfs4proxy child processes at client and front, counted in their CPU)",
}


def make_certificates(work, name):
    """A CA and a leaf for `name` signed by it (EC P-256, two days), with openssl (as the E2E tests do)."""
    d = os.path.join(work, f"certs-{name}")
    os.makedirs(d, exist_ok=True)
    p = lambda n: os.path.join(d, n)
    with open(p("leaf.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    steps = [
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", p("ca.key"),
         "-out", p("ca.crt"), "-days", "2", "-subj", "/CN=Montana Bench CA"],
        ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", p("leaf.key"),
         "-out", p("leaf.csr"), "-subj", f"/CN={name}"],
        ["x509", "-req", "-in", p("leaf.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial",
         "-out", p("leaf.crt"), "-days", "2", "-extfile", p("leaf.ext")],
    ]
    for argv in steps:
        r = subprocess.run(["openssl"] + argv, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(argv)}: {r.stderr[-500:]}")
    return p("ca.crt"), p("leaf.crt"), p("leaf.key")


def start_t1_cover(procs, work):
    """nginx from scripts/nginx/t1-cover.conf.template: a real TLS 1.3 + h2 site on loopback."""
    _, cert, key = make_certificates(work, T1_COVER_NAME)
    prefix = os.path.join(work, "t1-cover")
    os.makedirs(os.path.join(prefix, "html"), exist_ok=True)
    with open(os.path.join(prefix, "html", "index.html"), "w") as f:
        f.write("<!DOCTYPE html>\n<html><body><h1>The cover site</h1></body></html>\n")
    port = free_port()
    template = open(os.path.join(HERE, "..", "nginx", "t1-cover.conf.template")).read()
    conf = (template.replace("@PREFIX@", prefix).replace("@LISTEN@", f"127.0.0.1:{port}")
            .replace("@CERT@", cert).replace("@KEY@", key).replace("@NAME@", T1_COVER_NAME))
    fn = os.path.join(prefix, "nginx.conf")
    with open(fn, "w") as f:
        f.write(conf)
    p = procs.start("t1-cover-nginx", ["nginx", "-p", prefix, "-c", fn, "-e", f"{prefix}/error.log"])
    wait_port(port, proc=p, what="T1 cover nginx", logfile=p.logfile)
    return port, p


def node_keys(binary, d):
    subprocess.run([binary, "keygen", "node", "--out", d], check=True, capture_output=True, timeout=60)
    pub = json.load(open(os.path.join(d, "node.pub.json")))
    return pub["node_id"], pub["kem_pk"]


def start_carrier_nodes(procs, work, binary):
    """One dedicated exit and one dedicated front (real `montana node --config` processes): the
    front offers T0, T1 (own key, nginx cover), T2 (its own TLS) and T3 (obfs4proxy) and relays to
    the exit, listed in its [[peers]]."""
    base = os.path.join(work, "carriers")
    exit_dir, front_dir = os.path.join(base, "exit"), os.path.join(base, "front")
    exit_id, exit_kem = node_keys(binary, exit_dir)
    front_id, front_kem = node_keys(binary, front_dir)
    exit_transit, exit_admin = free_port(), free_port()
    with open(os.path.join(exit_dir, "node.toml"), "w") as f:
        f.write(f"""# scripts/bench carriers: the exit (no alliance; reached through the front's [[peers]])
[node]
identity_key = "identity.key"
kem_key = "kem.key"
roles = ["exit"]
country = "DE"

[listen]
transit = "127.0.0.1:{exit_transit}"
admin = "127.0.0.1:{exit_admin}"

[log]
level = "warning"

[exit]
admission = "any-account"
policy = "default-allow"
allow = []
# the bench's nginx origin listens on loopback
allow_private = ["127.0.0.0/8"]
""")
    exit_node = procs.start("carriers-exit", [binary, "node", "--config", os.path.join(exit_dir, "node.toml")])

    cover_port, cover = start_t1_cover(procs, work)
    subprocess.run([binary, "keygen", "t1", "--out", front_dir], check=True, capture_output=True, timeout=60)
    t1_pk = json.load(open(os.path.join(front_dir, "t1.pub.json")))["x25519_pk"]
    t2_ca, t2_cert, t2_key = make_certificates(work, "localhost")
    transit, admin, t1_port, t2_port, t3_port = (free_port() for _ in range(5))
    with open(os.path.join(front_dir, "node.toml"), "w") as f:
        f.write(f"""# scripts/bench carriers: the front, with every carrier (docs/BENCHMARKS.md "Carriers side by side")
[node]
identity_key = "identity.key"
kem_key = "kem.key"
roles = ["front"]

[listen]
transit = "127.0.0.1:{transit}"
admin = "127.0.0.1:{admin}"

[log]
level = "warning"

[[peers]]
node_id = "{exit_id}"
kem_pk = "{exit_kem}"
endpoint = "127.0.0.1:{exit_transit}"
country = "DE"
roles = ["exit"]

[carriers.tls]
listen = "127.0.0.1:{t1_port}"
cover = "127.0.0.1:{cover_port}"
sni = ["{T1_COVER_NAME}"]
key = "t1.key"
short_ids = ["{T1_SHORT_ID}"]

[carriers.ws]
listen = "127.0.0.1:{t2_port}"
path = "{T2_PATH}"
tls_cert = "{t2_cert}"
tls_key = "{t2_key}"

[carriers.obfs4]
listen = "127.0.0.1:{t3_port}"
""")
    front = procs.start("carriers-front", [binary, "node", "--config", os.path.join(front_dir, "node.toml")])
    for port, p, what in ((exit_transit, exit_node, "carriers exit"), (exit_admin, exit_node, "carriers exit admin"),
                          (transit, front, "carriers front"), (admin, front, "carriers front admin"),
                          (t1_port, front, "carriers front T1"), (t2_port, front, "carriers front T2"),
                          (t3_port, front, "carriers front T3")):
        wait_port(port, proc=p, what=what, logfile=p.logfile, timeout=60)
    # T3: the cert obfs4proxy generated, as the front publishes it (/status → carriers.t3.params).
    deadline = time.time() + 30
    t3 = {}
    while time.time() < deadline:
        t3 = (http_json(f"http://127.0.0.1:{admin}/status").get("carriers") or {}).get("t3") or {}
        if t3.get("state") == "running" and t3.get("params"):
            break
        time.sleep(0.3)
    else:
        raise RuntimeError(f"the carriers front's T3 is not running with params: {t3}\n" + open(front.logfile).read()[-2000:])
    endpoints = {
        "t0": None,
        "t1": f'{{ profile = "t1", endpoint = "127.0.0.1:{t1_port}", params = "pbk={t1_pk}&sid={T1_SHORT_ID}&sni={T1_COVER_NAME}" }}',
        "t2": f'{{ profile = "t2", endpoint = "127.0.0.1:{t2_port}", params = "host=localhost&path={T2_PATH}&sni=localhost" }}',
        "t3": f'{{ profile = "t3", endpoint = "127.0.0.1:{t3_port}", params = "{t3["params"]}" }}',
    }
    return {"front": {"pid": front.pid, "node_id": front_id, "kem_pk": front_kem, "transit": transit, "admin": admin,
                      "ports": {"t0": transit, "t1": t1_port, "t2": t2_port, "t3": t3_port}},
            "exit": {"pid": exit_node.pid, "node_id": exit_id, "kem_pk": exit_kem, "transit": exit_transit, "admin": exit_admin},
            "cover": {"pid": cover.pid, "port": cover_port}, "endpoints": endpoints, "t2_ca": t2_ca}


def carrier_client(procs, work, binary, info, profile, origin):
    """A `montana client` whose ladder is exactly `profile`, members: the front (with that carrier's
    endpoint) and the exit (T0), static, no alliance."""
    d = os.path.join(work, "carriers", f"client-{profile}")
    subprocess.run([binary, "keygen", "account", "--out", d], check=True, capture_output=True, timeout=60)
    socks, admin = free_port(), free_port()
    fr, ex = info["front"], info["exit"]
    ep = info["endpoints"][profile]
    extra = f't2_ca_file = "{info["t2_ca"]}"\n' if profile == "t2" else ""
    with open(os.path.join(d, "client.toml"), "w") as f:
        f.write(f"""# scripts/bench carriers: a client whose only carrier is {profile}
[client]
account_key = "account.key"
socks = "127.0.0.1:{socks}"
admin = "127.0.0.1:{admin}"
cache = "cache.sqlite"
probe_interval_seconds = 0
carriers = ["{profile}"]
{extra}
[log]
level = "warning"

[[members]]
node_id = "{fr['node_id']}"
kem_pk = "{fr['kem_pk']}"
endpoint = "127.0.0.1:{fr['transit']}"
roles = ["front"]
{f"carriers = [{ep}]" if ep else ""}

[[members]]
node_id = "{ex['node_id']}"
kem_pk = "{ex['kem_pk']}"
endpoint = "127.0.0.1:{ex['transit']}"
country = "DE"
roles = ["exit"]
""")
    c = procs.start(f"carriers-client-{profile}", [binary, "client", "run", "--config", os.path.join(d, "client.toml")], cwd=d)
    wait_port(socks, proc=c, what=f"montana client ({profile})", logfile=c.logfile)
    path = {"key": f"carrier-{profile}", "profile": profile, "label": CARRIER_WHAT[profile],
            "curl": ["--socks5-hostname", f"127.0.0.1:{socks}", "--proxy-user", f"node-{ex['node_id'][:16]}:x"],
            "host": f"127.0.0.1:{origin}", "admin": admin,
            "pids": {"client": [c.pid], "front": [fr["pid"]], "exit": [ex["pid"]]}}
    # Warm up, then the client's /status must show this carrier, this front and this exit.
    r = subprocess.run(curl_base(path) + ["-o", "/dev/null", "-w", "%{http_code}", f"http://{path['host']}/1k.bin"],
                       capture_output=True, text=True)
    if r.stdout != "200":
        raise RuntimeError(f"carrier {profile}: warm-up fetch failed: {r.stdout} {r.stderr}\n" + open(c.logfile).read()[-2000:])
    deadline = time.time() + 10
    seen = []
    while time.time() < deadline and not seen:
        st = http_json(f"http://127.0.0.1:{admin}/status")
        seen = [(x.get("carrier", ""), x.get("front", ""), x.get("exit", "")) for x in st.get("circuits") or [] if isinstance(x, dict)]
        if not seen:
            time.sleep(0.3)
    ok = bool(seen) and all(cr == profile and fr["node_id"].startswith(f.split("…")[0]) and ex["node_id"].startswith(e.split("…")[0])
                            for cr, f, e in seen)
    if not ok:
        raise RuntimeError(f"carrier {profile}: the client's circuits (carrier, front, exit) {seen} are not "
                           f"{profile}, {fr['node_id'][:16]}…, {ex['node_id'][:16]}…")
    path["status_circuits"] = seen
    return path


def carriers_scenario(procs, work, binary, origin, size, runs, notes):
    log("carriers: one front (T0, T1 + nginx cover, T2, T3 + obfs4proxy) and one exit, 4 clients")
    info = start_carrier_nodes(procs, work, binary)
    paths = [carrier_client(procs, work, binary, info, prof, origin) for prof in CARRIERS]
    log("carriers: circuits " + "; ".join(f"{p['profile']}: {p['status_circuits'][0][0]}" for p in paths))
    res = {p["profile"]: {"label": p["label"], "mbps": [], "cpu": {"client": [], "front": [], "exit": []}} for p in paths}
    for run in range(runs):
        for p in paths:
            r = res[p["profile"]]
            wait_idle(f"carrier {p['profile']} single stream")
            before = {role: sum(tree_cpu(pid) for pid in pids) for role, pids in p["pids"].items()}
            mbps, n, t, err = single_stream(p, f"http://{p['host']}/big.bin", size)
            time.sleep(0.3)
            after = {role: sum(tree_cpu(pid) for pid in pids) for role, pids in p["pids"].items()}
            if mbps is None:
                log(f"warning: carrier {p['profile']}: single stream got {n} of {size} bytes: {err}")
                notes.append(f"carrier {p['profile']} run {run + 1}: single stream incomplete ({n} of {size} bytes): {err}")
                continue
            r["mbps"].append(mbps)
            for role in p["pids"]:
                r["cpu"][role].append((after[role] - before[role]) / (n / GIB))
            log(f"  carrier {p['profile']} run {run + 1}: {mbps:.0f} MB/s, CPU s/GiB client {r['cpu']['client'][-1]:.2f} "
                f"front {r['cpu']['front'][-1]:.2f} exit {r['cpu']['exit'][-1]:.2f}")
    # The front's per-carrier counters, to show each client really used its carrier's port.
    try:
        st = http_json(f"http://127.0.0.1:{info['front']['admin']}/status").get("carriers") or {}
        # T1 counts the connections it switched to the carrier (the rest went to the cover).
        counts = {k: (v.get("switched" if k == "t1" else "connections") if isinstance(v, dict) else None) for k, v in st.items()}
    except Exception:
        counts = {}
    def names(pid):
        out = []
        for c in descendants(pid):
            try:
                out.append(open(f"/proc/{c}/comm").read().strip())
            except OSError:
                pass
        return out
    # Whose CPU was counted besides the montana processes themselves (T3: obfs4proxy at both ends).
    children = {"front": names(info["front"]["pid"]), "exit": names(info["exit"]["pid"])}
    children.update({f"client-{p['profile']}": names(p["pids"]["client"][0]) for p in paths})
    return {"results": res, "front_carriers": counts, "children": children,
            "circuits": {p["profile"]: p["status_circuits"] for p in paths}}


def carriers_report(args, c):
    L = []
    res = c["results"]
    L.append(f"**Carriers side by side (client → front → exit)**: one dedicated front offering T0, T1, T2 and T3 "
             f"and one exit (real `montana node` processes), one `montana client` per carrier (`carriers = [\"tN\"]`), "
             f"single stream {args.size_mib} MiB from nginx, {args.runs} run(s) interleaved; CPU = user+system s/GiB "
             f"of each process with its children (T3: obfs4proxy at client and front); ratios are medians ÷ T0's.")
    L.append("")
    L.append("| carrier | MB/s | ÷ T0 | CPU s/GiB client / front / exit | ÷ T0 client / front / exit |")
    L.append("|---|---|---|---|---|")
    t0 = res.get("t0")
    def rat(a, b):
        return f"{a / b:.2f}×" if a is not None and b else "–"
    for prof in CARRIERS:
        r = res.get(prof)
        if r is None:
            continue
        cpu = " / ".join(spread(r["cpu"][role], 2) for role in ("client", "front", "exit"))
        rcpu = " / ".join(rat(med(r["cpu"][role]), med(t0["cpu"][role]) if t0 else None) for role in ("client", "front", "exit"))
        L.append(f"| {r['label']} | {spread(r['mbps'], 0)} | {rat(med(r['mbps']), med(t0['mbps']) if t0 else None)} "
                 f"| {cpu} | {rcpu} |")
    L.append("")
    if c.get("front_carriers"):
        L.append("Front connections per carrier at the end (/status carriers.*.connections; T1: switched): "
                 + ", ".join(f"{k} {v}" for k, v in sorted(c["front_carriers"].items()) if v is not None) + ".")
        L.append("")
    ch = c.get("children") or {}
    counted = [f"{who}: {', '.join(sorted(set(n)))}" for who, n in sorted(ch.items()) if n]
    if counted:
        L.append("Child processes counted in their parent's CPU: " + "; ".join(counted) + ".")
        L.append("")
    return L


# ---------------------------------------------------------------- report


def fmt(v, digits=0):
    if v is None:
        return "–"
    return f"{v:.{digits}f}"


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values, digits=0):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    m = statistics.median(values)
    if len(values) == 1:
        return fmt(m, digits)
    return f"{fmt(m, digits)} ({fmt(min(values), digits)}–{fmt(max(values), digits)})"


def versions(binary):
    def first(argv, pattern=None):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            text = (r.stdout + r.stderr).strip().splitlines()
            for line in text:
                if pattern is None or re.search(pattern, line):
                    return line.strip()
        except Exception:
            pass
        return "?"
    if os.environ.get("MONTANA_BENCH_BUILT"):
        built = "built by this run from git " + first(["git", "-C", os.path.dirname(HERE), "describe", "--always", "--dirty"])
    else:
        built = "given with MONTANA_BENCH_BIN, modified " + time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(binary)))
    cpu = first(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"])
    return {
        "machine": f"{os.cpu_count()} CPUs ({cpu}), Linux {os.uname().release}",
        "montana": f"{binary} ({built})",
        "swift": first(["swift", "--version"], r"Swift version"),
        "nginx": first(["nginx", "-v"]),
        "shadowsocks-libev": first(["ss-server", "-h"], r"shadowsocks-libev"),
        "v2ray": first(["v2ray", "version"]),
        "socat": first(["socat", "-V"], r"socat version"),
        "curl": first(["curl", "--version"]),
    }


def report(args, paths, results, extra, vers):
    L = []
    L.append(f"# scripts/bench — {time.strftime('%Y-%m-%d %H:%M %Z')}")
    L.append("")
    L.append(f"{args.runs} run(s); medians with (min–max); single stream {args.size_mib} MiB; MB = 10^6 bytes; "
             f"CPU = user+system seconds per GiB of each proxy process (/proc/PID/stat, with reaped children)"
             + (f"; TTFB = median of {args.ttfb} fresh curls fetching 1 KiB; {args.parallel} parallel fresh 100 KiB fetches, wall ms"
                + (" (Connection: close: the server closes first)." if args.server_close else ".") if paths else ".")
             + (f" Scenarios skipped: {args.skip}." if args.skip else ""))
    L.append("")
    if paths:
        L.append("| path | MB/s | CPU s/GiB client / front / exit | TTFB 1 KiB ms | %d × 100 KiB parallel ms |" % args.parallel)
        L.append("|---|---|---|---|---|")
    for p in paths:
        r = results[p["key"]]
        cpu = " / ".join(spread(r["cpu"].get(role, []), 2) if p["pids"].get(role) else "–" for role in ("client", "front", "exit"))
        label = f"**{p['label']}**" if p["key"] == "montana" else p["label"]
        par = spread(r["par"], 0)
        if any(f for f in r["par_fail"]):
            par += f" ({sum(r['par_fail'])} failed)"
        L.append(f"| {label} | {spread(r['mbps'], 0)} | {cpu} | {spread(r['ttfb'], 2)} | {par} |")
    if paths:
        L.append("")
    if "carriers" in extra:
        L.extend(carriers_report(args, extra["carriers"]))
    if "streams" in extra:
        s = extra["streams"]
        L.append(f"**{args.streams} concurrent fresh 100 KiB fetches through one exit** "
                 f"({-(-args.streams // CURL_PARALLEL_CAP)} curl -Z processes of ≤ {CURL_PARALLEL_CAP} started together):")
        L.append("")
        L.append("| path | succeeded | failed | completion ms | most streams open in the client's /status (1 s snapshots) | exit RSS before the run MiB "
                 "| exit peak RSS above that MiB | exit peak RSS above its idle RSS at start (after warm-up) MiB |")
        L.append("|---|---|---|---|---|---|---|---|")
        for key, r in s.items():
            L.append(f"| {r['label']} | {spread(r['ok'])} | {spread(r['failed'])} | {spread(r['ms'])} | {spread(r.get('peak_streams', []))} | "
                     f"{spread(r['idle_rss'], 1)} | {spread(r['peak_rss'], 1)} | {spread(r['peak_rss_start'], 1)} "
                     f"(idle {r['start_idle_kib'] / 1024:.1f}) |")
        heaps = {k: r for k, r in s.items() if any(v for v in r.get("peak_heap_mib", []))}
        for key, r in heaps.items():
            L.append("")
            L.append(f"{r['label']}: the exit's peak heap in use (glibc, `/status` `memory`) {spread([v for v in r['peak_heap_mib'] if v], 1)} MiB, "
                     f"with at most {spread([v for v in r['peak_egress'] if v])} egress connections open (`egress_connections`).")
        errs = {}
        for r in s.values():
            for e, n in r["errors"].items():
                errs[e] = errs.get(e, 0) + n
        if errs:
            L.append("")
            L.append("curl errors: " + "; ".join(f"{n}× {e}" for e, n in sorted(errs.items(), key=lambda x: -x[1])[:6]))
        L.append("")
    if "rss" in extra:
        r = extra["rss"]
        L.append(f"Idle RSS (after warm-up, one session): front {fmt(r['front'], 1)} MiB, exit {fmt(r['exit'], 1)} MiB, "
                 f"client {fmt(r['client'], 1)} MiB.")
        if "rss_end" in extra:
            e = extra["rss_end"]
            L.append(f"RSS at the end of the run: front {fmt(e['front'], 1)} MiB, exit {fmt(e['exit'], 1)} MiB, client {fmt(e['client'], 1)} MiB.")
        L.append("")
    if "handshake" in extra:
        h = extra["handshake"]
        L.append(f"**Handshake load** (`montana bench handshake-load`, {h['concurrency']} clients on {h['sources']} loopback /24s, "
                 f"one fresh account each, exit pinned to CPU 0 and the generator to CPU 1; bench exit with raised "
                 f"[limits]/[admission] budgets): {h['handshakes_per_second']:.0f} handshakes/s accepted, "
                 f"p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms, {h['failures']} failures "
                 f"({h.get('unfinished', 0)} unanswered at the end); exit CPU "
                 f"{h['exit_cpu_ms_per_handshake']:.2f} ms per handshake (core {h['exit_core_busy']:.0%} busy: "
                 f"~{h['exit_capacity_per_core']:.0f}/s per core), generator (initiator) {h['generator_cpu_ms_per_handshake']:.2f} ms per handshake.")
        if h.get("errors"):
            L.append("Errors: " + "; ".join(f"{n}× {e}" for e, n in h["errors"].items()))
        L.append("")
    if "rtt" in extra:
        L.append(f"**50 ms RTT** (scripts/bench.d/delayrelay.py: 25 ms each way, ≤ 16 MiB in flight per direction), "
                 f"single-stream goodput over {args.rtt_seconds} s:")
        L.append("")
        L.append("| path | MB/s |")
        L.append("|---|---|")
        for key, r in extra["rtt"].items():
            L.append(f"| {r['label']} | {spread(r['mbps'], 1)} |")
        L.append("")

    # Ratios against the targets, from medians of this run.
    def m(key, field, role=None):
        if key not in results:
            return None
        v = results[key][field]
        return med(v[role] if role else v)
    T = []
    def ratio(name, a, b, target, op):
        if a is None or b is None or b == 0:
            T.append((name, "–", f"{op} {target}", "not measured"))
            return
        r = a / b
        met = r >= target if op == "≥" else r <= target
        T.append((name, f"{r:.2f}×", f"{op} {target}×", "met" if met else "**not met**"))
    ratio("single stream ÷ shadowsocks 1 hop", m("montana", "mbps"), m("ss1", "mbps"), 1.0, "≥")
    ratio("single stream ÷ v2ray 2 hops", m("montana", "mbps"), m("v2ray2", "mbps"), 1.3, "≥")
    ratio("front CPU/GiB ÷ socat", m("montana", "cpu", "front"), m("socat", "cpu", "front"), 0.5, "≤")
    ratio("exit CPU/GiB ÷ ss-server", m("montana", "cpu", "exit"), m("ss1", "cpu", "exit"), 0.8, "≤")
    ratio("client CPU/GiB ÷ ss-local", m("montana", "cpu", "client"), m("ss1", "cpu", "client"), 0.8, "≤")
    ratio("TTFB ÷ shadowsocks 1 hop", m("montana", "ttfb"), m("ss1", "ttfb"), 1.0, "≤")
    ratio(f"{args.parallel}-parallel ÷ shadowsocks 1 hop", m("montana", "par"), m("ss1", "par"), 1.0, "≤")
    if "streams" in extra and "montana" in extra["streams"]:
        s = extra["streams"]["montana"]
        allok = all(o == args.streams for o in s["ok"])
        T.append((f"{args.streams} concurrent streams through one exit", f"{min(s['ok'])}–{max(s['ok'])} succeeded",
                  f"all {args.streams}", "met" if allok else "**not met**"))
        peak = med(s["peak_rss_start"])
        T.append((f"peak exit RSS above idle ({s['start_idle_kib'] / 1024:.1f} MiB at start, after warm-up)",
                  f"{fmt(peak, 1)} MiB", "≤ 64 MiB", "met" if peak is not None and peak <= 64 else "**not met**"))
    if "rss" in extra:
        worst = max(v for v in (extra["rss"]["front"], extra["rss"]["exit"]) if v is not None)
        T.append(("idle node RSS (front, exit)", f"{fmt(extra['rss']['front'], 1)}, {fmt(extra['rss']['exit'], 1)} MiB", "≤ 40 MiB",
                  "met" if worst <= 40 else "**not met**"))
    if "handshake" in extra:
        h = extra["handshake"]
        T.append(("handshakes/s one exit core (p50 / p99)", f"{h['handshakes_per_second']:.0f}/s ({h['p50_ms']:.1f} / {h['p99_ms']:.1f} ms)",
                  "recorded", "recorded"))
        T.append(("cold start CPU, exit side", f"{h['exit_cpu_ms_per_handshake']:.2f} ms", "≤ 2 ms",
                  "met" if h["exit_cpu_ms_per_handshake"] <= 2 else "**not met**"))
        T.append(("cold start CPU, client side", f"{h['generator_cpu_ms_per_handshake']:.2f} ms", "≤ 2 ms",
                  "met" if h["generator_cpu_ms_per_handshake"] <= 2 else "**not met**"))
    if "rtt" in extra:
        a = med(extra["rtt"].get("rtt-montana", {}).get("mbps", []))
        b = med(extra["rtt"].get("rtt-direct", {}).get("mbps", []))
        ratio("50 ms RTT: montana ÷ direct TCP over the relay", a, b, 0.9, "≥")
    if "montana" in results:
        L.append("| target (issue 10) | measured | target | |")
        L.append("|---|---|---|---|")
        for row in T:
            L.append("| " + " | ".join(row) + " |")
        L.append("")
    L.append("Versions: " + "; ".join(f"{k}: {v}" for k, v in vers.items()))
    if extra.get("notes"):
        L.append("")
        for n in extra["notes"]:
            L.append(f"- {n}")
    if IDLE_WARNINGS:
        L.append("")
        L.append(f"- **Noisy**: the machine was not idle before {len(IDLE_WARNINGS)} measurement(s), e.g. {IDLE_WARNINGS[0]}.")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench", description="Montana side by side with its anchors on loopback (issue 10).")
    ap.add_argument("--bin", required=True, help="the montana release binary")
    ap.add_argument("--runs", type=int, default=None, help="runs per measurement (median, min, max); default 5, --quick 1")
    ap.add_argument("--quick", action="store_true", help="1 run, 256 MiB, 300 streams, 10 TTFB samples, 4 s handshake load")
    ap.add_argument("--size-mib", type=int, default=None, help="single-stream size (default 1024, --quick 256)")
    ap.add_argument("--streams", type=int, default=None, help="concurrent streams through one exit (default 1000, --quick 300)")
    ap.add_argument("--parallel", type=int, default=200, help="parallel fresh 100 KiB fetches (default 200)")
    ap.add_argument("--ttfb", type=int, default=None, help="fresh curls per TTFB median (default 20, --quick 10)")
    ap.add_argument("--handshake-seconds", type=float, default=None, help="handshake load duration (default 10, --quick 4)")
    ap.add_argument("--rtt-seconds", type=float, default=None, help="50 ms RTT goodput duration (default 6, --quick 3)")
    ap.add_argument("--server-close", action="store_true",
                    help="parallel and concurrent fetches send 'Connection: close' (nginx closes first)")
    ap.add_argument("--skip", default="", help="comma list of scenarios to skip: " + ",".join(SCENARIOS)
                    + " (skipping paths, the demo's T0 path and the main table, also skips anchors, streams and rtt)")
    ap.add_argument("--only", default="", help="comma list of the only scenarios to run (plus what they need: "
                    "anchors, streams and rtt need paths), e.g. --only carriers")
    ap.add_argument("--out", help="also write the report (markdown) to this file")
    ap.add_argument("--json", help="also write the raw figures (JSON) to this file")
    args = ap.parse_args()
    q = args.quick
    args.runs = args.runs or (1 if q else 5)
    args.size_mib = args.size_mib or (256 if q else 1024)
    args.streams = args.streams or (300 if q else 1000)
    args.ttfb = args.ttfb or (10 if q else 20)
    args.handshake_seconds = args.handshake_seconds or (4 if q else 10)
    args.rtt_seconds = args.rtt_seconds or (3 if q else 6)
    skip = set(filter(None, args.skip.split(",")))
    only = set(filter(None, args.only.split(",")))
    for name in skip | only:
        if name not in SCENARIOS:
            ap.error(f"unknown scenario {name!r} in --skip/--only; scenarios: {','.join(SCENARIOS)}")
    if only:
        if only & {"anchors", "streams", "rtt"}:
            only.add("paths")
        skip |= set(SCENARIOS) - only
    if "paths" in skip:
        skip |= {"anchors", "streams", "rtt"}
    args.skip = ",".join(sorted(skip))
    if args.server_close:
        SERVER_CLOSE.extend(["-H", "Connection: close"])
    if args.runs < 1 or args.size_mib < 1 or args.streams < 1 or args.parallel < 1 or args.ttfb < 1:
        ap.error("--runs, --size-mib, --streams, --parallel and --ttfb must be ≥ 1")

    t_start = time.time()
    work = tempfile.mkdtemp(prefix="montana-bench-")
    files = tempfile.mkdtemp(prefix="montana-bench-", dir="/dev/shm")
    os.chmod(files, 0o755)
    procs = Procs(work)

    def on_signal(sig, _):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        size = args.size_mib * MIB
        with open(f"{files}/big.bin", "wb") as f:
            block = os.urandom(16 * MIB)  # real pages on tmpfs (not a sparse file)
            for off in range(0, size, len(block)):
                f.write(block[:min(len(block), size - off)])
        with open(f"{files}/rtt.bin", "wb") as f:
            f.truncate(8 * GIB)  # sparse: only read for a fixed time through the delay relay
        for name, n in (("1k.bin", 1024), ("100k.bin", 100 * 1024)):
            with open(f"{files}/{name}", "wb") as f:
                f.write(os.urandom(n))
        vers = versions(args.bin)
        log("starting nginx (origin)" + ("" if "paths" in skip else ", anchors and montana") + " on loopback")
        origin, nginx = start_nginx(procs, work, files)
        paths, anchors, minfo = [], {}, None
        extra = {"notes": []}
        if "paths" not in skip:
            paths = [{"key": "direct", "label": "direct (curl → nginx)", "curl": [], "host": f"127.0.0.1:{origin}", "pids": {}}]
            if "anchors" not in skip:
                paths, anchors = start_anchors(procs, work, origin)
            mpath, minfo = start_montana(procs, work, args.bin, origin)
            paths.append(mpath)
            log(f"montana: client pid {mpath['pids']['client'][0]}, front {minfo['front']['name']} pid {minfo['front']['pid']}, "
                f"exit {minfo['exit']['name']} pid {minfo['exit']['pid']}; circuits {circuit_check(mpath, minfo)}")
            extra["rss"] = {"front": rss_kib(minfo["front"]["pid"]) / 1024, "exit": rss_kib(minfo["exit"]["pid"]) / 1024,
                            "client": rss_kib(mpath["pids"]["client"][0]) / 1024}
        results = {p["key"]: {"mbps": [], "cpu": {"client": [], "front": [], "exit": []}, "ttfb": [], "par": [], "par_fail": []}
                   for p in paths}
        streams = {}
        if "streams" not in skip:
            keys = ["montana"] + (["ss1"] if "ss1" in results else [])
            streams = {p["key"]: {"label": p["label"], "ok": [], "failed": [], "ms": [], "idle_rss": [], "peak_rss": [], "peak_rss_start": [],
                                  "peak_streams": [], "errors": {},
                                  # the exit's idle RSS after setup and warm-up, before any measurement
                                  "start_idle_kib": rss_kib(p["pids"]["exit"][0])} for p in paths if p["key"] in keys}
        for run in range(args.runs if paths else 0):
            log(f"run {run + 1}/{args.runs}")
            for p in paths:
                r = results[p["key"]]
                base = f"http://{p['host']}"
                wait_idle(f"{p['key']} single stream")
                before = {role: sum(tree_cpu(pid) for pid in pids) for role, pids in p["pids"].items()}
                mbps, n, t, err = single_stream(p, f"{base}/big.bin", size)
                time.sleep(0.3)  # let forked relays (socat) be reaped into their parent's totals
                after = {role: sum(tree_cpu(pid) for pid in pids) for role, pids in p["pids"].items()}
                if mbps is None:
                    log(f"warning: {p['key']}: single stream got {n} of {size} bytes: {err}")
                    extra["notes"].append(f"{p['key']} run {run + 1}: single stream incomplete ({n} of {size} bytes): {err}")
                else:
                    r["mbps"].append(mbps)
                    for role in p["pids"]:
                        r["cpu"][role].append((after[role] - before[role]) / (n / GIB))
                wait_idle(f"{p['key']} ttfb", max_wait=10)
                value, fails = ttfb(p, f"{base}/1k.bin", args.ttfb)
                r["ttfb"].append(value)
                if fails:
                    extra["notes"].append(f"{p['key']} run {run + 1}: {fails} of {args.ttfb} TTFB fetches failed")
                wait_idle(f"{p['key']} parallel", max_wait=10)
                wall, ok, failed, errors = parallel_fetch(p, f"{base}/100k.bin", args.parallel, 100 * 1024, work, p["key"])
                r["par"].append(wall)
                r["par_fail"].append(failed)
                if failed:
                    extra["notes"].append(f"{p['key']} run {run + 1}: {failed} of {args.parallel} parallel fetches failed: {errors}")
                log(f"  {p['key']}: {fmt(mbps)} MB/s, TTFB {fmt(value, 2)} ms, {args.parallel}-par {wall:.0f} ms ({failed} failed)")
            for key, s in streams.items():
                p = next(x for x in paths if x["key"] == key)
                wait_idle(f"{key} {args.streams} streams")
                exit_pid = p["pids"]["exit"][0]
                start_idle = s["start_idle_kib"]
                # An idle exit too: a node gives free heap pages back after a burst (montana within
                # 2 s; the anchors' allocators on their own), so each run starts from its idle RSS.
                settle = time.time() + 25
                while rss_kib(exit_pid) > start_idle + 10 * 1024 and time.time() < settle:
                    time.sleep(0.5)
                idle = rss_kib(exit_pid)
                if idle > start_idle + 10 * 1024:
                    log(f"  {key}: the exit's RSS stayed at {idle / 1024:.1f} MiB ({start_idle / 1024:.1f} at start) after 25 s")
                peak = [idle]
                peak_streams = [0]
                peak_heap = [0, 0]  # the exit's heap in use (bytes) and open egress connections
                stop = threading.Event()
                def sample():
                    while not stop.is_set():
                        peak[0] = max(peak[0], rss_kib(exit_pid))
                        stop.wait(0.05)
                def sample_streams():
                    while not stop.is_set() and p.get("admin"):
                        n = streams_active(p["admin"])
                        if n is not None:
                            peak_streams[0] = max(peak_streams[0], n)
                        if p.get("exit_admin"):
                            heap, conns = exit_memory(p["exit_admin"])
                            peak_heap[0] = max(peak_heap[0], heap or 0)
                            peak_heap[1] = max(peak_heap[1], conns or 0)
                        stop.wait(0.1)
                threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=sample_streams, daemon=True)]
                for t in threads:
                    t.start()
                wall, ok, failed, errors = parallel_fetch(p, f"http://{p['host']}/100k.bin", args.streams, 100 * 1024, work,
                                                          f"{key}-streams", timeout=240)
                stop.set()
                for t in threads:
                    t.join()
                s["ok"].append(ok)
                s["failed"].append(failed)
                s["ms"].append(wall)
                s["idle_rss"].append(idle / 1024)
                s["peak_rss"].append((peak[0] - idle) / 1024)
                s["peak_rss_start"].append((peak[0] - start_idle) / 1024)
                if p.get("admin"):
                    s["peak_streams"].append(peak_streams[0] or None)  # 0: the run ended between two snapshots
                for e, n in errors.items():
                    s["errors"][e] = s["errors"].get(e, 0) + n
                if p.get("exit_admin"):
                    s.setdefault("peak_heap_mib", []).append(peak_heap[0] / 1048576 if peak_heap[0] else None)
                    s.setdefault("peak_egress", []).append(peak_heap[1] or None)
                heap_note = (f", exit heap in use peak {peak_heap[0] / 1048576:.1f} MiB with {peak_heap[1]} egress connections open"
                             if peak_heap[0] else "")
                log(f"  {key}: {args.streams} streams: {ok} ok, {failed} failed, {wall:.0f} ms, exit RSS +{(peak[0] - idle) / 1024:.1f} MiB{heap_note}")
        if streams:
            extra["streams"] = streams
        if "rtt" not in skip:
            log("50 ms RTT paths")
            rtt = {}
            for p in rtt_paths(procs, work, args.bin, origin, minfo, anchors if anchors else None) if anchors else []:
                rtt[p["key"]] = {"label": p["label"], "mbps": []}
                for run in range(args.runs):
                    wait_idle(f"{p['key']}")
                    mbps, n, t, _ = single_stream(p, f"http://{p['host']}/rtt.bin", None, max_time=args.rtt_seconds)
                    rtt[p["key"]]["mbps"].append(mbps if n else None)
                log(f"  {p['key']}: {spread(rtt[p['key']]['mbps'], 1)} MB/s")
            extra["rtt"] = rtt
        if "handshake" not in skip:
            log("handshake load")
            extra["handshake"] = handshake_load(procs, work, args.bin, args.handshake_seconds, 16, 64)
            h = extra["handshake"]
            log(f"  {h['handshakes_per_second']:.0f}/s, exit {h['exit_cpu_ms_per_handshake']:.2f} ms CPU each")
        if "carriers" not in skip:
            extra["carriers"] = carriers_scenario(procs, work, args.bin, origin, size, args.runs, extra["notes"])
        if minfo is not None:
            extra["rss_end"] = {"front": rss_kib(minfo["front"]["pid"]) / 1024, "exit": rss_kib(minfo["exit"]["pid"]) / 1024,
                                "client": rss_kib(mpath["pids"]["client"][0]) / 1024}
        extra["notes"].append(f"whole run {time.time() - t_start:.0f} s (build and package installation not included)")
        text = report(args, paths, results, extra, vers)
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"results": results, "extra": extra, "versions": vers, "args": vars(args)}, f, indent=1, default=str)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(files, ignore_errors=True)


if __name__ == "__main__":
    main()
