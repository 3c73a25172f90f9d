#!/bin/sh
# `make deb`: build the Debian packages from a copy of the tree (so the build
# never writes into the working tree or its parent) into OUT (build/deb).
# Needs dpkg-dev, debhelper and dh-dkms (scripts/debian-packages.txt).
set -eu
cd "$(dirname "$0")/.."
out=$(mkdir -p "${1:-build/deb}" && cd "${1:-build/deb}" && pwd)
version=$(dpkg-parsechangelog -S Version)
src=$out/src/mailktls-$version
rm -rf "$out/src" "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
mkdir -p "$src"
# the tracked files, as committed or changed in the work tree
git ls-files -z --cached --others --exclude-standard | tar -c --null -T - | tar -x -C "$src"
(cd "$src" && dpkg-buildpackage -b -us -uc --no-sign >"$out/build.log" 2>&1) || {
	tail -n 40 "$out/build.log" >&2
	exit 1
}
mv "$out"/src/*.deb "$out"/src/*.changes "$out"/src/*.buildinfo "$out"/
rm -rf "$out/src"
ls "$out"/*.deb
