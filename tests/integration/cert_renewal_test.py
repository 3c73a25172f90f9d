#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Certificate renewal without a signal: files are replaced the way ACME
clients do it (certbot: new files in archive/, symlinks in live/ swapped by
rename; plain files: written elsewhere, renamed over), while a client stays
connected. New connections get the new certificate, the old connection keeps
working, a half-written pair keeps the old certificate with one log line and
is picked up once complete. Prints TAP."""

import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from agenttest import (Agent, Backend, agent_missing, check, free_port, peer_cn,  # noqa: E402
                       read_line, serves, swap_symlink, tap_end, tls_connect)


def make_pair(d, name, cn):
    """A fresh ECDSA certificate and key in d: (crt, key)."""
    crt, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=" + cn,
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    return crt, key


def rename_over(src, dst):
    """What certbot and dehydrated do: the new file appears in one step."""
    os.rename(src, dst)


def listener_conf(name, port, be_port, crt, key):
    return ("\n[listener %s]\nlisten = 127.0.0.1:%d\nprotocol = imap\ntls = implicit\n"
            "backend = 127.0.0.1:%d\nproxy_protocol = none\ncertificate = %s\n"
            "private_key = %s\nalpn = off\n" % (name, port, be_port, crt, key))


def main():
    if agent_missing():
        return 1
    with tempfile.TemporaryDirectory(prefix="mk-renew-") as d:
        be = Backend()
        # plain files replaced by rename
        plain = os.path.join(d, "plain")
        os.makedirs(plain)
        pcrt, pkey = make_pair(plain, "mail", "first.test")
        # certbot's layout: live/NAME/*.pem are symlinks into archive/NAME/
        arch, live = os.path.join(d, "archive", "m"), os.path.join(d, "live", "m")
        os.makedirs(arch)
        os.makedirs(live)
        acrt, akey = make_pair(arch, "cert1", "first.test")
        swap_symlink(os.path.relpath(acrt, live), os.path.join(live, "fullchain.pem"))
        swap_symlink(os.path.relpath(akey, live), os.path.join(live, "privkey.pem"))
        p1, p2 = free_port(), free_port()
        conf = ("[global]\nworkers = 1\nlog = stderr\nquery_socket =\n" +
                listener_conf("plain", p1, be.port, pcrt, pkey) +
                listener_conf("certbot", p2, be.port, os.path.join(live, "fullchain.pem"),
                              os.path.join(live, "privkey.pem")))
        a = Agent(d, conf)
        try:
            check(a.wait_listen(p1) and a.wait_listen(p2), "agent starts")
            old = tls_connect(p1)
            read_line(old)
            check(peer_cn(old) == "first.test", "serves the first certificate")

            # plain files: the new pair is written in another directory and
            # renamed over the old files, key first
            stage = os.path.join(d, "stage")
            os.makedirs(stage)
            ncrt, nkey = make_pair(stage, "new", "second.test")
            rename_over(nkey, pkey)
            rename_over(ncrt, pcrt)
            ok, got = serves(p1, "second.test")
            check(ok, "renamed-over files: new connections get the new certificate, no signal",
                  "got %r; log:\n%s" % (got, a.text()))
            old.sendall(b"a NOOP\r\n")
            check(read_line(old) == b"a NOOP\r\n",
                  "the connection from before the renewal keeps working")

            # certbot: new archive files, then the live symlinks swapped
            crt2, key2 = make_pair(arch, "cert2", "third.test")
            swap_symlink(os.path.relpath(crt2, live), os.path.join(live, "fullchain.pem"))
            swap_symlink(os.path.relpath(key2, live), os.path.join(live, "privkey.pem"))
            ok, got = serves(p2, "third.test")
            check(ok, "certbot's live/ symlinks swapped: new connections get the new certificate",
                  "got %r" % got)

            # half-written: only the key is new, so it does not match
            fails_before = a.text().count("do not load")
            bad_crt, bad_key = make_pair(stage, "half", "fourth.test")
            rename_over(bad_key, pkey)
            time.sleep(4)
            ok, got = serves(p1, "second.test", 2)
            check(ok, "a mismatched pair keeps the running certificate", "got %r" % got)
            time.sleep(7)	# past the first retry
            lines = a.text().count("do not load") - fails_before
            check(lines == 1, "one log line for it, retries included (%d)" % lines, a.text())
            rename_over(bad_crt, pcrt)
            ok, got = serves(p1, "fourth.test")
            check(ok, "once the pair is complete, it is loaded", "got %r; log:\n%s" % (got, a.text()))
            check("do not load" not in a.text().split("do not load")[-1] and
                  a.text().count("reload failed") == 1,
                  "and no failure is logged after that")
            old.sendall(b"b NOOP\r\n")
            check(read_line(old) == b"b NOOP\r\n", "the first connection still works")
            old.close()
        finally:
            a.stop()
    return tap_end()


if __name__ == "__main__":
    sys.exit(main())
