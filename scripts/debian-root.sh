#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/debian-root.sh - a Debian root of another release, made once with
# debootstrap and kept, for what this machine's release cannot do itself:
# build the module with the compiler a newer kernel was built with, run the
# suite against Debian 13's daemons on a Debian 12 host (and back).
#
#   scripts/debian-root.sh SUITE                 make it if missing, print its path
#   scripts/debian-root.sh SUITE -- CMD [ARG...] run CMD in it (cwd: this tree,
#                                                bind-mounted at /src/mailktls)
#
# SUITE is bookworm or trixie. The root lives in $MK_ROOT_CACHE/root-SUITE
# (default /var/cache/mailktls; outside the tree, so a fresh clone on the
# same machine finds it) and is rebuilt when missing or broken. Its apt
# sources are the release, its updates and security suites, and for trixie
# also trixie-backports (the 7.x kernels). Needs root and the Debian mirror
# this machine's apt uses.
set -euo pipefail
cd "$(dirname "$0")/.."

suite=${1:?usage: $0 SUITE [-- CMD...]}
shift
case $suite in bookworm | trixie) ;; *) echo "debian-root: unknown suite $suite" >&2; exit 2 ;; esac
cache=${MK_ROOT_CACHE:-/var/cache/mailktls}
root=$cache/root-$suite
mkdir -p "$cache"

# Any step that fails says where: a root that is not made leaves nothing
# else behind to explain it.
trap 'echo "debian-root: $suite: line $LINENO failed: $BASH_COMMAND" >&2' ERR

# shellcheck source=scripts/debian-mirror.sh
. "$(dirname "$0")/debian-mirror.sh"
mirror=$(debian_mirror)
security=$(debian_security_mirror)

exec 8>"$cache/root-$suite.lock"
flock 8	# one debootstrap (and one apt) per root at a time
if [ ! -x "$root/usr/bin/apt-get" ] || [ ! -f "$root/.mailktls-root-ok" ]; then
	command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
	echo "debian-root: debootstrap $suite into $root (once)" >&2
	rm -rf "$root"
	debootstrap --variant=minbase --include=ca-certificates,make,git "$suite" "$root" "$mirror" >&2
	{
		echo "deb $mirror $suite main"
		echo "deb $mirror $suite-updates main"
		echo "deb $security $suite-security main"
		[ "$suite" = trixie ] && echo "deb $mirror $suite-backports main"
	} >"$root/etc/apt/sources.list"
	rm -f "$root/etc/apt/sources.list.d/"*
	chroot "$root" apt-get update -qq >&2
	touch "$root/.mailktls-root-ok"
fi
# Packages installed here must not start their daemons (Dovecot, Postfix,
# haproxy would listen on this machine's ports): the chroot convention.
if [ ! -x "$root/usr/sbin/policy-rc.d" ]; then
	printf '#!/bin/sh\n# scripts/debian-root.sh: no service starts in this root\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 0755 "$root/usr/sbin/policy-rc.d"
fi
flock -u 8

if [ $# -eq 0 ]; then
	echo "$root"
	exit 0
fi
[ "$1" = -- ] && shift

# Each run mounts in a mount namespace of its own: two runs at once (two
# trees, one root) would otherwise stack their mounts on the same paths,
# and the first to end would unmount the other's tree, /proc and /dev.
# Not when this machine is itself a chroot (a fresh CI root): there / is no
# mount point, unshare cannot make the mounts private ("cannot change root
# filesystem propagation"), and the runs of one CI job come one at a time.
if [ -z "${MK_ROOT_NS:-}" ] && mountpoint -q /; then
	exec unshare --mount --propagation private env MK_ROOT_NS=1 \
		bash "$PWD/scripts/debian-root.sh" "$suite" -- "$@"
fi

# Mounts are undone on every exit; a tree with anything still mounted in it
# is never removed (the root is kept anyway).
mounts=()
cleanup() {
	local i
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
bind() {	# what, where (inside the root)
	mkdir -p "$root$2"
	mount --bind "$1" "$root$2"
	mounts+=("$root$2")
}
bind /proc /proc
bind /sys /sys
bind /dev /dev
bind /dev/pts /dev/pts
bind "$PWD" /src/mailktls
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# From here the status is the command's, no failure of this script.
trap - ERR
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
	TERM="${TERM:-dumb}" ${CI:+CI=$CI} MK_IN_ROOT="$suite" \
	bash -c 'cd /src/mailktls && exec "$@"' bash "$@"
