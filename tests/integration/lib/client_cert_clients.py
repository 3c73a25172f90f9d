#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Clients and a PROXY-header catcher for client_cert_test.sh.

    cacert DIR NAME CN [CA]     a CA (no CA given) or a client certificate
                                signed by DIR/CA: DIR/NAME.crt, DIR/NAME.key
    external PORT VERSION [CERT KEY]
                                IMAP over TLS: AUTHENTICATE EXTERNAL (RFC
                                4422 with an empty authzid), then SELECT
                                INBOX; prints the server's lines
    handshake PORT VERSION [CERT KEY]
                                prints "ok" or "alert <OpenSSL reason>"
    hold PORT VERSION CERT KEY FILE
                                connects, reads the greeting, writes its own
                                address IP:PORT to FILE, stays 20 s at most
    catch PORT FILE             backend: writes the PROXY v2 header of each
                                connection to FILE.N, greets, echoes
    pp2 FILE                    prints the SSL TLV of a caught header:
                                flags=0x.. verify=N cn=... (cn= empty if none)
"""

import os
import socket
import ssl
import struct
import subprocess
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agenttest import CLIENT_IP, client_ctx, read_line  # noqa: E402

# Above Dovecot's longest answer to a failed login: auth_failure_delay (2 s)
# plus its penalty for repeated failures from one address (up to 15 s).
TIMEOUT = 25


def cmd_cacert(args):
    d, name, cn = args[0], args[1], args[2]
    crt, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    base = ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2", "-subj", "/CN=" + cn, "-keyout", key, "-out", crt]
    if len(args) == 3:
        subprocess.run(base + ["-x509", "-addext", "basicConstraints=critical,CA:TRUE",
                               "-addext", "keyUsage=critical,keyCertSign"],
                       check=True, capture_output=True)
    else:
        ca = os.path.join(d, args[3])
        subprocess.run(base + ["-x509", "-CA", ca + ".crt", "-CAkey", ca + ".key",
                               "-addext", "extendedKeyUsage=clientAuth"],
                       check=True, capture_output=True)
    return 0


def connect(port, version, cert=None, key=None):
    ctx = client_ctx()
    ctx.minimum_version = ctx.maximum_version = (
        ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2)
    if cert:
        ctx.load_cert_chain(cert, key)
    raw = socket.socket()
    raw.settimeout(TIMEOUT)
    raw.bind((CLIENT_IP, 0))
    raw.connect(("127.0.0.1", port))
    return ctx.wrap_socket(raw, server_hostname="mail.example.test")


def until_tagged(s, tag):
    out = b""
    while not any(ln.startswith(tag + b" ") for ln in out.split(b"\r\n")):
        d = s.recv(4096)
        if not d:
            break
        out += d
    return out


def cmd_external(args):
    port, version = int(args[0]), args[1]
    s = connect(port, version, *(args[2:4] or [None, None]))
    out = read_line(s)
    s.sendall(b"a AUTHENTICATE EXTERNAL =\r\n")
    out += until_tagged(s, b"a")
    s.sendall(b"b SELECT INBOX\r\n")
    out += until_tagged(s, b"b")
    s.sendall(b"c LOGOUT\r\n")
    out += until_tagged(s, b"c")
    sys.stdout.write(out.decode(errors="replace"))
    s.close()
    return 0


def cmd_handshake(args):
    port, version = int(args[0]), args[1]
    try:
        s = connect(port, version, *(args[2:4] or [None, None]))
        # TLS 1.3: the server checks the certificate after the client's
        # Finished; its verdict arrives with the first read.
        s.recv(4096)
        print("ok")
        s.close()
    except ssl.SSLError as e:
        print("alert %s" % e.reason)
    except OSError as e:
        print("error %s" % e)
    return 0


def cmd_hold(args):
    port, version, out = int(args[0]), args[1], args[4]
    s = connect(port, version, args[2], args[3])
    read_line(s)
    with open(out + ".tmp", "w") as f:
        f.write("%s:%d\n" % s.getsockname())
    os.rename(out + ".tmp", out)
    s.settimeout(20)
    try:
        s.recv(4096)
    except OSError:
        pass
    s.close()
    return 0


def cmd_catch(args):
    port, prefix = int(args[0]), args[1]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    n = 0

    def serve(c, path):
        try:
            hdr = c.recv(16)
            while len(hdr) < 16:
                hdr += c.recv(16 - len(hdr))
            want = 16 + struct.unpack("!H", hdr[14:16])[0]
            while len(hdr) < want:
                hdr += c.recv(want - len(hdr))
            with open(path + ".tmp", "wb") as f:
                f.write(hdr)
            os.rename(path + ".tmp", path)
            c.sendall(b"* OK catcher\r\n")
            while c.recv(4096):
                pass
        except OSError:
            pass
        c.close()

    while True:
        c, _ = srv.accept()
        n += 1
        threading.Thread(target=serve, args=(c, "%s.%d" % (prefix, n)), daemon=True).start()


def cmd_pp2(args):
    with open(args[0], "rb") as f:
        h = f.read()
    off = 16 + {1: 12, 2: 36}.get(h[13] >> 4, 0)
    while off + 3 <= len(h):
        t, ln = h[off], struct.unpack("!H", h[off + 1:off + 3])[0]
        v = h[off + 3:off + 3 + ln]
        if t == 0x20:
            cn, sub = "", 5
            while sub + 3 <= len(v):
                st, sl = v[sub], struct.unpack("!H", v[sub + 1:sub + 3])[0]
                if st == 0x22:
                    cn = v[sub + 3:sub + 3 + sl].decode()
                sub += 3 + sl
            print("flags=%#04x verify=%d cn=%s" % (v[0], struct.unpack("!I", v[1:5])[0], cn))
            return 0
        off += 3 + ln
    print("no ssl tlv")
    return 1


def main():
    cmds = {"cacert": cmd_cacert, "external": cmd_external, "handshake": cmd_handshake, "hold": cmd_hold,
            "catch": cmd_catch, "pp2": cmd_pp2}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.stderr.write(__doc__)
        return 2
    return cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
