#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# mailktls-milter with real Postfix on kernel TLS: two openssl s_client
# sessions at once, with different ciphers -> mailktlsd (ktls = require,
# no query socket) -> PROXY v2 -> Postfix smtpd -> mailktls-milter, which
# can only learn the cipher from mailktls.ko -> virtual(8) -> Maildir.
# Each delivered message must carry its own client's cipher in the
# milter's Received header, directly below Postfix's own.
#
# busybox sh, in the VM (scripts/vm-run.sh). Postfix comes from
# tests/vm/extra-files; its users are added to the VM's /etc/passwd here.
# Checks are called through check(), which shellcheck cannot see.
# shellcheck disable=SC2317
set -u
n=0
failed=0
D=$(mktemp -d /tmp/mk-pf.XXXXXX)
chmod 755 "$D"
AGENT_PORT=10465
SMTPD_PORT=10587
MILTER_PORT=18891
MAILDIR=$D/vmail/rcpt
MACROS='j {daemon_name} {daemon_addr} {daemon_port} {client_addr} {client_port} {client_name} v _'

check() {	# description command...
	desc=$1
	shift
	n=$((n + 1))
	if "$@" >"$D/check.out" 2>&1; then
		echo "ok $n - $desc"
	else
		echo "not ok $n - $desc"
		sed 's/^/#   /' "$D/check.out" | tail -n 25
		failed=1
	fi
}

wait_for() {	# seconds command...: until the command succeeds
	w=$(($1 * 10))
	shift
	while [ "$w" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		w=$((w - 1))
	done
	return 1
}

listening() {	# port
	netstat -ltn 2>/dev/null | grep -q "127.0.0.1:$1 "
}

setup_users() {
	grep -q '^postfix:' /etc/passwd && return 0
	echo 'postfix:x:101:101::/nonexistent:/bin/false' >>/etc/passwd
	echo 'nobody:x:65534:65534::/nonexistent:/bin/false' >>/etc/passwd
	printf 'postfix:x:101:\npostdrop:x:102:\nnogroup:x:65534:\n' >>/etc/group
}

# The same instance as tests/integration/lib/daemons.sh's start_postfix
# (tests/vm/postfix-loopback.cf), with the README's milter recipe.
setup_postfix() {
	q=$D/queue
	mkdir -p "$D/etc" "$D/data" "$D/vmail"
	for s in active bounce corrupt defer deferred flush hold incoming private saved trace; do
		mkdir -p "$q/$s"
		chown postfix "$q/$s"
		chmod 700 "$q/$s"
	done
	mkdir -p "$q/pid" "$q/public" "$q/maildrop"
	chown postfix:postdrop "$q/public" "$q/maildrop"
	chmod 710 "$q/public"
	chmod 730 "$q/maildrop"
	chown postfix "$D/data"
	chown 65534:65534 "$D/vmail"
	cp /etc/postfix/master.cf.proto "$D/etc/master.cf"
	echo 'rcpt@example.test rcpt/' >"$D/etc/vmailbox"
	{
		cat /mk/tests/vm/postfix-loopback.cf
		cat <<EOC
config_directory = $D/etc
queue_directory = $q
data_directory = $D/data
virtual_mailbox_maps = texthash:$D/etc/vmailbox
virtual_mailbox_base = $D/vmail
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
maillog_file = $D/maillog
maillog_file_prefixes = $D
syslog_name = mk-vm-postfix
smtpd_milters = inet:127.0.0.1:$MILTER_PORT
milter_connect_macros = $MACROS
milter_default_action = accept
milter_connect_timeout = 5s
milter_command_timeout = 10s
EOC
	} >"$D/etc/main.cf"
	postconf -c "$D/etc" -MX smtp/inet &&
		postconf -c "$D/etc" -M "127.0.0.1:$SMTPD_PORT/inet=127.0.0.1:$SMTPD_PORT inet n - n - - smtpd -o smtpd_upstream_proxy_protocol=haproxy -o smtpd_upstream_proxy_timeout=10s" &&
		postconf -c "$D/etc" -M "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd" &&
		postconf -c "$D/etc" -F '*/*/chroot = n'
}

start_postfix() {
	setup_users && setup_postfix || return 1
	/usr/lib/postfix/sbin/master -c "$D/etc" -d >"$D/master.out" 2>&1 &
	PF_PID=$!
	wait_for 60 listening "$SMTPD_PORT" && return 0
	cat "$D/master.out" "$D/maillog" 2>/dev/null
	return 1
}

start_agent() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=mail.example.test -keyout "$D/ecdsa.key" -out "$D/ecdsa.crt" 2>/dev/null &&
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mail.example.test \
			-keyout "$D/rsa.key" -out "$D/rsa.crt" 2>/dev/null || return 1
	cat >"$D/mailktlsd.conf" <<EOC
[global]
workers = 1
log = stderr
query_socket =
ktls = require

[listener submissions]
listen = 127.0.0.1:$AGENT_PORT
protocol = submission
tls = implicit
backend = 127.0.0.1:$SMTPD_PORT
proxy_protocol = v2
certificate = $D/rsa.crt
private_key = $D/rsa.key
certificate = $D/ecdsa.crt
private_key = $D/ecdsa.key
EOC
	/mk/agent/mailktlsd -c "$D/mailktlsd.conf" >"$D/agent.log" 2>&1 &
	AGENT_PID=$!
	wait_for 30 listening "$AGENT_PORT" && return 0
	cat "$D/agent.log"
	return 1
}

