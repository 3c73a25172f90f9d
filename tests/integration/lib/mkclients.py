#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Real mail clients (Python's imaplib, poplib, smtplib, ssl) for the
integration tests, each bound to a chosen source address so the daemon
behind the TLS front sees a client address different from its own.

Run with Debian's /usr/bin/python3. Every socket has a timeout. Exit status
0 means the check passed; a one-line reason goes to stdout either way.

  mkclients.py imap  --port P --src 127.0.0.2 --user U --password W --out F
  mkclients.py pop3  --port P --src 127.0.0.2 --user U --password W --out F
  mkclients.py smtp  --port P --src 127.0.0.2 --sender S --rcpt R --msg F
  mkclients.py close-notify --port P --src 127.0.0.2 --proto imap|pop3|smtp [--ready F]
  mkclients.py dead-backend --port P --src 127.0.0.2 --limit 1.0
  mkclients.py pp2-check --port FRONT --capture-port BACKEND  (TLS 1.3, ALPN imap; no ALPN TLV by default)
  mkclients.py raw-proxy-login --port P --user U --password W [--with-ssl-tlv]
  mkclients.py resume --port P --tls 1.2|1.3   (second connection resumes the first)
"""

import argparse
import imaplib
import poplib
import smtplib
import socket
import ssl
import struct
import sys
import time

TIMEOUT = 10.0


def tls_context(args):
    """Verify against our own test certificates when given, else accept any."""
    ctx = ssl.create_default_context()
    if args.alpn:
        ctx.set_alpn_protocols([args.alpn])
    if args.cafile:
        ctx.load_verify_locations(args.cafile)
        ctx.check_hostname = True
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(args, timeout=TIMEOUT):
    return socket.create_connection((args.host, args.port), timeout=timeout,
                                    source_address=(args.src, 0))


class SourcedIMAP(imaplib.IMAP4_SSL):
    """imaplib has no source_address; bind the socket ourselves."""

    def __init__(self, args):
        self._mk_args = args
        super().__init__(args.host, args.port, ssl_context=tls_context(args), timeout=TIMEOUT)

    def _create_socket(self, timeout):
        sock = connect(self._mk_args, timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self._mk_args.sni)


class SourcedPOP3(poplib.POP3_SSL):
    def __init__(self, args):
        self._mk_args = args
        super().__init__(args.host, args.port, context=tls_context(args), timeout=TIMEOUT)

    def _create_socket(self, timeout):
        sock = connect(self._mk_args, timeout)
        return self.context.wrap_socket(sock, server_hostname=self._mk_args.sni)


class SourcedSMTP(smtplib.SMTP_SSL):
    def __init__(self, args):
        self._mk_args = args
        super().__init__(args.host, args.port, timeout=TIMEOUT, context=tls_context(args),
                         local_hostname="client.example.test")

    def _get_socket(self, host, port, timeout):
        sock = connect(self._mk_args, timeout)
        return self.context.wrap_socket(sock, server_hostname=self._mk_args.sni)


def cmd_imap(args):
    imap = SourcedIMAP(args)
    imap.login(args.user, args.password)
    typ, data = imap.select("INBOX", readonly=True)
    if typ != "OK" or int(data[0]) < 1:
        print(f"select INBOX: {typ} {data}")
        return 1
    typ, data = imap.fetch("1", "(BODY.PEEK[])")
    if typ != "OK" or not isinstance(data[0], tuple):
        print(f"fetch: {typ} {data}")
        return 1
    with open(args.out, "wb") as f:
        f.write(data[0][1])
    cipher = imap.sock.cipher()[0]
    imap.logout()
    print(f"fetched {len(data[0][1])} bytes over {cipher}")
    return 0


def cmd_pop3(args):
    pop = SourcedPOP3(args)
    pop.user(args.user)
    pop.pass_(args.password)
    count, _ = pop.stat()
    if count < 1:
        print(f"STAT says {count} messages")
        return 1
    _, lines, _ = pop.retr(1)
    body = b"".join(line + b"\r\n" for line in lines)
    with open(args.out, "wb") as f:
        f.write(body)
    pop.quit()
    print(f"retrieved {len(body)} bytes")
    return 0


def cmd_smtp(args):
    with open(args.msg, "rb") as f:
        msg = f.read()
    with SourcedSMTP(args) as s:
        refused = s.sendmail(args.sender, [args.rcpt], msg)
    if refused:
        print(f"refused: {refused}")
        return 1
    print("accepted")
    return 0


QUIT = {"imap": b"a1 LOGOUT\r\n", "pop3": b"QUIT\r\n", "smtp": b"QUIT\r\n"}


def cmd_close_notify(args):
    """Ask the server to end the session; with suppress_ragged_eofs off,
    recv() returns b'' only after a close_notify alert; a bare TCP FIN
    raises SSLEOFError."""
    ctx = tls_context(args)
    # Python sets OP_IGNORE_UNEXPECTED_EOF by default, which would make a
    # bare FIN look like a clean shutdown.
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    sock = ctx.wrap_socket(connect(args), server_hostname=args.sni,
                           suppress_ragged_eofs=False)
    got = sock.recv(4096)
    if not got:
        print("no greeting")
        return 1
    if args.ready:
        # Idle session: the front is told to shut down once we are here.
        with open(args.ready, "w") as f:
            f.write("connected\n")
    else:
        sock.sendall(QUIT[args.proto])
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            data = sock.recv(4096)
            if not data:
                print("clean TLS shutdown: close_notify received")
                return 0
    except ssl.SSLError as e:
        if "EOF" in str(e):
            print(f"TCP closed without close_notify: {e}")
        else:
            print(f"TLS error before close_notify: {e}")
        return 1
    except OSError as e:
        print(f"error before close_notify: {e!r}")
        return 1
    print("server did not close within the time limit")
    return 1


def cmd_resume(args):
    """Two connections one after the other, the second offering the first's
    session (a TLS 1.3 ticket, which arrives before the greeting, or a TLS
    1.2 session): passes if the server resumed it. A third connection on the
    second's session shows that a resumed handshake brings its own ticket."""
    ctx = tls_context(args)
    version = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[args.tls]
    ctx.minimum_version = ctx.maximum_version = version
    session = None
    for i in range(3):
        sock = ctx.wrap_socket(connect(args), server_hostname=args.sni, session=session)
        if not sock.recv(4096):
            print(f"connection {i + 1}: no greeting")
            return 1
        if i and not sock.session_reused:
            print(f"connection {i + 1}: full handshake, the session was not resumed")
            return 1
        session = sock.session
        sock.close()
        if not session or not session.has_ticket and args.tls == "1.3":
            print(f"connection {i + 1}: no TLS 1.3 ticket before the greeting")
            return 1
    print(f"TLS {args.tls}: the second and third connections resumed")
    return 0


