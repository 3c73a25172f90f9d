#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Clients for the test of accept_proxy listeners (proxy_in_test.sh): a
real IMAP login through haproxy, and raw connections that send a PROXY v2
header of our own making (valid, damaged, LOCAL, or none) straight to the
agent. Run with Debian's /usr/bin/python3. Every socket has a timeout; exit
status 0 means the check passed, the reason goes to stdout either way.

  proxy_in_clients.py login --host H --port P --src S --cafile F --user U
      --password W [--starttls] [--port-file F --release F]
  proxy_in_clients.py header --port P --src S --kind valid|local|bad-crc|
      bad-tlv|v1|none|silent|too-long|untrusted [--cafile F] --expect closed|tls
      [--within SECONDS] [--client IP:PORT] [--repeat N]
      [--user U --password W]
  proxy_in_clients.py pipelined --port P --src S --client IP:PORT
      (STARTTLS listener: header and the first command in one segment)
"""

import argparse
import os
import socket
import ssl
import struct
import sys
import time

from mkclients import crc32c

TIMEOUT = 10.0
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
SNI = "mail.example.test"


def sockaddr(text):
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


def pp2(client, dest, crc=True, local=False, extra=b""):
    """A PROXY v2 header from @client to @dest, with a CRC32C TLV."""
    (sh, sp), (dh, dp) = client, dest
    if ":" in sh:
        fam = 0x21
        addrs = socket.inet_pton(socket.AF_INET6, sh) + socket.inet_pton(socket.AF_INET6, dh)
    else:
        fam = 0x11
        addrs = socket.inet_aton(sh) + socket.inet_aton(dh)
    body = addrs + struct.pack("!HH", sp, dp) + extra
    if crc:
        body += b"\x03\x00\x04\x00\x00\x00\x00"
    cmd = 0x20 if local else 0x21
    hdr = bytearray(SIG + bytes([cmd, fam]) + struct.pack("!H", len(body)) + body)
    if crc:
        hdr[-4:] = struct.pack("!I", crc32c(bytes(hdr)))
    return bytes(hdr)


def tls_context(cafile):
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["imap"])
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(host, port, src):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.bind((src, 0))
    s.connect((host, port))
    return s


class Lines:
    """CRLF lines from a socket (plain or TLS)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def line(self):
        while b"\r\n" not in self.buf:
            got = self.sock.recv(4096)
            if not got:
                raise EOFError("connection closed; had %r" % self.buf)
            self.buf += got
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def until(self, tag):
        lines = []
        while True:
            lines.append(self.line())
            if lines[-1].startswith(tag + " "):
                return lines


class Fail(Exception):
    """The server answered, but not what the check needs."""


def greeting(lines):
    greet = lines.line()
    if not greet.startswith("* OK"):
        raise Fail("bad greeting %r" % greet)


def command(sock, lines, tag, text):
    sock.sendall(b"%s %s\r\n" % (tag.encode(), text.encode()))
    res = lines.until(tag)
    if not res[-1].startswith(tag + " OK"):
        raise Fail("%s: %r" % (text.split()[0], res[-1]))


def cmd_login(args):
    raw = connect(args.host, args.port, args.src)
    local_port = raw.getsockname()[1]
    if args.starttls:
        plain = Lines(raw)
        greeting(plain)
        command(raw, plain, "s1", "STARTTLS")
    tls = tls_context(args.cafile).wrap_socket(raw, server_hostname=SNI)
    imap = Lines(tls)
    if not args.starttls:
        greeting(imap)
    command(tls, imap, "a1", 'LOGIN "%s" "%s"' % (args.user, args.password))
    command(tls, imap, "a2", "SELECT INBOX")
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write("%d\n" % local_port)
        os.rename(args.port_file + ".tmp", args.port_file)
        end = time.monotonic() + TIMEOUT
        while not os.path.exists(args.release) and time.monotonic() < end:
            time.sleep(0.05)
    command(tls, imap, "a3", "LOGOUT")
    print("logged in from %s port %d (%s)" % (args.src, local_port, tls.version()))
    return 0


def header_for(args, raw):
    me = raw.getsockname()[:2]
    client = sockaddr(args.client) if args.client else me
    dest = ("::1", 993) if ":" in client[0] else ("192.0.2.1", 993)
    kind = args.kind
    if kind in ("valid", "untrusted"):
        return pp2(client, dest)
    if kind == "local":
        return pp2(("0.0.0.0", 0), ("0.0.0.0", 0), local=True)
    if kind == "bad-crc":
        h = bytearray(pp2(client, dest))
        h[-1] ^= 0xFF
        return bytes(h)
    if kind == "bad-tlv":	# a TLV whose length runs past the header
        h = bytearray(pp2(client, dest, crc=False, extra=b"\x04\x00\x10ab"))
        return bytes(h)
    if kind == "v1":
        return b"PROXY TCP4 %s 192.0.2.1 %d 993\r\n" % (client[0].encode(), client[1])
    if kind == "too-long":	# announces 60000 bytes of NOOP
        return SIG + b"\x21\x11" + struct.pack("!H", 60000) + b"\x00" * 16
    return b""


