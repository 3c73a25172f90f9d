#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""STARTTLS clients and probes for tests/integration/starttls_test.sh.

Real library clients (imaplib starttls(), poplib stls(), smtplib starttls())
and raw-socket probes of the agent's pre-TLS dialogue: command injection
across STARTTLS, the RFC 8314 section 4.1 cleartext refusal, refusal and
pre-TLS limits, and the capability filter after TLS (against the real
daemons, or against a fake backend that offers STARTTLS/STLS on purpose).

Run with Debian's /usr/bin/python3. Every socket has a timeout and every
loop a deadline. Exit status 0 means the check passed; what was seen goes
to stdout either way, as the diagnostics of the TAP line.

  starttls_clients.py py-imap|py-pop3 --port P --user U --password W --out F
  starttls_clients.py py-smtp --port P --sender S --rcpt R --msg F
  starttls_clients.py inject --port P --probe NAME [--user U --password W]
  starttls_clients.py refusal --proto imap|pop3|smtp --port P --user U --password W
                              [--secrets-out F]
  starttls_clients.py auth-limit --proto imap|pop3|smtp --port P --max N
  starttls_clients.py caps --proto imap|pop3|smtp --port P --user U --password W
  starttls_clients.py fake-caps --proto imap|pop3|smtp --port P --capture-port B
  starttls_clients.py long-line --proto imap|smtp --port P
  starttls_clients.py too-many --port P --max N         (IMAP)
  starttls_clients.py silent|slow --port P --timeout S  (IMAP)
  starttls_clients.py delivered --maildir D --token T --sent F
"""

import argparse
import base64
import hashlib
import imaplib
import os
import poplib
import re
import smtplib
import socket
import ssl
import struct
import sys
import threading
import time

TIMEOUT = 10.0
QUIET = 1.5		# how long "nothing arrives" is watched for after TLS
MAX_READ = 1 << 20	# no probe reads more than this from the server


class Fail(Exception):
    """A failed check; the message is the diagnostic."""


def tls_context(args):
    ctx = ssl.create_default_context()
    if args.cafile:
        ctx.load_verify_locations(args.cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(args, timeout=TIMEOUT):
    s = socket.create_connection((args.host, args.port), timeout=timeout,
                                 source_address=(args.src, 0))
    # One send() must be one segment: no Nagle delay splitting the probe.
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Peer:
    """A socket (plain, later TLS) with a receive buffer and deadlines."""

    def __init__(self, sock, log):
        self.sock = sock
        self.buf = b""
        self.log = log
        self.eof = False

    def _fill(self, deadline):
        """Read once before deadline; False on timeout. Sets eof."""
        left = deadline - time.monotonic()
        if left <= 0 or self.eof:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except ssl.SSLError as e:
            self.log(f"  TLS error while reading: {e}")
            self.eof = True
            return False
        except ConnectionResetError:
            self.eof = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        if len(self.buf) > MAX_READ:
            raise Fail("server sent more than 1 MiB")
        return True

    def line(self, timeout=TIMEOUT):
        """One line, CRLF included; Fail if none arrives in time."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if not self._fill(deadline):
                raise Fail(f"no complete line within {timeout}s (eof={self.eof}, "
                           f"have {self.buf[:200]!r})")
        ln, self.buf = self.buf.split(b"\n", 1)
        ln += b"\n"
        self.log(f"  S: {ln!r}")
        return ln

    def until(self, pred, timeout=TIMEOUT):
        """Lines up to and including the first one for which pred() is true."""
        out = []
        while True:
            out.append(self.line(timeout))
            if pred(out[-1]):
                return out

    def quiet(self, secs):
        """Whatever arrives within secs (b'' means nothing did)."""
        deadline = time.monotonic() + secs
        while self._fill(deadline):
            pass
        got, self.buf = self.buf, b""
        if got:
            self.log(f"  S (unexpected): {got[:300]!r}")
        return got

    def wait_eof(self, secs):
        """True if the server closed within secs; collects what came before."""
        deadline = time.monotonic() + secs
        while not self.eof and time.monotonic() < deadline:
            self._fill(deadline)
        return self.eof

    def send(self, data):
        self.log(f"  C: {data!r}")
        self.sock.sendall(data)

    def starttls(self, args):
        """TLS handshake on the same socket; the buffer must be empty."""
        if self.buf:
            raise Fail(f"plaintext left before the handshake: {self.buf!r}")
        ctx = tls_context(args)
        self.sock.settimeout(TIMEOUT)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=args.sni)
        self.log(f"  -- TLS: {self.sock.version()} {self.sock.cipher()[0]}")


