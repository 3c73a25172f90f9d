#!/bin/sh
# `make run`: start mailktlsd in the foreground on a working default
# configuration, generating a self-signed certificate when none exists.
#
# Everything lives in $RUN_DIR (default build/run). The config is written
# once; edit it there and run `make run` again, or point MAILKTLS_CONF at
# your own file.
#
#   IMAPS        127.0.0.1:10993 -> 127.0.0.1:143   (Dovecot)
#   POP3S        127.0.0.1:10995 -> 127.0.0.1:110   (Dovecot)
#   submissions  127.0.0.1:10465 -> 127.0.0.1:587   (Postfix)
#   STARTTLS     127.0.0.1:10143, :10110, :10587 -> the same daemons
#
# The backends get no PROXY header in this default (proxy_protocol = none),
# so a stock Dovecot or Postfix on the standard ports works as it is; the
# README shows the production setup with PROXY v2.
#
# Unless DEMO=no or MAILKTLS_CONF is set, or it does not run as root, it
# runs scripts/run-demo.sh instead: the agent in front of a private Dovecot
# and Postfix on ports of their own. A daemon already answering on
# 127.0.0.1:143, 110 or 587 does not switch the demo off: on a fresh Debian
# machine that is the stock Dovecot or Postfix the install step just
# started (unconfigured for PROXY v2), so it only earns a hint.
set -eu
cd "$(dirname "$0")/.."

answers() {	# PORT: something accepts on 127.0.0.1:PORT
	timeout 2 bash -c ": </dev/tcp/127.0.0.1/$1" 2>/dev/null
}
if [ "${DEMO:-}" != no ] && [ -z "${MAILKTLS_CONF:-}" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "the demo's Dovecot and Postfix need root: the agent alone"
	else
		busy=
		for p in 143 110 587; do
			answers "$p" && busy="$busy $p"
		done
		[ -z "$busy" ] || echo "a daemon answers on 127.0.0.1 port$busy: the demo uses daemons" \
			"of its own; make run DEMO=no puts the agent in front of yours"
		exec scripts/run-demo.sh
	fi
fi
RUN_DIR=${RUN_DIR:-build/run}
CONF=${MAILKTLS_CONF:-$RUN_DIR/mailktlsd.conf}
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)

if [ ! -f "$RUN_DIR/rsa.crt" ]; then
	echo "generating self-signed certificates in $RUN_DIR"
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$RUN_DIR/rsa.key" -out "$RUN_DIR/rsa.crt" 2>/dev/null
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
		-subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$RUN_DIR/ecdsa.key" -out "$RUN_DIR/ecdsa.crt" 2>/dev/null
	chmod 600 "$RUN_DIR"/*.key
fi

listener() {	# name listen protocol tls backend
	cat <<EOT

[listener $1]
listen = $2
protocol = $3
tls = $4
backend = $5
EOT
}

if [ ! -f "$CONF" ]; then
	{
		cat <<EOT
# Written by scripts/run-agent.sh (make run). See etc/mailktlsd.conf.example
# for every key explained.
[global]
workers = auto
log = stderr
query_socket = $RUN_DIR/query.sock
ktls = auto

[defaults]
proxy_protocol = none
certificate = $RUN_DIR/rsa.crt
private_key = $RUN_DIR/rsa.key
certificate = $RUN_DIR/ecdsa.crt
private_key = $RUN_DIR/ecdsa.key
min_version = 1.2
alpn = strict
EOT
		listener imaps 127.0.0.1:10993 imap implicit 127.0.0.1:143
		listener pop3s 127.0.0.1:10995 pop3 implicit 127.0.0.1:110
		listener submissions 127.0.0.1:10465 submission implicit 127.0.0.1:587
		listener imap 127.0.0.1:10143 imap starttls 127.0.0.1:143
		listener pop3 127.0.0.1:10110 pop3 starttls 127.0.0.1:110
		listener submission 127.0.0.1:10587 submission starttls 127.0.0.1:587
	} >"$CONF"
fi

agent/mailktlsd -c "$CONF" -t
echo "mailktlsd: config $CONF"
grep -E '^\[listener|^listen|^backend|^tls' "$CONF" | paste - - - - |
	awk '{ printf "  %-22s %-16s tls=%-9s -> %s\n", $2, $5, $8, $11 }' | tr -d ']'
echo "  try: curl -k imaps://127.0.0.1:10993/ --user USER:PASS"
echo "stop with Ctrl-C (SIGTERM closes every connection with close_notify)"
exec agent/mailktlsd -c "$CONF"