def cmd_dead_backend(args):
    """Time from connect until the front closes on us (any way it likes)."""
    ctx = tls_context(args)
    start = time.monotonic()
    raw = connect(args, timeout=args.limit + 2)
    how = "?"
    try:
        sock = ctx.wrap_socket(raw, server_hostname=args.sni)
        while time.monotonic() - start < args.limit + 2:
            if not sock.recv(4096):
                how = "EOF"
                break
    except (ssl.SSLError, OSError) as e:
        how = type(e).__name__
    elapsed = time.monotonic() - start
    print(f"closed by {how} after {elapsed:.3f}s")
    return 0 if elapsed <= args.limit and how != "?" else 1


def pp2_header(src, dst, ssl_tlv):
    """PROXY v2 header for TCP4 (no CRC), with or without PP2_TYPE_SSL."""
    addr = (socket.inet_aton(src[0]) + socket.inet_aton(dst[0]) +
            struct.pack(">HH", src[1], dst[1]))
    tlvs = b""
    if ssl_tlv:
        sub = b"\x21" + struct.pack(">H", 7) + b"TLSv1.3"
        val = b"\x01" + struct.pack(">I", 0) + sub
        tlvs = b"\x20" + struct.pack(">H", len(val)) + val
    body = addr + tlvs
    return b"\r\n\r\n\0\r\nQUIT\n\x21\x11" + struct.pack(">H", len(body)) + body


def cmd_raw_proxy_login(args):
    """Straight to Dovecot's IMAP port (no TLS) with a hand-made PROXY v2
    header, with or without PP2_TYPE_SSL: shows that the SSL TLV, and not
    the loopback address, is what lets plaintext LOGIN through. Exit 0 if
    LOGIN succeeded."""
    sock = connect(args)
    sock.sendall(pp2_header(sock.getsockname(), (args.host, args.port), args.with_ssl_tlv))
    f = sock.makefile("rb")
    greeting = f.readline()
    sock.sendall(b"a1 LOGIN " + args.user.encode() + b" " + args.password.encode() + b"\r\n")
    reply = f.readline()
    sock.close()
    print(f"greeting {greeting.strip()[:80]!r}; LOGIN -> {reply.strip()[:100]!r}")
    return 0 if reply.startswith(b"a1 OK") else 1


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def parse_tlvs(buf):
    out, off = [], 0
    while off < len(buf):
        if len(buf) - off < 3:
            raise ValueError(f"TLV header cut at {off}")
        typ, ln = buf[off], struct.unpack(">H", buf[off + 1:off + 3])[0]
        if off + 3 + ln > len(buf):
            raise ValueError(f"TLV 0x{typ:02x} overruns")
        out.append((typ, off + 3, buf[off + 3:off + 3 + ln]))
        off += 3 + ln
    return out


