#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# scripts/vm/kernel.sh - the kernel a VM test run boots, and mailktls.ko
# built for it (called by scripts/vm-run.sh).
#
#   scripts/vm/kernel.sh SERIES [nobuild]
#
# SERIES is 6.1 (Debian 12's linux-image-amd64: this host's on Debian 12),
# 6.12 (Debian 13's) or 7.3 (trixie-backports'). Prints shell assignments
# for scripts/vm-run.sh to eval:
#   vm_kver     the kernel's release (uname -r in the VM)
#   vm_vmlinuz  the image to boot
#   vm_modroot  the root its modules live under (/lib/modules/KVER there;
#               "/" for the host's own 6.1)
#   vm_ko       mailktls.ko built for it ("" when the tree has no module)
#   vm_userland the root of the kernel's release when that release is newer
#               than this host's ("" otherwise): on a Debian 12 host the VMs
#               of Debian 13's kernels take Debian 13's C library and
#               OpenSSL 3.5 from it, so kTLS is tested under the OpenSSL a
#               Debian 13 host runs (post-quantum groups); a Debian 13
#               host runs 6.1 with its own, as binaries built there do not
#               run on Debian 12's C library
#
# A kernel of another release than this host's (Debian 13's on a Debian 12
# host; Debian 12's 6.1 on a Debian 13 host, which has no 6.1 in /boot) is
# fetched with `apt-get download` in the cached root of its release
# (scripts/debian-root.sh; trixie's sources carry trixie-backports),
# unpacked with dpkg-deb into build/kernels/SERIES/root and indexed with
# `depmod -b`; the version is the one Debian's linux-image-amd64 of that
# suite depends on, so it follows point releases. 6.1 and 6.12 come as one
# linux-image-VER package, 7.3 as linux-binary-VER + linux-modules-VER. The
# module for them is built inside that root (each kernel's headers want its
# release's GCC: 12 or 14) from a copy of kmod/ under
# build/kernels/SERIES/kmod, so the builds do not overwrite each other's
# objects; the host's own 6.1 has it built into kmod/. `nobuild`: use what
# is there, fetch and build nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."

series=${1:?usage: $0 6.1|6.12|7.3 [nobuild]}
nobuild=${2:-}
say() { printf '%s=%q\n' "$1" "$2"; }
die() { echo "vm kernel $series: $*" >&2; exit 1; }

host_6_1=$(printf '%s\n' /boot/vmlinuz-6.1.* | sort -V | tail -n1)
if [ "$series" = 6.1 ] && [ -r "$host_6_1" ]; then
	vmlinuz=$host_6_1
	kver=${vmlinuz##*/vmlinuz-}
	[ -d "/lib/modules/$kver" ] || die "no modules for $kver in /lib/modules"
	ko=
	if [ -f Kbuild ]; then
		if [ -z "$nobuild" ] && [ -d "/lib/modules/$kver/build" ]; then
			make -s KVER="$kver" module >&2 || die "make module failed"
		fi
		[ -f kmod/mailktls.ko ] && ko=kmod/mailktls.ko
	fi
	say vm_kver "$kver"; say vm_vmlinuz "$vmlinuz"; say vm_modroot /; say vm_ko "$ko"
	say vm_userland ""
	exit 0
fi

case $series in
6.1) release=bookworm suite=bookworm ;;
6.12) release=trixie suite=trixie ;;
7.3) release=trixie suite=trixie-backports ;;
*) die "unknown series (6.1, 6.12 or 7.3)" ;;
esac
cache=build/kernels/$series
root=$cache/root
mkdir -p "$cache"
inroot() { scripts/debian-root.sh "$release" -- "$@"; }

if [ -z "$nobuild" ]; then
	# the ABI name (6.1.0-57-amd64, 6.12.118+deb13-amd64) that the suite's
	# linux-image-amd64 names
	kver=$(inroot apt-cache depends "linux-image-amd64/$suite" |
		sed -n "s/^ *Depends: linux-image-\\(${series}[.-][^ ]*-amd64\\)\$/\\1/p" | head -n1)
	[ -n "$kver" ] || die "no linux-image-amd64 in $suite"
	if [ ! -f "$cache/.ok-$kver" ]; then
		rm -rf "$cache/debs" "$root" "$cache"/.ok-*
		mkdir -p "$cache/debs"
		pkgs=("linux-image-$kver")
		if inroot apt-cache show "linux-binary-$kver" >/dev/null 2>&1; then
			pkgs=("linux-binary-$kver" "linux-modules-$kver")
		fi
		inroot bash -c 'cd "$1" && shift && apt-get download -q "$@"' bash \
			"/src/mailktls/$cache/debs" "${pkgs[@]}" >&2 || die "apt-get download ${pkgs[*]} failed"
		for d in "$cache"/debs/*.deb; do
			dpkg-deb -x "$d" "$root"
		done
		rm -rf "$cache/debs"
		touch "$cache/.ok-$kver"
	fi
else
	kver=$(find "$cache" -maxdepth 1 -name '.ok-*' -printf '%f\n' | sed 's/^\.ok-//' | head -n1)
	[ -n "$kver" ] || die "not fetched yet (run without nobuild)"
fi

# /usr/lib/modules (merged-/usr packages) or /lib/modules; depmod -b wants lib/modules
for d in "$root/usr/lib/modules/$kver" "$root/lib/modules/$kver"; do
	[ -d "$d" ] && moddir=$d
done
[ -n "${moddir:-}" ] || die "no modules in the $kver packages"
modroot=${moddir%/lib/modules/*}
for v in "$moddir/vmlinuz" "$root/boot/vmlinuz-$kver"; do
	[ -r "$v" ] && vmlinuz=$v
done
[ -n "${vmlinuz:-}" ] || die "no vmlinuz in the $kver packages"
[ -f "$moddir/modules.dep" ] || depmod -b "$modroot" "$kver" || die "depmod -b failed"

ko=
if [ -f Kbuild ]; then
	kb=$cache/kmod
	if [ -z "$nobuild" ]; then
		inroot bash -c '[ -d "/lib/modules/$1/build" ] ||
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=900 --no-install-recommends "linux-headers-$1"' \
			bash "$kver" >&2 || die "installing linux-headers-$kver in the $release root failed"
		rm -rf "$kb"
		mkdir -p "$kb/kmod"
		cp -r Kbuild include "$kb/"
		cp kmod/Kbuild kmod/*.[ch] "$kb/kmod/"	# sources only, no host objects
		inroot make -s -C "/lib/modules/$kver/build" M="/src/mailktls/$kb" modules >&2 ||
			die "building mailktls.ko for $kver failed"
	fi
	[ -f "$kb/kmod/mailktls.ko" ] && ko=$kb/kmod/mailktls.ko
fi
userland=
# shellcheck disable=SC1091
host_release=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ "$release" = trixie ] && [ "$host_release" = bookworm ] && userland=$(scripts/debian-root.sh trixie)
say vm_kver "$kver"; say vm_vmlinuz "$vmlinuz"; say vm_modroot "$modroot"; say vm_ko "$ko"
say vm_userland "$userland"
