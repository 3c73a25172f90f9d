#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# mailktlsctl audit against a real authoritative DNS server: NSD on a
# loopback port serves audit.example (signed at test time with
# ldns-signzone; its key is the --trust-anchor) and unsigned.example, with
# SRV, MX, A and TLSA records that point at agent/mailktlsd in front of the
# real Dovecot and Postfix (lib/daemons.sh), at a Dovecot that allows login
# before TLS, at an openssl s_server that speaks only TLS 1.0, and at
# misbehaving servers (lib/audit_servers.py). A fake DNS server of that
# helper answers truncated, oversized, looping and 500-target SRV answers.
#
# Each scenario is a subdomain of audit.example:
#   good      a compliant provider: all six services, Implicit TLS first,
#             DNSSEC, TLSA matching            -> exit 0, no MUST/SHOULD finding
#   prefst    STARTTLS preferred by SRV priority   -> srv-prefers-starttls
#   nosubs    no _submissions, only _submission    -> srv-missing
#   loose     Dovecot alone on a STARTTLS port, login allowed -> login-before-tls
#   wrongname certificate for another name         -> cert-name
#   expired   expired certificate                  -> cert-expired
#   tls10     server limited to TLS 1.0            -> tls-handshake-failed, tls-old-version
#   tlsamis   TLSA that does not match             -> tlsa-mismatch
#   closed    nothing listens                      -> connect-failed
#   silent    accepts, never speaks                -> timeout, within --timeout
#   banner    endless banner / 1 MiB line          -> protocol-error
#   bogus     an SRV record changed after signing  -> dnssec-bogus
# and unsigned.example (TLSA without DNSSEC)      -> tlsa-unsigned.
#
# TAP output. The resolver is only ever 127.0.0.1:PORT.
#   MK_KEEP_TMP=1   keep the temp dir
#   MAILKTLSD=path  the agent binary (default agent/mailktlsd)
#   MAILKTLSCTL=path  the mailktlsctl binary (default agent/mailktlsctl)

# Checks are called through check(), which shellcheck cannot see.
# shellcheck disable=SC2317
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/daemons.sh
. "$here/lib/daemons.sh"
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"

MK_ROOT=$(cd "$here/../.." && pwd)
MAILKTLSD=${MAILKTLSD:-$MK_ROOT/agent/mailktlsd}
CTL=${MAILKTLSCTL:-$MK_ROOT/agent/mailktlsctl}
SRVS=("$MK_PY" "$here/lib/audit_servers.py")
PLAN=21
ZONE=audit.example
TMO=8		# --timeout of most runs, seconds
AGENT_PID='' NSD_PID='' LOOSE_PID='' S10_PID='' SILENT_PID='' BANNER_PID='' BIGLINE_PID=''
FAKEDNS_PID='' MUTEDNS_PID=''

cleanup() {
	local p
	for p in "$AGENT_PID" "$NSD_PID" "$LOOSE_PID" "$S10_PID" "$SILENT_PID" "$BANNER_PID" \
		"$BIGLINE_PID" "$FAKEDNS_PID" "$MUTEDNS_PID"; do
		stop_pid "$p"
	done
	stop_postfix
	stop_dovecot
	mk_cleanup_tmp
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- certificates: a CA of the test, leaves signed by it ----------------------

# leaf NAME START END SAN... - $CERTS/NAME.{crt,key} issued by the test CA
leaf() {
	local n=$1 start=$2 end=$3 san
	shift 3
	san=$(printf 'DNS:%s,' "$@")
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
		-addext "subjectAltName=${san%,}" -keyout "$CERTS/$n.key" \
		-out "$CERTS/$n.csr" 2>/dev/null &&
		openssl ca -batch -config "$CERTS/ca.cnf" -notext -startdate "$start" \
			-enddate "$end" -in "$CERTS/$n.csr" -out "$CERTS/$n.crt" 2>/dev/null
}

make_certs() {
	CERTS=$MK_TMP/certs
	mkdir -p "$CERTS/new"
	: >"$CERTS/index.txt"
	echo 01 >"$CERTS/serial"
	cat >"$CERTS/ca.cnf" <<-EOF2
	[ca]
	default_ca = audit_ca
	[audit_ca]
	dir = $CERTS
	database = \$dir/index.txt
	new_certs_dir = \$dir/new
	serial = \$dir/serial
	certificate = \$dir/ca.pem
	private_key = \$dir/ca.key
	default_md = sha256
	policy = any
	copy_extensions = copy
	unique_subject = no
	[any]
	commonName = supplied
	EOF2
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3 \
		-subj "/CN=mailktls audit test CA" -keyout "$CERTS/ca.key" -out "$CERTS/ca.pem" \
		2>/dev/null || return 1
	local now later names=() s
	now=$(date -u -d '-1 hour' +%Y%m%d%H%M%SZ)
	later=$(date -u -d '+90 days' +%Y%m%d%H%M%SZ)
	for s in good prefst nosubs loose tlsamis closed silent banner tls10; do
		names+=("mail.$s.$ZONE")
	done
	leaf good "$now" "$later" "${names[@]}" mail.unsigned.example &&
		leaf wrong "$now" "$later" mail.other.invalid &&
		leaf expired 20240101000000Z 20240301000000Z "mail.expired.$ZONE"
}

# tlsa_of CERT - "3 1 1 <sha256 of the SPKI>" (DANE-EE, RFC 7218 notation)
tlsa_of() {
	printf '3 1 1 %s' "$(openssl x509 -in "$1" -pubkey -noout |
		openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)"
}

