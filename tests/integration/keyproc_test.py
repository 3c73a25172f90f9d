#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Private keys in a process of their own: handshakes with RSA and ECDSA
certificates (TLS 1.2 and 1.3, PKCS#1 v1.5, PSS, ECDSA) signed by the key
process, also after a SIGHUP with new certificates; the agent's memory
holds no private key while the key process's does (and the agent's does
with key_process = no, so the search is shown to find keys); a key process
killed under load is restarted, handshakes in flight fail within a bound
and later ones work; a stopped one fails handshakes within the bound.
Reads /proc/PID/mem: run as root. Prints TAP."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from agenttest import (AGENT, Agent, Backend, check, free_port, read_line,  # noqa: E402
                       results, tls_connect)

# The agent's bound on one signature (MK_KEYPROC_TIMEOUT_MS) plus slack.
SIGN_BOUND_S = 3.5


def gen_pair(d, name, kind, cn="mail.test"):
    alg = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec"
           else ["-newkey", "rsa:2048"])
    subprocess.run(["openssl", "req", "-x509"] + alg +
                   ["-nodes", "-days", "2", "-subj", "/CN=" + cn,
                    "-keyout", os.path.join(d, name + ".key"),
                    "-out", os.path.join(d, name + ".crt")], check=True, capture_output=True)


