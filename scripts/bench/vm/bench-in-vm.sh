#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The VM half of scripts/bench-vm.sh: runs inside the mailktls VM (busybox
# sh, Debian 6.1 kernel with kTLS), started by scripts/vm-run.sh as its
# VM_SCRIPT. Puts each proxy in turn in front of bench_backend on 127.0.0.1
# and drives it with bench_client, like scripts/bench.sh does on the host.
#
# Arguments (NAME=VALUE, from VM_TEST_ARGS): BIN (directory under /mk with
# bench_backend, bench_client, mailktlsd), PROXIES (comma separated, from
# mk-ktls mk-off stunnel haproxy hitch mk-module), BULK_MIB, HS_COUNT,
# IDLE_CONNS, MODULE_HS (handshakes per mk-module round), MODULE_ROUNDS,
# MODULE_TAGS (registrations per bench_tag thread), LAT_N (sessions per
# first-answer figure, 0: none).
#
# Output: "# ..." progress lines, then one line per proxy
#   bench-row NAME UP DOWN HS KIB SYSKIB CPU SYSCPU PROCS SKIB SSYSKIB GKIB GSYSKIB
# where KIB is the RSS growth of the proxy's processes per idle connection
# logged in (IMAP IDLE), SKIB and GKIB the same with a backend that stays
# silent and after a pre-login greeting (each with a freshly started proxy,
# see scripts/bench/bench_proto.h),
# SYSKIB (SSYSKIB, GSYSKIB) the growth of the whole VM's used memory (kernel
# included: kTLS state and socket buffers are not in any RSS) per idle
# connection, CPU the
# proxy's utime+stime per GiB during the two bulk transfers and SYSCPU the
# busy time of every CPU of the VM per GiB (client and backend included,
# the same work for every proxy). "-" marks a figure that failed.
# mk-module prints instead, for BIN/mailktlsd ("now") and, when it is
# there, BIN/mailktlsd-base ("base", another build to compare with),
#   bench-module BUILD ON_RATE OFF_RATE RATIO MEDIAN_RATIO ROUNDS TAGS_PER_HS
# mailktlsd's (kTLS) handshakes/s with mailktls.ko loaded and unloaded,
# over all rounds, their ratio, the median of the rounds' ratios, and the
# tags the module counted per handshake while loaded (2: client and
# backend socket); and, when BIN has bench_tag, for each of its two paths
#   bench-tag shared|worker US_PER_ADD US_PER_ADD
# (microseconds a thread spends per registration, two runs).
# Then, for mk-ktls, mk-off and the peers named in PROXIES, the first-answer
# latency (scripts/bench/first_answer.c; mailktlsd Implicit TLS and
# STARTTLS, IMAP and SMTP, the peers Implicit TLS IMAP):
#   bench-lat NAME LABEL P50_TLS12 P99_TLS12 P50_TLS13 P99_TLS13
# in milliseconds, LABEL as implicit-IMAP; "-" for a failed figure.
# The start_* functions are called through a computed name; ulimit -n is
# busybox sh's.
# shellcheck disable=SC2317,SC3045
set -u
BIN=build-benchvm/benchvm
PROXIES=mk-ktls,mk-off,stunnel,haproxy,hitch,mk-module
BULK_MIB=64 HS_COUNT=200 IDLE_CONNS=1000 MODULE_HS=400 MODULE_ROUNDS=3 MODULE_TAGS=20000
LAT_N=50
for arg; do
	case $arg in
	BIN=* | PROXIES=* | BULK_MIB=* | HS_COUNT=* | IDLE_CONNS=* | MODULE_HS=* | MODULE_ROUNDS=* | \
	MODULE_TAGS=* | LAT_N=*)
		eval "${arg%%=*}=\${arg#*=}" ;;
	*) echo "# bench: unknown argument $arg"; exit 2 ;;
	esac
