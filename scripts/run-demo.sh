#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make run` on a machine without a mail server: mailktlsd in front of a
# private Dovecot (IMAP, POP3, submission) and Postfix with mailktls-milter,
# started by the same functions the integration tests use
# (tests/integration/lib/daemons.sh and milter.sh, the README's recipes:
# PROXY v2 from the agent, the milter for the Received `tls` clause). Then
# it prints commands to try and waits; Ctrl-C or SIGTERM stops everything
# it started, by PID, and removes its directory in /tmp.
#
# Needs root (the daemons drop privileges to their own users). Ports the
# user talks to, all on 127.0.0.1 (the daemons behind take free ports):
#   RUN_IMAPS_PORT=10993 RUN_POP3S_PORT=10995 RUN_SUBMISSIONS_PORT=10465
#   RUN_IMAP_PORT=10143 RUN_POP3_PORT=10110 RUN_SUBMISSION_PORT=10587
#   RUN_METRICS_PORT=9155
# MK_KEEP_TMP=1 keeps the directory (configs, logs, mail) after the stop.

# Functions called through traps and hooks, which shellcheck cannot see.
# shellcheck disable=SC2317
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
lib=$root/tests/integration/lib
export MK_ROOT=$root
# shellcheck source=tests/integration/lib/daemons.sh
. "$lib/daemons.sh"
# shellcheck source=tests/integration/lib/fronts.sh
. "$lib/fronts.sh"
# shellcheck source=tests/integration/lib/milter.sh
. "$lib/milter.sh"

RUN_IMAPS_PORT=${RUN_IMAPS_PORT:-10993}
RUN_POP3S_PORT=${RUN_POP3S_PORT:-10995}
RUN_SUBMISSIONS_PORT=${RUN_SUBMISSIONS_PORT:-10465}
RUN_IMAP_PORT=${RUN_IMAP_PORT:-10143}
RUN_POP3_PORT=${RUN_POP3_PORT:-10110}
RUN_SUBMISSION_PORT=${RUN_SUBMISSION_PORT:-10587}
RUN_METRICS_PORT=${RUN_METRICS_PORT:-9155}
MK_USER=demo
MK_PASS=demo
MK_RCPT=demo@example.test
MK_TMP_NAME=mk-run
CTL=$root/agent/mailktlsctl
AGENT_LOG=

AGENT_PID='' TAIL_PID=''
stop_all() {
	trap '' INT TERM
	echo "stopping: mailktlsd, Postfix, the milters, Dovecot"
	stop_pid "$AGENT_PID" mailktlsd
	follow_end
	with_children "${POSTFIX_PID:-}" stop_postfix
	stop_milter
	stop_relay_milter
	with_children "${DOVECOT_PID:-}" stop_dovecot
	mk_cleanup_tmp
	[ "${MK_KEEP_TMP:-0}" = 1 ] || echo "removed ${MK_TMP:-the demo directory}"
}

# children PID - the processes whose parent is PID.
children() {
	local file st f
	for file in /proc/[0-9]*/stat; do
		read -r st 2>/dev/null <"$file" || continue
		read -r -a f <<<"${st##*) }"
		[ "${f[1]}" = "$1" ] && echo "${st%% *}"
	done
}

# with_children PID STOP - STOP the master PID, then wait for the children
# it had (their master does not wait for them all), 5 s, then SIGKILL.
with_children() {
	local kids k i
	[ -n "$1" ] || return 0
	kids=$(children "$1")
	"$2"
	for k in $kids; do
		for ((i = 0; i < 50; i++)); do
			kill -0 "$k" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null
	done
	return 0
}

die() {
	echo "make run: $*" >&2
	exit 1
}

# demo_message MAILDIR FILE DATE SUBJECT BODY...
demo_message() {
	local dir=$1 file=$2 date=$3 subject=$4
	shift 4
	printf '%s\r\n' "From: mailktls <postmaster@example.test>" "To: $MK_USER@example.test" \
		"Subject: $subject" "Date: $date" "Message-ID: <$file@example.test>" \
		"" "$@" >"$dir/$file"
}

