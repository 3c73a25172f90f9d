#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The query path on a host without mailktls.ko (and without kTLS): the agent
# encrypts in user space and answers on its query socket, and every way a
# daemon or an operator asks gets what the client negotiated:
#   - agent/mailktlsctl received|query --addr and status,
#   - query_backend (tests/integration/query_backend.c, built here against
#     agent/libmailktls.a), the daemon behind the agent, calling
#     mailktls_query_fd() on its accepted socket.
# Clients (Debian's python3 ssl) connect from 127.0.0.2, one TLS 1.3 and one
# TLS 1.2 connection with different ciphers; after each closes, the answers
# must be gone.
#
# TAP output. A missing or crashing agent makes the checks fail, never skip.
#   MK_KEEP_TMP=1  keep the temp dir (config, logs) for a look

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

MKCTL=${MKCTL:-$MK_ROOT/agent/mailktlsctl}
SRC=127.0.0.2
SNI=mail.example.test
# client's TLS version, the cipher it offers (OpenSSL's name; TLS 1.3 suites
# are set through an OpenSSL config, Python has no call for them)
CONNS=("1.3 TLS_AES_128_GCM_SHA256" "1.2 ECDHE-ECDSA-CHACHA20-POLY1305")
PER_CONN=10
PLAN=$((3 + PER_CONN * ${#CONNS[@]}))
AGENT_PID='' BACKEND_PID='' CLI_PID=''

cleanup() {
	[ -n "$CLI_PID" ] && stop_pid "$CLI_PID" client
	stop_pid "$AGENT_PID" mailktlsd
	stop_pid "$BACKEND_PID" query_backend
	mk_cleanup_tmp
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# expect_eq WANT GOT - equal, or say both
expect_eq() {
	[ "$1" = "$2" ] && return 0
	printf 'want: %s\ngot:  %s\n' "$1" "$2"
	return 1
}

# has_lines TEXT LINE... - TEXT has every LINE as a whole line
has_lines() {
	local text=$1 line rc=0
	shift
	for line in "$@"; do
		if ! grep -qxF -- "$line" <<<"$text"; then
			echo "missing line: $line"
			rc=1
		fi
	done
	[ "$rc" -eq 0 ] || printf 'in:\n%s\n' "$text"
	return "$rc"
}

ctl() {
	"$MKCTL" -s "$MK_TMP/query.sock" "$@"
}

# backend_value N KEY - the value query_backend printed for connection N
backend_value() {
	sed -n "s/^$1 $2=//p" "$MK_TMP/backend.out" | head -n 1
}

iana_name() {	# OpenSSL cipher name -> IANA name (TLS 1.3 suites: the same)
	openssl ciphers -stdname ALL:COMPLEMENTOFALL 2>/dev/null |
		awk -v n="$1" '$3 == n { print $1; exit }'
}

write_client() {
	cat >"$MK_TMP/client.py" <<'EOF'
# client.py HOST PORT SRC SNI VERSION [CIPHER12]: TLS to the agent from SRC,
# read the greeting, send one command, print what was negotiated, then close
# with close_notify when a line arrives on stdin.
import socket, ssl, sys
host, port, src, sni, ver = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
v = ssl.TLSVersion.TLSv1_3 if ver == "1.3" else ssl.TLSVersion.TLSv1_2
ctx.minimum_version = ctx.maximum_version = v
if len(sys.argv) > 6:
    ctx.set_ciphers(sys.argv[6])
ctx.set_alpn_protocols(["imap"])
raw = socket.create_connection((host, port), timeout=20, source_address=(src, 0))
s = ctx.wrap_socket(raw, server_hostname=sni)
greeting = s.recv(64)
s.sendall(b"a1 NOOP\r\n")
print("port=%d version=%s cipher=%s greeting=%s" % (
    s.getsockname()[1], s.version(), s.cipher()[0], greeting.decode().strip().replace(" ", "_")),
    flush=True)
sys.stdin.readline()
s.unwrap().close()
print("closed", flush=True)
EOF
	cat >"$MK_TMP/tls13.cnf" <<'EOF'
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = sd
[sd]
Ciphersuites = TLS_AES_128_GCM_SHA256
EOF
}

# The client's info line: port= version= cipher= greeting=
client_field() {
	sed -n "s/.* \?$1=\([^ ]*\).*/\1/p" <<<"$CLI_INFO"
}

echo "1..$PLAN"
mk_setup_tmp || { echo "Bail out! mktemp"; exit 1; }
write_client

build_backend() {
	gcc -std=gnu11 -Wall -Wextra -Werror -Wshadow -I"$MK_ROOT/include" -I"$MK_ROOT/agent/base" \
		-o "$MK_TMP/query_backend" "$here/query_backend.c" "$MK_ROOT/agent/libmailktls.a" \
		-lmnl
}
check "query_backend builds against agent/libmailktls.a" build_backend ||
	fatal="query_backend did not build"

start_all() {
	mk_gen_certs "$MK_TMP/certs" || return 1
	AGENT_PORT=$(free_port)
	BACKEND_PORT=$(free_port)
	MAILKTLS_QUERY_SOCKET=$MK_TMP/query.sock "$MK_TMP/query_backend" "$BACKEND_PORT" "${#CONNS[@]}" >"$MK_TMP/backend.out" \
		2>&1 &
	BACKEND_PID=$!
	wait_grep "$MK_TMP/backend.out" '^ready$' 10 || { echo "backend not ready"; return 1; }
	cat >"$MK_TMP/mailktlsd.conf" <<EOF
[global]
workers = 1
log = stderr
query_socket = $MK_TMP/query.sock
ktls = auto

[listener t]
listen = 127.0.0.1:$AGENT_PORT
protocol = imap
tls = implicit
backend = 127.0.0.1:$BACKEND_PORT
proxy_protocol = none
certificate = $MK_TMP/certs/rsa.crt
private_key = $MK_TMP/certs/rsa.key
certificate = $MK_TMP/certs/ecdsa.crt
private_key = $MK_TMP/certs/ecdsa.key
alpn = strict
EOF
	[ -x "$MAILKTLSD" ] || { echo "$MAILKTLSD missing (run make)"; return 1; }
	"$MAILKTLSD" -c "$MK_TMP/mailktlsd.conf" >"$MK_TMP/agent.log" 2>&1 &
	AGENT_PID=$!
	if ! wait_grep "$MK_TMP/agent.log" 'mailktlsd: started' 15; then
		cat "$MK_TMP/agent.log"
		return 1
	fi
	# this host has no module: the answers must come from the query socket
	[ -S "$MK_TMP/query.sock" ] || { echo "no query socket"; return 1; }
}
check "agent and backend start (query socket on, no module)" start_all ||
	fatal="the agent did not start"

check_status_idle() {
	local out
	out=$(ctl status) || { echo "$out"; return 1; }
	has_lines "$out" module=no connections=0 listeners=1 \
		"listener=t 127.0.0.1:$AGENT_PORT imap implicit"
}
check "mailktlsctl status: the listener, no connection yet" check_status_idle

n=0
for conn in "${CONNS[@]}"; do
	n=$((n + 1))
	read -r ver cipher <<<"$conn"
	CLI_INFO=
	open_client() {
		local args=("$MK_TMP/client.py" 127.0.0.1 "$AGENT_PORT" "$SRC" "$SNI" "$ver")
		if [ "$ver" = 1.2 ]; then
			args+=("$cipher")
		fi
		coproc CLI { OPENSSL_CONF=$MK_TMP/tls13.cnf exec "$MK_PY" "${args[@]}" 2>&1; }
		read -r -t 20 -u "${CLI[0]}" CLI_INFO || { echo "client said nothing"; return 1; }
		echo "$CLI_INFO"
		CPORT=$(client_field port)
		NEG_VERSION=$(client_field version)
		NEG_IANA=$(iana_name "$(client_field cipher)")
		expect_eq "_OK_ready" "$(client_field greeting | sed 's/^\*//')" &&
			expect_eq "$(iana_name "$cipher")" "$NEG_IANA" &&
			expect_eq "TLSv$ver" "$NEG_VERSION"
	}
	# shellcheck disable=SC2030,SC2031
	check "conn $n: TLS $ver from $SRC, $cipher negotiated, relayed" open_client ||
		fatal=${fatal:-"the client could not connect"}

	check_received() {
		local out
		out=$(ctl received --addr "$SRC:$CPORT") || { echo "$out"; return 1; }
		expect_eq "tls $NEG_IANA" "$out"
	}
	check "conn $n: mailktlsctl received --addr prints the RFC 8314 clause" check_received

	check_query() {
		local out
		out=$(ctl query --addr "$SRC:$CPORT") || { echo "$out"; return 1; }
		has_lines "$out" source=query_socket "version=$NEG_VERSION" "cipher=$NEG_IANA" \
			"sni=$SNI" alpn=imap "client=$SRC:$CPORT" listener=t ktls=none
	}
	check "conn $n: mailktlsctl query --addr: version, cipher, sni, alpn" check_query

	check_status_one() {
		local out
		out=$(ctl status) || { echo "$out"; return 1; }
		has_lines "$out" module=no connections=1 ktls_txrx=0 listeners=1 \
			"listener=t 127.0.0.1:$AGENT_PORT imap implicit"
	}
	check "conn $n: mailktlsctl status counts 1 connection, none in kTLS" check_status_one

	check_backend() {
		wait_grep "$MK_TMP/backend.out" "^$n (query|listener)=" 10
		cat "$MK_TMP/backend.out"
		expect_eq 0 "$(backend_value "$n" query)" &&
			expect_eq "tls $NEG_IANA" "$(backend_value "$n" clause)" &&
			expect_eq "$NEG_VERSION" "$(backend_value "$n" version)" &&
			expect_eq "$SRC:$CPORT" "$(backend_value "$n" client)" &&
			expect_eq "$SNI" "$(backend_value "$n" sni)"
	}
	check "conn $n: the daemon's mailktls_query_fd() gets the clause" check_backend

	check_backend_source() {
		expect_eq query_socket "$(backend_value "$n" source)"
	}
	check "conn $n: ... from the agent's query socket (no module here)" check_backend_source

	close_client() {
		echo close >&"${CLI[1]}"
		local line
		read -r -t 20 -u "${CLI[0]}" line
		expect_eq closed "$line"
	}
	check "conn $n: the client closes with close_notify" close_client
	wait "$CLI_PID" 2>/dev/null
	CLI_PID=

	check_backend_gone() {
		wait_grep "$MK_TMP/backend.out" "^$n gone=" 10
		grep "^$n gone=" "$MK_TMP/backend.out"
		case $(backend_value "$n" gone | cut -d' ' -f1) in
		-2 | -107) return 0 ;;	# ENOENT; ENOTCONN once both ends closed
		*) return 1 ;;
		esac
	}
	check "conn $n: after the close the daemon's query fails" check_backend_gone

	check_received_gone() {
		local out rc
		out=$(ctl received --addr "$SRC:$CPORT" 2>&1)
		rc=$?
		echo "$out"
		expect_eq 1 "$rc"
	}
	check "conn $n: after the close mailktlsctl received exits 1" check_received_gone

	check_status_zero() {
		local out i
		for ((i = 0; i < 100; i++)); do
			out=$(ctl status)
			grep -qx connections=0 <<<"$out" && return 0
			sleep 0.05
		done
		echo "$out"
		return 1
	}
	check "conn $n: mailktlsctl status counts 0 connections again" check_status_zero
done

if [ $failed -ne 0 ]; then
	echo "# agent log:"
	sed 's/^/#   /' "$MK_TMP/agent.log" | tail -n 30
fi
exit $failed
