#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Private keys in a process of their own: handshakes with RSA and ECDSA
certificates (TLS 1.2 and 1.3, PKCS#1 v1.5, PSS, ECDSA) signed by the key
process, also after a SIGHUP with new certificates; the agent's memory
holds no private key while the key process's does (and the agent's does
with key_process = no, so the search is shown to find keys); a key process
killed under load is restarted and the signatures it owed are asked of
its successor, so no handshake fails, also with a kill every second; a
stopped one fails handshakes within the bound, and delays nothing else:
an established relay on the same worker keeps its latency and throughput.
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
from agenttest import (AGENT, Agent, Backend, agent_missing, check, free_port,  # noqa: E402
                       read_line, tap_end, tls_connect)

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


def conf(d, port, backend, extra="", workers=2, procs=1):
    return ("[global]\nworkers = %d\nkey_processes = %d\nquery_socket =\nktls = off\n%s"
            "\n[listener imaps]\nlisten = 127.0.0.1:%d\nprotocol = imap\ntls = implicit\n"
            "backend = 127.0.0.1:%d\nproxy_protocol = none\nalpn = off\n"
            "certificate = %s/ec.crt\nprivate_key = %s/ec.key\n"
            "certificate = %s/rsa.crt\nprivate_key = %s/rsa.key\n"
            % (workers, procs, extra, port, backend, d, d, d, d))


# s_client names the server's signature by its kind in OpenSSL 3.0
# ("ECDSA", "RSA-PSS", "RSA") and by the TLS 1.3 sigalg in 3.5
# ("ecdsa_secp256r1_sha256", "rsa_pss_rsae_sha256", "rsa_pkcs1_sha256").
SIG_NAMES = {"ECDSA": "ecdsa_", "RSA-PSS": "rsa_pss_", "RSA": "rsa_pkcs1_"}


def signed_with(out, sig):
    """Whether s_client's output @out says the server signed with @sig."""
    m = re.search(r"^Peer signature type: (\S+)$", out, re.M)
    return bool(m) and (m.group(1) == sig or m.group(1).startswith(SIG_NAMES[sig]))


def handshakes(port, what):
    cases = [("TLS 1.3 ECDSA", ["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"], "ECDSA"),
             ("TLS 1.3 RSA-PSS", ["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"], "RSA-PSS"),
             ("TLS 1.2 ECDSA", ["-tls1_2", "-sigalgs", "ECDSA+SHA256"], "ECDSA"),
             ("TLS 1.2 RSA PKCS#1", ["-tls1_2", "-sigalgs", "RSA+SHA256"], "RSA"),
             ("TLS 1.2 RSA-PSS", ["-tls1_2", "-sigalgs", "rsa_pss_rsae_sha384"], "RSA-PSS")]
    for name, args, sig in cases:
        out = s_client(port, args)
        check(signed_with(out, sig) and "* OK ready" in out,
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
        check(signed_with(out, "ECDSA") and "* OK ready" in out,
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
          "(longest %.2f s)" % (SIGN_BOUND_S, max(times)))
    check(fails[0] == 0, "no handshake failed across the kill (%d of %d failed)"
          % (fails[0], len(times)), a.text())
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


def keyproc_pids(agent_pid):
    """The key processes running now: the agent's children."""
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % e) as f:
                st = f.read()
        except OSError:
            continue
        f = st.rsplit(")", 1)[1].split()
        if int(f[1]) == agent_pid and f[0] != "Z":	# not one dead, unreaped
            out.append(int(e))
    return sorted(out)


def handshake_load(port, secs, nthreads=4):
    """Handshakes (each with the greeting read) from @nthreads threads for
    @secs seconds. Return: (handshakes, failures as texts)."""
    done, fails, lock = [0], [], threading.Lock()
    end = time.time() + secs

    def load():
        while time.time() < end:
            try:
                s = tls_connect(port, timeout=10)
                ok = read_line(s).startswith(b"* OK")
                s.close()
                with lock:
                    done[0] += 1
                    if not ok:
                        fails.append("no greeting")
            except OSError as e:
                with lock:
                    fails.append(str(e))

    threads = [threading.Thread(target=load) for _ in range(nthreads)]
    for t in threads:
        t.start()
    return threads, done, fails


