#!/usr/bin/env bash
# Socket semantics conformance (docs/shim.md "Semantics"), with the
# kernel as the oracle: nk_semantics (tests/tools/nk_semantics.c) runs ~48
# named checks (real fd numbers; select/poll/epoll with mixed sets, edge,
# one-shot, shared between threads; dup/fcntl/close; fork, fork+exec,
# vfork+exec; blocking/non-blocking I/O, connect, EINTR/SA_RESTART,
# SO_RCVTIMEO; TCP/UDP over IPv4/IPv6 and v4-mapped; sendmsg/recvmsg,
# readv/writev, sendfile, MSG_*; shutdown; names; FIONREAD; options; name
# resolution; AF_UNIX, pipes and files untouched; the causes CPython's test
# suite found: recv_notconn, shutdown_queued, epoll_edge_send, udp_cmsg;
# accept_emfile: a full fd table fails accept/socket with EMFILE and the
# connection stays queued).
# It runs natively in H
# first (if that fails the check itself is wrong), then in the NIC-less
# guest G through nkrun/nkd; the test fails listing every check that fails
# under nkd. The binary must import the fortified / 64-bit variants
# (__recv_chk, __recvfrom_chk, __read_chk, fcntl64, sendfile64) so that the
# shim's handling of them is exercised. dnsmasq in P answers nk-sem.example
# for the resolver check; 10.N.0.3 (nobody) is the pending-connect target.
# timeout: 240
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_cmd dnsmasq nm readelf
SEM=$TOOLS/nk_semantics
[ -x "$SEM" ] || fail "missing $SEM (run make)"
need_nk

syms=$(nm -D --undefined-only "$SEM")
want_syms="fcntl64 sendfile64"
# glibc 2.36's headers fortify recv/read only for GCC (clang folds them to
# the plain calls), so the _chk imports are required of a GCC build.
if readelf -p .comment "$SEM" 2>/dev/null | grep -qi clang; then
	log "built with clang: __recv_chk/__read_chk not expected"
else
	want_syms="$want_syms __recv_chk __recvfrom_chk __read_chk"
fi
for s in $want_syms; do
	printf '%s\n' "$syms" | grep -qw "$s" ||
		fail "$SEM does not import $s (needs -D_FILE_OFFSET_BITS=64 -D_FORTIFY_SOURCE=2 -O2)"
done

topo_up
NAME=nk-sem.example
set_resolv "$NS_H" "$P4"
# G must not be able to resolve on its own.
set_resolv "$NS_G" 127.0.0.1
bg_peer dnsmasq dnsmasq --keep-in-foreground --no-resolv --no-hosts \
	--listen-address="$P4" --bind-interfaces --port=53 \
	--pid-file="$NK_TMP/dnsmasq.pid" --address=/$NAME/"$P4" \
	--log-facility=- --user=root --group=
wait_port "$NS_P" 53 10 udp
start_nkd
run_host getent hosts "$NAME" | grep -q "$P4" || fail "H cannot resolve $NAME (setup)"

args=(--addr4 "$H4" --addr6 "$H6" --unreach "10.$NK_N.0.3" --resolve "$NAME=$P4")
all=$("$SEM" --list | awk '{print $1}' | tr '\n' ' ')
log "checks: $all"

# A run: its output in $NK_TMP/NAME.out; failing check names in $failed.
run_sem() { # NAME RUNNER...
	local name=$1 rc
	shift
	set +e
	"$@" "$SEM" "${args[@]}" >"$NK_TMP/$name.out" 2>&1
	rc=$?
	set -e
	sed "s/^/  $name: /" "$NK_TMP/$name.out" >&2
	failed=$(sed -n 's/^FAIL \([a-z0-9_]*\):.*/\1/p' "$NK_TMP/$name.out" | tr '\n' ' ')
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$NK_TMP/$name.out" || true)
	if [ -z "$summary" ]; then
		failed="${failed}(no summary line: exit status $rc)"
	elif [ "$rc" != 0 ] && [ -z "$failed" ]; then
		failed="(exit status $rc)"
	fi
	[ "$rc" = 0 ] && [ -z "$failed" ]
}

log "native run in H (validates the checks)"
run_sem native run_host ||
	fail "nk_semantics fails natively, so the test itself is wrong: $failed"
grep -q '^SKIP' "$NK_TMP/native.out" && fail "checks skipped natively: $(grep '^SKIP' "$NK_TMP/native.out" | tr '\n' ' ')"

log "guest run in G through nkd"
ok=1
run_sem guest run_guest || ok=0
if [ -z "${NK_NATIVE:-}" ]; then
	nkd_alive || fail "nkd died during the guest run (failing checks: ${failed:-none})"
fi
grep -q '^SKIP' "$NK_TMP/guest.out" && fail "checks skipped in the guest: $(grep '^SKIP' "$NK_TMP/guest.out" | tr '\n' ' ')"
[ "$ok" = 1 ] || fail "checks failing under nkd: $failed"
log "ok: $(grep -E '^[0-9]+ passed' "$NK_TMP/guest.out")"
