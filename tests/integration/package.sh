#!/usr/bin/env bash
# The Debian packages (docs/packaging.md). `make deb` builds netkernel and
# netkernel-guest in a copy of the tree (the tree stays as it was; the
# copy compiles with Debian's hardening flags); lintian finds no error;
# dpkg installs both into a scratch root (dpkg --root with a database of
# its own), where every file is in its package, the conffile is
# registered and the unit passes systemd-analyze verify; the installed nkd
# with the installed /etc/netkernel/nkd.conf serves a guest started by the
# installed nkrun with the installed shim; dpkg -r leaves only the
# conffile, dpkg -P nothing. `make install` (PREFIX=/usr) installs the
# same files as the two packages. Skips only without debhelper, dpkg-dev or
# lintian (scripts/install-deps.sh installs them).
# timeout: 400
# shellcheck disable=SC2016  # dpkg-query formats: literal ${field}
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netkernel
need_cmd dpkg-buildpackage dh lintian dpkg dpkg-deb dpkg-query
need_netns "$@"
# Not for nkd: tar, git, make, the compilers.
export HOME=${HOME:-$NK_TMP}
[ -w "$HOME" ] || export HOME=$NK_TMP

tree_state() { git -c safe.directory='*' -C "$NK_ROOT" status --porcelain 2>/dev/null || echo "(no git)"; }
before=$(tree_state)

# ---- build
D=$NK_TMP/deb
log "make deb (DEB_OUT=$D)"
t0=$(date +%s)
make -C "$NK_ROOT" --no-print-directory deb BUILD="$BUILD" DEB_OUT="$D" \
	>"$NK_TMP/deb-build.log" 2>&1 || {
	tail -n 30 "$NK_TMP/deb-build.log" >&2
	fail "make deb failed"
}
log "make deb took $(($(date +%s) - t0)) s"
ver=$(sed -n 's/^#define NK_VERSION_STRING "\(.*\)"/\1/p' "$NK_ROOT/include/netkernel/version.h")
arch=$(dpkg --print-architecture)
HOST_DEB=$D/netkernel_${ver}-1_${arch}.deb
GUEST_DEB=$D/netkernel-guest_${ver}-1_${arch}.deb
[ -f "$HOST_DEB" ] || fail "no $HOST_DEB (version.h says $ver; debian/changelog must agree): $(ls "$D")"
[ -f "$GUEST_DEB" ] || fail "no $GUEST_DEB: $(ls "$D")"
[ "$(tree_state)" = "$before" ] || fail "make deb changed the source tree: $(tree_state)"
[ ! -e "$D/src" ] || fail "make deb left its copy of the tree in $D/src"

# ---- one list of files: `make install` installs what the packages hold
# (less Debian's own: copyright, changelog, lintian overrides; man pages
# compressed by dh_compress)
MI=$NK_TMP/mi
make -C "$NK_ROOT" --no-print-directory install BUILD="$BUILD" DESTDIR="$MI" \
	PREFIX=/usr SYSCONFDIR=/etc UNITDIR=/lib/systemd/system \
	>"$NK_TMP/make-install.log" 2>&1 || fail "make install failed: $(tail -n 5 "$NK_TMP/make-install.log")"
from_make=$(cd "$MI" && find . ! -type d | sort)
from_debs=$( { dpkg-deb -c "$HOST_DEB"; dpkg-deb -c "$GUEST_DEB"; } |
	awk '$1 !~ /^d/ {print $6}' |
	grep -v '/copyright$\|/changelog\.Debian\.gz$\|/usr/share/lintian/' |
	sed -e 's|\.gz$||' -e 's|/doc/netkernel-guest/|/doc/netkernel/|' | sort)
[ "$from_make" = "$from_debs" ] ||
	fail "make install and the packages differ: $(diff <(echo "$from_make") <(echo "$from_debs") | grep '^[<>]')"
grep -qx "ExecStart=/usr/sbin/nkd --config /etc/netkernel/nkd.conf" "$MI/lib/systemd/system/nkd.service" ||
	fail "make install's unit has the wrong ExecStart"
log "make install: the same $(wc -l <<<"$from_make") files as the packages"

