#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Clients and checks for exim_test.sh (Debian's /usr/bin/python3).

  eximclients.py smtp12 --port P --src IP --msg F      smtplib SMTP_SSL, TLS 1.2
                                                       ECDHE-ECDSA-CHACHA20-POLY1305
  eximclients.py raw --port P --client IP:PORT --msg F PROXY v2 header by hand,
                                                       then plain SMTP (no agent)
  eximclients.py refused --port P                      no PROXY header: Exim must
                                                       refuse every command
  eximclients.py dovecot-v6 --port P [--with-ssl-tlv]  PROXY v2 from [::1], LOGIN
  eximclients.py received --maildir D --token T --mainlog L --agentlog A
                 [--no-clause]                         the delivered message's
                                                       Received header

Exit status 0 means the check passed; the reason goes to stdout either way.
"""

import argparse
import email
import email.policy
import email.utils
import glob
import ipaddress
import re
import smtplib
import socket
import ssl
import struct
import sys
import time

TIMEOUT = 10.0
SIG = b"\r\n\r\n\0\r\nQUIT\n"
SENDER = "sender@example.test"
RCPT = "rcpt@example.test"


def pp2(src, sport, dst, dport, tlvs=b""):
    """A PROXY v2 header for TCP over IPv4 or IPv6, without CRC."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if s.version == 4 else 0x21
    body = s.packed + d.packed + struct.pack(">HH", sport, dport) + tlvs
    return SIG + bytes([0x21, fam]) + struct.pack(">H", len(body)) + body


def cmd_smtp12(args):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    with open(args.msg, "rb") as f:
        msg = f.read()
    with smtplib.SMTP_SSL(args.host, args.port, timeout=TIMEOUT, context=ctx,
                          local_hostname="client.example.test",
                          source_address=(args.src, 0)) as s:
        refused = s.sendmail(SENDER, [RCPT], msg)
        cipher = s.sock.cipher()
    print(f"accepted over {cipher}, refused: {refused}")
    return 1 if refused else 0


class Lines:
    """SMTP replies over a plain socket."""

    def __init__(self, sock):
        self.f = sock.makefile("rb")
        self.sock = sock

    def reply(self):
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("connection closed")
            lines.append(line.decode(errors="replace").rstrip())
            if len(line) < 4 or line[3:4] != b"-":
                return lines

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()


