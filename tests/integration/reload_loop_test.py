#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""One cause, one reload. A reload sets the certificate watches anew, and
the kernel answers each watch removed with an event of its own: that event
must not count as a change, or every reload schedules the next one. SIGHUP
then ten quiet seconds give exactly one reload, and sessions from before it
still resume (the new contexts take over the ticket keys); each real kind of change
(rename over, symlink swap, edit in place, the directory replaced by
another, the directory deleted and made again) gives exactly one too, and
new connections then get the new certificate. Prints TAP."""

import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from agenttest import (Agent, Backend, agent_missing, check, client_ctx, free_port,  # noqa: E402
                       gen_cert, read_line, serves, swap_symlink, tap_end, tls_connect)

DONE = ": new connections use the new configuration"


def reloads(a):
    return sum(1 for ln in a.text().splitlines() if DONE in ln)


def settle(a, want, secs=8, quiet=3):
    """Wait for @want reloads in all, then @quiet seconds more: the count."""
    end = time.time() + secs
    while time.time() < end and reloads(a) < want:
        time.sleep(0.1)
    time.sleep(quiet)
    return reloads(a)


class Resumer:
    """A client that keeps its session, for one TLS version."""

    def __init__(self, port, version):
        self.port = port
        self.ctx = client_ctx()
        self.ctx.minimum_version = self.ctx.maximum_version = version
        self.session = None

    def connect(self):
        """Return: whether the connection resumed the kept session."""
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        with self.ctx.wrap_socket(raw, server_hostname="localhost", session=self.session) as c:
            read_line(c)	# a TLS 1.3 ticket arrives with the greeting
            self.session = c.session
            return c.session_reused


def conf(name, port, be_port, crt, key):
    return ("\n[listener %s]\nlisten = 127.0.0.1:%d\nprotocol = imap\ntls = implicit\n"
            "backend = 127.0.0.1:%d\nproxy_protocol = none\ncertificate = %s\n"
            "private_key = %s\nalpn = off\n" % (name, port, be_port, crt, key))


def kinds(a, d, certs, p1, live, arch, p2):
    """Each real change: one reload, and the new certificate served."""
    n = reloads(a)
    stage = os.path.join(d, "stage")
    os.makedirs(stage)

    gen_cert(stage, "r", "renamed.test")
    os.rename(os.path.join(stage, "r.key"), os.path.join(certs, "cur.key"))
    os.rename(os.path.join(stage, "r.crt"), os.path.join(certs, "cur.crt"))
    n += 1
    got = settle(a, n)
    check(got == n and serves(p1, "renamed.test")[0],
          "files renamed over: one reload (%d), new certificate" % (got - n + 1), a.text())

    gen_cert(arch, "s", "swapped.test")
    swap_symlink(os.path.relpath(os.path.join(arch, "s.crt"), live), os.path.join(live, "fullchain.pem"))
    swap_symlink(os.path.relpath(os.path.join(arch, "s.key"), live), os.path.join(live, "privkey.pem"))
    n += 1
    got = settle(a, n)
    check(got == n and serves(p2, "swapped.test")[0],
          "symlinks swapped: one reload (%d), new certificate" % (got - n + 1), a.text())

    gen_cert(stage, "e", "edited.test")
    for ext in ("key", "crt"):
        with open(os.path.join(stage, "e." + ext), "rb") as src, \
             open(os.path.join(certs, "cur." + ext), "r+b") as dst:
            dst.truncate(0)
            dst.write(src.read())
    n += 1
    got = settle(a, n)
    check(got == n and serves(p1, "edited.test")[0],
          "files edited in place: one reload (%d), new certificate" % (got - n + 1), a.text())

    other = os.path.join(d, "certs.next")
    os.makedirs(other)
    gen_cert(other, "cur", "newdir.test")
    os.rename(certs, os.path.join(d, "certs.old"))
    os.rename(other, certs)
    n += 1
    got = settle(a, n)
    check(got == n and serves(p1, "newdir.test")[0],
          "directory replaced by another: one reload (%d), new certificate" % (got - n + 1),
          a.text())

    failed = a.text().count("do not load")
    shutil.rmtree(certs)
    end = time.time() + 6
    while time.time() < end and a.text().count("do not load") <= failed:
        time.sleep(0.1)
    check(a.text().count("do not load") == failed + 1 and serves(p1, "newdir.test", 2)[0],
          "directory deleted: the reload fails once, the running certificate stays")
    os.makedirs(certs)
    gen_cert(certs, "cur", "back.test")
    n += 1
    ok, got_cn = serves(p1, "back.test", 15)
    got = settle(a, n, 2)
    check(ok and got == n, "directory made again: recovered with one reload (%d), got %r" %
          (got - n + 1, got_cn), a.text())
    return n


def main():
    if agent_missing():
        return 1
    with tempfile.TemporaryDirectory(prefix="mk-reloadloop-") as d:
        be = Backend()
        certs = os.path.join(d, "certs")
        os.makedirs(certs)
        gen_cert(certs, "cur", "first.test")
        arch, live = os.path.join(d, "archive", "m"), os.path.join(d, "live", "m")
        os.makedirs(arch)
        os.makedirs(live)
        gen_cert(arch, "c1", "first.test")
        swap_symlink(os.path.relpath(os.path.join(arch, "c1.crt"), live), os.path.join(live, "fullchain.pem"))
        swap_symlink(os.path.relpath(os.path.join(arch, "c1.key"), live), os.path.join(live, "privkey.pem"))
        p1, p2 = free_port(), free_port()
        a = Agent(d, "[global]\nworkers = 1\nlog = stderr\nquery_socket =\n" +
                  conf("plain", p1, be.port, os.path.join(certs, "cur.crt"),
                       os.path.join(certs, "cur.key")) +
                  conf("certbot", p2, be.port, os.path.join(live, "fullchain.pem"),
                       os.path.join(live, "privkey.pem")))
        try:
            check(a.wait_listen(p1) and a.wait_listen(p2), "agent starts")
            time.sleep(2)
            check(reloads(a) == 0, "no reload without a cause", a.text())
            res = [Resumer(p1, v) for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)]
            for r in res:
                r.connect()
            a.proc.send_signal(signal.SIGHUP)
            time.sleep(10)
            got = reloads(a)
            check(got == 1, "SIGHUP, then 10 s with no file touched: exactly one reload (%d)" %
                  got, a.text())
            for r, v in zip(res, ("1.2", "1.3")):
                check(r.connect(), "without ticket_keys, a TLS %s session from before the "
                      "reload resumes after it" % v)
            n = kinds(a, d, certs, p1, live, arch, p2)
            time.sleep(4)
            check(reloads(a) == n, "no reload after the last change (%d of %d)" %
                  (reloads(a), n), a.text())
            c = tls_connect(p1)
            check(read_line(c).startswith(b"* OK"), "the agent still serves")
            c.close()
        finally:
            a.stop()
    return tap_end()


if __name__ == "__main__":
    sys.exit(main())
