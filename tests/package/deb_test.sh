#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The Debian packages as an operator meets them, in a fresh Debian root
# of this machine's release (debootstrap minbase, cached in
# /var/tmp/mailktls-deb-root-base-SUITE, copied for each
# run): lintian, install of mailktls + mailktls-dkms + libmailktls-dev with
# apt, DKMS building the module for a kernel whose headers arrive later,
# `mailktlsd -t`, the agent started from the unit's ExecStart the way
# systemd would (its User=, groups and ambient capabilities, in a network
# namespace of its own), an upgrade that keeps an edited conffile, remove,
# purge, and nothing left behind. Prints TAP. Needs root and the Debian
# mirror this machine's apt uses.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
. tests/integration/lib/common.sh
. tests/package/lib.sh
PLAN=14
echo "1..$PLAN"
MK_TMP=$(mktemp -d /tmp/mk-deb.XXXXXX)
base=${MK_DEB_ROOT:-/var/tmp/mailktls-deb-root}-base-$(. /etc/os-release && echo "$VERSION_CODENAME")
root=${MK_DEB_ROOT:-/var/tmp/mailktls-deb-root}.$$
debs=$PWD/$BUILD/deb
netns_pid=	# a process holding the agent's network namespace (nsenter -t)
# The root is of this machine's release (Debian 12 or 13), and the kernel
# whose headers arrive later is that release's current one (6.1 or 6.12):
# the version linux-headers-amd64 depends on.
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
kver=$(apt-cache depends linux-headers-amd64 2>/dev/null | sed -n 's/^ *Depends: linux-headers-//p' | head -n1)
agent_pid=

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
	DEBIAN_FRONTEND=noninteractive "$@"; }

cleanup() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
	[ -n "$netns_pid" ] && kill "$netns_pid" 2>/dev/null
	pkg_root_remove "$root"
	rm -rf "$MK_TMP"
}
trap cleanup EXIT

