#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""First-answer latency for scripts/bench.sh: the time from the end of the
TLS handshake to the first answer, as a client with Nagle on (Python's ssl,
like most mail clients) sees it. Each session: connect, (STARTTLS
dialogue), handshake, (greeting), then one command and its answer, timed.

  first_answer.py backend IMAP_PORT SMTP_PORT
        line backends: greet like the server, answer every line at once
        (IMAP "TAG OK", SMTP "250 ok"); runs until killed
  first_answer.py client PORT imap|smtp implicit|starttls 1.2|1.3 N
        prints "p50=MS p99=MS n=N", or "fail=REASON" and exits 1

Every socket has a timeout; N bounds the loop.
"""

import socket
import ssl
import sys
import threading
import time

TIMEOUT = 10


def serve(c, proto):
    c.settimeout(60)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    try:
        c.sendall(b"* OK ready\r\n" if proto == "imap" else b"220 bench ESMTP\r\n")
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


def accept_loop(port, proto):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(512)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, proto), daemon=True).start()


def read_reply(f, proto):
    while True:
        line = f.readline(4096)
        if not line:
            raise OSError("connection closed")
        if proto == "imap" or line[3:4] != b"-":
            return line


def session(port, proto, mode, ctx, src=None):
    """Return: milliseconds from the handshake's end to the first answer."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT,
                                   source_address=(src, 0) if src else None)
    if mode == "starttls":
        f = raw.makefile("rb")
        read_reply(f, proto)
        if proto == "smtp":
            raw.sendall(b"EHLO client.bench\r\n")
            read_reply(f, proto)
        raw.sendall(b"a0 STARTTLS\r\n" if proto == "imap" else b"STARTTLS\r\n")
        read_reply(f, proto)
        f.close()
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    f = s.makefile("rb")
    if mode == "implicit":
        read_reply(f, proto)
    t0 = time.monotonic()
    s.sendall(b"a1 NOOP\r\n" if proto == "imap" else b"EHLO client.bench\r\n")
    read_reply(f, proto)
    ms = (time.monotonic() - t0) * 1000
    f.close()
    s.close()
    return ms


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def client(port, proto, mode, version, n):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = v
    try:
        ms = [session(port, proto, mode, ctx) for _ in range(n)]
    except (OSError, ssl.SSLError) as e:
        print("fail=%s" % str(e).replace(" ", "_"))
        return 1
    print("p50=%.2f p99=%.2f n=%d" % (pct(ms, 50), pct(ms, 99), n))
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "backend":
        for port, proto in ((int(argv[2]), "imap"), (int(argv[3]), "smtp")):
            threading.Thread(target=accept_loop, args=(port, proto), daemon=True).start()
        while True:
            time.sleep(3600)
    if len(argv) == 7 and argv[1] == "client":
        return client(int(argv[2]), argv[3], argv[4], argv[5], int(argv[6]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
