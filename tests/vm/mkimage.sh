#!/usr/bin/env bash
# Builds (once, cached) what tests/vm/vm.sh boots:
#
#   $NK_VM_CACHE/vmlinuz            Debian 12's generic kernel (linux-image-amd64)
#   $NK_VM_CACHE/initramfs.cpio.gz  busybox, the virtio/9p modules, init scripts
#   $NK_VM_CACHE/kernel.version     e.g. 6.1.0-57-amd64
#
# The kernel package is fetched with `apt-get download` and unpacked with
# `dpkg -x` into a scratch directory; nothing is installed into the host.
# Only the kernel image and the few modules the VM needs are kept (the
# cloud kernel has no 9p; the generic one has it as modules, loaded by our
# init). NK_VM_CACHE defaults to build/vm; point several worktrees at one
# directory to download once.
#
# Exit status: 0 ready, 77 cannot be had here (reason on stderr), 1 error.
set -eu
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NK_ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$NK_ROOT/build}
case $BUILD in /*) ;; *) BUILD=$NK_ROOT/$BUILD ;; esac
CACHE=${NK_VM_CACHE:-$BUILD/vm}
# Modules the init loads, in any order: dependencies are added from each
# module's .modinfo "depends=" and loaded first.
MODS="virtio_pci virtio_console 9pnet_virtio 9p"

cant() {
	echo "vm-image: $*" >&2
	exit 77
}

busybox_bin() {
	local b
	for b in /usr/bin/busybox /bin/busybox; do
		# Only a static busybox runs in an initramfs without a libc.
		[ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1 && { echo "$b"; return 0; }
	done
	return 1
}

BB=$(busybox_bin) || cant "no static busybox (apt-get install busybox-static)"

# fresh: everything built and newer than what it is built from. Checked
# before taking the lock, so a cache built by root serves other users.
fresh() {
	local f
	[ -s "$CACHE/vmlinuz" ] && [ -s "$CACHE/modules.tar" ] && [ -s "$CACHE/initramfs.cpio.gz" ] || return 1
	for f in "$HERE/init" "$HERE/stage2.sh" "$CACHE/modules.tar" "$BB" "$0"; do
		[ "$f" -nt "$CACHE/initramfs.cpio.gz" ] && return 1
	done
	return 0
}
fresh && exit 0
if ! mkdir -p "$CACHE" 2>/dev/null || [ ! -w "$CACHE" ]; then
	cant "cannot write $CACHE to build the VM image (NK_VM_CACHE)"
fi
exec 9>"$CACHE/.lock"
flock -w 600 9 || cant "another image build holds $CACHE/.lock"
command -v cpio >/dev/null || cant "cpio missing (apt-get install cpio)"
command -v objcopy >/dev/null || cant "objcopy missing (binutils)"

# ------------------------------------------------------------- the kernel
if [ ! -s "$CACHE/vmlinuz" ] || [ ! -s "$CACHE/modules.tar" ]; then
	if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
		cant "apt-get/dpkg missing: cannot fetch linux-image-amd64"
	fi
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
	[ -n "$pkg" ] || cant "apt-cache knows no linux-image-amd64 (apt-get update?)"
	work=$(mktemp -d "$CACHE/fetch.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	echo "vm-image: fetching $pkg" >&2
	# apt-get download drops privileges to _apt; a dir it can write avoids
	# the "unsandboxed" warning.
	chmod 777 "$work"
	(cd "$work" && timeout 300 apt-get download -q "$pkg" >/dev/null 2>&1) ||
		cant "apt-get download $pkg failed (no network or mirror?)"
	dpkg -x "$work"/*.deb "$work/root"
	kver=$(basename "$(ls -d "$work"/root/lib/modules/*)")
	mdir=$work/root/lib/modules/$kver
	# name -> path of every module, then the closure of $MODS over depends=.
	find "$mdir" -name '*.ko' | awk -F/ '{n=$NF; sub(/\.ko$/,"",n); gsub(/-/,"_",n); print n, $0}' \
		>"$work/index"
	order=()
	declare -A seen=()
	visit() {
		local m=$1 f d
		m=${m//-/_}
		[ -n "${seen[$m]:-}" ] && return 0
		seen[$m]=1
		f=$(awk -v n="$m" '$1==n {print $2; exit}' "$work/index")
		[ -n "$f" ] || { echo "vm-image: module $m not in $pkg" >&2; exit 1; }
		for d in $(objcopy -O binary --only-section=.modinfo "$f" /dev/stdout |
			tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '); do
			visit "$d"
		done
		order+=("$m")
		mkdir -p "$work/mods"
		cp "$f" "$work/mods/$m.ko"
	}
	for m in $MODS; do visit "$m"; done
	printf '%s\n' "${order[@]}" >"$work/mods/modules.list"
	tar -C "$work/mods" -cf "$CACHE/modules.tar.new" .
	cp "$work/root/boot/vmlinuz-$kver" "$CACHE/vmlinuz.new"
	mv "$CACHE/modules.tar.new" "$CACHE/modules.tar"
	mv "$CACHE/vmlinuz.new" "$CACHE/vmlinuz"
	echo "$kver" >"$CACHE/kernel.version"
	rm -rf "$work"
	trap - EXIT
fi

# ------------------------------------------------------------ the initramfs
out=$CACHE/initramfs.cpio.gz
if ! fresh; then
	st=$(mktemp -d "$CACHE/initrd.XXXXXX")
	trap 'rm -rf "$st"' EXIT
	mkdir -p "$st"/{bin,sbin,proc,sys,dev,newroot,lib/modules,etc}
	cp "$BB" "$st/bin/busybox"
	tar -C "$st/lib/modules" -xf "$CACHE/modules.tar"
	install -m 755 "$HERE/init" "$st/init"
	install -m 755 "$HERE/stage2.sh" "$st/stage2.sh"
	(cd "$st" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$out.new"
	mv "$out.new" "$out"
	rm -rf "$st"
	trap - EXIT
fi
exit 0