make_root() {
	pkg_root_remove "$root" || return 1
	pkg_root "$suite" "$base" "$root" || return 1
	# This machine's sources (updates and security too: the kernel whose
	# headers DKMS builds for is often only there), in either format; set on
	# every copy, so a base made by an older test or before the machine's
	# sources changed cannot hide the kernel.
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/" &&
			rm -f "$root/etc/apt/sources.list"
	elif [ -s /etc/apt/sources.list ]; then
		cp /etc/apt/sources.list "$root/etc/apt/sources.list"
	fi
	mkdir -p "$root/tmp/debs" && cp "$debs"/*.deb "$root/tmp/debs/" &&
		rm -f "$root"/tmp/debs/*dbgsym*
	in_root apt-get update -qq
}

c_build() { make -s BUILD="$BUILD" deb && ls "$debs"/mailktls_*_amd64.deb "$debs"/mailktls-dkms_*_all.deb \
	"$debs"/libmailktls-dev_*_amd64.deb; }
c_lintian() {
	# --fail-on error,warning: every remaining tag is explained in an override
	lintian --fail-on error,warning --pedantic --info "$debs"/*.changes 2>&1 | grep -v '^running with root'
	[ "${PIPESTATUS[0]}" -eq 0 ]
}
c_install() {
	in_root sh -c 'apt-get install -y -q --no-install-recommends /tmp/debs/mailktls_*.deb \
		/tmp/debs/mailktls-dkms_*.deb /tmp/debs/libmailktls-dev_*.deb' >"$MK_TMP/install.log" 2>&1 ||
		{ tail -n 30 "$MK_TMP/install.log"; return 1; }
	in_root dpkg -s mailktls mailktls-dkms libmailktls-dev | grep -E '^(Package|Status|Version)'
}
c_files() {
	local f
	for f in /usr/sbin/mailktlsd /usr/sbin/mailktlsctl /usr/sbin/mailktls-milter \
		/lib/systemd/system/mailktls-milter.service /usr/share/man/man5/mailktlsd.conf.5.gz \
		/usr/share/man/man8/mailktlsd.8.gz /lib/systemd/system/mailktls.service \
		/usr/include/mailktls.h /usr/src/mailktls-0.1.0/dkms.conf; do
		[ -e "$root$f" ] || { echo "missing $f"; return 1; }
	done
	in_root dpkg-query -W -f='${Conffiles}\n' mailktls | grep -q '/etc/mailktls/mailktlsd.conf' ||
		{ echo "mailktlsd.conf is not a conffile"; return 1; }
	in_root getent passwd mailktls && in_root id -nG mailktls | grep -qw ssl-cert
}
c_devel() {	# a daemon builds against the library with pkg-config
	in_root apt-get install -y -q --no-install-recommends gcc libc6-dev pkgconf >/dev/null 2>&1 || return 1
	cat >"$root/tmp/q.c" <<'EOC'
#include <mailktls.h>
#include <stdio.h>
int main(void) { puts(mailktls_version_name(0x0304)); return 0; }
EOC
	in_root sh -c 'gcc -o /tmp/q /tmp/q.c $(pkg-config --cflags --libs libmailktls) && /tmp/q' | grep -qx TLSv1.3
}
c_dkms() {	# headers of a kernel arrive: DKMS builds and installs the module for it
	in_root apt-get install -y -q --no-install-recommends "linux-headers-$kver" >"$MK_TMP/headers.log" 2>&1 ||
		{ tail -n 20 "$MK_TMP/headers.log"; return 1; }
	in_root dkms status mailktls
	in_root dkms status mailktls | grep -q "mailktls/0.1.0, $kver, x86_64: installed" &&
		in_root modinfo -k "$kver" -F name mailktls | grep -qx mailktls
}
c_check_conf() {
	in_root setpriv --reuid=mailktls --regid=mailktls --init-groups \
		/usr/sbin/mailktlsd -t -c /etc/mailktls/mailktlsd.conf
}
unit_value() { sed -n "s/^$1=//p" "$root/lib/systemd/system/mailktls.service" | head -n1; }
c_start_as_systemd_would() {
	local exec user caps
	exec=$(unit_value ExecStart)
	user=$(unit_value User)
	caps=$(unit_value AmbientCapabilities | tr 'A-Z' 'a-z' | sed 's/cap_//g')
	echo "ExecStart=$exec User=$user caps=$caps"
	[ -n "$exec" ] && [ "$user" = mailktls ] || return 1
	# A network namespace of its own, held by a sleeping process; nsenter
	# needs no mount (ip netns does, and fails inside a chroot).
	unshare --net sleep 600 &
	netns_pid=$!
	sleep 0.2
	nsenter -t "$netns_pid" -n ip link set lo up || return 1
	# RuntimeDirectory=mailktls
	install -d -o "$(in_root id -u mailktls)" -g "$(in_root id -g mailktls)" -m 0750 "$root/run/mailktls"
	caps=$(printf '+%s,' $caps)	# setpriv's form: +net_bind_service,+net_admin
	caps=${caps%,}
	nsenter -t "$netns_pid" -n chroot "$root" /usr/bin/setpriv --reuid="$user" --regid="$user" \
		--init-groups --inh-caps="$caps" --ambient-caps="$caps" --bounding-set="-all,$caps" \
		--no-new-privs $exec >"$MK_TMP/agent.log" 2>&1 &
	agent_pid=$!
	pkg_wait_started "$agent_pid" "$MK_TMP/agent.log"
}
c_unprivileged() {
	local st uid eff
	st=/proc/$agent_pid/status
	uid=$(awk '/^Uid:/ {print $3}' "$st")
	eff=$(awk '/^CapEff:/ {print $2}' "$st")
	echo "euid $uid CapEff $eff (mailktls is $(in_root id -u mailktls))"
	# CAP_NET_BIND_SERVICE (bit 10) and CAP_NET_ADMIN (bit 12), nothing else
	[ "$uid" = "$(in_root id -u mailktls)" ] && [ "$eff" = 0000000000001400 ]
}
c_handshake() {
	nsenter -t "$netns_pid" -n chroot "$root" sh -c \
		'openssl s_client -connect 127.0.0.1:993 -brief </dev/null 2>&1' | tee "$MK_TMP/sclient.out"
	grep -qE 'Protocol version: TLSv1\.[23]' "$MK_TMP/sclient.out" &&
		grep -q 'tls listener=imaps ' "$MK_TMP/agent.log"
}
c_stop() {
	[ -n "$agent_pid" ] || return 1
	kill -TERM "$agent_pid" && wait "$agent_pid"
	local rc=$?
	agent_pid=
	[ "$rc" -eq 0 ] && grep -q stopped "$MK_TMP/agent.log"
}
# repack PACKAGE as version 0.1.0+upgrade1 (its dependencies on the same
# version follow)
repack() {
	local d=$MK_TMP/v2-$1
	dpkg-deb -R "$debs/$1"_*_amd64.deb "$d" &&
		sed -i 's/^Version: .*/Version: 0.1.0+upgrade1/; s/(= 0\.1\.0)/(= 0.1.0+upgrade1)/' \
			"$d/DEBIAN/control" &&
		dpkg-deb -b "$d" "$root/tmp/debs/$1_0.1.0+upgrade1_amd64.deb" >/dev/null
}
c_upgrade_keeps_conffile() {
	local new
	echo "# edited by the operator" >>"$root/etc/mailktls/mailktlsd.conf"
	repack mailktls && repack libmailktls-dev || return 1
	in_root apt-get install -y -q -o Dpkg::Options::=--force-confold --no-install-recommends \
		/tmp/debs/mailktls_0.1.0+upgrade1_amd64.deb \
		/tmp/debs/libmailktls-dev_0.1.0+upgrade1_amd64.deb >"$MK_TMP/upgrade.log" 2>&1 ||
		{ tail -n 20 "$MK_TMP/upgrade.log"; return 1; }
	new=$(in_root dpkg-query -W -f='${Version}' mailktls)
	echo "now $new"
	[ "$new" = 0.1.0+upgrade1 ] && tail -n1 "$root/etc/mailktls/mailktlsd.conf" | grep -q 'edited by the operator'
}
c_remove_keeps_conffile() {
	in_root apt-get remove -y -q mailktls libmailktls-dev >/dev/null 2>&1 || return 1
	[ ! -e "$root/usr/sbin/mailktlsd" ] && [ -e "$root/etc/mailktls/mailktlsd.conf" ]
}
c_purge_leaves_nothing() {
	local left
	# what is still installed or has its configuration left (removed above)
	in_root sh -c 'dpkg --purge $(dpkg-query -W -f="\${db:Status-Abbrev} \${Package}\n" \
		"mailktls*" "libmailktls*" | awk "\$1 ~ /^[ir]/ {print \$2}")' >"$MK_TMP/purge.log" 2>&1 ||
		{ tail -n 20 "$MK_TMP/purge.log"; return 1; }
	left=$(cd "$root" && find etc usr lib var/lib/dkms -name '*mailktls*' 2>/dev/null |
		grep -v '^var/lib/dpkg' ; ls -d "lib/modules/$kver/updates/dkms/mailktls.ko"* 2>/dev/null)
	[ -n "$left" ] && { echo "left behind:"; echo "$left"; return 1; }
	in_root getent passwd mailktls && { echo "the mailktls user is still there"; return 1; }
	in_root dpkg -l | grep -E '^.. +(mailktls|libmailktls)' && return 1
	return 0
}