def printer(line):
    print(line, flush=True)


def open_peer(args):
    return Peer(connect(args), printer)


def smtp_reply(peer, timeout=TIMEOUT):
    """A whole SMTP reply (multi-line): the list of its lines."""
    return peer.until(lambda ln: len(ln) < 4 or ln[3:4] != b"-", timeout)


def tagged(tag):
    return lambda ln: ln.startswith(tag + b" ")


def pop3_multi(peer):
    first = peer.line()
    if not first.startswith(b"+OK"):
        return [first]
    return [first] + peer.until(lambda ln: ln == b".\r\n")


def b64_plain(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())


def has_starttls(lines):
    return [ln for ln in lines if re.search(rb"(?i)(^|[\s\[-])(STARTTLS|STLS)(\s|\]|$)", ln)]


# ---------------------------------------------------------------- real clients

class StartTlsIMAP(imaplib.IMAP4):
    def __init__(self, args):
        self._mk_args = args
        super().__init__(args.host, args.port, timeout=TIMEOUT)

    def _create_socket(self, timeout):
        return connect(self._mk_args, timeout)


class StartTlsPOP3(poplib.POP3):
    def __init__(self, args):
        self._mk_args = args
        super().__init__(args.host, args.port, timeout=TIMEOUT)

    def _create_socket(self, timeout):
        return connect(self._mk_args, timeout)


def cmd_py_imap(args):
    imap = StartTlsIMAP(args)
    imap.starttls(ssl_context=tls_context(args))
    # imaplib asks for CAPABILITY again after the handshake.
    if "STARTTLS" in imap.capabilities:
        raise Fail(f"STARTTLS offered inside TLS: {imap.capabilities}")
    imap.login(args.user, args.password)
    typ, data = imap.select("INBOX", readonly=True)
    if typ != "OK" or int(data[0]) < 1:
        raise Fail(f"select INBOX: {typ} {data}")
    typ, data = imap.fetch("1", "(BODY.PEEK[])")
    if typ != "OK" or not isinstance(data[0], tuple):
        raise Fail(f"fetch: {typ} {data}")
    with open(args.out, "wb") as f:
        f.write(data[0][1])
    cipher = imap.sock.cipher()[0]
    imap.logout()
    print(f"fetched {len(data[0][1])} bytes over {cipher}; caps {imap.capabilities}")
    return 0


def cmd_py_pop3(args):
    pop = StartTlsPOP3(args)
    pop.stls(context=tls_context(args))
    caps = pop.capa()
    if "STLS" in caps:
        raise Fail(f"STLS offered inside TLS: {caps}")
    pop.user(args.user)
    pop.pass_(args.password)
    count, _ = pop.stat()
    if count < 1:
        raise Fail(f"STAT says {count} messages")
    _, lines, _ = pop.retr(1)
    body = b"".join(line + b"\r\n" for line in lines)
    with open(args.out, "wb") as f:
        f.write(body)
    pop.quit()
    print(f"retrieved {len(body)} bytes; CAPA inside TLS: {sorted(caps)}")
    return 0


def cmd_py_smtp(args):
    with open(args.msg, "rb") as f:
        msg = f.read()
    with smtplib.SMTP(args.host, args.port, local_hostname="client.example.test",
                      timeout=TIMEOUT, source_address=(args.src, 0)) as s:
        s.ehlo()
        if not s.has_extn("starttls"):
            raise Fail(f"no STARTTLS before TLS: {s.esmtp_features}")
        s.starttls(context=tls_context(args))
        code, text = s.ehlo()
        if code != 250 or s.has_extn("starttls"):
            raise Fail(f"EHLO inside TLS: {code} {text!r}")
        refused = s.sendmail(args.sender, [args.rcpt], msg)
    if refused:
        raise Fail(f"refused: {refused}")
    print(f"accepted; EHLO inside TLS: {text!r}")
    return 0