def closed_quietly(raw, within):
    """True if the peer closes (EOF or reset) within @within s, sending nothing."""
    raw.settimeout(within)
    try:
        got = raw.recv(4096)
    except (ConnectionResetError, BrokenPipeError):
        return True, b""
    except socket.timeout:
        return False, b"(still open)"
    return got == b"", got


def client_hello(cafile):
    """A TLS client over memory BIOs, and its first flight (the ClientHello)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_context(cafile).wrap_bio(inc, out, server_hostname=SNI)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return obj, inc, out, out.read()


class MemTLS:
    """TLS over memory BIOs on a plain socket, so that the first flight can
    go out in one write with the PROXY header; recv/sendall like a socket."""

    def __init__(self, raw, prefix, cafile):
        self.raw = raw
        self.obj, self.inc, self.out, hello = client_hello(cafile)
        raw.sendall(prefix + hello)
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.pump()
        self.flush()

    def flush(self):
        data = self.out.read()
        if data:
            self.raw.sendall(data)

    def pump(self):
        self.flush()
        got = self.raw.recv(16384)
        if not got:
            raise EOFError("closed by the server")
        self.inc.write(got)

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                self.pump()

    def sendall(self, data):
        self.obj.write(data)
        self.flush()

    def version(self):
        return self.obj.version()


def cmd_header(args):
    for _ in range(args.repeat - 1):
        if one_header(args):
            return 1
    return one_header(args)


def one_header(args):
    raw = connect("127.0.0.1", args.port, args.src)
    start = time.monotonic()
    hdr = header_for(args, raw)
    if args.expect == "tls":
        tls = MemTLS(raw, hdr, args.cafile)
        imap = Lines(tls)
        greeting(imap)
        if args.user:
            command(tls, imap, "a1", 'LOGIN "%s" "%s"' % (args.user, args.password))
            command(tls, imap, "a2", "LOGOUT")
        print("TLS %s, greeting and %s" % (tls.version(), "login" if args.user else "no login"))
        return 0
    if args.kind in ("none", "untrusted"):
        hdr += client_hello(None)[3]
    if args.kind != "silent":
        raw.sendall(hdr)
    ok, got = closed_quietly(raw, args.within)
    took = time.monotonic() - start
    print("closed=%s after %.2fs, got %r" % (ok, took, got[:40]))
    return 0 if ok else 1


def cmd_pipelined(args):
    """Header and a command in one write: the agent must leave the command
    in the socket for the cleartext dialogue, not swallow it with the header."""
    raw = connect("127.0.0.1", args.port, args.src)
    raw.sendall(pp2(sockaddr(args.client), ("192.0.2.1", 143)) + b"p1 CAPABILITY\r\n")
    lines = Lines(raw)
    greet = lines.line()
    res = lines.until("p1")
    print("greeting %r, then %r" % (greet[:30], res[-1][:40]))
    return 0 if greet.startswith("* OK") and res[-1].startswith("p1 OK") else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)

    def command_parser(name):
        c = sub.add_parser(name)
        c.add_argument("--port", type=int, required=True)
        c.add_argument("--src", required=True)
        return c

    lg = command_parser("login")
    lg.add_argument("--host", default="127.0.0.1")
    lg.add_argument("--cafile", required=True)
    lg.add_argument("--user", required=True)
    lg.add_argument("--password", required=True)
    lg.add_argument("--starttls", action="store_true")
    lg.add_argument("--port-file")
    lg.add_argument("--release")
    hd = command_parser("header")
    hd.add_argument("--kind", required=True)
    hd.add_argument("--client")
    hd.add_argument("--cafile")
    hd.add_argument("--expect", choices=["closed", "tls"], required=True)
    hd.add_argument("--within", type=float, default=5.0)
    hd.add_argument("--repeat", type=int, default=1)
    hd.add_argument("--user")
    hd.add_argument("--password")
    command_parser("pipelined").add_argument("--client", required=True)
    args = p.parse_args()
    try:
        return {"login": cmd_login, "header": cmd_header, "pipelined": cmd_pipelined}[args.cmd](args)
    except (OSError, EOFError, ssl.SSLError, Fail) as e:
        print("%s: %s" % (type(e).__name__, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
