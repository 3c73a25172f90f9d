#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""SMTP submission clients (Python smtplib) and checks of delivered
messages for milter_test.sh.

  send --client SPEC [--client SPEC ...]
      All clients connect, say EHLO (STARTTLS), authenticate, then MAIL,
      RCPT and DATA one after the other, so every connection is open at
      the same time until the last QUIT. SPEC is key=value,...:
        port=N mode=implicit|starttls|plain token=T [tls12=OPENSSL_CIPHER]
        [auth=1] [helo=NAME] [messages=N]
      Prints per client: token=T cipher=IANA_NAME port=LOCAL_PORT seconds=S

  iana OPENSSL_NAME
      The IANA name of a cipher suite the tests use.

  check --maildir D --token T (--cipher IANA | --no-clause) [--proto P]
        [--helo H] [--addr IP] [--below-dovecot]
      The delivered message with Message-ID <T@example.test>: Received headers in order, Postfix's
      first, the milter's (RFC 5321 trace grammar, RFC 8314 clause) right
      below it, or no "tls" clause at all.
"""
import argparse
import email.utils
import glob
import re
import smtplib
import ssl
import sys
import time

TIMEOUT = 15
# OpenSSL's names of the TLS 1.2 suites the tests choose, and their IANA
# (RFC 8314 section 4.3) names; TLS 1.3 names are the IANA ones already.
IANA = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}


def iana(name):
    if name.startswith("TLS_"):
        return name
    return IANA[name]


class Client:
    def __init__(self, spec, args):
        self.o = dict(kv.split("=", 1) for kv in spec.split(","))
        self.args = args
        self.t0 = time.monotonic()
        mode = self.o["mode"]
        ctx = None
        if mode != "plain":
            ctx = ssl.create_default_context(cafile=args.cafile)
            if "tls12" in self.o:
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                ctx.set_ciphers(self.o["tls12"])
        self.ctx = ctx
        src = (args.src, 0)
        if mode == "implicit":
            self.s = smtplib.SMTP_SSL(timeout=TIMEOUT, local_hostname=self.helo(),
                                      source_address=src, context=ctx)
        else:
            self.s = smtplib.SMTP(timeout=TIMEOUT, local_hostname=self.helo(),
                                  source_address=src)
        # TLS checks the certificate against the name, the socket goes to
        # loopback: smtplib takes the name from _host.
        self.s._host = args.sni
        self.s.connect("127.0.0.1", int(self.o["port"]), source_address=src)
        self.port = self.s.sock.getsockname()[1]

    def helo(self):
        return self.o.get("helo", "client.example.test")

    def start(self):
        self.s.ehlo()
        if self.o["mode"] == "starttls":
            self.s.starttls(context=self.ctx)
            self.s.ehlo()
        if self.o.get("auth") == "1":
            self.s.login(self.args.user, self.args.password)

    def cipher(self):
        if self.o["mode"] == "plain":
            return "-"
        return iana(self.s.sock.cipher()[0])

    def message(self, i):
        t = f"{self.o['token']}-{i}" if i else self.o["token"]
        return (f"From: <{self.args.sender}>\r\nTo: <{self.args.rcpt}>\r\n"
                f"Subject: milter test {t}\r\nMessage-ID: <{t}@example.test>\r\n\r\n"
                f"Body, token {t}.\r\n")


def cmd_iana(args):
    print(iana(args.name))


def cmd_send(args):
    clients = [Client(spec, args) for spec in args.client]
    for c in clients:
        c.start()
    rounds = max(int(c.o.get("messages", "1")) for c in clients)
    for i in range(rounds):
        todo = [c for c in clients if int(c.o.get("messages", "1")) > i]
        for c in todo:
            c.s.mail(args.sender)
        for c in todo:
            c.s.rcpt(args.rcpt)
        for c in todo:
            code, msg = c.s.data(c.message(i))
            if code != 250:
                sys.exit(f"DATA answered {code} {msg!r}")
    for c in clients:
        print(f"token={c.o['token']} cipher={c.cipher()} port={c.port} "
              f"seconds={time.monotonic() - c.t0:.3f}")
        c.s.quit()


MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
# RFC 5321 section 4.4 Stamp as the milter writes it, unfolded:
# From-domain By-domain [With] [Additional-Registered-Clauses] ";" date-time
OURS = re.compile(
    r"from (?P<helo>[A-Za-z0-9.-]+|\[[0-9A-Fa-f.:IPv6]+\]) "
    r"\((?:(?P<name>[A-Za-z0-9.-]+) )?\[(?P<addr>[0-9A-Fa-f.:IPv6]+)\]\) "
    r"by (?P<by>[A-Za-z0-9.-]+) \(mailktls\) "
    r"with (?P<proto>ESMTPSA?) "
    r"tls (?P<cipher>[A-Za-z][A-Za-z0-9_]*|0x[0-9A-Fa-f]{4});"
    r" (?P<date>(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (?:" + MONTHS +
    r") \d{4} \d\d:\d\d:\d\d [+-]\d{4})$")


def unfold(v):
    return re.sub(r"\r?\n[ \t]+", " ", v).strip()


def delivered(maildir, token):
    end = time.monotonic() + 10
    while time.monotonic() < end:
        for f in glob.glob(maildir + "/new/*"):
            data = open(f, "rb").read()
            if f"<{token}@example.test>".encode() in data:
                return data
        time.sleep(0.05)
    sys.exit(f"no message with {token} in {maildir}/new")


def received_headers(data):
    head = data.split(b"\n\n", 1)[0].decode("ascii", "replace")
    fields = re.split(r"\n(?![ \t])", head)
    return [unfold(f.split(":", 1)[1]) for f in fields
            if f.lower().startswith("received:")]


def cmd_check(args):
    data = delivered(args.maildir, args.token)
    rcv = received_headers(data)
    print("Received headers, top first:")
    for r in rcv:
        print("  " + r)
    if not rcv or "(Postfix)" not in rcv[0]:
        sys.exit("the first Received header is not Postfix's")
    clauses = [r for r in rcv if re.search(r"\btls [A-Za-z0-9_]+;", r)]
    if args.no_clause:
        if clauses:
            sys.exit("a tls clause is there but should not be")
        return
    at = 1
    if args.dovecot:
        # Dovecot submission's own: the client's HELO, no cipher
        at = 2
        if len(rcv) < 2 or not re.match(
                r"from d\.example\.test \(\[127\.0\.0\.2\]\) by mail\.example\.test "
                r"with ESMTPSA id ", rcv[1]) or " tls " in rcv[1]:
            sys.exit("the second Received header is not Dovecot's")
    if len(rcv) <= at:
        sys.exit(f"no Received header at position {at + 1}")
    m = OURS.match(rcv[at])
    if not m:
        sys.exit(f"Received header {at + 1} is not the milter's, in RFC 5321 form")
    if len(clauses) != 1:
        sys.exit(f"{len(clauses)} tls clauses, want exactly one")
    want = {"cipher": args.cipher, "proto": args.proto, "helo": args.helo,
            "addr": args.addr, "by": "mail.example.test"}
    for k, v in want.items():
        if v is not None and m.group(k) != v:
            sys.exit(f"{k} is {m.group(k)!r}, want {v!r}")
    when = email.utils.parsedate_to_datetime(m.group("date")).timestamp()
    if abs(when - time.time()) > 300:
        sys.exit(f"date {m.group('date')} is not now")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--client", action="append", required=True)
    s.add_argument("--src", default="127.0.0.2")
    s.add_argument("--sni", default="mail.example.test")
    s.add_argument("--cafile")
    s.add_argument("--user")
    s.add_argument("--password")
    s.add_argument("--sender", default="sender@example.test")
    s.add_argument("--rcpt", required=True)
    c = sub.add_parser("check")
    c.add_argument("--maildir", required=True)
    c.add_argument("--token", required=True)
    c.add_argument("--cipher")
    c.add_argument("--no-clause", action="store_true")
    c.add_argument("--proto")
    c.add_argument("--helo")
    c.add_argument("--addr")
    c.add_argument("--dovecot", action="store_true")
    i = sub.add_parser("iana")
    i.add_argument("name")
    args = ap.parse_args()
    {"send": cmd_send, "check": cmd_check, "iana": cmd_iana}[args.cmd](args)


if __name__ == "__main__":
    main()