# ------------------------------------------------------------ injection probes

def expect(cond, what):
    if not cond:
        raise Fail(what)


def after_tls_quiet(peer, what):
    """Nothing may arrive inside TLS before the client speaks: no second
    greeting, no reply to an injected command."""
    got = peer.quiet(QUIET)
    expect(not got, f"inside TLS before any command, got {got[:200]!r} ({what})")


def upgrade(peer, args, segment, greeting, ok, command):
    """Greeting, then `segment` (the STARTTLS command and whatever is
    injected behind it) in one send, the OK reply, no plaintext after it,
    then the handshake."""
    g = peer.line()
    expect(g.startswith(greeting), f"greeting {g!r}")
    peer.send(segment)
    r = peer.line()
    expect(r.startswith(ok), f"{command} reply {r!r}")
    extra = peer.quiet(0.3)
    expect(not extra, f"plaintext after the {command} reply: {extra!r}")
    peer.starttls(args)


def imap_starttls(peer, args, segment):
    upgrade(peer, args, segment, b"* OK", b"a OK", "STARTTLS")


def probe_imap_noop(peer, args):
    imap_starttls(peer, args, b"a STARTTLS\r\nb NOOP\r\n")
    after_tls_quiet(peer, "injected b NOOP or a second greeting")
    peer.send(b"c NOOP\r\n")
    r = peer.line()
    expect(r.startswith(b"c OK"), f"first line inside TLS is {r!r}, not c's reply")
    late = peer.quiet(0.5)
    expect(b"b " not in late, f"a reply to b arrived late: {late!r}")


def probe_imap_login(peer, args):
    seg = f"a STARTTLS\r\nb LOGIN {args.user} {args.password}\r\n".encode()
    imap_starttls(peer, args, seg)
    after_tls_quiet(peer, "injected b LOGIN")
    peer.send(b"c SELECT INBOX\r\n")
    r = peer.line()
    expect(r.startswith(b"c "), f"first line inside TLS is {r!r}")
    expect(not r.startswith(b"c OK"), f"SELECT succeeded: the injected LOGIN ran: {r!r}")
    peer.send(b"d LOGOUT\r\n")


def pop3_stls(peer, args, segment):
    upgrade(peer, args, segment, b"+OK", b"+OK", "STLS")


def probe_pop3_capa(peer, args):
    pop3_stls(peer, args, b"STLS\r\nCAPA\r\n")
    after_tls_quiet(peer, "injected CAPA or a second greeting")
    peer.send(b"CAPA\r\n")
    lines = pop3_multi(peer)
    expect(lines[0].startswith(b"+OK"), f"CAPA reply {lines!r}")
    expect(not has_starttls(lines), f"STLS offered inside TLS: {lines!r}")
    late = peer.quiet(0.5)
    expect(not late, f"a second reply arrived: {late!r}")
    peer.send(b"QUIT\r\n")


def probe_pop3_user(peer, args):
    pop3_stls(peer, args, f"STLS\r\nUSER {args.user}\r\n".encode())
    after_tls_quiet(peer, "injected USER")
    peer.send(f"PASS {args.password}\r\n".encode())
    r = peer.line()
    expect(r.startswith(b"-ERR"), f"PASS accepted: the injected USER ran: {r!r}")
    peer.send(b"QUIT\r\n")


def smtp_starttls(peer, args, segment):
    g = smtp_reply(peer)
    expect(g[-1].startswith(b"220 "), f"greeting {g!r}")
    peer.send(b"EHLO x\r\n")
    e = smtp_reply(peer)
    expect(e[-1].startswith(b"250 ") and any(b"STARTTLS" in ln for ln in e),
           f"EHLO before TLS {e!r}")
    peer.send(segment)
    r = smtp_reply(peer)
    expect(r[0].startswith(b"220 "), f"STARTTLS reply {r!r}")
    extra = peer.quiet(0.3)
    expect(not extra, f"plaintext after the STARTTLS reply: {extra!r}")
    peer.starttls(args)


