#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Session tickets across hosts: two mailktlsd instances read the same
ticket_keys file (haproxy's tls-ticket-keys format); a session made on one
resumes on the other, with TLS 1.2 tickets and TLS 1.3 PSKs, and does not
resume on an instance without the file. The file is rotated the way the
README says (a key appended, the first dropped, renamed over): the agents
read it again, an old ticket still resumes, new tickets are under the new
encrypting key (only a third instance that has that key, and not the old
one, resumes them). -t refuses a file others can read, and a bad line by
its number; no key reaches a log. Prints TAP."""

import base64
import os
import ssl
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from agenttest import (AGENT, CLIENT_IP, Agent, Backend, agent_missing, check,  # noqa: E402
                       client_ctx, free_port, gen_cert, listener, read_line, tap_end)
import socket  # noqa: E402

VERSIONS = (("TLSv1.2", ssl.TLSVersion.TLSv1_2), ("TLSv1.3", ssl.TLSVersion.TLSv1_3))


def new_key():
    return base64.b64encode(os.urandom(80)).decode()


def write_keys(path, keys, mode=0o600):
    """Written beside @path and renamed over it, as an operator rotates."""
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write("\n".join(keys) + "\n")
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def start(d, name, be, keyfile):
    """An agent in d/name whose only listener is called 'imaps' on a port of its own."""
    sub = os.path.join(d, name)
    os.makedirs(sub)
    port = free_port()
    extra = "ticket_keys = %s\n" % keyfile if keyfile else ""
    a = Agent(sub, "[global]\nworkers = 1\nquery_socket =\n" +
              listener("imaps", port, be.port, d, extra))
    a.port = port
    return a


CONTEXTS = {}


def session_on(port, version, session=None):
    """Connect with TLS @version (resuming @session), read the greeting
    (which also reads TLS 1.3 NewSessionTickets): (reused, session).
    Python resumes only within one SSLContext: one per version."""
    ctx = CONTEXTS.get(version)
    if ctx is None:
        ctx = CONTEXTS[version] = client_ctx()
        ctx.minimum_version = ctx.maximum_version = version
    raw = socket.socket()
    raw.settimeout(5)
    raw.bind((CLIENT_IP, 0))
    raw.connect(("127.0.0.1", port))
    s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    read_line(s)
    s.sendall(b"a NOOP\r\n")
    read_line(s)
    reused, sess = s.session_reused, s.session
    s.close()
    return reused, sess


def check_t(d, keyfile_text, mode, want, desc):
    path = os.path.join(d, "t-keys")
    with open(path, "w") as f:
        f.write(keyfile_text)
    os.chmod(path, mode)
    conf = os.path.join(d, "t.conf")
    with open(conf, "w") as f:
        f.write("[global]\nquery_socket =\n" +
                listener("imaps", 1, 2, d, "ticket_keys = %s\n" % path))
    r = subprocess.run([AGENT, "-t", "-c", conf], capture_output=True, text=True)
    out = r.stdout + r.stderr
    check(r.returncode != 0 and want in out, desc, out)
    return out


def main():
    if agent_missing():
        return 1
    with tempfile.TemporaryDirectory(prefix="mk-tickets-") as d:
        gen_cert(d, "cur", "localhost")
        be = Backend()
        keyfile = os.path.join(d, "ticket-keys")
        keys = [new_key() for _ in range(3)]
        write_keys(keyfile, keys)
        a, b = start(d, "a", be, keyfile), start(d, "b", be, keyfile)
        plain = start(d, "plain", be, None)
        agents = [a, b, plain]
        try:
            up = all(x.wait_listen(x.port) for x in agents)
            check(up, "three agents listen (two share a ticket_keys file)",
                  "\n".join(x.text() for x in agents))
            if not up:
                return 1
            old = {}
            for vname, v in VERSIONS:
                reused, sess = session_on(a.port, v)
                check(not reused and sess is not None and sess.has_ticket,
                      "%s: first agent issues a ticket" % vname)
                reused, _ = session_on(b.port, v, sess)
                check(reused, "%s: the session resumes on the second agent" % vname)
                reused, _ = session_on(plain.port, v, sess)
                check(not reused, "%s: it does not resume on an agent without the file "
                      "(per-process keys)" % vname)
                old[vname] = session_on(a.port, v)[1]
            check(b.wait_log("resumed=yes") and "resumed=no" in a.text() and
                  "resumed=yes" not in a.text() + plain.text(),
                  "the tls line says resumed=yes where a session resumed, else no",
                  a.text() + b.text())

            # Rotation: append K4, drop K1; K3 becomes the encrypting key.
            rotated = keys[1:] + [new_key()]
            write_keys(keyfile, rotated)
            ok = a.wait_log("reloaded", 10) and b.wait_log("reloaded", 10)
            check(ok, "both agents read the rotated file again without a signal",
                  a.text() + b.text())
            # Only K3 in common with the rotated file: resumes new tickets only.
            only_k3 = os.path.join(d, "only-k3")
            write_keys(only_k3, [rotated[1], new_key(), new_key()])
            third = start(d, "third", be, only_k3)
            agents.append(third)
            check(third.wait_listen(third.port), "a third agent with only the new "
                  "encrypting key listens", third.text())
            for vname, v in VERSIONS:
                reused, _ = session_on(b.port, v, old[vname])
                check(reused, "%s: a ticket from before the rotation still resumes "
                      "on the second agent" % vname)
                reused, _ = session_on(third.port, v, old[vname])
                check(not reused, "%s: that ticket was under the old key (the third "
                      "agent cannot resume it)" % vname)
                _, new = session_on(a.port, v)
                reused, _ = session_on(third.port, v, new)
                check(reused, "%s: a ticket issued after the rotation is under the new "
                      "encrypting key (the third agent resumes it)" % vname)
            logs = "".join(x.text() for x in agents)
            leaked = [k for k in keys + rotated if k[:16] in logs]
            check(not leaked, "no ticket key appears in any log")
        finally:
            for x in agents:
                x.stop()

        out = check_t(d, "\n".join(keys) + "\n", 0o644, "mode 0644",
                      "-t refuses a ticket_keys file others can read")
        check("t.conf:" in out and keys[0] not in out, "... with FILE:LINE and no key in "
              "the message", out)
        check_t(d, "\n".join(keys[:2]) + "\n", 0o600, "fewer than 3 keys",
                "-t refuses fewer than three keys")
        check_t(d, keys[0] + "\n" + base64.b64encode(os.urandom(48)).decode() + "\n" +
                keys[1] + "\n", 0o600, "line 2: 48 and 80 byte keys mixed",
                "-t refuses 48 and 80 byte keys mixed, naming the line")
        check_t(d, keys[0] + "\nnot-base64!\n" + keys[1] + "\n", 0o600,
                "line 2: not the base64", "-t refuses a line that is no key, naming it")
        good = os.path.join(d, "t-ok")
        write_keys(good, [base64.b64encode(os.urandom(48)).decode() for _ in range(4)], 0o640)
        conf = os.path.join(d, "t.conf")
        with open(conf, "w") as f:
            f.write("[global]\nquery_socket =\n" +
                    listener("imaps", 1, 2, d, "ticket_keys = %s\n" % good))
        r = subprocess.run([AGENT, "-t", "-c", conf], capture_output=True, text=True)
        check(r.returncode == 0, "-t accepts four 48-byte keys, mode 0640", r.stdout + r.stderr)
    return tap_end()


if __name__ == "__main__":
    sys.exit(main())