# --- the services -------------------------------------------------------------

# agent_listener NAME PORT PROTOCOL TLS BACKEND CERT
agent_listener() {
	printf '\n[listener %s]\nlisten = 127.0.0.1:%s\nprotocol = %s\ntls = %s\n' "$1" "$2" "$3" "$4"
	printf 'backend = 127.0.0.1:%s\ncertificate = %s\nprivate_key = %s\n' "$5" \
		"$CERTS/$6.crt" "$CERTS/$6.key"
}

start_agent() {
	P_SUBS=$(free_port) P_SUB=$(free_port) P_IMAPS=$(free_port) P_IMAP=$(free_port)
	P_POP3S=$(free_port) P_POP3=$(free_port) P_WRONG=$(free_port) P_EXPIRED=$(free_port)
	AGENT_LOG=$MK_TMP/agent.log
	{
		printf '[global]\nworkers = 1\nlog = stderr\nquery_socket = %s\nktls = auto\n' \
			"$MK_TMP/query.sock"
		printf '\n[defaults]\nproxy_protocol = v2\nhostname = mail.good.%s\n' "$ZONE"
		agent_listener subs "$P_SUBS" submission implicit "$POSTFIX_SUBMIT_PORT" good
		agent_listener sub "$P_SUB" submission starttls "$POSTFIX_SUBMIT_PORT" good
		agent_listener imaps "$P_IMAPS" imap implicit "$DOVECOT_IMAP_PORT" good
		agent_listener imap "$P_IMAP" imap starttls "$DOVECOT_IMAP_PORT" good
		agent_listener pop3s "$P_POP3S" pop3 implicit "$DOVECOT_POP3_PORT" good
		agent_listener pop3 "$P_POP3" pop3 starttls "$DOVECOT_POP3_PORT" good
		agent_listener wrong "$P_WRONG" imap implicit "$DOVECOT_IMAP_PORT" wrong
		agent_listener expired "$P_EXPIRED" imap implicit "$DOVECOT_IMAP_PORT" expired
	} >"$MK_TMP/agent.conf"
	: >"$AGENT_LOG"
	mk_start_agent "$MK_TMP/agent.conf" "$AGENT_LOG" "$P_SUBS" "$P_SUB" "$P_IMAPS" "$P_IMAP" \
		"$P_POP3S" "$P_POP3" "$P_WRONG" "$P_EXPIRED"
}