def probe_smtp_ehlo(peer, args):
    smtp_starttls(peer, args, b"STARTTLS\r\nEHLO y\r\n")
    after_tls_quiet(peer, "injected EHLO y or the backend greeting")
    peer.send(b"EHLO z\r\n")
    e = smtp_reply(peer)
    expect(e[0].startswith(b"250-" + args.backend_name.encode()),
           f"first reply inside TLS is not the backend's EHLO reply: {e!r}")
    expect(not has_starttls(e), f"STARTTLS offered inside TLS: {e!r}")
    late = peer.quiet(0.5)
    expect(not late, f"a second reply arrived: {late!r}")
    peer.send(b"QUIT\r\n")


def probe_smtp_mail(peer, args):
    smtp_starttls(peer, args, b"STARTTLS\r\nMAIL FROM:<inject@example.test>\r\n")
    after_tls_quiet(peer, "injected MAIL")
    peer.send(b"EHLO z\r\n")
    smtp_reply(peer)
    peer.send(f"RCPT TO:<{args.rcpt}>\r\n".encode())
    r = smtp_reply(peer)
    expect(r[-1].startswith(b"503"), f"RCPT without MAIL: {r!r} (the injected MAIL ran?)")
    peer.send(b"QUIT\r\n")


def probe_imap_late(peer, args):
    """Plaintext sent after the STARTTLS reply, before any ClientHello, is
    handshake input: never answered, the connection just ends."""
    g = peer.line()
    expect(g.startswith(b"* OK"), f"greeting {g!r}")
    peer.send(b"a STARTTLS\r\n")
    r = peer.line()
    expect(r.startswith(b"a OK"), f"STARTTLS reply {r!r}")
    peer.send(b"b NOOP\r\n")
    closed = peer.wait_eof(5.0)
    got = peer.buf
    print(f"  after b NOOP: {got[:100]!r}, closed={closed}")
    expect(b"b OK" not in got and b"b BAD" not in got, f"b NOOP was answered: {got!r}")
    expect(closed, "the connection stayed open 5 s after non-TLS bytes in the handshake")


PROBES = {"imap-noop": probe_imap_noop, "imap-login": probe_imap_login,
          "imap-late": probe_imap_late, "pop3-capa": probe_pop3_capa,
          "pop3-user": probe_pop3_user, "smtp-ehlo": probe_smtp_ehlo,
          "smtp-mail": probe_smtp_mail}


def cmd_inject(args):
    peer = open_peer(args)
    try:
        PROBES[args.probe](peer, args)
    finally:
        peer.sock.close()
    print("no injected command was answered or executed")
    return 0


# ----------------------------------------------------- RFC 8314 section 4.1

def refusal_cases(args):
    """(name, [(valid lines), (invalid lines)], refusal prefix); each line list
    is sent one line at a time on a fresh connection; the reply to the last
    one is compared."""
    u, p, w = args.user, args.password, args.wrong
    if args.proto == "imap":
        return [
            ("LOGIN", [f"a LOGIN {u} {p}"], [f"a LOGIN {u} {w}"], b"a NO "),
            ("LOGIN quoted", [f'a LOGIN "{u}" "{p}"'], [f'a LOGIN "nosuchuser" "{w}"'],
             b"a NO "),
            ("AUTHENTICATE PLAIN (SASL-IR)",
             ["a AUTHENTICATE PLAIN " + b64_plain(u, p).decode()],
             ["a AUTHENTICATE PLAIN " + b64_plain(u, w).decode()], b"a NO "),
            ("AUTHENTICATE PLAIN (no IR)", ["a AUTHENTICATE PLAIN"],
             ["a AUTHENTICATE LOGIN"], b"a NO "),
        ]
    if args.proto == "pop3":
        return [
            ("USER", [f"USER {u}"], ["USER nosuchuser"], b"-ERR"),
            ("PASS", [f"USER {u}", f"PASS {p}"], [f"USER {u}", f"PASS {w}"], b"-ERR"),
            ("APOP", ["APOP {u} {apop:" + p + "}"], ["APOP {u} {apop:" + w + "}"], b"-ERR"),
            ("AUTH PLAIN (initial response)", ["AUTH PLAIN " + b64_plain(u, p).decode()],
             ["AUTH PLAIN " + b64_plain(u, w).decode()], b"-ERR"),
            ("AUTH PLAIN (no initial response)", ["AUTH PLAIN"], ["AUTH LOGIN"], b"-ERR"),
        ]
    return [
        ("AUTH PLAIN", ["EHLO client", "AUTH PLAIN " + b64_plain(u, p).decode()],
         ["EHLO client", "AUTH PLAIN " + b64_plain(u, w).decode()], b"530 "),
        ("AUTH LOGIN", ["EHLO client", "AUTH LOGIN " + base64.b64encode(u.encode()).decode()],
         ["EHLO client", "AUTH LOGIN " + base64.b64encode(b"nosuchuser").decode()], b"530 "),
    ]


