#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""A daemon that closes before its greeting (killed, restarting): the
agent sends close_notify, and once the client goes the connection is
freed at once, on Implicit TLS and on STARTTLS listeners alike (where the
agent waits for the greeting to swallow it, it must still see the client
leave). Found by the soak: such connections stayed, with their
descriptors and their configuration, until the agent stopped. Prints TAP."""

import os
import re
import socket
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from agenttest import (Agent, agent_missing, check, client_ctx, free_port, gen_cert,  # noqa: E402
                       metrics_text, read_line, tap_end)


def open_conns(mport):
    """Connections the agent holds, by listener and state (non-zero)."""
    return re.findall(rb"^mailktls_connections\{(.*)\} ([1-9]\d*)$", metrics_text(mport), re.M)


def one(d, tls):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port, mport = free_port(), free_port()
    a = Agent(d, "[global]\nworkers = 1\nlog = stderr\nquery_socket =\nmetrics_listen = "
              "127.0.0.1:%d\n[listener l]\nlisten = 127.0.0.1:%d\nprotocol = imap\ntls = %s\n"
              "backend = 127.0.0.1:%d\nproxy_protocol = none\ncertificate = %s/cur.crt\n"
              "private_key = %s/cur.key\nalpn = off\nhostname = x.test\n"
              % (mport, port, tls, lsock.getsockname()[1], d, d))
    try:
        check(a.wait_listen(port), "%s: agent starts" % tls)
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        if tls == "starttls":
            read_line(raw)
            raw.sendall(b"a STARTTLS\r\n")
            read_line(raw)
        c = client_ctx().wrap_socket(raw, server_hostname="x.test")
        b, _ = lsock.accept()
        b.close()		# the daemon goes before its greeting
        c.settimeout(5)
        try:
            got = c.recv(100)
        except OSError as e:
            got = repr(e)
        check(got == b"", "%s: the client gets close_notify (%r)" % (tls, got))
        c.close()
        end = time.time() + 3
        left = open_conns(mport)
        while left and time.time() < end:
            time.sleep(0.1)
            left = open_conns(mport)
        check(not left, "%s: once the client goes, the agent holds no connection (%r)" %
              (tls, left), a.text())
    finally:
        a.stop()
        lsock.close()


def main():
    if agent_missing():
        return 1
    with tempfile.TemporaryDirectory(prefix="mk-beeof-") as d:
        gen_cert(d, "cur", "x.test")
        for tls in ("implicit", "starttls"):
            one(d, tls)
    return tap_end()


if __name__ == "__main__":
    sys.exit(main())
