# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# What scripts/bench.sh and scripts/bench/hs-callgrind.sh share: building
# private copies of the binaries, a temporary directory and the processes
# started there (stopped by PID at exit), waiting for a listener. Sourced
# from the top of the tree.

# bench_build OUT BUILD [MAILKTLSD]: OUT/mailktlsd (this tree's, built in
# BUILD, or the binary MAILKTLSD), OUT/bench_backend and OUT/bench_client.
# Private copies: other builds may relink agent/mailktlsd during the run.
bench_build() {
	local prog
	mkdir -p "$1"
	if [ -n "${3:-}" ]; then
		cp "$3" "$1/mailktlsd"
	else
		make --no-print-directory BUILD="$2" agent/mailktlsd >/dev/null
		cp agent/mailktlsd "$1/mailktlsd"
	fi
	for prog in bench_backend bench_client; do
		gcc -std=gnu11 -O2 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
			-o "$1/$prog" "scripts/bench/$prog.c" -lssl -lcrypto
	done
}

# bench_tmp NAME: TMP=/tmp/NAME.XXXXXX, removed at exit after every PID in
# PIDS (append what you start) was stopped.
bench_tmp() {
	TMP=$(mktemp -d "/tmp/$1.XXXXXX")
	PIDS=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

bench_cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$TMP"
}

# wait_listen PORT [TENTHS]: bounded wait (default 10 s) until something
# listens on PORT.
wait_listen() {
	local i
	for i in $(seq "${2:-100}"); do
		ss -Hltn "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}
