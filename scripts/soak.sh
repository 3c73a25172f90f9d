#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/soak.sh - mailktlsd under many checking clients while faults go
# on: SIGHUP, kill -9 of the key process, certificate renewals (rename over,
# symlink swap), a backend restart, bursts of garbage, half handshakes and
# silent clients. Loopback only; every loop and wait is bounded.
#
#   scripts/soak.sh                          about a minute (make check runs it)
#   DURATION=1800 CLIENTS=16 IDLE=16 FAULT_EVERY=10 scripts/soak.sh   the long one
#   RELOAD_MEMORY=1 scripts/soak.sh          what reloads cost in memory while
#                                            old connections live (two fresh
#                                            agents, about 2 minutes)
#
# Knobs (environment): DURATION (seconds of load, default 60), CLIENTS (busy
# clients, default 16), IDLE (long-lived idle sessions, default 8),
# FAULT_EVERY (seconds between faults, default 5; the faults take turns;
# 0: none, the run to compare with),
# CHUNK_MAX (largest echoed chunk, bytes, default 32768),
# SETTLE (seconds allowed after the load for descriptors and runtimes to
# come back, default 20), SEED, KEYPROC_FAILS_OK=1 (handshakes failing
# right after a key-process kill count as explained), SOAK_JSON=FILE
# (summary and the per-second samples), TAP=1 (TAP lines, for the test
# wrapper), RELOAD_MEMORY=1 with RELOADS (SIGHUPs, default 10) and CONNS
# (connections opened before each, default 50), MAILKTLSD=PATH (the binary; default: this tree's, built and
# copied, since other builds may relink agent/mailktlsd during the run).
#
# What each client does and what the summary means:
# scripts/bench/soak.py. Exit status 1 on any failure no fault explains,
# any byte or digest mismatch, a reload no fault asked for, a misbehaving
# client left open, descriptors or live runtimes not back after SETTLE.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=$(mktemp -d /tmp/mk-soak-bin.XXXXXX)
trap 'rm -rf "$BIN"' EXIT
if [ -z "${MAILKTLSD:-}" ]; then
	make --no-print-directory -j2 agent/mailktlsd >/dev/null
	MAILKTLSD=agent/mailktlsd
fi
cp "$MAILKTLSD" "$BIN/mailktlsd"

args=(--agent "$BIN/mailktlsd" --duration "${DURATION:-60}" --clients "${CLIENTS:-16}"
      --idle "${IDLE:-8}" --fault-every "${FAULT_EVERY:-5}" --settle "${SETTLE:-20}"
      --chunk-max "${CHUNK_MAX:-32768}")
[ "${RELOAD_MEMORY:-0}" = 1 ] && args+=(--reload-memory --reloads "${RELOADS:-10}"
					--conns "${CONNS:-50}")
[ -n "${SEED:-}" ] && args+=(--seed "$SEED")
[ "${KEYPROC_FAILS_OK:-0}" = 1 ] && args+=(--keyproc-fails-ok)
[ -n "${SOAK_JSON:-}" ] && args+=(--json "$SOAK_JSON")
[ "${TAP:-0}" = 1 ] && args+=(--tap)
/usr/bin/python3 scripts/bench/soak.py "${args[@]}"
