#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Misbehaving servers for tests/integration/audit_test.sh, on loopback only.

  audit_servers.py silent PORT       accept, never say anything
  audit_servers.py banner PORT       an SMTP greeting that never ends ("220-" lines)
  audit_servers.py bigline PORT      one 1 MiB line, then CRLF
  audit_servers.py dnssilent PORT   a DNS server that never answers (UDP and TCP)
  audit_servers.py dns PORT SRVPORT  a DNS server (UDP and TCP) for bad.example:
      _imaps._tcp.trunc.bad.example SRV  UDP: TC set; TCP: an answer cut inside its record
      _imaps._tcp.big.bad.example SRV    UDP: ~9 KB answer, over any EDNS size, TC clear
      _imaps._tcp.loop.bad.example SRV   a CNAME loop of three names
      _imaps._tcp.many.bad.example SRV   UDP: TC; TCP: 500 SRV targets (port SRVPORT),
                                         tN with priority 499 - N
      tN.many.bad.example, *.big.bad.example A   127.0.0.1
  Everything else: NXDOMAIN. Every loop is bounded; the process ends when
  killed (the test stops it by PID).
"""
import socket
import struct
import sys
import threading

ONE_MIB = 1 << 20
BANNER_MAX = 64 * ONE_MIB  # an "endless" banner still ends, for a test that hangs


def serve_tcp(port, handler):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def silent(conn):
    try:
        conn.recv(1 << 16)  # hold the connection until the client gives up
        while conn.recv(1 << 16):
            pass
    except OSError:
        pass
    conn.close()


def banner(conn):
    line = b"220-" + b"x" * 70 + b"\r\n"
    sent = 0
    try:
        while sent < BANNER_MAX:
            conn.sendall(line)
            sent += len(line)
    except OSError:
        pass
    conn.close()


def bigline(conn):
    try:
        conn.sendall(b"220 " + b"y" * ONE_MIB + b"\r\n")
        conn.recv(1024)
    except OSError:
        pass
    conn.close()


# --- DNS ---------------------------------------------------------------------

def wire(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def parse_question(msg):
    off, labels = 12, []
    while msg[off]:
        ln = msg[off]
        labels.append(msg[off + 1:off + 1 + ln].decode("ascii", "replace").lower())
        off += 1 + ln
    qtype, qclass = struct.unpack("!HH", msg[off + 1:off + 5])
    return ".".join(labels) + ".", qtype, msg[12:off + 5]


def rr(name, rtype, rdata, ttl=60):
    return wire(name) + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def srv_rdata(target, port, prio=0):
    return struct.pack("!HHH", prio, 1, port) + wire(target)


def message(qid, question, answers, rcode=0, tc=False):
    flags = 0x8400 | (0x0200 if tc else 0) | rcode  # QR AA
    return struct.pack("!HHHHHH", qid, flags, 1, len(answers), 0, 0) + question + \
        b"".join(answers)


def answer(msg, tcp, srvport):
    qid = struct.unpack("!H", msg[:2])[0]
    name, qtype, question = parse_question(msg)
    if name == "_imaps._tcp.trunc.bad.example." and qtype == 33:
        if not tcp:
            return message(qid, question, [], tc=True)
        full = message(qid, question, [rr(name, 33, srv_rdata("mail.trunc.bad.example.", 993))])
        return full[:len(full) - 9]
    if name == "_imaps._tcp.big.bad.example." and qtype == 33:
        target = "h" * 60 + "." + "i" * 60 + ".big.bad.example."
        return message(qid, question, [rr(name, 33, srv_rdata(f"{n}{target}", srvport))
                                       for n in range(64)])
    if name.endswith("loop.bad.example."):
        nxt = {"_imaps._tcp.loop.bad.example.": "a.loop.bad.example.",
               "a.loop.bad.example.": "b.loop.bad.example.",
               "b.loop.bad.example.": "_imaps._tcp.loop.bad.example."}.get(name)
        if nxt:
            return message(qid, question, [rr(name, 5, wire(nxt))])
    if name == "_imaps._tcp.many.bad.example." and qtype == 33:
        if not tcp:
            return message(qid, question, [], tc=True)
        # the best priority last: t499 is the one to try first
        return message(qid, question, [rr(name, 33, srv_rdata(f"t{n}.many.bad.example.",
                                                              srvport, 499 - n))
                                       for n in range(500)])
    if (name.endswith(".many.bad.example.") or name.endswith(".big.bad.example.")) and qtype == 1:
        return message(qid, question, [rr(name, 1, socket.inet_aton("127.0.0.1"))])
    return message(qid, question, [], rcode=3)


def dns_udp(port, srvport):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    while True:
        msg, peer = s.recvfrom(4096)
        try:
            s.sendto(answer(msg, False, srvport), peer)
        except (IndexError, struct.error, OSError):
            pass


def dns_tcp_conn(conn, srvport):
    try:
        for _ in range(64):
            hdr = conn.recv(2, socket.MSG_WAITALL)
            if len(hdr) < 2:
                break
            msg = conn.recv(struct.unpack("!H", hdr)[0], socket.MSG_WAITALL)
            out = answer(msg, True, srvport)
            conn.sendall(struct.pack("!H", len(out)) + out)
    except (IndexError, struct.error, OSError):
        pass
    conn.close()


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "dnssilent":
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", port))  # read by nobody: queries go unanswered
        serve_tcp(port, silent)
    elif mode == "dns":
        srvport = int(sys.argv[3])
        threading.Thread(target=dns_udp, args=(port, srvport), daemon=True).start()
        serve_tcp(port, lambda c: dns_tcp_conn(c, srvport))
    else:
        serve_tcp(port, {"silent": silent, "banner": banner, "bigline": bigline}[mode])


if __name__ == "__main__":
    main()
