#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""The soak behind scripts/soak.sh: mailktlsd under many checking clients
while faults go on, on loopback only, every loop bounded.

Clients: Implicit TLS and STARTTLS (IMAP), TLS 1.2 and 1.3, ECDSA and RSA
certificates; each connection sends random chunks that an echo backend
returns, and every byte is compared (and each stream's SHA-256 at its end).
Long-lived idle sessions stay open for the whole run and ping now and then.
Faults, in turn: SIGHUP, kill -9 of the key process, a certificate renewal
by rename over, one by a certbot-style symlink swap, a backend restart, and
a burst of garbage, half handshakes and silent clients (each of which the
agent must close within its timeouts).

Reported: failures by cause (explained by a fault at that moment, or not),
mismatches, reloads by cause (from the agent's log) against the faults that
asked for them, RSS and descriptors of the agent sampled every second
(start, peak, after settle), the live runtimes gauge, handshake latency
p50/p99 overall and in the seconds after each kind of fault, log lines per
minute. Exit status 1 on anything unexplained.

    soak.py --agent PATH [--duration S] [--clients N] [--idle N]
            [--fault-every S] [--chunk-max B] [--json FILE] [--tap]
    soak.py --reload-memory [--reloads N] [--conns N]
                                (RSS with and without reloads among open
                                connections, each on a fresh agent)
    soak.py --backend PORT      (the echo backend, run by the soak itself)
"""

import argparse
import collections
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "integration", "lib"))
from agenttest import metrics_text  # noqa: E402

HOST = "127.0.0.1"
# Like a server that has just logged the user in (as scripts/bench/bench_proto.h):
# the agent's capability filter is done after the tagged OK [CAPABILITY], and
# on a STARTTLS listener it swallows the first line, the client having had
# the agent's greeting already.
GREETING = b"* OK soak backend ready\r\n"
LOGGED_IN = b"b0 OK [CAPABILITY IMAP4rev1] logged in\r\n"
HANDSHAKE_TIMEOUT = 5		# the agent's, seconds
PRETLS_TIMEOUT = 8
# Idle sessions ping at least every 30 s. A STARTTLS connection whose
# backend never greets is not read from the client side until the greeting
# comes (the agent swallows it), so a client that leaves meanwhile is only
# noticed at this timeout: the settle waits for it, and the summary counts
# such connections (connections_left_after_load).
IDLE_TIMEOUT = 60
IO_TIMEOUT = 15			# a client's wait for any one reply
# A failure this long after a fault started is put down to it.
EXPLAIN_WINDOW = {"backend_restart": 1.0, "keyproc_kill": 2.0}
AFTER_FAULT = 2.0		# handshakes started this soon after a fault
LOG_RE = re.compile(r"reloaded .* \(([^)]*)\): new connections")


def now():
    return time.monotonic()


# ---------------------------------------------------------------- backend

def backend_main(port):
    """Greet, then echo every byte, one thread per connection."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, port))
    ls.listen(512)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    def serve(c):
        try:
            c.sendall(GREETING + LOGGED_IN)
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        c.close()

    while True:
        try:
            c, _ = ls.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
        except (OSError, RuntimeError) as e:
            sys.stderr.write("soak backend: %s\n" % e)
            time.sleep(0.1)


# ---------------------------------------------------------------- state

class Soak:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.lock = threading.Lock()
        self.t0 = now()
        self.stop = threading.Event()
        self.faults = []		# (t, kind)
        self.fault_end = {}		# index in faults: when its action ended
        self.fails = []			# (t, cause, where, detail)
        self.mismatches = 0
        self.handshakes = []		# (t_start, seconds, variant)
        self.sessions = collections.Counter()
        self.bytes = 0
        self.probes = collections.Counter()
        self.samples = []		# (t, rss_kb, fds, keyproc_rss_kb, loglines)
        self.runtimes = []		# (t, gauge)
        self.agent = None
        self.backend = None
        self.ports = {}
        self.be_port = 0
        self.metrics_port = 0

    def fault(self, kind):
        with self.lock:
            self.faults.append((now(), kind))
            self.fault_end[len(self.faults) - 1] = None

    def fault_done(self):
        """The last fault's action is over (the backend is back)."""
        with self.lock:
            self.fault_end[len(self.faults) - 1] = now()

    def fail(self, cause, where, detail=""):
        with self.lock:
            self.fails.append((now(), cause, where, str(detail)[:200]))

    def explain(self, t, cause):
        """The fault that explains a failure at @t, or None."""
        for i in range(len(self.faults) - 1, -1, -1):
            ft, kind = self.faults[i]
            w = EXPLAIN_WINDOW.get(kind)
            # A backend restart lasts until the new one listens, a key
            # process kill until the next one runs (seconds under load):
            # the window counts from then.
            end = self.fault_end.get(i) or ft
            if w and ft - 0.2 <= t <= end + w:
                return kind
        return None


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def proc_kb(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith(field + ":"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


def nfds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def children(pid):
    out = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


# ---------------------------------------------------------------- set-up

def gen_pair(d, name, kind):
    crt, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    alg = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec"
           else ["-newkey", "rsa:2048"])
    # One name for every pair: the agent groups pairs by name, and only
    # pairs of one group are offered side by side to a client.
    subprocess.run(["openssl", "req", "-x509"] + alg + ["-nodes", "-days", "2", "-subj",
                    "/CN=soak.test", "-addext", "subjectAltName=DNS:soak.test",
                    "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    return crt, key


def swap_symlink(target, link):
    tmp = link + ".new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.rename(tmp, link)


def setup_certs(s):
    """ECDSA: plain files in ec/, renewed by rename over (pairs from
    ec-pool/). RSA: certbot's layout, live/ symlinks into archive/."""
    d = s.tmp
    for sub in ("ec", "ec-pool", "stage", "archive", "live"):
        os.makedirs(os.path.join(d, sub))
    for i in range(2):
        gen_pair(os.path.join(d, "ec-pool"), "ec%d" % i, "ec")
        gen_pair(os.path.join(d, "archive"), "rsa%d" % i, "rsa")
    for ext in ("crt", "key"):
        shutil.copy(os.path.join(d, "ec-pool", "ec0." + ext), os.path.join(d, "ec", "cur." + ext))
        swap_symlink(os.path.join("..", "archive", "rsa0." + ext), os.path.join(d, "live", ext))
    s.ec_next = 1
    s.rsa_next = 1


def agent_conf(s):
    d = s.tmp
    ec = "certificate = %s/ec/cur.crt\nprivate_key = %s/ec/cur.key\n" % (d, d)
    rsa = "certificate = %s/live/crt\nprivate_key = %s/live/key\n" % (d, d)
    text = ("[global]\nworkers = 2\nlog = stderr\nquery_socket =\nmetrics_listen = %s:%d\n"
            "\n[defaults]\nproxy_protocol = none\nalpn = off\nhandshake_timeout = %ds\n"
            "pretls_timeout = %ds\nidle_timeout = %ds\nhostname = soak.test\n"
            % (HOST, s.metrics_port, HANDSHAKE_TIMEOUT, PRETLS_TIMEOUT, IDLE_TIMEOUT))
    for name, tls, certs in (("imaps", "implicit", ec + rsa), ("imap", "starttls", ec + rsa),
                             ("imaps_rsa", "implicit", rsa), ("imap_rsa", "starttls", rsa)):
        text += ("\n[listener %s]\nlisten = %s:%d\nprotocol = imap\ntls = %s\n"
                 "backend = %s:%d\n%s" % (name, HOST, s.ports[name], tls, HOST, s.be_port, certs))
    return text


def start_backend(s):
    s.backend = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--backend",
                                  str(s.be_port)])
    for _ in range(100):
        try:
            socket.create_connection((HOST, s.be_port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)


def start_agent(s):
    conf = os.path.join(s.tmp, "agent.conf")
    with open(conf, "w") as f:
        f.write(agent_conf(s))
    s.log = os.path.join(s.tmp, "agent.log")
    s.logf = open(s.log, "w")
    s.agent = subprocess.Popen([s.args.agent, "-c", conf], stdout=s.logf,
                               stderr=subprocess.STDOUT)
    for port in s.ports.values():
        for _ in range(200):
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if s.agent.poll() is not None:
                    raise SystemExit("soak: the agent did not start:\n" + open(s.log).read())
                time.sleep(0.05)


# ---------------------------------------------------------------- clients

VARIANTS = [(mode, ver, key) for mode in ("implicit", "starttls") for ver in ("1.2", "1.3")
            for key in ("ec", "rsa")]


def client_ctx(ver, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = ssl.TLSVersion.TLSv1_2 if ver == "1.2" else ssl.TLSVersion.TLSv1_3
    ctx.minimum_version = ctx.maximum_version = v
    if ver == "1.2":
        ctx.set_ciphers("ECDHE+ECDSA+AESGCM:ECDHE+ECDSA+CHACHA20" if key == "ec"
                        else "ECDHE+aRSA+AESGCM:ECDHE+aRSA+CHACHA20")
    return ctx


def port_for(s, mode, ver, key, rnd):
    """ECDSA from the listeners with both pairs; RSA from the RSA-only ones,
    or (TLS 1.2, chosen by the cipher suite) from those with both."""
    both = "imaps" if mode == "implicit" else "imap"
    if key == "ec" or (ver == "1.2" and rnd.random() < 0.5):
        return s.ports[both]
    return s.ports[both + "_rsa"]


def read_exact(c, n):
    buf = bytearray()
    while len(buf) < n:
        d = c.recv(min(65536, n - len(buf)))
        if not d:
            raise EOFError("eof after %d of %d bytes" % (len(buf), n))
        buf += d
    return bytes(buf)


def read_line(c, limit=4096):
    buf = b""
    while not buf.endswith(b"\n"):
        d = c.recv(1)
        if not d:
            raise EOFError("eof in a line: %r" % buf[:60])
        buf += d
        if len(buf) > limit:
            raise ValueError("line too long")
    return buf


def connect(s, variant, rnd, where):
    """A TLS connection through the agent, the backend's greeting read.
    Return: the socket."""
    mode, ver, key = variant
    raw = socket.create_connection((HOST, port_for(s, mode, ver, key, rnd)), timeout=IO_TIMEOUT)
    try:
        if mode == "starttls":
            g = read_line(raw)
            if not g.startswith(b"* OK"):
                raise ValueError("greeting %r" % g[:60])
            raw.sendall(b"a STARTTLS\r\n")
            r = read_line(raw)
            if not r.startswith(b"a OK"):
                raise ValueError("STARTTLS reply %r" % r[:60])
        t = now()
        c = client_ctx(ver, key).wrap_socket(raw, server_hostname="soak.test",
                                             do_handshake_on_connect=False)
        c.do_handshake()
        lat = now() - t
    except BaseException:
        raw.close()
        raise
    want = "TLSv" + ver
    if c.version() != want:
        c.close()
        raise ValueError("negotiated %s, wanted %s" % (c.version(), want))
    with s.lock:
        s.handshakes.append((t, lat, variant))
        s.sessions["%s TLS%s %s" % variant] += 1
    try:
        g = read_line(c) if mode == "implicit" else GREETING
        ok = g == GREETING and read_line(c) == LOGGED_IN
    except BaseException:
        c.close()
        raise
    if not ok:
        c.close()
        raise ValueError("backend greeting %r" % g[:60])
    return c


def echo(s, c, data, dig):
    c.sendall(data)
    got = read_exact(c, len(data))
    dig[0].update(data)
    dig[1].update(got)
    if got != data:
        with s.lock:
            s.mismatches += 1
        raise ValueError("echo mismatch in %d bytes" % len(data))
    with s.lock:
        s.bytes += 2 * len(data)


def cause_of(e):
    if isinstance(e, ssl.SSLError):
        return "tls:" + (e.reason or type(e).__name__)
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(e, ConnectionResetError):
        return "reset"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, BrokenPipeError):
        return "broken_pipe"
    if isinstance(e, EOFError):
        return "eof"
    if isinstance(e, ValueError) and "mismatch" in str(e):
        return "mismatch"
    if isinstance(e, ValueError):
        return "protocol"
    return type(e).__name__


def short_client(s, seed):
    """Connect, a few echoed chunks, both digests compared, close_notify."""
    rnd = random.Random(seed)
    while not s.stop.is_set():
        variant = rnd.choice(VARIANTS)
        c = None
        try:
            c = connect(s, variant, rnd, "short")
            dig = (hashlib.sha256(), hashlib.sha256())
            for _ in range(rnd.randint(1, 4)):
                echo(s, c, rnd.randbytes(rnd.randint(1, s.args.chunk_max)), dig)
            if dig[0].digest() != dig[1].digest():
                with s.lock:
                    s.mismatches += 1
                raise ValueError("digest mismatch")
            c = c.unwrap()
        except Exception as e:
            s.fail(cause_of(e), "short %s TLS%s %s" % variant, e)
            time.sleep(0.05)
        finally:
            if c:
                c.close()


def idle_client(s, seed):
    """One long session: a small echo every 5-30 s, a drop noticed at once."""
    rnd = random.Random(seed)
    while not s.stop.is_set():
        variant = rnd.choice(VARIANTS)
        c = None
        try:
            c = connect(s, variant, rnd, "idle")
            dig = (hashlib.sha256(), hashlib.sha256())
            while not s.stop.is_set():
                end = now() + rnd.uniform(5, 30)
                while now() < end and not s.stop.is_set():
                    c.settimeout(min(1.0, max(0.01, end - now())))
                    try:
                        d = c.recv(1)
                    except (socket.timeout, TimeoutError):
                        continue
                    if not d:
                        raise EOFError("idle session closed by the agent")
                    raise ValueError("unasked bytes %r" % d)
                c.settimeout(IO_TIMEOUT)
                echo(s, c, rnd.randbytes(rnd.randint(1, 256)), dig)
            if dig[0].digest() != dig[1].digest():
                with s.lock:
                    s.mismatches += 1
            c.settimeout(IO_TIMEOUT)
            c = c.unwrap()
        except Exception as e:
            s.fail(cause_of(e), "idle %s TLS%s %s" % variant, e)
            time.sleep(0.2)
        finally:
            if c:
                c.close()


# ---------------------------------------------------------------- chaos

def closed_within(c, secs):
    """Wait for the agent to close @c (EOF or reset): True if it did."""
    end = now() + secs
    try:
        while now() < end:
            c.settimeout(max(0.05, end - now()))
            try:
                if not c.recv(4096):
                    return True
            except (socket.timeout, TimeoutError):
                return False
    except OSError:
        return True
    return False


def client_hello():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    o = ctx.wrap_bio(inc, out, server_hostname="soak.test")
    try:
        o.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def probe(s, kind, seed):
    """One misbehaving client; the agent must close it in time."""
    rnd = random.Random(seed)
    implicit = rnd.random() < 0.7
    port = s.ports["imaps" if implicit else "imap"]
    limit = (HANDSHAKE_TIMEOUT if implicit else PRETLS_TIMEOUT) + 4
    try:
        c = socket.create_connection((HOST, port), timeout=IO_TIMEOUT)
    except OSError as e:
        s.fail(cause_of(e), "probe " + kind, e)
        return
    try:
        if kind == "garbage":
            c.sendall(rnd.randbytes(rnd.randint(1, 4096)))
        elif kind == "half_handshake":
            if not implicit:
                read_line(c)
                c.sendall(b"a STARTTLS\r\n")
                read_line(c)
                limit = HANDSHAKE_TIMEOUT + 4
            ch = client_hello()
            c.sendall(ch[:rnd.randint(1, len(ch) - 1)])
        ok = closed_within(c, limit)
    except OSError:
        ok = True		# the agent closed it while we wrote
    finally:
        c.close()
    with s.lock:
        s.probes[kind + (" closed" if ok else " NOT closed")] += 1
    if not ok:
        s.fail("not_closed", "probe " + kind, "open after %d s" % limit)


def chaos(s, rnd):
    threads = []
    for kind, n in (("garbage", 10), ("half_handshake", 5), ("silent", 5)):
        for _ in range(n):
            t = threading.Thread(target=probe, args=(s, kind, rnd.random()), daemon=True)
            t.start()
            threads.append(t)
    return threads


# ---------------------------------------------------------------- faults

def renew_rename(s):
    d = s.tmp
    src = os.path.join(d, "ec-pool", "ec%d" % s.ec_next)
    for ext in ("key", "crt"):
        shutil.copy(src + "." + ext, os.path.join(d, "stage", "cur." + ext))
    for ext in ("key", "crt"):
        os.rename(os.path.join(d, "stage", "cur." + ext), os.path.join(d, "ec", "cur." + ext))
    s.ec_next ^= 1


def renew_symlink(s):
    d = s.tmp
    for ext in ("key", "crt"):
        swap_symlink(os.path.join("..", "archive", "rsa%d.%s" % (s.rsa_next, ext)),
                     os.path.join(d, "live", ext))
    s.rsa_next ^= 1


def keyproc_kill(s):
    """kill -9 the key process; return once its successor runs (bounded)."""
    old = children(s.agent.pid)
    for pid in old:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    end = now() + 10
    while now() < end and not (set(children(s.agent.pid)) - set(old)):
        time.sleep(0.02)


def backend_restart(s):
    s.backend.kill()
    s.backend.wait()
    start_backend(s)


FAULTS = ["sighup", "keyproc_kill", "renew_rename", "chaos", "renew_symlink",
          "backend_restart"]


def fault_loop(s, rnd, chaos_threads):
    i = 0
    if s.args.fault_every <= 0:
        return			# a run without faults, to compare with
    while not s.stop.wait(s.args.fault_every):
        kind = FAULTS[i % len(FAULTS)]
        i += 1
        s.fault(kind)
        if kind == "sighup":
            s.agent.send_signal(signal.SIGHUP)
        elif kind == "keyproc_kill":
            keyproc_kill(s)
            s.fault_done()
        elif kind == "renew_rename":
            renew_rename(s)
        elif kind == "renew_symlink":
            renew_symlink(s)
        elif kind == "backend_restart":
            backend_restart(s)
            s.fault_done()
        elif kind == "chaos":
            chaos_threads += chaos(s, rnd)


# ---------------------------------------------------------------- sampling

def scrape_runtimes(s):
    try:
        buf = metrics_text(s.metrics_port, HOST, timeout=2)
    except OSError:
        return None
    m = re.search(rb"^mailktls_runtimes (\d+)", buf, re.M)
    return int(m.group(1)) if m else None


def scrape_states(s):
    """Connections the agent still has, by listener and state (non-zero)."""
    try:
        buf = metrics_text(s.metrics_port, HOST, timeout=2)
    except OSError:
        return {}
    return {m.group(1).decode(): int(m.group(2)) for m in
            re.finditer(rb"^mailktls_connections\{(listener=[^}]*)\} (\d+)", buf, re.M)
            if m.group(2) != b"0"}


def log_lines(s):
    try:
        with open(s.log, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def sample(s):
    kp = children(s.agent.pid)
    row = (now(), proc_kb(s.agent.pid), nfds(s.agent.pid),
           sum(proc_kb(p) for p in kp), log_lines(s))
    with s.lock:
        s.samples.append(row)
    return row


def sampler(s, stop):
    i = 0
    while not stop.wait(1.0):
        sample(s)
        if i % 5 == 0:
            g = scrape_runtimes(s)
            with s.lock:
                s.runtimes.append((now(), g))
        i += 1


# ---------------------------------------------------------------- report

def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def reloads_from_log(s):
    causes = collections.Counter()
    failed = 0
    with open(s.log, errors="replace") as f:
        for ln in f:
            m = LOG_RE.search(ln)
            if m:
                causes[m.group(1)] += 1
            elif "reload failed" in ln:
                failed += 1
    return causes, failed


def report(s, start, end_load, settle, runtimes_settle):
    faults = collections.Counter(k for _, k in s.faults)
    causes, reload_failed = reloads_from_log(s)
    explained = collections.Counter()
    unexplained = collections.Counter()
    examples = []
    for t, cause, where, detail in s.fails:
        by = s.explain(t, cause) if cause not in ("mismatch", "not_closed") else None
        if by:
            explained["%s <- %s" % (cause, by)] += 1
        else:
            unexplained[cause] += 1
            if len(examples) < 10:
                examples.append("%.1fs %s %s: %s" % (t - s.t0, where, cause, detail))
    keyproc_fails = sum(n for k, n in explained.items() if k.endswith("<- keyproc_kill"))
    lat = [x[1] for x in s.handshakes]
    after = {}
    for kind in sorted(faults):
        ts = [ft for ft, k in s.faults if k == kind]
        xs = [l for t, l, _ in s.handshakes if any(ft <= t <= ft + AFTER_FAULT for ft in ts)]
        after[kind] = {"n": len(xs), "p50_ms": round(pct(xs, 50) * 1000, 1),
                       "p99_ms": round(pct(xs, 99) * 1000, 1)}
    peak_rss = max(r[1] for r in s.samples)
    peak_fds = max(r[2] for r in s.samples)
    minutes = max(1e-9, (s.samples[-1][0] - s.samples[0][0]) / 60.0)
    per_min = collections.Counter()
    prev = s.samples[0]
    for r in s.samples[1:]:
        per_min[int((r[0] - s.t0) // 60)] += r[4] - prev[4]
        prev = r
    summary = {
        "duration_s": round(end_load[0] - start[0], 1),
        "sessions": dict(s.sessions),
        "handshakes": len(lat),
        "bytes_checked": s.bytes,
        "mismatches": s.mismatches,
        "failures_explained": dict(explained),
        "failures_unexplained": dict(unexplained),
        "unexplained_examples": examples,
        "faults": dict(faults),
        "reloads_by_cause": dict(causes),
        "reload_failures": reload_failed,
        "probes": dict(s.probes),
        "rss_kb": {"start": start[1], "peak": peak_rss, "end_of_load": end_load[1],
                   "after_settle": settle[1]},
        "keyproc_rss_kb": {"start": start[3], "after_settle": settle[3]},
        "fds": {"start": start[2], "peak": peak_fds, "after_settle": settle[2]},
        "runtimes_after_settle": runtimes_settle,
        "runtimes_peak": max([g for _, g in s.runtimes if g is not None] or [0]),
        "handshake_ms": {"p50": round(pct(lat, 50) * 1000, 1),
                         "p99": round(pct(lat, 99) * 1000, 1)},
        "handshake_ms_after_fault": after,
        "log_lines_per_min": {"mean": round((s.samples[-1][4] - s.samples[0][4]) / minutes),
                              "max": max(per_min.values() or [0])},
    }
    checks = [
        (s.agent.poll() is None, "the agent ran through"),
        (len(lat) > 0 and all(s.sessions[k] > 0 for k in
                              ("%s TLS%s %s" % v for v in VARIANTS)),
         "every variant (Implicit/STARTTLS, TLS 1.2/1.3, ECDSA/RSA) had sessions"),
        (not s.mismatches, "no byte or digest mismatch (%d bytes checked)" % s.bytes),
        (not unexplained, "no unexplained failure (%s)" % (dict(unexplained) or "none")),
        (s.args.keyproc_fails_ok or not keyproc_fails,
         "no handshake failed across a key-process kill (%d%s)" %
         (keyproc_fails, ", allowed by --keyproc-fails-ok" if keyproc_fails else "")),
        (causes.get("SIGHUP", 0) == faults.get("sighup", 0),
         "one reload per SIGHUP (%d for %d)" % (causes.get("SIGHUP", 0), faults.get("sighup", 0))),
        (causes.get("certificate files changed", 0) ==
         faults.get("renew_rename", 0) + faults.get("renew_symlink", 0),
         "one reload per certificate renewal (%d for %d)" %
         (causes.get("certificate files changed", 0),
          faults.get("renew_rename", 0) + faults.get("renew_symlink", 0))),
        (set(causes) <= {"SIGHUP", "certificate files changed"} and not reload_failed,
         "no other reload and no failed one"),
        (not any("NOT closed" in k for k in s.probes),
         "garbage, half handshakes and silent clients closed in time"),
        (settle[2] == start[2], "descriptors back to the start (%d -> %d)" % (start[2], settle[2])),
        (runtimes_settle in (None, 1), "one live runtime after settle (%s)" % runtimes_settle),
    ]
    return summary, checks


def print_summary(summary, out, prefix):
    out.write(prefix + "soak summary\n")
    for k, v in summary.items():
        out.write(prefix + "  %-26s %s\n" % (k, json.dumps(v)))


# ---------------------------------------------------------------- reloads

def hold_round(s, rnd, k, held):
    """@k more connections, each with one checked echo, kept open."""
    dig = (hashlib.sha256(), hashlib.sha256())
    for _ in range(k):
        c = connect(s, rnd.choice(VARIANTS), rnd, "held")
        echo(s, c, rnd.randbytes(2048), dig)
        held.append(c)


def reload_memory_run(args, sighup):
    """A fresh agent: warm-up, then (args.reloads + 1) rounds of args.conns
    connections kept open, with @sighup a SIGHUP after each round but the
    last; then all closed. Return: the figures (RSS in KiB)."""
    reloads = args.reloads
    tmp = tempfile.mkdtemp(prefix="mk-soak-mem-")
    s = Soak(args, tmp)
    rnd = random.Random(args.seed)
    held = []
    try:
        for name in ("imaps", "imap", "imaps_rsa", "imap_rsa"):
            s.ports[name] = free_port()
        s.be_port, s.metrics_port = free_port(), free_port()
        setup_certs(s)
        start_backend(s)
        start_agent(s)
        for _ in range(50):
            connect(s, rnd.choice(VARIANTS), rnd, "warm-up").close()
        time.sleep(1)
        start = proc_kb(s.agent.pid)
        for r in range(reloads + 1):
            hold_round(s, rnd, args.conns, held)
            if sighup and r < reloads:
                n = len(LOG_RE.findall(open(s.log, errors="replace").read()))
                s.agent.send_signal(signal.SIGHUP)
                end = now() + 10
                while now() < end and len(LOG_RE.findall(open(s.log, errors="replace").read())) == n:
                    time.sleep(0.05)
        time.sleep(1)
        during, g_during = proc_kb(s.agent.pid), scrape_runtimes(s)
        for c in held:
            c.close()
        held = []
        # Connections after the close, as a running server has: the pages
        # their allocations need come from what the closed ones left.
        for _ in range(50):
            connect(s, rnd.choice(VARIANTS), rnd, "after").close()
        time.sleep(3)
        with open("/proc/%d/maps" % s.agent.pid) as f:
            asan = "libasan" in f.read()
        return {"asan": asan, "reloads": reloads if sighup else 0, "conns_open": args.conns * (reloads + 1),
                "rss_start": start, "rss_during": during, "rss_after": proc_kb(s.agent.pid),
                "runtimes_during": g_during, "runtimes_after": scrape_runtimes(s)}
    finally:
        for c in held:
            c.close()
        for p in (s.agent, s.backend):
            if p and p.poll() is None:
                p.terminate()
                p.wait(15)
        shutil.rmtree(tmp, ignore_errors=True)


def reload_memory(args):
    """The same connections with and without reloads among them, each on a
    fresh agent: what old configurations cost while their connections
    live, and whether it all comes back once they are gone."""
    base = reload_memory_run(args, False)
    rel = reload_memory_run(args, True)
    per = (rel["rss_during"] - base["rss_during"]) / max(1, args.reloads)
    print("%sreload memory: %d connections open, RSS KiB start/during/after closing" %
          ("# " if args.tap else "", base["conns_open"]))
    for name, r in (("no reload", base), ("%d reloads" % args.reloads, rel)):
        print("%s  %-11s %6d %6d %6d   live runtimes during %s, after %s" %
              ("# " if args.tap else "", name, r["rss_start"], r["rss_during"], r["rss_after"],
               r["runtimes_during"], r["runtimes_after"]))
    print("%s  each old configuration held by open connections: %+d KiB" %
          ("# " if args.tap else "", round(per)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"no_reload": base, "reloads": rel, "kib_per_held_reload": per}, f, indent=1)
    bound = base["rss_after"] * 1.10
    # AddressSanitizer keeps freed memory in quarantine: RSS says nothing.
    rss_ok = rel["rss_after"] <= bound or rel["asan"]
    checks = [
        (rel["runtimes_during"] in (None, args.reloads + 1),
         "%d live runtimes while connections of each are open (%s)" %
         (args.reloads + 1, rel["runtimes_during"])),
        (rel["runtimes_after"] in (None, 1),
         "one live runtime once they closed (%s)" % rel["runtimes_after"]),
        (rss_ok, "RSS after closing within 10 %% of the run without reloads (%d <= %d KiB)%s" %
         (rel["rss_after"], bound, " # SKIP AddressSanitizer" if rel["asan"] else "")),
    ]
    for i, (ok, desc) in enumerate(checks, 1):
        if args.tap:
            print("%s %d - %s" % ("ok" if ok else "not ok", i, desc))
        else:
            print("%s %s" % ("PASS" if ok else "FAIL", desc))
    if args.tap:
        print("1..%d" % len(checks))
    return 0 if all(ok for ok, _ in checks) else 1


# ---------------------------------------------------------------- main

def on_term(signo, frame):
    raise SystemExit(128 + signo)	# through the finally: stop what we started


def run(args):
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    tmp = tempfile.mkdtemp(prefix="mk-soak-")
    s = Soak(args, tmp)
    rnd = random.Random(args.seed)
    try:
        for name in ("imaps", "imap", "imaps_rsa", "imap_rsa"):
            s.ports[name] = free_port()
        s.be_port, s.metrics_port = free_port(), free_port()
        setup_certs(s)
        start_backend(s)
        start_agent(s)
        time.sleep(1)
        start = sample(s)
        s.runtimes.append((now(), scrape_runtimes(s)))
        stop_sampler = threading.Event()
        threads = [threading.Thread(target=sampler, args=(s, stop_sampler), daemon=True)]
        for i in range(args.idle):
            threads.append(threading.Thread(target=idle_client, args=(s, rnd.random()), daemon=True))
        for i in range(args.clients):
            threads.append(threading.Thread(target=short_client, args=(s, rnd.random()), daemon=True))
        chaos_threads = []
        threads.append(threading.Thread(target=fault_loop, args=(s, rnd, chaos_threads), daemon=True))
        for t in threads:
            t.start()
        s.stop.wait(args.duration)
        s.stop.set()
        for t in threads[1:] + chaos_threads:
            t.join(IO_TIMEOUT + PRETLS_TIMEOUT + 10)
        end_load = sample(s)
        time.sleep(2)
        left = scrape_states(s)
        # After settle: every client gone, the old runtimes should be too;
        # a connection left as above goes at the idle timeout.
        end = now() + max(args.settle, IDLE_TIMEOUT + 10 if left else 0)
        settle, g = end_load, None
        while now() < end:
            time.sleep(1)
            settle, g = sample(s), scrape_runtimes(s)
            if settle[2] == start[2] and g in (None, 1) and now() > end_load[0] + args.settle:
                break
        stop_sampler.set()
        summary, checks = report(s, start, end_load, settle, g)
        summary["connections_left_after_load"] = left
        summary["connections_after_settle"] = scrape_states(s)
        summary["command"] = " ".join(sys.argv)
        print_summary(summary, sys.stdout, "# " if args.tap else "")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"summary": summary, "samples": s.samples,
                           "faults": [(round(t - s.t0, 2), k) for t, k in s.faults],
                           "failures": [(round(t - s.t0, 2), c, w, d) for t, c, w, d in s.fails]},
                          f, indent=1)
        for i, (ok, desc) in enumerate(checks, 1):
            if args.tap:
                print("%s %d - soak: %s" % ("ok" if ok else "not ok", i, desc))
            else:
                print("%s %s" % ("PASS" if ok else "FAIL", desc))
        if args.tap:
            print("1..%d" % len(checks))
        if not all(ok for ok, _ in checks):
            for ex in summary["unexplained_examples"]:
                print("# " + ex)
            with open(s.log, errors="replace") as f:
                tail = f.readlines()[-15:]
            for ln in tail:
                print("# log: " + ln.rstrip())
        if not all(ok for ok, _ in checks):
            args.keep = True	# the agent's log and configuration, to look at
            return 1
        return 0
    finally:
        s.stop.set()
        for p in (s.agent, s.backend):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if args.keep:
            print("# kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--agent", default=os.environ.get("MAILKTLSD", "agent/mailktlsd"))
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--clients", type=int, default=16, help="busy clients")
    ap.add_argument("--idle", type=int, default=8, help="long-lived idle sessions")
    ap.add_argument("--fault-every", type=float, default=5, help="seconds; 0: no faults")
    ap.add_argument("--chunk-max", type=int, default=32768, help="largest echoed chunk")
    ap.add_argument("--settle", type=float, default=20)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--keyproc-fails-ok", action="store_true",
                    help="handshakes failing right after a key-process kill are explained")
    ap.add_argument("--reload-memory", action="store_true",
                    help="instead of the soak: RSS with and without reloads among open connections")
    ap.add_argument("--reloads", type=int, default=10, help="--reload-memory: SIGHUPs")
    ap.add_argument("--conns", type=int, default=50,
                    help="--reload-memory: connections opened before each SIGHUP")
    ap.add_argument("--json")
    ap.add_argument("--tap", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if args.backend:
        backend_main(args.backend)
        return 0
    if args.reload_memory:
        return reload_memory(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
