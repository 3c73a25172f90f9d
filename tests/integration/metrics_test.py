#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""The metrics endpoint after real traffic: TLS clients of both versions, a
failed handshake, a silent client, a STARTTLS upgrade with a cleartext login
refused before it, a max_connections refusal and bytes relayed; the scrape is
parsed with Prometheus's own parser (python3-prometheus-client) and every
count is checked against what the test did. Prints TAP."""

import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from agenttest import (CLIENT_IP, ROOT, Agent, Backend, agent_missing, check,  # noqa: E402
                       client_ctx, free_port, gen_cert, listener, read_line, tap_end, tls_connect)

CTL = os.path.join(ROOT, "agent", "mailktlsctl")


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return r.headers.get("Content-Type", ""), r.read().decode()


def samples(text):
    """{(name, frozenset(labels)): value} with Prometheus's parser."""
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(m, name, **labels):
    return m.get((name, frozenset(labels.items())))


def tls12_chacha(port):
    ctx = client_ctx()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    raw = socket.create_connection(("127.0.0.1", port), timeout=5,
                                   source_address=(CLIENT_IP, 0))
    return ctx.wrap_socket(raw, server_hostname="localhost")


def starttls_with_refused_login(port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5,
                                   source_address=(CLIENT_IP, 0))
    f = raw.makefile("rb")
    f.readline()                                   # greeting
    raw.sendall(b"a LOGIN user secret\r\n")
    refusal = f.readline()
    raw.sendall(b"b STARTTLS\r\n")
    f.readline()
    s = client_ctx().wrap_socket(raw, server_hostname="localhost")
    return refusal, s


