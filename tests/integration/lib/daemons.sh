# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Real Dovecot and Postfix on loopback, in a private temp dir, for the
# integration tests. Nothing under /etc, /run or /var is touched: every
# config, socket, queue, mailbox and log lives in $MK_TMP. Daemons are
# stopped by the PID recorded when they were started, never by name.
#
#   . tests/integration/lib/daemons.sh
#   mk_setup_tmp			# MK_TMP, removed by mk_cleanup_tmp
#   start_dovecot			# DOVECOT_IMAP_PORT DOVECOT_POP3_PORT DOVECOT_LOG
#   start_postfix			# POSTFIX_SUBMIT_PORT POSTFIX_LOG POSTFIX_MAILDIR
#   ...
#   stop_postfix; stop_dovecot; mk_cleanup_tmp
#
# Both daemons listen only on 127.0.0.1 and require a PROXY v2 header on
# those ports. Dovecot has ssl = no and disable_plaintext_auth = yes (2.4:
# ssl = required and auth_allow_cleartext = no), so a login works only when
# the PROXY header carries PP2_TYPE_SSL (or when the client address equals
# the local one: connect from 127.0.0.2 to avoid that).
#
# Mailbox: user $MK_USER / $MK_PASS with one message, $MK_TEST_MSG (CRLF).
# Postfix delivers mail for $MK_RCPT into the Maildir $POSTFIX_MAILDIR.
#
# Hooks for tests that need more (lib/milter.sh uses them):
#   DOVECOT_PROTOCOLS	protocols Dovecot serves (default "imap pop3")
#   DOVECOT_CONF_EXTRA	text appended to dovecot.conf (in the syntax of the
#			installed version: test dovecot_24 and use
#			DOVECOT_ADDRESS for an inet_listener's address)
#   POSTFIX_SETUP	a function called with Postfix's config dir after
#			the standard services are in place, before start
#   DOVECOT_SEED	a function called with the user's Maildir, which fills
#			it instead of the one test message (make run's demo)
#   MK_TMP_NAME		mk_setup_tmp's directory name in /tmp (default mk-it)

MK_USER=${MK_USER:-mkuser}
MK_PASS=${MK_PASS:-Secret-pass-42}
MK_RCPT=${MK_RCPT:-rcpt@example.test}
MK_MAIL_UID=${MK_MAIL_UID:-65534}	# nobody: no account of our own needed
MK_MAIL_GID=${MK_MAIL_GID:-65534}
MK_PY=${MK_PY:-/usr/bin/python3}	# Debian's python, not pyenv's
MK_WAIT_SECONDS=${MK_WAIT_SECONDS:-15}
MK_ROOT=${MK_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}

# Dovecot 2.4 (Debian 13) rejects the 2.3 (Debian 12) configuration:
# dovecot_config_version and dovecot_storage_version must come first,
# settings were renamed (auth_allow_cleartext, mail_driver/mail_path, an
# inet_listener's listen), %{variable}s replace %x, passdb/userdb blocks
# are named and have settings of their own. The tests write each version's
# syntax; DOVECOT_VERSION is what `dovecot --version` says (2.3.19.1, 2.4.1).
DOVECOT_VERSION=$(dovecot --version 2>/dev/null | sed 's/[ -].*//')

# dovecot_24 - true when the installed Dovecot takes the 2.4 syntax.
dovecot_24() {
	case $DOVECOT_VERSION in '' | 1.* | 2.[0-3].* | 2.[0-3]) return 1 ;; esac
}
# DOVECOT_LOGIN: how its login line starts (2.3 "Login:", 2.4 "Logged in:");
# DOVECOT_SECURED: what that line says of a secured session (a regex):
# 2.3 "secured"; 2.4 "TLS" when the PROXY header said TLS, else "secured".
if dovecot_24; then
	DOVECOT_ADDRESS=listen
	DOVECOT_LOGIN='Logged in:'
	DOVECOT_SECURED='(secured|TLS)'
else
	DOVECOT_ADDRESS=address
	DOVECOT_LOGIN='Login:'
	DOVECOT_SECURED=secured
fi

# dovecot_passwd_conf FILE - the passdb and userdb that read FILE
# (user:{PLAIN}pass:uid:gid::home::), in the installed Dovecot's syntax.
dovecot_passwd_conf() {
	if dovecot_24; then
		printf 'passdb passwd-file {\n  passwd_file_path = %s\n}\n' "$1"
		printf 'userdb passwd-file {\n  passwd_file_path = %s\n}\n' "$1"
	else
		printf 'passdb {\n  driver = passwd-file\n  args = scheme=PLAIN %s\n}\n' "$1"
		printf 'userdb {\n  driver = passwd-file\n  args = %s\n}\n' "$1"
	fi
}

