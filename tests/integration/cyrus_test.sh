#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Cyrus IMAP 3.6 (Debian's cyrus-imapd and cyrus-pop3d) behind mailktlsd.
# Cyrus 3.6 reads no PROXY header, so the agent's listeners have
# proxy_protocol = none and their backends are imapd/pop3d services started
# with -p 128 ("an external security layer exists"), on a loopback port only
# the agent uses. With allowplaintext: no, users log in after TLS through the
# agent, while Cyrus's own plaintext ports (the same daemons without -p)
# refuse every plaintext login.
#
# Real clients from 127.0.0.2 (curl, Python imaplib/poplib, openssl
# s_client -starttls) -> mailktlsd (Implicit TLS imaps/pop3s, STARTTLS
# imap/pop3) -> Cyrus (tests/integration/lib/cyrus.sh), fetching a message
# delivered over LMTP, byte for byte as Cyrus stored it. Cyrus logs the
# agent's address (127.0.0.1); the client's is in the agent's log lines and,
# while the session lives, behind the query socket's QUERY PEER.
#
# TAP output. A missing package, agent or daemon makes the checks FAIL,
# never skip.
#   MK_KEEP_TMP=1   keep the temp dir (configs, logs, spool)
#   MAILKTLSD=path  the agent binary (default agent/mailktlsd)

# Checks are called through check(), which shellcheck cannot see.
# shellcheck disable=SC2317
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/daemons.sh
. "$here/lib/daemons.sh"
# shellcheck source=lib/cyrus.sh
. "$here/lib/cyrus.sh"
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"

MK_ROOT=$(cd "$here/../.." && pwd)
MAILKTLSD=${MAILKTLSD:-$MK_ROOT/agent/mailktlsd}
PLAN=24
CYC=("$MK_PY" "$here/lib/cyrus_clients.py")
SRC=127.0.0.2
SNI=mail.example.test
AGENT_PID='' HOLD_PID='' P_IMAPS='' P_POP3S='' P_IMAP='' P_POP3=''

