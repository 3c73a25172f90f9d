#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/bench.sh - compare mailktlsd with stunnel4, haproxy and hitch as
# TLS terminators, all in the same run, on 127.0.0.1 only.
#
#   scripts/bench.sh              full run (a few minutes)
#   QUICK=1 scripts/bench.sh      smaller counts (about a minute)
#   HANDSHAKE_ONLY=1 scripts/bench.sh   only the handshake CPU and latency tables
#
# Knobs (environment): QUICK=1, HANDSHAKE_ONLY=1, KEY=ecdsa|rsa (server
# key: ECDSA P-256, the default, or RSA 2048), PROXIES="mailktlsd stunnel
# haproxy hitch", MK_KTLS=auto|off|require (mailktlsd's ktls key),
# BENCH_PORT (first of a few consecutive ports), BUILD (build dir, default
# build-bench), HS_CPU_COUNT and HS_CPU_REPEAT (handshakes per measurement
# and rounds of the handshake CPU table), MAILKTLSD_BASE=PATH (a second
# mailktlsd binary, e.g. built from the base branch, measured as the proxy
# "mk_base" when PROXIES names it: two builds compared in one run).
#
# stunnel4, haproxy and hitch are benchmark-only dependencies: this script
# installs the missing ones with apt-get; they are not in
# scripts/debian-packages.txt.
#
# Set-up: a plaintext backend (scripts/bench/bench_backend.c: sink, source,
# echo) behind each proxy in turn, each with the same certificate; the client
# (scripts/bench/bench_client.c) speaks TLS 1.3 with TLS_AES_128_GCM_SHA256
# only. Each proxy gets 2 workers/threads. Measured per proxy:
#   up/down MB/s   one connection, BULK_MIB to the sink, BULK_MIB from the
#                  source (MB = 10^6 bytes);
#   handshakes/s   HS_COUNT full handshakes (no resumption) over HS_PROCS
#                  client processes; each connection also echoes one byte
#                  through the backend and ends with close_notify;
#   KiB/conn       RSS growth of the proxy (sum of VmRSS over its processes)
#                  with IDLE_CONNS established connections, divided by them,
#                  in three idle states, each with a freshly started proxy:
#                  "silent" (handshake done, the backend accepted and says
#                  nothing), "greeted" (after an IMAP greeting, before login)
#                  and "IDLE" (logged in, one byte relayed each way, as in
#                  IMAP IDLE); see scripts/bench/bench_proto.h;
#   CPU s/GiB      utime+stime of the proxy's processes during the two bulk
#                  transfers, per GiB relayed.
# Then a second table, the handshake CPU:
#   CPU s/1k hs    utime+stime of the proxy's processes (/proc/PID/stat)
#                  over HS_CPU_COUNT full TLS 1.3 handshakes (X25519, the
#                  KEY certificate; each with the one-byte echo above) from
#                  8 client processes, per 1,000 handshakes; every proxy
#                  runs with one worker/thread (stunnel: a thread per
#                  connection, it has no such knob), freshly started and
#                  warmed up with 50 handshakes; measured 3 times, the
#                  proxies taking turns, and printed as the range min-max.
#   hs/s           the handshake-loop rate of the same runs (8 clients,
#                  each: connect, handshake, one-byte echo, close_notify,
#                  wait for the close), also as min-max.
# Then a third table, the first-answer latency (LATENCY=0 skips it):
#   p50/p99 ms     from the end of the handshake to the first answer, for a
#                  client with Nagle on (OpenSSL on a blocking socket,
#                  as mail clients use it: scripts/bench/first_answer.c;
#                  LAT_N sessions, one after another):
#                  one command (IMAP NOOP, SMTP EHLO) and its answer, from
#                  a line backend that answers at once; TLS 1.2 and 1.3;
#                  Implicit TLS and STARTTLS (IMAP and SMTP) for mailktlsd,
#                  Implicit TLS IMAP for the others (none does STARTTLS).
#                  A 40 ms figure is a delayed-ACK stall.
# mailktlsd runs with protocol = imap, so its capability filter sees the
# backend's first bytes; the backend greets like an IMAP server
# (scripts/bench/bench_proto.h) so that the filter is done before the
# measured bytes flow. Client, backend and proxy share the host's CPUs: the
# figures are only comparable within one run on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build-bench}
OUT=$BUILD/bench
KEY=${KEY:-ecdsa}
PROXIES=${PROXIES:-mailktlsd stunnel haproxy hitch}
MK_KTLS=${MK_KTLS:-auto}
BASE_PORT=${BENCH_PORT:-25400}
if [ "${QUICK:-0}" = 1 ]; then
	BULK_MIB=64 HS_COUNT=200 IDLE_CONNS=200
