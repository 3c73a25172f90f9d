#!/bin/bash
# Build the initramfs of the mailktls VM test bed (called by scripts/vm-run.sh).
#
#   scripts/vm/mkinitramfs.sh OUT.cpio.gz KVER BUILD CONF
#
# Contents: busybox-static with its applet links, the kTLS kernel modules of
# KVER and their dependencies (uncompressed, .ko.xz too: busybox insmod reads plain .ko
# only), kmod/mailktls.ko when it was built, the project binaries under /mk
# laid out as in the source tree (/mk/agent, /mk/kmod, /mk/build/tests/vm,
# /mk/tests/vm, /mk/etc), the openssl CLI, the host binaries listed in
# tests/vm/extra-binaries (optional, one per line), the files listed in
# tests/vm/extra-files (optional, one absolute path or glob per line, kept
# at their path; "optional:PATH" when one Debian release lacks it), every shared library all of those need, and
# scripts/vm/init as /init. CONF becomes /etc/mk-vm.conf.
# Environment: VM_MODROOT, the root KVER's modules are under (lib/modules/KVER;
# default /: the host's own); VM_KO, mailktls.ko built for KVER (default
# kmod/mailktls.ko when it exists); VM_EXTRA_FILES, more files (space separated): absolute paths
# keep their path in the VM, paths relative to the tree go under /mk; ELF
# files bring their shared libraries; VM_USERLAND, a root of a newer Debian
# release whose C library, OpenSSL (CLI too) and other libraries the VM
# takes instead of this host's (see resolve_libs).
set -eu
out=$1 kver=$2 build=$3 conf=$4
cd "$(dirname "$0")/../.."

# Roots of the module closure, in load order; dependencies are added in
# front of the module that needs them (modinfo -F depends).
# Names of one kernel that another has not (7.3 builds cryptd and the
# x86 ChaCha/Poly1305 in and has the chacha skcipher in chacha.ko) are
# skipped.
KTLS_MODULES="cryptd crypto_simd aesni_intel gcm libchacha libpoly1305 chacha_generic
	poly1305_generic chacha_x86_64 poly1305_x86_64 chacha chacha20poly1305 tls"

modroot=${VM_MODROOT:-/}
ko=${VM_KO-kmod/mailktls.ko}
[ -f "$ko" ] || ko=

