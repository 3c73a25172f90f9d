# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# What the integration test scripts share: TAP bookkeeping and the test bed
# of real Dovecot and Postfix (lib/daemons.sh, sourced first).
#
#   . tests/integration/lib/daemons.sh
#   . tests/integration/lib/common.sh
#   echo "1..$PLAN"
#   mk_testbed_up			# MK_TMP, CERTS, Dovecot, Postfix; or $fatal
#   check "description" command args...
#   check_done "$PLAN" "$LOG" "agent"	# plan count, log tail on failure, exit
#
# A check whose test bed could not be set up fails with the reason in
# $fatal: a missing daemon or agent makes the checks FAIL, never skip.

t=0 failed=0 fatal=

# check DESCRIPTION COMMAND... - one TAP line; the command's output becomes
# diagnostics when it fails. Runs in this shell (not a subshell), so a check
# may change the state of the script (e.g. wait for the front it stopped).
# Return: 0 when the check passed.
check() {
	local desc=$1 out=$MK_TMP/check.out
	shift
	t=$((t + 1))
	if [ -n "$fatal" ]; then
		echo "not ok $t - $desc # $fatal"
		failed=1
		return 1
	fi
	if "$@" >"$out" 2>&1; then
		echo "ok $t - $desc"
		return 0
	fi
	echo "not ok $t - $desc"
	tail -n 30 "$out" | sed 's/^/#   /'
	failed=1
	return 1
}

# check_done PLAN LOG NAME - one more failing line when the script ran another
# number of checks than PLAN; after a failure the last lines of LOG (the NAME
# log) as diagnostics. Exits the script: 0 when everything passed.
check_done() {
	if [ "$t" -ne "$1" ]; then
		echo "not ok $((t + 1)) - test script ran $t checks, plan says $1"
		failed=1
	fi
	if [ "$failed" -ne 0 ] && [ -n "$2" ] && [ -s "$2" ]; then
		echo "# last lines of the $3 log ($2):"
		tail -n 30 "$2" | sed 's/^/#   /'
	fi
	exit "$failed"
}

# mk_tmp_certs - the private temp dir and test certificates with the CA
# bundle $CERTS/ca.pem. What failed goes into $fatal.
mk_tmp_certs() {
	mk_setup_tmp || { MK_TMP=/nonexistent; fatal="no temp dir"; }
	CERTS=$MK_TMP/certs
	if [ -z "$fatal" ]; then
		if mk_gen_certs "$CERTS"; then
			cat "$CERTS/rsa.crt" "$CERTS/ecdsa.crt" >"$CERTS/ca.pem"
		else
			fatal="openssl could not make test certificates"
		fi
	fi
	return 0
}

# mk_testbed_up - mk_tmp_certs, then Dovecot and Postfix. What failed goes
# into $fatal.
mk_testbed_up() {
	mk_tmp_certs
	[ -z "$fatal" ] && { start_dovecot || fatal="dovecot did not start"; }
	[ -z "$fatal" ] && { start_postfix || fatal="postfix did not start"; }
	return 0
}

# agent_alive - the mailktlsd of $AGENT_PID still runs; else the tail of $AGENT_LOG.
agent_alive() {
	[ -n "${AGENT_PID:-}" ] && kill -0 "$AGENT_PID" 2>/dev/null && return 0
	echo "mailktlsd is not running; its log:"
	tail -n 20 "${AGENT_LOG:-/dev/null}" 2>/dev/null
	return 1
}

# mk_start_agent CONF LOG PORT... - $MAILKTLSD -c CONF as a background job
# of this shell (AGENT_PID), its output appended to LOG, until every PORT
# on 127.0.0.1 accepts. Return: 0, or 1 with the reason on stderr.
mk_start_agent() {
	local conf=$1 log=$2 p
	shift 2
	if [ ! -x "$MAILKTLSD" ]; then
		echo "# $MAILKTLSD is missing or not executable (run make)" >&2
		return 1
	fi
	"$MAILKTLSD" -c "$conf" >>"$log" 2>&1 &
	AGENT_PID=$!
	for p in "$@"; do
		if ! kill -0 "$AGENT_PID" 2>/dev/null || ! wait_port 127.0.0.1 "$p" 10; then
			echo "# mailktlsd (pid $AGENT_PID) is not listening on $p; its log:" >&2
			tail -n 40 "$log" | sed 's/^/#   /' >&2
			return 1
		fi
	done
}

# same_file EXPECTED GOT - identical, or both shown with control characters.
same_file() {
	cmp "$1" "$2" && return 0
	echo "--- expected"; cat -A "$1" | head -20
	echo "--- got"; cat -A "$2" | head -20
	return 1
}

# c_postfix_client - Postfix's smtpd saw the client as 127.0.0.2 (PROXY v2).
c_postfix_client() {
	grep -E 'smtpd\[[0-9]+\]: connect from' "$POSTFIX_LOG" | tail -n 5
	grep -qE 'smtpd\[[0-9]+\]: connect from [^ ]*\[127\.0\.0\.2\]' "$POSTFIX_LOG"
}
