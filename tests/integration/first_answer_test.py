#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""The first answer after the handshake comes at once: a client that keeps
Nagle on (Python's ssl, as most clients) sends its first command after TLS
and gets the answer in well under the 40 ms of a delayed ACK, for STARTTLS
(IMAP and SMTP, where the client speaks first after TLS) and Implicit TLS,
TLS 1.2 and 1.3. A server flight held back (corked) until more data comes
stalls exactly there: the client's Finished stays unacknowledged, Nagle
holds its command until the peer's delayed-ACK timer fires. Prints TAP."""

import os
import socket
import ssl
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from agenttest import (CLIENT_IP, Agent, agent_missing, check, free_port, gen_cert,  # noqa: E402
                       tap_end)

SESSIONS = 20
TIMEOUT = 10
# A stall delays every session by the 40 ms delayed-ACK timer, so the
# median shows it; a loaded host's scheduling hits a few sessions only.
P50_BOUND_MS = 20.0

# The benchmarks measure the same sessions with scripts/bench/first_answer.c,
# which also runs in the VM (no Python there); this test keeps Python's ssl
# module, a client library mail clients are written with.


def serve(c, proto):
    """Greet like the protocol's server, answer every line at once."""
    c.settimeout(60)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    try:
        c.sendall(b"* OK ready\r\n" if proto == "imap" else b"220 test ESMTP\r\n")
        while True:
            d = c.recv(4096)
            if not d:
                break
            buf += d
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                c.sendall(line.split(b" ", 1)[0] + b" OK done\r\n" if proto == "imap"
                          else b"250 ok\r\n")
    except OSError:
        pass
    c.close()


def accept_loop(s, proto):
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, proto), daemon=True).start()


def backend(proto):
    """A line backend for @proto; Return: its port."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    threading.Thread(target=accept_loop, args=(s, proto), daemon=True).start()
    return s.getsockname()[1]


def read_reply(f, proto):
    while True:
        line = f.readline(4096)
        if not line:
            raise OSError("connection closed")
        if proto == "imap" or line[3:4] != b"-":
            return line


def session(port, proto, starttls, version):
    """Milliseconds from the handshake's end to the first answer, from
    CLIENT_IP, with Nagle on."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT,
                                   source_address=(CLIENT_IP, 0))
    if starttls:
        f = raw.makefile("rb", buffering=0)  # nothing past the go-ahead may be read
        read_reply(f, proto)
        if proto == "smtp":
            raw.sendall(b"EHLO client.test\r\n")
            read_reply(f, proto)
        raw.sendall(b"a0 STARTTLS\r\n" if proto == "imap" else b"STARTTLS\r\n")
        read_reply(f, proto)
        f.close()
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    f = s.makefile("rb")
    if not starttls:
        read_reply(f, proto)
    t0 = time.monotonic()
    s.sendall(b"a1 NOOP\r\n" if proto == "imap" else b"EHLO client.test\r\n")
    read_reply(f, proto)
    ms = (time.monotonic() - t0) * 1000
    f.close()
    s.close()
    return ms


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def conf(d, listeners):
    out = "[global]\nworkers = 1\nquery_socket =\nktls = off\n"
    for name, port, proto, tls, be in listeners:
        out += ("\n[listener %s]\nlisten = 127.0.0.1:%d\nprotocol = %s\ntls = %s\n"
                "backend = 127.0.0.1:%d\nproxy_protocol = none\nalpn = off\n"
                "certificate = %s/cur.crt\nprivate_key = %s/cur.key\n"
                % (name, port, "submission" if proto == "smtp" else proto, tls, be, d, d))
    return out


def main():
    if agent_missing():
        return 1
    with tempfile.TemporaryDirectory(prefix="mk-first-answer-") as d:
        gen_cert(d, "cur", "localhost")
        imap_be, smtp_be = backend("imap"), backend("smtp")
        cases = [("imap", True, free_port(), imap_be), ("smtp", True, free_port(), smtp_be),
                 ("imap", False, free_port(), imap_be)]
        a = Agent(d, conf(d, [("l%d" % i, port, proto, "starttls" if st else "implicit",
                               be) for i, (proto, st, port, be) in enumerate(cases)]))
        try:
            if not check(all(a.wait_listen(c[2]) for c in cases), "agent starts", a.text()):
                return 1
            for proto, starttls, port, _ in cases:
                for vname, version in (("1.3", ssl.TLSVersion.TLSv1_3),
                                       ("1.2", ssl.TLSVersion.TLSv1_2)):
                    what = "%s %s TLS %s" % ("STARTTLS" if starttls else "Implicit TLS",
                                             proto.upper(), vname)
                    try:
                        ms = [session(port, proto, starttls, version)
                              for _ in range(SESSIONS)]
                    except OSError as e:
                        check(False, "%s: sessions complete" % what, "%s\n%s" % (e, a.text()))
                        continue
                    check(pct(ms, 50) < P50_BOUND_MS,
                          "%s, Nagle on: first answer median %.1f ms < %.0f ms over %d sessions"
                          " (p90 %.1f ms, max %.1f ms)" % (what, pct(ms, 50), P50_BOUND_MS,
                                                           SESSIONS, pct(ms, 90), max(ms)))
        finally:
            a.stop()
    return tap_end()


if __name__ == "__main__":
    sys.exit(main())