done
BIN=/mk/$BIN
TMP=/tmp/bench
TICK=100	# USER_HZ on x86
BACKEND_PORT=25400
LOGIN_BACKEND=$BACKEND_PORT
SILENT_BACKEND=$((BACKEND_PORT + 30))
GREET_BACKEND=$((BACKEND_PORT + 31))
LAT_IMAP_BACKEND=$((BACKEND_PORT + 32))
LAT_SMTP_BACKEND=$((BACKEND_PORT + 33))
mkdir -p "$TMP"
ulimit -n 65536
# hitch drops its workers to nobody; the initramfs knows only root.
grep -q '^nobody:' /etc/passwd || echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >>/etc/passwd
grep -q '^nogroup:' /etc/group || echo 'nogroup:x:65534:' >>/etc/group

log() { echo "# bench: $*"; }

# "RSS_KIB CPU_TICKS NPROC USER_TICKS" summed over process $1 and its descendants.
tree_stat() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
	{
		pid = $1; s = $0; sub(/^.*\) /, "", s); split(s, f, " ")
		ppid[pid] = f[2]; ticks[pid] = f[12] + f[13]; uticks[pid] = f[12]; rss[pid] = f[22] * 4
	}
	END {
		in_tree[root] = 1
		for (changed = 1; changed;) {
			changed = 0
			for (p in ppid)
				if (!(p in in_tree) && (ppid[p] in in_tree)) { in_tree[p] = 1; changed = 1 }
		}
		for (p in in_tree)
			if (p in ppid) { r += rss[p]; t += ticks[p]; u += uticks[p]; n++ }
		print r + 0, t + 0, n + 0, u + 0
	}'
}

sys_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
sys_used_kib() {
	awk '/^(MemTotal|MemFree|Buffers|Cached):/ { v[$1] = $2 }
	END { print v["MemTotal:"] - v["MemFree:"] - v["Buffers:"] - v["Cached:"] }' /proc/meminfo
}

listening() {	# port: is a TCP socket in LISTEN on it?
	awk -v port="$(printf '%04X' "$1")" \
		'$4 == "0A" && substr($2, index($2, ":") + 1) == port { found = 1 } END { exit !found }' \
		/proc/net/tcp
}