start_milter() {
	/mk/agent/mailktls-milter -l "inet:$MILTER_PORT@127.0.0.1" -q "$D/no-query.sock" \
		-t 300 >"$D/milter.log" 2>&1 &
	MILTER_PID=$!
	wait_for 30 listening "$MILTER_PORT" && return 0
	cat "$D/milter.log"
	return 1
}

# session TOKEN HELO s_client-options... - one SMTP submission over TLS,
# paced for TCG; the session log goes to $D/TOKEN.out.
session() {
	tok=$1 helo=$2
	shift 2
	{
		sleep 4
		printf 'EHLO %s\r\n' "$helo"
		sleep 2
		printf 'MAIL FROM:<sender@example.test>\r\n'
		sleep 1
		printf 'RCPT TO:<rcpt@example.test>\r\n'
		sleep 1
		printf 'DATA\r\n'
		sleep 1
		printf 'From: <sender@example.test>\r\nSubject: %s\r\nMessage-ID: <%s@example.test>\r\n\r\nBody %s.\r\n.\r\n' \
			"$tok" "$tok" "$tok"
		sleep 3
		printf 'QUIT\r\n'
		sleep 2
	} | openssl s_client -connect "127.0.0.1:$AGENT_PORT" -servername mail.example.test \
		-brief -ign_eof -nocommands "$@" >"$D/$tok.out" 2>&1
}

c_accepted() {	# token
	cat "$D/$1.out"
	grep -q '^250 2.0.0 Ok: queued' "$D/$1.out"
}

c_negotiated() {	# token cipher
	grep -E 'Ciphersuite|Protocol' "$D/$1.out"
	grep -q "^Ciphersuite: $2\$" "$D/$1.out"
}

