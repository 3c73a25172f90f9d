#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# STARTTLS listeners (ports 143, 110, 587 in production) end to end: real
# clients (openssl s_client -starttls, curl --ssl-reqd, swaks --tls, Python
# imaplib/poplib/smtplib) and raw one-segment probes, from 127.0.0.x ->
# agent/mailktlsd (pre-TLS dialogue, handshake, PROXY v2) -> real Dovecot
# and Postfix (tests/integration/lib/daemons.sh), plus fake backends that
# offer STARTTLS/STLS on purpose, for the capability filter.
#
# What it shows:
#  - each STARTTLS port works with real clients; mail submitted is delivered;
#  - bytes pipelined after STARTTLS/STLS are never answered or executed,
#    inside TLS or out (CVE-2011-0411 / CVE-2014-3556 class);
#  - RFC 8314 §4.1: before TLS, authentication gets one fixed refusal, the
#    same bytes for valid and invalid credentials, never forwarded to the
#    daemons, logged without credentials; N refusals close the connection;
#  - after TLS no capability response offers STARTTLS/STLS and the backend
#    greeting is not shown;
#  - pre-TLS limits: line length, number of commands, time.
#
# Source addresses: 127.0.0.2 for the real clients (Dovecot treats a client
# whose address equals its own as secured, which would hide a missing SSL
# TLV), 127.0.0.4 for the §4.1 and refusal-limit probes (the daemons must
# never hear of it), 127.0.0.5 for injection probes, 127.0.0.6 for limits.
#
# TAP output. A missing or crashing agent makes the checks FAIL, never skip.
#   MK_KEEP_TMP=1   keep the temp dir (configs, logs, mail)
#   MAILKTLSD=path  the agent binary (default agent/mailktlsd)

# Checks are called through check(), which shellcheck cannot see.
# shellcheck disable=SC2317
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/daemons.sh
. "$here/lib/daemons.sh"
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"

MK_ROOT=$(cd "$here/../.." && pwd)
MAILKTLSD=${MAILKTLSD:-$MK_ROOT/agent/mailktlsd}
PLAN=56
STC=("$MK_PY" "$here/lib/starttls_clients.py")
SRC=127.0.0.2
SRC_AUTH=127.0.0.4
SRC_INJECT=127.0.0.5
SRC_LIMITS=127.0.0.6
SNI=mail.example.test
AGENT_NAME=starttls.agent.test	# the agent's greeting/EHLO name; Postfix is mail.example.test
QUICK_TIMEOUT=2
AGENT_PID=