def read_greeting(proto, peer):
    return b"".join(smtp_reply(peer)) if proto == "smtp" else peer.line()


def read_reply(proto, peer):
    if proto == "imap":
        return b"".join(peer.until(lambda ln: not ln.startswith(b"* ")))
    if proto == "smtp":
        return b"".join(smtp_reply(peer))
    return peer.line()


def run_refusal(args, lines):
    peer = open_peer(args)
    try:
        greeting = read_greeting(args.proto, peer)
        ts = re.search(rb"<[^>]*>", greeting)
        reply = b""
        for ln in lines:
            if "{apop:" in ln:
                pw = ln.split("{apop:")[1].rstrip("}")
                stamp = ts.group(0) if ts else b""
                ln = f"APOP {args.user} " + hashlib.md5(stamp + pw.encode()).hexdigest()
            peer.send(ln.encode() + b"\r\n")
            reply = read_reply(args.proto, peer)
        extra = peer.quiet(0.3)
        if extra:
            raise Fail(f"more than one reply: {extra!r}")
        return reply
    finally:
        peer.sock.close()


def cmd_refusal(args):
    args.wrong = "Wrong-%d-pass" % os.getpid()
    secrets = {args.password, args.wrong, b64_plain(args.user, args.password).decode(),
               b64_plain(args.user, args.wrong).decode()}
    bad = 0
    for name, valid, invalid, prefix in refusal_cases(args):
        rv = run_refusal(args, valid)
        ri = run_refusal(args, invalid)
        ok = rv == ri and rv.startswith(prefix) and rv.count(b"\n") == 1
        print(f"{'ok' if ok else 'BAD'} {name}: valid {rv!r} invalid {ri!r}")
        bad += not ok
    if args.secrets_out:
        with open(args.secrets_out, "a") as f:
            for s in sorted(secrets):
                f.write(s + "\n")
    return 1 if bad else 0


def cmd_auth_limit(args):
    peer = open_peer(args)
    attempts = {"imap": lambda i: f"a{i} LOGIN {args.user} x{i}",
                "pop3": lambda i: f"USER {args.user}" if i % 2 else f"PASS x{i}",
                "smtp": lambda i: f"AUTH PLAIN {b64_plain(args.user, 'x%d' % i).decode()}"}
    try:
        read_greeting(args.proto, peer)
        if args.proto == "smtp":
            peer.send(b"EHLO client\r\n")
            smtp_reply(peer)
        for i in range(1, args.max + 1):
            peer.send(attempts[args.proto](i).encode() + b"\r\n")
            r = read_reply(args.proto, peer)
            if i < args.max:
                expect(not peer.eof, f"closed after {i} refusals")
        closed = peer.wait_eof(3.0)
        tail = peer.buf
        print(f"  after refusal {args.max}: {tail!r}, closed={closed}")
        expect(r.startswith({"imap": b"a", "pop3": b"-ERR", "smtp": b"530"}[args.proto]),
               f"refusal {args.max} was {r!r}")
        expect(closed, f"still open 3 s after {args.max} refused authentications")
    finally:
        peer.sock.close()
    return 0


