#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/bench-keyproc.sh - what keeping the private keys in a key process
# costs per handshake: CPU seconds per 1,000 full TLS 1.3 handshakes
# (ECDSA P-256 or RSA 2048, X25519, TLS_AES_128_GCM_SHA256, no resumption)
# with key_process = yes and = no, in one run, alternating, REPEAT times,
# then the median of the runs' ratios (CPU and handshakes/s).
#
#   scripts/bench-keyproc.sh            ECDSA P-256, 3 x 5,000 handshakes each
#   KEY=rsa scripts/bench-keyproc.sh    RSA 2048
#
# Knobs: KEY=ecdsa|rsa, HS_COUNT (handshakes per measurement, default
# 5000), REPEAT (default 3), HS_PROCS (client processes, default 2: the
# rate then shows each handshake's latency; 8 shows the throughput),
# BENCH_WORKERS (default 2), BENCH_PORT, BUILD (default build-bench).
# With key_process = yes, key_processes is the default (auto).
# CPU is utime+stime of mailktlsd and its children (the key process), read
# from /proc before and after the handshakes; the client and the backend
# share the CPUs, so only figures of one run compare.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build-bench}
OUT=$BUILD/bench-keyproc
KEY=${KEY:-ecdsa}
HS_COUNT=${HS_COUNT:-5000}
REPEAT=${REPEAT:-3}
HS_PROCS=${HS_PROCS:-2}
BASE_PORT=${BENCH_PORT:-25480}
BACKEND_PORT=$BASE_PORT
TICK=$(getconf CLK_TCK)

die() { echo "bench-keyproc: $*" >&2; exit 1; }

# shellcheck source=scripts/bench/common.sh
. scripts/bench/common.sh
bench_build "$OUT" "$BUILD"
bench_tmp mailktls-bench-keyproc

# shellcheck source=scripts/bench/peers.sh
. "$(dirname "$0")/bench/peers.sh"
bench_cert "$KEY" || exit 1
chmod 600 "$TMP"/*.pem

"$OUT/bench_backend" "$BACKEND_PORT" &
PIDS+=($!)
wait_listen "$BACKEND_PORT" || die "backend did not start"

# One measurement: prints CPU seconds per 1,000 handshakes.
measure() {	# key_process port
	local pid t0 t1 i rate
	# key_process is a [global] key: it goes above the listener.
	mailktlsd_conf "$2" off | sed "s/^\[listener bench\]/key_process = $1\n&/" \
		>"$TMP/mailktlsd.conf"
	"$OUT/mailktlsd" -c "$TMP/mailktlsd.conf" 2>"$TMP/mailktlsd.log" &
	pid=$!
	PIDS+=("$pid")
	wait_listen "$2" || { cat "$TMP/mailktlsd.log" >&2; die "mailktlsd did not start"; }
	timeout 60 "$OUT/bench_client" hs "$2" 100 2 >/dev/null	# warm-up
	t0=$(cpu_ticks "$pid")
	rate=$(timeout 600 "$OUT/bench_client" hs "$2" "$HS_COUNT" "$HS_PROCS" |
		sed -n 's/.*rate=\([0-9.]*\).*/\1/p')
	t1=$(cpu_ticks "$pid")
	kill "$pid"
	for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	wait "$pid" 2>/dev/null || true
	[ -n "$rate" ] || die "handshakes failed with key_process = $1"
	awk -v d=$((t1 - t0)) -v t="$TICK" -v n="$HS_COUNT" -v r="$rate" \
		'BEGIN {printf "%.3f %.0f", d / t / n * 1000, r}'
}

echo "bench-keyproc: KEY=$KEY, $HS_COUNT TLS 1.3 handshakes per measurement from" \
	"$HS_PROCS client processes, ${BENCH_WORKERS:-2} workers," \
	"load $(cut -d' ' -f1 /proc/loadavg) before" >&2
printf '%-6s | %-17s | %-17s | %s\n' run "key process CPU s" "in-process CPU s" \
	"key process / in-process"
# Odd runs measure key_process = yes first, even runs second: a drift of
# the machine over a run (another job, the CPU clock) then weighs on both.
ratios=()
for r in $(seq "$REPEAT"); do
	if [ $((r % 2)) = 1 ]; then
		read -r yes yrate <<<"$(measure yes $((BASE_PORT + 1)))"
		read -r no nrate <<<"$(measure no $((BASE_PORT + 2)))"
	else
		read -r no nrate <<<"$(measure no $((BASE_PORT + 2)))"
		read -r yes yrate <<<"$(measure yes $((BASE_PORT + 1)))"
	fi
	printf '%-6s | %8s (%4s/s) | %8s (%4s/s) | %+.1f %%\n' "$r" "$yes" "$yrate" "$no" "$nrate" \
		"$(awk -v a="$yes" -v b="$no" 'BEGIN {print (a / b - 1) * 100}')"
	ratios+=("$(awk -v a="$yes" -v b="$no" -v ra="$yrate" -v rb="$nrate" \
		'BEGIN {printf "%.4f %.4f", a / b, ra / rb}')")
done
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
printf 'median | CPU key process / in-process %.3f x, handshakes/s %.3f x\n' \
	"$(printf '%s\n' "${ratios[@]}" | cut -d' ' -f1 | median)" \
	"$(printf '%s\n' "${ratios[@]}" | cut -d' ' -f2 | median)"
echo "(CPU s per 1,000 handshakes: mailktlsd plus its key process)"
