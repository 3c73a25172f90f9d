#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Memory across reloads: connections kept open through 8 SIGHUPs hold 9
# configurations (the mailktls_runtimes gauge says 9); once they close the
# old ones are freed (the gauge says 1) and the agent's RSS is within 10 %
# of a fresh agent's that served the same connections without a reload.
# Runs `scripts/bench/soak.py --reload-memory` (the benchmark's mode, with
# smaller counts). Prints TAP.
set -uo pipefail
cd "$(dirname "$0")/../.."
AGENT=${MAILKTLSD:-agent/mailktlsd}
if [ ! -x "$AGENT" ]; then
	echo "1..1"
	echo "not ok 1 - $AGENT is missing (run make)"
	exit 1
fi
exec /usr/bin/python3 scripts/bench/soak.py --agent "$AGENT" --reload-memory --reloads 8 \
	--conns 40 --tap
