# SPDX-License-Identifier: GPL-2.0
"""What the Python integration tests of the agent share: TAP lines, ports,
test certificates, TLS client contexts, the agent as a child process
whose log goes to a file, small backends and the systemd notify socket.

    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
    from agenttest import AGENT, Agent, check, results, ...
"""

import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
AGENT = os.environ.get("MAILKTLSD", os.path.join(ROOT, "agent", "mailktlsd"))

results = []


def agent_missing():
    """The test's whole TAP output when the agent is not built.
    Return: True then (the test exits 1), False when it is there."""
    if os.access(AGENT, os.X_OK):
        return False
    print("1..1\nnot ok 1 - %s is missing (run make)" % AGENT)
    return True


def tap_end():
    """The plan after the checks; Return: the test's exit status."""
    print("1..%d" % len(results))
    return 0 if all(results) else 1


def check(ok, desc, detail=""):
    """One TAP line; @detail (its last 20 lines) as diagnostics on failure.
    Return: @ok."""
    results.append(ok)
    print(("ok" if ok else "not ok") + " %d - %s" % (len(results), desc))
    if not ok and detail:
        for line in str(detail).splitlines()[-20:]:
            print("#   " + line)
    sys.stdout.flush()
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics_text(port, host="127.0.0.1", timeout=5):
    """The agent's /metrics page (at most 1 MiB). Return: bytes; raises
    OSError when it does not answer."""
    with socket.create_connection((host, port), timeout=timeout) as m:
        m.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        buf = b""
        while len(buf) < 1 << 20:
            d = m.recv(65536)
            if not d:
                break
            buf += d
    return buf


def gen_cert(d, name, cn):
    """A self-signed ECDSA P-256 pair, d/name.crt and d/name.key."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                    "-subj", "/CN=" + cn, "-keyout", os.path.join(d, name + ".key"),
                    "-out", os.path.join(d, name + ".crt")],
                   check=True, capture_output=True)


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # We want to see a missing close_notify as an error, not as EOF.
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return ctx


class Agent:
    """mailktlsd -c tmp/agent.conf, stdout and stderr into tmp/agent.log;
    with @nofile, started under that RLIMIT_NOFILE (soft and hard)."""

    def __init__(self, tmp, conf_text, nofile=None, env=None):
        self.conf = os.path.join(tmp, "agent.conf")
        self.log = os.path.join(tmp, "agent.log")
        with open(self.conf, "w") as f:
            f.write(conf_text)
        self.logf = open(self.log, "w")
        pre = None
        if nofile:
            pre = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen([AGENT, "-c", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT, preexec_fn=pre,
                                     env=dict(os.environ, **(env or {})))

    def wait_listen(self, port, secs=10):
        end = time.time() + secs
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                if self.proc.poll() is not None:
                    return False
                time.sleep(0.05)
        return False

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait_log(self, needle, secs=5):
        end = time.time() + secs
        while time.time() < end:
            if needle in self.text():
                return True
            if self.proc.poll() is not None:
                return needle in self.text()
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode


CLIENT_IP = "127.0.0.2"


class Backend:
    """Echo backend with a greeting; mode 'echo', 'stall' (accept, never
    read or write) or 'reset' (greet, then reset on the first bytes)."""

    def __init__(self, mode="echo", greeting=b"* OK ready\r\n"):
        self.mode = mode
        self.greeting = greeting
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(200)
        self.conns = []
        self.eof_seen = threading.Event()
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        if self.mode == "stall":
            return
        try:
            c.sendall(self.greeting)
            while True:
                d = c.recv(65536)
                if not d:
                    self.eof_seen.set()
                    # Half-close: the client finished sending; we may still talk.
                    c.sendall(b"* BYE after your EOF\r\n")
                    c.close()
                    return
                if self.mode == "reset":
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    c.close()
                    return
                c.sendall(d)
        except OSError:
            pass


def tls_connect(port, timeout=5):
    raw = socket.socket()
    raw.settimeout(timeout)
    raw.bind((CLIENT_IP, 0))
    raw.connect(("127.0.0.1", port))
    return client_ctx().wrap_socket(raw, server_hostname="localhost")


def read_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(4096)
        if not d:
            break
        buf += d
    return buf


def peer_cn(s):
    der = s.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"],
                         input=der, capture_output=True).stdout.decode()
    return out.strip().split("CN")[-1].strip(" =")


def serves(port, cn, secs=8):
    """Within secs, new connections get the certificate for cn.
    Return: (True, cn) or (False, the last CN seen)."""
    end = time.time() + secs
    got = None
    while time.time() < end:
        try:
            c = tls_connect(port)
            read_line(c)
            got = peer_cn(c)
            c.close()
        except OSError:
            pass
        if got == cn:
            return True, got
        time.sleep(0.2)
    return False, got


def swap_symlink(target, link):
    """A certificate renewal by symlink swap: the new link appears in one step."""
    os.symlink(target, link + ".new")
    os.rename(link + ".new", link)


def listener(name, port, backend_port, d, extra=""):
    return ("\n[listener %s]\nlisten = 127.0.0.1:%d\nprotocol = imap\ntls = implicit\n"
            "backend = 127.0.0.1:%d\nproxy_protocol = none\ncertificate = %s/cur.crt\n"
            "private_key = %s/cur.key\nalpn = off\n%s" % (name, port, backend_port, d, d, extra))


class NotifySocket:
    """What systemd does for Type=notify: a datagram socket in
    NOTIFY_SOCKET that collects the service's state messages."""

    def __init__(self, d):
        self.path = os.path.join(d, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def next(self, secs=10):
        """The next message as a dict of its KEY=VALUE lines, or None."""
        self.sock.settimeout(secs)
        try:
            msg = self.sock.recv(4096).decode()
        except socket.timeout:
            return None
        return dict(ln.split("=", 1) for ln in msg.splitlines() if "=" in ln)

    def close(self):
        self.sock.close()