# c_header TOKEN HELO IANA - the milter's header right below Postfix's.
delivered() {	# token: the Maildir file, once it is there
	grep -l "^Message-ID: <$1@example.test>" "$MAILDIR"/new/* 2>/dev/null | head -n 1 | grep .
}

c_header() {
	wait_for 30 delivered "$1"
	f=$(delivered "$1")
	[ -n "$f" ] || { echo "no message $1 in $MAILDIR/new"; tail -n 20 "$D/maillog"; return 1; }
	# unfold the header, keep the Received fields, top first
	awk '/^$/ { exit } /^[ \t]/ { sub(/^[ \t]+/, " "); line = line $0; next }
		{ if (line != "") print line; line = $0 } END { if (line != "") print line }' "$f" |
		grep '^Received:' >"$D/$1.rcv"
	cat "$D/$1.rcv"
	sed -n 1p "$D/$1.rcv" | grep -q '(Postfix)' || { echo "first is not Postfix's"; return 1; }
	sed -n 2p "$D/$1.rcv" | grep -Eq "^Received: from $2 \(\[127\.0\.0\.1\]\) by mail\.example\.test \(mailktls\) with ESMTPS tls $3; (Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} [+-][0-9]{4}\$" ||
		{ echo "second is not the milter's with tls $3"; return 1; }
	[ "$(grep -c ' tls ' "$D/$1.rcv")" -eq 1 ]
}

c_from_module() {	# token iana
	port=$(sed -n 's/^mailktlsd: tls listener=submissions client=127\.0\.0\.1:\([0-9]*\) .*cipher='"$2"' .*ktls=tx,rx\( [^ ]*\)*$/\1/p' "$D/agent.log" | head -n 1)
	grep "cipher=$2" "$D/agent.log"
	[ -n "$port" ] || { echo "the agent did not log kTLS for $2"; return 1; }
	grep "client=127.0.0.1:$port " "$D/milter.log"
	grep -q "^mailktls-milter: found client=127.0.0.1:$port tls $2 source=module\$" "$D/milter.log"
}

# Both TLS sessions were up before either ended: they overlapped.
c_overlap() {
	grep -E '^mailktlsd: (tls|close) listener=submissions' "$D/agent.log"
	awk '/^mailktlsd: close listener=submissions/ { exit } /^mailktlsd: tls listener=submissions/ { n++ }
		END { exit n >= 2 ? 0 : 1 }' "$D/agent.log"
}

stop() {	# pid
	[ -n "$1" ] || return 0
	kill "$1" 2>/dev/null
	w=100
	while [ "$w" -gt 0 ] && kill -0 "$1" 2>/dev/null; do
		sleep 0.1
		w=$((w - 1))
	done
	kill -9 "$1" 2>/dev/null
}

PF_PID=''
AGENT_PID=''
MILTER_PID=''
check "mailktls.ko is loaded" test -r /proc/net/mailktls
check "Postfix master and smtpd start in the VM" start_postfix
check "mailktls-milter starts, without a usable query socket" start_milter
check "mailktlsd starts with ktls = require and no query socket" start_agent

session chacha c1.example.test -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256 &
s1=$!
session aes128 c2.example.test -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 &
s2=$!
wait "$s1" "$s2"

check "client 1 (TLS 1.3 ChaCha20): Postfix queued the message" c_accepted chacha
check "client 1 negotiated TLS_CHACHA20_POLY1305_SHA256" c_negotiated chacha TLS_CHACHA20_POLY1305_SHA256
check "client 2 (TLS 1.2 ECDSA AES128-GCM), at the same time: queued" c_accepted aes128
check "client 2 negotiated ECDHE-ECDSA-AES128-GCM-SHA256" c_negotiated aes128 ECDHE-ECDSA-AES128-GCM-SHA256
check "the two TLS sessions were open at the same time" c_overlap
check "both connections ran on kTLS and the module answered the milter (1)" \
	c_from_module chacha TLS_CHACHA20_POLY1305_SHA256
check "both connections ran on kTLS and the module answered the milter (2)" \
	c_from_module aes128 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
check "message 1: tls TLS_CHACHA20_POLY1305_SHA256 right below Postfix's Received" \
	c_header chacha c1.example.test TLS_CHACHA20_POLY1305_SHA256
check "message 2: tls TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 right below Postfix's" \
	c_header aes128 c2.example.test TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256

stop "$AGENT_PID"
stop "$MILTER_PID"
stop "$PF_PID"
if [ "$failed" -ne 0 ]; then
	echo "# agent log:"; sed 's/^/#   /' "$D/agent.log" | tail -n 15
	echo "# milter log:"; sed 's/^/#   /' "$D/milter.log" | tail -n 15
	echo "# postfix log:"; sed 's/^/#   /' "$D/maillog" 2>/dev/null | tail -n 25
	echo "# postfix master's output:"; sed 's/^/#   /' "$D/master.out" | tail -n 10
fi
echo "1..$n"
exit "$failed"