cleanup() {
	[ -n "$HOLD_PID" ] && stop_pid "$HOLD_PID" hold-client
	stop_pid "$AGENT_PID" mailktlsd
	AGENT_PID=
	stop_cyrus
	mk_cleanup_tmp
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- the agent --------------------------------------------------------------

# listener NAME PORT PROTOCOL TLS BACKEND_PORT
listener() {
	printf '\n[listener %s]\nlisten = 127.0.0.1:%s\nprotocol = %s\ntls = %s\n' "$1" "$2" "$3" "$4"
	printf 'backend = 127.0.0.1:%s\n' "$5"
}

write_agent_conf() {
	AGENT_CONF=$MK_TMP/mailktlsd-cyrus.conf
	{
		printf '[global]\nworkers = 1\nlog = stderr\nquery_socket = %s\nktls = auto\n' \
			"$QUERY_SOCK"
		printf '\n[defaults]\nproxy_protocol = none\nalpn = strict\nhostname = %s\n' "$SNI"
		printf 'certificate = %s\nprivate_key = %s\n' "$CERTS/rsa.crt" "$CERTS/rsa.key" \
			"$CERTS/ecdsa.crt" "$CERTS/ecdsa.key"
		listener imaps "$P_IMAPS" imap implicit "$CYRUS_IMAP_AGENT_PORT"
		listener pop3s "$P_POP3S" pop3 implicit "$CYRUS_POP3_AGENT_PORT"
		listener imap "$P_IMAP" imap starttls "$CYRUS_IMAP_AGENT_PORT"
		listener pop3 "$P_POP3" pop3 starttls "$CYRUS_POP3_AGENT_PORT"
	} >"$AGENT_CONF"
}

start_agent() {
	P_IMAPS=$(free_port) P_POP3S=$(free_port) P_IMAP=$(free_port) P_POP3=$(free_port)
	QUERY_SOCK=$MK_TMP/query.sock
	AGENT_LOG=$MK_TMP/agent.log
	: >"$AGENT_LOG"
	write_agent_conf
	mk_start_agent "$AGENT_CONF" "$AGENT_LOG" "$P_IMAPS" "$P_POP3S" "$P_IMAP" "$P_POP3"
}

# --- the checks ---------------------------------------------------------------

c_config_ok() {
	"$MAILKTLSD" -t -c "$AGENT_CONF" 2>&1 | tee "$MK_TMP/t.out"
	grep -qx 'configuration ok' "$MK_TMP/t.out"
}

# The admin logs in with plaintext LOGIN on the -p service (no TLS there:
# the external layer is what -p asserts) and creates the user's mailbox.
c_create_mailbox() {
	"${CYC[@]}" create --port "$CYRUS_IMAP_AGENT_PORT" --user "$CYRUS_ADMIN" \
		--password "$CYRUS_ADMIN_PASS" --mailbox "user/$MK_USER"
}

# lmtpd stores the message below headers of its own (Return-Path, which
# replaces the message's, Received, X-Cyrus-Session-Id, X-Sieve): that
# stored file is what every client must get, byte for byte.
c_lmtp_deliver() {
	"${CYC[@]}" lmtp --socket "$CYRUS_LMTP_SOCKET" --rcpt "$MK_USER" \
		--msg "$MK_TEST_MSG" || return 1
	# Cyrus 3.6: "Delivered: <id> to mailbox: user.U"; 3.10: "... mailbox=<user.U> ..."
	wait_grep "$CYRUS_LOG" "lmtpunix\\[[0-9]+\\]: Delivered: .*( to mailbox: user\\.$MK_USER\$| mailbox=<user\\.$MK_USER>)" ||
		{ echo "no Delivered line:"; tail -n 5 "$CYRUS_LOG"; return 1; }
	STORED=$(find "$CYRUS_DIR/spool" -type f -name 1. | head -n 1)
	[ -n "$STORED" ] || { echo "no message file in $CYRUS_DIR/spool"; return 1; }
	cp "$STORED" "$MK_TMP/stored.eml"
	"$MK_PY" - "$MK_TEST_MSG" "$MK_TMP/stored.eml" <<'EOF'
import sys
sent, stored = (open(p, "rb").read() for p in sys.argv[1:])
head = stored.split(b"\r\n\r\n", 1)[0]
rest = sent.split(b"\r\n", 1)[1] if sent.startswith(b"Return-Path:") else sent
if not stored.endswith(rest) or not stored.startswith(b"Return-Path: <sender@example.test>\r\n") \
        or b"with LMTPA;" not in head:
    print("stored message is not the sent one below lmtpd's headers:")
    print(stored.decode(errors="replace"))
    sys.exit(1)
print(head.decode(errors="replace"))
EOF
}

c_plain_imap_refused() {
	"${CYC[@]}" plain-imap --port "$CYRUS_IMAP_PLAIN_PORT" --user "$MK_USER" \
		--password "$MK_PASS"
}

c_plain_pop3_refused() {
	"${CYC[@]}" plain-pop3 --port "$CYRUS_POP3_PLAIN_PORT" --user "$MK_USER" \
		--password "$MK_PASS"
}

# What Cyrus 3.6 logs about the refusals: nothing for LOGIN and USER (the
# "only available under a layer" answers are not logged), a badlogin line
# for each SASL attempt, never a login line from a plaintext service, and
# never the password.
c_plain_refusals_logged() {
	local l='([^ ]+ )?\[127\.0\.0\.1\] PLAIN \(-notset-\)'
	grep -E 'mk-it-cyrus/(imap|pop3)plain\[' "$CYRUS_LOG"
	grep -qE "mk-it-cyrus/imapplain\[[0-9]+\]: badlogin: $l " "$CYRUS_LOG" ||
		{ echo "no badlogin line from imapplain"; return 1; }
	grep -qE "mk-it-cyrus/pop3plain\[[0-9]+\]: badlogin: $l \[encryption needed to use mechanism\]" \
		"$CYRUS_LOG" || { echo "no badlogin line from pop3plain"; return 1; }
	! grep -E "mk-it-cyrus/(imap|pop3)plain\\[[0-9]+\\]: (login: |.*plaintext|.*$MK_USER)" \
		"$CYRUS_LOG" && ! grep -F -- "$MK_PASS" "$CYRUS_LOG"
}

# curl_mail SCHEME PORT URL-PATH OUTFILE [PASSWORD] - curl through the agent;
# --ssl-reqd makes the plain imap:// scheme upgrade with STARTTLS or fail.
curl_mail() {
	timeout 20 curl -sS --max-time 10 --interface "$SRC" --ssl-reqd \
		--resolve "$SNI:$2:127.0.0.1" --cacert "$CERTS/ca.pem" \
		-u "$MK_USER:${5:-$MK_PASS}" -o "$4" "$1://$SNI:$2/$3"
}

# c_curl_fetch SCHEME PORT URL-PATH - curl gets the stored message byte for byte.
c_curl_fetch() {
	local out=$MK_TMP/curl-$1-$2.eml
	curl_mail "$1" "$2" "$3" "$out" && same_file "$MK_TMP/stored.eml" "$out"
}

# Cyrus checks the password behind -p: a wrong one is refused and logged.
c_wrong_password() {
	if curl_mail imaps "$P_IMAPS" "INBOX;UID=1" "$MK_TMP/wrong.eml" wrong-password; then
		echo "fetched with a wrong password"
		return 1
	fi
	wait_grep "$CYRUS_LOG" "imapagent\\[[0-9]+\\]: badlogin: ([^ ]+ )?\\[127\\.0\\.0\\.1\\] [A-Z]+ .*$MK_USER.*authentication failure" ||
		{ echo "no badlogin line:"; tail -n 5 "$CYRUS_LOG"; return 1; }
}

# c_py_fetch SCRIPT COMMAND PORT - a Python client of lib/ (mkclients.py
# imap|pop3: Implicit TLS; starttls_clients.py py-imap|py-pop3: STARTTLS)
# gets the stored message byte for byte (poplib strips the line ends; the
# client writes CRLF back).
c_py_fetch() {
	local out=$MK_TMP/$2-$3.eml
	"$MK_PY" "$here/lib/$1" "$2" --port "$3" --src "$SRC" --cafile "$CERTS/ca.pem" \
		--user "$MK_USER" --password "$MK_PASS" --out "$out" &&
		same_file "$MK_TMP/stored.eml" "$out"
}

# openssl s_client -starttls imap, then LOGIN and FETCH typed inside TLS; the
# literal of the FETCH answer is cut out of what s_client printed.
c_s_client_starttls_imap() {
	printf 'a1 LOGIN %s %s\na2 SELECT INBOX\na3 FETCH 1 BODY.PEEK[]\na4 LOGOUT\n' \
		"$MK_USER" "$MK_PASS" |
		timeout 20 openssl s_client -connect "127.0.0.1:$P_IMAP" -bind "$SRC:0" \
			-starttls imap -servername "$SNI" -CAfile "$CERTS/ca.pem" \
			-verify_return_error -verify_hostname "$SNI" -crlf -quiet \
			>"$MK_TMP/s_client.out" 2>&1
	"$MK_PY" - "$MK_TMP/s_client.out" "$MK_TMP/s_client.eml" <<'EOF'
import re, sys
out = open(sys.argv[1], "rb").read()
if not re.search(rb"^a1 OK ", out, re.M):
    print("LOGIN not accepted:\n" + out.decode(errors="replace")[-1500:])
    sys.exit(1)
m = re.search(rb"\* 1 FETCH \(BODY\[\] \{([0-9]+)\}\r\n", out)
if not m:
    print("no FETCH literal:\n" + out.decode(errors="replace")[-1500:])
    sys.exit(1)
start = m.end()
open(sys.argv[2], "wb").write(out[start:start + int(m.group(1))])
EOF
	same_file "$MK_TMP/stored.eml" "$MK_TMP/s_client.eml"
}

# Every login through the agent reached a -p service and came, for Cyrus,
# from the agent's address: Cyrus 3.6 reads no PROXY header.
c_cyrus_logins() {	# SERVICE MIN-COUNT
	local re="mk-it-cyrus/$1\\[[0-9]+\\]: login: ([^ ]+ )?\\[127\\.0\\.0\\.1\\] $MK_USER [A-Za-z]+ User logged in"
	grep -E "mk-it-cyrus/$1\\[[0-9]+\\]: login: " "$CYRUS_LOG" | grep -v "$CYRUS_ADMIN" |
		tee "$MK_TMP/logins"
	[ "$(grep -cE -- "$re" "$MK_TMP/logins")" -ge "$2" ] &&
		! grep -q '127\.0\.0\.2' "$CYRUS_LOG"
}

c_agent_lines() {	# LISTENER: a tls line and a close line naming the client
	grep -E "listener=$1 " "$AGENT_LOG" | tail -n 4
	grep -qE "tls listener=$1 client=127\\.0\\.0\\.2:[0-9]+ version=TLSv1\\.[23] cipher=TLS_[A-Z0-9_]+ " \
		"$AGENT_LOG" &&
		grep -qE "close listener=$1 client=127\\.0\\.0\\.2:[0-9]+ .*end=" "$AGENT_LOG"
}

# query_socket LINE - the agent's answer to one line on its query socket.
query_socket() {
	"$MK_PY" - "$QUERY_SOCK" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while chunk := s.recv(4096):
    out += chunk
print(out.decode(errors="replace"), end="")
EOF
}

LOGIN_RE="imapagent\\[[0-9]+\\]: login: .* $MK_USER "	# through the agent, IMAP

# imapd_of_login N - the PID in the (N+1)th login line matching LOGIN_RE,
# once Cyrus has logged it.
imapd_of_login() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -cE -- "$LOGIN_RE" "$CYRUS_LOG")" -gt "$1" ] && break
		sleep 0.05
	done
	grep -E -- "$LOGIN_RE" "$CYRUS_LOG" | sed -n "$(($1 + 1))s/.*imapagent\[\([0-9]*\)\].*/\1/p"
}

