#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/bench-vm.sh - the kernel TLS half of the benchmarks: mailktlsd with
# kTLS (`ktls = require`), mailktlsd on its user-space path (`ktls = off`),
# stunnel4, haproxy and hitch, all in one run of the mailktls VM (Debian's
# 6.1 kernel, whose kTLS the host kernel lacks), on 127.0.0.1 inside the VM.
#
#   scripts/bench-vm.sh             full run (about 10 minutes)
#   QUICK=1 scripts/bench-vm.sh     smaller counts (a few minutes)
#
# Knobs (environment): QUICK=1, PROXIES (comma separated, default
# mk-ktls,mk-off,stunnel,haproxy,hitch,mk-module), BULK_MIB, HS_COUNT,
# IDLE_CONNS, MODULE_HS, MODULE_ROUNDS, MODULE_TAGS, LAT_N (sessions per
# first-answer figure; 0: none), MK_BASE (another mailktlsd binary
# for mk-module to measure in the same rounds, e.g. one built from main),
# BUILD (default build-benchvm), VM_MEM (default 2G).
#
# mk-module is the module's cost: mailktlsd (kTLS) handshakes/s with
# mailktls.ko loaded (every connection tags its two sockets) against the
# module unloaded, MODULE_ROUNDS rounds of MODULE_HS handshakes each way,
# alternating, in the same boot; printed with its ratio under the table
# (and MK_BASE's, measured in the same rounds).  Then bench_tag (see
# scripts/bench/bench_tag.c) times what registering a connection costs a
# worker with the module loaded: each worker with its own shard and netlink
# socket, tags sent without waiting, against all threads on one table lock
# and one netlink socket waiting for each answer (the path before).
#
# The set-up is that of scripts/bench.sh (same backend, client, proxy
# configurations; ECDSA P-256 certificate; TLS 1.3 TLS_AES_128_GCM_SHA256;
# 2 workers/threads per proxy); scripts/bench/vm/bench-in-vm.sh runs it in
# the VM, which scripts/vm-run.sh boots with that script as VM_SCRIPT and
# the proxies' host binaries (and their libraries) as VM_EXTRA_FILES.
# Besides the proxies' own RSS and CPU time, the VM lets us count what the
# kernel spends too (kTLS moves work and memory there): "sys KiB/conn" is
# the growth of the whole VM's used memory per idle connection, "sys CPU"
# the busy time of all the VM's CPUs per GiB relayed (client and backend
# included, the same for every proxy).
#
# Then the first-answer latency, as scripts/bench.sh measures it (see
# scripts/bench/first_answer.c): mailktlsd with kTLS and without, Implicit
# TLS and STARTTLS, IMAP and submission; the peers Implicit TLS IMAP. Here
# it is the kTLS path's: the last flight of the handshake, the handover to
# the kernel and the splice relay must not hold a small answer back.
#
# QEMU runs with TCG (KVM hangs on these machines): the guest CPU is
# emulated, so absolute figures mean nothing; only the ratios between the
# proxies of one run do.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build-benchvm}
OUT=$BUILD/benchvm
PROXIES=${PROXIES:-mk-ktls,mk-off,stunnel,haproxy,hitch,mk-module}
if [ "${QUICK:-0}" = 1 ]; then
	: "${BULK_MIB:=16}" "${HS_COUNT:=50}" "${IDLE_CONNS:=200}" "${MODULE_HS:=200}"
	: "${MODULE_ROUNDS:=2}" "${LAT_N:=20}"
else
	: "${BULK_MIB:=64}" "${HS_COUNT:=100}" "${IDLE_CONNS:=1000}" "${MODULE_HS:=400}"
	: "${MODULE_ROUNDS:=4}" "${LAT_N:=50}"
fi

die() { echo "bench-vm: $*" >&2; exit 1; }