# ---- lintian: no errors (warnings are printed in the log)
lint=$(lintian --fail-on error "$D"/netkernel_"${ver}"-1_"${arch}".changes 2>&1) &&
	lrc=0 || lrc=$?
printf '%s\n' "$lint" | sed 's/^/  lintian: /' >&2
printf '%s\n' "$lint" | grep -q '^E: ' && fail "lintian reports errors"
[ "$lrc" = 0 ] || fail "lintian exited $lrc"

# ---- install into a scratch root
R=$NK_TMP/root
ADMIN=$R/var/lib/dpkg
mkdir -p "$ADMIN/info" "$ADMIN/updates" "$ADMIN/triggers" "$R/var/log"
: >"$ADMIN/status"
# The scratch root has no libc6 etc. in its database: --force-depends. The
# maintainer scripts run outside it with DPKG_ROOT=$R (they honour it).
dpkgr() {
	dpkg --root="$R" --force-not-root --force-script-chrootless \
		--force-depends --no-triggers "$@" >>"$NK_TMP/dpkg.log" 2>&1 ||
		{
			tail -n 20 "$NK_TMP/dpkg.log" >&2
			fail "dpkg $*"
		}
}
q() { dpkg-query --admindir="$ADMIN" "$@"; }
dpkgr -i "$HOST_DEB" "$GUEST_DEB"
[ "$(q -W -f='${db:Status-Abbrev}' netkernel)" = "ii " ] || fail "netkernel not installed: $(q -W -f='${db:Status-Abbrev}' netkernel)"
[ "$(q -W -f='${db:Status-Abbrev}' netkernel-guest)" = "ii " ] || fail "netkernel-guest not installed"

has() { # PACKAGE PATH...
	local pkg=$1 f list
	shift
	list=$(q -L "$pkg")
	for f in "$@"; do
		grep -qx "$f" <<<"$list" || fail "$pkg does not list $f"
		[ -e "$R$f" ] || fail "$f of $pkg is not in the scratch root"
	done
}
has netkernel /usr/sbin/nkd /usr/bin/nkctl /usr/sbin/nk-loader \
	/usr/lib/netkernel/nk_steer.bpf.o /lib/systemd/system/nkd.service \
	/etc/netkernel/nkd.conf /usr/share/man/man8/nkd.8.gz \
	/usr/share/man/man8/nkctl.8.gz /usr/share/man/man8/nk-loader.8.gz \
	/usr/share/doc/netkernel/config.md /usr/share/doc/netkernel/copyright \
	/usr/share/doc/netkernel/packaging.md
has netkernel-guest /usr/lib/netkernel/libnkshim.so /usr/bin/nkrun \
	/usr/bin/nk-vmagent /usr/share/man/man1/nk-vmagent.1.gz \
	/usr/share/man/man1/nkrun.1.gz /usr/share/doc/netkernel-guest/shim.md \
	/usr/share/doc/netkernel-guest/copyright
q -L netkernel-guest | grep -q '/sbin/\|nkd' && fail "netkernel-guest carries host files: $(q -L netkernel-guest | grep '/sbin/\|nkd')"
q -L netkernel | grep -q 'libnkshim\|nkrun' && fail "netkernel carries guest files"
q -W -f='${Conffiles}\n' netkernel | grep -q '^ /etc/netkernel/nkd.conf ' ||
	fail "/etc/netkernel/nkd.conf is not a conffile: $(q -W -f='${Conffiles}' netkernel)"
for b in usr/sbin/nkd usr/bin/nkctl usr/sbin/nk-loader usr/bin/nkrun; do
	[ -x "$R/$b" ] || fail "$b is not executable"
done
# nk_steer.bpf.o is eBPF for the kernel (ELF e_machine 247, EM_BPF).
[ "$(od -An -tu2 -j18 -N2 "$R/usr/lib/netkernel/nk_steer.bpf.o" | tr -d ' ')" = 247 ] ||
	fail "nk_steer.bpf.o is not an eBPF ELF object"
[ "$(dpkg-deb -f "$HOST_DEB" Version)" = "${ver}-1" ] || fail "package version is not ${ver}-1"

