# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# What the benchmark scripts share: building private copies of the
# binaries, a temporary directory and the processes started there (stopped
# by PID at exit), waiting for a listener, the CPU time of a process tree. Sourced
# from the top of the tree.

# bench_tools OUT: the load programs, OUT/bench_backend, OUT/bench_client
# and OUT/first_answer (for the host and the VM alike).
bench_tools() {
	local prog
	mkdir -p "$1"
	for prog in bench_backend bench_client first_answer; do
		gcc -std=gnu11 -O2 -pthread -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
			-o "$1/$prog" "scripts/bench/$prog.c" -lssl -lcrypto
	done
}

# Harnesses that link the agent's objects (bench_query, bench_tag): its
# headers, libraries and sources.
# shellcheck disable=SC2034 # used by the scripts that source this file
BENCH_AGENT_CFLAGS=(-std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE -O2 -g
	-Iinclude -Iagent -Iagent/core -Iagent/stage -Iagent/tls -Iagent/keyproc -Iagent/services
	-Iagent/base)
# shellcheck disable=SC2034
BENCH_AGENT_LIBS=(-luring -lssl -lcrypto -lmnl -lsystemd -lpthread)

# bench_agent_archive ARCHIVE BUILD [NAMES]: the agent's objects in BUILD
# but main.o, and those of the source files NAMES (without folder and .c),
# as one archive. Linked as an archive, a harness takes only the objects
# it needs: the workers' loop, say, is not linked, so an older registry
# need not provide what it calls.
bench_agent_archive() {
	local src name objs=()
	for src in agent/{core,stage,tls,keyproc,services,base}/*.c; do
		name=$(basename "$src" .c)
		[ "$name" = main ] && continue
		case " ${3:-} " in *" $name "*) continue ;; esac
		objs+=("$2/${src%.c}.o")
	done
	rm -f "$1"
	ar rcs "$1" "${objs[@]}" "$2"/lib/*.o
}

# bench_build OUT BUILD [MAILKTLSD]: OUT/mailktlsd (this tree's, built in
# BUILD, or the binary MAILKTLSD) and bench_tools. Private copies: other
# builds may relink agent/mailktlsd during the run.
bench_build() {
	mkdir -p "$1"
	if [ -n "${3:-}" ]; then
		cp "$3" "$1/mailktlsd"
	else
		make --no-print-directory BUILD="$2" agent/mailktlsd >/dev/null
		cp agent/mailktlsd "$1/mailktlsd"
	fi
	bench_tools "$1"
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

# The process and its children (haproxy, hitch fork workers), two levels.
proc_tree() {
	local kids grandkids
	kids=$(ps -o pid= --ppid "$1" 2>/dev/null | tr '\n' ' ' || true)
	grandkids=""
	[ -n "${kids// /}" ] && grandkids=$(ps -o pid= --ppid "${kids// /,}" 2>/dev/null |
		tr '\n' ' ' || true)
	echo "$1 $kids $grandkids"
}

cpu_ticks() {	# sum of utime+stime over the tree
	local p sum=0 v
	for p in $(proc_tree "$1"); do
		v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
