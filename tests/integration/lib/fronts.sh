# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# The TLS front in front of the daemons of daemons.sh: mailktlsd (the
# product), or haproxy (only to validate the daemon setup and the checks
# themselves; MK_FRONT=haproxy). Both get the same four listeners:
#   imaps        -> Dovecot IMAP  (PROXY v2 with SSL TLVs)
#   pop3s        -> Dovecot POP3
#   submissions  -> Postfix smtpd
#   deadimap     -> a loopback port nothing listens on
#   capture      -> CAPTURE_BACKEND_PORT, where mkclients.py pp2-check reads
#                   the PROXY v2 header
# Sets FRONT_IMAPS_PORT FRONT_POP3S_PORT FRONT_SUBMISSIONS_PORT
# FRONT_DEAD_PORT FRONT_CAPTURE_PORT CAPTURE_BACKEND_PORT FRONT_LOG FRONT_PID
# FRONT_CONF.

MK_ROOT=${MK_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
MAILKTLSD=${MAILKTLSD:-$MK_ROOT/agent/mailktlsd}

front_ports() {
	FRONT_IMAPS_PORT=$(free_port)
	FRONT_POP3S_PORT=$(free_port)
	FRONT_SUBMISSIONS_PORT=$(free_port)
	FRONT_DEAD_PORT=$(free_port)
	DEAD_BACKEND_PORT=$(free_port)	# nothing will listen here
	FRONT_CAPTURE_PORT=$(free_port)
	CAPTURE_BACKEND_PORT=$(free_port)	# mkclients.py pp2-check listens here
	FRONT_LOG=$MK_TMP/front.log
	: >"$FRONT_LOG"
}

# front_wait - until every front port accepts and the process still runs.
front_wait() {
	local p
	for p in "$FRONT_IMAPS_PORT" "$FRONT_POP3S_PORT" "$FRONT_SUBMISSIONS_PORT" \
		"$FRONT_DEAD_PORT" "$FRONT_CAPTURE_PORT"; do
		if ! kill -0 "$FRONT_PID" 2>/dev/null || ! wait_port 127.0.0.1 "$p" 10; then
			echo "# front (pid $FRONT_PID) is not listening on $p; its log:" >&2
			sed 's/^/#   /' "$FRONT_LOG" | tail -n 40 >&2
			return 1
		fi
	done
}

# mk_agent_listener NAME PORT PROTOCOL BACKEND_PORT CERTDIR
mk_agent_listener() {
	cat <<EOF

[listener $1]
listen = 127.0.0.1:$2
protocol = $3
tls = implicit
backend = 127.0.0.1:$4
proxy_protocol = v2
certificate = $5/rsa.crt
private_key = $5/rsa.key
certificate = $5/ecdsa.crt
private_key = $5/ecdsa.key
alpn = strict
EOF
}

# start_agent CERTDIR - mailktlsd -c on a generated config, in the foreground
# (background job of this shell), logging to FRONT_LOG.
start_agent() {
	local certs=$1
	front_ports
	FRONT_CONF=$MK_TMP/mailktlsd.conf
	{
		printf '[global]\nworkers = 1\nlog = stderr\nquery_socket = %s\nktls = auto\n' \
			"$MK_TMP/query.sock"
		mk_agent_listener imaps "$FRONT_IMAPS_PORT" imap "$DOVECOT_IMAP_PORT" "$certs"
		mk_agent_listener pop3s "$FRONT_POP3S_PORT" pop3 "$DOVECOT_POP3_PORT" "$certs"
		mk_agent_listener submissions "$FRONT_SUBMISSIONS_PORT" submission \
			"$POSTFIX_SUBMIT_PORT" "$certs"
		mk_agent_listener deadimap "$FRONT_DEAD_PORT" imap "$DEAD_BACKEND_PORT" "$certs"
		mk_agent_listener capture "$FRONT_CAPTURE_PORT" imap "$CAPTURE_BACKEND_PORT" "$certs"
	} >"$FRONT_CONF"
	if [ ! -x "$MAILKTLSD" ]; then
		echo "# $MAILKTLSD is missing or not executable (run make)" >&2
		return 1
	fi
	"$MAILKTLSD" -c "$FRONT_CONF" >>"$FRONT_LOG" 2>&1 &
	FRONT_PID=$!
	front_wait
}

# start_haproxy CERTDIR - haproxy with send-proxy-v2-ssl, for validating the
# test bed only; it does not do strict ALPN nor log like the agent.
start_haproxy() {
	local certs=$1
	front_ports
	FRONT_CONF=$MK_TMP/haproxy.cfg
	cat >"$FRONT_CONF" <<EOF
global
	log stderr format short local0 info
	tune.ssl.default-dh-param 2048
defaults
	mode tcp
	log global
	option tcplog
	timeout connect 1s
	timeout client 30s
	timeout server 30s
	retries 0
frontend imaps
	bind 127.0.0.1:$FRONT_IMAPS_PORT ssl crt $certs/rsa.pem crt $certs/ecdsa.pem ssl-min-ver TLSv1.2 alpn imap
	default_backend imap
frontend pop3s
	bind 127.0.0.1:$FRONT_POP3S_PORT ssl crt $certs/rsa.pem crt $certs/ecdsa.pem ssl-min-ver TLSv1.2 alpn pop3
	default_backend pop3
frontend submissions
	bind 127.0.0.1:$FRONT_SUBMISSIONS_PORT ssl crt $certs/rsa.pem crt $certs/ecdsa.pem ssl-min-ver TLSv1.2 alpn smtp
	default_backend submission
frontend deadimap
	bind 127.0.0.1:$FRONT_DEAD_PORT ssl crt $certs/rsa.pem crt $certs/ecdsa.pem ssl-min-ver TLSv1.2 alpn imap
	default_backend dead
frontend capture
	bind 127.0.0.1:$FRONT_CAPTURE_PORT ssl crt $certs/rsa.pem crt $certs/ecdsa.pem ssl-min-ver TLSv1.2 alpn imap
	default_backend capture
backend imap
	server dovecot 127.0.0.1:$DOVECOT_IMAP_PORT send-proxy-v2-ssl-cn
backend pop3
	server dovecot 127.0.0.1:$DOVECOT_POP3_PORT send-proxy-v2-ssl-cn
backend submission
	server postfix 127.0.0.1:$POSTFIX_SUBMIT_PORT send-proxy-v2-ssl
backend dead
	server nothing 127.0.0.1:$DEAD_BACKEND_PORT send-proxy-v2-ssl
backend capture
	server pp2check 127.0.0.1:$CAPTURE_BACKEND_PORT send-proxy-v2-ssl
EOF
	haproxy -f "$FRONT_CONF" -db >>"$FRONT_LOG" 2>&1 &
	FRONT_PID=$!
	front_wait
}

# stop_front - SIGTERM to the front we started, by PID.
stop_front() {
	stop_pid "${FRONT_PID:-}" front
	FRONT_PID=
}