export PATH=$PATH:/usr/sbin:/sbin
missing=()
command -v stunnel4 >/dev/null || missing+=(stunnel4)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v hitch >/dev/null || missing+=(hitch)
if [ ${#missing[@]} -gt 0 ]; then
	echo "bench-vm: installing ${missing[*]} (benchmark-only packages)" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

mkdir -p "$OUT"
make --no-print-directory -s BUILD="$BUILD" agent/mailktlsd >/dev/null
# mailktls.ko for the VM's kernel (vm-run.sh does not build with VM_NO_BUILD).
case ",$PROXIES," in
*,mk-module,*) scripts/vm/kernel.sh "${VM_KERNEL:-6.1}" >/dev/null || die "no mailktls.ko" ;;
esac
# A private copy: other builds may relink agent/mailktlsd during the run.
cp agent/mailktlsd "$OUT/mailktlsd"
rm -f "$OUT/mailktlsd-base"
if [ -n "${MK_BASE:-}" ]; then
	cp "$MK_BASE" "$OUT/mailktlsd-base"
fi
# shellcheck source=scripts/bench/common.sh
. scripts/bench/common.sh
bench_tools "$OUT"
# bench_tag links the agent's objects, as bench_query does.
bench_agent_archive "$OUT/agent.a" "$BUILD"
gcc "${BENCH_AGENT_CFLAGS[@]}" -o "$OUT/bench_tag" scripts/bench/bench_tag.c "$OUT/agent.a" \
	"${BENCH_AGENT_LIBS[@]}"
extra="$OUT/mailktlsd${MK_BASE:+ $OUT/mailktlsd-base} $OUT/bench_backend $OUT/bench_client"
extra+=" $OUT/first_answer"
extra+=" $OUT/bench_tag scripts/bench/peers.sh"
for b in stunnel4 haproxy hitch; do
	extra+=" $(readlink -f "$(command -v "$b")")"
done

echo "bench-vm: PROXIES=$PROXIES BULK_MIB=$BULK_MIB HS_COUNT=$HS_COUNT" \
	"IDLE_CONNS=$IDLE_CONNS; booting the VM (TCG)" >&2
start=$(date +%s)
rc=0
BUILD=$BUILD VM_NO_BUILD=1 VM_MEM=${VM_MEM:-2G} VM_TEST_TIMEOUT=1500 VM_TIMEOUT=1560 \
	VM_SCRIPT=scripts/bench/vm/bench-in-vm.sh VM_EXTRA_FILES="$extra" \
	VM_TEST_ARGS="BIN=$OUT PROXIES=$PROXIES BULK_MIB=$BULK_MIB HS_COUNT=$HS_COUNT IDLE_CONNS=$IDLE_CONNS MODULE_HS=$MODULE_HS MODULE_ROUNDS=$MODULE_ROUNDS MODULE_TAGS=${MODULE_TAGS:-20000} LAT_N=$LAT_N" \
	scripts/vm-run.sh >"$OUT/vm.out" 2>&1 || rc=$?
took=$(($(date +%s) - start))
grep -v '^bench-row \|^bench-module \|^bench-tag \|^bench-lat ' "$OUT/vm.out" >&2 || true
[ "$rc" = 0 ] || echo "bench-vm: scripts/vm-run.sh exited $rc (console log: $BUILD/vm/console.log)" >&2
grep -q '^bench-row \|^bench-module \|^bench-lat ' "$OUT/vm.out" || die "no results from the VM"

grep -q '^bench-row ' "$OUT/vm.out" && echo && awk '
BEGIN {
	fmt = "%-8s | %7s | %9s | %12s | %6s %7s %6s | %6s %7s %6s | %9s | %13s\n"
	printf "%-8s | %7s | %9s | %12s | %-22s | %-22s |\n", "", "", "", "",
		"   KiB/conn", " sys KiB/conn"
	printf fmt, "proxy", "up MB/s", "down MB/s", "handshakes/s", "silent", "greeted", "IDLE",
		"silent", "greeted", "IDLE", "CPU s/GiB", "sys CPU s/GiB"
}
$1 == "bench-row" {
	printf fmt, $2, $3, $4, $5, $11, $13, $6, $12, $14, $7, $8, $9
}' "$OUT/vm.out"
echo
echo "TLS 1.3 TLS_AES_128_GCM_SHA256, ECDSA P-256 certificate, $BULK_MIB MiB each way," \
	"$HS_COUNT handshakes from 2 processes, $IDLE_CONNS idle connections per state" \
	"(silent: handshake done, backend says nothing; greeted: after an IMAP greeting," \
	"before login; IDLE: logged in, one byte relayed each way);" \
	"Debian $(grep -m1 '^# vm: kernel' "$OUT/vm.out" | cut -d' ' -f4) VM, 2 vCPUs shared by" \
	"client, backend and proxy; $took s."
echo "QEMU TCG emulates the guest CPU: absolute figures are meaningless, compare only" \
	"the ratios between the proxies of this one run."
grep -q '^bench-lat ' "$OUT/vm.out" && echo &&
	echo "first answer after the handshake, ms (client with Nagle on; $LAT_N sessions each)" &&
	awk 'BEGIN { printf "%-8s | %-15s | %17s | %17s\n", "proxy", "", "TLS 1.2 p50/p99",
		"TLS 1.3 p50/p99" }
	$1 == "bench-lat" { label = $3; gsub("-", " ", label)
		printf "%-8s | %-15s | %17s | %17s\n", $2, label, $4 " / " $5, $6 " / " $7 }' \
		"$OUT/vm.out"
awk '$1 == "bench-module" {
	printf "\nmailktls.ko, %s: mailktlsd (kTLS) %s handshakes/s loaded, %s not loaded: %s x" \
		" (median of the rounds %s x; %s rounds of '"$MODULE_HS"' handshakes each way," \
		" alternating, one boot; %s module tags per handshake while loaded)\n",
		$2 == "base" ? "MK_BASE" : "this build", $3, $4, $5, $6, $7, $8
}
$1 == "bench-tag" {
	n = 0
	for (i = 3; i <= NF; i++) {	# insertion sort: a few runs
		for (k = n++; k > 0 && v[k - 1] > $i + 0; k--)
			v[k] = v[k - 1]
		v[k] = $i + 0
	}
	if (n) {
		med[$2] = n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
		min[$2] = v[0]
		runs[$2] = n
	}
}
END {
	if (("shared" in med) && ("worker" in med) && med["worker"] > 0)
		printf "\nregistering a connection with the module loaded (2 tags + 1 entry; 2 threads," \
			" bench_tag, median of %d runs each, alternating): %.1f us a thread on the worker" \
			" path (own shard, own netlink socket, no waiting; fastest run %.1f), %.1f us on" \
			" the shared one (one lock, one socket, waiting for each answer: the path before;" \
			" fastest %.1f): %.2f x (fastest runs %.2f x)\n", runs["worker"],
			med["worker"], min["worker"], med["shared"], min["shared"],
			med["shared"] / med["worker"], min["shared"] / min["worker"]
}' "$OUT/vm.out"
exit "$rc"
