#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make run` as a newcomer meets it: started as the README says (in its
# own session, as a terminal would), it prints commands to try; every
# printed command is run exactly as printed (parsed from the output, so a
# broken one fails here), from another directory, and what it shows is
# checked: the demo mailbox over IMAPS, STARTTLS by hand, a message sent
# through 465 and read back with the RFC 8314 section 4.3 `tls` clause in
# its Received header, one through 587 and Dovecot submission, mailktlsctl
# on a live connection, the metrics. Then Ctrl-C (SIGINT to the process
# group): nothing it started may be left, its directory neither.
#
# The user-facing ports are taken free (RUN_*_PORT) so that the test runs
# beside others. A daemon answering on 127.0.0.1:143/110/587 changes
# nothing: the demo runs as printed, as the README says.
#
# Then `make run DEMO=no` (with a configuration of free ports in RUN_DIR):
# the agent alone, as before the demo, and nothing else.
#
# TAP output. Needs root (the demo's Dovecot and Postfix).

# Checks are called through check(), which shellcheck cannot see.
# shellcheck disable=SC2317
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/daemons.sh
. "$here/lib/daemons.sh"
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"

PLAN=17
START_SECONDS=${START_SECONDS:-300}	# install check, build, daemons
MAKE_PID='' DEMO_TMP=''
declare -a CMDS=() RUN_PORTS=()