# ------------------------------------------------ capabilities after TLS

def cmd_caps(args):
    """Real backend: after TLS no second greeting, and no capability
    response (before and after login) offers STARTTLS/STLS."""
    peer = open_peer(args)
    seen = []
    try:
        if args.proto == "imap":
            imap_starttls(peer, args, b"a STARTTLS\r\n")
            after_tls_quiet(peer, "backend greeting")
            for tag, cmd in ((b"c", b"CAPABILITY"),
                             (b"d", f"LOGIN {args.user} {args.password}".encode()),
                             (b"e", b"CAPABILITY")):
                peer.send(tag + b" " + cmd + b"\r\n")
                r = peer.until(tagged(tag))
                expect(r[-1].startswith(tag + b" OK"), f"{cmd[:5]!r}: {r!r}")
                seen += r
            expect(any(b"CAPABILITY" in ln for ln in seen), "no capability seen")
        elif args.proto == "pop3":
            pop3_stls(peer, args, b"STLS\r\n")
            after_tls_quiet(peer, "backend greeting")
            for cmd in (b"CAPA", f"USER {args.user}".encode(),
                        f"PASS {args.password}".encode(), b"CAPA"):
                peer.send(cmd + b"\r\n")
                r = pop3_multi(peer) if cmd == b"CAPA" else [peer.line()]
                expect(r[0].startswith(b"+OK"), f"{cmd[:4]!r}: {r!r}")
                seen += r
        else:
            smtp_starttls(peer, args, b"STARTTLS\r\n")
            after_tls_quiet(peer, "backend greeting")
            for helo in (b"EHLO client.example.test", b"EHLO again.example.test"):
                peer.send(helo + b"\r\n")
                r = smtp_reply(peer)
                expect(r[0].startswith(b"250-" + args.backend_name.encode()),
                       f"not the backend's EHLO reply: {r!r}")
                seen += r
        bad = has_starttls(seen)
        expect(not bad, f"offered inside TLS: {bad!r}")
    finally:
        peer.sock.close()
    print(f"{len(seen)} lines inside TLS, none offers STARTTLS/STLS")
    return 0


FAKE = {
    "imap": {
        "greeting": b"* OK [CAPABILITY IMAP4rev1 SASL-IR STARTTLS LOGINDISABLED AUTH=PLAIN] "
                    b"fake backend ready\r\n",
        "CAPABILITY": b"* CAPABILITY IMAP4rev1 SASL-IR STARTTLS AUTH=PLAIN ID\r\n"
                      b"{tag} OK Pre-login capabilities listed\r\n",
        "LOGIN": b"{tag} OK [CAPABILITY IMAP4rev1 STARTTLS IDLE] Logged in\r\n",
        "LOGOUT": b"* BYE bye\r\n{tag} OK Logout completed\r\n",
    },
    "pop3": {
        "greeting": b"+OK fake backend ready\r\n",
        "CAPA": b"+OK\r\nTOP\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\n.\r\n",
        "QUIT": b"+OK bye\r\n",
    },
    "smtp": {
        "greeting": b"220-fake.backend ESMTP\r\n220 second greeting line\r\n",
        "EHLO": b"250-fake.backend\r\n250-PIPELINING\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n",
        "QUIT": b"221 bye\r\n",
    },
}


def fake_backend(ls, proto, got):
    """One connection: PROXY v2 header, greeting, canned answers."""
    try:
        c, _ = ls.accept()
        c.settimeout(TIMEOUT)
        hdr, want = b"", 16
        while len(hdr) < want:
            chunk = c.recv(want - len(hdr))	# never past the header
            if not chunk:
                break
            hdr += chunk
            if want == 16 and len(hdr) == 16:
                want += struct.unpack(">H", hdr[14:16])[0]
        got["pp2"] = hdr[:12] == b"\r\n\r\n\0\r\nQUIT\n"
        c.sendall(FAKE[proto]["greeting"])
        f = c.makefile("rb")
        for _ in range(20):
            ln = f.readline(8192)
            if not ln:
                break
            words = ln.split()
            if proto == "imap":
                tag, verb = words[0], words[1].upper().decode()
            else:
                tag, verb = b"", words[0].upper().decode()
            c.sendall(FAKE[proto].get(verb, b"{tag} BAD what\r\n").replace(b"{tag}", tag))
            if verb in ("LOGOUT", "QUIT"):
                break
        c.close()
    except (OSError, IndexError) as e:
        got["err"] = repr(e)