# demo_seed MAILDIR - the demo user's mailbox: two read messages, one new.
demo_seed() {
	demo_message "$1/cur" "1764900000.M1P1.demo:2,S" "Sat, 05 Dec 2026 09:00:00 +0000" \
		"Welcome to the mailktls demo" \
		"You are reading this through mailktlsd: it did the TLS handshake," \
		"handed the keys to the kernel (or kept them in user space when the" \
		"kernel has no kTLS) and relays plain IMAP to Dovecot with a PROXY v2" \
		"header, so Dovecot sees your address and knows the session is secure."
	demo_message "$1/cur" "1764900060.M2P1.demo:2,S" "Sat, 05 Dec 2026 09:01:00 +0000" \
		"Cleartext considered obsolete (RFC 8314)" \
		"Implicit TLS on 993, 995 and 465 is the preferred way; STARTTLS on 143," \
		"110 and 587 still works, and logins before TLS are refused."
	demo_message "$1/new" "1764900120.M3P1.demo" "Sat, 05 Dec 2026 09:02:00 +0000" \
		"Send yourself a message" \
		"Mail sent through mailktlsd on the submissions port reaches Postfix;" \
		"mailktls-milter adds a Received header with the cipher your client" \
		"negotiated (RFC 8314 section 4.3)."
}

# demo_postfix_setup ETC - the milter recipe (milter.sh), and mail for the
# demo user delivered into Dovecot's Maildir, so IMAP shows what was sent.
demo_postfix_setup() {
	milter_postfix_setup "$1" || return 1
	printf '%s %s/\n' "$MK_RCPT" "${DOVECOT_MAILDIR#"$MK_TMP"/}" >"$1/vmailbox"
	postconf -c "$1" -e "virtual_mailbox_base = $MK_TMP"
}

demo_listener() {	# NAME PORT PROTOCOL TLS BACKEND_PORT
	printf '\n[listener %s]\nlisten = 127.0.0.1:%s\nprotocol = %s\ntls = %s\nbackend = 127.0.0.1:%s\n' "$@"
}

# demo_agent_conf - the README's production setup (PROXY v2 to the daemons)
# on loopback: STARTTLS submission goes to Dovecot's submission service,
# which relays to Postfix.
demo_agent_conf() {
	cat <<EOF
# Written by scripts/run-demo.sh (make run) for this run only.
[global]
workers = auto
log = stderr
query_socket = $MK_TMP/query.sock
ktls = auto
metrics_listen = 127.0.0.1:$RUN_METRICS_PORT

[defaults]
proxy_protocol = v2
proxy_header_max = 536
certificate = $CERTS/rsa.crt
private_key = $CERTS/rsa.key
certificate = $CERTS/ecdsa.crt
private_key = $CERTS/ecdsa.key
hostname = mail.example.test
EOF
	demo_listener imaps "$RUN_IMAPS_PORT" imap implicit "$DOVECOT_IMAP_PORT"
	demo_listener pop3s "$RUN_POP3S_PORT" pop3 implicit "$DOVECOT_POP3_PORT"
	demo_listener submissions "$RUN_SUBMISSIONS_PORT" submission implicit "$POSTFIX_SUBMIT_PORT"
	demo_listener imap "$RUN_IMAP_PORT" imap starttls "$DOVECOT_IMAP_PORT"
	demo_listener pop3 "$RUN_POP3_PORT" pop3 starttls "$DOVECOT_POP3_PORT"
	demo_listener submission "$RUN_SUBMISSION_PORT" submission starttls "$DOVECOT_SUBMIT_PORT"
}

start_demo() {
	local p
	mk_setup_tmp || die "cannot make a directory in /tmp"
	CERTS=$MK_TMP/certs
	mk_gen_certs "$CERTS" || die "openssl could not make certificates"
	milter_ports
	milter_dovecot_submission
	DOVECOT_SEED=demo_seed start_dovecot || die "Dovecot did not start"
	start_milter "$MK_TMP/query.sock" || die "mailktls-milter did not start"
	start_relay_milter || die "the relay's mailktls-milter did not start"
	POSTFIX_SETUP=demo_postfix_setup start_postfix || die "Postfix did not start"
	AGENT_CONF=$MK_TMP/mailktlsd.conf
	demo_agent_conf >"$AGENT_CONF"
	"$MAILKTLSD" -c "$AGENT_CONF" -t || die "$AGENT_CONF does not load"
	AGENT_LOG=$MK_TMP/mailktlsd.log
	: >"$AGENT_LOG"
	"$MAILKTLSD" -c "$AGENT_CONF" >>"$AGENT_LOG" 2>&1 &
	AGENT_PID=$!
	# It says "started" once every listener is bound.
	if ! wait_grep "$AGENT_LOG" '^mailktlsd: started' 10 || ! kill -0 "$AGENT_PID" 2>/dev/null; then
		cat "$AGENT_LOG" >&2
		die "mailktlsd did not start"
	fi
}

# follow_agent_log - its lines so far, then the new ones as they come.
follow_agent_log() {
	local seen
	seen=$(stat -c %s "$AGENT_LOG")
	head -c "$seen" "$AGENT_LOG"
	print_banner
	tail -c "+$((seen + 1))" -s 0.2 -f --pid="$AGENT_PID" "$AGENT_LOG" &
	TAIL_PID=$!
}