# mk_setup_tmp - make the private directory. The daemons drop privileges
# (dovenull, dovecot, postfix, nobody), so it must be traversable (0755).
mk_setup_tmp() {
	MK_TMP=$(mktemp -d "/tmp/${MK_TMP_NAME:-mk-it}.XXXXXX") || return 1
	chmod 0755 "$MK_TMP"
	export MK_TMP
}

# mk_cleanup_tmp - remove $MK_TMP unless MK_KEEP_TMP=1 (for debugging).
mk_cleanup_tmp() {
	[ -n "${MK_TMP:-}" ] && [ -d "$MK_TMP" ] || return 0
	if [ "${MK_KEEP_TMP:-0}" = 1 ]; then
		echo "# kept $MK_TMP" >&2
		return 0
	fi
	rm -rf "$MK_TMP"
}

# free_port - print a TCP port that is free on 127.0.0.1 right now.
free_port() {
	"$MK_PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_port HOST PORT [SECONDS] - until something accepts on HOST:PORT.
wait_port() {
	"$MK_PY" - "$1" "$2" "${3:-$MK_WAIT_SECONDS}" <<'EOF'
import socket, sys, time
host, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + limit
while time.monotonic() < end:
    try:
        socket.create_connection((host, port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
EOF
}

# wait_socket PATH - until a unix socket exists at PATH (5 s at most).
wait_socket() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ -S "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# wait_grep FILE REGEX [SECONDS] - until FILE has a line matching REGEX (ERE).
wait_grep() {
	local file=$1 re=$2 i n=$(( ${3:-$MK_WAIT_SECONDS} * 20 ))
	for ((i = 0; i < n; i++)); do
		grep -qE -- "$re" "$file" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# wait_gone PID - wait up to 10 s for PID to end. Return: 1 if it did not.
wait_gone() {
	local i
	for ((i = 0; i < 200; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

# stop_pid PID [NAME] - SIGTERM, wait up to 10 s, then SIGKILL.
stop_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	if ! wait_gone "$pid"; then
		echo "# ${2:-$pid} did not stop on SIGTERM, killing" >&2
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

# mk_write_test_message FILE - the known message, CRLF line ends.
mk_write_test_message() {
	printf '%s\r\n' \
		"Return-Path: <sender@example.test>" \
		"From: Test Sender <sender@example.test>" \
		"To: $MK_USER@example.test" \
		"Subject: mailktls integration test message" \
		"Date: Mon, 01 Jan 2024 00:00:00 +0000" \
		"Message-ID: <mailktls-test-1@example.test>" \
		"" \
		"This is the known test message." \
		"Token: 3f1c9e2a-mailktls-imap-pop3" \
		"Line with trailing spaces   " \
		"Last line." >"$1"
}

# start_dovecot - Dovecot with IMAP and POP3 listeners that require PROXY v2.
# Sets DOVECOT_DIR DOVECOT_IMAP_PORT DOVECOT_POP3_PORT DOVECOT_LOG
# DOVECOT_PID MK_TEST_MSG DOVECOT_MAILDIR.
start_dovecot() {
	local d=$MK_TMP/dovecot home
	DOVECOT_DIR=$d
	home=$d/home/$MK_USER
	mkdir -p "$d/run" "$d/state" "$home/Maildir/cur" "$home/Maildir/new" "$home/Maildir/tmp"
	MK_TEST_MSG=$d/test-message.eml
	mk_write_test_message "$MK_TEST_MSG"
	DOVECOT_MAILDIR=$home/Maildir
	if [ -n "${DOVECOT_SEED:-}" ]; then
		"$DOVECOT_SEED" "$DOVECOT_MAILDIR" || return 1
	else
		cp "$MK_TEST_MSG" "$home/Maildir/cur/1700000000.M1P1.mailktls:2,"
	fi
	chown -R "$MK_MAIL_UID:$MK_MAIL_GID" "$d/home"
	DOVECOT_IMAP_PORT=$(free_port)
	DOVECOT_POP3_PORT=$(free_port)
	DOVECOT_LOG=$d/dovecot.log
	: >"$DOVECOT_LOG"
	printf '%s:{PLAIN}%s:%s:%s::%s::\n' "$MK_USER" "$MK_PASS" "$MK_MAIL_UID" \
		"$MK_MAIL_GID" "$home" >"$d/passwd"
	chmod 0644 "$d/passwd"
	# Dovecot 2.4 counts every PROXY connection as secured unless ssl =
	# required; only then does a login depend on the header's
	# PP2_CLIENT_SSL, as with 2.3's ssl = no. required needs a certificate
	# (never used: no listener of this instance does TLS itself).
	if dovecot_24 && ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj /CN=dovecot.example.test -days 2 -keyout "$d/ssl.key" -out "$d/ssl.crt" 2>/dev/null; then
		echo "# openssl could not make Dovecot's certificate" >&2
		return 1
	fi
	{
		echo "# generated by tests/integration/lib/daemons.sh for Dovecot $DOVECOT_VERSION"
		if dovecot_24; then
			cat <<EOF
dovecot_config_version = $DOVECOT_VERSION
dovecot_storage_version = $DOVECOT_VERSION
ssl = required
ssl_server_cert_file = $d/ssl.crt
ssl_server_key_file = $d/ssl.key
auth_allow_cleartext = no
mail_driver = maildir
mail_path = ~/Maildir
pop3_uidl_format = %{uid | hex(8)}%{uidvalidity | hex(8)}
EOF
		else
			cat <<EOF
ssl = no
disable_plaintext_auth = yes
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
EOF
		fi
		dovecot_passwd_conf "$d/passwd"
		cat <<EOF
protocols = ${DOVECOT_PROTOCOLS:-imap pop3}
listen = 127.0.0.1
base_dir = $d/run
state_dir = $d/state
instance_name = mk-it-$$
log_path = $DOVECOT_LOG
info_log_path = $DOVECOT_LOG
debug_log_path = $DOVECOT_LOG
auth_verbose = yes
verbose_proctitle = yes
auth_mechanisms = plain login
haproxy_trusted_networks = 127.0.0.0/8
haproxy_timeout = 3 secs
first_valid_uid = 100
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
  inet_listener imap_proxy {
    $DOVECOT_ADDRESS = 127.0.0.1
    port = $DOVECOT_IMAP_PORT
    haproxy = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
  inet_listener pop3_proxy {
    $DOVECOT_ADDRESS = 127.0.0.1
    port = $DOVECOT_POP3_PORT
    haproxy = yes
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0600
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
${DOVECOT_CONF_EXTRA:-}
EOF
	} >"$d/dovecot.conf"
	dovecot -c "$d/dovecot.conf" -F >>"$DOVECOT_LOG" 2>&1 &
	DOVECOT_PID=$!
	if ! wait_port 127.0.0.1 "$DOVECOT_IMAP_PORT" || ! wait_port 127.0.0.1 "$DOVECOT_POP3_PORT"; then
		echo "# dovecot did not start; log:" >&2
		sed 's/^/#   /' "$DOVECOT_LOG" >&2
		stop_dovecot
		return 1
	fi
	export DOVECOT_DIR DOVECOT_IMAP_PORT DOVECOT_POP3_PORT DOVECOT_LOG DOVECOT_PID MK_TEST_MSG
	export DOVECOT_MAILDIR
}

# children_of PID - the PIDs whose parent is PID (from /proc, one a line)
children_of() {
	local f st rest
	for f in /proc/[0-9]*/stat; do
		read -r st 2>/dev/null <"$f" || continue
		rest=${st##*) }
		rest=${rest#* }	# state
		[ "${rest%% *}" = "$1" ] && { f=${f#/proc/}; echo "${f%/stat}"; }
	done
	return 0
}

# stop_dovecot - stop the master started by start_dovecot, then wait for
# its children: Dovecot 2.4's master exits before its log, auth, stats and
# anvil processes have seen it go, and they must not outlive the caller.
stop_dovecot() {
	local kids k
	[ -n "${DOVECOT_PID:-}" ] || return 0
	kids=$(children_of "$DOVECOT_PID")
	stop_pid "$DOVECOT_PID" dovecot
	for k in $kids; do
		wait_gone "$k" || kill -KILL "$k" 2>/dev/null
	done
	DOVECOT_PID=
}

# start_postfix - a Postfix instance of its own (config, queue, data dirs in
# $MK_TMP) with one smtpd on 127.0.0.1 that requires PROXY v2, accepting mail
# from 127.0.0.0/8 for $MK_RCPT only and delivering it with virtual(8) into
# a Maildir. No DNS, no relaying: every other destination is an error.
# Sets POSTFIX_DIR POSTFIX_SUBMIT_PORT POSTFIX_LOG POSTFIX_MAILDIR POSTFIX_PID.
start_postfix() {
	local d=$MK_TMP/postfix i
	POSTFIX_DIR=$d
	mkdir -p "$d/etc" "$d/queue" "$d/data" "$MK_TMP/vmail"
	chown postfix "$d/data"
	chown "$MK_MAIL_UID:$MK_MAIL_GID" "$MK_TMP/vmail"
	POSTFIX_SUBMIT_PORT=$(free_port)
	POSTFIX_LOG=$d/maillog
	POSTFIX_MAILDIR=$MK_TMP/vmail/${MK_RCPT%@*}
	: >"$POSTFIX_LOG"
	chmod 0644 "$POSTFIX_LOG"
	cp /etc/postfix/master.cf.proto "$d/etc/master.cf" 2>/dev/null ||
		cp /etc/postfix/master.cf "$d/etc/master.cf"
	printf '%s %s/\n' "$MK_RCPT" "${MK_RCPT%@*}" >"$d/etc/vmailbox"
	{
		cat "$MK_ROOT/tests/vm/postfix-loopback.cf"
		cat <<EOF
# generated by tests/integration/lib/daemons.sh
config_directory = $d/etc
queue_directory = $d/queue
data_directory = $d/data
virtual_mailbox_maps = texthash:$d/etc/vmailbox
virtual_mailbox_base = $MK_TMP/vmail
virtual_uid_maps = static:$MK_MAIL_UID
virtual_gid_maps = static:$MK_MAIL_GID
maillog_file = $POSTFIX_LOG
maillog_file_prefixes = $MK_TMP
syslog_name = mk-it-postfix
EOF
	} >"$d/etc/main.cf"
	# Our own service only: drop the system's port 25 listener, no chroot.
	postconf -c "$d/etc" -MX smtp/inet
	postconf -c "$d/etc" -M "127.0.0.1:$POSTFIX_SUBMIT_PORT/inet=127.0.0.1:$POSTFIX_SUBMIT_PORT inet n - n - - smtpd -o smtpd_upstream_proxy_protocol=haproxy -o smtpd_upstream_proxy_timeout=3s -o syslog_name=mk-it-postfix/submissions"
	postconf -c "$d/etc" -M "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd"
	postconf -c "$d/etc" -F '*/*/chroot = n'
	if [ -n "${POSTFIX_SETUP:-}" ] && ! "$POSTFIX_SETUP" "$d/etc"; then
		echo "# $POSTFIX_SETUP failed" >&2
		return 1
	fi
	if ! postfix -c "$d/etc" start >>"$POSTFIX_LOG" 2>&1; then
		# Early fatal errors go to syslog, or to stderr only if it is a
		# tty: give "postfix check" one to show why.
		echo "# postfix did not start:" >&2
		script -qec "postfix -c $d/etc check" /dev/null 2>&1 | sed 's/^/#   /' >&2
		sed 's/^/#   /' "$POSTFIX_LOG" >&2
		return 1
	fi
	POSTFIX_PID=
	for ((i = 0; i < 200; i++)); do
		POSTFIX_PID=$(tr -dc 0-9 <"$d/queue/pid/master.pid" 2>/dev/null)
		[ -n "$POSTFIX_PID" ] && break
		sleep 0.05
	done
	if [ -z "$POSTFIX_PID" ] || ! wait_port 127.0.0.1 "$POSTFIX_SUBMIT_PORT"; then
		echo "# postfix did not listen; log:" >&2
		sed 's/^/#   /' "$POSTFIX_LOG" >&2
		stop_postfix
		return 1
	fi
	export POSTFIX_DIR POSTFIX_SUBMIT_PORT POSTFIX_LOG POSTFIX_MAILDIR POSTFIX_PID
}

# stop_postfix - SIGTERM to the master recorded at start (what "postfix stop"
# does); the master ends its children.
stop_postfix() {
	local pid=${POSTFIX_PID:-} i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	POSTFIX_PID=
	return 0
}

# mk_gen_certs DIR - self-signed RSA 2048 and ECDSA P-256 certificates for
# mail.example.test: DIR/rsa.{crt,key} DIR/ecdsa.{crt,key}, and DIR/both.pem
# (haproxy's crt format, both keys, for the haproxy validation harness).
mk_gen_certs() {
	local dir=$1 k
	mkdir -p "$dir"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mail.example.test \
		-addext subjectAltName=DNS:mail.example.test,IP:127.0.0.1 \
		-keyout "$dir/rsa.key" -out "$dir/rsa.crt" 2>/dev/null || return 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=mail.example.test \
		-addext subjectAltName=DNS:mail.example.test,IP:127.0.0.1 \
		-keyout "$dir/ecdsa.key" -out "$dir/ecdsa.crt" 2>/dev/null || return 1
	for k in rsa ecdsa; do
		cat "$dir/$k.crt" "$dir/$k.key" >"$dir/$k.pem"
	done
	chmod 0600 "$dir"/*.key "$dir"/*.pem
}
