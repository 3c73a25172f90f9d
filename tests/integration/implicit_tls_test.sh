#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Implicit TLS (RFC 8314 ports 993, 995, 465) end to end: real clients
# (curl, swaks, openssl s_client, Python imaplib/poplib/smtplib) from
# 127.0.0.2 -> agent/mailktlsd -> PROXY v2 -> real Dovecot and Postfix.
#
# Dovecot runs with ssl = no and disable_plaintext_auth = yes, so a login
# succeeds only if the agent's PROXY v2 header carries PP2_TYPE_SSL; clients
# use 127.0.0.2 because Dovecot treats a client whose address equals the
# local one as secured, which would hide a missing TLV.
#
# TAP output. A missing or crashing agent makes the checks FAIL, never skip.
#
#   MK_KEEP_TMP=1  keep the temp dir (configs, logs, mail) for a look
#   MK_FRONT=haproxy  put haproxy in front instead of the agent: validates
#                  the daemon setup and the checks; the ALPN, agent-log, PROXY
#                  header (haproxy sends verify 0 without a certificate) and
#                  SIGTERM checks are expected to fail there.

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

PLAN=35
MKC=("$MK_PY" "$here/lib/mkclients.py")
SRC=127.0.0.2
SNI=mail.example.test
FRONT=${MK_FRONT:-agent}

cleanup() {
	stop_front
	stop_postfix
	stop_dovecot
	mk_cleanup_tmp
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- helpers used by the checks ---------------------------------------------

front_alive() {
	[ -n "${FRONT_PID:-}" ] && kill -0 "$FRONT_PID" 2>/dev/null && return 0
	echo "front is not running; its log:"
	tail -n 20 "$FRONT_LOG" 2>/dev/null
	return 1
}

curl_mail() {	# PORT URL-PATH OUTFILE
	timeout 20 curl -sS --max-time 10 --interface "$SRC" \
		--resolve "$SNI:$1:127.0.0.1" --cacert "$CERTS/ca.pem" \
		-u "$MK_USER:$MK_PASS" -o "$3" "$(proto_of "$1")://$SNI:$1/$2"
}

proto_of() {
	case $1 in
	"$FRONT_IMAPS_PORT") echo imaps ;;
	"$FRONT_POP3S_PORT") echo pop3s ;;
	esac
}

c_curl_imap_list() {
	curl_mail "$FRONT_IMAPS_PORT" "" "$MK_TMP/curl-list.out" || return 1
	cat "$MK_TMP/curl-list.out"
	grep -q 'LIST .*INBOX' "$MK_TMP/curl-list.out"
}

c_curl_imap_fetch() {
	curl_mail "$FRONT_IMAPS_PORT" "INBOX;UID=1" "$MK_TMP/curl-imap.eml" &&
		same_file "$MK_TEST_MSG" "$MK_TMP/curl-imap.eml"
}

c_curl_pop3_retr() {
	curl_mail "$FRONT_POP3S_PORT" "1" "$MK_TMP/curl-pop3.eml" &&
		same_file "$MK_TEST_MSG" "$MK_TMP/curl-pop3.eml"
}

# write_submission FILE TOKEN - a message for $MK_RCPT with a unique token.
# No CRLF after the last line: swaks always adds one before the final dot.
write_submission() {
	printf '%s\r\n' "From: Sender <sender@example.test>" "To: <$MK_RCPT>" \
		"Subject: mailktls submission $2" "Message-ID: <$2@example.test>" "" \
		"Body of the submission test, token $2." "Second line." >"$1"
	printf 'Third line, no line end' >>"$1"
}

c_swaks_submit() {
	timeout 30 swaks --server 127.0.0.1 --port "$FRONT_SUBMISSIONS_PORT" --tls-on-connect \
		--tls-sni "$SNI" --local-interface "$SRC" --helo client.example.test \
		--from sender@example.test --to "$MK_RCPT" --data "@$MK_TMP/swaks.eml" \
		--timeout 10 >"$MK_TMP/swaks.out" 2>&1
	local rc=$?
	tail -n 12 "$MK_TMP/swaks.out"
	[ "$rc" -eq 0 ] && grep -q '<~  250 2.0.0 Ok: queued' "$MK_TMP/swaks.out"
}