# ---- the unit names the installed nkd and config and verifies
UNIT=$R/lib/systemd/system/nkd.service
grep -qx 'ExecStart=/usr/sbin/nkd --config /etc/netkernel/nkd.conf' "$UNIT" ||
	fail "unexpected ExecStart: $(grep ExecStart= "$UNIT")"
grep -qx 'Type=notify' "$UNIT" || fail "nkd.service is not Type=notify"
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$NK_TMP/unit"
	sed "s|/usr/sbin/nkd|$R/usr/sbin/nkd|" "$UNIT" >"$NK_TMP/unit/nkd.service"
	out=$(systemd-analyze verify --man=no "$NK_TMP/unit/nkd.service" 2>&1) ||
		fail "systemd-analyze verify: $out"
	[ -z "$out" ] || fail "systemd-analyze verify: $out"
	log "systemd-analyze verify: clean"
else
	log "no systemd-analyze: unit not verified"
fi

# ---- the installed programs work with the installed config and shim
"$R/usr/sbin/nkd" --help | grep -q -- '--config' || fail "installed nkd --help"
SOCK=$NK_TMP/pkg.sock
bg nkd "$R/usr/sbin/nkd" --config "$R/etc/netkernel/nkd.conf" --socket "$SOCK"
npid=$LASTPID
wait_for 10 test -S "$SOCK" || fail "installed nkd with the installed nkd.conf did not start"
# The guest listens through nkd (its socket lives in nkd's namespace, this
# one) and says whether the shim mapped in it is the installed one; a
# native client fetches its token.
PORT=8123
TOKEN=pkg-$NK_ID-$RANDOM
unset NK_SHIM LD_PRELOAD
bg guest "$R/usr/bin/nkrun" --socket "$SOCK" -- "$PY" -c '
import socket, sys
maps = open("/proc/self/maps").read()
open(sys.argv[2] + ".shim", "w").write(
    "installed" if sys.argv[3] + "/usr/lib/netkernel/libnkshim.so" in maps else "other")
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
open(sys.argv[2], "w").close()
c, _ = s.accept()
c.sendall(sys.argv[4].encode())
c.close()
' "$PORT" "$NK_TMP/ready" "$R" "$TOKEN"
gpid=$LASTPID
wait_file "$NK_TMP/ready" 20 || fail "guest under the installed nkrun did not listen"
[ "$(cat "$NK_TMP/ready.shim")" = installed ] || fail "guest did not run with $R/usr/lib/netkernel/libnkshim.so"
"$R/usr/bin/nkctl" --socket "$SOCK" sockets >"$NK_TMP/sockets.txt" ||
	fail "installed nkctl sockets failed"
grep -q ":$PORT" "$NK_TMP/sockets.txt" || fail "installed nkctl does not show the guest's listener: $(cat "$NK_TMP/sockets.txt")"
got=$(timeout 20 "$PY" -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
print(s.recv(100).decode())
' "$PORT") || fail "native client could not reach the guest"
[ "$got" = "$TOKEN" ] || fail "guest answered '$got', not '$TOKEN'"
wait "$gpid" || fail "guest exited with an error"
nk_stop "$npid"
log "installed nkd, nkctl, nkrun and shim: ok"

# ---- remove: only the conffile stays; purge: nothing
outside_var() { (cd "$R" && find . -path ./var -prune -o "$@" -print | sort); }
dpkgr -r netkernel netkernel-guest
[ "$(q -W -f='${db:Status-Abbrev}' netkernel)" = "rc " ] || fail "netkernel after remove: $(q -W -f='${db:Status-Abbrev}' netkernel)"
left=$(outside_var ! -type d)
[ "$left" = ./etc/netkernel/nkd.conf ] || fail "after remove, files besides the conffile: $left"
dpkgr -P netkernel netkernel-guest
left=$(outside_var ! -type d)
[ -z "$left" ] || fail "after purge, files left: $left"
[ ! -e "$R/etc/netkernel" ] || fail "after purge, /etc/netkernel is left"
q -W netkernel >/dev/null 2>&1 && fail "netkernel still known to dpkg after purge"
[ "$(tree_state)" = "$before" ] || fail "the test changed the source tree: $(tree_state)"
log "ok"
