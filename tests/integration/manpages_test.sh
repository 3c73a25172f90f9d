#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Every manual page renders with man(1) without a warning from groff: what
# `man mailktlsd.conf` shows an operator is what was written. (That the
# configuration manual lists exactly the parser's keys is checked by the
# unit test test_manpages.)
set -u
cd "$(dirname "$0")/../.." || exit 1
pages=(man/*.[0-9])
echo "1..$((${#pages[@]} + 1))"
t=0 failed=0
t=$((t + 1))
if [ ${#pages[@]} -ge 5 ] && command -v man >/dev/null; then
	echo "ok $t - ${#pages[@]} manual pages, man(1) installed"
else
	echo "not ok $t - expected at least 5 pages in man/ and man(1) (man-db)"
	failed=1
fi
for p in "${pages[@]}"; do
	t=$((t + 1))
	warn=$(MANWIDTH=80 man --warnings=all -l "$p" 2>&1 >/dev/null)
	lines=$(MANWIDTH=80 man -l "$p" 2>/dev/null | wc -l)
	if [ -z "$warn" ] && [ "$lines" -gt 10 ]; then
		echo "ok $t - man -l $p: $lines lines, no warnings"
	else
		echo "not ok $t - man -l $p: $lines lines"
		printf '%s\n' "$warn" | head -n 10 | sed 's/^/#   /'
		failed=1
	fi
done
exit "$failed"
