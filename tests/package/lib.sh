# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# tests/package/lib.sh - the Debian roots the package tests install into:
# a minbase root of one release, made once with debootstrap and copied for
# each run, with /proc, /sys and /dev of this machine mounted in it.
# Sourced by deb_test.sh and upgrade_test.sh, whose $MK_TMP holds the logs.

# shellcheck source=scripts/debian-mirror.sh
. scripts/debian-mirror.sh

# pkg_root SUITE BASE ROOT - copy the cached root of SUITE at BASE (made
# there first if missing) to ROOT and mount this machine's /proc, /sys and
# /dev in it. Return: non-zero when debootstrap or a mount failed (the
# end of debootstrap's log printed).
pkg_root() {
	local suite=$1 base=$2 root=$3
	if [ ! -x "$base/bin/bash" ]; then
		rm -rf "$base.tmp"
		debootstrap --variant=minbase "$suite" "$base.tmp" "$(debian_mirror)" \
			>"$MK_TMP/debootstrap.log" 2>&1 ||
			{ tail -n 20 "$MK_TMP/debootstrap.log"; return 1; }
		mv "$base.tmp" "$base"
	fi
	cp -a "$base" "$root"
	mount --bind /proc "$root/proc" && mount --bind /sys "$root/sys" &&
		mount --bind /dev "$root/dev" && mount --bind /dev/pts "$root/dev/pts" || return 1
	cp /etc/resolv.conf "$root/etc/" 2>/dev/null
	return 0
}

# pkg_root_remove ROOT - unmount what pkg_root mounted and remove ROOT;
# a root with anything still mounted in it is never removed.
# Return: 1 when something stayed mounted.
pkg_root_remove() {
	local m
	for m in dev/pts dev proc sys; do umount -l "$1/$m" 2>/dev/null; done
	grep -q " $1/" /proc/mounts && return 1
	rm -rf "$1"
}

# pkg_wait_started PID LOG - wait up to 10 s for the agent's "started:"
# line in LOG while PID lives; print LOG. Return: 0 when it started.
pkg_wait_started() {
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q 'started:' "$2" && break
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	cat "$2"
	grep -q 'started:' "$2"
}