# While a session lives: the imapd PID in Cyrus's login line -> its peer
# address (ss) -> the query socket's QUERY PEER -> the real client, the one
# the agent's tls line names.
c_client_of_live_session() {
	local ready=$MK_TMP/hold.ready release=$MK_TMP/hold.release client pid peer ans logins
	logins=$(grep -cE -- "$LOGIN_RE" "$CYRUS_LOG")
	"${CYC[@]}" hold --port "$P_IMAPS" --src "$SRC" --cafile "$CERTS/ca.pem" \
		--user "$MK_USER" --password "$MK_PASS" --ready "$ready" \
		--release "$release" >"$MK_TMP/hold.out" 2>&1 &
	HOLD_PID=$!
	wait_grep "$ready" . || { echo "the session did not start:"; cat "$MK_TMP/hold.out"; return 1; }
	client=$(cat "$ready")
	pid=$(imapd_of_login "$logins")
	[ -n "$pid" ] || { echo "no login line of this session in Cyrus's log"; return 1; }
	peer=$(ss -Htnp state established "( sport = :$CYRUS_IMAP_AGENT_PORT )" |
		grep "pid=$pid," | awk '{print $4}' | head -n 1)
	echo "client $client, imapd pid $pid, its peer $peer"
	[ -n "$peer" ] || { ss -tnp | grep ":$CYRUS_IMAP_AGENT_PORT"; return 1; }
	ans=$(query_socket "QUERY PEER $peer")
	echo "$ans"
	touch "$release"
	wait "$HOLD_PID"
	HOLD_PID=
	grep -qx "client=$client" <<<"$ans" && grep -qx 'listener=imaps' <<<"$ans" &&
		grep -qE "tls listener=imaps client=$client " "$AGENT_LOG"
}