# A Dovecot of its own on a STARTTLS port that lets LOGIN through before TLS.
start_loose_dovecot() {
	local d=$MK_TMP/loose
	mkdir -p "$d/run" "$d/state"
	P_LOOSE=$(free_port)
	# the test's user, in a table Dovecot 2.3 and 2.4 both read
	printf '%s:{PLAIN}%s:%s:%s::%s::\n' "$MK_USER" "$MK_PASS" "$MK_MAIL_UID" "$MK_MAIL_GID" \
		"$d/home" >"$d/passwd"
	chmod 0644 "$d/passwd"
	{
		if dovecot_24; then
			cat <<-EOF2
			dovecot_config_version = $DOVECOT_VERSION
			dovecot_storage_version = $DOVECOT_VERSION
			ssl_server_cert_file = $CERTS/good.crt
			ssl_server_key_file = $CERTS/good.key
			auth_allow_cleartext = yes
			EOF2
		else
			cat <<-EOF2
			ssl_cert = <$CERTS/good.crt
			ssl_key = <$CERTS/good.key
			disable_plaintext_auth = no
			EOF2
		fi
		dovecot_passwd_conf "$d/passwd"
		cat <<-EOF2
		protocols = imap
		listen = 127.0.0.1
		base_dir = $d/run
		state_dir = $d/state
		instance_name = mk-audit-loose-$$
		log_path = $d/dovecot.log
		ssl = yes
		auth_mechanisms = plain login
		service imap-login {
		  inet_listener imap {
		    $DOVECOT_ADDRESS = 127.0.0.1
		    port = $P_LOOSE
		  }
		  inet_listener imaps {
		    port = 0
		  }
		}
		EOF2
	} >"$d/dovecot.conf"
	dovecot -c "$d/dovecot.conf" -F >>"$d/dovecot.log" 2>&1 &
	LOOSE_PID=$!
	wait_port 127.0.0.1 "$P_LOOSE"
}

start_misc() {
	P_TLS10=$(free_port) P_SILENT=$(free_port) P_BANNER=$(free_port) P_BIGLINE=$(free_port)
	P_CLOSED=$(free_port)
	# -www: no commands read from stdin; the handshake is all the audit needs
	openssl s_server -accept "127.0.0.1:$P_TLS10" -tls1 -cipher 'DEFAULT:@SECLEVEL=0' \
		-cert "$CERTS/good.crt" -key "$CERTS/good.key" -www -quiet \
		</dev/null >"$MK_TMP/s_server.log" 2>&1 &
	S10_PID=$!
	"${SRVS[@]}" silent "$P_SILENT" & SILENT_PID=$!
	"${SRVS[@]}" banner "$P_BANNER" & BANNER_PID=$!
	"${SRVS[@]}" bigline "$P_BIGLINE" & BIGLINE_PID=$!
	wait_port 127.0.0.1 "$P_TLS10" && wait_port 127.0.0.1 "$P_SILENT" &&
		wait_port 127.0.0.1 "$P_BANNER" && wait_port 127.0.0.1 "$P_BIGLINE"
}

# --- the zones ----------------------------------------------------------------

# srv SCENARIO SERVICE PRIO PORT - one SRV record to mail.SCENARIO
srv() {
	printf '_%s._tcp.%s SRV %s 1 %s mail.%s.%s.\n' "$2" "$1" "$3" "$4" "$1" "$ZONE"
}

write_zones() {
	local z=$MK_TMP/dns good_tlsa s p
	mkdir -p "$z"
	good_tlsa=$(tlsa_of "$CERTS/good.crt")
	{
		# shellcheck disable=SC2016 # zone file directives, not shell
		printf '$ORIGIN %s.\n$TTL 300\n' "$ZONE"
		printf '@ SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n@ NS ns\nns A 127.0.0.1\n' \
			"$ZONE" "$ZONE"
		for s in good prefst nosubs loose wrongname expired tls10 tlsamis closed silent banner; do
			printf 'mail.%s A 127.0.0.1\n%s MX 10 mail.%s\n' "$s" "$s" "$s"
		done
		srv good submissions 0 "$P_SUBS"; srv good submission 10 "$P_SUB"
		srv good imaps 0 "$P_IMAPS"; srv good imap 10 "$P_IMAP"
		srv good pop3s 0 "$P_POP3S"; srv good pop3 10 "$P_POP3"
		for p in "$P_SUBS" "$P_SUB" "$P_IMAPS" "$P_IMAP" "$P_POP3S" "$P_POP3"; do
			printf '_%s._tcp.mail.good TLSA %s\n' "$p" "$good_tlsa"
		done
		srv prefst imaps 10 "$P_IMAPS"; srv prefst imap 0 "$P_IMAP"
		srv nosubs submission 0 "$P_SUB"; srv nosubs imaps 0 "$P_IMAPS"
		srv loose imap 0 "$P_LOOSE"
		srv wrongname imaps 0 "$P_WRONG"
		srv expired imaps 0 "$P_EXPIRED"
		srv tls10 imaps 0 "$P_TLS10"
		srv tlsamis imaps 0 "$P_IMAPS"
		printf '_%s._tcp.mail.tlsamis TLSA 3 1 1 %s\n' "$P_IMAPS" \
			"$(printf 'not this key' | sha256sum | cut -d' ' -f1)"
		srv closed imaps 0 "$P_CLOSED"
		srv silent imaps 0 "$P_SILENT"
		srv banner submission 0 "$P_BANNER"; srv banner imap 0 "$P_BIGLINE"
		srv bogus imaps 0 "$P_IMAPS"
	} >"$z/$ZONE.zone"
	{
		# shellcheck disable=SC2016
		printf '$ORIGIN unsigned.example.\n$TTL 300\n'
		printf '@ SOA ns hostmaster 1 3600 600 86400 300\n@ NS ns\nns A 127.0.0.1\n'
		printf 'mail A 127.0.0.1\n@ MX 10 mail\n'
		printf '_imaps._tcp SRV 0 1 %s mail.unsigned.example.\n' "$P_IMAPS"
		printf '_%s._tcp.mail TLSA %s\n' "$P_IMAPS" "$good_tlsa"
	} >"$z/unsigned.example.zone"
	(cd "$z" && KEY=$(ldns-keygen -a ECDSAP256SHA256 -k "$ZONE") &&
		ldns-signzone -n "$ZONE.zone" "$KEY" && cp "$KEY.key" anchor.key) || return 1
	# a record changed after signing: its signature no longer holds
	sed -i "s/^\(_imaps\._tcp\.bogus\.$ZONE\.[[:space:]].*SRV[[:space:]]\+0 1 \)$P_IMAPS /\1$P_CLOSED /" \
		"$z/$ZONE.zone.signed"
	grep -q "SRV[[:space:]]\+0 1 $P_CLOSED mail\.bogus" "$z/$ZONE.zone.signed" || return 1
	ANCHOR=$z/anchor.key
}

