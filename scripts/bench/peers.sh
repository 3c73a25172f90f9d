# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=sh
#
# The TLS terminators of the benchmarks, configured alike: sourced by
# scripts/bench.sh on the host and scripts/bench/vm/bench-in-vm.sh in the
# VM (busybox sh), so both measure the same set-ups. Each takes the port to
# listen on; TMP, BACKEND_PORT and the certificate files in TMP (cert.pem,
# key.pem, combined.pem) come from the caller; BENCH_WORKERS (default 2)
# is the number of workers/threads of each.

# bench_cert ecdsa|rsa - a self-signed localhost pair, TMP/cert.pem and
# TMP/key.pem (ECDSA P-256 or RSA 2048)
bench_cert() {
	case $1 in
	ecdsa) set -- -newkey ec -pkeyopt ec_paramgen_curve:P-256 ;;
	rsa) set -- -newkey rsa:2048 ;;
	*) echo "bench: KEY must be ecdsa or rsa" >&2; return 1 ;;
	esac
	openssl req -x509 "$@" -nodes -days 2 -subj /CN=localhost \
		-keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
}

# mailktlsd_lat_conf PORT KTLS - mailktlsd with the four listeners the
# first-answer latency table measures, on PORT to PORT + 3: Implicit TLS
# IMAP and submission, then STARTTLS IMAP and submission, in front of the
# line backends on LAT_IMAP_BACKEND and LAT_SMTP_BACKEND (first_answer.c)
mailktlsd_lat_conf() {
	printf '[global]\nworkers = %s\nlog = stderr\nquery_socket =\nktls = %s\n' \
		"${BENCH_WORKERS:-2}" "$2"
	lat_i=0
	for lat_tls in implicit starttls; do
		for lat_proto in imap submission; do
			lat_be=$LAT_IMAP_BACKEND
			[ "$lat_proto" = submission ] && lat_be=$LAT_SMTP_BACKEND
			printf '[listener l%s]\nlisten = 127.0.0.1:%s\nprotocol = %s\ntls = %s\n' \
				"$lat_i" $(($1 + lat_i)) "$lat_proto" "$lat_tls"
			printf 'backend = 127.0.0.1:%s\nproxy_protocol = none\nalpn = off\n' "$lat_be"
			printf 'certificate = %s/cert.pem\nprivate_key = %s/key.pem\n' "$TMP" "$TMP"
			lat_i=$((lat_i + 1))
		done
	done
}

# first_answer_figures LINE - first_answer's "p50=MS p99=MS n=N" as
# "P50 P99", or "- -" for its failure line
first_answer_figures() {
	echo "$1" | awk '/p50=/ { sub("p50=", "", $1); sub("p99=", "", $2); print $1, $2; next }
		{ print "- -" }'
}

# bench_established PORT - how many TCP connections on 127.0.0.1 have local
# port PORT and are established: a backend's side of what proxies opened
bench_established() {
	awk -v port="$(printf '%04X' "$1")" \
		'$4 == "01" && substr($2, index($2, ":") + 1) == port { n++ } END { print n + 0 }' \
		/proc/net/tcp
}

# mailktlsd_conf PORT KTLS - mailktlsd's benchmark config on stdout
mailktlsd_conf() {
	cat <<EOF
[global]
workers = ${BENCH_WORKERS:-2}
log = stderr
query_socket =
ktls = $2
[listener bench]
listen = 127.0.0.1:$1
protocol = imap
tls = implicit
backend = 127.0.0.1:$BACKEND_PORT
proxy_protocol = none
certificate = $TMP/cert.pem
private_key = $TMP/key.pem
alpn = off
max_connections = 20000
idle_timeout = 10m
EOF
}

start_stunnel() {
	cat >"$TMP/stunnel.conf" <<EOF
foreground = yes
pid =
debug = 3
output = $TMP/stunnel.log
[bench]
accept = 127.0.0.1:$1
connect = 127.0.0.1:$BACKEND_PORT
cert = $TMP/cert.pem
key = $TMP/key.pem
EOF
	stunnel4 "$TMP/stunnel.conf" 2>>"$TMP/stunnel.log" &
}

start_haproxy() {
	cat >"$TMP/haproxy.cfg" <<EOF
global
	nbthread ${BENCH_WORKERS:-2}
	maxconn 8000
defaults
	mode tcp
	timeout connect 5s
	timeout client 10m
	timeout server 10m
frontend bench
	bind 127.0.0.1:$1 ssl crt $TMP/combined.pem
	default_backend sink
backend sink
	server s1 127.0.0.1:$BACKEND_PORT
EOF
	haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
}