# host_dev_log - what the host's /dev/log is (a system syslog's socket, or
# nothing): the test's namespace must not change it.
host_dev_log() {
	stat -c '%F %i %N' /dev/log 2>/dev/null || echo absent
}

# With Cyrus running, the host's /dev/log is what it was before (the link to
# the test's socket exists only in Cyrus's namespace); after stop_cyrus none
# of this instance's processes is left.
c_cyrus_gone() {
	local pids now
	now=$(host_dev_log)
	echo "host /dev/log before Cyrus: $HOST_DEV_LOG; with Cyrus running: $now"
	[ "$now" = "$HOST_DEV_LOG" ] || return 1
	stop_cyrus
	pids=$(grep -lF "$CYRUS_DIR/imapd.conf" /proc/[0-9]*/cmdline 2>/dev/null)
	[ -z "$pids" ] || { echo "left running: $pids"; return 1; }
}

# --- the run ------------------------------------------------------------------

echo "1..$PLAN"
mk_tmp_certs
MK_TEST_MSG=$MK_TMP/test-message.eml
[ -z "$fatal" ] && mk_write_test_message "$MK_TEST_MSG"
[ -z "$fatal" ] && { cyrus_unpack || fatal="Cyrus packages could not be unpacked"; }
HOST_DEV_LOG=$(host_dev_log)
[ -z "$fatal" ] && { start_cyrus || fatal="cyrus did not start"; }
[ -z "$fatal" ] && { start_agent || fatal="mailktlsd did not start"; }