def cmd_fake_caps(args):
    """Fake backend that offers STARTTLS/STLS everywhere: the agent must
    swallow its greeting and strip the offers, leaving the rest intact."""
    ls = socket.create_server(("127.0.0.1", args.capture_port))
    ls.settimeout(TIMEOUT)
    got = {}
    th = threading.Thread(target=fake_backend, args=(ls, args.proto, got), daemon=True)
    th.start()
    peer = open_peer(args)
    try:
        if args.proto == "imap":
            imap_starttls(peer, args, b"a STARTTLS\r\n")
            after_tls_quiet(peer, "backend greeting")
            peer.send(b"c CAPABILITY\r\n")
            r = peer.until(tagged(b"c"))
            expect(r[0] == b"* CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN ID\r\n",
                   f"CAPABILITY {r!r}")
            peer.send(b"d LOGIN u p\r\n")
            r2 = peer.until(tagged(b"d"))
            expect(r2[-1] == b"d OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n",
                   f"LOGIN {r2!r}")
            peer.send(b"e LOGOUT\r\n")
        elif args.proto == "pop3":
            pop3_stls(peer, args, b"STLS\r\n")
            after_tls_quiet(peer, "backend greeting")
            peer.send(b"CAPA\r\n")
            r = pop3_multi(peer)
            expect(r == [b"+OK\r\n", b"TOP\r\n", b"USER\r\n", b"SASL PLAIN\r\n", b".\r\n"],
                   f"CAPA {r!r}")
            peer.send(b"QUIT\r\n")
        else:
            smtp_starttls(peer, args, b"STARTTLS\r\n")
            after_tls_quiet(peer, "backend greeting (220-/220 lines)")
            peer.send(b"EHLO c\r\n")
            r = smtp_reply(peer)
            expect(r == [b"250-fake.backend\r\n", b"250-PIPELINING\r\n", b"250 AUTH PLAIN\r\n"],
                   f"EHLO {r!r}")
            peer.send(b"QUIT\r\n")
        peer.wait_eof(2.0)
    finally:
        peer.sock.close()
        th.join(TIMEOUT)
        ls.close()
    expect(got.get("pp2"), f"fake backend: no PROXY v2 header ({got})")
    print("greeting swallowed, STARTTLS/STLS removed, other capabilities intact")
    return 0


# ------------------------------------------------------------ pre-TLS limits

def cmd_long_line(args):
    peer = open_peer(args)
    try:
        if args.proto == "smtp":
            smtp_reply(peer)
            ok = b"NOOP " + b"x" * (512 - 7) + b"\r\n"		# 512 octets with CRLF
            peer.send(ok)
            r = smtp_reply(peer)
            expect(r[0].startswith(b"250"), f"512-octet NOOP: {r!r}")
            peer.send(b"NOOP " + b"x" * 600 + b"\r\n")
            refused_prefix = b"421"
        else:
            peer.line()
            peer.send(b"a NOOP\r\n")
            expect(peer.line().startswith(b"a OK"), "NOOP before the long line")
            peer.send(b"b NOOP " + b"x" * 20000 + b"\r\n")
            refused_prefix = b"* BYE"
        closed = peer.wait_eof(3.0)
        tail = peer.buf
        print(f"  after the long line: {tail[:200]!r}, closed={closed}")
        expect(closed, "still open 3 s after an over-long line")
        expect(not tail or tail.startswith(refused_prefix), f"answered {tail!r}")
    finally:
        peer.sock.close()
    return 0