for tool in debootstrap lintian dpkg-buildpackage ip setpriv unshare nsenter; do
	command -v "$tool" >/dev/null || fatal="$tool is missing (scripts/install-deps.sh)"
done
[ -z "$fatal" ] && [ "$(id -u)" != 0 ] && fatal="needs root (debootstrap, chroot)"
[ -z "$fatal" ] && [ -z "$kver" ] && fatal="apt knows no linux-headers-amd64 to take the kernel version from"
check "make deb builds mailktls, mailktls-dkms and libmailktls-dev" c_build || fatal="make deb failed"
check "lintian: no error or warning (overrides explained in debian/)" c_lintian
[ -z "$fatal" ] && { make_root >"$MK_TMP/root.log" 2>&1 || { tail -n 20 "$MK_TMP/root.log"; fatal="no fresh Debian root"; }; }
check "apt installs the three packages into a fresh Debian root" c_install || fatal="install failed"
check "binaries, man pages, unit, header, DKMS source; conffile; mailktls user in ssl-cert" c_files
check "libmailktls-dev: a program builds with pkg-config and runs" c_devel
check "kernel headers installed later: DKMS builds mailktls.ko for $kver" c_dkms
check "mailktlsd -t on the installed configuration, as the mailktls user" c_check_conf
check "the unit's ExecStart starts the agent as its User= with its capabilities" c_start_as_systemd_would
check "the agent runs as mailktls with CAP_NET_BIND_SERVICE and CAP_NET_ADMIN only" c_unprivileged
check "a TLS client completes a handshake on 993 and the agent logs it" c_handshake
check "SIGTERM: the agent stops cleanly" c_stop
check "upgrade: a newer mailktls installs and the edited conffile stays" c_upgrade_keeps_conffile
check "remove: the programs go, the conffile stays" c_remove_keeps_conffile
check "purge: nothing of mailktls is left (files, module, DKMS tree, user)" c_purge_leaves_nothing
check_done 14 "$MK_TMP/agent.log" agent