start_nsd() {
	local z=$MK_TMP/dns
	DNS_PORT=$(free_port)
	cat >"$z/nsd.conf" <<-EOF2
	server:
	  ip-address: 127.0.0.1@$DNS_PORT
	  port: $DNS_PORT
	  username: ""
	  chroot: ""
	  zonesdir: $z
	  database: ""
	  zonelistfile: $z/zone.list
	  xfrdfile: $z/xfrd.state
	  pidfile: $z/nsd.pid
	  logfile: $z/nsd.log
	  server-count: 1
	remote-control:
	  control-enable: no
	zone:
	  name: $ZONE
	  zonefile: $ZONE.zone.signed
	zone:
	  name: unsigned.example
	  zonefile: unsigned.example.zone
	EOF2
	nsd -d -c "$z/nsd.conf" >>"$z/nsd.log" 2>&1 &
	NSD_PID=$!
	wait_port 127.0.0.1 "$DNS_PORT"
}

start_fake_dns() {
	FAKE_PORT=$(free_port) MUTE_PORT=$(free_port)
	"${SRVS[@]}" dns "$FAKE_PORT" "$P_CLOSED" & FAKEDNS_PID=$!
	"${SRVS[@]}" dnssilent "$MUTE_PORT" & MUTEDNS_PID=$!
	wait_port 127.0.0.1 "$FAKE_PORT" && wait_port 127.0.0.1 "$MUTE_PORT"
}

# --- running the audit ----------------------------------------------------------

# audit NAME DOMAIN [ARGS...] - the JSON report in $MK_TMP/NAME.json, the
# exit status in NAME.rc, the seconds taken in NAME.secs
audit() {
	local name=$1 dom=$2 t0 rc
	shift 2
	t0=$(date +%s%N)
	SSL_CERT_FILE=$CERTS/ca.pem timeout 60 "$CTL" audit "$dom" --resolver "127.0.0.1:$DNS_PORT" \
		--trust-anchor "$ANCHOR" --timeout "$TMO" --json "$@" >"$MK_TMP/$name.json" \
		2>"$MK_TMP/$name.err"
	rc=$?
	echo "$rc" >"$MK_TMP/$name.rc"
	echo $(( ($(date +%s%N) - t0) / 1000000000 )) >"$MK_TMP/$name.secs"
	return 0
}