else
	BULK_MIB=256 HS_COUNT=2000 IDLE_CONNS=1000
fi
HS_CPU_COUNT=${HS_CPU_COUNT:-$([ "${QUICK:-0}" = 1 ] && echo 800 || echo 4000)}
HS_CPU_PROCS=8
HS_CPU_REPEAT=${HS_CPU_REPEAT:-3}
HS_PROCS=2
LAT_N=${LAT_N:-$([ "${QUICK:-0}" = 1 ] && echo 40 || echo 200)}
TICK=$(getconf CLK_TCK)
BACKEND_PORT=$BASE_PORT
LOGIN_BACKEND=$BASE_PORT
SILENT_BACKEND=$((BASE_PORT + 30))
GREET_BACKEND=$((BASE_PORT + 31))
LAT_IMAP_BACKEND=$((BASE_PORT + 32))
LAT_SMTP_BACKEND=$((BASE_PORT + 33))

die() { echo "bench: $*" >&2; exit 1; }

# --- dependencies and binaries ----------------------------------------------

missing=()
command -v stunnel4 >/dev/null || missing+=(stunnel4)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v hitch >/dev/null || [ -x /usr/sbin/hitch ] || missing+=(hitch)
if [ ${#missing[@]} -gt 0 ]; then
	echo "bench: installing ${missing[*]} (benchmark-only packages)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
export PATH=$PATH:/usr/sbin:/sbin

# shellcheck source=scripts/bench/common.sh
. scripts/bench/common.sh
bench_build "$OUT" "$BUILD"

# --- processes: everything started here is stopped by PID --------------------

bench_tmp mailktls-bench

rss_kib() {	# sum of VmRSS over the tree
	local p sum=0 v
	for p in $(proc_tree "$1"); do
		v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

stop_pid() {	# pid: SIGTERM, bounded wait, then SIGKILL (children too)
	local pid=$1 tree i
	tree=$(proc_tree "$pid")
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "bench: pid $pid did not stop within 5 s of SIGTERM, killing it" >&2
		for i in $tree; do kill -KILL "$i" 2>/dev/null || true; done
	fi
	wait "$pid" 2>/dev/null || true
}

# --- certificates -------------------------------------------------------------

# bench_cert, mailktlsd_conf, start_stunnel, start_haproxy: the same set-ups on the host and
# in the VM
# shellcheck source=scripts/bench/peers.sh
. "$(dirname "$0")/bench/peers.sh"
bench_cert "$KEY" || exit 1
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/combined.pem"
chmod 600 "$TMP"/*.pem

# --- the proxies ----------------------------------------------------------------

start_mailktlsd() {	# port
	mailktlsd_conf "$1" "$MK_KTLS" >"$TMP/mailktlsd.conf"
	"$OUT/mailktlsd" -c "$TMP/mailktlsd.conf" 2>"$TMP/mailktlsd.log" &
}

start_mk_base() {	# port
	[ -n "${MAILKTLSD_BASE:-}" ] || die "mk_base needs MAILKTLSD_BASE"
	mailktlsd_conf "$1" "$MK_KTLS" >"$TMP/mk_base.conf"
	"$MAILKTLSD_BASE" -c "$TMP/mk_base.conf" 2>"$TMP/mk_base.log" &
}

start_hitch() {
	local hitch_user=()
	# hitch refuses to run its workers as root.
	[ "$(id -u)" = 0 ] && hitch_user=(--user=nobody --group=nogroup)
	mkdir -p "$TMP/ocsp"
	hitch --frontend="[127.0.0.1]:$1" --backend="[127.0.0.1]:$BACKEND_PORT" \
		--workers="${BENCH_WORKERS:-2}" --ocsp-dir="$TMP/ocsp" --log-level=1 "${hitch_user[@]}" \
		"$TMP/combined.pem" >"$TMP/hitch.log" 2>&1 &
}

# --- measurements -------------------------------------------------------------------

client() { timeout "$1" "$OUT/bench_client" "${@:2}"; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

# Prints "KiB/conn" (or "fail"): STATE is login, greet or silent (bench_client
# idle), BACKEND the port of the backend the proxy forwards to.
measure_idle() {	# port pid state backend
	local before after cpid i
	client 60 idle "$1" 20 0 "$3" >/dev/null || { echo fail; return; }
	sleep 1
	before=$(rss_kib "$2")
	"$OUT/bench_client" idle "$1" "$IDLE_CONNS" 120 "$3" >"$TMP/idle.out" 2>"$TMP/idle.err" &
	cpid=$!
	for i in $(seq 1200); do
		grep -q ready "$TMP/idle.out" && break
		kill -0 "$cpid" 2>/dev/null || break
		sleep 0.1
	done
	# "silent": the client is done before the proxy; wait for the backend side
	for i in $(seq 300); do
		[ "$(bench_established "$4")" -ge "$IDLE_CONNS" ] && break
		sleep 0.1
	done
	if ! grep -q ready "$TMP/idle.out"; then
		kill "$cpid" 2>/dev/null || true
		wait "$cpid" 2>/dev/null || true
		echo fail
		return
	fi
	sleep 2	# let the connections settle: proxies may trim what a quiet one keeps
	after=$(rss_kib "$2")
	kill "$cpid" 2>/dev/null || true
	wait "$cpid" 2>/dev/null || true
	sleep 1	# let the proxy tear the connections down
	awk -v a="$after" -v b="$before" -v n="$IDLE_CONNS" 'BEGIN {printf "%.1f", (a - b) / n}'
}

# A fresh proxy in front of the silent or the greeting backend: its idle
# cost in STATE_KIB.
measure_idle_state() {	# name port state backend
	local pid
	BACKEND_PORT=$4
	"start_$1" "$2"
	pid=$!
	BACKEND_PORT=$LOGIN_BACKEND
	PIDS+=("$pid")
	STATE_KIB=fail
	wait_listen "$2" && STATE_KIB=$(measure_idle "$2" "$pid" "$3" "$4")
	stop_pid "$pid"
}

bench_proxy() {	# name port
	local name=$1 port=$2 pid idle silent greet hs up down t0 t1 cpu
	measure_idle_state "$name" $((port + 10)) silent "$SILENT_BACKEND"
	silent=$STATE_KIB
	measure_idle_state "$name" $((port + 20)) greet "$GREET_BACKEND"
	greet=$STATE_KIB
	"start_$name" "$port"
	pid=$!
	PIDS+=("$pid")
	if ! wait_listen "$port"; then
		echo "bench: $name did not start; its log:" >&2
		cat "$TMP/$name.log" >&2 || true
		printf "$ROW" "$name" - - - "$silent" "$greet" - - >>"$TMP/table"
		return
	fi
	echo "bench: $name ($(proc_tree "$pid" | wc -w) processes)" >&2
	idle=$(measure_idle "$port" "$pid" login "$LOGIN_BACKEND")
	hs=$(client 300 hs "$port" "$HS_COUNT" "$HS_PROCS" | field rate) || hs=""
	t0=$(cpu_ticks "$pid")
	up=$(client 120 bulk "$port" up $((BULK_MIB << 20)) | field mbps) || up=""
	down=$(client 120 bulk "$port" down $((BULK_MIB << 20)) | field mbps) || down=""
	t1=$(cpu_ticks "$pid")
	cpu=$(awk -v d=$((t1 - t0)) -v t="$TICK" -v m="$BULK_MIB" \
		'BEGIN {printf "%.2f", d / t / (2 * m / 1024)}')
	[ -n "$up" ] && [ -n "$down" ] || cpu=fail
	printf "$ROW" "$name" "${up:-fail}" "${down:-fail}" "${hs:-fail}" "$silent" "$greet" \
		"$idle" "$cpu" >>"$TMP/table"
	stop_pid "$pid"
}

# One measurement of the handshake CPU table: appends "CPU s per 1,000
# handshakes" (or "fail") to $TMP/hscpu.NAME.
hs_cpu_once() {	# name port
	local name=$1 port=$2 pid t0 t1 v=fail rate=fail out
	BENCH_WORKERS=1 "start_$name" "$port"
	pid=$!
	PIDS+=("$pid")
	if wait_listen "$port" && client 60 hs "$port" 50 2 >/dev/null; then
		t0=$(cpu_ticks "$pid")
		if out=$(client 600 hs "$port" "$HS_CPU_COUNT" "$HS_CPU_PROCS"); then
			t1=$(cpu_ticks "$pid")
			v=$(awk -v d=$((t1 - t0)) -v t="$TICK" -v n="$HS_CPU_COUNT" \
				'BEGIN {printf "%.3f", d / t / n * 1000}')
			rate=$(echo "$out" | field rate)
		fi
	else
		echo "bench: $name did not start or failed the warm-up; its log:" >&2
		cat "$TMP/$name.log" >&2 || true
	fi
	echo "$v" >>"$TMP/hscpu.$name"
	echo "${rate:-fail}" >>"$TMP/hsrate.$name"
	stop_pid "$pid"
}

bench_hs_cpu() {
	local r p port v
	for r in $(seq "$HS_CPU_REPEAT"); do
		port=$((BASE_PORT + 1))
		for p in $PROXIES; do
			echo "bench: handshake CPU, $p, round $r of $HS_CPU_REPEAT" >&2
			hs_cpu_once "$p" "$port"
			port=$((port + 1))
		done
	done
	printf '%-10s | %17s | %13s | %s\n' proxy "CPU s/1k hs" "hs/s" "each measurement" \
		>"$TMP/hstable"
	for p in $PROXIES; do
		v=$(tr '\n' ' ' <"$TMP/hscpu.$p")
		printf '%-10s | %17s | %13s | %s\n' "$p" "$(echo "$v" | min_max)" \
			"$(tr '\n' ' ' <"$TMP/hsrate.$p" | min_max)" "$v" >>"$TMP/hstable"
	done
}

min_max() {	# numbers on one line -> "min-max", or "fail"
	awk '{ for (i = 1; i <= NF; i++) { if ($i == "fail") { print "fail"; exit }
		 if (min == "" || $i + 0 < min + 0) min = $i; if ($i + 0 > max + 0) max = $i } }
		END { if (min != "") printf "%s-%s", min, max }'
}

lat_row() {	# proxy mode port proto tls
	local v r12 r13
	r12=$(timeout 300 "$OUT/first_answer" client "$3" "$4" "$5" 1.2 "$LAT_N") || true
	r13=$(timeout 300 "$OUT/first_answer" client "$3" "$4" "$5" 1.3 "$LAT_N") || true
	printf '%-10s | %-15s | %17s | %17s\n' "$1" "$2" "$(lat_cell "$r12")" \
		"$(lat_cell "$r13")" >>"$TMP/lattable"
}

lat_cell() {	# first_answer's line -> "p50 / p99", or "fail"
	local f
	f=$(first_answer_figures "$1")
	if [ "$f" = "- -" ]; then echo fail; else echo "${f/ / / }"; fi
}

bench_latency() {
	local p port pid
	"$OUT/first_answer" backend "$LAT_IMAP_BACKEND" "$LAT_SMTP_BACKEND" &
	PIDS+=("$!")
	wait_listen "$LAT_IMAP_BACKEND" && wait_listen "$LAT_SMTP_BACKEND" ||
		die "latency backends did not start"
	printf '%-10s | %-15s | %17s | %17s\n' proxy "" "TLS 1.2 p50/p99" "TLS 1.3 p50/p99" \
		>"$TMP/lattable"
	port=$((BASE_PORT + 40))
	for p in $PROXIES; do
		echo "bench: first-answer latency, $p" >&2
		if [ "$p" = mailktlsd ]; then
			mailktlsd_lat_conf "$port" "$MK_KTLS" >"$TMP/mailktlsd-lat.conf"
			"$OUT/mailktlsd" -c "$TMP/mailktlsd-lat.conf" 2>"$TMP/mailktlsd.log" &
		else
			BACKEND_PORT=$LAT_IMAP_BACKEND "start_$p" "$port"
		fi
		pid=$!
		PIDS+=("$pid")
		if wait_listen "$port"; then
			for v in 1.2 1.3; do	# warm-up: a fresh proxy's first sessions
				timeout 60 "$OUT/first_answer" client "$port" imap implicit $v 5 \
					>/dev/null || true
			done
			lat_row "$p" "implicit IMAP" "$port" imap implicit
			if [ "$p" = mailktlsd ]; then
				wait_listen $((port + 3)) || true
				lat_row "$p" "implicit SMTP" $((port + 1)) smtp implicit
				lat_row "$p" "STARTTLS IMAP" $((port + 2)) imap starttls
				lat_row "$p" "STARTTLS SMTP" $((port + 3)) smtp starttls
			fi
		else
			echo "bench: $p did not start; its log:" >&2
			cat "$TMP/$p.log" >&2 || true
		fi
		stop_pid "$pid"
		port=$((port + 4))
	done
}

"$OUT/bench_backend" "$LOGIN_BACKEND" login &
PIDS+=("$!")
"$OUT/bench_backend" "$SILENT_BACKEND" silent &
PIDS+=("$!")
"$OUT/bench_backend" "$GREET_BACKEND" greet &
PIDS+=("$!")
for p in "$LOGIN_BACKEND" "$SILENT_BACKEND" "$GREET_BACKEND"; do
	wait_listen "$p" || die "backend on $p did not start"
done

for p in $PROXIES; do
	declare -F "start_$p" >/dev/null || die "unknown proxy $p"
done
start=$(date +%s)
if [ "${HANDSHAKE_ONLY:-0}" != 1 ]; then
	echo "bench: KEY=$KEY BULK_MIB=$BULK_MIB HS_COUNT=$HS_COUNT HS_PROCS=$HS_PROCS" \
		"IDLE_CONNS=$IDLE_CONNS, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	ROW='%-10s | %9s | %9s | %12s | %10s | %11s | %8s | %9s\n'
	{
		printf "%-10s | %9s | %9s | %12s | %-35s | %9s\n" "" "" "" "" "   idle KiB/conn" ""
		printf "$ROW" proxy "up MB/s" "down MB/s" handshakes/s silent greeted IDLE "CPU s/GiB"
	} >"$TMP/table"
	port=$((BASE_PORT + 1))
	for p in $PROXIES; do
		bench_proxy "$p" "$port"
		port=$((port + 1))
	done
	grep -m1 'TLS records' "$TMP/mailktlsd.log" >&2 2>/dev/null || true
	echo
	cat "$TMP/table"
fi
echo "bench: handshake CPU: HS_CPU_COUNT=$HS_CPU_COUNT HS_CPU_PROCS=$HS_CPU_PROCS," \
	"$HS_CPU_REPEAT rounds, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
bench_hs_cpu
echo
cat "$TMP/hstable"
if [ "${LATENCY:-1}" = 1 ]; then
	echo "bench: first-answer latency: LAT_N=$LAT_N, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	bench_latency
	echo
	echo "first answer after the handshake, ms (client with Nagle on)"
	cat "$TMP/lattable"
fi
echo
echo "TLS 1.3 TLS_AES_128_GCM_SHA256, X25519, $KEY certificate, $(nproc) CPUs shared by client," \
	"backend and proxy; $(($(date +%s) - start)) s; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
