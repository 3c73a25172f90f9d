# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# scripts/debian-mirror.sh - the Debian mirrors this machine's apt uses,
# read from either apt format: a machine may have only one of the two
# files (hence the "|| true" under pipefail). Sourced by
# scripts/debian-root.sh and tests/package/lib.sh.

debian_mirror_uris() {
	sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true
}

# debian_mirror - the archive (not the security one); deb.debian.org if none
debian_mirror() {
	local m
	m=$(debian_mirror_uris | grep -v security | head -n1 || true)
	[ -n "$m" ] || m=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' \
		/etc/apt/sources.list 2>/dev/null || true)
	echo "${m:-http://deb.debian.org/debian}"
}

# debian_security_mirror - the security archive; next to the archive if none
debian_security_mirror() {
	local m
	m=$(debian_mirror_uris | grep security | head -n1 || true)
	[ -n "$m" ] || { m=$(debian_mirror); m=${m%/debian}/debian-security; }
	echo "$m"
}
