#!/bin/sh
# Builds netkernel's Debian packages with dpkg-buildpackage (run by
# `make deb`).
#
#   scripts/build-deb.sh BUILD OUTDIR
#
# dpkg-buildpackage works in the source tree (debian/netkernel/,
# debian/files, ...) and writes the packages to its parent, so it runs in a
# copy of the tree under OUTDIR/src: the tree and BUILD are never written,
# and two builds with different OUTDIRs share no file. The .deb, .changes
# and .buildinfo files end up in OUTDIR.
#
# By default debian/rules compiles the programs again in the copy, with
# dpkg-buildflags' hardening flags (about 40 s on 2 busy cores).
# DEB_REUSE_BUILD=1 packages BUILD's binaries instead (`make` must have
# built them; tar keeps the sources' times, so make finds them up to date):
# seconds, but without the hardening flags.
set -eu
[ $# = 2 ] || { echo "usage: $0 BUILD OUTDIR" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
for c in dpkg-buildpackage dh; do
	command -v "$c" >/dev/null 2>&1 || {
		echo "build-deb: missing $c (apt install debhelper dpkg-dev; make deps)" >&2
		exit 1
	}
done

src=$out/src/netkernel
rm -rf "$out/src"
mkdir -p "$src"
cd "$top"
# safe.directory: the test runs this as another user than the tree's owner.
git() { command git -c safe.directory='*' "$@"; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked files and new ones not ignored: the tree as it is, without
	# build/ (ignored) and .git; files deleted but not yet committed are
	# left out.
	# shellcheck disable=SC2016  # $f is the inner shell's
	git ls-files -z --cached --others --exclude-standard |
		xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' _ |
		tar --null -T - -cf - | tar --no-same-owner -xf - -C "$src"
else
	tar --exclude=./build --exclude=./.git -cf - . | tar --no-same-owner -xf - -C "$src"
fi

cd "$src"
rm -f "$out"/netkernel*_*.deb "$out"/netkernel_*.changes \
	"$out"/netkernel_*.buildinfo
if [ "${DEB_REUSE_BUILD:-0}" = 1 ]; then
	export NK_BUILD="$build"
else
	unset NK_BUILD
fi
dpkg-buildpackage -us -uc -b -Jauto
# dpkg-buildpackage writes its products next to the tree: $out/src.
mv "$out"/src/netkernel*_*.deb "$out"/src/netkernel_*.changes \
	"$out"/src/netkernel_*.buildinfo "$out"/
rm -rf "$out/src"
ls -1 "$out"/netkernel*_*.deb
