#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""A private syslog socket for daemons that log only through syslog(3).

Binds a datagram unix socket (what glibc's syslog() sends to) and appends
every message to LOGFILE as one line, without the <PRI> prefix:
  Dec  1 09:21:11 mk-it-cyrus/imapagent[8626]: login: localhost [127.0.0.1] ...
The daemon reaches it as /dev/log inside a mount namespace of its own
(tests/integration/lib/cyrus.sh), so the host's /dev/log is never touched.

  syslog_sink.py SOCKET LOGFILE     runs until SIGTERM
"""

import os
import re
import signal
import socket
import sys

MAX_MSG = 8192	# glibc sends one datagram per message; longer ones are cut


def main():
    path, logfile = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    os.chmod(path, 0o666)	# the daemons log after dropping privileges
    pri = re.compile(rb"^<[0-9]{1,3}>")
    with open(logfile, "ab", buffering=0) as f:
        while True:
            msg = s.recv(MAX_MSG)
            f.write(pri.sub(b"", msg.rstrip(b"\n\0")).replace(b"\n", b" ") + b"\n")


if __name__ == "__main__":
    main()
