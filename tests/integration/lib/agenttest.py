# SPDX-License-Identifier: GPL-2.0
"""What the Python integration tests of the agent share: TAP lines, ports,
test certificates, TLS client contexts and the agent as a child process
whose log goes to a file.

    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
    from agenttest import AGENT, Agent, check, results, ...
"""

import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
AGENT = os.environ.get("MAILKTLSD", os.path.join(ROOT, "agent", "mailktlsd"))

results = []


def check(ok, desc, detail=""):
    """One TAP line; @detail (its last 20 lines) as diagnostics on failure.
    Return: @ok."""
    results.append(ok)
    print(("ok" if ok else "not ok") + " %d - %s" % (len(results), desc))
    if not ok and detail:
        for line in str(detail).splitlines()[-20:]:
            print("#   " + line)
    sys.stdout.flush()
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gen_cert(d, name, cn):
    """A self-signed ECDSA P-256 pair, d/name.crt and d/name.key."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                    "-subj", "/CN=" + cn, "-keyout", os.path.join(d, name + ".key"),
                    "-out", os.path.join(d, name + ".crt")],
                   check=True, capture_output=True)


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # We want to see a missing close_notify as an error, not as EOF.
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return ctx


class Agent:
    """mailktlsd -c tmp/agent.conf, stdout and stderr into tmp/agent.log;
    with @nofile, started under that RLIMIT_NOFILE (soft and hard)."""

    def __init__(self, tmp, conf_text, nofile=None):
        self.conf = os.path.join(tmp, "agent.conf")
        self.log = os.path.join(tmp, "agent.log")
        with open(self.conf, "w") as f:
            f.write(conf_text)
        self.logf = open(self.log, "w")
        pre = None
        if nofile:
            pre = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen([AGENT, "-c", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT, preexec_fn=pre)

    def wait_listen(self, port, secs=10):
        end = time.time() + secs
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                if self.proc.poll() is not None:
                    return False
                time.sleep(0.05)
        return False

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait_log(self, needle, secs=5):
        end = time.time() + secs
        while time.time() < end:
            if needle in self.text():
                return True
            if self.proc.poll() is not None:
                return needle in self.text()
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode
