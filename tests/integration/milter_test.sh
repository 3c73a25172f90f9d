#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# mailktls-milter with real Postfix: clients (swaks, curl, Python smtplib)
# from 127.0.0.2 -> agent/mailktlsd (Implicit TLS and STARTTLS submission)
# -> PROXY v2 -> Postfix smtpd -> agent/mailktls-milter, which asks the
# agent's query socket and inserts a Received header with the RFC 8314
# section 4.3 clause right below Postfix's own. Also Dovecot submission
# behind mailktlsd relaying to Postfix with XCLIENT, mail straight to
# Postfix, and an agent that is gone or silent (fail open).
#
# TAP output. A missing daemon, agent or milter makes the checks FAIL.
#
#   MK_KEEP_TMP=1  keep the temp dir (configs, logs, mail) for a look

# Checks are called through check(), which shellcheck cannot see.
# shellcheck disable=SC2317
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/daemons.sh
. "$here/lib/daemons.sh"
# shellcheck source=lib/fronts.sh
. "$here/lib/fronts.sh"
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"
# shellcheck source=lib/milter.sh
. "$here/lib/milter.sh"

PLAN=32
MC=("$MK_PY" "$here/lib/milter_clients.py")
SRC=127.0.0.2
SNI=mail.example.test
TOK=mk$$

cleanup() {
	stop_front
	stop_milter
	stop_relay_milter
	stop_postfix
	stop_dovecot
	[ -n "${SILENT_PID:-}" ] && stop_pid "$SILENT_PID" silent-socket
	mk_cleanup_tmp
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- test bed ----------------------------------------------------------------

mk_setup_tmp || { MK_TMP=/nonexistent; fatal="no temp dir"; }
CERTS=$MK_TMP/certs
if [ -z "$fatal" ]; then
	mk_gen_certs "$CERTS" && cat "$CERTS/rsa.crt" "$CERTS/ecdsa.crt" >"$CERTS/ca.pem" ||
		fatal="openssl could not make test certificates"
fi
if [ -z "$fatal" ]; then
	milter_ports
	milter_dovecot_submission
	start_dovecot || fatal="dovecot did not start"
fi
[ -z "$fatal" ] && { start_milter || fatal="mailktls-milter did not start"; }
[ -z "$fatal" ] && { start_relay_milter || fatal="the relay's mailktls-milter did not start"; }
[ -z "$fatal" ] && { POSTFIX_SETUP=milter_postfix_setup start_postfix ||
	fatal="postfix did not start"; }
[ -z "$fatal" ] && { start_milter_agent "$CERTS" || fatal="mailktlsd did not start"; }

# --- helpers used by the checks ---------------------------------------------

write_msg() {	# FILE TOKEN
	printf '%s\r\n' "From: <sender@example.test>" "To: <$MK_RCPT>" \
		"Subject: milter $2" "Message-ID: <$2@example.test>" "" "Body $2." >"$1"
}

# c_swaks NAME PORT TLS-OPTION [swaks options...] - submission accepted;
# the cipher swaks negotiated goes to $MK_TMP/NAME.cipher.
c_swaks() {
	local name=$1 port=$2 tls=$3
	shift 3
	write_msg "$MK_TMP/$name.eml" "$TOK-$name"
	timeout 30 swaks --server 127.0.0.1 --port "$port" "$tls" --tls-sni "$SNI" \
		--local-interface "$SRC" --helo "$name.example.test" \
		--from sender@example.test --to "$MK_RCPT" --data "@$MK_TMP/$name.eml" \
		--timeout 10 "$@" >"$MK_TMP/$name.out" 2>&1
	local rc=$?
	tail -n 12 "$MK_TMP/$name.out"
	sed -n 's/.*TLS started with cipher [^:]*:\([A-Za-z0-9_-]*\):.*/\1/p' \
		"$MK_TMP/$name.out" >"$MK_TMP/$name.cipher"
	[ "$rc" -eq 0 ] && grep -qE '<[~-]  250 2.0.0 Ok: queued' "$MK_TMP/$name.out"
}

# c_curl NAME SCHEME PORT [curl TLS options...] - submission accepted;
# cipher as above (IANA name). The URL path is curl's EHLO name.
c_curl() {
	local name=$1 scheme=$2 port=$3 c
	shift 3
	write_msg "$MK_TMP/$name.eml" "$TOK-$name"
	timeout 30 curl -sS -v --max-time 10 --interface "$SRC" \
		--resolve "$SNI:$port:127.0.0.1" --cacert "$CERTS/ca.pem" \
		--mail-from sender@example.test --mail-rcpt "$MK_RCPT" \
		-T "$MK_TMP/$name.eml" "$@" "$scheme://$SNI:$port/$name.example.test" \
		>"$MK_TMP/$name.out" 2>&1
	local rc=$?
	tail -n 6 "$MK_TMP/$name.out"
	c=$(sed -n 's/.*SSL connection using [^ ]* \/ \([A-Za-z0-9_-]*\).*/\1/p' "$MK_TMP/$name.out")
	[ -n "$c" ] && "${MC[@]}" iana "$c" >"$MK_TMP/$name.cipher"
	[ "$rc" -eq 0 ] && grep -q '< 250 2.0.0 Ok: queued' "$MK_TMP/$name.out"
}

# c_header NAME WANT_CIPHER PROTO - delivered with the milter's header right
# below Postfix's, the cipher the client negotiated (and the one wanted).
c_header() {
	local got
	got=$(cat "$MK_TMP/$1.cipher" 2>/dev/null)
	echo "client negotiated: ${got:-nothing}"
	[ "$got" = "$2" ] || return 1
	"${MC[@]}" check --maildir "$POSTFIX_MAILDIR" --token "$TOK-$1" --cipher "$2" \
		--proto "$3" --helo "$1.example.test" --addr "$SRC"
}

# c_py NAME CLIENT-SPEC... - python smtplib clients held open together.
c_py() {
	local name=$1
	shift
	local args=() spec
	for spec in "$@"; do
		args+=(--client "$spec")
	done
	"${MC[@]}" send --cafile "$CERTS/ca.pem" --user "$MK_USER" --password "$MK_PASS" \
		--rcpt "$MK_RCPT" --src "$SRC" "${args[@]}" | tee "$MK_TMP/$name.py.out"
	[ "${PIPESTATUS[0]}" -eq 0 ]
}

py_field() {	# NAME TOKEN FIELD
	sed -n "s/^token=$2 .*$3=\([^ ]*\).*/\1/p" "$MK_TMP/$1.py.out"
}

# c_py_header NAME TOKEN WANT_CIPHER PROTO HELO [TOKEN-SUFFIX [check options]]
c_py_header() {
	local got
	got=$(py_field "$1" "$2" cipher)
	echo "client negotiated: ${got:-nothing}"
	[ "$got" = "$3" ] || return 1
	"${MC[@]}" check --maildir "$POSTFIX_MAILDIR" --token "$2${6:-}" --cipher "$3" \
		--proto "$4" --helo "$5" --addr "$SRC" "${@:7}"
}

# c_log_lines REGEX N [LOG] - the milter logged exactly N lines matching REGEX.
c_log_lines() {
	local n log=${3:-$MILTER_LOG}
	wait_grep "$log" "$1" 5
	n=$(grep -cE -- "$1" "$log")
	echo "milter log lines matching '$1': $n (want $2)"
	grep -E -- "$1" "$log"
	[ "$n" -eq "$2" ]
}

restart_milter() {	# QUERY_SOCKET TIMEOUT_MS
	stop_milter
	start_milter "$@"
}

# silent_socket PATH - a unix socket that accepts (backlog) but never answers.
silent_socket() {
	"$MK_PY" -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(16)
time.sleep(120)' "$1" &
	SILENT_PID=$!
	wait_socket "$1"
}

# c_py_within NAME TOKEN SECONDS - that client's whole session took less.
c_py_within() {
	local s
	s=$(py_field "$1" "$2" seconds)
	echo "session took ${s:-?} s, bound $3 s"
	[ -n "$s" ] && "$MK_PY" -c "import sys; sys.exit(0 if $s < $3 else 1)"
}

c_multi_headers() {	# the three messages of one connection
	local i
	for i in "" -1 -2; do
		c_py_header multi "$TOK-m" TLS_AES_256_GCM_SHA384 ESMTPSA client.example.test "$i" ||
			return 1
	done
}

c_dovecot_relayed() {	# Postfix's relay smtpd saw the client after XCLIENT
	grep -E "mk-it-postfix/relay/smtpd.*client=" "$POSTFIX_LOG" | tail -n 3
	wait_grep "$POSTFIX_LOG" "mk-it-postfix/relay/smtpd.*client=[^,]*\[$SRC\]"
}

c_dovecot_header() {
	c_py_header dove "$TOK-dove" TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 ESMTPSA \
		mail.example.test "" --dovecot
}

# c_fail_open NAME TOKEN REASON - delivered without a clause; one log line.
c_fail_open() {
	"${MC[@]}" check --maildir "$POSTFIX_MAILDIR" --token "$2" --no-clause &&
		c_log_lines "notls client=$SRC:$(py_field "$1" "$2" port) reason=$3" 1
}

c_silent_milter() {
	silent_socket "$MK_TMP/silent.sock" && restart_milter "$MK_TMP/silent.sock" 300
}

c_milter_down() {
	stop_milter
	c_py down "mode=implicit,port=$FRONT_SUBMISSIONS_PORT,token=$TOK-down"
}

# --- checks -----------------------------------------------------------------

echo "1..$PLAN"

# Implicit TLS (465), authenticated: ESMTPSA.
check "swaks --tls-on-connect AUTH through mailktlsd: accepted" \
	c_swaks swaks465 "$FRONT_SUBMISSIONS_PORT" --tls-on-connect \
	--auth PLAIN --auth-user "$MK_USER" --auth-password "$MK_PASS"
check "swaks 465: milter's Received below Postfix's, ESMTPSA tls TLS_AES_256_GCM_SHA384" \
	c_header swaks465 TLS_AES_256_GCM_SHA384 ESMTPSA
check "curl smtps TLS 1.3 ChaCha20 AUTH through mailktlsd: accepted" \
	c_curl curl465 smtps "$FRONT_SUBMISSIONS_PORT" -u "$MK_USER:$MK_PASS" \
	--tlsv1.3 --tls13-ciphers TLS_CHACHA20_POLY1305_SHA256
check "curl 465: tls TLS_CHACHA20_POLY1305_SHA256 in the milter's header" \
	c_header curl465 TLS_CHACHA20_POLY1305_SHA256 ESMTPSA

# STARTTLS (587), not authenticated (127.0.0.2 is in mynetworks): ESMTPS.
check "swaks STARTTLS through mailktlsd: accepted" \
	c_swaks swaks587 "$FRONT_SUBMISSION_PORT" --tls
check "swaks 587: ESMTPS tls TLS_AES_256_GCM_SHA384 below Postfix's header" \
	c_header swaks587 TLS_AES_256_GCM_SHA384 ESMTPS
check "curl smtp --ssl-reqd TLS 1.2 ECDHE-RSA-AES128-GCM through mailktlsd: accepted" \
	c_curl curl587 smtp "$FRONT_SUBMISSION_PORT" --ssl-reqd \
	--tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256
check "curl 587: tls TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" \
	c_header curl587 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 ESMTPS

# Three connections open at once, three ciphers, interleaved commands.
check "smtplib: three clients at once with three ciphers: all accepted" \
	c_py trio \
	"mode=implicit,port=$FRONT_SUBMISSIONS_PORT,token=$TOK-a,auth=1,helo=a.example.test" \
	"mode=implicit,port=$FRONT_SUBMISSIONS_PORT,token=$TOK-b,tls12=ECDHE-ECDSA-AES128-GCM-SHA256,helo=b.example.test" \
	"mode=starttls,port=$FRONT_SUBMISSION_PORT,token=$TOK-c,tls12=ECDHE-RSA-CHACHA20-POLY1305,helo=c.example.test"
check "smtplib a (TLS 1.3, AUTH): its own cipher in its own message" \
	c_py_header trio "$TOK-a" TLS_AES_256_GCM_SHA384 ESMTPSA a.example.test
check "smtplib b (TLS 1.2 ECDSA AES128-GCM): its own cipher in its own message" \
	c_py_header trio "$TOK-b" TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 ESMTPS b.example.test
check "smtplib c (STARTTLS TLS 1.2 RSA ChaCha20): its own cipher in its own message" \
	c_py_header trio "$TOK-c" TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 ESMTPS c.example.test

# Several messages on one connection: one query, a header on each.
check "smtplib: three messages on one connection accepted" \
	c_py multi "mode=implicit,port=$FRONT_SUBMISSIONS_PORT,token=$TOK-m,messages=3,auth=1"
check "each of the three messages has the milter's header" c_multi_headers
check "the milter asked once for that connection" \
	c_log_lines "found client=$SRC:$(py_field multi "$TOK-m" port) " 1

# A HELO that is no domain never reaches the header as such.
check "smtplib with HELO 'bad(name' accepted" \
	c_py badhelo "mode=implicit,port=$FRONT_SUBMISSIONS_PORT,token=$TOK-h,helo=bad(name"
check "the header's from is the address literal, grammar intact" \
	"${MC[@]}" check --maildir "$POSTFIX_MAILDIR" --token "$TOK-h" \
	--cipher TLS_AES_256_GCM_SHA384 --proto ESMTPS --helo "[$SRC]" --addr "$SRC"

# Straight to Postfix, no agent: no clause, one log line.
check "smtplib straight to Postfix (no TLS, no agent): accepted" \
	c_py direct "mode=plain,port=$POSTFIX_RELAY_PORT,token=$TOK-direct,helo=direct.example.test"
check "mail straight to Postfix has no tls clause" \
	"${MC[@]}" check --maildir "$POSTFIX_MAILDIR" --token "$TOK-direct" --no-clause
check "the milter logged one line for that connection, and no more" \
	c_log_lines "client=$SRC:$(py_field direct "$TOK-direct" port) " 1 "$MILTER_RELAY_LOG"

# Dovecot submission behind mailktlsd, relaying with XCLIENT.
check "smtplib to Dovecot submission through mailktlsd, AUTH: accepted" \
	c_py dove "mode=implicit,port=$FRONT_DSUBMISSIONS_PORT,token=$TOK-dove,auth=1,tls12=ECDHE-ECDSA-AES256-GCM-SHA384,helo=d.example.test"
check "Dovecot relayed it with XCLIENT; Postfix saw the client as $SRC" c_dovecot_relayed
# Dovecot 2.3.19's XCLIENT has ADDR and PORT (so the milter finds the
# connection) but not the client's HELO: Postfix and the milter see
# Dovecot's own EHLO name. The relay's milter (-i 2) puts its header below
# Dovecot's (the client's HELO, no cipher), in the order of the hops.
check "Dovecot submission: Postfix's, Dovecot's, then the milter's with the client's cipher" \
	c_dovecot_header

# Fail open: no query socket at all.
check "milter restarted with a query socket that does not exist" \
	restart_milter "$MK_TMP/nonexistent.sock" 300
check "with no agent to ask, mail through mailktlsd is still accepted" \
	c_py nowhere "mode=implicit,port=$FRONT_SUBMISSIONS_PORT,token=$TOK-n"
check "...delivered without a tls clause, one log line" \
	c_fail_open nowhere "$TOK-n" notfound

# Fail open: an agent that accepts but never answers costs the bound only.
check "milter restarted with a silent query socket and -t 300" c_silent_milter
check "with a silent agent, mail through mailktlsd is accepted" \
	c_py silent "mode=implicit,port=$FRONT_SUBMISSIONS_PORT,token=$TOK-s"
check "...in less than 2 s (the library's default alone would be 2 s)" \
	c_py_within silent "$TOK-s" 2
check "...delivered without a tls clause, logged reason=timeout once" \
	c_fail_open silent "$TOK-s" timeout

# Fail open: no milter at all (milter_default_action = accept).
check "milter stopped: mail through mailktlsd is still accepted" \
	c_milter_down
check "...and delivered, without a tls clause" \
	"${MC[@]}" check --maildir "$POSTFIX_MAILDIR" --token "$TOK-down" --no-clause

check_done "$PLAN" "$MILTER_LOG" "mailktls-milter"