# follow_end - the agent has stopped: tail prints its last lines and ends.
follow_end() {
	local i
	for ((i = 0; i < 20; i++)); do
		kill -0 "$TAIL_PID" 2>/dev/null || break
		sleep 0.1
	done
	stop_pid "$TAIL_PID" tail
}

# The lines starting with "  $ " are commands that work as printed
# (tests/integration/make_run_test.sh runs each of them).
print_banner() {
	local q=$MK_TMP/query.sock live
	live=$(free_port)
	cat <<EOF

mailktls demo: mailktlsd in front of a private Dovecot $(dovecot --version | cut -d' ' -f1) and Postfix $(postconf -h mail_version)
  listener     listens on        -> daemon (PROXY v2)
  imaps        127.0.0.1:$RUN_IMAPS_PORT   -> Dovecot IMAP        127.0.0.1:$DOVECOT_IMAP_PORT
  pop3s        127.0.0.1:$RUN_POP3S_PORT   -> Dovecot POP3        127.0.0.1:$DOVECOT_POP3_PORT
  submissions  127.0.0.1:$RUN_SUBMISSIONS_PORT   -> Postfix smtpd       127.0.0.1:$POSTFIX_SUBMIT_PORT
  imap         127.0.0.1:$RUN_IMAP_PORT   -> Dovecot IMAP        (STARTTLS)
  pop3         127.0.0.1:$RUN_POP3_PORT   -> Dovecot POP3        (STARTTLS)
  submission   127.0.0.1:$RUN_SUBMISSION_PORT   -> Dovecot submission  127.0.0.1:$DOVECOT_SUBMIT_PORT (relays to Postfix)
  metrics      http://127.0.0.1:$RUN_METRICS_PORT/metrics
  mailbox      user $MK_USER, password $MK_PASS, address $MK_RCPT (3 messages)
  Postfix calls mailktls-milter, which adds the Received header with the tls clause.

Try, in another terminal:
  # the mailbox over Implicit TLS (IMAPS): flags, date, subject, senders of each message
  \$ curl -k --user $MK_USER:$MK_PASS imaps://127.0.0.1:$RUN_IMAPS_PORT/INBOX -X 'FETCH 1:* (FLAGS ENVELOPE)'
  # STARTTLS by hand; then type: a LOGIN $MK_USER $MK_PASS, a SELECT INBOX, a LOGOUT
  \$ openssl s_client -brief -starttls imap -connect 127.0.0.1:$RUN_IMAP_PORT -crlf -ign_eof
  # send a message through Implicit TLS submission (465, Postfix):
  \$ swaks --server 127.0.0.1:$RUN_SUBMISSIONS_PORT --tls-on-connect --from you@example.test --to $MK_RCPT --header 'Subject: hello through mailktls'
  # read it back (message 4): the milter's Received header has the tls clause of RFC 8314 section 4.3
  \$ curl -k --user $MK_USER:$MK_PASS 'imaps://127.0.0.1:$RUN_IMAPS_PORT/INBOX;MAILINDEX=4'
  # or through STARTTLS submission (587) to Dovecot, which relays to Postfix (message 5):
  \$ swaks --server 127.0.0.1:$RUN_SUBMISSION_PORT --tls --auth-user $MK_USER --auth-password $MK_PASS --from $MK_RCPT --to $MK_RCPT
  # ask the agent about a live connection (held open 3 s from port $live):
  \$ (sleep 3 | openssl s_client -connect 127.0.0.1:$RUN_IMAPS_PORT -bind 127.0.0.1:$live >/dev/null 2>&1 &); sleep 1; $CTL -s $q query --addr 127.0.0.1:$live
  # the metrics endpoint:
  \$ curl -s http://127.0.0.1:$RUN_METRICS_PORT/metrics | grep -E '^mailktls_(handshakes|tls_sessions)_total'

Logs: Dovecot $DOVECOT_LOG, Postfix $POSTFIX_LOG,
  milters $MILTER_LOG $MILTER_RELAY_LOG; mailktlsd's ($AGENT_LOG) follows.
Ctrl-C stops mailktlsd, Postfix, the milters and Dovecot and removes $MK_TMP.

EOF
}

[ "$(id -u)" = 0 ] || die "the demo needs root (Dovecot and Postfix drop privileges); DEMO=no runs the agent alone"
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
start_demo
follow_agent_log
wait "$AGENT_PID"
rc=$?
echo "mailktlsd ended (status $rc)"
exit "$rc"
