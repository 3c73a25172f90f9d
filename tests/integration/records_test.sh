#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The record-layer answers of mailktlsd on the user-space record path: the
# same table of crafted records (tests/vm/agent_records_test.c) that the VM
# runs on kernel TLS, here with `ktls = off` against the host's agent.
#
# TAP output (the kselftest harness's). A missing binary fails.
#
#   MAILKTLSD=path  the agent to test (default agent/mailktlsd)
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
bin=$BUILD/tests/vm/agent_records_test

if ! make -s BUILD="$BUILD" "$bin" >/dev/null; then
	echo "1..1"
	echo "not ok 1 - cannot build $bin"
	exit 1
fi
MK_KTLS=off MK_AGENT=${MAILKTLSD:-agent/mailktlsd} exec timeout 600 "$bin"
