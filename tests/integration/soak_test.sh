#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A short soak (scripts/soak.sh): checking clients on Implicit TLS and
# STARTTLS, TLS 1.2 and 1.3, ECDSA and RSA, long-lived idle sessions among
# them, while SIGHUP, key-process kills, certificate renewals, a backend
# restart and misbehaving clients take turns. Small counts: it runs under
# the load of the rest of make check. Prints TAP (one line per verdict of
# the soak).
#
# No handshake may fail across a key-process kill: a signature under way
# is asked again of the successor (KEYPROC_FAILS_OK=1 only counts them).
set -uo pipefail
cd "$(dirname "$0")/../.."
AGENT=${MAILKTLSD:-agent/mailktlsd}
if [ ! -x "$AGENT" ]; then
	echo "1..1"
	echo "not ok 1 - $AGENT is missing (run make)"
	exit 1
fi
MAILKTLSD=$AGENT TAP=1 DURATION=${SOAK_SECONDS:-45} CLIENTS=4 IDLE=4 FAULT_EVERY=4 \
	CHUNK_MAX=8192 SETTLE=20 KEYPROC_FAILS_OK=${KEYPROC_FAILS_OK:-0} scripts/soak.sh