def cmd_pp2_check(args):
    """Be the backend (on --capture-port) of a front listener, connect to
    the front over TLS with SNI and ALPN imap, and check the PROXY v2 header
    the front sent: addresses, CRC32C, SSL TLV with what the client saw."""
    import threading
    ls = socket.create_server(("127.0.0.1", args.capture_port))
    ls.settimeout(TIMEOUT)
    got = {}

    def backend():
        try:
            c, _ = ls.accept()
            c.settimeout(TIMEOUT)
            hdr = b""
            while len(hdr) < 16 or len(hdr) < 16 + struct.unpack(">H", hdr[14:16])[0]:
                chunk = c.recv(4096)
                if not chunk or len(hdr) > 70000:
                    break
                hdr += chunk
            got["hdr"] = hdr
            c.sendall(b"* OK capture\r\n")
            c.recv(100)
            c.close()
        except OSError as e:
            got["err"] = e

    th = threading.Thread(target=backend, daemon=True)
    th.start()
    ctx = tls_context(args)
    ctx.set_alpn_protocols(["imap"])
    sock = ctx.wrap_socket(connect(args), server_hostname=args.sni)
    client_addr = sock.getsockname()
    version, cipher = sock.version(), sock.cipher()[0]
    sock.recv(100)
    sock.sendall(b"a1 LOGOUT\r\n")
    sock.close()
    th.join(TIMEOUT)
    if "hdr" not in got:
        print(f"backend got no connection: {got.get('err')}")
        return 1
    hdr = got["hdr"]
    errors = []
    total = 16 + struct.unpack(">H", hdr[14:16])[0]
    if hdr[:12] != b"\r\n\r\n\0\r\nQUIT\n" or hdr[12] != 0x21 or hdr[13] != 0x11:
        errors.append(f"fixed part {hdr[:16].hex()}")
    src = (socket.inet_ntoa(hdr[16:20]), struct.unpack(">H", hdr[24:26])[0])
    dst = (socket.inet_ntoa(hdr[20:24]), struct.unpack(">H", hdr[26:28])[0])
    if src != client_addr[:2]:
        errors.append(f"source {src} != client {client_addr[:2]}")
    if dst != (args.host, args.port):
        errors.append(f"destination {dst} != {(args.host, args.port)}")
    tlvs = parse_tlvs(hdr[28:total])
    byt = {t: v for t, _, v in tlvs}
    crcs = [(o, v) for t, o, v in tlvs if t == 0x03]
    if len(crcs) != 1:
        errors.append("no (single) CRC32C TLV")
    else:
        o = 28 + crcs[0][0]
        zeroed = hdr[:o] + b"\0\0\0\0" + hdr[o + 4:total]
        if struct.unpack(">I", crcs[0][1])[0] != crc32c(zeroed):
            errors.append("CRC32C does not match")
    if byt.get(0x02) != args.sni.encode():
        errors.append(f"AUTHORITY {byt.get(0x02)!r}")
    # proxy_tlvs' default leaves ALPN out (Dovecot 2.4.1 drops any header
    # with one), even though this client negotiated imap
    if 0x01 in byt:
        errors.append(f"ALPN TLV {byt.get(0x01)!r} sent by default")
    ssl_v = byt.get(0x20, b"")
    # PP2_CLIENT_SSL only, verify non-zero: no client certificate was sent
    if len(ssl_v) < 5 or ssl_v[0] != 0x01 or ssl_v[1:5] == b"\0\0\0\0":
        errors.append(f"SSL TLV head {ssl_v[:5].hex()}")
    sub = {t: v for t, _, v in parse_tlvs(ssl_v[5:])} if len(ssl_v) >= 5 else {}
    if sub.get(0x21) != version.encode():
        errors.append(f"SSL_VERSION {sub.get(0x21)!r} != {version}")
    if sub.get(0x23) != cipher.encode():
        errors.append(f"SSL_CIPHER {sub.get(0x23)!r} != {cipher}")
    print(f"header {total} bytes: " + ", ".join(f"0x{t:02x}={v[:40]!r}" for t, _, v in tlvs))
    for e in errors:
        print("error: " + e)
    return 1 if errors else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["imap", "pop3", "smtp", "close-notify", "dead-backend",
                                   "raw-proxy-login", "pp2-check", "resume"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--src", default="127.0.0.2")
    p.add_argument("--sni", default="mail.example.test")
    p.add_argument("--alpn", help="offer this one ALPN protocol")
    p.add_argument("--cafile")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--out")
    p.add_argument("--sender")
    p.add_argument("--rcpt")
    p.add_argument("--msg")
    p.add_argument("--proto", default="imap", choices=sorted(QUIT))
    p.add_argument("--limit", type=float, default=1.0)
    p.add_argument("--with-ssl-tlv", action="store_true")
    p.add_argument("--capture-port", type=int)
    p.add_argument("--tls", default="1.3", choices=["1.2", "1.3"])
    p.add_argument("--ready", help="close-notify: send nothing, create this file when "
                   "connected, wait for the server to close")
    args = p.parse_args()
    handler = {"imap": cmd_imap, "pop3": cmd_pop3, "smtp": cmd_smtp,
               "close-notify": cmd_close_notify, "dead-backend": cmd_dead_backend,
               "raw-proxy-login": cmd_raw_proxy_login, "pp2-check": cmd_pp2_check,
               "resume": cmd_resume}[args.cmd]
    try:
        return handler(args)
    except Exception as e:  # a failed check, reported as one line
        print(f"{args.cmd} failed: {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
