#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Unpack Debian packages into a directory instead of installing them, for
# daemons the tests run that conflict with installed packages (cyrus-imapd
# and cyrus-pop3d conflict with dovecot-imapd and dovecot-pop3d through the
# imap-server and pop3-server virtual packages). Nothing is installed,
# no maintainer script runs, no service starts: apt-get download fetches
# the .deb files, dpkg -x unpacks them into DEST/root. The libraries they
# link against are ordinary packages: scripts/install-deps.sh installs them
# from the packages' Depends (a "libs-of" line of scripts/debian-packages.txt).
#
#   scripts/unpack-debs.sh DEST PKG...
#
# Idempotent: DEST/root is kept while DEST/stamp names the same packages at
# the same candidate versions. Exit status 0 when DEST/root is complete.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 DEST PKG..." >&2; exit 2; }
dest=$1
shift
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

want=
for p in "$@"; do
	v=$(apt-cache policy "$p" | sed -n 's/^ *Candidate: //p')
	if [ -z "$v" ] || [ "$v" = "(none)" ]; then
		echo "$0: no candidate version of $p (apt-get update?)" >&2
		exit 1
	fi
	want="$want$p=$v
"
done
if [ -d "$dest/root" ] && [ -f "$dest/stamp" ] && [ "$(cat "$dest/stamp")" = "$(printf '%s' "$want")" ]; then
	exit 0
fi

rm -rf "$dest/debs" "$dest/root" "$dest/stamp"
mkdir -p "$dest/debs" "$dest/root"
# The download runs as whoever runs this script (root or not), in a
# directory apt's sandbox user could not write to.
# shellcheck disable=SC2046
(cd "$dest/debs" && apt-get -q -o APT::Sandbox::User="$(id -un)" download \
	$(printf '%s' "$want" | tr '\n' ' ')) >&2
for deb in "$dest"/debs/*.deb; do
	dpkg -x "$deb" "$dest/root"
done
printf '%s' "$want" >"$dest/stamp"