wait_listen() {
	i=0
	while [ $i -lt 100 ]; do
		listening "$1" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

stop_pid() {	# pid: SIGTERM, 5 s, then SIGKILL to the tree
	kids=$(cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '{ s = $0; sub(/^.*\) /, "", s);
		split(s, f, " "); if (f[2] == root) print $1 }')
	kill "$1" 2>/dev/null || return 0
	i=0
	while [ $i -lt 50 ] && kill -0 "$1" 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$1" 2>/dev/null; then
		log "pid $1 ignored SIGTERM for 5 s, killing it"
		# shellcheck disable=SC2086  # one pid per word
		kill -KILL "$1" $kids 2>/dev/null
	fi
	wait "$1" 2>/dev/null
}

# --- certificate: ECDSA P-256, the same for every proxy ----------------------

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=localhost -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null ||
	{ log "openssl req failed"; exit 1; }
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/combined.pem"
chmod 644 "$TMP"/*.pem	# hitch's workers run as nobody

# --- the proxies: each starts in the background on port $1 -----------------------

start_mailktlsd() {	# port ktls
	mailktlsd_conf "$1" "$2" >"$TMP/mailktlsd-$2.conf"
	"${MK_DAEMON:-$BIN/mailktlsd}" -c "$TMP/mailktlsd-$2.conf" 2>"$TMP/$name.log" &
}
start_mk_ktls() { start_mailktlsd "$1" require; }
start_mk_off() { start_mailktlsd "$1" off; }

# mailktlsd_conf, start_stunnel, start_haproxy: the same set-ups on the host and in the VM
# shellcheck source=scripts/bench/peers.sh
. "$(dirname "$0")/../peers.sh"

start_hitch() {
	mkdir -p "$TMP/ocsp"
	hitch --frontend="[127.0.0.1]:$1" --backend="[127.0.0.1]:$BACKEND_PORT" \
		--workers=2 --ocsp-dir="$TMP/ocsp" --log-level=1 --user=nobody --group=nogroup \
		"$TMP/combined.pem" >"$TMP/hitch.log" 2>&1 &
}

# --- measurements ------------------------------------------------------------------

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

# Sets IDLE_KIB and IDLE_SYSKIB. STATE: login, greet or silent (bench_client
# idle); BACKEND: the port of the backend the proxy forwards to.
measure_idle() {	# port pid state backend
	IDLE_KIB=- IDLE_SYSKIB=-
	timeout 120 "$BIN/bench_client" idle "$1" 20 0 "$3" >/dev/null || return
	sleep 1
	set -- "$1" "$2" "$3" "$4" "$(tree_stat "$2" | cut -d' ' -f1)" "$(sys_used_kib)"
	"$BIN/bench_client" idle "$1" "$IDLE_CONNS" 300 "$3" >"$TMP/idle.out" 2>"$TMP/idle.err" &
	cpid=$!
	i=0
	while [ $i -lt 2400 ] && ! grep -q ready "$TMP/idle.out" && kill -0 $cpid 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
	# "silent": the client is done before the proxy; wait for the backend side
	i=0
	while [ $i -lt 600 ] && [ "$(bench_established "$4")" -lt "$IDLE_CONNS" ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if grep -q ready "$TMP/idle.out"; then
		sleep 2
		rss=$(tree_stat "$2" | cut -d' ' -f1)
		used=$(sys_used_kib)
		IDLE_KIB=$(awk -v a="$rss" -v b="$5" -v n="$IDLE_CONNS" 'BEGIN {printf "%.1f", (a - b) / n}')
		IDLE_SYSKIB=$(awk -v a="$used" -v b="$6" -v n="$IDLE_CONNS" \
			'BEGIN {printf "%.1f", (a - b) / n}')
	else
		log "idle connections failed: $(head -n 3 "$TMP/idle.err")"
	fi
	kill $cpid 2>/dev/null
	wait $cpid 2>/dev/null
	sleep 2	# let the proxy tear the connections down
}

# A fresh proxy in front of the silent or the greeting backend: sets
# IDLE_KIB and IDLE_SYSKIB.
measure_idle_state() {	# name port state backend
	BACKEND_PORT=$4
	"start_$(echo "$1" | tr - _)" "$2"
	spid=$!
	BACKEND_PORT=$LOGIN_BACKEND
	IDLE_KIB=- IDLE_SYSKIB=-
	if wait_listen "$2"; then
		log "$1: idle connections, $3 backend"
		measure_idle "$2" $spid "$3" "$4"
	fi
	stop_pid $spid
}

bench_proxy() {	# name port
	name=$1 port=$2
	measure_idle_state "$name" $((port + 10)) silent "$SILENT_BACKEND"
	skib=$IDLE_KIB ssyskib=$IDLE_SYSKIB
	measure_idle_state "$name" $((port + 20)) greet "$GREET_BACKEND"
	gkib=$IDLE_KIB gsyskib=$IDLE_SYSKIB
	"start_$(echo "$name" | tr - _)" "$port"
	pid=$!
	if ! wait_listen "$port"; then
		log "$name did not start; its log:"
		sed 's/^/#   /' "$TMP/$name.log" 2>/dev/null
		echo "bench-row $name - - - - - - - 0 $skib $ssyskib $gkib $gsyskib"
		stop_pid "$pid"
		return
	fi
	nproc=$(tree_stat "$pid" | cut -d' ' -f3)
	log "$name: $nproc processes, measuring idle connections, logged-in backend"
	measure_idle "$port" "$pid" login "$LOGIN_BACKEND"
	log "$name: handshakes"
	hs=$(timeout 300 "$BIN/bench_client" hs "$port" "$HS_COUNT" 2 | field rate)
	log "$name: bulk"
	t0=$(tree_stat "$pid" | cut -d' ' -f2)
	u0=$(tree_stat "$pid" | cut -d' ' -f4)
	s0=$(sys_busy_ticks)
	up=$(timeout 300 "$BIN/bench_client" bulk "$port" up $((BULK_MIB << 20)) | field mbps)
	tm=$(tree_stat "$pid" | cut -d' ' -f2)
	down=$(timeout 300 "$BIN/bench_client" bulk "$port" down $((BULK_MIB << 20)) | field mbps)
	t1=$(tree_stat "$pid" | cut -d' ' -f2)
	u1=$(tree_stat "$pid" | cut -d' ' -f4)
	s1=$(sys_busy_ticks)
	log "$name: bulk: up ${up:-fail} MB/s, down ${down:-fail} MB/s, proxy $((t1 - t0))" \
		"ticks (up $((tm - t0)), down $((t1 - tm)); user $((u1 - u0)), system $((t1 - t0 - u1 + u0)))," \
		"VM busy $((s1 - s0)) ticks"
	cpu=- syscpu=-
	if [ -n "$up" ] && [ -n "$down" ]; then
		cpu=$(awk -v d=$((t1 - t0)) -v t=$TICK -v m="$BULK_MIB" \
			'BEGIN {printf "%.2f", d / t / (2 * m / 1024)}')
		syscpu=$(awk -v d=$((s1 - s0)) -v t=$TICK -v m="$BULK_MIB" \
			'BEGIN {printf "%.2f", d / t / (2 * m / 1024)}')
	fi
	case $name in
	mk-*)
		log "$name: $(grep -m1 'TLS records' "$TMP/$name.log" | sed 's/.*mailktlsd: //')"
		log "$name: tls lines by ktls= value:" \
			"$(grep ' tls listener=' "$TMP/$name.log" | sed 's/.* ktls=//' | sort | uniq -c |
				tr '\n' ' ')"
		;;
	esac
	echo "bench-row $name ${up:--} ${down:--} ${hs:--} $IDLE_KIB $IDLE_SYSKIB $cpu $syscpu $nproc" \
		"$skib $ssyskib $gkib $gsyskib"
	stop_pid "$pid"
}

# --- the module's cost: the same agent with and without mailktls.ko ---------------

tags_total() { awk '$1 == "tags_total" { print $2 }' /proc/net/mailktls 2>/dev/null; }

# One fresh mailktlsd $MK_DAEMON (kTLS), MODULE_HS handshakes with the
# module on or off: sets ROUND_RATE and ROUND_TAGS, or fails.
module_round() {	# label on|off port
	name=mk-module-$1-$2
	start_mailktlsd "$3" require
	pid=$!
	if ! wait_listen "$3"; then
		log "$name: mailktlsd did not start: $(head -n 3 "$TMP/$name.log")"
		stop_pid "$pid"
		return 1
	fi
	t0=$(tags_total)
	out=$(timeout 300 "$BIN/bench_client" hs "$3" "$MODULE_HS" 2)
	t1=$(tags_total)
	stop_pid "$pid"
	n=$(echo "$out" | field handshakes) sec=$(echo "$out" | field seconds)
	if [ -z "$n" ] || [ -z "$sec" ]; then
		log "$name: handshakes failed"
		return 1
	fi
	ROUND_RATE=$(awk -v n="$n" -v s="$sec" 'BEGIN {printf "%.2f", n / s}')
	ROUND_TAGS=$((${t1:-0} - ${t0:-0}))
	log "$name: $n handshakes in $sec s ($ROUND_RATE/s), module tags ${t0:--} -> ${t1:--}"
}

module_set() {	# on|off
	if [ "$1" = on ]; then
		[ -r /proc/net/mailktls ] || insmod /mk/kmod/mailktls.ko
	else
		! [ -r /proc/net/mailktls ] || rmmod mailktls
	fi
}

# bench_tag: a connection's registration (two tags, one entry) with two
# threads, on the worker path and on the shared one, five times each in
# turn (the host's load moves single runs by a third):
#   bench-tag MODE US_PER_ADD...
bench_tag_paths() {
	[ -x "$BIN/bench_tag" ] || return 0
	for mode in shared worker; do
		: >"$TMP/tag-$mode.out"
	done
	for i in 1 2 3 4 5; do
		for mode in shared worker; do
			out=$(timeout 300 "$BIN/bench_tag" $mode 2 "$MODULE_TAGS" 2>&1)
			log "bench_tag $mode: $out"
			echo "$out" | field us_per_add >>"$TMP/tag-$mode.out"
		done
	done
	for mode in shared worker; do
		echo "bench-tag $mode $(tr '\n' ' ' <"$TMP/tag-$mode.out")"
	done
}

# The module is loaded at boot.  Each round measures every build with the
# module on and off, in the order on-off, then off-on in the next round, so
# that a drift of the emulated CPU hits both sides alike; a round's ratio
# compares two runs minutes apart at most.  Prints per build
#   bench-module LABEL ON_RATE OFF_RATE RATIO MEDIAN_ROUND_RATIO ROUNDS TAGS_PER_HS
bench_module() {	# port
	builds=now
	[ -x "$BIN/mailktlsd-base" ] && builds="now base"
	if [ ! -r /proc/net/mailktls ] || [ ! -f /mk/kmod/mailktls.ko ]; then
		log "mk-module: mailktls.ko is not loaded, skipped"
		return
	fi
	: >"$TMP/module.rounds"
	r=0
	while [ $r -lt "$MODULE_ROUNDS" ]; do
		order="on off"
		[ $((r % 2)) = 1 ] && order="off on"
		for b in $builds; do
			MK_DAEMON=$BIN/mailktlsd
			[ "$b" = base ] && MK_DAEMON=$BIN/mailktlsd-base
			for state in $order; do
				module_set "$state"
				module_round "$b" "$state" "$1" || return
				echo "$b $r $state $ROUND_RATE $ROUND_TAGS $MODULE_HS" >>"$TMP/module.rounds"
			done
		done
		r=$((r + 1))
	done
	MK_DAEMON=$BIN/mailktlsd
	module_set on
	bench_tag_paths
	for b in $builds; do
		awk -v b="$b" '
		$1 != b { next }
		{ rate[$2 " " $3] = $4; n[$3] += $6; t[$3] += $6 / $4; if ($3 == "on") tags += $5 }
		END {
			for (i = 0; (i " on") in rate; i++)
				q[i] = rate[i " on"] / rate[i " off"]
			for (j = 0; j < i; j++)		# insertion sort: a few rounds
				for (k = j; k > 0 && q[k - 1] > q[k]; k--) { x = q[k]; q[k] = q[k - 1]; q[k - 1] = x }
			med = i % 2 ? q[int(i / 2)] : (q[i / 2 - 1] + q[i / 2]) / 2
			on = n["on"] / t["on"]; off = n["off"] / t["off"]
			printf "bench-module %s %.1f %.1f %.3f %.3f %d %.2f\n", b, on, off, on / off, med, i,
				tags / n["on"]
		}' "$TMP/module.rounds"
	done
}

# --- the first answer after the handshake ---------------------------------------

lat_row() {	# name label port proto tls
	lat12=$(timeout 300 "$BIN/first_answer" client "$3" "$4" "$5" 1.2 "$LAT_N")
	lat13=$(timeout 300 "$BIN/first_answer" client "$3" "$4" "$5" 1.3 "$LAT_N")
	echo "bench-lat $1 $2 $(first_answer_figures "$lat12") $(first_answer_figures "$lat13")"
}

# Each proxy freshly started in front of the line backends, from port $1 on
# (4 ports each).
bench_latency() {	# port
	"$BIN/first_answer" backend "$LAT_IMAP_BACKEND" "$LAT_SMTP_BACKEND" &
	lat_backend=$!
	if ! wait_listen "$LAT_IMAP_BACKEND" || ! wait_listen "$LAT_SMTP_BACKEND"; then
		log "latency backends did not start"
		stop_pid $lat_backend
		return
	fi
	lport=$1
	for name in $(echo "$PROXIES" | tr ',' ' '); do
		case $name in
		mk-ktls)
			mailktlsd_lat_conf "$lport" require >"$TMP/lat-$name.conf"
			"$BIN/mailktlsd" -c "$TMP/lat-$name.conf" 2>"$TMP/$name.log" & ;;
		mk-off)
			mailktlsd_lat_conf "$lport" off >"$TMP/lat-$name.conf"
			"$BIN/mailktlsd" -c "$TMP/lat-$name.conf" 2>"$TMP/$name.log" & ;;
		stunnel | haproxy | hitch)
			BACKEND_PORT=$LAT_IMAP_BACKEND
			"start_$name" "$lport"
			BACKEND_PORT=$LOGIN_BACKEND ;;
		*) continue ;;
		esac
		lpid=$!
		log "$name: first-answer latency, $LAT_N sessions a figure"
		if wait_listen "$lport"; then
			# warm-up: the first sessions of a fresh proxy run code TCG
			# has not translated yet
			for v in 1.2 1.3; do
				timeout 120 "$BIN/first_answer" client "$lport" imap implicit $v 5 >/dev/null
			done
			lat_row "$name" implicit-IMAP "$lport" imap implicit
			case $name in
			mk-*)
				wait_listen $((lport + 3)) || true
				lat_row "$name" implicit-SMTP $((lport + 1)) smtp implicit
				lat_row "$name" STARTTLS-IMAP $((lport + 2)) imap starttls
				lat_row "$name" STARTTLS-SMTP $((lport + 3)) smtp starttls
				log "$name: tls lines by ktls= value:" \
					"$(grep ' tls listener=' "$TMP/$name.log" | sed 's/.* ktls=//' |
						sort | uniq -c | tr '\n' ' ')"
				;;
			esac
		else
			log "$name did not start; its log:"
			sed 's/^/#   /' "$TMP/$name.log" 2>/dev/null
		fi
		stop_pid "$lpid"
		lport=$((lport + 4))
	done
	stop_pid $lat_backend
}

"$BIN/bench_backend" "$LOGIN_BACKEND" login &
backend=$!
"$BIN/bench_backend" "$SILENT_BACKEND" silent &
silent_backend=$!
"$BIN/bench_backend" "$GREET_BACKEND" greet &
greet_backend=$!
for p in "$LOGIN_BACKEND" "$SILENT_BACKEND" "$GREET_BACKEND"; do
	wait_listen "$p" || { log "backend on $p did not start"; exit 1; }
done
log "BULK_MIB=$BULK_MIB HS_COUNT=$HS_COUNT IDLE_CONNS=$IDLE_CONNS, $(nproc) CPUs," \
	"kernel $(uname -r), $(awk '/^MemTotal/ {print $2}' /proc/meminfo) KiB RAM"
t_start=$(date +%s)
port=$((BACKEND_PORT + 1))
for p in $(echo "$PROXIES" | tr ',' ' '); do
	case $p in
	mk-ktls | mk-off | stunnel | haproxy | hitch) bench_proxy "$p" $port ;;
	mk-module) bench_module $port ;;
	*) log "unknown proxy $p"; exit 2 ;;
	esac
	port=$((port + 1))
done
[ "$LAT_N" -gt 0 ] && bench_latency $((BACKEND_PORT + 40))
log "guest CPU flags for crypto: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' |
	grep -E '^(aes|pclmulqdq|avx|avx2|vaes|vpclmulqdq|avx512f|sha_ni)$' | tr '\n' ' ')"
log "kernel gcm(aes) drivers: $(awk '/^name/ { n = $3 } /^driver/ && n == "gcm(aes)" { print $3 }' \
	/proc/crypto | tr '\n' ' ')"
log "kernel TLS counters: $(tr -s ' \t' ' ' </proc/net/tls_stat 2>/dev/null | tr '\n' ' ')"
log "$(($(date +%s) - t_start)) s"
stop_pid $backend
stop_pid $silent_backend
stop_pid $greet_backend
exit 0
