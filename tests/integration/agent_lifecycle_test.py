#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""The agent's own life cycle, driven as an operator would: -t and -V,
timeouts, max_connections, SIGHUP reload, backend failures, half-close,
many slow handshakes at once. Backends are small Python servers here; the
real daemons are exercised by implicit_tls_test.sh. Prints TAP."""

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from agenttest import (AGENT, CLIENT_IP, Agent, Backend, NotifySocket, agent_missing,  # noqa: E402
                       check, free_port, gen_cert, listener, peer_cn, read_line, tap_end,
                       tls_connect)

def test_check_and_version(d):
    gen_cert(d, "cur", "first.test")
    gen_cert(d, "other", "other.test")
    good = os.path.join(d, "good.conf")
    with open(good, "w") as f:
        f.write("[global]\nworkers = 1\n" + listener("a", free_port(), 1, d))
    r = subprocess.run([AGENT, "-c", good, "-t"], capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout.strip() == "configuration ok",
          "-t on a good file: exit 0 and 'configuration ok'", r.stdout + r.stderr)

    bad = os.path.join(d, "bad.conf")
    with open(bad, "w") as f:
        f.write("[global]\nworkers = 1\n\n[listener a]\nlisten = 127.0.0.1:1\nfrobnicate = yes\n")
    r = subprocess.run([AGENT, "-c", bad, "-t"], capture_output=True, text=True)
    check(r.returncode != 0 and r.stderr.startswith(bad + ":6: "),
          "-t names an unknown key as FILE:LINE: message", r.stderr)

    mism = os.path.join(d, "mismatch.conf")
    with open(mism, "w") as f:
        f.write("[global]\nworkers = 1\n" +
                listener("a", free_port(), 1, d).replace(d + "/cur.key", d + "/other.key"))
    r = subprocess.run([AGENT, "-c", mism, "-t"], capture_output=True, text=True)
    check(r.returncode != 0 and r.stderr.startswith(mism + ":") and "match" in r.stderr,
          "-t refuses a key that does not match its certificate, with the line", r.stderr)

    # This host has no kernel TLS: `ktls = require` must refuse to start,
    # and say why, rather than fall back silently.
    req = os.path.join(d, "require.conf")
    with open(req, "w") as f:
        f.write("[global]\nworkers = 1\nktls = require\n" + listener("a", free_port(), 1, d))
    have_ktls = "ktls: yes" in subprocess.run([AGENT, "-V"], capture_output=True,
                                               text=True).stdout
    if not have_ktls:
        try:
            r = subprocess.run([AGENT, "-c", req], capture_output=True, text=True, timeout=10)
            refused = r.returncode != 0 and "ktls = require" in r.stderr
        except subprocess.TimeoutExpired:
            refused, r = False, None
        check(refused, "ktls = require without kernel TLS: refuses to start and says why",
              r.stderr if r else "still running after 10 s")

    r = subprocess.run([AGENT, "-V"], capture_output=True, text=True)
    check(r.returncode == 0 and "ktls: " in r.stdout and "module: " in r.stdout,
          "-V prints the version and the kernel features found", r.stdout)


def test_timeouts_and_limits(d):
    be = Backend()
    hs_port, idle_port, max_port = free_port(), free_port(), free_port()
    conf = ("[global]\nworkers = 2\nlog = stderr\nquery_socket =\nktls = auto\n" +
            listener("hs", hs_port, be.port, d, "handshake_timeout = 1s\n") +
            listener("idle", idle_port, be.port, d, "idle_timeout = 2s\n") +
            listener("max", max_port, be.port, d, "max_connections = 3\n"))
    a = Agent(d, conf)
    try:
        check(a.wait_listen(hs_port) and a.wait_listen(max_port), "agent starts")
        check(a.text().count("ktls unavailable") == 1 and "TLS records in user space" in a.text(),
              "ktls = auto on a kernel without kTLS: says so once, at start-up", a.text())

        # 50 clients that never send a ClientHello must not stall a real one.
        silent = []
        for _ in range(50):
            s = socket.socket()
            s.bind((CLIENT_IP, 0))
            s.connect(("127.0.0.1", hs_port))
            silent.append(s)
        t0 = time.time()
        c = tls_connect(hs_port)
        greet = read_line(c)
        c.close()
        check(greet.startswith(b"* OK") and time.time() - t0 < 1.0,
              "50 silent connections do not delay a real handshake (%.0f ms)" %
              ((time.time() - t0) * 1000))

        s = silent[0]
        s.settimeout(4)
        t0 = time.time()
        try:
            got = s.recv(1)
        except OSError:
            got = b"x"
        took = time.time() - t0
        check(got == b"" and took < 2.5,
              "handshake_timeout = 1s closes a silent client (%.1f s)" % took)
        # The agent shuts the socket, then logs once the last operation on
        # it completed: the client can see EOF before the line is written.
        end = time.time() + 5
        while time.time() < end and not any(
                "end=timeout" in ln for ln in a.text().splitlines() if "close listener=hs" in ln):
            time.sleep(0.05)
        check(any("end=timeout" in ln for ln in a.text().splitlines()
                  if "close listener=hs" in ln), "the close line says end=timeout",
              "\n".join(ln for ln in a.text().splitlines() if "listener=hs" in ln)[-1500:])
        for s in silent:
            s.close()

        c = tls_connect(idle_port)
        read_line(c)
        c.settimeout(5)
        t0 = time.time()
        try:
            d_ = c.recv(10)
            clean = d_ == b""
        except ssl.SSLError as e:
            clean = False
            print("# idle close: %s" % e)
        took = time.time() - t0
        check(clean and 1.5 < took < 4, "idle_timeout = 2s ends an idle session with "
              "close_notify (%.1f s)" % took)
        c.close()

        held = [tls_connect(max_port) for _ in range(3)]
        for h in held:
            read_line(h)
        t0 = time.time()
        try:
            extra = tls_connect(max_port, timeout=3)
            refused = False
            extra.close()
        except (ssl.SSLError, OSError):
            refused = True
        check(refused and time.time() - t0 < 1,
              "max_connections = 3: the 4th connection is refused at once")
        check(a.wait_log("refused listener=max") and "reason=max_connections" in a.text(),
              "the refusal is logged")
        held[0].close()
        time.sleep(0.3)
        c = tls_connect(max_port)
        check(read_line(c).startswith(b"* OK"), "after one closes, a new one is accepted")
        c.close()
        for h in held[1:]:
            h.close()
    finally:
        rc = a.stop()
    check(rc == 0, "SIGTERM: exit status 0")


def test_reload(d):
    be = Backend()
    port = free_port()
    gen_cert(d, "cur", "first.test")
    conf = "[global]\nworkers = 2\nlog = stderr\nquery_socket =\n" + listener("r", port, be.port, d)
    a = Agent(d, conf)
    try:
        check(a.wait_listen(port), "agent starts for reload")
        old = tls_connect(port)
        read_line(old)
        check(peer_cn(old) == "first.test", "serves the first certificate")

        gen_cert(d, "cur", "second.test")
        a.proc.send_signal(signal.SIGHUP)
        check(a.wait_log("reloaded"), "SIGHUP: reload logged")
        new = tls_connect(port)
        read_line(new)
        check(peer_cn(new) == "second.test", "after SIGHUP new connections get the new certificate")
        old.sendall(b"a NOOP\r\n")
        check(read_line(old) == b"a NOOP\r\n",
              "the connection from before the reload keeps working")
        new.close()
        old.close()

        with open(a.conf, "a") as f:
            f.write("bogus_key = 1\n")
        a.proc.send_signal(signal.SIGHUP)
        check(a.wait_log("reload failed"), "SIGHUP with a broken file: logged, old config kept")
        c = tls_connect(port)
        check(read_line(c).startswith(b"* OK") and peer_cn(c) == "second.test",
              "still serving after a failed reload")
        c.close()
    finally:
        a.stop()


def test_systemd_notify(d):
    be = Backend()
    ports = [free_port(), free_port()]
    gen_cert(d, "cur", "first.test")
    ns = NotifySocket(d)
    conf = ("[global]\nworkers = 2\nlog = stderr\nquery_socket =\n" +
            listener("n1", ports[0], be.port, d) + listener("n2", ports[1], be.port, d))
    a = Agent(d, conf, env={"NOTIFY_SOCKET": ns.path})
    try:
        m = ns.next()
        bound = []
        for p in ports:
            try:
                socket.create_connection(("127.0.0.1", p), timeout=1).close()
                bound.append(p)
            except OSError:
                pass
        check(m is not None and m.get("READY") == "1" and bound == ports,
              "READY=1 once every listener accepts (STATUS=%s)" % (m or {}).get("STATUS"),
              "message %r, bound %r of %r" % (m, bound, ports))
        a.proc.send_signal(signal.SIGHUP)
        m1, m2 = ns.next(), ns.next()
        check(m1 == {"RELOADING": "1"} and m2 is not None and m2.get("READY") == "1" and
              "reloaded" in a.text(), "SIGHUP: RELOADING=1, then READY=1 after the reload",
              "%r %r" % (m1, m2))
        a.proc.send_signal(signal.SIGTERM)
        m = ns.next()
        check(m == {"STOPPING": "1"} and a.proc.wait(10) == 0,
              "SIGTERM: STOPPING=1, then a clean exit", repr(m))
        check(ns.next(0.5) is None, "nothing after STOPPING=1")
    finally:
        a.stop()
        ns.close()


def test_backend_failures_and_half_close(d):
    echo, stall, reset = Backend(), Backend("stall"), Backend("reset")
    pe, ps, pr = free_port(), free_port(), free_port()
    conf = ("[global]\nworkers = 1\nlog = stderr\nquery_socket =\n" +
            listener("echo", pe, echo.port, d) +
            listener("stall", ps, stall.port, d, "idle_timeout = 2s\n") +
            listener("reset", pr, reset.port, d))
    a = Agent(d, conf)
    try:
        check(a.wait_listen(pe), "agent starts for backend tests")

        c = tls_connect(pr)
        read_line(c)
        c.sendall(b"a NOOP\r\n")
        t0 = time.time()
        try:
            clean = c.recv(100) == b""
        except ssl.SSLError as e:
            clean = False
            print("# %s" % e)
        check(clean and time.time() - t0 < 1,
              "backend resets mid-session: client gets close_notify within 1 s")
        c.close()

        c = tls_connect(ps)
        c.settimeout(5)
        t0 = time.time()
        try:
            clean = c.recv(100) == b""
        except (ssl.SSLError, OSError) as e:
            clean = False
            print("# %s" % e)
        check(clean and time.time() - t0 < 4,
              "stalled backend: closed cleanly by idle_timeout, not hung")
        c.close()

        # Half-close: close_notify from the client, the backend still answers.
        c = tls_connect(pe)
        read_line(c)
        c.sendall(b"last words\r\n")
        check(read_line(c) == b"last words\r\n", "relay both ways")
        # unwrap() sends our close_notify, then reads: the backend's answer
        # to our EOF arrives after it (TLS half-close), which OpenSSL reports
        # as application data after close_notify.
        try:
            c.unwrap()
            after = False
        except ssl.SSLError as e:
            after = "APPLICATION_DATA_AFTER_CLOSE_NOTIFY" in str(e)
        check(echo.eof_seen.wait(3), "client close_notify reaches the backend as EOF")
        check(after, "the backend's last words after that still reach the client")
        check(a.wait_log("close listener=echo client=" + CLIENT_IP) and
              any("end=close_notify" in ln for ln in a.text().splitlines()
                  if "close listener=echo" in ln), "close line says end=close_notify")
        c.close()
    finally:
        a.stop()


def main():
    if agent_missing():
        return 1
    with tempfile.TemporaryDirectory(prefix="mk-life-") as d:
        test_check_and_version(d)
        test_timeouts_and_limits(d)
        test_reload(d)
        test_systemd_notify(d)
        test_backend_failures_and_half_close(d)
    return tap_end()


if __name__ == "__main__":
    sys.exit(main())
