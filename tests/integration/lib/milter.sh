# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# mailktls-milter between Postfix and the agent, for milter_test.sh, on top
# of daemons.sh and fronts.sh. The Postfix and Dovecot settings here are
# the README's recipes.
#
#   milter_ports			# MILTER_PORT POSTFIX_RELAY_PORT DOVECOT_SUBMIT_PORT
#   milter_dovecot_submission	# DOVECOT_PROTOCOLS/DOVECOT_CONF_EXTRA for start_dovecot
#   POSTFIX_SETUP=milter_postfix_setup start_postfix
#   start_milter [QUERY_SOCKET] [TIMEOUT_MS]	# MILTER_PID MILTER_LOG
#   start_relay_milter		# -i 2 for the relay smtpd: MILTER_RELAY_LOG
#   start_milter_agent CERTDIR	# FRONT_SUBMISSIONS_PORT FRONT_SUBMISSION_PORT
#				# FRONT_DSUBMISSIONS_PORT FRONT_LOG FRONT_PID
#
# Postfix gets a second smtpd, POSTFIX_RELAY_PORT, without PROXY: mail sent
# straight to Postfix, and Dovecot submission's relay (XCLIENT allowed from
# loopback), with its own milter that inserts below Dovecot's Received
# header (-i 2). The PROXY smtpd offers SASL through Dovecot's auth socket.

MILTER=${MILTER:-$MK_ROOT/agent/mailktls-milter}
MILTER_MACROS='j {daemon_name} {daemon_addr} {daemon_port} {client_addr} {client_port} {client_name} v _'

milter_ports() {
	MILTER_PORT=$(free_port)
	MILTER_RELAY_PORT=$(free_port)	# the relay smtpd's milter, -i 2
	POSTFIX_RELAY_PORT=$(free_port)
	DOVECOT_SUBMIT_PORT=$(free_port)
	DOVECOT_AUTH_SOCKET=$MK_TMP/dovecot-auth
	MILTER_LOG=$MK_TMP/milter.log
	MILTER_RELAY_LOG=$MK_TMP/milter-relay.log
	: >"$MILTER_LOG"
	: >"$MILTER_RELAY_LOG"
}

# milter_dovecot_submission - Dovecot submission behind mailktlsd (PROXY v2),
# relaying to Postfix with XCLIENT; and the auth socket Postfix's SASL uses.
# shellcheck disable=SC2034 # both are read by start_dovecot
milter_dovecot_submission() {
	DOVECOT_PROTOCOLS="imap pop3 submission"
	DOVECOT_CONF_EXTRA="
hostname = mail.example.test
submission_relay_host = 127.0.0.1
submission_relay_port = $POSTFIX_RELAY_PORT
submission_relay_trusted = yes
submission_relay_ssl = no
service submission-login {
  inet_listener submission {
    port = 0
  }
  inet_listener submission_mailktls {
    $DOVECOT_ADDRESS = 127.0.0.1
    port = $DOVECOT_SUBMIT_PORT
    haproxy = yes
  }
}
service auth {
  unix_listener $DOVECOT_AUTH_SOCKET {
    mode = 0666
  }
}"
}

# milter_postfix_setup ETC - the milter on every smtpd, SASL on the PROXY
# smtpd, and the relay smtpd for direct mail and Dovecot's XCLIENT.
milter_postfix_setup() {
	local etc=$1 svc="127.0.0.1:$POSTFIX_SUBMIT_PORT/inet"
	postconf -c "$etc" -e "smtpd_milters = inet:127.0.0.1:$MILTER_PORT" \
		"milter_connect_macros = $MILTER_MACROS" \
		"milter_default_action = accept" \
		"milter_connect_timeout = 2s" \
		"milter_command_timeout = 5s" || return 1
	postconf -c "$etc" -P "$svc/smtpd_sasl_auth_enable=yes" "$svc/smtpd_sasl_type=dovecot" \
		"$svc/smtpd_sasl_path=$DOVECOT_AUTH_SOCKET" || return 1
	postconf -c "$etc" -M "127.0.0.1:$POSTFIX_RELAY_PORT/inet=127.0.0.1:$POSTFIX_RELAY_PORT inet n - n - - smtpd -o smtpd_authorized_xclient_hosts=127.0.0.0/8 -o smtpd_milters=inet:127.0.0.1:$MILTER_RELAY_PORT -o syslog_name=mk-it-postfix/relay"
}

