#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Clients of the private Cyrus instance (tests/integration/lib/cyrus.sh)
for tests/integration/cyrus_test.sh: mailbox creation as the admin (what
cyradm does), LMTP delivery, the refusals of Cyrus's own plaintext ports,
and a session through mailktlsd held open while the test looks at it.

Run with Debian's /usr/bin/python3. Every socket has a timeout and every
wait a deadline. Exit status 0 means the check passed; what was seen goes
to stdout either way, as the diagnostics of the TAP line.

  cyrus_clients.py create --port P --user ADMIN --password W --mailbox user/U
  cyrus_clients.py lmtp --socket S --rcpt U --msg F
  cyrus_clients.py plain-imap --port P --user U --password W
  cyrus_clients.py plain-pop3 --port P --user U --password W
  cyrus_clients.py hold --port P --src A --cafile F --user U --password W
                        --ready F --release F
"""

import argparse
import base64
import imaplib
import os
import smtplib
import socket
import sys
import time

sys.dont_write_bytecode = True	# no __pycache__ in the source tree
from mkclients import SourcedIMAP  # noqa: E402 (after the line above)

TIMEOUT = 10.0
MAX_READ = 1 << 16	# no refusal probe reads more than this
REFUSAL_IMAP = b"NO Login only available under a layer"
REFUSAL_POP3 = b"-ERR [AUTH] USER command only available under a layer"
REFUSAL_SASL = b"encryption needed to use mechanism"


class Fail(Exception):
    """A failed check; the message is the diagnostic."""


def cmd_create(args):
    imap = imaplib.IMAP4(args.host, args.port, timeout=TIMEOUT)
    imap.login(args.user, args.password)
    typ, data = imap.create(args.mailbox)
    if typ != "OK":
        raise Fail(f"CREATE {args.mailbox}: {typ} {data}")
    typ, data = imap.list(args.mailbox)
    imap.logout()
    print(f"LIST {args.mailbox}: {typ} {data}")
    if typ != "OK" or not data or data[0] is None:
        raise Fail("the new mailbox is not listed")
    return 0


def cmd_lmtp(args):
    with open(args.msg, "rb") as f:
        msg = f.read()
    lmtp = smtplib.LMTP(args.socket, timeout=TIMEOUT)
    try:
        refused = lmtp.sendmail("sender@example.test", [args.rcpt], msg)
    finally:
        lmtp.quit()
    if refused:
        raise Fail(f"refused: {refused}")
    print(f"delivered {len(msg)} bytes to {args.rcpt}")
    return 0


class Lines:
    """A plaintext TCP connection read line by line, with a deadline."""

    def __init__(self, args):
        self.sock = socket.create_connection((args.host, args.port), timeout=TIMEOUT)
        self.buf = b""
        self.total = 0

    def line(self):
        deadline = time.monotonic() + TIMEOUT
        while b"\r\n" not in self.buf:
            if time.monotonic() > deadline or self.total > MAX_READ:
                raise Fail(f"no complete line; got {self.buf!r}")
            data = self.sock.recv(4096)
            if not data:
                raise Fail(f"connection closed; got {self.buf!r}")
            self.total += len(data)
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        print("S:", line.decode(errors="replace"))
        return line

    def send(self, data, shown=None):
        print("C:", shown or data.decode(errors="replace").rstrip())
        self.sock.sendall(data)

    def until_tagged(self, tag):
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return line


def plain_b64(args):
    return base64.b64encode(f"\0{args.user}\0{args.password}".encode())


def cmd_plain_imap(args):
    """LOGINDISABLED, no AUTH=PLAIN; LOGIN and AUTHENTICATE PLAIN refused
    with valid credentials; the session is still not authenticated."""
    c = Lines(args)
    greeting = c.line()
    c.send(b"a1 CAPABILITY\r\n")
    caps = b""
    while True:
        line = c.line()
        if line.startswith(b"* CAPABILITY "):
            caps = line
        if line.startswith(b"a1 "):
            break
    words = caps.split()
    if b"LOGINDISABLED" not in words or b"AUTH=PLAIN" in words:
        raise Fail(f"capabilities: want LOGINDISABLED and no AUTH=PLAIN: {caps!r}")
    c.send(f"a2 LOGIN {args.user} {args.password}\r\n".encode(),
           f"a2 LOGIN {args.user} <password>")
    line = c.until_tagged(b"a2")
    if line != b"a2 " + REFUSAL_IMAP:
        raise Fail(f"LOGIN: want 'a2 {REFUSAL_IMAP.decode()}', got {line!r}")
    c.send(b"a3 AUTHENTICATE PLAIN " + plain_b64(args) + b"\r\n",
           "a3 AUTHENTICATE PLAIN <credentials>")
    line = c.until_tagged(b"a3")
    if line != b"a3 NO " + REFUSAL_SASL:
        raise Fail(f"AUTHENTICATE PLAIN: want 'a3 NO {REFUSAL_SASL.decode()}', got {line!r}")
    c.send(b"a4 SELECT INBOX\r\n")
    line = c.until_tagged(b"a4")
    if not line.startswith(b"a4 BAD "):
        raise Fail(f"SELECT after the refusals: want a4 BAD, got {line!r}")
    c.send(b"a5 LOGOUT\r\n")
    print(f"refused as expected; greeting {greeting[:40]!r}")
    return 0


def cmd_plain_pop3(args):
    """No USER or SASL PLAIN in CAPA; USER and AUTH PLAIN refused."""
    c = Lines(args)
    if not c.line().startswith(b"+OK"):
        raise Fail("no +OK greeting")
    c.send(b"CAPA\r\n")
    caps = []
    if not c.line().startswith(b"+OK"):
        raise Fail("CAPA refused")
    while True:
        line = c.line()
        if line == b".":
            break
        caps.append(line)
    if b"USER" in caps or any(x.startswith(b"SASL") and b"PLAIN" in x for x in caps):
        raise Fail(f"CAPA offers a plaintext login: {caps}")
    c.send(f"USER {args.user}\r\n".encode())
    line = c.line()
    if line != REFUSAL_POP3:
        raise Fail(f"USER: want '{REFUSAL_POP3.decode()}', got {line!r}")
    c.send(b"AUTH PLAIN " + plain_b64(args) + b"\r\n", "AUTH PLAIN <credentials>")
    line = c.line()
    if line != b"-ERR [AUTH] authenticating: " + REFUSAL_SASL:
        raise Fail(f"AUTH PLAIN: want '-ERR [AUTH] authenticating: {REFUSAL_SASL.decode()}', "
                   f"got {line!r}")
    c.send(b"STAT\r\n")
    line = c.line()
    if not line.startswith(b"-ERR"):
        raise Fail(f"STAT after the refusals: want -ERR, got {line!r}")
    c.send(b"QUIT\r\n")
    print("refused as expected")
    return 0


def cmd_hold(args):
    """Log in through the agent (Implicit TLS), tell the test, and keep the
    session until it says so: the test looks at the live connection."""
    imap = SourcedIMAP(args)
    client_port = imap.sock.getsockname()[1]
    imap.login(args.user, args.password)
    imap.select("INBOX", readonly=True)
    with open(args.ready + ".tmp", "w") as f:
        f.write(f"{args.src}:{client_port}\n")
    os.rename(args.ready + ".tmp", args.ready)
    deadline = time.monotonic() + 30
    while not os.path.exists(args.release):
        if time.monotonic() > deadline:
            raise Fail("not released within 30 s")
        time.sleep(0.05)
    imap.logout()
    print(f"held the session from {args.src}:{client_port}")
    return 0


def main():
    p = argparse.ArgumentParser()
    cmds = {"create": cmd_create, "lmtp": cmd_lmtp, "plain-imap": cmd_plain_imap,
            "plain-pop3": cmd_plain_pop3, "hold": cmd_hold}
    p.add_argument("cmd", choices=sorted(cmds))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--src", default="127.0.0.2")
    p.add_argument("--sni", default="mail.example.test")
    for opt in ("cafile", "user", "password", "mailbox", "socket", "rcpt", "msg", "ready",
                "release", "alpn"):
        p.add_argument("--" + opt)
    args = p.parse_args()
    try:
        return cmds[args.cmd](args)
    except Exception as e:  # a failed check, reported as one line
        print(f"{args.cmd} failed: {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