# expect NAME EXIT ID[@SERVICE]... - the run ended with EXIT and within the
# timeout, and has each finding ID (in SERVICE's findings when given)
expect() {
	local name=$1 want=$2
	shift 2
	cat "$MK_TMP/$name.err" "$MK_TMP/$name.json"
	"$MK_PY" - "$MK_TMP/$name.json" "$(cat "$MK_TMP/$name.rc")" "$want" \
		"$(cat "$MK_TMP/$name.secs")" "$((TMO + 2))" "$@" <<-'EOF2'
	import json, sys
	path, rc, want, secs, limit, ids = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
	    int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:]
	r = json.load(open(path))
	ok = True
	if rc != want or r["summary"]["exit"] != rc:
	    print(f"exit {rc}, summary {r['summary']}, want {want}"); ok = False
	if secs > limit:
	    print(f"took {secs} s, limit {limit} s"); ok = False
	for spec in ids:
	    fid, _, svc = spec.partition("@")
	    pools = [r["findings"]] if not svc else \
	        [s["findings"] for s in r["services"] if s["service"] == svc]
	    if not any(f["id"] == fid and f["section"] and f["level"] in ("must", "should", "note")
	               for p in pools for f in p):
	        print(f"finding {spec} missing"); ok = False
	sys.exit(0 if ok else 1)
	EOF2
}

# --- checks ---------------------------------------------------------------------

c_good() {
	audit good "good.$ZONE"
	expect good 0 || return 1
	"$MK_PY" - "$MK_TMP/good.json" <<-'EOF2'
	import json, sys
	r = json.load(open(sys.argv[1]))
	bad = [f for f in r["findings"] if f["level"] != "note"]
	for s in r["services"]:
	    bad += [f for f in s["findings"] if f["level"] != "note"]
	    assert s["status"] == "pass", s
	    assert s["srv_dnssec"] == "secure" and s["tlsa"] == "match", s
	    assert s["tls_version"] in ("TLSv1.2", "TLSv1.3") and s["cipher"].startswith("TLS_"), s
	assert sorted(s["service"] for s in r["services"]) == sorted(
	    ["submissions", "submission", "imaps", "imap", "pop3s", "pop3"]), r["services"]
	assert r["mx_dnssec"] == "secure" and r["mx"] == ["mail.good.audit.example."], r["mx"]
	assert not bad, bad
	EOF2
}

c_table() {
	SSL_CERT_FILE=$CERTS/ca.pem "$CTL" audit "good.$ZONE" --resolver "127.0.0.1:$DNS_PORT" \
		--trust-anchor "$ANCHOR" --timeout "$TMO" | tee "$MK_TMP/good.table"
	[ "$(grep -c '^imaps .* pass ' "$MK_TMP/good.table")" -eq 1 ] &&
		grep -q "^summary: good.$ZONE.: 6 endpoints, 0 must failed, 0 should failed, .*PASS\$" \
			"$MK_TMP/good.table"
}

c_prefst() { audit prefst "prefst.$ZONE"; expect prefst 0 srv-prefers-starttls; }
c_nosubs() { audit nosubs "nosubs.$ZONE"; expect nosubs 0 srv-missing; }
c_loose() { audit loose "loose.$ZONE"; expect loose 1 login-before-tls@imap; }
c_wrongname() { audit wrongname "wrongname.$ZONE"; expect wrongname 1 cert-name@imaps; }
c_expired() { audit expired "expired.$ZONE"; expect expired 1 cert-expired@imaps; }
c_tls10() {
	audit tls10 "tls10.$ZONE"
	expect tls10 1 tls-handshake-failed@imaps tls-old-version@imaps
}
c_tlsamis() { audit tlsamis "tlsamis.$ZONE"; expect tlsamis 1 tlsa-mismatch@imaps; }
c_unsigned() {
	audit unsigned unsigned.example
	expect unsigned 1 tlsa-unsigned@imaps dnssec-unsigned
}
c_closed() { audit closed "closed.$ZONE"; expect closed 1 connect-failed@imaps; }
c_silent() { audit silent "silent.$ZONE"; expect silent 1 timeout@imaps; }
c_banner() {
	audit banner "banner.$ZONE"
	expect banner 1 protocol-error@submission protocol-error@imap &&
		grep -q 'too many lines\|line longer' "$MK_TMP/banner.json" &&
		grep -q 'line longer than 2048' "$MK_TMP/banner.json"
}

