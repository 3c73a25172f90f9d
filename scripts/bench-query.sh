#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/bench-query.sh - lookups per second and latency of the agent's
# query socket with many live connections in the registry and a stalled
# client connected, for this tree's query server and for the one before it
# (one client at a time, linear scan), in the same run.
#
#   scripts/bench-query.sh
#
# Knobs (environment): ENTRIES (live connections, 10000), CLIENTS (client
# threads asking one lookup after the other, 8), DURATION (seconds per run, 5),
# CHURN (connections removed and added per second meanwhile, as workers
# do, 2000), WORKERS (the shards the connections are spread over, as an
# agent with that many workers holds them, 2; the server before has one
# table), BASELINE (git revision of the older server; default: the
# parent of the commit that added agent/query_server.c; "none" to skip),
# BUILD (build dir, default build).
#
# How: scripts/bench/bench_query.c is linked with the agent's objects, as
# the unit tests are. It fills the registry in-process with ENTRIES made-up
# connections (mk_registry_add(), no TLS connections), serves the query
# socket in the same process, and drives it through real unix sockets the
# way libmailktls asks (connect, one line, read the answer, close):
# QUERY ADDR, CLAUSE and QUERY PEER in turn, for random connections, every
# answer checked. The stalled client connects and never sends; when the
# server closes it, it connects again at once, so one is always there.
# Load generator and server share the machine's CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
ENTRIES=${ENTRIES:-10000}
CLIENTS=${CLIENTS:-8}
SECONDS_EACH=${DURATION:-5}
CHURN=${CHURN:-2000}
OUT=$BUILD/bench-query
# shellcheck source=scripts/bench/common.sh
. scripts/bench/common.sh

die() { echo "bench-query: $*" >&2; exit 1; }

mkdir -p "$OUT"
make -s -j2 BUILD="$BUILD" agent/mailktlsd >/dev/null || die "make failed"

bench_agent_archive "$OUT/agent.a" "$BUILD"
gcc "${BENCH_AGENT_CFLAGS[@]}" -o "$OUT/bench_query" scripts/bench/bench_query.c "$OUT/agent.a" \
	"${BENCH_AGENT_LIBS[@]}"

old_built=0
if [ "${BASELINE:-}" != none ] && git rev-parse --git-dir >/dev/null 2>&1; then
	if [ -z "${BASELINE:-}" ]; then
		added=$(git log --diff-filter=A --format=%H -- agent/query_server.c | tail -n 1)
		[ -n "$added" ] || die "no commit adds agent/query_server.c: set BASELINE"
		BASELINE=$(git rev-parse "$added^")
	fi
	# The older registry.c held table, tagging, protocol and server in one
	# file: build it with its own header, and leave out the files it was
	# split into.
	mkdir -p "$OUT/old/inc/lib"
	git show "$BASELINE:agent/registry.c" >"$OUT/old/registry.c"
	git show "$BASELINE:agent/registry.h" >"$OUT/old/inc/registry.h"
	# and the header-only helpers it included from agent/lib/ then
	for h in mk_addr.h mk_genl.h; do
		git show "$BASELINE:agent/lib/$h" >"$OUT/old/inc/lib/$h" 2>/dev/null || true
	done
	# the files of this tree that the old registry.c held
	bench_agent_archive "$OUT/old/agent.a" "$BUILD" "registry registry_tag query_proto query_server"
	if gcc "${BENCH_AGENT_CFLAGS[@]}" -iquote "$OUT/old/inc" -c -o "$OUT/old/registry.o" \
		"$OUT/old/registry.c" 2>"$OUT/old/build.log" &&
		gcc "${BENCH_AGENT_CFLAGS[@]}" -iquote "$OUT/old/inc" -o "$OUT/bench_query_old" \
			scripts/bench/bench_query.c "$OUT/old/registry.o" "$OUT/old/agent.a" \
			"${BENCH_AGENT_LIBS[@]}" \
			2>>"$OUT/old/build.log"; then
		old_built=1
	else
		echo "before: $BASELINE's registry.c does not build with this tree" \
			"($OUT/old/build.log): not measured"
	fi
fi

# shellcheck disable=SC2059
# run LABEL BINARY [bench_query options] - one measurement, one table row
run() {
	local label=$1 bin=$2 line rc=0
	shift 2
	rm -f "$OUT/query.sock"
	line=$("$bin" -s "$OUT/query.sock" -n "$ENTRIES" -c "$CLIENTS" -d "$SECONDS_EACH" \
		-w "${WORKERS:-2}" "$@" \
		2>"$OUT/$label.log") || rc=$?
	[ -n "$line" ] || die "$label: no result (exit $rc), see $OUT/$label.log"
	echo "$line" >"$OUT/$label.out"
	kv() { tr ' ' '\n' <<<"$line" | sed -n "s/^$1=//p"; }
	printf "$ROW" "$label" "$(kv rate)" "$(kv p50_ms)" "$(kv p99_ms)" "$(kv max_ms)" \
		"$(kv errors)" "$(kv stall_reconnects)" "$(kv churn_p99_us)" "$(kv churn_max_us)"
}

echo "query socket: $ENTRIES live connections filled in-process (mk_registry_add," \
	"no TLS connections), $CLIENTS client threads, ${SECONDS_EACH}s per run," \
	"churn $CHURN add+remove/s, ${WORKERS:-2} workers' shards; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$old_built" = 1 ] && echo "before: $BASELINE"
ROW='%-26s | %9s | %8s | %8s | %8s | %6s | %11s | %12s | %12s\n'
# shellcheck disable=SC2059
printf "$ROW" server lookups/s p50_ms p99_ms max_ms errors stall_recon churn_p99_us churn_max_us
run "now, stalled client" "$OUT/bench_query" -S -r "$CHURN"
run "now, no stalled client" "$OUT/bench_query" -r "$CHURN"
if [ "$old_built" = 1 ]; then
	run "before, stalled client" "$OUT/bench_query_old" -S -r "$CHURN"
	run "before, no stalled client" "$OUT/bench_query_old" -r "$CHURN"
fi
echo "stall_recon: times the server closed the stalled client (its deadline) and it connected again"
echo "churn_p99_us, churn_max_us: mk_registry_add/remove calls of the churn thread during the run"