def key_secrets(path):
    """The secret numbers of a key file as big-endian bytes: the EC private
    scalar, or the RSA private exponent and first prime."""
    text = subprocess.run(["openssl", "pkey", "-in", path, "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    out = []
    for field in ("priv", "privateExponent", "prime1"):
        m = re.search(r"^%s:\s*\n((?:\s+[0-9a-f:]+\n)+)" % field, text, re.M)
        if m:
            out.append(bytes.fromhex(re.sub(r"[\s:]", "", m.group(1))).lstrip(b"\0"))
    return out


def memory(pid):
    """Every readable mapping of @pid, concatenated (needs root)."""
    chunks = []
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            f = line.split()
            if "r" not in f[1] or (len(f) > 5 and f[5] in ("[vvar]", "[vsyscall]")):
                continue
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            try:
                mem.seek(lo)
                chunks.append(mem.read(hi - lo))
            except (OSError, OverflowError, ValueError):
                pass
    return b"".join(chunks)


def holds(mem, secret):
    """@secret in @mem as bytes (a file or DER buffer) or as a BIGNUM's
    little-endian limbs."""
    return secret in mem or secret[::-1] in mem


def s_client(port, args):
    """openssl s_client's output up to the backend's greeting (stdin stays
    open until then: an early EOF would end it before the greeting)."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + args,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    killer = threading.Timer(20, p.kill)
    killer.start()
    out = []
    for line in p.stdout:
        out.append(line)
        if line.startswith("* OK"):
            break
    p.stdin.close()
    out.append(p.stdout.read())
    p.wait()
    killer.cancel()
    return "".join(out)


def failing_handshake(port):
    """Return: whether a handshake failed, and how long it took."""
    t0 = time.time()
    try:
        tls_connect(port, timeout=10).close()
        return False, time.time() - t0
    except OSError:
        return True, time.time() - t0


def keyproc_pid(a, nth=-1):
    pids = re.findall(r"key process PID (\d+) holds", a.text())
    return int(pids[nth]) if pids else None


def conf(d, port, backend, extra=""):
    return ("[global]\nworkers = 2\nquery_socket =\nktls = off\n%s"
            "\n[listener imaps]\nlisten = 127.0.0.1:%d\nprotocol = imap\ntls = implicit\n"
            "backend = 127.0.0.1:%d\nproxy_protocol = none\nalpn = off\n"
            "certificate = %s/ec.crt\nprivate_key = %s/ec.key\n"
            "certificate = %s/rsa.crt\nprivate_key = %s/rsa.key\n"
            % (extra, port, backend, d, d, d, d))


def handshakes(port, what):
    cases = [("TLS 1.3 ECDSA", ["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"], "ECDSA"),
             ("TLS 1.3 RSA-PSS", ["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"], "RSA-PSS"),
             ("TLS 1.2 ECDSA", ["-tls1_2", "-sigalgs", "ECDSA+SHA256"], "ECDSA"),
             ("TLS 1.2 RSA PKCS#1", ["-tls1_2", "-sigalgs", "RSA+SHA256"], "RSA"),
             ("TLS 1.2 RSA-PSS", ["-tls1_2", "-sigalgs", "rsa_pss_rsae_sha384"], "RSA-PSS")]
    for name, args, sig in cases:
        out = s_client(port, args)
        check("Peer signature type: %s\n" % sig in out and "* OK ready" in out,
              "%s: %s handshake, greeting relayed" % (what, name), out)


def fingerprint(path):
    return subprocess.run(["openssl", "x509", "-in", path, "-noout", "-fingerprint",
                           "-sha256"], capture_output=True, text=True).stdout.strip()


def test_split(d):
    gen_pair(d, "ec", "ec")
    gen_pair(d, "rsa", "rsa")
    be = Backend()
    port = free_port()
    a = Agent(d, conf(d, port, be.port))
    try:
        if not check(a.wait_listen(port), "agent with key process starts", a.text()):
            return
        kp = keyproc_pid(a)
        check(kp is not None and kp != a.proc.pid, "log names the key process's PID", a.text())
        handshakes(port, "key process")
        secrets = key_secrets(d + "/ec.key") + key_secrets(d + "/rsa.key")
        check(len(secrets) == 3, "the test found the EC scalar, RSA d and p in the key files")
        kmem = memory(kp)
        check(all(holds(kmem, s) for s in secrets),
              "the key process's memory holds every secret (the search finds keys)")
        amem = memory(a.proc.pid)
        check(len(amem) > 1 << 20 and not any(holds(amem, s) for s in secrets),
              "the agent's memory (%d MiB read) holds no private key" % (len(amem) >> 20))

        # New certificates and keys, then SIGHUP.
        old = fingerprint(d + "/ec.crt")
        gen_pair(d, "ec", "ec")
        gen_pair(d, "rsa", "rsa")
        a.proc.send_signal(signal.SIGHUP)
        check(a.wait_log("reloaded "), "SIGHUP reloads", a.text())
        out = s_client(port, ["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256", "-showcerts"])
        new = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
                             input=out, capture_output=True, text=True).stdout.strip()
        check(new == fingerprint(d + "/ec.crt") and new != old,
              "after SIGHUP the new ECDSA certificate is served", out)
        handshakes(port, "after SIGHUP")
        secrets = key_secrets(d + "/ec.key") + key_secrets(d + "/rsa.key")
        check(all(holds(memory(kp), s) for s in secrets),
              "after SIGHUP the key process holds the new keys")
        check(not any(holds(memory(a.proc.pid), s) for s in secrets),
              "after SIGHUP the agent holds none of them")
        # systemd's SIGTERM reaches the whole unit: the key process outlives
        # it and ends when the agent does.
        os.kill(kp, signal.SIGTERM)
        time.sleep(0.3)
        check(os.path.exists("/proc/%d" % kp) and keyproc_pid(a) == kp,
              "SIGTERM alone does not end the key process")
        test_failed_reload(a, d, port)
        test_kill_under_load(a, port)
        test_stopped(a, port)
        test_restart_fails(a, d, port)
    finally:
        a.stop()
        be.sock.close()
    check(a.proc.returncode == 0, "agent stops cleanly", a.text())
    check(kp is not None and not os.path.exists("/proc/%d" % keyproc_pid(a)),
          "the key process ends with the agent")


def test_failed_reload(a, d, port):
    """A key file replaced by one for another certificate: each SIGHUP
    fails, and the running keys keep signing."""
    good = open(d + "/ec.key").read()
    gen_pair(d, "other", "ec")
    os.replace(d + "/other.key", d + "/ec.key")
    for n in (1, 2):
        before = a.text().count("reload failed")
        a.proc.send_signal(signal.SIGHUP)
        end = time.time() + 5
        while a.text().count("reload failed") == before and time.time() < end:
            time.sleep(0.05)
        check("holds no private key" in a.text().split("reload failed")[-1],
              "SIGHUP %d with a key for another certificate fails, and says why" % n,
              a.text())
        out = s_client(port, ["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"])
        check("Peer signature type: ECDSA\n" in out and "* OK ready" in out,
              "after failed SIGHUP %d the running ECDSA key still signs" % n, out)
    with open(d + "/ec.key", "w") as f:
        f.write(good)


def test_kill_under_load(a, port):
    """Handshakes from 4 threads for 4 s; the key process is killed after 1 s."""
    times, fails, lock = [], [0], threading.Lock()
    end = time.time() + 4

    def load():
        while time.time() < end:
            t0 = time.time()
            try:
                s = tls_connect(port, timeout=10)
                read_line(s)
                s.close()
            except OSError:
                with lock:
                    fails[0] += 1
            with lock:
                times.append(time.time() - t0)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1)
    old = keyproc_pid(a)
    os.kill(old, signal.SIGKILL)
    for t in threads:
        t.join(30)
    check(not any(t.is_alive() for t in threads), "handshake load ends: nothing hangs")
    check(max(times) < SIGN_BOUND_S, "every handshake under the kill took < %.1f s "
          "(longest %.2f s, %d of %d failed)" % (SIGN_BOUND_S, max(times), fails[0], len(times)))
    check(a.wait_log("key process PID %d killed by signal 9" % old),
          "the kill is logged", a.text())
    new = keyproc_pid(a)
    check(new and new != old and os.path.exists("/proc/%d" % new),
          "a new key process runs (PID %s)" % new, a.text())
    try:
        s = tls_connect(port)
        ok = read_line(s).startswith(b"* OK")
        s.close()
    except OSError as e:
        ok = str(e)
    check(ok is True, "handshakes work with the new key process", ok)


def test_stopped(a, port):
    """A key process that stops answering fails handshakes, bounded."""
    kp = keyproc_pid(a)
    os.kill(kp, signal.SIGSTOP)
    try:
        failed, took = failing_handshake(port)
    finally:
        os.kill(kp, signal.SIGCONT)
    check(failed and took < SIGN_BOUND_S,
          "a stopped key process fails the handshake in %.2f s" % took)
    check(a.wait_log("key process did not sign: Connection timed out"),
          "the agent logs why it did not sign", a.text())
    time.sleep(0.2)
    s = tls_connect(port)
    check(read_line(s).startswith(b"* OK"), "handshakes work once it answers again")
    s.close()


def test_restart_fails(a, d, port):
    """A key process that cannot start again (its key file is broken) is
    tried again every second; handshakes fail at once meanwhile."""
    good = open(d + "/rsa.key").read()
    with open(d + "/rsa.key", "w") as f:
        f.write("broken\n")
    old = keyproc_pid(a)
    os.kill(old, signal.SIGKILL)
    check(a.wait_log("key process not started again"), "a failed restart is logged", a.text())
    failed, took = failing_handshake(port)
    check(failed and took < 1, "without a key process handshakes fail at once (%.2f s)" % took)
    time.sleep(2.5)
    tries = a.text().count("key process not started again")
    check(2 <= tries <= 5, "it is tried again about every second (%d tries)" % tries)
    with open(d + "/rsa.key", "w") as f:
        f.write(good)
    end = time.time() + 5
    while keyproc_pid(a) == old and time.time() < end:
        time.sleep(0.05)
    check(keyproc_pid(a) != old, "once the key loads, a key process starts", a.text())
    s = tls_connect(port)
    check(read_line(s).startswith(b"* OK"), "and handshakes work again")
    s.close()


def test_in_process(d):
    """key_process = no: today's single process, and the search finds the
    keys in the agent then."""
    be = Backend()
    port = free_port()
    a = Agent(d, conf(d, port, be.port, "key_process = no\n"))
    try:
        if not check(a.wait_listen(port), "agent with key_process = no starts", a.text()):
            return
        check(keyproc_pid(a) is None and "key_process = no" in a.text(),
              "no key process, and the log says so", a.text())
        handshakes(port, "key_process = no")
        secrets = key_secrets(d + "/ec.key") + key_secrets(d + "/rsa.key")
        check(all(holds(memory(a.proc.pid), s) for s in secrets),
              "with key_process = no the agent's memory holds the keys")
    finally:
        a.stop()
        be.sock.close()


def test_bad_key(d):
    with open(d + "/bad.key", "w") as f:
        f.write("not a key\n")
    path = os.path.join(d, "bad.conf")
    with open(path, "w") as f:
        f.write(conf(d, free_port(), 1).replace(d + "/rsa.key", d + "/bad.key"))
    r = subprocess.run([AGENT, "-c", path], capture_output=True, text=True, timeout=20)
    check(r.returncode != 0 and (path + ":") in r.stderr and "bad.key" in r.stderr,
          "a key the key process cannot read stops the start, with FILE:LINE", r.stderr)
    with open(path, "w") as f:
        f.write(conf(d, free_port(), 1).replace(d + "/rsa.key", d + "/ec.key"))
    r = subprocess.run([AGENT, "-c", path], capture_output=True, text=True, timeout=20)
    check(r.returncode != 0 and "holds no private key" in r.stderr,
          "a certificate whose key the key process lacks stops the start", r.stderr)
    r = subprocess.run([AGENT, "-c", path, "-t"], capture_output=True, text=True, timeout=20)
    check(r.returncode != 0 and "does not match" in r.stderr,
          "-t matches keys itself and names the mismatch", r.stderr)


def main():
    if not os.access(AGENT, os.X_OK):
        print("1..1\nnot ok 1 - %s is missing (run make)" % AGENT)
        return 1
    if os.geteuid() != 0:
        print("1..1\nnot ok 1 - reading /proc/PID/mem of the processes needs root")
        return 1
    with tempfile.TemporaryDirectory(prefix="mk-keyproc-") as d:
        test_split(d)
        test_in_process(d)
        test_bad_key(d)
    print("1..%d" % len(results))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