cleanup() {
	stop_pid "$AGENT_PID" mailktlsd
	AGENT_PID=
	stop_postfix
	stop_dovecot
	mk_cleanup_tmp
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- the agent --------------------------------------------------------------

# listener NAME PORT PROTOCOL BACKEND_PORT [EXTRA-LINE...]
listener() {
	local l
	printf '\n[listener %s]\nlisten = 127.0.0.1:%s\nprotocol = %s\ntls = starttls\n' \
		"$1" "$2" "$3"
	printf 'backend = 127.0.0.1:%s\n' "$4"
	shift 4
	for l in "$@"; do
		printf '%s\n' "$l"
	done
}

write_agent_conf() {
	local c=$CERTS
	AGENT_CONF=$MK_TMP/mailktlsd-starttls.conf
	{
		printf '[global]\nworkers = 1\nlog = stderr\nquery_socket = %s\nktls = auto\n' \
			"$MK_TMP/query.sock"
		printf '\n[defaults]\nproxy_protocol = v2\nalpn = strict\n'
		printf 'certificate = %s\nprivate_key = %s\n' "$c/rsa.crt" "$c/rsa.key" \
			"$c/ecdsa.crt" "$c/ecdsa.key"
		printf 'hostname = %s\nmax_auth_refusals = 3\npretls_timeout = 60s\n' "$AGENT_NAME"
		listener imap "$P_IMAP" imap "$DOVECOT_IMAP_PORT"
		listener pop3 "$P_POP3" pop3 "$DOVECOT_POP3_PORT"
		listener submission "$P_SUBM" submission "$POSTFIX_SUBMIT_PORT"
		listener imapquick "$P_QUICK" imap "$DOVECOT_IMAP_PORT" \
			"pretls_timeout = ${QUICK_TIMEOUT}s"
		listener capimap "$P_CAPIMAP" imap "$B_CAPIMAP"
		listener cappop3 "$P_CAPPOP3" pop3 "$B_CAPPOP3"
		listener capsmtp "$P_CAPSMTP" submission "$B_CAPSMTP"
	} >"$AGENT_CONF"
}

start_agent() {
	P_IMAP=$(free_port) P_POP3=$(free_port) P_SUBM=$(free_port) P_QUICK=$(free_port)
	P_CAPIMAP=$(free_port) P_CAPPOP3=$(free_port) P_CAPSMTP=$(free_port)
	B_CAPIMAP=$(free_port) B_CAPPOP3=$(free_port) B_CAPSMTP=$(free_port)
	AGENT_LOG=$MK_TMP/agent.log
	: >"$AGENT_LOG"
	write_agent_conf
	mk_start_agent "$AGENT_CONF" "$AGENT_LOG" "$P_IMAP" "$P_POP3" "$P_SUBM" "$P_QUICK" \
		"$P_CAPIMAP" "$P_CAPPOP3" "$P_CAPSMTP"
}

# --- helpers used by the checks ---------------------------------------------

c_config_ok() {
	[ -x "$MAILKTLSD" ] || { echo "$MAILKTLSD missing"; return 1; }
	"$MAILKTLSD" -t -c "$AGENT_CONF" 2>&1 | tee "$MK_TMP/t.out"
	grep -qx 'configuration ok' "$MK_TMP/t.out"
}

# feed INPUT - INPUT's lines (LF-separated, printf %b escapes) half a
# second apart, the first after a second (s_client reads its input only
# once TLS is up, and would send all it found waiting at once), as a client
# that waits for each answer: Postfix 3.9 and later refuse an EHLO sent
# together with the next command from an unauthenticated client
# (smtpd_forbid_unauth_pipelining).
feed() {
	local line
	sleep 1
	while IFS= read -r line; do
		printf '%s\n' "$line"
		sleep 0.5
	done < <(printf '%b' "$1")
}

# s_client PORT PROTO INPUT [ARGS...] - STARTTLS dialogue by openssl, then
# INPUT (LF lines, sent as CRLF) inside TLS; prints what the server said
# inside TLS.
s_client() {
	feed "$3" | timeout "${S_CLIENT_TIMEOUT:-20}" openssl s_client \
		-connect "127.0.0.1:$1" -bind "$SRC:0" \
		-starttls "$2" -name client.example.test -servername "$SNI" \
		-CAfile "$CERTS/ca.pem" -verify_return_error -verify_hostname "$SNI" \
		-crlf -quiet "${@:4}" 2>&1
}

# s_client_in FILE LEFTOVER - what the server said inside TLS: s_client's
# output without its verify lines and OpenSSL 3.5's "Connecting to ADDR"
# line, and without LEFTOVER as the first line:
# s_client -quiet prints the last plaintext line of its own STARTTLS dialogue
# again after the handshake (a strace shows it is not sent inside TLS; the
# raw probes below check the wire itself).
s_client_in() {
	grep -v '^depth=\|^verify return\|^Connecting to ' "$1" | sed "1{/^$2\r\?\$/d}"
}

c_s_client_imap() {
	s_client "$P_IMAP" imap "a LOGIN $MK_USER $MK_PASS\nb LOGOUT\n" | tee "$MK_TMP/sc-imap"
	s_client_in "$MK_TMP/sc-imap" '\. OK CAPABILITY completed' >"$MK_TMP/sc-imap.in"
	# The first line inside TLS is the answer to LOGIN: no greeting before it.
	head -n1 "$MK_TMP/sc-imap.in" | grep -q '^a OK .*Logged in' &&
		grep -q '^b OK' "$MK_TMP/sc-imap.in"
}

# TLS 1.2 inside STARTTLS: the client waits for our Finished before its
# first command (which is why the agent never holds that flight back with
# MSG_MORE: corked, it would leave only on the kernel's ~200 ms probe timer).
c_s_client_imap_tls12() {
	S_CLIENT_TIMEOUT=5 s_client "$P_IMAP" imap "a LOGIN $MK_USER $MK_PASS\nb LOGOUT\n" \
		-tls1_2 | tee "$MK_TMP/sc-imap12"
	grep -q '^a OK .*Logged in' "$MK_TMP/sc-imap12"
}

c_s_client_pop3() {
	s_client "$P_POP3" pop3 "USER $MK_USER\nPASS $MK_PASS\nSTAT\nQUIT\n" |
		tee "$MK_TMP/sc-pop3"
	s_client_in "$MK_TMP/sc-pop3" '' >"$MK_TMP/sc-pop3.in"
	[ "$(grep -c '^+OK' "$MK_TMP/sc-pop3.in")" -eq 4 ] &&
		grep -q '^+OK 1 ' "$MK_TMP/sc-pop3.in" && ! grep -q '^-ERR' "$MK_TMP/sc-pop3.in"
}

c_s_client_smtp() {
	s_client "$P_SUBM" smtp "EHLO client.example.test\nQUIT\n" | tee "$MK_TMP/sc-smtp"
	s_client_in "$MK_TMP/sc-smtp" '250 STARTTLS' >"$MK_TMP/sc-smtp.in"
	# Postfix's EHLO reply (its name, not the agent's), first, without STARTTLS.
	head -n1 "$MK_TMP/sc-smtp.in" | grep -q '^250-mail\.example\.test' &&
		! grep -qi 'STARTTLS' "$MK_TMP/sc-smtp.in" && grep -q '^221' "$MK_TMP/sc-smtp.in"
}

curl_st() {	# PORT SCHEME PATH OUTFILE
	timeout 20 curl -sS --max-time 10 --interface "$SRC" --ssl-reqd \
		--resolve "$SNI:$1:127.0.0.1" --cacert "$CERTS/ca.pem" \
		-u "$MK_USER:$MK_PASS" -o "$4" "$2://$SNI:$1/$3"
}

c_curl_imap_list() {
	curl_st "$P_IMAP" imap "" "$MK_TMP/curl-list.out" || return 1
	cat "$MK_TMP/curl-list.out"
	grep -q 'LIST .*INBOX' "$MK_TMP/curl-list.out"
}

c_curl_imap_fetch() {
	curl_st "$P_IMAP" imap "INBOX;UID=1" "$MK_TMP/curl-imap.eml" &&
		same_file "$MK_TEST_MSG" "$MK_TMP/curl-imap.eml"
}

c_curl_pop3_retr() {
	curl_st "$P_POP3" pop3 "1" "$MK_TMP/curl-pop3.eml" &&
		same_file "$MK_TEST_MSG" "$MK_TMP/curl-pop3.eml"
}

# write_submission FILE TOKEN [noeol] - a message for $MK_RCPT with a unique
# token; noeol: no CRLF after the last line (swaks adds one before the dot).
write_submission() {
	printf '%s\r\n' "From: Sender <sender@example.test>" "To: <$MK_RCPT>" \
		"Subject: mailktls STARTTLS submission $2" "Message-ID: <$2@example.test>" "" \
		"Body of the STARTTLS submission test, token $2." \
		".A line starting with a dot." >"$1"
	if [ "${3:-}" = noeol ]; then
		printf 'Last line.' >>"$1"
	else
		printf 'Last line.\r\n' >>"$1"
	fi
}

c_curl_smtp() {
	timeout 20 curl -sS --max-time 10 --interface "$SRC" --ssl-reqd \
		--resolve "$SNI:$P_SUBM:127.0.0.1" --cacert "$CERTS/ca.pem" \
		--mail-from sender@example.test --mail-rcpt "$MK_RCPT" \
		--upload-file "$MK_TMP/curl-smtp.eml" -v \
		"smtp://$SNI:$P_SUBM/client.example.test" 2>&1 | tail -n 15 |
		tee "$MK_TMP/curl-smtp.out"
	[ "${PIPESTATUS[0]}" -eq 0 ] && grep -q '< 250 2.0.0 Ok: queued' "$MK_TMP/curl-smtp.out"
}

c_swaks() {
	timeout 30 swaks --server 127.0.0.1 --port "$P_SUBM" --tls --tls-sni "$SNI" \
		--tls-verify --tls-ca-path "$CERTS/ca.pem" \
		--local-interface "$SRC" --helo client.example.test \
		--from sender@example.test --to "$MK_RCPT" --data "@$MK_TMP/swaks.eml" \
		--timeout 10 >"$MK_TMP/swaks.out" 2>&1
	local rc=$?
	tail -n 14 "$MK_TMP/swaks.out"
	[ "$rc" -eq 0 ] && grep -q '<~  250 2.0.0 Ok: queued' "$MK_TMP/swaks.out" &&
		grep -q '^<- *220 ' "$MK_TMP/swaks.out"
}

c_delivered() {	# SENT TOKEN
	"${STC[@]}" delivered --maildir "$POSTFIX_MAILDIR" --sent "$1" --token "$2"
}

c_py_imap() {
	"${STC[@]}" py-imap --port "$P_IMAP" --cafile "$CERTS/ca.pem" \
		--user "$MK_USER" --password "$MK_PASS" --out "$MK_TMP/py-imap.eml" &&
		same_file "$MK_TEST_MSG" "$MK_TMP/py-imap.eml"
}

c_py_pop3() {
	"${STC[@]}" py-pop3 --port "$P_POP3" --cafile "$CERTS/ca.pem" \
		--user "$MK_USER" --password "$MK_PASS" --out "$MK_TMP/py-pop3.eml" &&
		same_file "$MK_TEST_MSG" "$MK_TMP/py-pop3.eml"
}

c_py_smtp() {
	"${STC[@]}" py-smtp --port "$P_SUBM" --cafile "$CERTS/ca.pem" \
		--sender sender@example.test --rcpt "$MK_RCPT" --msg "$MK_TMP/py-smtp.eml"
}

# Every Dovecot login came from 127.0.0.2 and was secured by the SSL TLV:
# none from the probes (an injected LOGIN would show up as rip=127.0.0.5).
c_dovecot_logins() {	# imap|pop3
	local re="$1-login: Info: $DOVECOT_LOGIN user=<$MK_USER>, method=[A-Z]+, rip=127\\.0\\.0\\.2, lip=127\\.0\\.0\\.1,.* $DOVECOT_SECURED"
	grep -E -- "$1-login: Info: $DOVECOT_LOGIN" "$DOVECOT_LOG" >"$MK_TMP/logins"
	cat "$MK_TMP/logins"
	grep -qE -- "$re" "$MK_TMP/logins" && ! grep -vqE -- "$re" "$MK_TMP/logins"
}

c_agent_tls_line() {	# LISTENER
	local re="tls listener=$1 client=127\\.0\\.0\\.2:[0-9]+ version=TLSv1\\.[23] cipher=TLS_[A-Z0-9_]+ .*ktls=[a-z,]+"
	grep -E "listener=$1 " "$AGENT_LOG" | tail -n 5
	grep -qE -- "$re" "$AGENT_LOG"
}

c_agent_close_line() {	# LISTENER
	grep -qE -- "close listener=$1 client=127\\.0\\.0\\.2:[0-9]+ .*end=[a-z_:]+" "$AGENT_LOG" &&
		return 0
	grep -E "listener=$1 " "$AGENT_LOG" | tail -n 5
	return 1
}

c_inject() {	# PORT PROBE
	"${STC[@]}" inject --src "$SRC_INJECT" --port "$1" --probe "$2" --cafile "$CERTS/ca.pem" \
		--user "$MK_USER" --password "$MK_PASS" --rcpt "$MK_RCPT"
}

# The session of the injected LOGIN reached Dovecot (after TLS) and ended
# without any login or authentication attempt.
c_inject_no_login() {
	local f
	wait_grep "$DOVECOT_LOG" 'imap-login: .*rip=127\.0\.0\.5,' 5
	grep -E 'rip=127\.0\.0\.5,' "$DOVECOT_LOG" | tee "$MK_TMP/inj.lines"
	[ -s "$MK_TMP/inj.lines" ] || { echo "no Dovecot session from 127.0.0.5 at all"; return 1; }
	for f in 'Login:' 'auth failed' 'user=<[^>]'; do
		if grep -qE -- "$f" "$MK_TMP/inj.lines"; then
			echo "Dovecot saw a login/auth from the injection probe ($f)"
			return 1
		fi
	done
}

c_refusal() {	# PROTO PORT
	"${STC[@]}" refusal --proto "$1" --port "$2" --src "$SRC_AUTH" \
		--user "$MK_USER" --password "$MK_PASS" --secrets-out "$MK_TMP/secrets"
}

# Nothing reached the daemons from the §4.1 and refusal-limit probes: not a
# connection, not an authentication attempt, not a credential.
c_backends_never_asked() {
	local bad=0
	if grep -n '127\.0\.0\.4' "$DOVECOT_LOG" "$POSTFIX_LOG"; then
		echo "a daemon heard of the cleartext probes' address"
		bad=1
	fi
	if grep -niE 'auth failed|password mismatch|unknown user|authentication failed|SASL' \
		"$DOVECOT_LOG" "$POSTFIX_LOG"; then
		echo "a daemon logged an authentication attempt"
		bad=1
	fi
	if [ -s "$MK_TMP/secrets" ] && grep -nFf "$MK_TMP/secrets" "$DOVECOT_LOG" "$POSTFIX_LOG"; then
		echo "a credential reached a daemon's log"
		bad=1
	fi
	return "$bad"
}

c_agent_refusals_logged() {
	local cmd bad=0
	grep 'cleartext_auth_refused' "$AGENT_LOG" | sort | uniq -c | head -n 20
	for cmd in LOGIN AUTHENTICATE USER PASS APOP AUTH; do
		if ! grep -qE "cleartext_auth_refused listener=[a-z0-9]+ client=127\\.0\\.0\\.4:[0-9]+ command=$cmd\$" \
			"$AGENT_LOG"; then
			echo "no cleartext_auth_refused line ending in command=$cmd"
			bad=1
		fi
	done
	return "$bad"
}

c_agent_log_no_secrets() {
	[ -s "$MK_TMP/secrets" ] || { echo "no secrets file: the refusal probes did not run"; return 1; }
	echo "checked $(wc -l <"$MK_TMP/secrets") credential strings"
	if grep -nFf "$MK_TMP/secrets" "$AGENT_LOG"; then
		echo "credentials in the agent log"
		return 1
	fi
	! grep -E 'cleartext_auth_refused' "$AGENT_LOG" | grep -F "$MK_USER"
}

c_auth_limit() {	# PROTO PORT
	"${STC[@]}" auth-limit --proto "$1" --port "$2" --src "$SRC_AUTH" --max 3 \
		--user "$MK_USER"
}

c_caps() {	# PROTO PORT
	"${STC[@]}" caps --proto "$1" --port "$2" --cafile "$CERTS/ca.pem" \
		--user "$MK_USER" --password "$MK_PASS"
}

c_fake_caps() {	# PROTO PORT BACKEND_PORT
	"${STC[@]}" fake-caps --proto "$1" --port "$2" --capture-port "$3" \
		--cafile "$CERTS/ca.pem"
}

c_limit() {	# SUBCOMMAND PORT ARGS...
	"${STC[@]}" "$1" --src "$SRC_LIMITS" --port "$2" "${@:3}"
}

c_quick_closed_logged() {
	wait_grep "$AGENT_LOG" 'close listener=imapquick .*end=timeout' 3 && return 0
	grep 'listener=imapquick' "$AGENT_LOG" | tail -n 5
	return 1
}

# --- set up -----------------------------------------------------------------

echo "1..$PLAN"
mk_testbed_up
AGENT_LOG=$MK_TMP/agent.log
AGENT_CONF=$MK_TMP/mailktlsd-starttls.conf
agent_started=1
if [ -z "$fatal" ]; then
	start_agent || agent_started=0
	write_submission "$MK_TMP/curl-smtp.eml" "curl-$$-token"
	write_submission "$MK_TMP/swaks.eml" "swaks-$$-token" noeol
	write_submission "$MK_TMP/py-smtp.eml" "smtplib-$$-token"
	: >"$MK_TMP/secrets"
fi

# --- checks -----------------------------------------------------------------

check "mailktlsd -t accepts the STARTTLS configuration" c_config_ok
check "mailktlsd starts and listens on the 7 STARTTLS listeners" agent_alive
[ -z "$fatal" ] && [ "$agent_started" = 0 ] && fatal="mailktlsd did not start"

check "openssl s_client -starttls imap: LOGIN answered by Dovecot (PP2 SSL TLV), no 2nd greeting" \
	c_s_client_imap
check "openssl s_client -starttls imap -tls1_2: LOGIN answered" c_s_client_imap_tls12
check "openssl s_client -starttls pop3: USER/PASS/STAT answered by Dovecot" c_s_client_pop3
check "openssl s_client -starttls smtp: EHLO inside TLS answered by Postfix, no STARTTLS" \
	c_s_client_smtp
check "curl --ssl-reqd imap://: LIST shows INBOX" c_curl_imap_list
check "curl --ssl-reqd imap://: FETCH of the test message is byte-identical" c_curl_imap_fetch
check "curl --ssl-reqd pop3://: RETR of the test message is byte-identical" c_curl_pop3_retr
check "curl --ssl-reqd smtp://: Postfix accepts the submission" c_curl_smtp
check "curl submission delivered, body identical, Received from [127.0.0.2]" \
	c_delivered "$MK_TMP/curl-smtp.eml" "curl-$$-token"
check "swaks --tls (STARTTLS, verified certificate): Postfix accepts the submission" c_swaks
check "swaks submission delivered, body identical" c_delivered "$MK_TMP/swaks.eml" "swaks-$$-token"
check "python imaplib starttls(): no STARTTLS in capabilities, login, fetch byte-identical" \
	c_py_imap
check "python poplib stls(): no STLS in CAPA, user/pass, RETR byte-identical" c_py_pop3
check "python smtplib starttls(): no STARTTLS in EHLO, sendmail accepted" c_py_smtp
check "smtplib submission delivered, body identical" \
	c_delivered "$MK_TMP/py-smtp.eml" "smtplib-$$-token"
check "Dovecot IMAP logins: all from 127.0.0.2 and secured (PP2 SSL TLV)" c_dovecot_logins imap
check "Dovecot POP3 logins: all from 127.0.0.2 and secured" c_dovecot_logins pop3
check "Postfix smtpd saw the client as 127.0.0.2 (PROXY v2)" c_postfix_client
check "agent log: tls line for listener imap (version, IANA cipher, ktls)" c_agent_tls_line imap
check "agent log: tls line for listener pop3" c_agent_tls_line pop3
check "agent log: tls line for listener submission" c_agent_tls_line submission
check "agent log: close line for listener imap" c_agent_close_line imap
check "agent log: close line for listener pop3" c_agent_close_line pop3
check "agent log: close line for listener submission" c_agent_close_line submission

check "injection: 'a STARTTLS\\r\\nb NOOP\\r\\n' in one segment: b never answered" \
	c_inject "$P_IMAP" imap-noop
check "injection: 'a STARTTLS\\r\\nb LOGIN user pass\\r\\n': not executed (SELECT refused)" \
	c_inject "$P_IMAP" imap-login
check "injection: Dovecot logged no login or auth for the injected LOGIN's session" \
	c_inject_no_login
check "injection: plaintext after the STARTTLS reply is never answered, connection ends" \
	c_inject "$P_IMAP" imap-late
check "injection: 'STLS\\r\\nCAPA\\r\\n' in one segment: CAPA never answered" \
	c_inject "$P_POP3" pop3-capa
check "injection: 'STLS\\r\\nUSER user\\r\\n': not executed (PASS refused inside TLS)" \
	c_inject "$P_POP3" pop3-user
check "injection: 'EHLO x', then 'STARTTLS\\r\\nEHLO y\\r\\n' in one segment: EHLO y never answered" \
	c_inject "$P_SUBM" smtp-ehlo
check "injection: 'STARTTLS\\r\\nMAIL FROM:...' not executed (RCPT gets 503)" \
	c_inject "$P_SUBM" smtp-mail

check "RFC 8314 4.1 IMAP: LOGIN/AUTHENTICATE refusal byte-identical for valid and invalid" \
	c_refusal imap "$P_IMAP"
check "RFC 8314 4.1 POP3: USER/PASS/APOP/AUTH refusal byte-identical for valid and invalid" \
	c_refusal pop3 "$P_POP3"
check "RFC 8314 4.1 SMTP: AUTH PLAIN/LOGIN refusal byte-identical for valid and invalid" \
	c_refusal smtp "$P_SUBM"
check "max_auth_refusals=3: IMAP connection closed after the 3rd refused LOGIN" \
	c_auth_limit imap "$P_IMAP"
check "max_auth_refusals=3: POP3 connection closed after the 3rd refused USER/PASS" \
	c_auth_limit pop3 "$P_POP3"
check "max_auth_refusals=3: SMTP connection closed after the 3rd refused AUTH" \
	c_auth_limit smtp "$P_SUBM"
check "RFC 8314 4.1: Dovecot and Postfix never saw the cleartext attempts nor a credential" \
	c_backends_never_asked
check "agent log: cleartext_auth_refused for LOGIN AUTHENTICATE USER PASS APOP AUTH" \
	c_agent_refusals_logged
check "agent log: no password, no base64 credentials, no user name in refusals" \
	c_agent_log_no_secrets

check "after TLS (Dovecot IMAP): no greeting, CAPABILITY/LOGIN never offer STARTTLS" \
	c_caps imap "$P_IMAP"
check "after TLS (Dovecot POP3): no greeting, CAPA never offers STLS" c_caps pop3 "$P_POP3"
check "after TLS (Postfix): no greeting, EHLO reply is Postfix's, no STARTTLS" \
	c_caps smtp "$P_SUBM"
check "capability filter, IMAP backend offering STARTTLS: greeting dropped, atoms removed" \
	c_fake_caps imap "$P_CAPIMAP" "$B_CAPIMAP"
check "capability filter, POP3 backend offering STLS: greeting dropped, STLS line removed" \
	c_fake_caps pop3 "$P_CAPPOP3" "$B_CAPPOP3"
check "capability filter, SMTP backend with '250 STARTTLS' last: 220- greeting dropped, 250 rewritten" \
	c_fake_caps smtp "$P_CAPSMTP" "$B_CAPSMTP"

check "limits: SMTP 512-octet line answered, 600-octet line closes the connection" \
	c_limit long-line "$P_SUBM" --proto smtp
check "limits: IMAP 20 KB command line closes the connection" \
	c_limit long-line "$P_IMAP" --proto imap
check "limits: IMAP pretls_max_commands (32) then closed" c_limit too-many "$P_IMAP" --max 32
check "limits: silent client closed after pretls_timeout=${QUICK_TIMEOUT}s (bounded)" \
	c_limit silent "$P_QUICK" --timeout "$QUICK_TIMEOUT"
check "limits: client sending NOOPs is still closed after pretls_timeout" \
	c_limit slow "$P_QUICK" --timeout "$QUICK_TIMEOUT"
check "agent log: pre-TLS timeout logged as close ... end=timeout" c_quick_closed_logged
check "agent still running after all of the above" agent_alive

check_done "$PLAN" "${AGENT_LOG:-}" "agent"