# c_delivered SENT TOKEN - Postfix put it in the Maildir with the same body
# (line ends aside: Postfix stores LF, and a line end is added to the last line).
c_delivered() {
	local f i
	for ((i = 0; i < 200; i++)); do
		f=$(grep -l -- "$2" "$POSTFIX_MAILDIR"/new/* 2>/dev/null | head -n1)
		[ -n "$f" ] && break
		sleep 0.05
	done
	if [ -z "$f" ]; then
		echo "no message with $2 in $POSTFIX_MAILDIR/new; postfix log:"
		tail -n 15 "$POSTFIX_LOG"
		return 1
	fi
	"$MK_PY" - "$1" "$f" <<'EOF'
import sys
sent = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n")
got = open(sys.argv[2], "rb").read()
if not sent.endswith(b"\n"):
    sent += b"\n"
sb, gb = sent.split(b"\n\n", 1)[1], got.split(b"\n\n", 1)[1]
if sb != gb:
    print(f"body differs:\nsent {sb!r}\ngot  {gb!r}")
    sys.exit(1)
hdr = got.split(b"\n\n", 1)[0]
if b"[127.0.0.2]" not in hdr:
    print("Received header does not name 127.0.0.2:\n" + hdr.decode(errors="replace"))
    sys.exit(1)
EOF
}

c_py_imap() {
	"${MKC[@]}" imap --port "$FRONT_IMAPS_PORT" --src "$SRC" --cafile "$CERTS/ca.pem" \
		--user "$MK_USER" --password "$MK_PASS" --out "$MK_TMP/py-imap.eml" &&
		same_file "$MK_TEST_MSG" "$MK_TMP/py-imap.eml"
}

c_py_pop3() {
	"${MKC[@]}" pop3 --port "$FRONT_POP3S_PORT" --src "$SRC" --cafile "$CERTS/ca.pem" \
		--user "$MK_USER" --password "$MK_PASS" --out "$MK_TMP/py-pop3.eml" &&
		same_file "$MK_TEST_MSG" "$MK_TMP/py-pop3.eml"
}

c_py_smtp() {
	"${MKC[@]}" smtp --port "$FRONT_SUBMISSIONS_PORT" --src "$SRC" --cafile "$CERTS/ca.pem" \
		--sender sender@example.test --rcpt "$MK_RCPT" --msg "$MK_TMP/py-smtp.eml"
}

# Every login Dovecot logged through the front came from 127.0.0.2 and was
# secured by the TLV (127.0.0.3 is c_dovecot_needs_tlv's own login).
c_dovecot_login() {	# imap|pop3
	local re="$1-login: Info: $DOVECOT_LOGIN user=<$MK_USER>, method=[A-Z]+, rip=127\\.0\\.0\\.2, lip=127\\.0\\.0\\.1,.* $DOVECOT_SECURED"
	grep -E -- "$1-login: Info: $DOVECOT_LOGIN" "$DOVECOT_LOG" | grep -v 'rip=127\.0\.0\.3,' >"$MK_TMP/logins"
	cat "$MK_TMP/logins"
	grep -qE -- "$re" "$MK_TMP/logins" && ! grep -vqE -- "$re" "$MK_TMP/logins"
}

# The bed itself: without PP2_TYPE_SSL Dovecot refuses plaintext LOGIN from
# a non-local address, with it Dovecot accepts (so the checks above mean
# something). Uses 127.0.0.3 to keep these logins apart.
c_dovecot_needs_tlv() {
	local args=(raw-proxy-login --port "$DOVECOT_IMAP_PORT" --src 127.0.0.3
		--user "$MK_USER" --password "$MK_PASS")
	if "${MKC[@]}" "${args[@]}"; then
		echo "LOGIN accepted without SSL TLV: the test bed proves nothing"
		return 1
	fi
	"${MKC[@]}" "${args[@]}" --with-ssl-tlv
}

c_agent_tls_line() {	# LISTENER
	local re="tls listener=$1 client=127\\.0\\.0\\.2:[0-9]+ version=TLSv1\\.[23] cipher=TLS_[A-Z0-9_]+ .*ktls="
	grep -E "listener=$1 " "$FRONT_LOG" | tail -n 5
	grep -qE -- "$re" "$FRONT_LOG"
}

c_agent_close_line() {	# LISTENER
	grep -qE -- "close listener=$1 client=127\\.0\\.0\\.2:[0-9]+ .*end=" "$FRONT_LOG" && return 0
	grep -E "listener=$1 " "$FRONT_LOG" | tail -n 5
	return 1
}

s_client() {	# PORT ARGS... (stdin closed: handshake, print, quit)
	local port=$1
	shift
	timeout 15 openssl s_client -connect "127.0.0.1:$port" -bind "$SRC:0" \
		-servername "$SNI" -CAfile "$CERTS/ca.pem" "$@" </dev/null 2>&1
}

# The client really offers only TLS 1.1 (no system policy, security level 0),
# so the refusal comes from the server: alert 70, protocol_version.
c_tls11_refused() {
	local out
	out=$(OPENSSL_CONF=/dev/null s_client "$FRONT_IMAPS_PORT" -tls1_1 \
		-cipher 'DEFAULT:@SECLEVEL=0')
	echo "$out" | grep -E 'alert|Protocol|Cipher is|error' | head -n 8
	echo "$out" | grep -q 'alert protocol version' && echo "$out" | grep -q 'Cipher is (NONE)'
}

c_alpn_refused() {
	local out
	out=$(s_client "$FRONT_IMAPS_PORT" -alpn http/1.1)
	echo "$out" | grep -E 'alert|ALPN|Cipher is|error' | head -n 8
	echo "$out" | grep -qE 'alert no application protocol|alert number 120'
}

c_alpn_imap_ok() {
	local out
	out=$(s_client "$FRONT_IMAPS_PORT" -alpn imap)
	echo "$out" | grep -E 'alert|ALPN|Verif|error' | head -n 8
	echo "$out" | grep -q '^ALPN protocol: imap' && echo "$out" | grep -q 'Verification: OK'
}

c_cert_type() {	# SIGALGS EXPECTED-KEY-ALGORITHM [S_CLIENT-ARGS...]
	local out
	out=$(s_client "$FRONT_IMAPS_PORT" -sigalgs "$1" "${@:3}")
	echo "$out" | grep -E 'Peer signature|alert|error|Protocol' | head -n 6
	echo "$out" | openssl x509 -noout -text 2>&1 | grep 'Public Key Algorithm'
	echo "$out" | openssl x509 -noout -text 2>/dev/null |
		grep -qE "Public Key Algorithm: $2\$"
}

c_close_notify() {	# PROTO PORT
	"${MKC[@]}" close-notify --proto "$1" --port "$2" --src "$SRC" --cafile "$CERTS/ca.pem"
}

c_resume() {	# TLS-VERSION
	"${MKC[@]}" resume --port "$FRONT_IMAPS_PORT" --src "$SRC" --cafile "$CERTS/ca.pem" \
		--tls "$1"
}

c_pp2_header() {
	"${MKC[@]}" pp2-check --port "$FRONT_CAPTURE_PORT" --capture-port "$CAPTURE_BACKEND_PORT" \
		--src "$SRC" --cafile "$CERTS/ca.pem"
}

c_dead_backend() {
	"${MKC[@]}" dead-backend --port "$FRONT_DEAD_PORT" --src "$SRC" --limit 1.0 \
		--cafile "$CERTS/ca.pem"
}

c_dead_backend_logged() {
	wait_grep "$FRONT_LOG" 'listener=deadimap .*(error|refused)' 2 && return 0
	echo "no error line for listener deadimap; front log:"
	tail -n 10 "$FRONT_LOG"
	return 1
}

# SIGTERM with an idle IMAP session open: the client gets close_notify and
# the agent exits 0 within 5 s.
c_sigterm() {
	local ready=$MK_TMP/sigterm.ready cpid i rc
	"${MKC[@]}" close-notify --proto imap --port "$FRONT_IMAPS_PORT" --src "$SRC" \
		--cafile "$CERTS/ca.pem" --ready "$ready" >"$MK_TMP/sigterm.client" 2>&1 &
	cpid=$!
	for ((i = 0; i < 200; i++)); do
		[ -e "$ready" ] && break
		sleep 0.05
	done
	[ -e "$ready" ] || { echo "client did not connect"; cat "$MK_TMP/sigterm.client"; }
	kill -TERM "$FRONT_PID"
	for ((i = 0; i < 100; i++)); do
		kill -0 "$FRONT_PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$FRONT_PID" 2>/dev/null; then
		echo "still running 5 s after SIGTERM"
		kill -0 "$cpid" 2>/dev/null && kill "$cpid"
		return 1
	fi
	wait "$FRONT_PID"
	rc=$?
	FRONT_PID=
	wait "$cpid"
	local crc=$?
	echo "front exit status $rc; client: $(cat "$MK_TMP/sigterm.client")"
	[ "$rc" -eq 0 ] && [ "$crc" -eq 0 ]
}

# --- set up -----------------------------------------------------------------

echo "1..$PLAN"
mk_testbed_up
front_started=1
if [ -z "$fatal" ]; then
	case $FRONT in
	agent) start_agent "$CERTS" || front_started=0 ;;
	haproxy) start_haproxy "$CERTS" || front_started=0 ;;
	*) fatal="unknown MK_FRONT=$FRONT" ;;
	esac
	write_submission "$MK_TMP/swaks.eml" "swaks-$$-token"
	write_submission "$MK_TMP/py-smtp.eml" "smtplib-$$-token"
fi

# --- checks -----------------------------------------------------------------

check "test bed: Dovecot refuses plaintext LOGIN unless PROXY v2 has PP2_TYPE_SSL" \
	c_dovecot_needs_tlv
check "$FRONT starts and listens on imaps, pop3s, submissions, deadimap" front_alive
[ -z "$fatal" ] && [ "$front_started" = 0 ] && fatal="the TLS front ($FRONT) did not start"
check "curl imaps: LIST shows INBOX" c_curl_imap_list
check "curl imaps: FETCH of the test message is byte-identical" c_curl_imap_fetch
check "curl pop3s: RETR of the test message is byte-identical" c_curl_pop3_retr
check "swaks --tls-on-connect: Postfix accepts the submission" c_swaks_submit
check "swaks submission delivered with identical body, Received from [127.0.0.2]" \
	c_delivered "$MK_TMP/swaks.eml" "swaks-$$-token"
check "python imaplib IMAP4_SSL: login and fetch, byte-identical" c_py_imap
check "python poplib POP3_SSL: login and RETR, byte-identical" c_py_pop3
check "python smtplib SMTP_SSL: submission accepted" c_py_smtp
check "smtplib submission delivered with identical body" \
	c_delivered "$MK_TMP/py-smtp.eml" "smtplib-$$-token"
check "Dovecot IMAP logins: rip=127.0.0.2 and secured (PP2 SSL TLV)" c_dovecot_login imap
check "Dovecot POP3 logins: rip=127.0.0.2 and secured (PP2 SSL TLV)" c_dovecot_login pop3
check "Postfix smtpd saw the client as 127.0.0.2 (PROXY v2)" c_postfix_client
check "agent log: tls line for imaps (client, version, IANA cipher, ktls)" \
	c_agent_tls_line imaps
check "agent log: tls line for pop3s" c_agent_tls_line pop3s
check "agent log: tls line for submissions" c_agent_tls_line submissions
check "openssl s_client -tls1_1 refused with protocol_version alert" c_tls11_refused
check "openssl s_client -alpn http/1.1 on imaps: alert 120 no_application_protocol" \
	c_alpn_refused
check "openssl s_client -alpn imap on imaps: negotiated, certificate verifies" c_alpn_imap_ok
check "-sigalgs ECDSA+SHA256 gets the ECDSA certificate" \
	c_cert_type ECDSA+SHA256 id-ecPublicKey
check "-sigalgs RSA-PSS+SHA256:RSA+SHA256 gets the RSA certificate" \
	c_cert_type RSA-PSS+SHA256:RSA+SHA256 rsaEncryption
check "-sigalgs ECDSA+SHA256 with TLS 1.2 gets the ECDSA certificate" \
	c_cert_type ECDSA+SHA256 id-ecPublicKey -tls1_2
check "TLS 1.3 session resumption with a ticket, also from a resumed session" c_resume 1.3
check "TLS 1.2 session resumption" c_resume 1.2
check "IMAP LOGOUT: server side ends with close_notify" c_close_notify imap "$FRONT_IMAPS_PORT"
check "POP3 QUIT: server side ends with close_notify" c_close_notify pop3 "$FRONT_POP3S_PORT"
check "SMTP QUIT: server side ends with close_notify" \
	c_close_notify smtp "$FRONT_SUBMISSIONS_PORT"
check "agent log: close line for imaps" c_agent_close_line imaps
check "agent log: close line for pop3s" c_agent_close_line pop3s
check "PROXY v2 header: addresses, CRC32C, AUTHORITY, no ALPN (default), SSL version/cipher as the client saw" \
	c_pp2_header
check "dead backend: client is closed within 1 s" c_dead_backend
check "dead backend: an error line is logged" c_dead_backend_logged
check "agent still running after all of the above" front_alive
check "SIGTERM: idle session gets close_notify, agent exits 0 within 5 s" c_sigterm

check_done "$PLAN" "${FRONT_LOG:-}" "$FRONT"