def cmd_raw(args):
    ip, port = args.client.rsplit(":", 1)
    with open(args.msg, "rb") as f:
        msg = f.read()
    sock = socket.create_connection((args.host, args.port), timeout=TIMEOUT)
    sock.sendall(pp2(ip, int(port), "127.0.0.1", 465))
    c = Lines(sock)
    steps = [c.reply(), c.cmd("EHLO client.example.test"), c.cmd(f"MAIL FROM:<{SENDER}>"),
             c.cmd(f"RCPT TO:<{RCPT}>"), c.cmd("DATA")]
    sock.sendall(msg.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
    steps += [c.reply(), c.cmd("QUIT")]
    print("\n".join(r[-1] for r in steps))
    return 0 if steps[-2][-1].startswith("250") else 1


def cmd_refused(args):
    sock = socket.create_connection((args.host, args.port), timeout=TIMEOUT)
    c = Lines(sock)
    banner = c.reply()
    ehlo = c.cmd("EHLO client.example.test")
    print(banner[-1], "/", ehlo[-1])
    return 0 if ehlo[-1].startswith("503") and "Proxy negotiation failed" in ehlo[-1] else 1


def cmd_dovecot_v6(args):
    """LOGIN behind a PROXY v2 header from [::1] to [::1]: Dovecot allows it
    (ssl = no, disable_plaintext_auth = yes) only when PP2_TYPE_SSL says so."""
    tlv = b"\x20\x00\x05\x01\x00\x00\x00\x00" if args.with_ssl_tlv else b""
    sock = socket.create_connection((args.host, args.port), timeout=TIMEOUT)
    sock.sendall(pp2("::1", 40001, "::1", 993, tlv))
    f = sock.makefile("rb")
    greeting = f.readline()
    sock.sendall(f"a LOGIN {args.user} {args.password}\r\n".encode())
    answer = f.readline().decode(errors="replace").strip()
    sock.close()
    print(greeting.decode(errors="replace").strip()[:60], "/", answer[:80])
    return 0 if answer.startswith("a OK") else 1


def wait_message(maildir, token):
    for _ in range(200):
        for path in glob.glob(f"{maildir}/new/*"):
            with open(path, "rb") as f:
                data = f.read()
            if token.encode() in data:
                return data
        time.sleep(0.05)
    return None


# Exim's own trace header, as RFC 5321 section 4.4 has it, with the
# RFC 8314 section 4.3 clause right after "with": from, by, with, the
# clause, Exim's comment (its version: 4.96 on Debian 12, 4.98.2 on 13),
# id, for, and the date.
RECEIVED = re.compile(
    r"^from (?P<from>\S+ \([^)]*\)|\([^)]*\) \S+) by mail\.example\.test "
    r"with (?P<with>[A-Za-z]+) (?:tls (?P<cipher>TLS_[A-Z0-9_]+|0x[0-9a-f]{4}) )?"
    r"\(Exim 4\.\d+(?:\.\d+)?\) \(envelope-from <[^>]+>\) id \S+ for \S+; (?P<date>.+)$")


def client_of(mainlog, token):
    """The client address and port Exim logged for the message with @token."""
    with open(mainlog, errors="replace") as f:
        for line in f:
            if " <= " in line and f"id={token}@example.test" in line:
                m = re.search(r" H=\S* ?\[([0-9a-f.:]+)\]:(\d+) ", line)
                if m:
                    return m.group(1), m.group(2)
    return None


def agent_cipher(agentlog, ip, port):
    who = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    with open(agentlog, errors="replace") as f:
        for line in f:
            m = re.search(r"tls listener=\S+ client=(\S+) .* cipher=(\S+) ", line)
            if m and m.group(1) == who:
                return m.group(2)
    return None


def cmd_received(args):
    data = wait_message(args.maildir, args.token)
    if data is None:
        print(f"no message with {args.token} in {args.maildir}/new")
        return 1
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    raw = msg.get_all("Received")[0]
    hdr = re.sub(r"\r?\n[ \t]+", " ", raw).strip()
    print("Received:", raw)
    m = RECEIVED.match(hdr)
    if not m:
        print("not Exim's trace header as expected")
        return 1
    if email.utils.parsedate_to_datetime(m.group("date")) is None:
        print("bad date")
        return 1
    if args.no_clause:
        return 0 if m.group("cipher") is None else 1
    client = client_of(args.mainlog, args.token)
    if client is None:
        print("no <= line with the client's address and port in Exim's log")
        return 1
    want = agent_cipher(args.agentlog, *client)
    print(f"client {client[0]} port {client[1]}: agent logged cipher={want}")
    if args.client_ip and client[0] != args.client_ip:
        print(f"Exim saw {client[0]}, not {args.client_ip}")
        return 1
    return 0 if want and m.group("cipher") == want else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["smtp12", "raw", "refused", "dovecot-v6", "received"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--src", default="127.0.0.2")
    p.add_argument("--client")
    p.add_argument("--client-ip")
    p.add_argument("--msg")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--with-ssl-tlv", action="store_true")
    p.add_argument("--maildir")
    p.add_argument("--token")
    p.add_argument("--mainlog")
    p.add_argument("--agentlog")
    p.add_argument("--no-clause", action="store_true")
    args = p.parse_args()
    fn = {"smtp12": cmd_smtp12, "raw": cmd_raw, "refused": cmd_refused,
          "dovecot-v6": cmd_dovecot_v6, "received": cmd_received}[args.cmd]
    try:
        return fn(args)
    except (OSError, EOFError, smtplib.SMTPException) as e:
        print(f"{args.cmd}: {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
