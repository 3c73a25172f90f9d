#!/bin/sh
# Install the Debian packages listed in scripts/debian-packages.txt that are
# not installed yet. Idempotent; does nothing (and needs no root) when all
# are there. The same list serves Debian 12 and 13: a "libs-of PKG" line
# stands for the shared libraries PKG's candidate version depends on, read
# from its Depends, so that a daemon the tests unpack with dpkg -x (Exim,
# Cyrus) finds the libraries of whatever version this release ships.
set -eu
here=$(dirname "$0")
list=$here/debian-packages.txt

# libs_of PKG... - the lib* packages in the Depends of each PKG's candidate
# version (first of alternatives, no versions, no arch qualifier). Not
# their own packages, debconf, the MTA they would pull in or their tools:
# those conflict with what is installed or are not needed by the binaries.
# One apt-cache call (it is slow to start). Return: 1 when apt does not
# know one of them.
libs_of() {
	[ $# -gt 0 ] || return 0
	deps=$(apt-cache show --no-all-versions "$@" 2>/dev/null) || return 1
	printf '%s\n' "$deps" | sed -n 's/^Depends: //p' | tr ',' '\n' |
		sed 's/|.*//; s/(.*)//; s/:any//; s/[[:space:]]//g' | grep '^lib' || true
}

wanted() {
	grep -v '^#' "$list" | grep -v '^libs-of[[:space:]]' | sed 's/[[:space:]].*//' | grep . || true
	# shellcheck disable=SC2046 # one word per package
	libs_of $(sed -n 's/^libs-of[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' "$list")
}

need_root() {
	[ "$(id -u)" = 0 ] && return 0
	echo "need root to install packages (run: sudo $0)" >&2
	exit 1
}

# A fresh machine has no package lists yet: apt-cache cannot read the
# Depends of libs-of packages until apt-get update ran once.
if ! all=$(wanted); then
	echo "install-deps: apt knows no package of a libs-of line yet: apt-get update" >&2
	need_root
	apt-get update -qq
	all=$(wanted)
fi
all=$(printf '%s\n' "$all" | sort -u)
# One dpkg-query for all (a name it does not know prints nothing).
# shellcheck disable=SC2086
installed=" $(dpkg-query -W -f='${Package} ${db:Status-Status}\n' $all 2>/dev/null |
	sed -n 's/ installed$//p' | tr '\n' ' ')"
missing=
for p in $all; do
	case $installed in *" $p "*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
need_root
export DEBIAN_FRONTEND=noninteractive
# postfix asks questions at install time; answer them.
echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
