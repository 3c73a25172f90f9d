#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/bench/hs-callgrind.sh - the agent's own cost of one full TLS 1.3
# handshake, in instructions (valgrind's callgrind counts them, so the
# figure is repeatable on a loaded machine, unlike CPU time).
#
#   scripts/bench/hs-callgrind.sh [COUNT]     (default 296)
#
# mailktlsd (one worker, the benchmark config of scripts/bench/peers.sh,
# ECDSA P-256 certificate, ktls off as on a host without kernel TLS, or
# MK_KTLS=auto|require) runs under callgrind in front of
# scripts/bench/bench_backend.c; after 20 warm-up handshakes the counters
# are zeroed, COUNT handshakes of scripts/bench/bench_client.c follow (TLS
# 1.3, X25519, each with a one-byte echo and close_notify, as the handshake
# CPU table of scripts/bench.sh), and the counters are dumped. Printed:
# instructions per handshake, in all; inside SSL_do_handshake() (OpenSSL's
# handshake alone: the floor any OpenSSL server pays, ECDSA sign and X25519
# included); and the rest (the agent's code, the records of the echo and
# the close, SSL_new/SSL_free, the libc it calls). COUNT is rounded down to
# a multiple of the 8 client processes. The dump stays in $OUT for
# callgrind_annotate. MAILKTLSD=PATH measures that binary instead of this
# tree's.
set -euo pipefail
cd "$(dirname "$0")/../.."

COUNT=$((${1:-296} / 8 * 8))
BUILD=${BUILD:-build-bench}
OUT=$BUILD/callgrind
MK_KTLS=${MK_KTLS:-off}
BASE_PORT=${BENCH_PORT:-25700}
BACKEND_PORT=$BASE_PORT
PORT=$((BASE_PORT + 1))

# valgrind is a benchmark-only dependency, like the peers of bench.sh.
if ! command -v valgrind >/dev/null; then
	echo "hs-callgrind: installing valgrind (benchmark-only package)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null
fi
# shellcheck source=scripts/bench/common.sh
. scripts/bench/common.sh
bench_build "$OUT" "$BUILD" "${MAILKTLSD:-}"
bench_tmp mailktls-callgrind

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=localhost -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
# shellcheck source=scripts/bench/peers.sh
. scripts/bench/peers.sh
BENCH_WORKERS=1 mailktlsd_conf "$PORT" "$MK_KTLS" >"$TMP/mailktlsd.conf"

"$OUT/bench_backend" "$BACKEND_PORT" &
PIDS+=("$!")
wait_listen "$BACKEND_PORT" 600 || { echo "backend did not start" >&2; exit 1; }
rm -f "$OUT"/callgrind.out.*
valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p" \
	"$OUT/mailktlsd" -c "$TMP/mailktlsd.conf" 2>"$TMP/agent.log" &
agent=$!
PIDS+=("$agent")
wait_listen "$PORT" 600 || { cat "$TMP/agent.log" >&2; exit 1; }
timeout 300 "$OUT/bench_client" hs "$PORT" 20 1 >/dev/null
callgrind_control -z "$agent" >/dev/null
timeout 1200 "$OUT/bench_client" hs "$PORT" "$COUNT" 8 >/dev/null
callgrind_control -d "$agent" >/dev/null
dump=$(ls -t "$OUT"/callgrind.out."$agent".* | head -n1)
total=$(sed -n 's/^summary: //p' "$dump" | awk '{print $1}')
hs=$(callgrind_annotate --threshold=100 --inclusive=yes "$dump" 2>/dev/null |
	awk '/:SSL_do_handshake / && !h { gsub(",", "", $1); h = $1 } END { print h + 0 }')
kill "$agent"
wait "$agent" 2>/dev/null || true
awk -v t="$total" -v h="${hs:-0}" -v n="$COUNT" 'BEGIN {
	printf "instructions per handshake: %.0f (SSL_do_handshake %.0f, the rest %.0f)\n",
		t / n, h / n, (t - h) / n }'
echo "dump: $dump"
