#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# accept_proxy: a real haproxy (mode tcp, send-proxy-v2) in front of
# mailktlsd in front of a real Dovecot that requires PROXY v2 from the
# agent. A client on 127.0.0.2 (and on ::1) logs in through
# haproxy -> mailktlsd -> Dovecot; Dovecot, the agent's tls line and the
# query socket must all name the client haproxy had, not haproxy. Raw
# connections straight to the agent then send headers of our own making:
# from an untrusted address, damaged, PROXY v1, none at all (TLS at once),
# nothing, too long; each is closed before TLS with a proxy_refused line.
#
# TAP output. A missing haproxy, Dovecot or agent makes the checks FAIL.
#
#   MK_KEEP_TMP=1  keep the temp dir (configs, logs) for a look

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

PLAN=27
PIC=("$MK_PY" "$here/lib/proxy_in_clients.py")
CTL=${MAILKTLSCTL:-$MK_ROOT/agent/mailktlsctl}
AGENT_PID='' HAPROXY_PID=''

cleanup() {
	stop_pid "$HAPROXY_PID" haproxy
	stop_pid "$AGENT_PID" mailktlsd
	stop_dovecot
	mk_cleanup_tmp
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# write_agent_conf FILE - the two accept_proxy listeners.
write_agent_conf() {
	printf '[global]\nworkers = 1\nlog = stderr\nquery_socket = %s\nktls = auto\n' \
		"$MK_TMP/query.sock"
	printf 'metrics_listen = unix:%s\n' "$MK_TMP/metrics.sock"
	mk_agent_listener lb "$LB_PORT" imap "$DOVECOT_IMAP_PORT" "$CERTS"
	cat <<EOF
accept_proxy = yes
trusted_proxies = 127.0.0.1/32 ::1/128
proxy_timeout = 1s

[listener lbstarttls]
listen = 127.0.0.1:$LBS_PORT
protocol = imap
tls = starttls
backend = 127.0.0.1:$DOVECOT_IMAP_PORT
certificate = $CERTS/rsa.crt
private_key = $CERTS/rsa.key
accept_proxy = yes
trusted_proxies = 127.0.0.1/32
proxy_timeout = 1s
EOF
}

write_haproxy_conf() {
	cat <<EOF
global
	log stderr format short local0 info
defaults
	mode tcp
	log global
	option tcplog
	timeout connect 2s
	timeout client 30s
	timeout server 30s
	retries 0
frontend lb4
	bind 127.0.0.1:$H4_PORT
	default_backend agent
frontend lb6
	bind [::1]:$H6_PORT
	default_backend agent
frontend lbs
	bind 127.0.0.1:$HS_PORT
	default_backend agent_starttls
backend agent
	server mailktlsd 127.0.0.1:$LB_PORT send-proxy-v2
backend agent_starttls
	server mailktlsd 127.0.0.1:$LBS_PORT send-proxy-v2
EOF
}

start_all() {
	LB_PORT=$(free_port) LBS_PORT=$(free_port)
	H4_PORT=$(free_port) H6_PORT=$(free_port) HS_PORT=$(free_port)
	AGENT_LOG=$MK_TMP/agent.log HAPROXY_LOG=$MK_TMP/haproxy.log
	write_agent_conf >"$MK_TMP/mailktlsd.conf"
	write_haproxy_conf >"$MK_TMP/haproxy.cfg"
	command -v haproxy >/dev/null || { fatal="haproxy is not installed"; return 0; }
	[ -x "$MAILKTLSD" ] || { fatal="$MAILKTLSD is missing (run make)"; return 0; }
	"$MAILKTLSD" -c "$MK_TMP/mailktlsd.conf" >"$AGENT_LOG" 2>&1 &
	AGENT_PID=$!
	haproxy -f "$MK_TMP/haproxy.cfg" -db >"$HAPROXY_LOG" 2>&1 &
	HAPROXY_PID=$!
	if ! wait_port 127.0.0.1 "$LB_PORT" || ! wait_port 127.0.0.1 "$LBS_PORT"; then
		fatal="mailktlsd did not listen"
	elif ! wait_port 127.0.0.1 "$H4_PORT" || ! wait_port ::1 "$H6_PORT" ||
		! wait_port 127.0.0.1 "$HS_PORT"; then
		fatal="haproxy did not listen"
	fi
	return 0
}

echo "1..$PLAN"
mk_tmp_certs
[ -z "$fatal" ] && { start_dovecot || fatal="dovecot did not start"; }
[ -z "$fatal" ] && start_all

# --- configuration -----------------------------------------------------------

c_conf_needs_trusted() {
	local f=$MK_TMP/bad.conf out
	sed '/^trusted_proxies = 127.0.0.1\/32 ::1\/128$/d' "$MK_TMP/mailktlsd.conf" >"$f"
	out=$("$MAILKTLSD" -t -c "$f" 2>&1) && { echo "accepted: $out"; return 1; }
	echo "$out"
	local line
	line=$(grep -n '^accept_proxy = yes' "$f" | head -n1 | cut -d: -f1)
	grep -qF "$f:$line: listener 'lb': accept_proxy = yes needs trusted_proxies" <<<"$out"
}
check "-t: accept_proxy = yes without trusted_proxies is FILE:LINE" c_conf_needs_trusted

# --- through haproxy ---------------------------------------------------------

# login_via PORT SRC [--starttls] - log in through haproxy, holding the session
# until the query socket was asked about it. Sets CPORT.
login_via() {
	local port=$1 src=$2 host=127.0.0.1
	shift 2
	[[ $src == *:* ]] && host=::1
	rm -f "$MK_TMP/cport" "$MK_TMP/release"
	"${PIC[@]}" login --host "$host" --port "$port" --src "$src" --cafile "$CERTS/ca.pem" \
		--user "$MK_USER" --password "$MK_PASS" --port-file "$MK_TMP/cport" \
		--release "$MK_TMP/release" "$@" >"$MK_TMP/login.out" 2>&1 &
	LOGIN_PID=$!
	wait_grep "$MK_TMP/cport" '^[0-9]+$' 15 || {
		touch "$MK_TMP/release"; wait "$LOGIN_PID"; cat "$MK_TMP/login.out"; return 1; }
	CPORT=$(cat "$MK_TMP/cport")
}

# login_done - release the held session; the client's status.
login_done() {
	touch "$MK_TMP/release"
	wait "$LOGIN_PID"
	local rc=$?
	cat "$MK_TMP/login.out"
	return "$rc"
}

c_login_v4() {
	login_via "$H4_PORT" 127.0.0.2 || return 1
	"$CTL" -s "$MK_TMP/query.sock" query --addr "127.0.0.2:$CPORT" >"$MK_TMP/query.out" 2>&1
	QUERY_RC=$?
	"$CTL" -s "$MK_TMP/query.sock" received --addr "127.0.0.2:$CPORT" >"$MK_TMP/clause.out" 2>&1
	CLAUSE_RC=$?
	login_done
}
check "IMAP login from 127.0.0.2 through haproxy -> mailktlsd -> Dovecot" c_login_v4
V4_PORT=${CPORT:-0}

c_query_v4() {
	cat "$MK_TMP/query.out"
	[ "${QUERY_RC:-1}" -eq 0 ] && grep -q "client=127.0.0.2:$V4_PORT" "$MK_TMP/query.out" &&
		grep -q 'listener=lb' "$MK_TMP/query.out" && grep -q 'version=TLSv1.3' "$MK_TMP/query.out"
}
check "query socket: QUERY ADDR 127.0.0.2:PORT finds the session" c_query_v4

# What mailktls-milter asks with the client address Postfix got from the
# agent's own PROXY header: CLAUSE by that address.
c_clause_v4() {
	cat "$MK_TMP/clause.out"
	local cipher
	cipher=$(grep -o 'cipher=[A-Z0-9_]*' "$MK_TMP/query.out" | cut -d= -f2)
	[ "${CLAUSE_RC:-1}" -eq 0 ] && [ -n "$cipher" ] && grep -qx "tls $cipher" "$MK_TMP/clause.out"
}
check "query socket: CLAUSE for 127.0.0.2:PORT (the milter's question) is the tls clause" c_clause_v4

c_tls_line() {	# LISTENER CLIENT
	wait_grep "$AGENT_LOG" "tls listener=$1 client=$2 " 5 ||
		{ grep 'tls listener' "$AGENT_LOG"; return 1; }
}
check "agent's tls line: client=127.0.0.2:PORT (haproxy's client)" \
	c_tls_line lb "127\\.0\\.0\\.2:$V4_PORT"

c_dovecot_rip() {	# RIP-REGEX
	wait_grep "$DOVECOT_LOG" "imap-login: Info: $DOVECOT_LOGIN user=<$MK_USER>, method=[A-Z]+, rip=$1, .*$DOVECOT_SECURED" 5 ||
		{ grep 'Login' "$DOVECOT_LOG"; return 1; }
}
check "Dovecot logs rip=127.0.0.2, secured" c_dovecot_rip '127\.0\.0\.2'

c_close_line() {
	wait_grep "$AGENT_LOG" "close listener=lb client=127\\.0\\.0\\.2:$V4_PORT .*end=" 5 ||
		{ grep 'close listener' "$AGENT_LOG"; return 1; }
}
check "agent's close line: client=127.0.0.2:PORT" c_close_line

c_login_v6() {
	login_via "$H6_PORT" ::1 && login_done
}
check "IMAP login from ::1 through haproxy (an IPv6 client in the header)" c_login_v6
V6_PORT=${CPORT:-0}
check "agent's tls line: client=[::1]:PORT" c_tls_line lb "\\[::1\\]:$V6_PORT"
check "Dovecot logs rip=::1, lip=::1 (haproxy's IPv6 frontend)" c_dovecot_rip '::1, lip=::1'

c_login_starttls() {
	login_via "$HS_PORT" 127.0.0.2 --starttls && login_done
}
check "STARTTLS listener: IMAP STARTTLS login from 127.0.0.2 through haproxy" c_login_starttls
check "STARTTLS listener's tls line: client=127.0.0.2:PORT" \
	c_tls_line lbstarttls "127\\.0\\.0\\.2:${CPORT:-0}"

# --- raw headers straight to the agent ----------------------------------------

check "header and the first command in one segment: the command is answered" \
	"${PIC[@]}" pipelined --port "$LBS_PORT" --src 127.0.0.1 --client 198.51.100.8:4343

c_coalesced() {
	"${PIC[@]}" header --port "$LB_PORT" --src 127.0.0.1 --kind valid \
		--client 198.51.100.7:4242 --cafile "$CERTS/ca.pem" --expect tls \
		--user "$MK_USER" --password "$MK_PASS" &&
		c_tls_line lb '198\.51\.100\.7:4242'
}
check "header and ClientHello in one segment: TLS, login, client from the header" c_coalesced
# The header's destination (192.0.2.1:993) goes on to Dovecot as its lip.
check "Dovecot logs rip=198.51.100.7, lip=192.0.2.1 (both from the header)" \
	c_dovecot_rip '198\.51\.100\.7, lip=192\.0\.2\.1'

c_local() {
	"${PIC[@]}" header --port "$LB_PORT" --src 127.0.0.1 --kind local \
		--cafile "$CERTS/ca.pem" --expect tls && c_tls_line lb '127\.0\.0\.1:[0-9]+'
}
check "LOCAL command (health check): accepted with the connection's own address" c_local

# refused KIND SRC REASON [ARGS...] - closed before TLS, and the close line
# says why (the proxy_refused warning is rate-limited: a check below).
refused() {
	local kind=$1 src=$2 reason=$3 re
	shift 3
	"${PIC[@]}" header --port "$LB_PORT" --src "$src" --kind "$kind" --expect closed "$@" ||
		return 1
	re="close listener=lb client=${src//./\\.}:[0-9]+ bytes_in=0 bytes_out=0 .* end=error:proxy_$reason$"
	wait_grep "$AGENT_LOG" "$re" 2 && return 0
	echo "no close line with end=error:proxy_$reason"
	grep 'end=error:proxy' "$AGENT_LOG" | tail -n 5
	return 1
}

check "valid header from 127.0.0.3 (not trusted): closed at once, reason=untrusted" \
	refused untrusted 127.0.0.3 untrusted --client 198.51.100.9:4444 --within 0.5
c_no_tls_untrusted() {
	! grep -E 'tls listener=lb client=(198\.51\.100\.9|127\.0\.0\.3)' "$AGENT_LOG"
}
check "... and no TLS for it, under either address" c_no_tls_untrusted
check "header with a wrong CRC32C: closed, reason=malformed" \
	refused bad-crc 127.0.0.1 malformed --within 0.5
check "header with a TLV past its end: closed, reason=malformed" \
	refused bad-tlv 127.0.0.1 malformed --within 0.5
check "PROXY v1 text header: closed, reason=not_proxy_v2" \
	refused v1 127.0.0.1 not_proxy_v2 --within 0.5
check "TLS straight away, no header: closed at once, reason=not_proxy_v2" \
	refused none 127.0.0.1 not_proxy_v2 --within 0.5
check "header announcing 60000 bytes: closed, reason=too_long" \
	refused too-long 127.0.0.1 too_long --within 0.5

c_refused_lines() {
	grep -E 'proxy_refused listener=lb peer=127\.0\.0\.3:[0-9]+ reason=untrusted$' "$AGENT_LOG" &&
		grep -E 'proxy_refused listener=lb peer=127\.0\.0\.1:[0-9]+ reason=malformed$' "$AGENT_LOG" &&
		c_flood
}
# c_flood - ten refusals at once: at most MK_LOG_BURST (5) warnings a second,
# then one line counting the rest.
c_flood() {
	local before after
	sleep 1.1	# a fresh window
	before=$(grep -c 'reason=untrusted$' "$AGENT_LOG")
	"${PIC[@]}" header --port "$LB_PORT" --src 127.0.0.3 --kind untrusted \
		--expect closed --within 2 --repeat 10 || return 1
	wait_grep "$AGENT_LOG" 'suppressed [0-9]+ kind=proxy_refused window=1s' 4 || return 1
	after=$(grep -c 'reason=untrusted$' "$AGENT_LOG")
	echo "untrusted warnings: $before before, $after after ten refusals"
	[ $((after - before)) -le 5 ]
}
check "proxy_refused warnings name peer and reason, and are rate-limited" c_refused_lines

c_silent() {
	local start end
	start=$(date +%s%N)
	refused silent 127.0.0.1 timeout --within 4 || return 1
	end=$(date +%s%N)
	echo "closed after $(( (end - start) / 1000000 )) ms"
	[ $(( (end - start) / 1000000 )) -ge 900 ]
}
check "nothing sent: closed after proxy_timeout (1s), reason=timeout" c_silent

# Every refusal above counted: 7 kinds, 10 more untrusted in the flood.
# Each refusal ends one connection with end=error:proxy_*, and close lines
# are never rate-limited: the counter of each listener must match them.
c_metrics() {
	local out l n closed
	out=$("$CTL" metrics "unix:$MK_TMP/metrics.sock") || { echo "$out"; return 1; }
	grep 'proxy' <<<"$out"
	for l in lb lbstarttls; do
		n=$(sed -n 's/^mailktls_proxy_refused_total{listener="'$l'"} //p' <<<"$out")
		closed=$(grep -c "close listener=$l client=.* end=error:proxy_" "$AGENT_LOG")
		echo "$l: counter ${n:-none}, close lines $closed"
		[ "${n:-x}" = "$closed" ] || return 1
	done
	n=$(sed -n 's/^mailktls_proxy_refused_total{listener="lb"} //p' <<<"$out")
	[ "${n:-0}" -ge 17 ]
}
check "metrics: mailktls_proxy_refused_total counts the refusals" c_metrics

c_alive() {
	kill -0 "$AGENT_PID" 2>/dev/null && kill -0 "$HAPROXY_PID" 2>/dev/null
}
check "agent and haproxy still running" c_alive

check_done "$PLAN" "${AGENT_LOG:-}" "agent"