def cmd_too_many(args):
    peer = open_peer(args)
    try:
        peer.line()
        peer.send(b"".join(b"n%d NOOP\r\n" % i for i in range(args.max + 8)))
        closed = peer.wait_eof(3.0)
        oks = len(re.findall(rb"(?m)^n\d+ OK", peer.buf))
        print(f"  {oks} NOOPs answered, closed={closed}, tail {peer.buf[-80:]!r}")
        expect(closed, f"still open after {args.max + 8} commands before STARTTLS")
        expect(oks == args.max, f"{oks} commands answered, limit is {args.max}")
    finally:
        peer.sock.close()
    return 0


def cmd_silent(args, talk=False):
    """A client that never says STARTTLS is closed after pretls_timeout
    (the agent checks once a second), silent or chatty."""
    start = time.monotonic()
    peer = open_peer(args)
    try:
        peer.line()
        limit = args.timeout + 2.5
        n = 0
        while not peer.eof and time.monotonic() - start < limit:
            if talk:
                try:
                    peer.sock.sendall(b"n%d NOOP\r\n" % n)
                except OSError:
                    peer.eof = True
                    break
                n += 1
            left = start + limit - time.monotonic()
            peer.wait_eof(min(0.4, left) if talk else left)
        elapsed = time.monotonic() - start
        print(f"  closed={peer.eof} after {elapsed:.2f}s ({n} NOOPs sent); "
              f"tail {peer.buf[-60:]!r}")
        expect(peer.eof, f"still open {limit:.1f}s after connect")
        expect(elapsed >= args.timeout - 0.5, f"closed too early ({elapsed:.2f}s)")
    finally:
        peer.sock.close()
    return 0


def cmd_delivered(args):
    """Postfix put the message with TOKEN into the Maildir with the same body
    (line ends aside) and a Received header naming 127.0.0.2."""
    deadline = time.monotonic() + TIMEOUT
    found = None
    while time.monotonic() < deadline and not found:
        d = os.path.join(args.maildir, "new")
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()
            if args.token.encode() in data:
                found = data
                break
        else:
            time.sleep(0.05)
    expect(found, f"no message with {args.token} in {args.maildir}/new")
    with open(args.sent, "rb") as f:
        sent = f.read().replace(b"\r\n", b"\n")
    if not sent.endswith(b"\n"):
        sent += b"\n"
    sb, gb = sent.split(b"\n\n", 1)[1], found.split(b"\n\n", 1)[1]
    expect(sb == gb, f"body differs:\nsent {sb!r}\ngot  {gb!r}")
    hdr = found.split(b"\n\n", 1)[0]
    expect(b"[127.0.0.2]" in hdr, "Received header does not name 127.0.0.2:\n" +
           hdr.decode(errors="replace"))
    print("delivered, body identical")
    return 0


def main():
    cmds = {"py-imap": cmd_py_imap, "py-pop3": cmd_py_pop3, "py-smtp": cmd_py_smtp,
            "inject": cmd_inject, "refusal": cmd_refusal, "auth-limit": cmd_auth_limit,
            "caps": cmd_caps, "fake-caps": cmd_fake_caps, "long-line": cmd_long_line,
            "too-many": cmd_too_many, "silent": cmd_silent,
            "slow": lambda a: cmd_silent(a, talk=True), "delivered": cmd_delivered}
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=sorted(cmds))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--src", default="127.0.0.2")
    p.add_argument("--sni", default="mail.example.test")
    p.add_argument("--cafile")
    p.add_argument("--proto", choices=["imap", "pop3", "smtp"], default="imap")
    p.add_argument("--probe", choices=sorted(PROBES))
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--out")
    p.add_argument("--sender")
    p.add_argument("--rcpt", default="rcpt@example.test")
    p.add_argument("--msg")
    p.add_argument("--backend-name", default="mail.example.test",
                   help="first word of the backend's EHLO reply")
    p.add_argument("--capture-port", type=int)
    p.add_argument("--max", type=int, default=3)
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--secrets-out")
    p.add_argument("--maildir")
    p.add_argument("--token")
    p.add_argument("--sent")
    args = p.parse_args()
    try:
        return cmds[args.cmd](args)
    except Fail as e:
        print(f"{args.cmd}: {e}")
        return 1
    except Exception as e:  # a failed check, reported as one line
        print(f"{args.cmd} failed: {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
