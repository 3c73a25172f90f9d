#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Exim 4.96 behind mailktlsd, with the recipe of etc/exim4/mailktls.conf:
# real clients (swaks, Python smtplib) -> agent (Implicit TLS and STARTTLS,
# IPv4 and IPv6) -> PROXY v2 -> real Exim (exim4-daemon-heavy, fetched and
# unpacked by lib/exim.sh) -> a Maildir. Exim's own Received header must
# carry the RFC 8314 section 4.3 clause, "tls" and the cipher the agent
# logged for that client, which Exim asks the agent's query socket for; a
# connection the agent does not know, or a missing socket, gives a valid
# header without the clause and the mail is still accepted.
#
# PROXY header limits: a client sending a 253-octet SNI from [::1] makes a
# 358-byte header in full, which Exim (232 bytes) refuses with "503 Command
# refused, required Proxy negotiation failed"; within the default
# proxy_header_max = 232 the agent leaves AUTHORITY out and mail flows. The
# same client reaches Dovecot (which reads 1500 bytes, and needs the
# PP2_CLIENT_SSL flag to count the session as secured) with the limit 232
# and with 1500.
#
# TAP output. A missing prerequisite makes the checks FAIL, never skip.
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
# shellcheck source=lib/exim.sh
. "$here/lib/exim.sh"

PLAN=28
EXC=("$MK_PY" "$here/lib/eximclients.py")
MKC=("$MK_PY" "$here/lib/mkclients.py")
SRC=127.0.0.2
# The longest name an SNI can carry: 253 octets in labels of 63.
LONG_SNI=$(printf 'a%.0s' {1..63}).$(printf 'b%.0s' {1..63}).$(printf 'c%.0s' {1..63}).$(printf 'd%.0s' {1..61})
AGENT_PID=
AGENT_LOG=