check "mailktlsd accepts the Cyrus listeners (proxy_protocol = none)" c_config_ok
check "admin creates user/$MK_USER with plaintext LOGIN on the -p service" c_create_mailbox
check "lmtpd delivers the known message into user/$MK_USER" c_lmtp_deliver
check "Cyrus's plaintext IMAP port: LOGINDISABLED, LOGIN and AUTHENTICATE PLAIN refused" \
	c_plain_imap_refused
check "Cyrus's plaintext POP3 port: USER and AUTH PLAIN refused" c_plain_pop3_refused
check "Cyrus logs badlogin for the SASL attempts, no login from a plaintext service" \
	c_plain_refusals_logged
check "curl imaps through the agent fetches the stored message byte for byte" \
	c_curl_fetch imaps "$P_IMAPS" "INBOX;UID=1"
check "curl pop3s through the agent retrieves it byte for byte" c_curl_fetch pop3s "$P_POP3S" 1
check "curl imap --ssl-reqd (STARTTLS) through the agent fetches it byte for byte" \
	c_curl_fetch imap "$P_IMAP" "INBOX;UID=1"
check "python imaplib (imaps) fetches it byte for byte" c_py_fetch mkclients.py imap "$P_IMAPS"
check "python poplib (pop3s) retrieves it byte for byte" c_py_fetch mkclients.py pop3 "$P_POP3S"
check "python imaplib starttls() through the agent fetches it byte for byte" \
	c_py_fetch starttls_clients.py py-imap "$P_IMAP"
check "python poplib stls() through the agent retrieves it byte for byte" \
	c_py_fetch starttls_clients.py py-pop3 "$P_POP3"
check "openssl s_client -starttls imap: LOGIN and FETCH, byte for byte" c_s_client_starttls_imap
check "a wrong password through the agent is refused, Cyrus logs badlogin" c_wrong_password
check "Cyrus logs the IMAP logins through the agent, from 127.0.0.1 (the agent)" \
	c_cyrus_logins imapagent 5
check "Cyrus logs the POP3 logins through the agent, from 127.0.0.1 (the agent)" \
	c_cyrus_logins pop3agent 3
check "agent logs tls and close lines with client=127.0.0.2 on imaps" c_agent_lines imaps
check "agent logs tls and close lines with client=127.0.0.2 on pop3s" c_agent_lines pop3s
check "agent logs tls and close lines with client=127.0.0.2 on imap (STARTTLS)" \
	c_agent_lines imap
check "agent logs tls and close lines with client=127.0.0.2 on pop3 (STARTTLS)" \
	c_agent_lines pop3
check "live session: Cyrus's imapd peer -> QUERY PEER -> the real client" \
	c_client_of_live_session
check "mailktlsd still runs" kill -0 "$AGENT_PID"
check "host's /dev/log unchanged; after stopping Cyrus none of its processes is left" \
	c_cyrus_gone
check_done "$PLAN" "$CYRUS_LOG" cyrus