# start_milter [QUERY_SOCKET] [TIMEOUT_MS] - the milter on MILTER_PORT.
start_milter() {
	local q=${1:-$MK_TMP/query.sock} to=${2:-500}
	if [ ! -x "$MILTER" ]; then
		echo "# $MILTER is missing or not executable (run make)" >&2
		return 1
	fi
	"$MILTER" -l "inet:$MILTER_PORT@127.0.0.1" -q "$q" -t "$to" >>"$MILTER_LOG" 2>&1 &
	MILTER_PID=$!
	if ! wait_port 127.0.0.1 "$MILTER_PORT" 10 || ! kill -0 "$MILTER_PID" 2>/dev/null; then
		echo "# mailktls-milter did not listen; its log:" >&2
		sed 's/^/#   /' "$MILTER_LOG" >&2
		return 1
	fi
}

stop_milter() {
	stop_pid "${MILTER_PID:-}" mailktls-milter
	MILTER_PID=
}

# start_relay_milter - the milter of the relay smtpd behind Dovecot
# submission: Dovecot's Received is the first the milter sees, so -i 2.
start_relay_milter() {
	"$MILTER" -l "inet:$MILTER_RELAY_PORT@127.0.0.1" -q "$MK_TMP/query.sock" -i 2 \
		>>"$MILTER_RELAY_LOG" 2>&1 &
	MILTER_RELAY_PID=$!
	if ! wait_port 127.0.0.1 "$MILTER_RELAY_PORT" 10 || ! kill -0 "$MILTER_RELAY_PID" 2>/dev/null; then
		sed 's/^/#   /' "$MILTER_RELAY_LOG" >&2
		return 1
	fi
}

stop_relay_milter() {
	stop_pid "${MILTER_RELAY_PID:-}" mailktls-milter
	MILTER_RELAY_PID=
}

mk_milter_submission_listener() {	# NAME PORT TLS BACKEND_PORT CERTDIR
	cat <<EOC

[listener $1]
listen = 127.0.0.1:$2
protocol = submission
tls = $3
backend = 127.0.0.1:$4
proxy_protocol = v2
hostname = mail.example.test
certificate = $5/rsa.crt
private_key = $5/rsa.key
certificate = $5/ecdsa.crt
private_key = $5/ecdsa.key
EOC
}

# start_milter_agent CERTDIR - mailktlsd with Implicit TLS and STARTTLS
# submission listeners to Postfix, and Implicit TLS to Dovecot submission.
start_milter_agent() {
	local certs=$1 p
	FRONT_SUBMISSIONS_PORT=$(free_port)
	FRONT_SUBMISSION_PORT=$(free_port)
	FRONT_DSUBMISSIONS_PORT=$(free_port)
	FRONT_LOG=$MK_TMP/front.log
	FRONT_CONF=$MK_TMP/mailktlsd.conf
	: >"$FRONT_LOG"
	{
		printf '[global]\nworkers = 1\nlog = stderr\nquery_socket = %s\nktls = auto\n' \
			"$MK_TMP/query.sock"
		mk_milter_submission_listener submissions "$FRONT_SUBMISSIONS_PORT" implicit \
			"$POSTFIX_SUBMIT_PORT" "$certs"
		mk_milter_submission_listener submission "$FRONT_SUBMISSION_PORT" starttls \
			"$POSTFIX_SUBMIT_PORT" "$certs"
		mk_milter_submission_listener dsubmissions "$FRONT_DSUBMISSIONS_PORT" implicit \
			"$DOVECOT_SUBMIT_PORT" "$certs"
	} >"$FRONT_CONF"
	"$MAILKTLSD" -c "$FRONT_CONF" >>"$FRONT_LOG" 2>&1 &
	FRONT_PID=$!
	for p in "$FRONT_SUBMISSIONS_PORT" "$FRONT_SUBMISSION_PORT" "$FRONT_DSUBMISSIONS_PORT"; do
		if ! kill -0 "$FRONT_PID" 2>/dev/null || ! wait_port 127.0.0.1 "$p" 10; then
			echo "# mailktlsd is not listening on $p; its log:" >&2
			sed 's/^/#   /' "$FRONT_LOG" | tail -n 40 >&2
			return 1
		fi
	done
}