def main():
    if agent_missing():
        return 1
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        print("1..1\nnot ok 1 - python3-prometheus-client is missing (scripts/install-deps.sh)")
        return 1
    with tempfile.TemporaryDirectory(prefix="mk-metrics-") as d:
        gen_cert(d, "cur", "metrics.test")
        be = Backend()
        pi, ps, psmall, pm = free_port(), free_port(), free_port(), free_port()
        conf = ("[global]\nworkers = 2\nlog = stderr\nquery_socket =\n"
                "metrics_listen = 127.0.0.1:%d\n" % pm +
                listener("imaps", pi, be.port, d) +
                listener("imap", ps, be.port, d).replace("tls = implicit", "tls = starttls") +
                listener("small", psmall, be.port, d, "max_connections = 1\n"))
        a = Agent(d, conf)
        held = []
        try:
            check(a.wait_listen(pi) and a.wait_listen(pm), "agent with metrics_listen starts",
                  a.text())
            ctype, text = scrape(pm)
            check(ctype.startswith("text/plain; version=0.0.4"),
                  "GET /metrics answers in the text format 0.0.4 (%s)" % ctype)
            m = samples(text)
            check(value(m, "mailktls_handshakes_total", listener="imaps") == 0,
                  "before any traffic: no handshakes", text[:400])

            # three TLS 1.3 sessions, relayed and closed, with known bytes
            for _ in range(3):
                c = tls_connect(pi)
                read_line(c)
                c.sendall(b"x" * 1000 + b"\r\n")
                got = b""
                while len(got) < 1002:
                    got += c.recv(4096)
                c.close()
            # two TLS 1.2 ChaCha20 sessions, one kept open
            c = tls12_chacha(pi)
            read_line(c)
            c.close()
            held.append(tls12_chacha(pi))
            read_line(held[-1])
            # a failed handshake (TLS 1.1) and a silent client in the handshake;
            # security level 0, or OpenSSL 3.5's client sends only an alert
            r = subprocess.run(["openssl", "s_client", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0",
                                "-connect", "127.0.0.1:%d" % pi],
                               input=b"", capture_output=True, timeout=10,
                               env=dict(os.environ, OPENSSL_CONF="/dev/null"))
            silent = socket.create_connection(("127.0.0.1", pi), timeout=5)
            held.append(silent)
            # STARTTLS: a login refused before TLS, then the upgrade
            refusal, st = starttls_with_refused_login(ps)
            st.sendall(b"c NOOP\r\n")     # the daemon's greeting is not repeated after TLS
            read_line(st)
            held.append(st)
            # max_connections = 1: the second is refused
            first = tls_connect(psmall)
            read_line(first)
            held.append(first)
            second = socket.create_connection(("127.0.0.1", psmall), timeout=5)
            second.settimeout(5)
            try:
                refused = second.recv(1) == b""
            except OSError:
                refused = True
            second.close()
            time.sleep(1.2)   # the closed sessions are freed, the silent one is in its handshake

            ctype, text = scrape(pm)
            m = samples(text)
            check(value(m, "mailktls_tls_sessions_total", listener="imaps", version="TLSv1.3",
                        cipher="TLS_AES_256_GCM_SHA384") == 3,
                  "3 TLS 1.3 sessions by version and IANA cipher",
                  "\n".join(ln for ln in text.splitlines() if "sessions" in ln))
            check(value(m, "mailktls_tls_sessions_total", listener="imaps", version="TLSv1.2",
                        cipher="TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256") == 2,
                  "2 TLS 1.2 ChaCha20 sessions")
            # Python's ssl offers OpenSSL's default groups: with 3.5 the TLS 1.3
            # sessions get the hybrid post-quantum group, TLS 1.2 stays on x25519
            pq = ssl.OPENSSL_VERSION_INFO >= (3, 5)
            check((value(m, "mailktls_tls_groups_total", listener="imaps",
                         group="X25519MLKEM768") or 0) == (3 if pq else 0) and
                  value(m, "mailktls_tls_groups_total", listener="imaps",
                        group="x25519") == (2 if pq else 5),
                  "sessions by key-exchange group (%s)" % ssl.OPENSSL_VERSION,
                  "\n".join(ln for ln in text.splitlines() if "groups" in ln))
            check(value(m, "mailktls_handshakes_total", listener="imaps") == 5 and
                  value(m, "mailktls_handshakes_total", listener="imap") == 1,
                  "handshakes by listener: 5 and 1")
            fails = {k: v for k, v in m.items() if k[0] == "mailktls_handshake_failures_total"}
            # wait_listen()'s probe connected and closed without a ClientHello
            check(sum(fails.values()) == 2 and
                  value(m, "mailktls_handshake_failures_total", listener="imaps",
                        reason="unsupported_protocol") == 1 and
                  value(m, "mailktls_handshake_failures_total", listener="imaps",
                        reason="eof") == 1,
                  "failures by reason: the TLS 1.1 client (unsupported_protocol), the probe "
                  "that closed at once (eof)", repr(fails) + r.stdout.decode()[-200:])
            check(value(m, "mailktls_connections", listener="imaps", state="handshake") == 1 and
                  value(m, "mailktls_connections", listener="imaps", state="relay") == 1 and
                  value(m, "mailktls_connections", listener="imap", state="relay") == 1 and
                  value(m, "mailktls_connections", listener="small", state="relay") == 1 and
                  value(m, "mailktls_connections", listener="imaps", state="pretls") == 0,
                  "connections by listener and state: the silent one in handshake, held ones "
                  "in relay", "\n".join(ln for ln in text.splitlines()
                                        if ln.startswith("mailktls_connections{")))
            check(value(m, "mailktls_tls_connections", records="user_space") == 3 and
                  value(m, "mailktls_tls_connections", records="kernel") == 0,
                  "the 3 established connections are on the user-space path (no kTLS here)")
            check(refusal.startswith(b"a NO") and
                  value(m, "mailktls_cleartext_auth_refusals_total", listener="imap") == 1 and
                  value(m, "mailktls_starttls_upgrades_total", listener="imap") == 1,
                  "STARTTLS: 1 cleartext login refused, 1 upgrade", refusal)
            check(refused and value(m, "mailktls_refused_total", listener="small",
                                    reason="max_connections") == 1,
                  "max_connections: 1 refusal counted")
            check(value(m, "mailktls_connections_accepted_total", listener="imaps") == 8,
                  "accepted on imaps: the probe, 3 + 2 sessions, the failed one, the silent "
                  "one (%s)" %
                  value(m, "mailktls_connections_accepted_total", listener="imaps"))
            bin_ = value(m, "mailktls_bytes_total", listener="imaps", direction="from_client")
            bout = value(m, "mailktls_bytes_total", listener="imaps", direction="to_client")
            # each closed session: the greeting, the echo, and the backend's
            # answer to our EOF
            greet, bye = len(b"* OK ready\r\n"), len(b"* BYE after your EOF\r\n")
            check(bin_ == 3 * 1002 and bout == 3 * (greet + 1002 + bye) + greet + bye,
                  "bytes of the closed connections, each way (%s in, %s out)" % (bin_, bout))
            check("mailktls_kernel_tls_stat" in text, "the kernel's tls_stat family is there")

            ctl = subprocess.run([CTL, "metrics", "127.0.0.1:%d" % pm], capture_output=True,
                                 text=True, timeout=10)
            cm = samples(ctl.stdout) if ctl.returncode == 0 else {}
            check(ctl.returncode == 0 and
                  value(cm, "mailktls_handshakes_total", listener="imaps") == 5,
                  "mailktlsctl metrics prints the same exposition", ctl.stderr)
            for path, code in (("/other", 404),):
                try:
                    urllib.request.urlopen("http://127.0.0.1:%d%s" % (pm, path), timeout=5)
                    got = 200
                except urllib.error.HTTPError as e:
                    got = e.code
                check(got == code, "GET %s: %d" % (path, code))
            req = urllib.request.Request("http://127.0.0.1:%d/metrics" % pm, data=b"x",
                                         method="POST")
            try:
                urllib.request.urlopen(req, timeout=5)
                got = 200
            except urllib.error.HTTPError as e:
                got = e.code
            check(got == 405, "POST: 405")
        finally:
            for h in held:
                h.close()
            a.stop()
    return tap_end()


if __name__ == "__main__":
    sys.exit(main())