# The fake DNS server: no trust anchor covers bad.example (insecure).
fake() {
	local name=$1
	shift
	DNS_PORT=$FAKE_PORT audit "$name" "$@"
}
c_dns_trunc() { fake trunc trunc.bad.example; expect trunc 0 srv-lookup-failed; }
c_dns_big() {
	fake big big.bad.example
	# what a resolver makes of it is its business; the audit ends in time, whole
	expect big 1 srv-too-many connect-failed@imaps
}
c_dns_loop() { fake loop loop.bad.example; expect loop 0 srv-lookup-failed; }
c_dns_many() {
	fake many many.bad.example
	expect many 1 srv-too-many connect-failed@imaps &&
		"$MK_PY" - "$MK_TMP/many.json" <<-'EOF2'
	import json, sys
	got = [s["target"] for s in json.load(open(sys.argv[1]))["services"]
	       if s["service"] == "imaps"]
	# the 8 best by priority, best first, whatever the answer's order
	assert got == [f"t{n}.many.bad.example." for n in range(499, 491, -1)], got
	EOF2
}

c_bogus() { audit bogus "bogus.$ZONE"; expect bogus 1 dnssec-bogus; }

# A DNS server that never answers: every lookup fails, the run ends in time
# and says it could check nothing (exit 3), never PASS.
c_dns_mute() {
	DNS_PORT=$MUTE_PORT audit mute mute.example
	expect mute 3 srv-lookup-failed && grep -q '"result":"error"' "$MK_TMP/mute.json" &&
		grep -q 'no DNS answer' "$MK_TMP/mute.err"
}

c_usage() {
	local rc
	"$CTL" audit 2>/dev/null; rc=$?
	[ "$rc" -eq 2 ] || { echo "no domain: exit $rc"; return 1; }
	"$CTL" audit 'bad domain' 2>/dev/null; rc=$?
	[ "$rc" -eq 2 ] || { echo "bad domain: exit $rc"; return 1; }
	"$CTL" audit x.example --resolver 'not an address' 2>&1; rc=$?
	[ "$rc" -eq 3 ] || { echo "bad resolver: exit $rc"; return 1; }
}

echo "TAP version 13"
echo "1..$PLAN"
mk_setup_tmp || { MK_TMP=/nonexistent; fatal="no temp dir"; }
[ -z "$fatal" ] && { make_certs || fatal="openssl could not make the test certificates"; }
[ -z "$fatal" ] && { start_dovecot || fatal="dovecot did not start"; }
[ -z "$fatal" ] && { start_postfix || fatal="postfix did not start"; }
[ -z "$fatal" ] && { start_agent || fatal="mailktlsd did not start"; }
[ -z "$fatal" ] && { start_loose_dovecot || fatal="the second dovecot did not start"; }
[ -z "$fatal" ] && { start_misc || fatal="the test servers did not start"; }
[ -z "$fatal" ] && { write_zones || fatal="the zones could not be signed (ldnsutils?)"; }
[ -z "$fatal" ] && { start_nsd || fatal="nsd did not start"; }
[ -z "$fatal" ] && { start_fake_dns || fatal="the fake DNS server did not start"; }

check "a compliant provider passes (all six services, DNSSEC, TLSA), exit 0" c_good
check "the table has one line per service and a PASS summary" c_table
check "SRV preferring STARTTLS is named: srv-prefers-starttls" c_prefst
check "a missing _submissions is named: srv-missing" c_nosubs
check "Dovecot accepting LOGIN before TLS is named: login-before-tls, exit 1" c_loose
check "a certificate for another name is named: cert-name" c_wrongname
check "an expired certificate is named: cert-expired" c_expired
check "a TLS 1.0-only server: tls-handshake-failed and tls-old-version" c_tls10
check "a TLSA record that does not match: tlsa-mismatch" c_tlsamis
check "TLSA in an unsigned zone: tlsa-unsigned" c_unsigned
check "a closed port: connect-failed" c_closed
check "a silent port: timeout, and --timeout holds" c_silent
check "an endless banner and a 1 MiB line: protocol-error, in time" c_banner
check "a truncated DNS answer: srv-lookup-failed, in time" c_dns_trunc
check "an oversized DNS answer: the audit ends in time" c_dns_big
check "a CNAME loop: srv-lookup-failed, in time" c_dns_loop
check "500 SRV targets: srv-too-many, the 8 best by priority checked, in time" c_dns_many
check "an SRV record whose signature fails: dnssec-bogus" c_bogus
check "a DNS server that never answers: srv-lookup-failed, exit 3, in time" c_dns_mute
check "usage errors exit 2, an unusable resolver 3" c_usage
check "mailktlsd kept running through the audits" agent_alive
check_done "$PLAN" "$AGENT_LOG" mailktlsd
