#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Style gate: checkpatch.pl --strict (from Debian's linux-source-6.1,
# extracted into $BUILD at first use) on the module and the UAPI header.
# User space follows the same kernel style by review; no formatter checks it.
# Exit non-zero on any checkpatch error, warning or check.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
tar=${LINUX_SOURCE_TAR:-$(ls /usr/src/linux-source-6.1.tar.xz /usr/src/linux-source-*.tar.xz 2>/dev/null | head -n1)}
cp_dir=$BUILD/checkpatch
cp=$cp_dir/scripts/checkpatch.pl

if [ ! -f "$cp" ]; then
	[ -n "$tar" ] || { echo "style: linux-source-6.1 is not installed (scripts/install-deps.sh)" >&2; exit 1; }
	mkdir -p "$cp_dir"
	tar -xJf "$tar" -C "$cp_dir" --strip-components=1 --wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' '*/scripts/const_structs.checkpatch'
fi

files=$(ls kmod/*.c kmod/*.h include/uapi/linux/mailktls.h | grep -v '\.mod\.c$')
rc=0
# shellcheck disable=SC2086
perl "$cp" --no-tree --strict --terse --show-types -f $files || rc=1

[ "$rc" -eq 0 ] && echo "style: ok"
exit "$rc"