stage=$(mktemp -d "${out%/*}/initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
moddir=lib/modules/$kver

mkdir -p "$stage"/usr/{bin,sbin,lib,lib64} "$stage"/{dev,proc,sys,tmp,run,root,etc,mk}
ln -s usr/bin "$stage/bin"
ln -s usr/sbin "$stage/sbin"
ln -s usr/lib "$stage/lib"
ln -s usr/lib64 "$stage/lib64"
mkdir -p "$stage/$moddir"
mknod -m 600 "$stage/dev/console" c 5 1
mknod -m 666 "$stage/dev/null" c 1 3

# busybox and its applets
bb=$(command -v busybox)
if ldd "$bb" >/dev/null 2>&1; then
	echo "vm: $bb is not static (install busybox-static)" >&2
	exit 1
fi
cp "$bb" "$stage/usr/bin/busybox"
# one link per applet, all in /usr/bin (bin and sbin link there); pointing
# at /usr/bin/busybox, the host path of busybox and its path in the VM
"$bb" --install -s "$stage/usr/bin"

# kernel modules, dependencies first
declare -A seen=()
modlist=()
add_module() {	# name
	local name=${1//-/_} dep file
	[ -n "${seen[$name]:-}" ] && return 0
	seen[$name]=1
	for dep in $(modinfo -b "$modroot" -k "$kver" -F depends "$name" 2>/dev/null | tr ',' ' '); do
		add_module "$dep"
	done
	# 7.3 builds some of them in (cryptd) and its packages list no
	# modules.builtin for modinfo: what is not a file is left to the kernel
	file=$(modinfo -b "$modroot" -k "$kver" -F filename "$name" 2>/dev/null) || {
		echo "vm: $name is no module of $kver (built in?)" >&2
		return 0
	}
	case $file in
	/*) ;;
	*) return 0 ;;	# built in
	esac
	case $file in
	*.ko.xz) xz -dc "$file" >"$stage/$moddir/$name.ko" ;;
	*.ko.zst) zstd -qdc "$file" >"$stage/$moddir/$name.ko" ;;
	*.ko.gz) gzip -dc "$file" >"$stage/$moddir/$name.ko" ;;
	*) cp "$file" "$stage/$moddir/$name.ko" ;;
	esac
	modlist+=("$name.ko")
}
for m in $KTLS_MODULES; do
	add_module "$m"
done
if [ -n "$ko" ]; then
	for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
		add_module "$dep"
	done
	mkdir -p "$stage/mk/kmod"
	cp "$ko" "$stage/mk/kmod/mailktls.ko"
	cp "$ko" "$stage/$moddir/mailktls.ko"
	modlist+=(mailktls.ko)
fi
printf '%s\n' "${modlist[@]}" >"$stage/etc/mk-modules"

# project files, mirrored under /mk
elfs=("$stage/usr/bin/busybox")
copy_to_mk() {	# source path, path under /mk
	mkdir -p "$(dirname "$stage/mk/$2")"
	cp -L "$1" "$stage/mk/$2"
	if [ -f "$1" ] && head -c4 "$1" | grep -q 'ELF'; then
		elfs+=("$stage/mk/$2")
	fi
}
for f in agent/mailktlsd agent/mailktlsctl agent/mailktls-milter agent/libmailktls.so.1; do
	[ -f "$f" ] && copy_to_mk "$f" "$f"
done
[ -f "$stage/mk/agent/libmailktls.so.1" ] && ln -s libmailktls.so.1 "$stage/mk/agent/libmailktls.so"
for f in "$build"/tests/vm/*; do
	[ -f "$f" ] && [ -x "$f" ] && copy_to_mk "$f" "build/tests/vm/${f##*/}"
done
for f in tests/vm/* etc/*; do
	case $f in
	*.c | *.h | *.o | *.d | *'*') continue ;;
	esac
	[ -f "$f" ] && copy_to_mk "$f" "$f"
done

# host binaries: openssl and whatever tests/vm/extra-binaries asks for
extra=openssl
[ -f tests/vm/extra-binaries ] && extra="$extra $(grep -v '^#' tests/vm/extra-binaries)"
for b in $extra; do
	path=$(command -v "$b") || { echo "vm: host binary $b not found" >&2; exit 1; }
	path=$(readlink -f "$path")
	mkdir -p "$stage$(dirname "$path")"
	cp "$path" "$stage$path"
	elfs+=("$stage$path")
done
[ -f tests/vm/extra-files ] &&
	VM_EXTRA_FILES="${VM_EXTRA_FILES:-} $(grep -v '^#' tests/vm/extra-files)"
for f in ${VM_EXTRA_FILES:-}; do
	case $f in
	optional:*)	# one release's file only: copied when this host has it
		f=${f#optional:}
		[ -f "$f" ] || continue
		;;
	esac
	[ -f "$f" ] || { echo "vm: extra file $f not found" >&2; exit 1; }
	case $f in
	/*)
		mkdir -p "$stage$(dirname "$f")"
		cp -L "$f" "$stage$f"
		head -c4 "$f" | grep -q 'ELF' && elfs+=("$stage$f")
		;;
	*) copy_to_mk "$f" "$f" ;;
	esac
done
mkdir -p "$stage/usr/lib/ssl"
if [ -n "${VM_USERLAND:-}" ]; then
	# the openssl CLI and its configuration of that release (the root's
	# /usr/lib/ssl/openssl.cnf is a link to /etc, absolute)
	cp "$VM_USERLAND/usr/bin/openssl" "$stage/usr/bin/openssl"
	cp -L "$VM_USERLAND/etc/ssl/openssl.cnf" "$stage/usr/lib/ssl/"
else
	cp -L /usr/lib/ssl/openssl.cnf "$stage/usr/lib/ssl/"
fi

# Shared libraries, at the paths the loader prints (it finds them there in
# the VM). With VM_USERLAND, a root of a newer Debian release, the loader of
# that root resolves them against its own library directory first: the C
# library, OpenSSL and every other library that root has under the same
# soname come from it, the rest from this host. Binaries built here run on
# a newer C library (never on an older one), and Debian keeps a soname's
# ABI, so the newer library serves them; that is how the VMs of Debian 13's
# kernels run Debian 13's OpenSSL on a Debian 12 host.
resolve_libs() {	# ELF file: "VM-path source-path" per library it loads
	local multiarch=usr/lib/x86_64-linux-gnu
	ldd "$1" >/dev/null 2>&1 || return 0	# static (busybox): none
	if [ -z "${VM_USERLAND:-}" ]; then
		ldd "$1" | awk '/=> \// { print $3, $3 } /^\t\/[^ ]+ \(/ { print $1, $1 }'
		return
	fi
	"$VM_USERLAND/$multiarch/ld-linux-x86-64.so.2" --library-path "$VM_USERLAND/$multiarch" \
		--list "$1" | awk -v root="$VM_USERLAND" '
		/=> \// {
			vm = $3
			if (index(vm, root "/") == 1) vm = substr(vm, length(root) + 1)
			if ($1 ~ /^\//) vm = $1	# the loader, at the path binaries name
			print vm, $3
		}'
}
for e in "${elfs[@]}"; do
	resolve_libs "$e"
done | sort -u | while read -r vm src; do
	dest=$stage$vm
	[ -e "$dest" ] && continue
	mkdir -p "$(dirname "$dest")"
	cp -L "$src" "$dest"
done

cp scripts/vm/init "$stage/init"
chmod 755 "$stage/init"
cp "$conf" "$stage/etc/mk-vm.conf"
echo "root:x:0:0:root:/root:/bin/sh" >"$stage/etc/passwd"
echo "root:x:0:" >"$stage/etc/group"
printf '127.0.0.1\tlocalhost mailktls-vm\n::1\tlocalhost ip6-localhost\n' >"$stage/etc/hosts"

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) |
	gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
