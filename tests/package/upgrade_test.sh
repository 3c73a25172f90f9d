#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The operator's release upgrade, in a fresh Debian 12 root: the Debian 12
# packages (mailktls, mailktls-dkms) installed and the conffile edited,
# the root upgraded to Debian 13 the way Debian documents it (sources to
# trixie, apt full-upgrade keeping edited conffiles), the Debian 13
# packages installed over it. Then: the edit is still there, the Debian 13
# agent accepts the configuration and starts, and DKMS builds the module
# when the Debian 13 kernel's headers arrive. Prints TAP.
#
# Runs on a Debian 12 machine: the Debian 12 packages are `make deb`'s
# ($BUILD/deb), the Debian 13 ones are built in the trixie root of
# scripts/debian-root.sh (build-trixie/deb). On a Debian 13 machine there
# is no Debian 12 package to start from: one skip, said so. Needs root and
# the Debian mirror this machine's apt uses.
# Checks are called through check(), which shellcheck cannot see.
# shellcheck disable=SC2317
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
. tests/integration/lib/common.sh
. tests/package/lib.sh
PLAN=6
echo "1..$PLAN"
if [ "$(. /etc/os-release && echo "$VERSION_CODENAME")" != bookworm ]; then
	echo "ok 1 - # SKIP the upgrade from Debian 12 is tested on the Debian 12 pass"
	exit 0
fi
MK_TMP=$(mktemp -d /tmp/mk-upg.XXXXXX)
base=${MK_DEB_ROOT:-/var/tmp/mailktls-deb-root}-base-bookworm
root=${MK_DEB_ROOT:-/var/tmp/mailktls-deb-root}.upgrade.$$
debs12=$PWD/$BUILD/deb
debs13=$PWD/build-trixie/deb
agent_pid=
fatal=

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
	DEBIAN_FRONTEND=noninteractive "$@"; }
apt_root() {	# apt-get ARGS... in the root (globs expanded there), keeping edited conffiles
	in_root sh -c 'apt-get -y -q -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef \
		--no-install-recommends '"$*"
}

cleanup() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
	pkg_root_remove "$root"
	rm -rf "$MK_TMP"
}
trap cleanup EXIT

