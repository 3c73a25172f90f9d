#!/bin/sh
# Install the Debian packages listed in scripts/debian-packages.txt that are
# not installed yet. Idempotent; does nothing (and needs no root) when all
# are there.
set -eu
here=$(dirname "$0")
missing=
for p in $(grep -v '^#' "$here/debian-packages.txt" | sed 's/[[:space:]].*//' | grep .); do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "need root to install packages (run: sudo $0)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# postfix asks questions at install time; answer them.
echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