def test_kill_every_second(d):
    """Two key processes; one of them is killed with SIGKILL every second
    for 10 s under a handshake load: no handshake fails."""
    be = Backend()
    port = free_port()
    a = Agent(d, conf(d, port, be.port, procs=2))
    try:
        if not check(a.wait_listen(port), "agent with 2 key processes starts", a.text()):
            return
        pids = keyproc_pids(a.proc.pid)
        check(len(pids) == 2, "key_processes = 2 runs two key processes (%s)" % pids, a.text())
        threads, done, fails = handshake_load(port, 11)
        kills = 0
        for i in range(10):
            time.sleep(1)
            pids = keyproc_pids(a.proc.pid)
            if pids:
                os.kill(pids[i % len(pids)], signal.SIGKILL)
                kills += 1
        for t in threads:
            t.join(30)
        check(not any(t.is_alive() for t in threads), "the load ends: nothing hangs")
        check(kills == 10 and a.text().count("killed by signal 9") == kills,
              "10 kills, each logged (%d)" % a.text().count("killed by signal 9"), a.text())
        check(done[0] > 20 and not fails,
              "a key process killed every second: %d handshakes, %d failed%s"
              % (done[0], len(fails), (": " + fails[0]) if fails else ""), a.text())
        check("did not sign" not in a.text(), "no signature failed", a.text())
    finally:
        a.stop()
        be.sock.close()


def relay_figures(s, rounds=200, bulk=4 << 20):
    """An established connection through the echo backend: the round trip
    of 64 bytes (ms, median and max) and the echo throughput (MB/s, best
    of three)."""
    rtt = []
    for _ in range(rounds):
        t0 = time.monotonic()
        s.sendall(b"x" * 63 + b"\n")
        got = b""
        while len(got) < 64:
            got += s.recv(64 - len(got))
        rtt.append((time.monotonic() - t0) * 1000)
    rtt.sort()
    chunk = b"y" * 16384
    best = 0

    def send():
        for _ in range(bulk // len(chunk)):
            s.sendall(chunk)

    for _ in range(3):	# the best of three: the host is shared
        t0 = time.monotonic()
        got = 0
        sender = threading.Thread(target=send)
        sender.start()
        while got < bulk:
            got += len(s.recv(65536))
        sender.join()
        best = max(best, bulk / (time.monotonic() - t0) / 1e6)
    return rtt[len(rtt) // 2], rtt[-1], best


def test_stopped_relay(d):
    """One worker, one key process, SIGSTOPped while handshakes wait for
    it: a connection the worker already relays does not notice (compared
    with the same handshake load while the key process runs)."""
    be = Backend()
    port = free_port()
    a = Agent(d, conf(d, port, be.port, workers=1))
    try:
        if not check(a.wait_listen(port), "agent with one worker starts", a.text()):
            return
        s = tls_connect(port, timeout=10)
        read_line(s)
        # The same handshake load with the key process running: what the
        # host's CPUs give the relay meanwhile, to compare with.
        threads, _, _ = handshake_load(port, 3)
        time.sleep(0.3)
        p50_0, max_0, mbs_0 = relay_figures(s)
        for t in threads:
            t.join(30)
        kp = keyproc_pids(a.proc.pid)[0]
        os.kill(kp, signal.SIGSTOP)
        try:
            threads, _, fails = handshake_load(port, 3)
            time.sleep(0.3)
            p50_1, max_1, mbs_1 = relay_figures(s)
            for t in threads:
                t.join(30)
        finally:
            os.kill(kp, signal.SIGCONT)
        s.close()
        check(len(fails) > 0, "handshakes during the stop waited for it and failed (%d)"
              % len(fails))
        check(max_1 < 250 and p50_1 < max(3 * p50_0, p50_0 + 5),
              "relay round trip while the key process is stopped: median %.2f ms, max %.1f ms"
              " (running: %.2f ms, %.1f ms)" % (p50_1, max_1, p50_0, max_0))
        check(mbs_1 > 0.5 * mbs_0, "relay throughput while it is stopped: %.1f MB/s "
              "(running: %.1f MB/s)" % (mbs_1, mbs_0))
    finally:
        a.stop()
        be.sock.close()


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
    if agent_missing():
        return 1
    if os.geteuid() != 0:
        print("1..1\nnot ok 1 - reading /proc/PID/mem of the processes needs root")
        return 1
    with tempfile.TemporaryDirectory(prefix="mk-keyproc-") as d:
        test_split(d)
        test_kill_every_second(d)
        test_stopped_relay(d)
        test_in_process(d)
        test_bad_key(d)
    return tap_end()


if __name__ == "__main__":
    sys.exit(main())
