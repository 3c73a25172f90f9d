#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Key-exchange groups through the agent, on the Implicit TLS and the
STARTTLS path (user-space records here; the VM suite has kTLS).

The client is Python's ssl over memory BIOs, so the test holds the
ClientHello bytes: it checks the key shares in them and sends them in
three TCP segments, 50 ms apart (TCP_NODELAY), so the agent must put the
record together from several reads, as it must for a post-quantum
ClientHello that a real network splits.

With OpenSSL 3.5 on both sides (run on Debian 13, or in
scripts/debian-root.sh trixie with the agent built there) the client
offers X25519MLKEM768 with its 1,216-byte key share and the agent must
negotiate it by default. With OpenSSL 3.0 (Debian 12), which has no
ML-KEM, the default must stay x25519. Either way a listener with
groups = secp384r1 negotiates that group (HelloRetryRequest), the tls
log line, mailktlsctl query and the metrics name the group, and
SSLKEYLOGFILE in the agent's environment writes nothing.

TAP output; run directly or through scripts/run-tests.sh.
"""

import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from agenttest import (AGENT, CLIENT_IP, ROOT, Agent, Backend, check, client_ctx,  # noqa: E402
                       free_port, gen_cert, tap_end)

MKCTL = os.environ.get("MKCTL", os.path.join(ROOT, "agent", "mailktlsctl"))
X25519MLKEM768 = 0x11EC
X25519 = 0x001D
SEGMENTS = 3


def agent_openssl():
    """(major, minor) of the OpenSSL the agent is linked with (-V)."""
    out = subprocess.run([AGENT, "-V"], capture_output=True, text=True).stdout
    m = re.search(r"OpenSSL (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def key_shares(hello):
    """{group: key length} of the key_share extension of a ClientHello
    record (RFC 8446 4.2.8)."""
    shares = {}
    p = 5 + 4 + 2 + 32                       # record, handshake header, version, random
    p += 1 + hello[p]                        # session id
    p += 2 + struct.unpack_from("!H", hello, p)[0]   # cipher suites
    p += 1 + hello[p]                        # compression methods
    end = p + 2 + struct.unpack_from("!H", hello, p)[0]
    p += 2
    while p + 4 <= end:
        etype, elen = struct.unpack_from("!HH", hello, p)
        if etype == 51:
            q, qend = p + 6, p + 4 + elen
            while q + 4 <= qend:
                group, klen = struct.unpack_from("!HH", hello, q)
                shares[group] = klen
                q += 4 + klen
        p += 4 + elen
    return shares


class SplitClient:
    """TLS over memory BIOs on a TCP socket: the ClientHello goes out in
    SEGMENTS pieces, everything after it as OpenSSL produces it."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_ctx().wrap_bio(self.inc, self.out, server_hostname="localhost")
        self.hello = b""

    def handshake(self):
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.hello = self.out.read()
        cut = [0, 5, len(self.hello) // 2, len(self.hello)]
        for a, b in zip(cut, cut[1:]):
            self.sock.sendall(self.hello[a:b])
            time.sleep(0.05)
        while True:
            try:
                self.obj.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                self.flush()
                d = self.sock.recv(65536)
                if not d:
                    raise ConnectionError("EOF in the handshake")
                self.inc.write(d)

    def flush(self):
        d = self.out.read()
        if d:
            self.sock.sendall(d)

    def write(self, data):
        self.obj.write(data)
        self.flush()

    def read_line(self):
        buf = b""
        while not buf.endswith(b"\n"):
            try:
                buf += self.obj.read(4096)
            except ssl.SSLWantReadError:
                d = self.sock.recv(65536)
                if not d:
                    break
                self.inc.write(d)
        return buf


def connect(port):
    s = socket.socket()
    s.settimeout(10)
    s.bind((CLIENT_IP, 0))
    s.connect(("127.0.0.1", port))
    return s


def plain_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(1)
        if not d:
            break
        buf += d
    return buf


def session(port, starttls):
    """A split-ClientHello session, Implicit TLS or after IMAP STARTTLS;
    one line echoed by the backend proves the relay. Returns the open
    client (the caller closes it) and its local address."""
    s = connect(port)
    if starttls:
        plain_line(s)                          # the agent's greeting
        s.sendall(b"a STARTTLS\r\n")
        plain_line(s)
    c = SplitClient(s)
    c.handshake()
    if not starttls:
        c.read_line()                          # the backend's greeting
    c.write(b"b NOOP\r\n")
    return c, c.read_line(), "%s:%d" % s.getsockname()


def tls_line(agent, listener, client):
    needle = "tls listener=%s client=%s " % (listener, client)
    for line in agent.text().splitlines():
        if needle in line:
            return line
    return ""


def query_group(qsock, client):
    out = subprocess.run([MKCTL, "-s", qsock, "query", "--addr", client],
                         capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"^group=(.*)$", out, re.M)
    return m.group(1) if m else out


def metric(text, listener, group):
    m = re.search(r'^mailktls_tls_groups_total\{listener="%s",group="%s"\} (\d+)$'
                  % (listener, group), text, re.M)
    return int(m.group(1)) if m else 0


def main():
    pq = agent_openssl() >= (3, 5) and ssl.OPENSSL_VERSION_INFO >= (3, 5)
    default = "X25519MLKEM768" if pq else "x25519"
    print("# agent: OpenSSL %d.%d; client: %s; expected default group %s"
          % (agent_openssl() + (ssl.OPENSSL_VERSION, default)))
    tmp = tempfile.mkdtemp(prefix="mk-pq-")
    gen_cert(tmp, "cur", "localhost")
    backend = Backend()
    ports = {"imaps": free_port(), "imap": free_port(), "pinned": free_port()}
    pm = free_port()
    qsock = os.path.join(tmp, "query.sock")
    keylog = os.path.join(tmp, "keylog")
    conf = ("[global]\nquery_socket = %s\nmetrics_listen = 127.0.0.1:%d\n"
            "[defaults]\nbackend = 127.0.0.1:%d\nproxy_protocol = none\nprotocol = imap\n"
            "certificate = %s/cur.crt\nprivate_key = %s/cur.key\nalpn = off\n"
            "[listener imaps]\nlisten = 127.0.0.1:%d\ntls = implicit\n"
            "[listener imap]\nlisten = 127.0.0.1:%d\ntls = starttls\nhostname = localhost\n"
            "[listener pinned]\nlisten = 127.0.0.1:%d\ntls = implicit\ngroups = secp384r1\n"
            % (qsock, pm, backend.port, tmp, tmp, ports["imaps"], ports["imap"],
               ports["pinned"]))
    agent = Agent(tmp, conf, env={"SSLKEYLOGFILE": keylog})
    held = []
    try:
        up = all(agent.wait_listen(p) for p in list(ports.values()) + [pm])
        check(up, "agent listens (SSLKEYLOGFILE set in its environment)", agent.text())

        for name, starttls in (("imaps", False), ("imap", True)):
            path = "STARTTLS" if starttls else "Implicit TLS"
            try:
                c, echo, client = session(ports[name], starttls)
                held.append(c)
            except (OSError, ssl.SSLError) as e:
                check(False, "%s: handshake with a ClientHello in %d segments" % (path, SEGMENTS),
                      "%r\n%s" % (e, agent.text()))
                continue
            shares = key_shares(c.hello)
            if pq:
                check(shares.get(X25519MLKEM768) == 1216 and len(c.hello) > 1400,
                      "%s: ClientHello of %d bytes with a 1216-byte X25519MLKEM768 key share"
                      % (path, len(c.hello)), repr(shares))
            else:
                check(shares.get(X25519) == 32 and X25519MLKEM768 not in shares,
                      "%s: ClientHello of %d bytes with an x25519 key share, no ML-KEM"
                      % (path, len(c.hello)), repr(shares))
            check(echo == b"b NOOP\r\n",
                  "%s: sent in %d segments, handshake done, relay works" % (path, SEGMENTS),
                  repr(echo) + "\n" + agent.text())
            line = tls_line(agent, name, client) if agent.wait_log(
                "listener=%s client=%s " % (name, client)) else ""
            check(" group=%s " % default in line,
                  "%s: tls log line has group=%s" % (path, default), line or agent.text())
            got = query_group(qsock, client)
            check(got == default, "%s: mailktlsctl query says group=%s" % (path, default), got)

        try:
            c, echo, client = session(ports["pinned"], False)
            held.append(c)
            agent.wait_log("listener=pinned client=%s " % client)
            line = tls_line(agent, "pinned", client)
        except (OSError, ssl.SSLError) as e:
            echo, line = repr(e), ""
        check(echo == b"b NOOP\r\n" and " group=secp384r1 " in line,
              "groups = secp384r1: HelloRetryRequest, split ClientHello, group=secp384r1",
              line or agent.text())

        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % pm, timeout=10) \
            .read().decode()
        check(metric(text, "imaps", default) == 1 and metric(text, "imap", default) == 1 and
              metric(text, "pinned", "secp384r1") == 1,
              "metrics: mailktls_tls_groups_total counts each session under its group",
              "\n".join(ln for ln in text.splitlines() if "groups" in ln))

        kp = [p for p in os.listdir("/proc") if p.isdigit() and
              os.path.exists("/proc/%s/cmdline" % p) and
              open("/proc/%s/cmdline" % p, "rb").read().startswith(b"mailktlsd\0-K")]
        envs = []
        for p in kp:
            try:
                with open("/proc/%s/status" % p) as f:
                    ppid = re.search(r"^PPid:\s+(\d+)", f.read(), re.M).group(1)
                if int(ppid) == agent.proc.pid:
                    envs.append(open("/proc/%s/environ" % p, "rb").read())
            except (OSError, AttributeError):
                pass
        # key_processes = auto: one or more, none may see the variable
        check(envs and all(b"SSLKEYLOGFILE=" not in e for e in envs),
              "SSLKEYLOGFILE is not passed on to the key processes", repr(kp))
    finally:
        for c in held:
            c.sock.close()
        rc = agent.stop()
    check(rc == 0, "agent exits 0 on SIGTERM", agent.text())
    check(not os.path.exists(keylog),
          "SSLKEYLOGFILE: no key log written after %d handshakes" % 3)
    shutil.rmtree(tmp, ignore_errors=True)
    return tap_end()


if __name__ == "__main__":
    sys.exit(main())
