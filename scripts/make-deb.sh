#!/bin/sh
# make-deb.sh [OUT] - `make deb`: build the Debian packages (debian/, debhelper)
# from a copy of this tree in OUT/xen-blkbackd-VERSION (dpkg-buildpackage puts
# its results next to the source directory, i.e. in OUT), then check them with
# lintian when it is installed (errors and warnings fail; each accepted one is
# an override with its reason in debian/*.lintian-overrides).
# OUT defaults to build/deb.  Needs dpkg-dev and debhelper (scripts/deps.sh).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-build/deb}
case $out in /*) ;; *) out=$top/$out;; esac
ver=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
src=$out/xen-blkbackd-$ver
start=$(date +%s)
rm -rf "$out"
mkdir -p "$src"
(cd "$top" && tar --exclude=./build --exclude=./.git -cf - .) | tar -C "$src" -xf -
(cd "$src" && DEB_BUILD_OPTIONS="parallel=${JOBS:-2}${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}" \
    dpkg-buildpackage -b -us -uc)
built=$(date +%s)
changes=$(ls "$out"/xen-blkbackd_"$ver"_*.changes)
if command -v lintian >/dev/null 2>&1; then
  lintian --fail-on error,warning --display-info "$changes"
else
  echo "make-deb: lintian not installed: packages not checked"
fi
rm -rf "$src"
echo "make-deb: $(cd "$out" && ls *.deb | tr '\n' ' ')in $out; build $((built - start)) s, lintian $(($(date +%s) - built)) s"