cleanup() {
	stop_pid "$AGENT_PID" mailktlsd
	stop_exim
	stop_dovecot
	mk_cleanup_tmp
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The agent's ports, set by start_agent_for_exim; empty if the test bed
# failed before it (the checks then fail with the reason in $fatal).
P_SUBS= P_SUBS6= P_SUB= P_BIG6= P_IMAPS6= P_IMAPS6BIG=

# agent_listener NAME LISTEN PROTOCOL TLS BACKEND_PORT [EXTRA-LINE...]
agent_listener() {
	printf '\n[listener %s]\nlisten = %s\nprotocol = %s\ntls = %s\nbackend = 127.0.0.1:%s\n' \
		"$1" "$2" "$3" "$4" "$5"
	shift 5
	[ $# -gt 0 ] && printf '%s\n' "$@"
	return 0
}

# start_agent_for_exim - mailktlsd in front of Exim and Dovecot. Its query
# socket gets the group Debian-exim, as the recipe asks (mode 0660).
start_agent_for_exim() {
	local conf=$MK_TMP/mailktlsd.conf i
	P_SUBS=$(free_port) P_SUBS6=$(free_port) P_SUB=$(free_port) P_BIG6=$(free_port)
	P_IMAPS6=$(free_port) P_IMAPS6BIG=$(free_port)
	AGENT_LOG=$MK_TMP/agent.log
	{
		printf '[global]\nworkers = 1\nlog = stderr\nquery_socket = %s\n' "$QUERY_SOCK"
		printf '\n[defaults]\nproxy_protocol = v2\n'
		printf 'certificate = %s/%s.crt\nprivate_key = %s/%s.key\n' \
			"$CERTS" ecdsa "$CERTS" ecdsa "$CERTS" rsa "$CERTS" rsa
		agent_listener exims 127.0.0.1:"$P_SUBS" submission implicit "$EXIM_PORT"
		agent_listener exims6 "[::1]:$P_SUBS6" submission implicit "$EXIM_PORT"
		agent_listener exim587 127.0.0.1:"$P_SUB" submission starttls "$EXIM_PORT" \
			"hostname = mail.example.test"
		agent_listener exims6big "[::1]:$P_BIG6" submission implicit "$EXIM_PORT" \
			"proxy_header_max = 1500"
		agent_listener imaps6 "[::1]:$P_IMAPS6" imap implicit "$DOVECOT_IMAP_PORT"
		agent_listener imaps6big "[::1]:$P_IMAPS6BIG" imap implicit "$DOVECOT_IMAP_PORT" \
			"proxy_header_max = 1500"
	} >"$conf"
	"$MAILKTLSD" -c "$conf" -t || return 1
	"$MAILKTLSD" -c "$conf" >>"$AGENT_LOG" 2>&1 &
	AGENT_PID=$!
	for ((i = 0; i < 200; i++)); do
		[ -S "$QUERY_SOCK" ] && break
		sleep 0.05
	done
	chgrp Debian-exim "$QUERY_SOCK" || return 1
	wait_port 127.0.0.1 "$P_SUBS" && wait_port 127.0.0.1 "$P_SUB" &&
		wait_port ::1 "$P_SUBS6" && wait_port ::1 "$P_IMAPS6BIG"
}

# write_message FILE TOKEN - a message whose Message-ID is TOKEN@example.test.
write_message() {
	printf '%s\r\n' "From: Sender <sender@example.test>" "To: <rcpt@example.test>" \
		"Subject: mailktls exim $2" "Message-ID: <$2@example.test>" "" \
		"Body of the Exim test, token $2." >"$1"
}

# swaks_send TOKEN SWAKS-ARGS... - submit the message of TOKEN, expect 250.
swaks_send() {
	local token=$1 out=$MK_TMP/swaks-$1.out rc
	shift
	write_message "$MK_TMP/$token.eml" "$token"
	timeout 30 swaks --helo client.example.test --from sender@example.test \
		--to rcpt@example.test --data "@$MK_TMP/$token.eml" --timeout 10 "$@" \
		>"$out" 2>&1
	rc=$?
	grep -E '^(<~|<\*\*|\*\*\*)|STARTTLS' "$out" | tail -n 12
	[ "$rc" -eq 0 ] && grep -q '<~  250 OK id=' "$out"
}

# received TOKEN [ARGS...] - Exim's Received header of that message (see
# eximclients.py received).
received() {
	local token=$1
	shift
	"${EXC[@]}" received --maildir "$EXIM_MAILDIR" --token "$token" --mainlog "$EXIM_LOG" \
		--agentlog "$AGENT_LOG" "$@"
}

c_fetch() {
	exim_fetch && exim_user && "$EXIM_BIN" -bV | head -n 1 &&
		"$EXIM_BIN" -bV | grep -q 'Support for:.* PROXY'
}

c_exim_refuses_without_header() {
	"${EXC[@]}" refused --port "$EXIM_PORT"
}

c_swaks_implicit() {
	swaks_send swaks-implicit --server 127.0.0.1 --port "$P_SUBS" --tls-on-connect \
		--tls-sni mail.example.test --local-interface "$SRC"
}

c_smtplib_tls12() {
	write_message "$MK_TMP/smtplib-tls12.eml" smtplib-tls12
	"${EXC[@]}" smtp12 --port "$P_SUBS" --src "$SRC" --msg "$MK_TMP/smtplib-tls12.eml"
}

c_swaks_starttls() {
	swaks_send swaks-starttls --server 127.0.0.1 --port "$P_SUB" --tls \
		--local-interface "$SRC"
}

c_swaks_long_sni_v6() {	# TOKEN PORT
	swaks_send "$1" -6 --server ::1 --port "$2" --tls-on-connect --tls-sni "$LONG_SNI" \
		--local-interface ::1
}

# The old behaviour, kept on one listener (proxy_header_max = 1500): the
# whole 358-byte header, and Exim refuses the session.
c_exim_refuses_big_header() {
	c_swaks_long_sni_v6 long-sni-big "$P_BIG6" && return 1
	grep -q 'Proxy negotiation failed' "$MK_TMP/swaks-long-sni-big.out"
}

c_agent_omitted() {	# LISTENER LEN
	grep -E "proxy_header listener=$1 " "$AGENT_LOG" | tail -n 3
	grep -qE "proxy_header listener=$1 client=\\[::1\\]:[0-9]+ len=$2 max=232 omitted=authority\$" \
		"$AGENT_LOG"
}

c_agent_omitted_nothing() {	# LISTENER
	grep -E "listener=$1 " "$AGENT_LOG" | tail -n 3
	grep -qE "tls listener=$1 " "$AGENT_LOG" && ! grep -qE "proxy_header listener=$1 " "$AGENT_LOG"
}

c_unknown_connection() {
	write_message "$MK_TMP/raw-unknown.eml" raw-unknown
	"${EXC[@]}" raw --port "$EXIM_PORT" --client 192.0.2.7:4242 --msg "$MK_TMP/raw-unknown.eml"
}

# Dovecot 2.4 counts a PROXY connection whose two addresses are equal (here
# [::1] to [::1]) as secured even without the TLV: there the test bed checks
# that, and the IPv6 checks below show the header's size only
# (implicit_tls_test.sh shows the TLV at work from 127.0.0.2 on every version).
c_dovecot_needs_tlv_v6() {
	local args=(dovecot-v6 --port "$DOVECOT_IMAP_PORT" --user "$MK_USER" --password "$MK_PASS")
	if dovecot_24; then
		"${EXC[@]}" "${args[@]}" && "${EXC[@]}" "${args[@]}" --with-ssl-tlv
		return
	fi
	if "${EXC[@]}" "${args[@]}"; then
		echo "LOGIN from [::1] accepted without SSL TLV: the test bed proves nothing"
		return 1
	fi
	"${EXC[@]}" "${args[@]}" --with-ssl-tlv
}

c_dovecot_long_sni_v6() {	# PORT
	"${MKC[@]}" imap --host ::1 --src ::1 --port "$1" --sni "$LONG_SNI" --alpn imap \
		--user "$MK_USER" --password "$MK_PASS" --out "$MK_TMP/imap-$1.eml" &&
		same_file "$MK_TEST_MSG" "$MK_TMP/imap-$1.eml"
}

# c_dovecot_secured N - Dovecot logged N logins of $MK_USER from [::1] (the
# test bed's own and the agent's), every one of them secured.
c_dovecot_secured() {
	local re="imap-login: Info: $DOVECOT_LOGIN user=<$MK_USER>, method=[A-Z]+, rip=::1, lip=::1, .* $DOVECOT_SECURED"
	grep -E "imap-login: Info: $DOVECOT_LOGIN user=<$MK_USER>.* rip=::1," "$DOVECOT_LOG" \
		>"$MK_TMP/logins6"
	cat "$MK_TMP/logins6"
	[ "$(grep -cE -- "$re" "$MK_TMP/logins6")" -eq "$1" ] &&
		[ "$(wc -l <"$MK_TMP/logins6")" -eq "$1" ]
}

c_socket_gone() {
	rm -f "$QUERY_SOCK" && [ ! -e "$QUERY_SOCK" ] &&
		swaks_send swaks-nosocket --server 127.0.0.1 --port "$P_SUBS" --tls-on-connect \
			--local-interface "$SRC"
}

# mailktlsd -t names the line of a limit that cannot hold an IPv6 header.
c_config_check() {
	local conf=$MK_TMP/bad.conf out
	{
		printf '[defaults]\ncertificate = %s/ecdsa.crt\nprivate_key = %s/ecdsa.key\n' \
			"$CERTS" "$CERTS"
		agent_listener exims6 "[::1]:465" submission implicit 25 "proxy_header_max = 40"
	} >"$conf"
	out=$("$MAILKTLSD" -c "$conf" -t 2>&1) && { echo "accepted: $out"; return 1; }
	echo "$out"
	[ "$out" = "$conf:10: listener 'exims6': proxy_header_max = 40 is below the 52 bytes of a PROXY v2 header with IPv6 addresses and no TLV" ]
}

# Nothing in Exim's panic log but the notice that -C costs root privilege.
c_no_panic() {
	[ -e "$EXIM_PANICLOG" ] || return 0
	grep -v 'exim user lost privilege for using -C option' "$EXIM_PANICLOG" && return 1
	return 0
}

# --- set up -----------------------------------------------------------------

echo "1..$PLAN"
mk_setup_tmp || { MK_TMP=/nonexistent; fatal="no temp dir"; }
CERTS=$MK_TMP/certs
QUERY_SOCK=$MK_TMP/query.sock
[ -z "$fatal" ] && { mk_gen_certs "$CERTS" || fatal="openssl could not make test certificates"; }
check "exim4-daemon-heavy fetched (apt-get download, dpkg -x), PROXY support, Debian-exim user" \
	c_fetch || fatal=${fatal:-"no usable exim4-daemon-heavy"}
[ -z "$fatal" ] && { start_dovecot || fatal="dovecot did not start"; }
check "exim starts with etc/exim4/mailktls.conf included" start_exim "$QUERY_SOCK" ||
	fatal=${fatal:-"exim did not start"}
check "mailktlsd starts (Exim and Dovecot listeners, IPv4 and IPv6)" start_agent_for_exim ||
	fatal=${fatal:-"mailktlsd did not start"}

# --- checks -----------------------------------------------------------------

check "test bed: Exim refuses a session without PROXY header on the agent's port (503)" \
	c_exim_refuses_without_header
check "swaks --tls-on-connect (TLS 1.3) through the agent: Exim accepts" c_swaks_implicit
check "delivered; Exim's Received header has 'tls' + the cipher the agent logged for it" \
	received swaks-implicit --client-ip "$SRC"
check "smtplib SMTP_SSL, TLS 1.2 ECDHE-ECDSA-CHACHA20-POLY1305: Exim accepts" c_smtplib_tls12
check "delivered; Received has tls TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 as logged" \
	received smtplib-tls12 --client-ip "$SRC"
check "swaks STARTTLS on the agent's submission port: Exim accepts" c_swaks_starttls
check "delivered; Received has the clause of the STARTTLS session" \
	received swaks-starttls --client-ip "$SRC"
check "253-octet SNI from [::1], proxy_header_max 1500: Exim refuses (Proxy negotiation failed)" \
	c_exim_refuses_big_header
check "253-octet SNI from [::1], default proxy_header_max 232: Exim accepts" \
	c_swaks_long_sni_v6 long-sni-232 "$P_SUBS6"
check "delivered; Exim saw [::1] and the Received header has the clause" \
	received long-sni-232 --client-ip ::1
check "agent: that header was 102 bytes, AUTHORITY left out (logged)" c_agent_omitted exims6 102
check "connection unknown to the agent (PROXY header by hand): Exim accepts" c_unknown_connection
check "delivered; valid Received header without a tls clause" received raw-unknown --no-clause
if dovecot_24; then
	V6_BED=2	# the test bed's logins from [::1]: with and without the TLV
	check "test bed: Dovecot $DOVECOT_VERSION takes LOGIN from [::1] to [::1] with or without PP2_TYPE_SSL" \
		c_dovecot_needs_tlv_v6
else
	V6_BED=1
	check "test bed: Dovecot refuses LOGIN from [::1] unless PROXY v2 has PP2_TYPE_SSL" \
		c_dovecot_needs_tlv_v6
fi
check "253-octet SNI from [::1] to Dovecot, proxy_header_max 232: login and fetch" \
	c_dovecot_long_sni_v6 "$P_IMAPS6"
check "agent: that header was 102 bytes, AUTHORITY left out, SSL kept" \
	c_agent_omitted imaps6 102
check "Dovecot logged that login from [::1] as secured" c_dovecot_secured $((V6_BED + 1))
check "253-octet SNI from [::1] to Dovecot, proxy_header_max 1500: login and fetch" \
	c_dovecot_long_sni_v6 "$P_IMAPS6BIG"
check "agent: nothing left out of that header (AUTHORITY kept)" c_agent_omitted_nothing imaps6big
check "Dovecot logged both logins from [::1] as secured" c_dovecot_secured $((V6_BED + 2))
check "query socket removed: swaks through the agent, Exim still accepts" c_socket_gone
check "delivered; valid Received header without a tls clause" received swaks-nosocket --no-clause
check "Exim's panic log has no expansion failure" c_no_panic
check "mailktlsd -t: proxy_header_max below an IPv6 header's 52 bytes is FILE:LINE: refused" \
	c_config_check
check "agent still running after all of the above" agent_alive

check_done "$PLAN" "$AGENT_LOG" "agent"