cleanup() {
	# Only when a check failed half-way: the demo's own Ctrl-C handling
	# is what the checks below test.
	if [ -n "$MAKE_PID" ] && kill -0 "$MAKE_PID" 2>/dev/null; then
		kill -TERM -- "-$MAKE_PID" 2>/dev/null
		sleep 5
		kill -KILL -- "-$MAKE_PID" 2>/dev/null
	fi
	mk_cleanup_tmp
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mk_setup_tmp || { MK_TMP=/nonexistent; fatal="no temp dir"; }
OUT=$MK_TMP/make-run.out
WORK=$MK_TMP/elsewhere	# the printed commands must not depend on the cwd
mkdir -p "$WORK"

answers() {	# PORT
	timeout 2 bash -c ": </dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# start_make_run - `make run` with free ports, in a session of its own with
# SIGINT at its default (a background job of a script would ignore it).
start_make_run() {
	local vars=() p
	for p in IMAPS POP3S SUBMISSIONS IMAP POP3 SUBMISSION METRICS; do
		RUN_PORTS+=("$(free_port)")
		vars+=("RUN_${p}_PORT=${RUN_PORTS[-1]}")
	done
	make_run_bg "$OUT" "${vars[@]}"
}

# make_run_bg OUT VAR=VALUE... - make run in the background as a terminal
# would start it: a session of its own, SIGINT at its default (a
# background job of a script would ignore it). MAKE_PID, also the session.
make_run_bg() {
	local out=$1
	shift
	(cd "$MK_ROOT" && exec env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS "$MK_PY" -c '
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
os.execvp(sys.argv[1], sys.argv[1:])' make run "$@") >"$out" 2>&1 &
	MAKE_PID=$!
}

# interrupt - SIGINT to make run's process group, as Ctrl-C; until make ends.
interrupt() {
	local i
	kill -INT -- "-$MAKE_PID"
	for ((i = 0; i < 600; i++)); do
		kill -0 "$MAKE_PID" 2>/dev/null || break
		sleep 0.05
	done
	wait "$MAKE_PID"
	echo "make exited with status $?"
	! kill -0 "$MAKE_PID" 2>/dev/null
}

c_banner() {
	if ! wait_grep "$OUT" '^Ctrl-C stops' "$START_SECONDS"; then
		tail -n 40 "$OUT"
		return 1
	fi
	DEMO_TMP=$(sed -n 's/^Ctrl-C stops.* removes \(.*\)\.$/\1/p' "$OUT")
	mapfile -t CMDS < <(sed -n 's/^  \$ //p' "$OUT")
	sed -n '/^mailktls demo/,/^Ctrl-C/p' "$OUT"
	[ -d "$DEMO_TMP" ]
}

c_count() {
	echo "printed ${#CMDS[@]} commands, want 7"
	[ "${#CMDS[@]}" -eq 7 ]
}

# cmd REGEX - the one printed command matching REGEX (ERE).
cmd() {
	local c found=
	for c in "${CMDS[@]}"; do
		if grep -qE -- "$1" <<<"$c"; then
			[ -n "$found" ] && { echo "two printed commands match $1" >&2; return 1; }
			found=$c
		fi
	done
	[ -n "$found" ] || { echo "no printed command matches $1" >&2; return 1; }
	printf '%s\n' "$found"
}

# run_printed REGEX NAME [STDIN-FILE] - that command, as printed, with bash
# in another directory; output in $MK_TMP/NAME.out. Return: its status.
run_printed() {
	local c rc
	c=$(cmd "$1") || return 1
	echo "\$ $c"
	(cd "$WORK" && timeout 60 bash -c "$c" <"${3:-/dev/null}") >"$MK_TMP/$2.out" 2>&1
	rc=$?
	cat "$MK_TMP/$2.out"
	return "$rc"
}

c_list() {
	run_printed '^curl .*imaps://.*FETCH 1:\*' list || return 1
	[ "$(grep -c '^\* [0-9]* FETCH' "$MK_TMP/list.out")" -eq 3 ] &&
		grep -q '"Welcome to the mailktls demo"' "$MK_TMP/list.out"
}

# c_starttls - s_client with what the comment above it says to type.
c_starttls() {
	local typed
	typed=$(grep -B1 -E '^  \$ openssl s_client .*-starttls imap' "$OUT" |
		sed -n 's/^  # .*then type: //p')
	echo "typed: $typed"
	[ -n "$typed" ] || return 1
	printf '%s\n' "${typed//, /$'\n'}" >"$MK_TMP/typed"
	run_printed '^openssl s_client .*-starttls imap' starttls "$MK_TMP/typed" || return 1
	# OpenSSL 3.5 (Debian 13) offers and prefers the hybrid post-quantum
	# group; the agent's default keeps it.
	if openssl version | grep -qE '^OpenSSL 3\.([5-9]|[1-9][0-9])'; then
		grep -q 'X25519MLKEM768' "$MK_TMP/starttls.out" || return 1
	fi
	grep -q 'Protocol version: TLSv1\.[23]' "$MK_TMP/starttls.out" &&
		grep -q '^a OK .*Logged in' "$MK_TMP/starttls.out" &&
		grep -q '^\* 3 EXISTS' "$MK_TMP/starttls.out" &&
		grep -q '^a OK Logout completed' "$MK_TMP/starttls.out"
}

c_swaks465() {
	run_printed '^swaks .*--tls-on-connect' swaks465 &&
		grep -q 'TLS started with cipher' "$MK_TMP/swaks465.out" &&
		grep -qE '<~ +250 2\.0\.0 Ok: queued' "$MK_TMP/swaks465.out"
}

# c_read_back INDEX PROTO - the printed read-back command (for another
# message index when INDEX differs), until delivery, shows the milter's
# Received header with the tls clause below Postfix's.
c_read_back() {
	local c i
	c=$(cmd 'MAILINDEX=4') || return 1
	c=${c/MAILINDEX=4/MAILINDEX=$1}
	echo "\$ $c"
	for ((i = 0; i < 30; i++)); do
		(cd "$WORK" && timeout 30 bash -c "$c") >"$MK_TMP/read$1.out" 2>&1 &&
			grep -q '(mailktls)' "$MK_TMP/read$1.out" && break
		sleep 0.5
	done
	cat "$MK_TMP/read$1.out"
	grep -qE "^[[:space:]]+by mail\.example\.test \(Postfix\) with ESMTPA? id " \
		"$MK_TMP/read$1.out" &&
		grep -qE "^[[:space:]]+by mail\.example\.test \(mailktls\) with $2 tls TLS_[A-Z0-9_]+;" \
			"$MK_TMP/read$1.out"
}

c_swaks587() {
	run_printed '^swaks .*--tls --auth' swaks587 &&
		grep -qE '<~ +250 2\.0\.0 Ok: .*queued' "$MK_TMP/swaks587.out"
}

c_ctl() {
	run_printed 'mailktlsctl .* query --addr' ctl &&
		grep -q '^listener=imaps$' "$MK_TMP/ctl.out" &&
		grep -qE '^cipher=TLS_[A-Z0-9_]+$' "$MK_TMP/ctl.out"
}

c_metrics() {
	run_printed '^curl .*/metrics' metrics &&
		grep -qE '^mailktls_tls_sessions_total\{listener="imaps",version="TLSv1\.[23]",cipher="TLS_[A-Z0-9_]+"\} [1-9]' \
			"$MK_TMP/metrics.out" &&
		grep -qE '^mailktls_handshakes_total\{listener="submissions"\} [1-9]' "$MK_TMP/metrics.out"
}

# snapshot - every process make run started: its session, and the Postfix
# master (which makes a session of its own) with its children; as
# "PID STARTTIME" so that a reused PID does not count.
snapshot() {
	local pm p st rest f
	pm=$(tr -dc 0-9 <"$DEMO_TMP/postfix/queue/pid/master.pid" 2>/dev/null)
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		read -r st 2>/dev/null <"/proc/$p/stat" || continue
		# after "(comm) ": state [0], ppid [1], session [3], starttime [19]
		rest=${st##*) }
		read -r -a f <<<"$rest"
		if [ "${f[3]}" = "$MAKE_PID" ] || [ "$p" = "$pm" ] || [ "${f[1]}" = "$pm" ]; then
			echo "$p ${f[19]} $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
		fi
	done
}

c_stop() {
	snapshot >"$MK_TMP/procs"
	echo "processes of make run: $(wc -l <"$MK_TMP/procs")"
	cat "$MK_TMP/procs"
	grep -q 'dovecot' "$MK_TMP/procs" && grep -q 'mailktls-milter' "$MK_TMP/procs" &&
		grep -q 'mailktlsd' "$MK_TMP/procs" && grep -q ' qmgr ' "$MK_TMP/procs" || return 1
	interrupt || return 1
	tail -n 8 "$OUT"
	grep -q '^stopping: mailktlsd' "$OUT"
}

c_nothing_left() {
	local pid start cmdline left=0 st rest f
	while read -r pid start cmdline; do
		read -r st 2>/dev/null <"/proc/$pid/stat" || continue
		rest=${st##*) }
		read -r -a f <<<"$rest"
		[ "${f[19]}" = "$start" ] || continue
		echo "still running: $pid $cmdline"
		left=1
	done <"$MK_TMP/procs"
	[ "$left" -eq 0 ]
}

c_dir_gone() {
	echo "demo directory: $DEMO_TMP"
	[ -n "$DEMO_TMP" ] && [ ! -e "$DEMO_TMP" ]
}

c_ports_closed() {
	local p open=0
	for p in "${RUN_PORTS[@]}"; do
		answers "$p" && { echo "127.0.0.1:$p still answers"; open=1; }
	done
	echo "ports ${RUN_PORTS[*]}: closed"
	[ "$open" -eq 0 ] && [ "${#RUN_PORTS[@]}" -eq 7 ]
}

# c_alone - make run DEMO=no with RUN_DIR holding a configuration on free
# ports: the agent starts on it, alone.
c_alone() {
	local dir=$MK_TMP/alone p1 p2
	mkdir -p "$dir"
	p1=$(free_port)
	p2=$(free_port)
	ALONE_PORT=$p1
	printf '[global]\nworkers = 1\nlog = stderr\nquery_socket = %s\n\n[listener imaps]\nlisten = 127.0.0.1:%s\nprotocol = imap\ntls = implicit\nbackend = 127.0.0.1:%s\nproxy_protocol = none\ncertificate = %s\nprivate_key = %s\n' \
		"$dir/query.sock" "$p1" "$p2" "$dir/rsa.crt" "$dir/rsa.key" >"$dir/mailktlsd.conf"
	make_run_bg "$MK_TMP/alone.out" DEMO=no "RUN_DIR=$dir"
	wait_grep "$MK_TMP/alone.out" '^mailktlsd: started' 120
	cat "$MK_TMP/alone.out"
	grep -q "^mailktlsd: config $dir/mailktlsd.conf" "$MK_TMP/alone.out" &&
		answers "$p1" && ! grep -q '^mailktls demo' "$MK_TMP/alone.out"
}

# c_alone_only - in make run's session: make, the agent (and its key
# process), nothing of the demo.
c_alone_only() {
	local p st rest f n=0 bad=0
	for p in /proc/[0-9]*; do
		read -r st 2>/dev/null <"$p/stat" || continue
		rest=${st##*) }
		read -r -a f <<<"$rest"
		[ "${f[3]}" = "$MAKE_PID" ] || continue
		n=$((n + 1))
		echo "${p#/proc/} $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"
		grep -qaE 'dovecot|postfix|milter' "$p/cmdline" 2>/dev/null && bad=1
	done
	[ "$n" -gt 0 ] && [ "$bad" -eq 0 ]
}

c_alone_stop() {
	interrupt || return 1
	tail -n 3 "$MK_TMP/alone.out"
	! answers "$ALONE_PORT" && grep -q '^mailktlsd: stopped' "$MK_TMP/alone.out"
}

echo "1..$PLAN"
if [ -z "$fatal" ]; then
	[ "$(id -u)" = 0 ] || fatal="needs root (the demo's Dovecot and Postfix)"
fi
[ -z "$fatal" ] && start_make_run
check "make run prints the demo and what to try" c_banner
[ -z "$fatal" ] && [ -z "$DEMO_TMP" ] && fatal="make run did not print its demo"
check "it prints the seven commands of the quick start" c_count
check "curl imaps lists the demo mailbox: three messages" c_list
check "openssl s_client -starttls imap: TLS (X25519MLKEM768 with OpenSSL 3.5), then LOGIN, SELECT, LOGOUT as typed" c_starttls
check "swaks through 465: accepted" c_swaks465
check "read back over IMAPS: Received with ESMTPS tls TLS_... below Postfix's" \
	c_read_back 4 ESMTPS
check "swaks through 587 (STARTTLS, AUTH) to Dovecot submission: accepted" c_swaks587
check "that message read back: Received with ESMTPSA tls TLS_..." c_read_back 5 ESMTPSA
check "mailktlsctl query on a live IMAPS connection: its cipher and listener" c_ctl
check "the metrics endpoint counts the sessions" c_metrics
check "SIGINT to make run's process group: it stops" c_stop
check "no process it started is left (agent, milters, Dovecot, Postfix)" c_nothing_left
check "its directory is removed" c_dir_gone
check "its ports no longer answer" c_ports_closed
check "make run DEMO=no: the agent alone on RUN_DIR's configuration" c_alone
check "...and no Dovecot, Postfix or milter" c_alone_only
check "...Ctrl-C stops it" c_alone_stop
MAKE_PID=''

check_done "$PLAN" "$OUT" "make run"