make_root() {	# a copy of deb_test.sh's cached Debian 12 root (made here if missing)
	local mirror
	mirror=$(debian_mirror)
	pkg_root bookworm "$base" "$root" || return 1
	# the release and its security suite, as a Debian 12 host has them
	rm -f "$root"/etc/apt/sources.list.d/*
	printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" \
		>"$root/etc/apt/sources.list"
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 0755 "$root/usr/sbin/policy-rc.d"
	mkdir -p "$root/tmp/debs12" "$root/tmp/debs13"
	cp "$debs12"/mailktls_*_amd64.deb "$debs12"/mailktls-dkms_*_all.deb "$root/tmp/debs12/" &&
		cp "$debs13"/mailktls_*_amd64.deb "$debs13"/mailktls-dkms_*_all.deb "$root/tmp/debs13/" &&
		in_root apt-get update -qq
}

c_debs() {	# Debian 12 packages here, Debian 13 packages from the trixie root
	[ -f "$(ls "$debs12"/mailktls_*_amd64.deb 2>/dev/null | head -n1)" ] ||
		make -s BUILD="$BUILD" deb >/dev/null || return 1
	scripts/debian-root.sh trixie -- bash -c 'scripts/install-deps.sh >/dev/null &&
		make -s BUILD=build-trixie deb' >"$MK_TMP/debs13.log" 2>&1 ||
		{ tail -n 20 "$MK_TMP/debs13.log"; return 1; }
	dpkg-deb -f "$debs12"/mailktls_*_amd64.deb Depends | tr ',' '\n' | grep libssl
	dpkg-deb -f "$debs13"/mailktls_*_amd64.deb Depends | tr ',' '\n' | grep libssl
	# built against each release's OpenSSL: libssl3 on 12, libssl3t64 on 13
	dpkg-deb -f "$debs13"/mailktls_*_amd64.deb Depends | grep -q libssl3t64
}
c_install12() {
	apt_root install '/tmp/debs12/mailktls_*.deb /tmp/debs12/mailktls-dkms_*.deb' \
		>"$MK_TMP/install12.log" 2>&1 || { tail -n 20 "$MK_TMP/install12.log"; return 1; }
	echo "# edited by the operator before the upgrade" >>"$root/etc/mailktls/mailktlsd.conf"
	in_root dpkg-query -W mailktls mailktls-dkms
}
c_full_upgrade() {
	sed -i 's/bookworm/trixie/g' "$root/etc/apt/sources.list"
	{ in_root apt-get update -qq && apt_root full-upgrade; } >"$MK_TMP/upgrade.log" 2>&1 ||
		{ tail -n 30 "$MK_TMP/upgrade.log"; return 1; }
	grep VERSION_CODENAME "$root/etc/os-release"
	grep -qx VERSION_CODENAME=trixie "$root/etc/os-release" &&
		tail -n1 "$root/etc/mailktls/mailktlsd.conf" | grep -q 'edited by the operator'
}
c_install13() {
	apt_root install '/tmp/debs13/mailktls_*.deb /tmp/debs13/mailktls-dkms_*.deb' \
		>"$MK_TMP/install13.log" 2>&1 || { tail -n 20 "$MK_TMP/install13.log"; return 1; }
	in_root dpkg-query -W mailktls
	tail -n 3 "$root/etc/mailktls/mailktlsd.conf"
	tail -n1 "$root/etc/mailktls/mailktlsd.conf" | grep -q 'edited by the operator' &&
		[ ! -e "$root/etc/mailktls/mailktlsd.conf.dpkg-new" ]
}
c_agent_starts() {	# -t, then a start in a network namespace of its own, as deb_test.sh
	in_root setpriv --reuid=mailktls --regid=mailktls --init-groups \
		/usr/sbin/mailktlsd -t -c /etc/mailktls/mailktlsd.conf || return 1
	install -d -o "$(in_root id -u mailktls)" -g "$(in_root id -g mailktls)" -m 0750 "$root/run/mailktls"
	# as the unit runs it: its User= with its two capabilities
	unshare --net sh -c 'ip link set lo up && exec chroot "$1" /usr/bin/setpriv --reuid=mailktls \
		--regid=mailktls --init-groups --inh-caps=+net_bind_service,+net_admin \
		--ambient-caps=+net_bind_service,+net_admin --bounding-set=-all,+net_bind_service,+net_admin \
		--no-new-privs /usr/sbin/mailktlsd -c /etc/mailktls/mailktlsd.conf' sh "$root" \
		>"$MK_TMP/agent.log" 2>&1 &
	agent_pid=$!
	pkg_wait_started "$agent_pid" "$MK_TMP/agent.log" || return 1
	kill -TERM "$agent_pid" && wait "$agent_pid"
	agent_pid=
}
c_dkms13() {	# the Debian 13 kernel's headers arrive: DKMS builds the module for them
	local kver
	kver=$(in_root apt-cache depends linux-headers-amd64 | sed -n 's/^ *Depends: linux-headers-//p' | head -n1)
	echo "Debian 13 kernel: $kver"
	apt_root install linux-headers-amd64 >"$MK_TMP/headers.log" 2>&1 ||
		{ tail -n 20 "$MK_TMP/headers.log"; return 1; }
	in_root dkms status mailktls
	in_root dkms status mailktls | grep -q "mailktls/0.1.0, $kver, x86_64: installed" &&
		in_root modinfo -k "$kver" -F name mailktls | grep -qx mailktls
}

for tool in debootstrap dpkg-deb unshare setpriv; do
	command -v "$tool" >/dev/null || fatal="$tool is missing (scripts/install-deps.sh)"
done
[ -z "$fatal" ] && [ "$(id -u)" != 0 ] && fatal="needs root (debootstrap, chroot)"
check "Debian 12 packages built here, Debian 13 packages built in the trixie root" c_debs ||
	fatal="no packages"
[ -z "$fatal" ] && { make_root >"$MK_TMP/root.log" 2>&1 || { tail -n 20 "$MK_TMP/root.log"; fatal="no Debian 12 root"; }; }
check "Debian 12: apt installs mailktls and mailktls-dkms; the operator edits the conffile" c_install12 ||
	fatal="Debian 12 install failed"
check "apt full-upgrade to trixie: the root is Debian 13, the edited conffile stays" c_full_upgrade ||
	fatal="release upgrade failed"
check "the Debian 13 packages install over it; the edited conffile stays" c_install13
check "the Debian 13 agent accepts the configuration and starts" c_agent_starts
check "Debian 13 kernel headers arrive: DKMS builds mailktls.ko for them" c_dkms13
check_done "$PLAN" "$MK_TMP/agent.log" agent
